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
use gate::{Access, Credentials, Facts, Gate, Refusal};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tower::{Layer, Service};

/// Largest `/session` body (a one-time code).
const MAX_CODE_BODY: usize = 1024;
/// How long a connection may take to send a request's headers, and the
/// page its one-time code.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; one more is closed at once (a browser opens
/// at most 6 per host; this bounds what any local process can hold).
pub const MAX_CONNECTIONS: usize = 64;
/// Ports the first `coworkctl ui` tries, in order, before one the OS gives.
pub const PORTS_TRIED: std::ops::RangeInclusive<u16> =
    config::UI_DEFAULT_PORT..=config::UI_DEFAULT_PORT + 9;
/// Request headers passed on to the services; the rest (the cookie and
/// the key above all, and what the browser says about itself) stay in
/// coworkd.
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
    /// A file of the UI's (the credentials, config.toml, the opener) cannot
    /// be read or written.
    #[error("cannot {what} {path}: {source}")]
    File {
        /// Read or write.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// config.toml is invalid, or `[ui] port` cannot be added to it.
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
    /// A page (0600) that sends a browser on to `url`: what to open, so the
    /// code is never on a command line other users can read.
    pub open_file: std::path::PathBuf,
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
            *running = Some(self.serve(listener, port).await?);
        }
        Ok(())
    }

    /// `coworkctl ui`: start the UI if it is off (choosing and writing a
    /// port the first time), make new credentials on `reset`, and mint a
    /// one-time code.
    pub async fn open(&self, reset: bool) -> Result<Opened, UiError> {
        let mut running = self.running.lock().await;
        let (started, port_written, gate) = match running.as_ref() {
            Some(gate) => (false, false, gate.clone()),
            None => {
                let config = self.paths.config_file();
                let configured = blocking(move || Ok(Config::load(&config)?.ui.port)).await?;
                let (listener, port, written) = match configured {
                    Some(port) => (self.bind(port).await?, port, false),
                    None => {
                        let listener = self.bind_first_free().await?;
                        let port = listener
                            .local_addr()
                            .map_err(|source| self.bind_error(0, source))?
                            .port();
                        let config = self.paths.config_file();
                        blocking(move || write_port(&config, port)).await?;
                        (listener, port, true)
                    }
                };
                let gate = self.serve(listener, port).await?;
                *running = Some(gate.clone());
                (true, written, gate)
            }
        };
        if reset {
            let path = self.paths.ui_token_file();
            let creds = blocking(move || new_credentials(&path)).await?;
            lock(&gate).set_credentials(creds);
        }
        let code = random("code")?;
        let (origin, port) = {
            let mut g = lock(&gate);
            g.mint(code.clone(), Instant::now());
            (g.origin(), g.port())
        };
        let url = format!("{origin}/#code={code}");
        let open_file = self.paths.run_dir.join("ui-open.html");
        let (page, file) = (opener_page(&url), open_file.clone());
        blocking(move || {
            cowork_proto::files::write_atomically(&file, page.as_bytes(), 0o600).map_err(|source| {
                UiError::File {
                    what: "write",
                    path: file.display().to_string(),
                    source,
                }
            })
        })
        .await?;
        Ok(Opened {
            url,
            port,
            started,
            port_written,
            code_expires: SystemTime::now() + gate::CODE_TTL,
            origin,
            open_file,
        })
    }

    async fn bind(&self, port: u16) -> Result<TcpListener, UiError> {
        TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|source| self.bind_error(port, source))
    }

    /// The first of [`PORTS_TRIED`] that is free, else one the OS gives.
    async fn bind_first_free(&self) -> Result<TcpListener, UiError> {
        for port in PORTS_TRIED {
            if let Ok(l) = self.bind(port).await {
                return Ok(l);
            }
        }
        self.bind(0).await
    }

    fn bind_error(&self, port: u16, source: std::io::Error) -> UiError {
        UiError::Bind {
            port,
            config: self.paths.config_file().display().to_string(),
            source,
        }
    }

    async fn serve(&self, listener: TcpListener, port: u16) -> Result<Arc<Mutex<Gate>>, UiError> {
        let path = self.paths.ui_token_file();
        let creds = blocking(move || credentials(&path)).await?;
        let gate = Arc::new(Mutex::new(Gate::new(port, creds)));
        tracing::info!(port, "web UI listening on 127.0.0.1");
        tokio::spawn(serve(
            listener,
            gate.clone(),
            self.paths.public_socket(),
            self.shutdown.clone(),
        ));
        Ok(gate)
    }
}

/// Run file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, UiError> + Send + 'static,
) -> Result<T, UiError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(UiError::File {
            what: "finish work on",
            path: "a blocking thread".into(),
            source: std::io::Error::other(e.to_string()),
        })
    })
}

