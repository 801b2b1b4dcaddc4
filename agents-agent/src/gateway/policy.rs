//! The local OpenAI-compatible API's rules (seed 000 §3, seed 001 §3),
//! pure: which Host headers are trusted (on every path, docs included —
//! Jan's gap, closed), which credentials pass (`Authorization: Bearer` or
//! `X-Api-Key`), CORS, which paths exist, and where a model id is served.

use crate::llm::engines::{ApiFamily, CRON_PORT_OFFSET, KNOWN_ENGINES};

/// Default port: not any engine's default port, nor its +1 cron companion.
pub const DEFAULT_PORT: u16 = 7339;
/// Largest request body accepted.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// True when `host` (a Host header) names this gateway on loopback or one
/// of the person's `trusted` hosts (the rule is shared with coworkd's web
/// UI, which trusts no other host).
pub use cowork_proto::net::host_allowed;

/// True when `authorization` is `Bearer <key>` or `x_api_key` is `<key>`
/// (compared in constant time).
pub fn authorized(authorization: Option<&str>, x_api_key: Option<&str>, key: &str) -> bool {
    let bearer = authorization
        .and_then(|a| a.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, k)| k.trim());
    [bearer, x_api_key.map(str::trim)]
        .into_iter()
        .flatten()
        .any(|k| same(k.as_bytes(), key.as_bytes()))
}

fn same(a: &[u8], b: &[u8]) -> bool {
    !b.is_empty() && cowork_proto::secret::constant_time_eq(a, b)
}

/// Why an upstream's status is not passed on, if it is not: a redirect
/// (3xx) is never followed (it could re-post the prompt to a host the SSRF
/// rule never checked) nor relayed (a client would follow it instead).
pub fn refuse_upstream_status(status: u16, location: Option<&str>) -> Option<String> {
    (300..400).contains(&status).then(|| {
        format!(
            "answered HTTP {status} redirecting to {:?}; the gateway never follows redirects",
            location.unwrap_or("")
        )
    })
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `OPTIONS` anything: a CORS preflight, the only request that needs
    /// no key.
    Preflight,
    /// `GET /openapi.json`.
    OpenApi,
    /// `GET /` or `/docs`: a short page pointing at the spec.
    Docs,
    /// `GET /v1/models`.
    Models,
    /// `POST /v1/chat/completions`, `/v1/completions`, `/v1/embeddings`:
    /// forwarded by model id; the string is the path after `/v1`.
    Forward(&'static str),
    /// A path that exists with another method.
    MethodNotAllowed,
    /// Nothing here.
    NotFound,
}

/// Classify a request line.
pub fn route(method: &str, path: &str) -> Route {
    let path = path.split('?').next().unwrap_or(path).trim_end_matches('/');
    if method == "OPTIONS" {
        return Route::Preflight;
    }
    let get = method == "GET" || method == "HEAD";
    let post = method == "POST";
    match path {
        "/openapi.json" if get => Route::OpenApi,
        "" | "/docs" if get => Route::Docs,
        "/v1/models" if get => Route::Models,
        "/v1/chat/completions" if post => Route::Forward("/chat/completions"),
        "/v1/completions" if post => Route::Forward("/completions"),
        "/v1/embeddings" if post => Route::Forward("/embeddings"),
        "/openapi.json"
        | ""
        | "/docs"
        | "/v1/models"
        | "/v1/chat/completions"
        | "/v1/completions"
        | "/v1/embeddings" => Route::MethodNotAllowed,
        _ => Route::NotFound,
    }
}

/// CORS headers on every answer (and the whole answer to a preflight).
pub const CORS: [(&str, &str); 4] = [
    ("access-control-allow-origin", "*"),
    ("access-control-allow-methods", "GET, POST, OPTIONS"),
    (
        "access-control-allow-headers",
        "authorization, x-api-key, content-type, openai-organization, openai-project",
    ),
    ("access-control-max-age", "600"),
];

/// Where a model is served.
#[derive(Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The id clients use.
    pub id: String,
    /// Who serves it (an engine instance key, or a provider id).
    pub owner: String,
    /// OpenAI-compatible API base to forward to (ends before
    /// `/chat/completions`).
    pub base_url: String,
    /// The model id the upstream knows it by.
    pub upstream_model: String,
    /// The key to send (cloud providers only).
    pub api_key: Option<String>,
    /// The managed session serving it (leased per request: its port and
    /// key change when it is started again).
    pub session: Option<String>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("base_url", &self.base_url)
            .field("upstream_model", &self.upstream_model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<hidden>"))
            .field("session", &self.session)
            .finish()
    }
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|u| (&u.id, &u.owner, &u.base_url)))
            .finish()
    }
}

/// Every model the gateway serves, first match wins.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Upstreams(pub Vec<Upstream>);

impl Upstreams {
    /// The upstream serving `model`.
    pub fn find(&self, model: &str) -> Option<&Upstream> {
        self.0.iter().find(|u| u.id == model)
    }
}

/// An engine's OpenAI-compatible base: OpenAI-family bases already end in
/// `/v1`; Ollama serves the OpenAI API under `/v1`.
pub fn openai_base(base_url: &str, api: ApiFamily) -> String {
    let b = base_url.trim_end_matches('/');
    match api {
        ApiFamily::OpenAi => b.to_string(),
        ApiFamily::Ollama => format!("{b}/v1"),
    }
}

