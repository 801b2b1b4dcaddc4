//! Serving apps: one HTTP/1.1 server on 127.0.0.1 (`[apps] port`), each
//! app at its own origin `http://<id>.apps.localhost:<port>/` (Chromium
//! resolves `*.localhost` to loopback), so the browser keeps each app's
//! storage apart. The app is known by the Host its origin names — and a
//! read must also carry that origin in `Origin` — never by anything its
//! script sends. Pure: [`app_of_host`], [`csp`], [`site_path`],
//! [`inject_sdk`]; runtime: [`Apps::handle`].

use super::lane::{self, Refused};
use super::store::AuditRow;
use super::Apps;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

/// The response body type.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// The read-lane SDK, served at [`SDK_PATH`].
pub const SDK: &str = include_str!("sdk.js");
/// Where the SDK is served.
pub const SDK_PATH: &str = "/__cowork/sdk.js";
/// Where reads are posted.
pub const READ_PATH: &str = "/__cowork/read";
/// The parent domain of every app's origin.
pub const APPS_DOMAIN: &str = "apps.localhost";
/// The query parameter of a launch link (`apps open`): a one-time code
/// traded for the app's cookie.
pub const LAUNCH_PARAM: &str = "cowork_launch";
/// The cookie that admits a browser to one app (HttpOnly, host-only).
pub const COOKIE: &str = "cowork_app";

/// The launch code in a request's query, if any.
pub fn launch_code(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix(LAUNCH_PARAM)?.strip_prefix('='))
}

/// The value of cookie `name` in a Cookie header.
pub fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?
        .split(';')
        .find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix('='))
}

/// An app's origin.
pub fn origin(id: &str, port: u16) -> String {
    format!("http://{id}.{APPS_DOMAIN}:{port}")
}

/// The app a Host header names (`<id>.apps.localhost:<port>`, this
/// server's port), or None for any other host (DNS rebinding included).
pub fn app_of_host(host: Option<&str>, port: u16) -> Option<String> {
    let host = host?.to_ascii_lowercase();
    let (name, p) = host.rsplit_once(':')?;
    if p.parse::<u16>().ok()? != port {
        return None;
    }
    let id = name.strip_suffix(APPS_DOMAIN)?.strip_suffix('.')?;
    super::manifest::is_app_id(id).then(|| id.to_owned())
}

/// The page's Content-Security-Policy: scripts only from its own origin
/// (what was bundled and checked at install); requests, images, styles
/// and fonts from it and the API hosts it declared (https only); no inline
/// scripts, frames, plugins or other local servers.
pub fn csp(hosts: &[String]) -> String {
    let extra: String = hosts.iter().map(|h| format!(" https://{h}")).collect();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'{extra}; \
         img-src 'self' data: blob:{extra}; font-src 'self' data:{extra}; \
         connect-src 'self'{extra}; media-src 'self' data: blob:; worker-src 'self' blob:; \
         frame-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

fn unhex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// A request path as a file under the site folder: percent-decoded, every
/// component a plain name (no `..`, no backslash, no NUL); `/` is
/// index.html. None for anything else.
pub fn site_path(path: &str) -> Option<PathBuf> {
    let raw = path.split(['?', '#']).next().unwrap_or("");
    let mut bytes = Vec::with_capacity(raw.len());
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() {
                return None;
            }
            bytes.push(unhex(b[i + 1])? * 16 + unhex(b[i + 2])?);
            i += 3;
        } else {
            bytes.push(b[i]);
            i += 1;
        }
    }
    let s = String::from_utf8(bytes).ok()?;
    if s.contains('\\') || s.contains('\0') {
        return None;
    }
    let rel = s.trim_start_matches('/');
    if rel.is_empty() {
        return Some(PathBuf::from("index.html"));
    }
    let p = PathBuf::from(rel);
    p.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then_some(p)
}

