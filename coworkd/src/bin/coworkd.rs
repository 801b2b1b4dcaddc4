//! coworkd: the Cowork supervisor and router.
//!
//! Boot: single-instance lock → orphan sweep → config → public socket
//! (answers at once) → capture and agents spawned in parallel. Shutdown on
//! SIGTERM, SIGINT or `System/Shutdown`: workers stopped gracefully,
//! sockets and locks removed, exit 0.

use anyhow::{Context, Result};
use clap::Parser;
use cowork_proto::paths::CoworkPaths;
use cowork_proto::pb::system::system_server::SystemServer;
use coworkd::config::{self, Config};
use coworkd::relay::Relay;
use coworkd::state::{WorkerName, WorkerState};
use coworkd::supervisor::Supervisor;
use coworkd::system_service::SystemService;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The Cowork supervisor: starts and watches the workers and routes calls
/// to them over $COWORK_HOME/run/cowork.sock.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Cowork home directory (default: $COWORK_HOME, else the platform data dir).
    #[arg(long, value_name = "DIR")]
    home: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let paths = match CoworkPaths::resolve(args.home.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("coworkd: cannot find the Cowork home: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    // One thread: coworkd only moves frames and watches processes, and a
    // single-threaded runtime relays without cross-thread wake-ups. Children
    // are spawned from this (main) thread, which lives as long as the
    // process, so their parent-death signal fires only when coworkd dies.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("coworkd: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(paths)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coworkd: {e:#}");
            tracing::error!(error = format!("{e:#}"), "coworkd exiting");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The single-instance lock: an exclusive `flock` on `run/coworkd.pid`,
/// which holds the owner's pid.
struct InstanceLock {
    path: PathBuf,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl InstanceLock {
    fn take(paths: &CoworkPaths) -> Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let path = paths.instance_lock();
        loop {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let mut lock = match nix::fcntl::Flock::lock(
                file,
                nix::fcntl::FlockArg::LockExclusiveNonblock,
            ) {
                Ok(l) => l,
                Err((_, errno)) => {
                    let pid = running_pid(&path);
                    anyhow::bail!(
                        "coworkd is already running (pid {pid}) for {} ({errno}); stop it with `coworkctl --home {} shutdown`",
                        paths.home.display(),
                        paths.home.display()
                    );
                }
            };
            // The previous owner may have deleted the file between our open
            // and our lock: then we hold a lock on a file nobody else sees.
            let same = std::fs::metadata(&path)
                .ok()
                .zip(lock.metadata().ok())
                .is_some_and(|(on_disk, ours)| {
                    on_disk.ino() == ours.ino() && on_disk.dev() == ours.dev()
                });
            if !same {
                continue;
            }
            lock.set_len(0)?;
            writeln!(&mut *lock, "{}", std::process::id())?;
            return Ok(Self { path, _lock: lock });
        }
    }
}

/// The pid in a held instance lock; the owner may be writing it right now.
fn running_pid(path: &std::path::Path) -> String {
    for _ in 0..5 {
        let pid = std::fs::read_to_string(path).unwrap_or_default();
        let pid = pid.trim();
        if !pid.is_empty() {
            return pid.to_owned();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    "unknown".to_owned()
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn run(paths: CoworkPaths) -> Result<()> {
    paths
        .create_dirs()
        .with_context(|| format!("cannot create {}", paths.home.display()))?;
    // The relay's spans go to cowork.db (`coworkctl trace`).
    let traces = cowork_proto::logging::init_with_traces(
        Some(&paths.log_file("coworkd")),
        &paths,
        "coworkd",
    )
    .context("cannot open the coworkd log")?;
    let result = serve(paths).await;
    // What is still queued is written before coworkd exits.
    let _ = tokio::task::spawn_blocking(move || cowork_proto::traces::flush_and_stop(traces)).await;
    result
}

async fn serve(paths: CoworkPaths) -> Result<()> {
    // Each client connection holds a connection to each worker it calls.
    if let Err(e) = cowork_proto::worker::raise_fd_limit() {
        tracing::warn!(error = %e, "cannot raise the open-file limit");
    }
    let instance = InstanceLock::take(&paths)?;
    // From here on SIGTERM/SIGINT mean a graceful stop, even during boot.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let boot = std::time::Instant::now();
    tracing::info!(home = %paths.home.display(), pid = std::process::id(), "coworkd starting");

    // Orphans of a previous run (workers, MCP servers) before anything new.
    let report = cowork_proto::lockfile::sweep(&paths.locks_dir)
        .await
        .context("orphan sweep failed")?;
    if !report.killed.is_empty() || !report.removed_stale.is_empty() {
        tracing::warn!(killed = ?report.killed, stale = report.removed_stale.len(), "orphan sweep");
    }

    let cfg = Config::load(&paths.config_file())?;
    let (cfg_tx, cfg_rx) = tokio::sync::watch::channel(cfg);
    let _watcher = match config::watch(&paths.config_file(), cfg_tx) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "config live reload unavailable");
            None
        }
    };

    let shutdown = CancellationToken::new();
    let public = cowork_proto::uds::bind(&paths.public_socket()).await?;
    let (supervisor, mut drivers) =
        Supervisor::start(paths.clone(), cfg_rx.clone(), shutdown.clone());

    // coworkd's own services: System, health (mirroring the workers), reflection.
    let (reporter, health) = cowork_proto::grpc::health();
    reporter.set_serving::<SystemServer<SystemService>>().await;
    spawn_health_mirror(supervisor.clone(), reporter, shutdown.clone());
    // Desktop notifications agents-agent decides on; the machine's heat,
    // read here and acted on by agents-agent.
    let desktop = coworkd::desktop::Desktop::new(paths.worker_socket("agents"));
    let thermal_cfg = cfg_rx.borrow().thermal.clone();
    let heat =
        coworkd::thermal::spawn(thermal_cfg, paths.worker_socket("agents"), shutdown.clone());
    // The web UI, if `coworkctl ui` turned it on: the same services over
    // gRPC-Web on loopback. A taken port leaves it off, with why, until
    // the next `coworkctl ui`.
    let ui = coworkd::ui::Ui::new(paths.clone(), shutdown.clone());
    let ui_port = cfg_rx.borrow().ui.port;
    if let Some(port) = ui_port {
        if let Err(e) = ui.start(port).await {
            tracing::warn!(error = %e, "web UI not started");
        }
    }
    let system = SystemService::new(
        supervisor.clone(),
        paths.clone(),
        shutdown.clone(),
        desktop,
        heat,
        ui,
    );
    let local = cowork_proto::grpc::add_reflection(
        tonic::service::Routes::new(SystemServer::new(system)).add_service(health),
    );
    let relay = Relay::new(
        supervisor.clone(),
        cfg_rx,
        &paths,
        cowork_proto::uds::routes_handler(local),
    );
    let server = tokio::spawn(cowork_proto::uds::serve(
        public,
        relay.handler(),
        shutdown.clone(),
    ));
    tracing::info!(socket = %paths.public_socket().display(), "serving");
    spawn_boot_timer(supervisor.clone(), boot);
    spawn_trace_sweeper(paths.clone(), shutdown.clone());

    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        _ = shutdown.cancelled() => {}
    }
    shutdown.cancel();
    while drivers.join_next().await.is_some() {}
    let _ = server.await;
    let _ = std::fs::remove_file(paths.public_socket());
    for w in WorkerName::ALL {
        let _ = std::fs::remove_file(paths.worker_socket(w.as_str()));
    }
    drop(instance);
    tracing::info!("coworkd stopped");
    Ok(())
}

/// Keep grpc.health.v1 on the public socket in step with the workers: each
/// worker's domain service is SERVING while the worker takes calls (the
/// on-demand browser also while stopped, since a call starts it).
/// Every [`cowork_proto::traces::SWEEP_EVERY`] (and a minute after
/// start), delete spans beyond `[traces]` retention and size, re-reading
/// the settings each time. coworkd alone does this, whether or not it
/// records spans itself.
fn spawn_trace_sweeper(paths: CoworkPaths, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut wait = std::time::Duration::from_secs(60);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => return,
            }
            wait = cowork_proto::traces::SWEEP_EVERY;
            let Ok(settings) = cowork_proto::traces::TracesSettings::load(&paths.config_file())
            else {
                continue; // logged at start; the defaults are not a reason to delete
            };
            let db = paths.home.join("cowork.db");
            match tokio::task::spawn_blocking(move || cowork_proto::traces::sweep(&db, &settings))
                .await
            {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(spans = n, "old trace spans deleted"),
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot delete old trace spans"),
                Err(e) => tracing::warn!(error = %e, "the trace sweep failed"),
            }
        }
    });
}