/// An OpenAI-style error body.
pub fn error_body(message: &str, kind: &str, code: &str) -> String {
    serde_json::json!({"error": {"message": message, "type": kind, "code": code}}).to_string()
}

/// The OpenAPI document, with this gateway's URL.
pub fn openapi(url: &str) -> serde_json::Value {
    use serde_json::json;
    let body = |desc: &str| {
        json!({"required": true, "content": {"application/json": {"schema": {
            "type": "object", "required": ["model"],
            "properties": {"model": {"type": "string"}, "stream": {"type": "boolean"}},
            "additionalProperties": true}}}, "description": desc})
    };
    let post = |summary: &str, desc: &str| {
        json!({"post": {"summary": summary, "requestBody": body(desc),
            "responses": {"200": {"description": "The upstream's answer (SSE when stream is true)"},
                          "401": {"description": "Missing or wrong key"},
                          "404": {"description": "No such model here"}}}})
    };
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Cowork local OpenAI-compatible API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Routes each request by model id to a local engine or a cloud provider the person configured. Every request needs the key from `coworkctl gateway key` as `Authorization: Bearer <key>` or `X-Api-Key: <key>`; only loopback Host headers are served."},
        "servers": [{"url": format!("{url}/v1")}],
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}}},
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": {
            "/models": {"get": {"summary": "Models of the local engines and configured cloud providers",
                "responses": {"200": {"description": "{\"object\":\"list\",\"data\":[...]}"}}}},
            "/chat/completions": post("Chat completion", "OpenAI chat completion request"),
            "/completions": post("Text completion", "OpenAI completion request"),
            "/embeddings": post("Embeddings", "OpenAI embeddings request"),
        }
    })
}

/// True when `port` is no known engine's default port or its +1 companion.
pub fn port_is_free_of_engines(port: u16) -> bool {
    !KNOWN_ENGINES
        .iter()
        .any(|e| port == e.default_port || port == e.default_port.wrapping_add(CRON_PORT_OFFSET))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_or_trusted_hosts_with_our_port() {
        let t = vec!["cowork.test".to_string()];
        for ok in [
            "127.0.0.1:7339",
            "localhost:7339",
            "LOCALHOST",
            "[::1]:7339",
            "cowork.test:7339",
        ] {
            assert!(host_allowed(Some(ok), 7339, &t), "{ok}");
        }
        for bad in [
            "evil.com",
            "evil.com:7339",
            "127.0.0.1:8080",
            "127.0.0.1.evil.com:7339",
            "localhost:x",
            "",
            "[::1]:1",
        ] {
            assert!(!host_allowed(Some(bad), 7339, &t), "{bad}");
        }
        assert!(!host_allowed(None, 7339, &t));
    }

    #[test]
    fn bearer_or_x_api_key_with_the_exact_key() {
        assert!(authorized(Some("Bearer k1"), None, "k1"));
        assert!(authorized(Some("bearer  k1 "), None, "k1"));
        assert!(authorized(None, Some("k1"), "k1"));
        assert!(authorized(Some("Bearer wrong"), Some("k1"), "k1"));
        assert!(!authorized(Some("Basic k1"), None, "k1"));
        assert!(!authorized(Some("Bearer k"), None, "k1"));
        assert!(!authorized(None, None, "k1"));
        assert!(!authorized(Some("Bearer "), Some(""), ""));
    }

    #[test]
    fn routes_and_methods() {
        assert_eq!(route("GET", "/v1/models"), Route::Models);
        assert_eq!(route("GET", "/v1/models/"), Route::Models);
        assert_eq!(
            route("POST", "/v1/chat/completions?x=1"),
            Route::Forward("/chat/completions")
        );
        assert_eq!(
            route("POST", "/v1/embeddings"),
            Route::Forward("/embeddings")
        );
        assert_eq!(
            route("GET", "/v1/chat/completions"),
            Route::MethodNotAllowed
        );
        assert_eq!(route("OPTIONS", "/v1/anything"), Route::Preflight);
        assert!(refuse_upstream_status(307, Some("http://elsewhere/"))
            .unwrap()
            .contains("elsewhere"));
        assert!(refuse_upstream_status(301, None).is_some());
        assert_eq!(refuse_upstream_status(200, None), None);
        assert_eq!(refuse_upstream_status(404, None), None);
        assert_eq!(route("GET", "/openapi.json"), Route::OpenApi);
        assert_eq!(route("GET", "/"), Route::Docs);
        assert_eq!(route("GET", "/v1/files"), Route::NotFound);
    }

    #[test]
    fn default_port_avoids_every_engine_and_its_companion() {
        assert!(port_is_free_of_engines(DEFAULT_PORT));
        assert!(!port_is_free_of_engines(11434));
        assert!(!port_is_free_of_engines(8081));
        assert_eq!(
            openai_base("http://h:11434/", ApiFamily::Ollama),
            "http://h:11434/v1"
        );
        assert_eq!(
            openai_base("http://h:8080/v1", ApiFamily::OpenAi),
            "http://h:8080/v1"
        );
    }
}