/// A fresh random secret, `<prefix>-` and 48 hex digits.
fn random(prefix: &str) -> Result<String, UiError> {
    cowork_proto::secret::random_key(prefix).map_err(|source| UiError::File {
        what: "read",
        path: "/dev/urandom".into(),
        source,
    })
}

/// The install's credentials, made the first time (and again when the
/// file is damaged); a file others can read is made private first.
fn credentials(path: &Path) -> Result<Credentials, UiError> {
    match std::fs::read_to_string(path) {
        Ok(text) => match Credentials::from_text(&text) {
            Some(c) => {
                let private = std::fs::Permissions::from_mode(0o600);
                std::fs::set_permissions(path, private).map_err(|source| UiError::File {
                    what: "make private",
                    path: path.display().to_string(),
                    source,
                })?;
                Ok(c)
            }
            None => new_credentials(path),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => new_credentials(path),
        Err(source) => Err(UiError::File {
            what: "read",
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Fresh credentials, written (0600) before they are used.
fn new_credentials(path: &Path) -> Result<Credentials, UiError> {
    let creds = Credentials {
        cookie: random("cowork-ui")?,
        key: random("cowork-ui-key")?,
    };
    cowork_proto::files::write_atomically(path, creds.to_text().as_bytes(), 0o600).map_err(
        |source| UiError::File {
            what: "write",
            path: path.display().to_string(),
            source,
        },
    )?;
    Ok(creds)
}

/// `[ui] port = port` into config.toml, the rest of it kept; refused (with
/// what to do) when the result would not read back as that port.
fn write_port(path: &Path, port: u16) -> Result<(), UiError> {
    let err = |what, source| UiError::File {
        what,
        path: path.display().to_string(),
        source,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(err("read", e)),
    };
    let new = config::with_ui_port(&text, port);
    let origin = path.display().to_string();
    if Config::parse(&new, &origin)?.ui.port != Some(port) {
        return Err(UiError::Config(ConfigError::Invalid {
            path: origin,
            message: format!("cannot add `[ui] port` to it by itself: add `[ui]` with `port = {port}` and run `coworkctl ui` again"),
        }));
    }
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    cowork_proto::files::write_atomically(path, new.as_bytes(), mode).map_err(|e| err("write", e))
}

/// A page that sends the browser on to `url` (what `coworkctl ui` opens).
fn opener_page(url: &str) -> String {
    format!(
        "<!doctype html><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"0;url={url}\">\
         <title>Cowork</title><p><a href=\"{url}\">Open Cowork</a></p>\n"
    )
}

fn lock(gate: &Mutex<Gate>) -> std::sync::MutexGuard<'_, Gate> {
    gate.lock().unwrap_or_else(|e| e.into_inner())
}

/// What one browser connection's requests are served with.
struct Web {
    gate: Arc<Mutex<Gate>>,
    /// HTTP/2 to coworkd's own public socket, one per browser connection
    /// (as the relay keeps one per client): a tab that stops reading its
    /// stream fills only its own windows.
    upstream: Upstream<Body>,
}

/// Accept connections until `shutdown`, one task each, at most
/// [`MAX_CONNECTIONS`]; then let open calls finish (as the socket server
/// does).
async fn serve(
    listener: TcpListener,
    gate: Arc<Mutex<Gate>>,
    socket: std::path::PathBuf,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
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
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                limit = MAX_CONNECTIONS,
                "web UI connection refused: too many open"
            );
            continue;
        };
        let web = Arc::new(Web {
            gate: gate.clone(),
            upstream: Upstream::new(socket.clone()),
        });
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _slot = slot;
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
            key: h.get(gate::KEY_HEADER).and_then(|v| v.to_str().ok()),
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

    /// Trade the one-time code in the body for the cookie (set) and the
    /// page's key (the body).
    async fn session(&self, req: Request<Incoming>) -> Response<Body> {
        let body = http_body_util::Limited::new(req.into_body(), MAX_CODE_BODY);
        let code = match tokio::time::timeout(HEADER_TIMEOUT, body.collect()).await {
            Ok(Ok(b)) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
            Ok(Err(e)) => return refused(&Refusal::BadRequest(format!("the code: {e}"))),
            Err(_) => return refused(&Refusal::BadRequest("the code came too slowly".into())),
        };
        let session = lock(&self.gate).redeem(&code, Instant::now());
        match session {
            Ok(s) => match HeaderValue::from_str(&s.set_cookie) {
                Ok(v) => {
                    let mut r = Response::new(Body::new(http_body_util::Full::new(
                        bytes::Bytes::from(s.key),
                    )));
                    r.headers_mut().insert(header::SET_COOKIE, v);
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                    r
                }
                Err(e) => refused(&Refusal::BadRequest(format!("the cookie: {e}"))),
            },
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
        assert_eq!(r.status(), http::StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert!(r
            .headers()
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-")));
    }
}