fn spawn_health_mirror(
    supervisor: Arc<Supervisor>,
    reporter: tonic_health::server::HealthReporter,
    shutdown: CancellationToken,
) {
    const SERVICES: [(WorkerName, &str); 3] = [
        (WorkerName::Capture, "cowork.capture.v1.Capture"),
        (WorkerName::Agents, "cowork.chat.v1.Chat"),
        (WorkerName::Browser, "cowork.browser.v1.Browser"),
    ];
    let mut events = supervisor.subscribe();
    tokio::spawn(async move {
        loop {
            for (w, service) in SERVICES {
                let s = supervisor.snapshot(w);
                let serving = s.routable || (w.on_demand() && s.state == WorkerState::Stopped);
                let status = if serving {
                    tonic_health::ServingStatus::Serving
                } else {
                    tonic_health::ServingStatus::NotServing
                };
                reporter.set_service_status(service, status).await;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                e = events.recv() => if let Err(tokio::sync::broadcast::error::RecvError::Closed) = e { return },
            }
        }
    });
}

/// Log how long boot took until every boot worker was first running.
fn spawn_boot_timer(supervisor: Arc<Supervisor>, boot: std::time::Instant) {
    tokio::spawn(async move {
        for w in [WorkerName::Capture, WorkerName::Agents] {
            let mut rx = supervisor.watch(w);
            if rx
                .wait_for(|s| s.state == WorkerState::Running)
                .await
                .is_err()
            {
                return;
            }
        }
        tracing::info!(ms = boot.elapsed().as_millis() as u64, "all workers ready");
    });
}