/// A file's Content-Type by its extension.
pub fn content_type(p: &Path) -> &'static str {
    match p
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .as_deref()
    {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("woff") => "font/woff",
        Some("woff2") => "font/woff2",
        Some("ttf") => "font/ttf",
        Some("mp3") => "audio/mpeg",
        Some("wav") => "audio/wav",
        Some("mp4") => "video/mp4",
        Some("webm") => "video/webm",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The page with the SDK loaded first (a classic script runs before the
/// app's module scripts).
pub fn inject_sdk(html: &str) -> String {
    let tag = format!("<script src=\"{SDK_PATH}\"></script>");
    let lower = html.to_ascii_lowercase();
    let head = lower.match_indices("<head").find(|(i, _)| {
        matches!(
            lower.as_bytes().get(i + 5),
            Some(b'>' | b' ' | b'\t' | b'\n' | b'\r')
        )
    });
    match head.and_then(|(i, _)| lower[i..].find('>').map(|j| i + j + 1)) {
        Some(at) => format!("{}{tag}{}", &html[..at], &html[at..]),
        None => format!("{tag}{html}"),
    }
}

fn response(status: StatusCode, ctype: &str, body: Bytes, csp: Option<&str>) -> Response<Body> {
    let mut b = Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, ctype)
        .header("X-Content-Type-Options", "nosniff")
        .header("Referrer-Policy", "no-referrer")
        .header("X-Frame-Options", "DENY")
        .header("Cross-Origin-Opener-Policy", "same-origin")
        .header("Cross-Origin-Resource-Policy", "same-origin")
        .header(hyper::header::CACHE_CONTROL, "no-store");
    if let Some(c) = csp {
        b = b.header("Content-Security-Policy", c);
    }
    b.body(Full::new(body).map_err(|never| match never {}).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).map_err(|n| match n {}).boxed()))
}

