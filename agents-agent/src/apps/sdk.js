// Cowork's read lane for installed apps: window.cowork.{context,user,data}.*
// Served by Cowork at /__cowork/sdk.js and loaded before the app's own
// scripts. Every call is one POST to this app's own origin; Cowork knows
// the app by that origin, never by anything sent here. Reads only: no
// tools, no models, no secrets, no other app's data.
(function () {
  "use strict";
  function call(ns, method, args) {
    return fetch("/__cowork/read", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ns: ns, method: method, args: args || {} }),
      credentials: "same-origin",
      cache: "no-store",
    }).then(function (r) {
      return r.json().then(
        function (body) {
          if (!r.ok) throw new Error(body && body.error ? body.error : "HTTP " + r.status);
          return body.result;
        },
        function () {
          throw new Error("Cowork's read lane answered HTTP " + r.status);
        }
      );
    });
  }
  var api = {
    context: Object.freeze({
      activeWindow: function () { return call("context", "activeWindow"); },
      recentActivity: function (opts) { return call("context", "recentActivity", opts); },
      currentTime: function () { return call("context", "currentTime"); },
    }),
    user: Object.freeze({
      preferences: function () { return call("user", "preferences"); },
      profile: function () { return call("user", "profile"); },
    }),
    data: Object.freeze({
      conversations: function (opts) { return call("data", "conversations", opts); },
      search: function (query, opts) {
        var args = Object.assign({}, opts || {}, { query: query });
        return call("data", "search", args);
      },
    }),
  };
  Object.defineProperty(window, "cowork", {
    value: Object.freeze(api),
    writable: false,
    configurable: false,
    enumerable: true,
  });
})();
