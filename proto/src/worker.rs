//! What every worker binary runs: bind its socket, serve the worker
//! contract (`cowork.worker.v1.Worker`), grpc.health.v1, reflection and its
//! domain services, signal readiness, and stop gracefully on SIGTERM,
//! SIGINT or `Worker/Stop`.

use crate::paths::CoworkPaths;
use crate::pb::worker::{
    worker_health, worker_server, GetHealthRequest, PingReply, PingRequest, PingStreamRequest,
    StopRequest, StopResponse, WorkerHealth,
};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// Environment variable naming the socket a worker must serve; coworkd sets
/// it, so a replacement worker program knows where to listen.
pub const SOCKET_ENV: &str = "COWORK_SOCKET";

/// Largest reply `PingStream` produces in one message.
pub const MAX_PING_SIZE: u32 = 4 << 20;
/// Largest total `PingStream` produces for one call.
pub const MAX_PING_TOTAL: u64 = 1 << 30;

/// A worker's own view of its health, shared between its domain code (which
/// may report degraded service) and the worker contract (which serves it).
/// Several parts of a worker may each report a problem (agents-agent: its
/// model engines and its database); it is degraded while any part is, with
/// every part's reason.
#[derive(Debug, Clone, Default)]
pub struct HealthHandle {
    inner: Arc<RwLock<std::collections::BTreeMap<&'static str, String>>>,
}

impl HealthHandle {
    /// The part [`set_ready`](Self::set_ready) and
    /// [`set_degraded`](Self::set_degraded) speak for.
    pub const MAIN: &'static str = "";

    /// Report full service (of the main part; other parts keep theirs).
    pub fn set_ready(&self) {
        self.clear_part(Self::MAIN);
    }

    /// Report partial service, with a reason a person can act on.
    pub fn set_degraded(&self, reason: impl Into<String>) {
        self.set_degraded_part(Self::MAIN, reason);
    }

    /// Report that `part` of the worker cannot serve, and why.
    pub fn set_degraded_part(&self, part: &'static str, reason: impl Into<String>) {
        if let Ok(mut g) = self.inner.write() {
            g.insert(part, reason.into());
        }
    }

    /// `part` serves again.
    pub fn clear_part(&self, part: &'static str) {
        if let Ok(mut g) = self.inner.write() {
            g.remove(part);
        }
    }

    /// `None` when ready, else every degraded part's reason, joined by "; ".
    pub fn degraded_reason(&self) -> Option<String> {
        let g = self.inner.read().ok()?;
        (!g.is_empty()).then(|| g.values().cloned().collect::<Vec<_>>().join("; "))
    }
}

/// What a worker's domain code gets to build its services.
#[derive(Debug, Clone)]
pub struct WorkerContext {
    /// "capture", "agents" or "browser".
    pub name: &'static str,
    /// The Cowork home layout.
    pub paths: CoworkPaths,
    /// Report degraded service here.
    pub health: HealthHandle,
    /// Cancelled when the worker must stop.
    pub shutdown: CancellationToken,
    /// Work to finish after the socket closed, before the process exits.
    pub on_stop: StopHooks,
}

/// Longest the worker waits for its [`StopHooks`] when stopping.
pub const STOP_HOOKS_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

type StopHook = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Futures a worker awaits after its server stopped (closing a child it
/// owns gracefully, say), within [`STOP_HOOKS_GRACE`] in all.
#[derive(Clone, Default)]
pub struct StopHooks(Arc<std::sync::Mutex<Vec<StopHook>>>);

impl std::fmt::Debug for StopHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopHooks").finish_non_exhaustive()
    }
}

impl StopHooks {
    /// Run `hook` when the worker stops.
    pub fn add(&self, hook: impl std::future::Future<Output = ()> + Send + 'static) {
        if let Ok(mut h) = self.0.lock() {
            h.push(Box::pin(hook));
        }
    }

