//! The router: every call on the public socket is either served by coworkd
//! itself or relayed, as an untouched HTTP/2 stream, to the worker that
//! serves its service. Messages are never decoded here: a new method or a
//! streaming call needs no code in this module.

use crate::config::Config;
use crate::route::{self, Route, RouteError};
use crate::state::{WorkerName, WorkerState};
use crate::supervisor::Supervisor;
use cowork_proto::grpc::{status_response, GRPC_TIMEOUT, WORKER_HEADER};
use cowork_proto::paths::CoworkPaths;
use cowork_proto::traces;
use cowork_proto::uds::{
    ConnectionScope, Handler, CONNECTION_WINDOW, MAX_FRAME, SEND_BUFFER, STREAM_WINDOW,
};
use http::{HeaderName, Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tonic::body::Body;
use tonic::Status;

/// How long a call waits for a worker that is `starting` (boot, restart)
/// before it fails with UNAVAILABLE: inside the 100 ms a call to a worker
/// that is not running may take, long enough to ride out a normal start.
pub const START_WAIT: Duration = Duration::from_millis(50);

/// One HTTP/2 connection to a socket, re-dialled when it closes (the
/// worker restarted). The relay keeps one per (client connection, worker),
/// so a client that stops reading its streams fills only its own
/// flow-control windows: every other client's calls to the same worker go
/// on (a shared connection would stall them all). The web UI keeps one to
/// coworkd's own public socket. `B` is the request body type.
pub struct Upstream<B> {
    socket: PathBuf,
    sender: tokio::sync::Mutex<Option<SendRequest<B>>>,
}

impl<B> Upstream<B>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// An upstream to `socket`, dialled at its first call.
    pub fn new(socket: PathBuf) -> Self {
        Self {
            socket,
            sender: tokio::sync::Mutex::new(None),
        }
    }

    /// The connection's sender, dialled when there is none (or it closed)
    /// or when `fresh`; true when this call dialled it.
    async fn sender(&self, fresh: bool) -> Result<(SendRequest<B>, bool), String> {
        let mut guard = self.sender.lock().await;
        if !fresh {
            if let Some(s) = guard.as_ref().filter(|s| !s.is_closed()) {
                return Ok((s.clone(), false));
            }
        }
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.socket.display()))?;
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(MAX_FRAME)
            .max_send_buf_size(SEND_BUFFER)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| {
                format!(
                    "HTTP/2 handshake with {} failed: {e}",
                    self.socket.display()
                )
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        *guard = Some(sender.clone());
        Ok((sender, true))
    }

    /// Send `req` (its URI absolute), dialling again once when the
    /// connection died before the request went out. The request that
    /// dials a connection lets HPACK index the per-call headers it carries
    /// ([`index_names`]).
    pub async fn send(&self, mut req: Request<B>) -> Result<Response<Incoming>, String> {
        let (mut sender, mut dialled) = self.sender(false).await?;
        if sender.ready().await.is_err() {
            (sender, dialled) = self.sender(true).await?;
        }
        if dialled {
            index_names(req.headers_mut());
        }
        match sender.try_send_request(req).await {
            Ok(resp) => Ok(resp),
            Err(mut e) => match e.take_message() {
                // Never sent (the connection died under us): dial again once.
                Some(mut req) => {
                    let (mut sender, _) = self.sender(true).await?;
                    index_names(req.headers_mut());
                    sender
                        .send_request(req)
                        .await
                        .map_err(|e| format!("relay failed: {e}"))
                }
                None => Err(format!("relay failed: {}", e.error())),
            },
        }
    }
}

/// The headers the relay writes with a value unique to each call:
/// `traceparent` to the worker, the caller's deadline left as
/// `grpc-timeout`, and `cowork-trace-id` back to the caller. They are sent
/// as never-indexed literals ([`traces::never_indexed`]): added to HPACK's
/// table, every call would push out the headers all calls repeat.
const PER_CALL: [HeaderName; 3] = [
    traces::TRACEPARENT,
    GRPC_TIMEOUT,
    traces::TRACE_ID_HEADER_NAME,
];

