//! The gateway's HTTP side: a hyper HTTP/1.1 server on 127.0.0.1, one task
//! per connection, that applies `policy` and forwards by model id to an
//! engine or a cloud provider, streaming the answer through unchanged.

use super::conn;
use super::policy::{self, Route, Upstream, Upstreams};
use super::store;
use crate::config::AgentsConfig;
use crate::db::Db;
use crate::llm::client::{self, ChatTarget, Transport};
use crate::llm::engines::{ApiFamily, Health};
use crate::llm::managed::sessions::Sessions;
use crate::llm::tier::TIERS;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The credential-store name of the gateway's API key.
pub const KEY_SECRET: &str = "gateway-api-key";
/// How long the model table is trusted before engines are probed again
/// (a miss probes at once).
const ROUTES_TTL: Duration = Duration::from_secs(10);
/// How long the trusted host list is kept before config.toml is read again.
const TRUSTED_TTL: Duration = Duration::from_secs(2);

type Body = BoxBody<Bytes, std::io::Error>;

/// Why the gateway could not be turned on.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The port is taken or not allowed.
    #[error("cannot listen on 127.0.0.1:{port}: {reason}")]
    Listen {
        /// The port.
        port: u16,
        /// Why.
        reason: String,
    },
    /// The credential store failed.
    #[error("the API key: {0}")]
    Key(String),
    /// cowork.db failed.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

/// What `gateway status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Turned on by the person.
    pub enabled: bool,
    /// The port (set or default).
    pub port: u16,
    /// Listening now.
    pub listening: bool,
    /// Why not listening although enabled.
    pub error: String,
    /// Requests served since start.
    pub requests: u64,
}

struct Listening {
    port: u16,
    stop: CancellationToken,
}

struct Inner {
    db: Db,
    config: PathBuf,
    /// Cloud providers' TLS client, or why there is none (local engines
    /// are dialled per call at their checked address).
    client: Result<reqwest::Client, String>,
    shutdown: CancellationToken,
    listening: Mutex<Option<Listening>>,
    error: Mutex<String>,
    requests: AtomicU64,
    key: Mutex<Option<String>>,
    routes: tokio::sync::Mutex<Option<(Instant, Upstreams)>>,
    trusted: Mutex<Option<(Instant, Vec<String>)>>,
    sessions: Sessions,
}

