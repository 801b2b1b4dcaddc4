//! The web UI: the page in `coworkd/ui/` (static files built into the
//! binary) and the same public services as the socket, over gRPC-Web
//! (tonic-web) on `127.0.0.1:<[ui] port>`. A call is translated to gRPC and
//! sent to coworkd's own public socket, so it is routed, relayed and traced
//! exactly as a `coworkctl` call: the UI has no second API.
//!
//! Off until `coworkctl ui` first runs (`System/OpenUi`): that chooses a
//! port, writes `[ui] port` to config.toml, starts the listener and mints a
//! one-time code; the page trades the code for a cookie holding the
//! per-install token (`$COWORK_HOME/ui-token`). The rules every request
//! passes are in [`gate`].

pub mod assets;
pub mod gate;

use crate::config::{self, Config, ConfigError};
use crate::relay::{absolute_uri, Upstream};
use cowork_proto::grpc::{status_response, WORKER_HEADER};
use cowork_proto::paths::CoworkPaths;
use gate::{Access, Facts, Gate, Refusal};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tower::{Layer, Service};

/// Largest `/session` body (a one-time code).
const MAX_CODE_BODY: usize = 1024;
/// How long a connection may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Request headers passed on to the services; the rest (the cookie above
/// all, and what the browser says about itself) stay in coworkd.
const FORWARDED: [&str; 5] = [
    "content-type",
    "te",
    "grpc-timeout",
    "traceparent",
    WORKER_HEADER,
];