/// Let HPACK index the [`PER_CALL`] headers in `headers`, for one message
/// per HTTP/2 connection: the request that dialled the connection to the
/// worker, the first response with `cowork-trace-id` on a client's. Each
/// header it carries (name and that one value) then stays in the
/// connection's table, and every later call's never-indexed value refers
/// to its name by index instead of spelling it out (11 to 15 bytes fewer
/// to Huffman-code per header and call, at both ends: docs/BENCHMARKS.md,
/// "What traces cost"). A header that message lacks, or whose entry the
/// table later drops (pushed out by headers new on each call that a client
/// or worker sends), has its name spelled out as before.
fn index_names(headers: &mut http::HeaderMap) {
    for name in &PER_CALL {
        if let Some(v) = headers.get_mut(name) {
            v.set_sensitive(false);
        }
    }
}

/// True for the first caller to claim `flag` (which it then sets).
fn claim_once(flag: &AtomicBool) -> bool {
    !flag.load(Ordering::Relaxed) && !flag.swap(true, Ordering::Relaxed)
}

/// `uri` made absolute, as hyper's HTTP/2 client needs; only its path
/// (and query) matter on a socket.
pub fn absolute_uri(uri: &Uri) -> Result<Uri, http::Error> {
    let mut b = Uri::builder().scheme("http").authority("cowork.local");
    if let Some(pq) = uri.path_and_query() {
        b = b.path_and_query(pq.clone());
    }
    b.build()
}

/// Upstream connections by (client connection, worker).
type Upstreams = std::sync::Mutex<HashMap<(u64, WorkerName), Arc<Upstream<Incoming>>>>;

/// The public socket's request handler.
pub struct Relay {
    supervisor: Arc<Supervisor>,
    config: watch::Receiver<Config>,
    local: Handler,
    sockets: BTreeMap<WorkerName, PathBuf>,
    upstreams: Arc<Upstreams>,
    /// The tracer of relay spans; None when traces are off.
    tracer: Option<traces::Tracer>,
}

impl Relay {
    /// A relay to the workers of `paths`, with `local` serving coworkd's own
    /// services.
    pub fn new(
        supervisor: Arc<Supervisor>,
        config: watch::Receiver<Config>,
        paths: &CoworkPaths,
        local: Handler,
    ) -> Arc<Self> {
        let sockets = WorkerName::ALL
            .iter()
            .map(|w| (*w, paths.worker_socket(w.as_str())))
            .collect();
        Arc::new(Self {
            supervisor,
            config,
            local,
            sockets,
            upstreams: Arc::default(),
            tracer: traces::installed_tracer(),
        })
    }

    /// This relay as a server [`Handler`].
    pub fn handler(self: Arc<Self>) -> Handler {
        Arc::new(move |req| {
            let relay = self.clone();
            Box::pin(async move { relay.handle(req).await })
        })
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let header = req
            .headers()
            .get(WORKER_HEADER)
            .and_then(|v| v.to_str().ok());
        match route::route(req.uri().path(), header) {
            Ok(Route::Local) => (self.local)(req).await,
            Ok(Route::Worker(w)) => {
                // One trace per call: the caller's (`traceparent`), else a
                // new one. The worker continues it from this span; the
                // caller learns its id from `cowork-trace-id`.
                let mut span = traces::RelaySpan::start(
                    self.tracer.as_ref(),
                    w.as_str(),
                    req.uri().path(),
                    req.headers(),
                );
                let mut req = req;
                let id = span.inject(req.headers_mut());
                // The first `cowork-trace-id` on a client connection lets
                // HPACK index its name for the calls after it: the latch
                // of a connection none has yet, taken once the response
                // exists (a call given up before would waste it).
                let latch = req
                    .extensions()
                    .get::<ConnectionScope>()
                    .map(|s| &s.trace_names_indexed)
                    .filter(|l| id.is_some() && !l.load(Ordering::Relaxed))
                    .cloned();
                let mut resp = self.forward(w, req, &mut span).await;
                if let Some(id) = id {
                    resp.headers_mut().insert(traces::TRACE_ID_HEADER_NAME, id);
                    if latch.is_some_and(|l| claim_once(&l)) {
                        index_names(resp.headers_mut());
                    }
                }
                // The span lasts until the last message and trailers pass.
                traces::until_body_ends(resp, span)
            }
            Err(e @ RouteError::MissingWorker(_)) => {
                status_response(Status::invalid_argument(e.to_string()))
            }
            Err(e) => status_response(Status::unimplemented(e.to_string())),
        }
    }