    async fn run(&self) {
        let hooks: Vec<StopHook> = match self.0.lock() {
            Ok(mut h) => std::mem::take(&mut *h),
            Err(_) => return,
        };
        let all = async {
            for h in hooks {
                h.await;
            }
        };
        if tokio::time::timeout(STOP_HOOKS_GRACE, all).await.is_err() {
            tracing::warn!("stop hooks did not finish in time");
        }
    }
}

/// Errors that end a worker before or while serving.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The home directories could not be created.
    #[error("cannot prepare {path}: {source}")]
    Dirs {
        /// The home directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The socket could not be bound.
    #[error(transparent)]
    Bind(#[from] crate::uds::BindError),
    /// A signal handler could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Run a worker until it is told to stop. `domain` adds the worker's own
/// services to the routes.
pub async fn run(
    name: &'static str,
    paths: CoworkPaths,
    socket: Option<PathBuf>,
    domain: impl FnOnce(&WorkerContext, tonic::service::Routes) -> tonic::service::Routes,
) -> Result<(), WorkerError> {
    paths.create_dirs().map_err(|source| WorkerError::Dirs {
        path: paths.home.clone(),
        source,
    })?;
    let socket = socket
        .or_else(|| std::env::var_os(SOCKET_ENV).map(PathBuf::from))
        .unwrap_or_else(|| paths.worker_socket(name));
    let ctx = WorkerContext {
        name,
        paths,
        health: HealthHandle::default(),
        shutdown: CancellationToken::new(),
        on_stop: StopHooks::default(),
    };
    let contract = WorkerContract {
        name,
        health: ctx.health.clone(),
        shutdown: ctx.shutdown.clone(),
    };
    let (reporter, health_service) = crate::grpc::health();
    reporter
        .set_serving::<worker_server::WorkerServer<WorkerContract>>()
        .await;
    let routes = tonic::service::Routes::new(worker_server::WorkerServer::new(contract))
        .add_service(health_service);
    let routes = crate::grpc::add_reflection(domain(&ctx, routes));

    let listener = crate::uds::bind(&socket).await?;
    let server = tokio::spawn(crate::uds::serve(
        listener,
        crate::traces::traced(crate::uds::routes_handler(routes)),
        ctx.shutdown.clone(),
    ));
    match crate::ready::notify_ready() {
        Ok(true) => tracing::info!(worker = name, socket = %socket.display(), "ready"),
        Ok(false) => {
            tracing::info!(worker = name, socket = %socket.display(), "serving (no supervisor)")
        }
        Err(e) => tracing::warn!(error = %e, "could not signal readiness"),
    }

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(WorkerError::Signals)?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(WorkerError::Signals)?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
        _ = ctx.shutdown.cancelled() => tracing::info!("stop requested"),
    }
    ctx.shutdown.cancel();
    let _ = server.await;
    ctx.on_stop.run().await;
    let _ = std::fs::remove_file(&socket);
    tracing::info!(worker = name, "stopped");
    Ok(())
}

/// `cowork.worker.v1.Worker`, the same in every worker.
#[derive(Debug, Clone)]
struct WorkerContract {
    name: &'static str,
    health: HealthHandle,
    shutdown: CancellationToken,
}

#[tonic::async_trait]
impl worker_server::Worker for WorkerContract {
    async fn get_health(
        &self,
        _: Request<GetHealthRequest>,
    ) -> Result<Response<WorkerHealth>, Status> {
        let (state, reason) = match self.health.degraded_reason() {
            None => (worker_health::State::Ready, String::new()),
            Some(r) => (worker_health::State::Degraded, r),
        };
        Ok(Response::new(WorkerHealth {
            state: state as i32,
            reason,
            worker: self.name.to_owned(),
            pid: std::process::id(),
            version: crate::VERSION.to_owned(),
        }))
    }

    async fn stop(&self, _: Request<StopRequest>) -> Result<Response<StopResponse>, Status> {
        tracing::info!("Worker/Stop called");
        self.shutdown.cancel();
        Ok(Response::new(StopResponse {}))
    }

    /// Echoes the payload, and the caller's `traceparent` in the response
    /// metadata, so a client can check trace context crossed the relay.
    async fn ping(&self, req: Request<PingRequest>) -> Result<Response<PingReply>, Status> {
        let traceparent = req.metadata().get("traceparent").cloned();
        let mut resp = Response::new(PingReply {
            payload: req.into_inner().payload,
            pid: std::process::id(),
        });
        if let Some(tp) = traceparent {
            resp.metadata_mut().insert("traceparent", tp);
        }
        Ok(resp)
    }

    type PingStreamStream = tokio_stream::wrappers::ReceiverStream<Result<PingReply, Status>>;

    async fn ping_stream(
        &self,
        req: Request<PingStreamRequest>,
    ) -> Result<Response<Self::PingStreamStream>, Status> {
        let PingStreamRequest { count, size } = req.into_inner();
        if size > MAX_PING_SIZE {
            return Err(Status::invalid_argument(format!(
                "size {size} exceeds the {MAX_PING_SIZE}-byte limit"
            )));
        }
        if u64::from(count) * u64::from(size) > MAX_PING_TOTAL {
            return Err(Status::invalid_argument(format!(
                "count × size exceeds the {MAX_PING_TOTAL}-byte limit"
            )));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let payload = bytes::Bytes::from(vec![0xA5u8; size as usize]);
        let pid = std::process::id();
        tokio::spawn(async move {
            for _ in 0..count {
                let reply = PingReply {
                    payload: payload.to_vec(),
                    pid,
                };
                if tx.send(Ok(reply)).await.is_err() {
                    break; // the caller went away
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }
}

/// The command line every worker binary accepts.
#[derive(Debug, clap::Parser)]
#[command(version)]
pub struct WorkerArgs {
    /// Cowork home directory (default: $COWORK_HOME, else the platform data dir).
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Socket to serve (default: $COWORK_SOCKET, else run/<worker>.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// A worker binary's whole `main`: parse [`WorkerArgs`], log to stderr (which
/// coworkd sends to the worker's log), and [`run`] on a single-threaded
/// runtime. Returns the process exit code.
pub fn main(
    name: &'static str,
    domain: impl FnOnce(&WorkerContext, tonic::service::Routes) -> tonic::service::Routes,
) -> std::process::ExitCode {
    use clap::Parser;
    let args = WorkerArgs::parse();
    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        let paths = CoworkPaths::resolve(args.home.as_deref())?;
        // Its request spans go to cowork.db beside coworkd's.
        let traces = crate::logging::init_with_traces(None, &paths, name)?;
        match raise_fd_limit() {
            Ok((from, to)) if from != to => tracing::debug!(from, to, "raised RLIMIT_NOFILE"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let result = rt.block_on(run(name, paths, args.socket, domain));
        drop(rt);
        // What is still queued is written before the worker exits.
        crate::traces::flush_and_stop(traces);
        result?;
        Ok(())
    })();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}-agent: {e}");
            tracing::error!(error = %e, "worker exiting");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Raise the soft open-file limit to the hard one: a worker holds
/// sockets for clients, engines, MCP servers and downloads at once, and a
/// soft limit of 1024 is what a flood of idle connections would exhaust.
/// Returns (old soft limit, new soft limit).
pub fn raise_fd_limit() -> nix::Result<(u64, u64)> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok((soft, hard.max(soft)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_one() {
        let (_, now) = raise_fd_limit().unwrap();
        let (soft, hard) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(soft, hard);
        assert_eq!(now, hard);
    }

    #[test]
    fn degraded_while_any_part_is() {
        let h = HealthHandle::default();
        assert_eq!(h.degraded_reason(), None);
        h.set_degraded_part("database", "cowork.db is newer");
        h.set_ready();
        assert_eq!(
            h.degraded_reason().as_deref(),
            Some("cowork.db is newer"),
            "ready is the main part only"
        );
        h.set_degraded("no engine");
        assert_eq!(
            h.degraded_reason().as_deref(),
            Some("no engine; cowork.db is newer")
        );
        h.clear_part("database");
        h.set_ready();
        assert_eq!(h.degraded_reason(), None);
    }
}
