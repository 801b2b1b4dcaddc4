//! gRPC over Unix domain sockets: bind with safe modes, serve with a peer
//! uid check on every connection, dial.
//!
//! Serving is hyper's HTTP/2 server driven directly (one task per
//! connection, graceful shutdown through a [`CancellationToken`]), so the
//! same loop serves tonic routes in the workers and the relaying router in
//! coworkd. We use tokio's listener rather than `interprocess`: on Unix it
//! gives `peer_cred()` directly, and the 0600 socket is never reachable by
//! others during its brief umask window because it is created inside a 0700
//! directory.

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tower::Service;

/// A boxed response future.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// What a server does with each request. Errors are gRPC statuses inside
/// the response, so the handler itself cannot fail.
pub type Handler = Arc<dyn Fn(Request<Incoming>) -> ResponseFuture + Send + Sync>;

/// HTTP/2 flow-control windows for every server and client connection:
/// large enough that relayed streams are not throttled by the extra hop.
pub const STREAM_WINDOW: u32 = 4 << 20;
/// Connection-level flow-control window.
pub const CONNECTION_WINDOW: u32 = 8 << 20;

/// Largest HTTP/2 frame we accept: big messages cross in fewer frames.
pub const MAX_FRAME: u32 = 1 << 20;
/// Bytes buffered per stream for sending before back-pressure applies.
pub const SEND_BUFFER: usize = 4 << 20;

/// How long a graceful shutdown waits for open calls before dropping them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The connection a request arrived on, in every request's extensions
/// (set by [`serve`]): a handler that keeps state per client connection
/// keys it by `id` and drops it when `closed` fires, after the connection
/// and every call on it have ended.
#[derive(Debug, Clone)]
pub struct ConnectionScope {
    /// Unique among this process's connections.
    pub id: u64,
    /// Cancelled when the connection is gone.
    pub closed: CancellationToken,
    /// Claimed by coworkd's relay for the one response on this connection
    /// whose `cowork-trace-id` HPACK may index (its name is sent as a
    /// table index after it).
    pub trace_names_indexed: Arc<AtomicBool>,
}

static NEXT_CONNECTION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Errors binding a socket.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another live process already serves this path.
    #[error("{0} is already served by another process")]
    InUse(PathBuf),
    /// The path exists and is not a socket: refuse to delete it.
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// Any other I/O failure.
    #[error("cannot bind {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// Bind a listening socket at `path` with mode 0600. A stale socket file
/// (nobody listening) is replaced; a live one is an error.
pub async fn bind(path: &Path) -> Result<UnixListener, BindError> {
    let io_err = |source| BindError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).await.is_ok() {
                return Err(BindError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(io_err)?;
        }
        Ok(_) => return Err(BindError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    let listener = UnixListener::bind(path).map_err(io_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_err)?;
    Ok(listener)
}

/// A [`Handler`] serving tonic routes.
pub fn routes_handler(routes: tonic::service::Routes) -> Handler {
    Arc::new(move |req: Request<Incoming>| {
        let mut routes = routes.clone();
        Box::pin(async move {
            match routes.call(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            }
        })
    })
}

/// Serve `handler` on `listener` until `shutdown` is cancelled, then drain
/// open calls for up to [`DRAIN_TIMEOUT`]. Each connection gets its own
/// task; a connection whose peer uid differs from ours gets
/// PERMISSION_DENIED on every call.
pub async fn serve(listener: UnixListener, handler: Handler, shutdown: CancellationToken) {
    let our_uid = nix::unistd::geteuid().as_raw();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let peer_uid = stream.peer_cred().map(|c| c.uid()).ok();
        let handler = if peer_uid == Some(our_uid) {
            handler.clone()
        } else {
            tracing::warn!(
                ?peer_uid,
                our_uid,
                "refusing a connection from another user"
            );
            deny_handler(peer_uid, our_uid)
        };
        let shutdown = shutdown.clone();
        connections.spawn(serve_connection(stream, handler, shutdown));
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        tracing::warn!("open calls did not finish within the drain timeout");
    }
}

async fn serve_connection(stream: UnixStream, handler: Handler, shutdown: CancellationToken) {
    let scope = ConnectionScope {
        id: NEXT_CONNECTION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        closed: CancellationToken::new(),
        trace_names_indexed: Arc::default(),
    };
    let _closed = scope.closed.clone().drop_guard();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let handler = handler.clone();
        req.extensions_mut().insert(scope.clone());
        async move {
            let timeout = crate::grpc::request_timeout(&req);
            let fut = handler(req);
            let resp = match timeout {
                Some(t) => match tokio::time::timeout(t, fut).await {
                    Ok(r) => r,
                    Err(_) => crate::grpc::status_response(tonic::Status::deadline_exceeded(
                        format!("deadline of {t:?} exceeded"),
                    )),
                },
                None => fut.await,
            };
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .max_send_buf_size(SEND_BUFFER)
        .max_concurrent_streams(1024)
        // No gRPC client reads `date`. Sent, its value changes every
        // second and each goes into the connection's HPACK table, pushing
        // out entries every call uses (the relay's per-call header names
        // among them) within about a minute.
        .auto_date_header(false);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

fn deny_handler(peer_uid: Option<u32>, our_uid: u32) -> Handler {
    let msg = match peer_uid {
        Some(uid) => format!("peer uid {uid} is not this daemon's uid {our_uid}"),
        None => "peer credentials unavailable".to_owned(),
    };
    Arc::new(move |_req| {
        let msg = msg.clone();
        Box::pin(async move { crate::grpc::status_response(tonic::Status::permission_denied(msg)) })
    })
}

/// A lazily connecting tonic channel to the socket at `path`; each
/// (re)connect dials the socket again.
pub fn channel(path: &Path) -> tonic::transport::Channel {
    let path = path.to_path_buf();
    // The URI is required by the API but never dialled: the connector is.
    tonic::transport::Endpoint::from_static("http://cowork.local")
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .connect_with_connector_lazy(tower::service_fn(move |_: http::Uri| {
            let path = path.clone();
            async move { UnixStream::connect(path).await.map(TokioIo::new) }
        }))
}

/// Connect a tonic channel, failing fast (with the OS error) when nobody
/// listens on `path`.
pub async fn connect(path: &Path) -> io::Result<tonic::transport::Channel> {
    // Probe once so a missing or dead socket is reported now, not on the
    // first call.
    drop(UnixStream::connect(path).await?);
    Ok(channel(path))
}