fn text(status: StatusCode, msg: &str) -> Response<Body> {
    response(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(format!("{msg}\n")),
        Some("default-src 'none'"),
    )
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Body> {
    response(
        status,
        "application/json",
        Bytes::from(v.to_string()),
        Some("default-src 'none'"),
    )
}

impl Apps {
    /// Serve one request on the apps' port.
    pub async fn handle(&self, req: Request<Incoming>, port: u16) -> Response<Body> {
        let host = req
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok());
        let Some(id) = app_of_host(host, port).filter(|id| self.is_installed(id)) else {
            return text(
                StatusCode::FORBIDDEN,
                &format!(
                    "Host {:?} is not an installed app's origin: apps are served only at \
                     http://<app-id>.{APPS_DOMAIN}:{port}/",
                    host.unwrap_or("")
                ),
            );
        };
        let path = req.uri().path().to_owned();
        // A launch link is traded for the cookie, once.
        if let Some(code) = launch_code(req.uri().query()) {
            if !self.take_launch(&id, code) {
                return text(
                    StatusCode::FORBIDDEN,
                    &format!(
                        "this link was used or has expired: run `coworkctl apps open {id}` again"
                    ),
                );
            }
            return match self.cookie_of(&id) {
                Ok(value) => Response::builder()
                    .status(StatusCode::SEE_OTHER)
                    .header(hyper::header::LOCATION, path.as_str())
                    .header(
                        hyper::header::SET_COOKIE,
                        format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict"),
                    )
                    .header(hyper::header::CACHE_CONTROL, "no-store")
                    .body(Full::new(Bytes::new()).map_err(|n| match n {}).boxed())
                    .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "no redirect")),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            };
        }
        // Everything else needs the app's cookie: its files hold its own
        // keys, and its lane the person's context, for this browser only.
        let sent = req
            .headers()
            .get_all(hyper::header::COOKIE)
            .iter()
            .filter_map(|h| h.to_str().ok())
            .find_map(|h| cookie(Some(h), COOKIE));
        let admitted = match (sent, self.cookie_of(&id)) {
            (Some(got), Ok(want)) => got == want,
            _ => false,
        };
        if !admitted {
            let msg = format!("open this app with `coworkctl apps open {id}`");
            if path == READ_PATH {
                self.audit(
                    &id,
                    AuditRow {
                        at_ms: crate::util::now_ms(),
                        method: "unknown".into(),
                        outcome: "refused".into(),
                        items: 0,
                        duration_ms: 0,
                        error: format!("no app cookie: {msg}"),
                    },
                )
                .await;
                return json(
                    StatusCode::UNAUTHORIZED,
                    serde_json::json!({ "error": msg }),
                );
            }
            return text(StatusCode::UNAUTHORIZED, &msg);
        }
        match (req.method().clone(), path.as_str()) {
            (Method::POST, READ_PATH) => self.read_request(&id, port, req).await,
            (Method::GET | Method::HEAD, SDK_PATH) => response(
                StatusCode::OK,
                "text/javascript; charset=utf-8",
                Bytes::from_static(SDK.as_bytes()),
                None,
            ),
            (_, p) if p.starts_with("/__cowork/") => {
                text(StatusCode::NOT_FOUND, "not part of the read lane")
            }
            (Method::GET | Method::HEAD, p) => self.static_file(&id, p).await,
            _ => text(
                StatusCode::METHOD_NOT_ALLOWED,
                "apps are served with GET; reads go to POST /__cowork/read",
            ),
        }
    }

    async fn static_file(&self, id: &str, path: &str) -> Response<Body> {
        let Some(rel) = site_path(path) else {
            return text(StatusCode::BAD_REQUEST, "not a file path");
        };
        let site = self.inner.apps_dir.join(id).join(super::SITE);
        let mut file = site.join(&rel);
        let is_file = |p: &Path| {
            std::fs::symlink_metadata(p)
                .map(|m| m.is_file())
                .unwrap_or(false)
        };
        if !is_file(&file) && rel.extension().is_none() {
            // A single-page app's own routes are its page.
            file = site.join("index.html");
        }
        if !is_file(&file) {
            return text(StatusCode::NOT_FOUND, &format!("no {path} in this app"));
        }
        let hosts = self.hosts_of(id).await;
        let policy = csp(&hosts);
        match tokio::fs::read(&file).await {
            Ok(body) if file.file_name().is_some_and(|n| n == "index.html") => {
                let html = inject_sdk(&String::from_utf8_lossy(&body));
                response(
                    StatusCode::OK,
                    content_type(&file),
                    Bytes::from(html),
                    Some(&policy),
                )
            }
            Ok(body) => response(
                StatusCode::OK,
                content_type(&file),
                Bytes::from(body),
                Some(&policy),
            ),
            Err(e) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot read {path}: {e}"),
            ),
        }
    }

    async fn read_request(&self, id: &str, port: u16, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let header = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        };
        // A page of another origin (another app's included) is refused:
        // the browser sets Origin, a script cannot.
        let own = origin(id, port);
        let refusal = match (header("origin"), header("sec-fetch-site")) {
            (Some(o), _) if o != own => {
                Some(format!("a read from origin {o} is not this app's ({own})"))
            }
            (None, _) => {
                Some("a read must come from the app's own page (no Origin header)".to_owned())
            }
            (_, Some(site)) if site != "same-origin" => {
                Some(format!("a read from a {site} page is refused"))
            }
            _ => None,
        };
        let (method, result) = match refusal {
            Some(why) => ("unknown".to_owned(), Err(Refused::Forbidden(why))),
            None => match Limited::new(req.into_body(), lane::MAX_BODY)
                .collect()
                .await
            {
                Ok(b) => {
                    let b = b.to_bytes();
                    (lane::requested(&b), lane::parse(&b, id))
                }
                Err(_) => (
                    "invalid".to_owned(),
                    Err(Refused::Invalid(format!(
                        "a read is at most {} bytes",
                        lane::MAX_BODY
                    ))),
                ),
            },
        };
        let answer = match result {
            Ok(read) => self
                .answer(id, read)
                .await
                .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, "error", e)),
            Err(Refused::Forbidden(e)) => Err((StatusCode::FORBIDDEN, "refused", e)),
            Err(Refused::Invalid(e)) => Err((StatusCode::BAD_REQUEST, "refused", e)),
        };
        let (outcome, items, error) = match &answer {
            Ok((_, n)) => ("ok", *n, String::new()),
            Err((_, outcome, e)) => (*outcome, 0, e.clone()),
        };
        let row = AuditRow {
            at_ms: crate::util::now_ms(),
            method,
            outcome: outcome.into(),
            items,
            duration_ms: started.elapsed().as_millis().min(u32::MAX as u128) as u32,
            error,
        };
        self.audit(id, row).await;
        match answer {
            Ok((v, _)) => json(StatusCode::OK, serde_json::json!({ "result": v })),
            Err((status, _, e)) => json(status, serde_json::json!({ "error": e })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_apps_own_origin_names_it() {
        assert_eq!(
            app_of_host(Some("notes-aa11bb.apps.localhost:7340"), 7340).as_deref(),
            Some("notes-aa11bb")
        );
        assert_eq!(
            app_of_host(Some("Notes-AA11BB.Apps.Localhost:7340"), 7340).as_deref(),
            Some("notes-aa11bb")
        );
        for bad in [
            "notes-aa11bb.apps.localhost:7341",
            "notes-aa11bb.apps.localhost",
            "127.0.0.1:7340",
            "localhost:7340",
            "evil.com:7340",
            "a.b.apps.localhost:7340",
            "notes.apps.localhost.evil.com:7340",
            "apps.localhost:7340",
        ] {
            assert_eq!(app_of_host(Some(bad), 7340), None, "{bad}");
        }
        assert_eq!(app_of_host(None, 7340), None);
        assert_eq!(origin("a-1", 9), "http://a-1.apps.localhost:9");
    }

    #[test]
    fn launch_codes_and_cookies_are_read_exactly() {
        assert_eq!(launch_code(Some("a=1&cowork_launch=abc")), Some("abc"));
        assert_eq!(launch_code(Some("cowork_launchx=abc")), None);
        assert_eq!(launch_code(None), None);
        assert_eq!(cookie(Some("x=1; cowork_app=f00"), COOKIE), Some("f00"));
        assert_eq!(cookie(Some("cowork_apps=f00"), COOKIE), None);
    }

    #[test]
    fn the_policy_allows_the_app_and_its_declared_hosts_only() {
        let c = csp(&["generativelanguage.googleapis.com".into()]);
        assert!(
            c.contains("connect-src 'self' https://generativelanguage.googleapis.com;"),
            "{c}"
        );
        assert!(c.contains("script-src 'self';"), "{c}");
        assert!(!c.contains("unsafe-eval") && !c.contains("localhost") && !c.contains("127.0.0.1"));
        assert!(csp(&[]).contains("connect-src 'self';"));
    }

    #[test]
    fn paths_stay_in_the_site() {
        assert_eq!(site_path("/"), Some(PathBuf::from("index.html")));
        assert_eq!(
            site_path("/assets/logo-1.png?v=2"),
            Some(PathBuf::from("assets/logo-1.png"))
        );
        assert_eq!(site_path("/a%20b.txt"), Some(PathBuf::from("a b.txt")));
        for bad in [
            "/../x",
            "/a/%2e%2e/%2e%2e/x",
            "/a\\b",
            "/%00",
            "/%zz",
            "/%2",
        ] {
            let p = site_path(bad);
            assert!(p.is_none(), "{bad}: {p:?}");
        }
    }

    #[test]
    fn the_sdk_comes_first() {
        assert_eq!(
            inject_sdk("<html><head lang=x><title>t</title></head></html>"),
            "<html><head lang=x><script src=\"/__cowork/sdk.js\"></script><title>t</title></head></html>"
        );
        assert!(inject_sdk("<p>x</p>").starts_with("<script src=\"/__cowork/sdk.js\"></script>"));
        assert_eq!(
            inject_sdk("<header>h</header><head>"),
            "<header>h</header><head><script src=\"/__cowork/sdk.js\"></script>"
        );
        assert_eq!(
            content_type(Path::new("a.JS")),
            "text/javascript; charset=utf-8"
        );
    }
}