    async fn forward(
        &self,
        w: WorkerName,
        req: Request<Incoming>,
        span: &mut traces::RelaySpan,
    ) -> Response<Body> {
        let arrived = Instant::now();
        let waited = self.wait_routable(w).await;
        // Time spent waiting for an on-demand (or restarting) worker.
        span.record_wait_ms(arrived.elapsed().as_millis() as u64);
        if let Err(why) = waited {
            return status_response(Status::unavailable(why));
        }
        let guard = self.supervisor.activity(w);
        let (mut parts, body) = req.into_parts();
        // The worker gets what is left of the caller's deadline.
        if let Some(total) = cowork_proto::grpc::header_timeout(&parts.headers) {
            let left = total.saturating_sub(arrived.elapsed());
            if left.is_zero() {
                return status_response(Status::deadline_exceeded(format!(
                    "deadline of {total:?} passed while {} was starting",
                    w.binary()
                )));
            }
            let millis = left.as_millis().clamp(1, 99_999_999);
            if let Ok(v) = http::HeaderValue::from_str(&format!("{millis}m")) {
                parts.headers.insert(GRPC_TIMEOUT, traces::never_indexed(v));
            }
        }
        match absolute_uri(&parts.uri) {
            Ok(u) => parts.uri = u,
            Err(e) => return status_response(Status::invalid_argument(format!("bad path: {e}"))),
        }
        match self.send(w, Request::from_parts(parts, body)).await {
            Ok(resp) => resp.map(move |b| {
                // The guard lives as long as the response body: a stream in
                // progress keeps the worker busy.
                Body::new(b.map_frame(move |f| {
                    let _busy = &guard;
                    f
                }))
            }),
            Err(why) => status_response(Status::unavailable(format!("{}: {why}", w.binary()))),
        }
    }

    /// The upstream connection of the client connection `req` came on.
    fn upstream(&self, w: WorkerName, req: &Request<Incoming>) -> Arc<Upstream<Incoming>> {
        let scope = req.extensions().get::<ConnectionScope>().cloned();
        let id = scope.as_ref().map_or(0, |s| s.id);
        let mut map = self.upstreams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = map.get(&(id, w)) {
            return u.clone();
        }
        let u = Arc::new(Upstream::new(self.sockets[&w].clone()));
        map.insert((id, w), u.clone());
        if let Some(scope) = scope {
            // The client hung up: its upstream connection goes when the
            // last of its calls is done with it.
            let upstreams = Arc::downgrade(&self.upstreams);
            tokio::spawn(async move {
                scope.closed.cancelled().await;
                if let Some(m) = upstreams.upgrade() {
                    m.lock().unwrap_or_else(|e| e.into_inner()).remove(&(id, w));
                }
            });
        }
        u
    }

    async fn send(
        &self,
        w: WorkerName,
        req: Request<Incoming>,
    ) -> Result<Response<Incoming>, String> {
        self.upstream(w, &req).send(req).await
    }

    /// Wait until `w` can take calls: an on-demand worker is started (also
    /// right after an idle stop), a starting one is given [`START_WAIT`];
    /// any other state fails at once with the reason.
    async fn wait_routable(&self, w: WorkerName) -> Result<(), String> {
        let mut rx = self.supervisor.watch(w);
        if rx.borrow_and_update().routable {
            return Ok(());
        }
        let sup = self.config.borrow().supervisor.clone();
        let limit = {
            let s = rx.borrow_and_update();
            if s.routable {
                return Ok(());
            }
            match s.state {
                WorkerState::Stopped if w.on_demand() => {
                    self.supervisor.demand(w);
                    sup.ready_timeout()
                }
                // An on-demand worker being stopped for idleness: wait for
                // the stop, then start it again.
                WorkerState::Running if w.on_demand() => sup.stop_grace() + sup.ready_timeout(),
                WorkerState::Starting => START_WAIT,
                _ => return Err(s.unavailable_message(Instant::now())),
            }
        };
        let wait = async {
            loop {
                if rx.changed().await.is_err() {
                    return Err("coworkd is shutting down".to_owned());
                }
                let s = rx.borrow_and_update();
                if s.routable {
                    return Ok(());
                }
                match s.state {
                    WorkerState::Stopped if w.on_demand() => self.supervisor.demand(w),
                    WorkerState::Restarting | WorkerState::Failed | WorkerState::Degraded => {
                        return Err(s.unavailable_message(Instant::now()))
                    }
                    _ => {}
                }
            }
        };
        match tokio::time::timeout(limit, wait).await {
            Ok(r) => r,
            Err(_) => Err(self
                .supervisor
                .snapshot(w)
                .unavailable_message(Instant::now())),
        }
    }
}
