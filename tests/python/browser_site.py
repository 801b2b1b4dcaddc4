"""Local pages for the browser tests, served on 127.0.0.1 (prints its
port, then serves until killed). The same server answers as
http://localhost:PORT, which is another origin: a redirect there is
cross-origin. Every request is appended to the file named by the first
argument (method, path), so a test can tell what reached the server.
With SITE_FALLBACK=article every unknown path answers with the article
(a small model copies a URL's origin reliably, not always its path)."""
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

LOG = sys.argv[1]

PAGES = {
    "/": """<title>Home</title><h1>Cowork test site</h1>
<nav><a href="/article">Article</a> <a href="/form">Form</a></nav>
<form action="/search" method="get"><label>Search <input name="q"></label>
<button>Go</button></form>""",
    "/article": """<title>Article</title><h1>Lighthouse notes</h1>
<p>The keeper wrote that the secret code is PURPLE-42.</p>
<p>Storms came from the west.</p>""",
    "/form": """<title>Form</title><h1>Send a message</h1>
<form method="post" action="/submit"><label>Message <input name="msg"></label>
<button>Send</button></form>""",
    "/pay": """<title>Pay</title><form method="post" action="/submit">
<label>Card number <input name="cardnumber" autocomplete="cc-number"></label>
<label>Password <input type="password" name="pw"></label></form>""",
    "/setlogin": """<title>Login</title><script>
localStorage.setItem('token', 'tok-123');
document.cookie = 'session=s-456; Max-Age=86400; path=/';
</script><p id="state">logged in</p>""",
    "/whoami": """<title>Who</title><p id="ls"></p><p id="ck"></p><script>
document.getElementById('ls').textContent = 'storage:' + (localStorage.getItem('token') || 'none');
document.getElementById('ck').textContent = 'cookie:' + (document.cookie || 'none');
</script>""",
    "/hang": """<title>Hang</title><p>about to hang</p><script>while (true) {}</script>""",
    "/download": """<title>Download</title><a href="/file.txt" download>Get the file</a>""",
    "/iframe": """<title>Frames</title><h1>Outer</h1><iframe src="/inner" title="Inner frame"></iframe>""",
    "/inner": """<title>Inner</title><button onclick="document.body.insertAdjacentHTML('beforeend','<p>inner clicked</p>')">Inner button</button>""",
    "/shadow": """<title>Shadow</title><x-card></x-card><script>
customElements.define('x-card', class extends HTMLElement { constructor() { super();
  const r = this.attachShadow({mode: 'open'});
  r.innerHTML = '<button>Shadow button</button>'; } });
</script>""",
    "/dialog": """<title>Dialog</title><button onclick="document.title = confirm('Delete everything?') ? 'yes' : 'no'">Delete</button>""",
    "/change": """<title>Change</title><button id="b">First</button>
<button onclick="document.getElementById('b').textContent = 'Second'">Rename</button>""",
    "/bench": """<title>Bench</title><h1>Round trip</h1>
<input id="q" aria-label="Query"><button id="go" onclick="document.getElementById('out').textContent = 'Echo: ' + document.getElementById('q').value">Go</button>
<p id="out"></p>""",
    "/overlay": """<title>Overlay</title><button onclick="document.title='clicked'">Buy</button>
<div id="banner" style="position:fixed;inset:0;background:rgba(0,0,0,0.1)">Accept cookies</div>""",
    "/opener": """<title>Opener</title><button onclick="window.open('http://localhost:{port}/article')">Open it</button>""",
    "/popup": """<title>Popup</title><a href="http://localhost:{port}/article" target="_blank">Elsewhere</a>""",
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def record(self):
        with open(LOG, "a") as f:
            f.write(json.dumps({"method": self.command, "path": self.path,
                                "host": self.headers.get("Host")}) + "\n")

    def send(self, code, body, ctype="text/html; charset=utf-8", extra=()):
        out = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(out)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(out)

    def do_GET(self):
        self.record()
        u = urlparse(self.path)
        port = self.server.server_address[1]
        if u.path == "/redirect":
            to = parse_qs(u.query).get("to", ["/"])[0]
            return self.send(302, "", extra=[("Location", to)])
        if u.path == "/file.txt":
            return self.send(200, "file body\n", "text/plain",
                             [("Content-Disposition", 'attachment; filename="notes.txt"')])
        if u.path == "/search":
            q = parse_qs(u.query).get("q", [""])[0]
            return self.send(200, f"<title>Results</title><p>Results for {q}</p>")
        if u.path == "/slow":
            time.sleep(3)
            return self.send(200, "<title>Slow</title><p>slow page</p>")
        if u.path == "/many":
            links = "".join(f'<a href="/article?n={i}">Link number {i}</a><br>' for i in range(400))
            return self.send(200, f"<title>Many</title>{links}")
        page = PAGES.get(u.path)
        if page is None and os.environ.get("SITE_FALLBACK"):
            page = PAGES["/" + os.environ["SITE_FALLBACK"]]
        if page is None:
            return self.send(404, "<title>Not found</title>")
        self.send(200, page.replace("{port}", str(port)))

    def do_POST(self):
        self.record()
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n).decode()
        self.send(200, f"<title>Submitted</title><p>Submitted: {body}</p>")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