/// Errors starting or opening the UI.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The port cannot be bound.
    #[error("cannot listen on 127.0.0.1:{port} for the web UI: {source}; set another `[ui] port` in {config}")]
    Bind {
        /// The port.
        port: u16,
        /// config.toml.
        config: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file of the UI's (the token, config.toml) cannot be read or written.
    #[error("cannot {what} {path}: {source}")]
    File {
        /// Read or write.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// config.toml is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// What `coworkctl ui` gets back.
#[derive(Debug, Clone)]
pub struct Opened {
    /// `http://127.0.0.1:<port>/#code=<code>`.
    pub url: String,
    /// The port.
    pub port: u16,
    /// The UI was off and this call started it.
    pub started: bool,
    /// This call chose the port and wrote it to config.toml.
    pub port_written: bool,
    /// When the code stops working.
    pub code_expires: SystemTime,
    /// The one Origin the UI answers.
    pub origin: String,
}

/// The web UI of one coworkd: off, or listening with its [`Gate`].
pub struct Ui {
    paths: CoworkPaths,
    shutdown: CancellationToken,
    running: tokio::sync::Mutex<Option<Arc<Mutex<Gate>>>>,
}

impl Ui {
    /// The UI of the coworkd at `paths`; its listener stops at `shutdown`.
    pub fn new(paths: CoworkPaths, shutdown: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            paths,
            shutdown,
            running: tokio::sync::Mutex::new(None),
        })
    }

    /// Start listening on `port` (boot, when `[ui] port` is set).
    pub async fn start(&self, port: u16) -> Result<(), UiError> {
        let mut running = self.running.lock().await;
        if running.is_none() {
            let listener = self.bind(port).await?;
            *running = Some(self.serve(listener, port)?);
        }
        Ok(())
    }

    /// `coworkctl ui`: start the UI if it is off (choosing and writing a
    /// port the first time), make a new token on `reset`, and mint a
    /// one-time code.
    pub async fn open(&self, reset: bool) -> Result<Opened, UiError> {
        let mut running = self.running.lock().await;
        let (mut started, mut port_written) = (false, false);
        if running.is_none() {
            let configured = Config::load(&self.paths.config_file())?.ui.port;
            let (listener, port) = match configured {
                Some(port) => (self.bind(port).await?, port),
                None => {
                    let listener = match self.bind(config::UI_DEFAULT_PORT).await {
                        Ok(l) => l,
                        Err(_) => self.bind(0).await?,
                    };
                    let port = listener
                        .local_addr()
                        .map_err(|source| self.bind_error(0, source))?
                        .port();
                    self.write_port(port)?;
                    port_written = true;
                    (listener, port)
                }
            };
            *running = Some(self.serve(listener, port)?);
            started = true;
        }
        let Some(gate) = running.as_ref() else {
            unreachable!("started above");
        };
        if reset {
            let token = self.new_token()?;
            lock(gate).set_token(token);
        }
        let code = cowork_proto::secret::random_key("code").map_err(|source| UiError::File {
            what: "read",
            path: "/dev/urandom".into(),
            source,
        })?;
        let mut g = lock(gate);
        g.mint(code.clone(), Instant::now());
        let origin = g.origin();
        Ok(Opened {
            url: format!("{origin}/#code={code}"),
            port: g.port(),
            started,
            port_written,
            code_expires: SystemTime::now() + gate::CODE_TTL,
            origin,
        })
    }

    async fn bind(&self, port: u16) -> Result<TcpListener, UiError> {
        TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|source| self.bind_error(port, source))
    }

    fn bind_error(&self, port: u16, source: std::io::Error) -> UiError {
        UiError::Bind {
            port,
            config: self.paths.config_file().display().to_string(),
            source,
        }
    }

    fn serve(&self, listener: TcpListener, port: u16) -> Result<Arc<Mutex<Gate>>, UiError> {
        let gate = Arc::new(Mutex::new(Gate::new(port, self.token()?)));
        let web = Arc::new(Web {
            gate: gate.clone(),
            upstream: Upstream::new(self.paths.public_socket()),
        });
        tracing::info!(port, "web UI listening on 127.0.0.1");
        tokio::spawn(serve(listener, web, self.shutdown.clone()));
        Ok(gate)
    }

    /// The per-install token, made the first time.
    fn token(&self) -> Result<String, UiError> {
        let path = self.paths.ui_token_file();
        match std::fs::read_to_string(&path) {
            Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_owned()),
            Ok(_) => self.new_token(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.new_token(),
            Err(source) => Err(UiError::File {
                what: "read",
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// A fresh token, written (0600) before it is used.
    fn new_token(&self) -> Result<String, UiError> {
        let path = self.paths.ui_token_file();
        let token =
            cowork_proto::secret::random_key("cowork-ui").map_err(|source| UiError::File {
                what: "read",
                path: "/dev/urandom".into(),
                source,
            })?;
        write_atomically(&path, token.as_bytes(), 0o600).map_err(|source| UiError::File {
            what: "write",
            path: path.display().to_string(),
            source,
        })?;
        Ok(token)
    }

    /// `[ui] port = port` into config.toml, the rest of it kept.
    fn write_port(&self, port: u16) -> Result<(), UiError> {
        let path = self.paths.config_file();
        let err = |what, source| UiError::File {
            what,
            path: path.display().to_string(),
            source,
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(err("read", e)),
        };
        let mode = std::fs::metadata(&path)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap_or(0o600);
        write_atomically(&path, config::with_ui_port(&text, port).as_bytes(), mode)
            .map_err(|e| err("write", e))
    }
}

fn lock(gate: &Mutex<Gate>) -> std::sync::MutexGuard<'_, Gate> {
    gate.lock().unwrap_or_else(|e| e.into_inner())
}

/// Write `bytes` to a temporary file beside `path` and rename it over
/// `path`: a reader (config live reload) never sees half a file.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// What every connection's requests are served with.
struct Web {
    gate: Arc<Mutex<Gate>>,
    /// HTTP/2 to coworkd's own public socket.
    upstream: Upstream<Body>,
}

/// Accept connections until `shutdown`, one task each; then let open
/// calls finish (as the socket server does).
async fn serve(listener: TcpListener, web: Arc<Web>, shutdown: CancellationToken) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => match a {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "web UI accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let (web, shutdown) = (web.clone(), shutdown.clone());
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let web = web.clone();
                async move { Ok::<_, std::convert::Infallible>(web.handle(req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => if let Err(e) = res {
                    tracing::debug!(error = %e, "web UI connection ended with an error");
                },
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    let drain = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(cowork_proto::uds::DRAIN_TIMEOUT, drain).await;
}

impl Web {
    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let h = req.headers();
        let cookie = h
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("; ");
        let path = req.uri().path().to_owned();
        let facts = Facts {
            method: req.method(),
            path: &path,
            host: h.get(header::HOST).and_then(|v| v.to_str().ok()),
            origin: h.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
            cookie: Some(cookie.as_str()).filter(|c| !c.is_empty()),
        };
        let access = lock(&self.gate).check(&facts);
        let resp = match access {
            Err(why) => {
                tracing::warn!(%path, reason = %why, "web UI request refused");
                refused(&why)
            }
            Ok(Access::Asset) => assets::response(
                &path,
                req.method() == Method::HEAD,
                req.headers()
                    .get(header::IF_NONE_MATCH)
                    .and_then(|v| v.to_str().ok()),
            ),
            Ok(Access::Session) => self.session(req).await,
            Ok(Access::Call) => self.call(req).await,
        };
        harden(resp)
    }

    /// Trade the one-time code in the body for the cookie.
    async fn session(&self, req: Request<Incoming>) -> Response<Body> {
        let body = http_body_util::Limited::new(req.into_body(), MAX_CODE_BODY);
        let code = match body.collect().await {
            Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
            Err(_) => return refused(&Refusal::Code),
        };
        let cookie = lock(&self.gate).redeem(&code, Instant::now());
        match cookie.map(|c| HeaderValue::from_str(&c)) {
            Ok(Ok(v)) => {
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                r.headers_mut().insert(header::SET_COOKIE, v);
                r
            }
            Ok(Err(_)) => refused(&Refusal::Code),
            Err(why) => refused(&why),
        }
    }

    /// A gRPC-Web call: translated by tonic-web, sent to the public socket.
    async fn call(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let web = self.clone();
        let inner = tower::service_fn(move |req: Request<Body>| {
            let web = web.clone();
            async move { Ok::<_, std::convert::Infallible>(web.forward(req).await) }
        });
        let mut svc = tonic_web::GrpcWebLayer::new().layer(inner);
        match svc.call(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }

    async fn forward(&self, req: Request<Body>) -> Response<Body> {
        let (mut parts, body) = req.into_parts();
        parts.headers = forwarded(&parts.headers);
        match absolute_uri(&parts.uri) {
            Ok(u) => parts.uri = u,
            Err(e) => {
                return status_response(tonic::Status::invalid_argument(format!("bad path: {e}")))
            }
        }
        match self.upstream.send(Request::from_parts(parts, body)).await {
            Ok(resp) => resp.map(Body::new),
            Err(why) => status_response(tonic::Status::unavailable(format!("coworkd: {why}"))),
        }
    }
}

/// The headers of a browser's request the services may see.
fn forwarded(from: &HeaderMap) -> HeaderMap {
    let mut to = HeaderMap::new();
    for name in FORWARDED {
        for v in from.get_all(name) {
            to.append(name, v.clone());
        }
    }
    to
}

/// A refusal as plain text (the page shows it as it is).
fn refused(why: &Refusal) -> Response<Body> {
    let mut r = Response::new(Body::new(http_body_util::Full::new(bytes::Bytes::from(
        why.to_string(),
    ))));
    *r.status_mut() = why.status();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Headers on every response: nothing may frame, sniff or refer; nothing
/// is cached but the static files; and no CORS header, ever.
fn harden(mut r: Response<Body>) -> Response<Body> {
    let h = r.headers_mut();
    for (k, v) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-resource-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
        ("content-security-policy", assets::CSP),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_and_the_browser_headers_stay_in_coworkd() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("cookie", "cowork_ui=secret"),
            ("origin", "http://127.0.0.1:7737"),
            ("user-agent", "Chromium"),
            ("content-type", "application/grpc"),
            ("grpc-timeout", "5S"),
            ("cowork-worker", "capture"),
        ] {
            h.insert(k, HeaderValue::from_static(v));
        }
        let f = forwarded(&h);
        assert_eq!(f.len(), 3);
        assert!(f.get("cookie").is_none() && f.get("origin").is_none());
        assert_eq!(f["grpc-timeout"], "5S");
    }

    #[test]
    fn responses_are_hardened_and_never_carry_cors() {
        let r = harden(refused(&Refusal::NotSignedIn));
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert!(r
            .headers()
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-")));
    }
}