/// The gateway (cheap to clone).
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl Gateway {
    /// A gateway keeping its settings in `db`, reading `[agents]` from
    /// `config`, serving the probed engines, the cloud tiers and our
    /// `sessions`, stopping with `shutdown`.
    pub fn new(db: Db, config: PathBuf, shutdown: CancellationToken, sessions: Sessions) -> Self {
        // Cloud providers only; redirects are never followed (no client,
        // no cloud: a default one would follow them).
        let client = client::cloud_client();
        Self {
            inner: Arc::new(Inner {
                db,
                config,
                client,
                shutdown,
                listening: Mutex::new(None),
                error: Mutex::new(String::new()),
                requests: AtomicU64::new(0),
                key: Mutex::new(None),
                routes: tokio::sync::Mutex::new(None),
                trusted: Mutex::new(None),
                sessions,
            }),
        }
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start listening if the stored settings say so (at boot).
    pub async fn restore(&self) {
        match self.inner.db.read(store::get).await {
            Ok(s) if s.enabled => {
                if let Err(e) = self.listen(s.port).await {
                    tracing::warn!(error = %e, "gateway could not start");
                    *Self::lock(&self.inner.error) = e.to_string();
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "gateway settings unreadable"),
        }
    }

    /// Turn on (on `port`, or the stored one) and remember it.
    pub async fn enable(&self, port: Option<u16>) -> Result<Status, GatewayError> {
        let mut s = self.inner.db.read(store::get).await?;
        if let Some(p) = port {
            s.port = p;
        }
        s.enabled = true;
        self.key(false)?;
        let result = self.listen(s.port).await;
        let saved = s.clone();
        self.inner.db.write(move |c| store::put(c, &saved)).await?;
        match result {
            Ok(()) => {
                Self::lock(&self.inner.error).clear();
                Ok(self.status().await?)
            }
            Err(e) => {
                *Self::lock(&self.inner.error) = e.to_string();
                Err(e)
            }
        }
    }

    /// Turn off and remember it.
    pub async fn disable(&self) -> Result<Status, GatewayError> {
        let mut s = self.inner.db.read(store::get).await?;
        s.enabled = false;
        self.inner.db.write(move |c| store::put(c, &s)).await?;
        if let Some(l) = Self::lock(&self.inner.listening).take() {
            l.stop.cancel();
        }
        Self::lock(&self.inner.error).clear();
        self.status().await
    }

    /// Where it stands.
    pub async fn status(&self) -> Result<Status, GatewayError> {
        let s = self.inner.db.read(store::get).await?;
        let listening = Self::lock(&self.inner.listening).as_ref().map(|l| l.port);
        Ok(Status {
            enabled: s.enabled,
            port: listening.unwrap_or(s.port),
            listening: listening.is_some(),
            error: Self::lock(&self.inner.error).clone(),
            requests: self.inner.requests.load(Ordering::Relaxed),
        })
    }

    /// The API key, generated into the credential store on first use (or
    /// when `rotate`).
    pub fn key(&self, rotate: bool) -> Result<String, GatewayError> {
        let mut cached = Self::lock(&self.inner.key);
        if !rotate {
            if let Some(k) = cached.as_ref() {
                return Ok(k.clone());
            }
            if let Some(k) =
                crate::secrets::get(KEY_SECRET).map_err(|e| GatewayError::Key(e.to_string()))?
            {
                *cached = Some(k.clone());
                return Ok(k);
            }
        }
        let k = new_key().map_err(|e| GatewayError::Key(e.to_string()))?;
        crate::secrets::put(KEY_SECRET, &k).map_err(|e| GatewayError::Key(e.to_string()))?;
        *cached = Some(k.clone());
        Ok(k)
    }

    async fn listen(&self, port: u16) -> Result<(), GatewayError> {
        if Self::lock(&self.inner.listening)
            .as_ref()
            .is_some_and(|l| l.port == port)
        {
            return Ok(());
        }
        let listen_err = |reason: String| GatewayError::Listen { port, reason };
        if port == 0 {
            return Err(listen_err("give a port from 1 to 65535".into()));
        }
        if !policy::port_is_free_of_engines(port) {
            return Err(listen_err(
                "that is a local engine's default port (or its +1 companion)".into(),
            ));
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| listen_err(e.to_string()))?;
        let stop = self.inner.shutdown.child_token();
        if let Some(old) = Self::lock(&self.inner.listening).replace(Listening {
            port,
            stop: stop.clone(),
        }) {
            old.stop.cancel();
        }
        tracing::info!(port, "gateway listening on 127.0.0.1");
        let me = self.clone();
        let handler: conn::Handler<Body> = Arc::new(move |req| {
            let me = me.clone();
            Box::pin(async move { me.handle(req, port).await })
        });
        tokio::spawn(async move {
            conn::serve(listener, stop, handler, "gateway").await;
            tracing::info!(port, "gateway stopped");
        });
        Ok(())
    }

    /// Every model served, probing the engines when the table is stale.
    pub async fn upstreams(&self, fresh: bool) -> Upstreams {
        let mut g = self.inner.routes.lock().await;
        if let Some((at, u)) = g.as_ref() {
            if !fresh && at.elapsed() < ROUTES_TTL {
                return u.clone();
            }
        }
        let u = self.discover().await;
        *g = Some((Instant::now(), u.clone()));
        u
    }

    async fn discover(&self) -> Upstreams {
        let Ok(cfg) = AgentsConfig::load(&self.inner.config) else {
            return Upstreams::default();
        };
        let probed = crate::llm::probe::probe_all(cfg.instances()).await;
        // Our sessions first: an id both serve goes to the session.
        let mut out: Vec<Upstream> = self
            .inner
            .sessions
            .list()
            .into_iter()
            .map(|i| Upstream {
                id: i.session.alias.clone(),
                owner: i.session.engine_key(),
                base_url: i.session.base_url(),
                upstream_model: i.session.alias.clone(),
                api_key: None,
                session: Some(i.session.id),
            })
            .collect();
        for p in probed.into_iter().filter(|p| p.health == Health::Up) {
            for m in &p.models {
                out.push(Upstream {
                    id: m.clone(),
                    owner: p.instance.key.clone(),
                    base_url: policy::openai_base(&p.instance.base_url, p.instance.api),
                    upstream_model: m.clone(),
                    api_key: None,
                    session: None,
                });
            }
        }
        for r in cfg.cloud_here().unwrap_or_default() {
            for tier in TIERS {
                if let Some(model) = tier
                    .model_id()
                    .strip_prefix(r.provider.id)
                    .and_then(|m| m.strip_prefix('/'))
                {
                    out.push(Upstream {
                        id: tier.model_id().into(),
                        owner: r.provider.id.into(),
                        base_url: r.base_url.trim_end_matches('/').into(),
                        upstream_model: model.into(),
                        api_key: Some(r.api_key.clone()),
                        session: None,
                    });
                }
            }
        }
        Upstreams(out)
    }

    /// `[agents.gateway] trusted_hosts`, re-read at most every 2 s.
    fn trusted_hosts(&self) -> Vec<String> {
        let mut g = Self::lock(&self.inner.trusted);
        match g.as_ref() {
            Some((at, hosts)) if at.elapsed() < TRUSTED_TTL => hosts.clone(),
            _ => {
                let hosts = AgentsConfig::load(&self.inner.config)
                    .map(|c| c.gateway.trusted_hosts)
                    .unwrap_or_default();
                *g = Some((Instant::now(), hosts.clone()));
                hosts
            }
        }
    }

    async fn handle(&self, req: Request<Incoming>, port: u16) -> Response<Body> {
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let host = req
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok());
        if !policy::host_allowed(host, port, &self.trusted_hosts()) {
            return error(
                StatusCode::FORBIDDEN,
                &format!(
                    "Host {:?} is not allowed: this API answers only to 127.0.0.1:{port} or \
                     localhost:{port} (DNS rebinding protection)",
                    host.unwrap_or("")
                ),
                "forbidden",
                "host_not_allowed",
            );
        }
        let route = policy::route(req.method().as_str(), req.uri().path());
        if route == Route::Preflight {
            return respond(StatusCode::NO_CONTENT, "text/plain", Bytes::new());
        }
        // Everything else, the docs included, needs the key: a web page
        // must not even learn that Cowork runs here.
        let header = |n: &str| req.headers().get(n).and_then(|h| h.to_str().ok());
        let key = match self.key(false) {
            Ok(k) => k,
            Err(e) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &e.to_string(),
                    "server_error",
                    "no_key",
                )
            }
        };
        if !policy::authorized(header("authorization"), header("x-api-key"), &key) {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong API key: send `Authorization: Bearer <key>` or `X-Api-Key: <key>` \
                 (the key: `coworkctl gateway key`)",
                "invalid_request_error",
                "invalid_api_key",
            );
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer realm=\"cowork\""),
            );
            return r;
        }
        match route {
            Route::OpenApi => {
                let doc = policy::openapi(&format!("http://127.0.0.1:{port}"));
                respond(StatusCode::OK, "application/json", doc.to_string().into())
            }
            Route::Docs => {
                let page = format!(
                    "<!doctype html><title>Cowork local API</title><p>OpenAI-compatible API at \
                     <code>http://127.0.0.1:{port}/v1</code>. Spec: <a href=\"/openapi.json\">\
                     /openapi.json</a>. Key: <code>coworkctl gateway key</code>.</p>"
                );
                respond(StatusCode::OK, "text/html; charset=utf-8", page.into())
            }
            Route::NotFound => error(
                StatusCode::NOT_FOUND,
                "no such endpoint",
                "invalid_request_error",
                "not_found",
            ),
            Route::MethodNotAllowed => {
                let mut r = error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method not allowed on this endpoint",
                    "invalid_request_error",
                    "method_not_allowed",
                );
                let allow = if req.uri().path().starts_with("/v1/models")
                    || !req.uri().path().starts_with("/v1/")
                {
                    "GET, HEAD, OPTIONS"
                } else {
                    "POST, OPTIONS"
                };
                r.headers_mut().insert(
                    hyper::header::ALLOW,
                    hyper::header::HeaderValue::from_static(allow),
                );
                r
            }
            Route::Models => {
                let u = self.upstreams(false).await;
                let data: Vec<_> = u
                    .0
                    .iter()
                    .map(|u| serde_json::json!({"id": u.id, "object": "model", "created": 0, "owned_by": u.owner}))
                    .collect();
                let body = serde_json::json!({"object": "list", "data": data});
                respond(StatusCode::OK, "application/json", body.to_string().into())
            }
            Route::Forward(path) => self.forward(req, path).await,
            Route::Preflight => respond(StatusCode::NO_CONTENT, "text/plain", Bytes::new()),
        }
    }

    async fn forward(&self, req: Request<Incoming>, path: &str) -> Response<Body> {
        let declared = req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > policy::MAX_BODY as u64) {
            return too_large();
        }
        let read = tokio::time::timeout(
            conn::BODY_TIMEOUT,
            Limited::new(req.into_body(), policy::MAX_BODY).collect(),
        );
        let Ok(read) = read.await else {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "the request body did not arrive within {:?}",
                    conn::BODY_TIMEOUT
                ),
                "invalid_request_error",
                "body_timeout",
            );
        };
        let body = match read {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return match e.downcast_ref::<http_body_util::LengthLimitError>() {
                    Some(_) => too_large(),
                    None => error(
                        StatusCode::BAD_REQUEST,
                        &e.to_string(),
                        "invalid_request_error",
                        "bad_body",
                    ),
                }
            }
        };
        let mut json: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            Ok(_) | Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "the body must be a JSON object",
                    "invalid_request_error",
                    "bad_json",
                )
            }
        };
        let Some(model) = json
            .get("model")
            .and_then(|m| m.as_str())
            .map(str::to_owned)
        else {
            return error(
                StatusCode::BAD_REQUEST,
                "`model` is required",
                "invalid_request_error",
                "missing_model",
            );
        };
        let up = match self.upstreams(false).await.find(&model).cloned() {
            Some(u) => Some(u),
            None => self.upstreams(true).await.find(&model).cloned(),
        };
        let Some(up) = up else {
            return error(
                StatusCode::NOT_FOUND,
                &format!("model {model:?} is not served here; GET /v1/models lists the models"),
                "invalid_request_error",
                "model_not_found",
            );
        };
        let body = if up.upstream_model != model {
            json["model"] = up.upstream_model.clone().into();
            Bytes::from(json.to_string())
        } else {
            body
        };
        let mut up = up;
        let lease = match &up.session {
            None => None,
            Some(id) => match self.inner.sessions.lease_id(id).await {
                Ok(l) => {
                    up.base_url = l.base_url.trim_end_matches('/').to_owned();
                    Some(Arc::new(l))
                }
                Err(e) => {
                    return error(
                        StatusCode::BAD_GATEWAY,
                        &format!("{} cannot serve: {e}", up.owner),
                        "server_error",
                        "upstream_unreachable",
                    )
                }
            },
        };
        let target = ChatTarget {
            name: up.owner.clone(),
            base_url: up.base_url.clone(),
            api: ApiFamily::OpenAi,
            model: up.upstream_model.clone(),
            transport: match (&up.api_key, &self.inner.client) {
                (None, _) => Transport::Local { session: lease },
                (Some(k), Ok(c)) => Transport::Cloud {
                    client: c.clone(),
                    api_key: k.clone(),
                },
                (Some(_), Err(e)) => {
                    return error(
                        StatusCode::BAD_GATEWAY,
                        &format!("{} ({}) cannot be reached: {e}", up.owner, up.base_url),
                        "server_error",
                        "upstream_unreachable",
                    )
                }
            },
        };
        let url = format!("{}{path}", up.base_url);
        let reply =
            match client::post(&target, &url, String::from_utf8_lossy(&body).into_owned()).await {
                Ok(r) => r,
                Err(e) => {
                    return error(
                        StatusCode::BAD_GATEWAY,
                        &format!("{} ({}) did not answer: {e}", up.owner, up.base_url),
                        "server_error",
                        "upstream_unreachable",
                    )
                }
            };
        if let Some(why) = policy::refuse_upstream_status(reply.status, reply.location.as_deref()) {
            return error(
                StatusCode::BAD_GATEWAY,
                &format!("{} ({}) {why}", up.owner, up.base_url),
                "server_error",
                "upstream_redirect",
            );
        }
        let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
        let ctype = reply
            .content_type
            .clone()
            .unwrap_or_else(|| "application/json".into());
        let mut upstream = reply.body;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(16);
        tokio::spawn(async move {
            // A session is in use until its answer has been passed on.
            let _in_use = target;
            while let Some(chunk) = upstream.next().await {
                let frame = chunk.map(Frame::data).map_err(std::io::Error::other);
                let failed = frame.is_err();
                if tx.send(frame).await.is_err() || failed {
                    // The client left (dropping `upstream` closes the
                    // engine's connection, so it stops), or the engine did.
                    return;
                }
            }
        });
        let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        with_cors(
            Response::builder()
                .status(status)
                .header(hyper::header::CONTENT_TYPE, ctype)
                .header(hyper::header::CACHE_CONTROL, "no-cache"),
        )
        .body(BodyExt::boxed(body))
        .unwrap_or_else(|_| Response::new(empty()))
    }
}

fn too_large() -> Response<Body> {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("the request body is over {} bytes", policy::MAX_BODY),
        "invalid_request_error",
        "body_too_large",
    )
}

fn with_cors(mut b: hyper::http::response::Builder) -> hyper::http::response::Builder {
    for (k, v) in policy::CORS {
        b = b.header(k, v);
    }
    b
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

fn respond(status: StatusCode, ctype: &str, body: Bytes) -> Response<Body> {
    with_cors(
        Response::builder()
            .status(status)
            .header(hyper::header::CONTENT_TYPE, ctype),
    )
    .body(Full::new(body).map_err(|never| match never {}).boxed())
    .unwrap_or_else(|_| Response::new(empty()))
}

fn error(status: StatusCode, message: &str, kind: &str, code: &str) -> Response<Body> {
    respond(
        status,
        "application/json",
        policy::error_body(message, kind, code).into(),
    )
}

/// A new random key: `cowork-` and 48 hex digits from the OS's CSPRNG.
fn new_key() -> std::io::Result<String> {
    crate::util::random_key("cowork")
}
