//! Supervision: one driver task per worker spawns it, waits for its ready
//! signal, probes its liveness, restarts it with backoff and publishes every
//! state change. The decisions come from [`crate::backoff`]; this module
//! only carries them out.

use crate::backoff::AfterFailure;
use crate::config::{Config, SupervisorConfig};
use crate::state::{ExitInfo, HealthEvent, WorkerName, WorkerSnapshot, WorkerState};
use cowork_proto::lockfile::{self, LockRecord, Lockfile};
use cowork_proto::paths::CoworkPaths;
use cowork_proto::pb::worker::{worker_client::WorkerClient, worker_health, GetHealthRequest};
use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::AsyncReadExt;
use tokio::process::Child;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant as TokioInstant;
use tokio_util::sync::CancellationToken;

/// How many health events a slow `WatchHealth` reader may lag behind.
const EVENT_BUFFER: usize = 1024;
/// How many log lines a crash report carries.
const LOG_TAIL_LINES: usize = 5;

/// Requests to a worker's driver.
#[derive(Debug)]
enum Command {
    /// Restart from scratch (attempt and restart counters reset); answered
    /// once the new process has been spawned or the start has failed.
    Retry(oneshot::Sender<()>),
    /// Start an on-demand worker if it is stopped.
    Demand,
}

/// Calls in flight to a worker and when the last one ended: what the idle
/// stop of an on-demand worker looks at.
#[derive(Debug)]
pub struct Activity {
    active: AtomicUsize,
    last: Mutex<Instant>,
}

impl Activity {
    fn new() -> Self {
        Self {
            active: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }
    }

    /// When the worker becomes idle-stoppable, or `None` while calls run.
    fn idle_since(&self) -> Option<Instant> {
        if self.active.load(Ordering::SeqCst) > 0 {
            return None;
        }
        self.last.lock().ok().map(|g| *g)
    }
}

/// Held for the whole life of one relayed call (until its response body
/// ends); keeps an on-demand worker from being stopped under it.
#[derive(Debug)]
pub struct ActivityGuard(Arc<Activity>);

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        if let Ok(mut g) = self.0.last.lock() {
            *g = Instant::now();
        }
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Slot {
    snapshot: watch::Sender<WorkerSnapshot>,
    commands: mpsc::UnboundedSender<Command>,
    activity: Arc<Activity>,
}

/// Publishes state changes: updates a worker's snapshot and pushes an event
/// when its state (or a degraded reason) changes. One lock orders the
/// sequence numbers across workers.
#[derive(Clone)]
struct Publisher {
    events: broadcast::Sender<HealthEvent>,
    seq: Arc<Mutex<u64>>,
}

impl Publisher {
    fn update(&self, slot: &watch::Sender<WorkerSnapshot>, f: impl FnOnce(&mut WorkerSnapshot)) {
        let mut event = None;
        slot.send_modify(|s| {
            let before = (s.state, s.reason.clone());
            f(s);
            let changed =
                s.state != before.0 || (s.state == WorkerState::Degraded && s.reason != before.1);
            if changed {
                event = Some(HealthEvent {
                    worker: s.name,
                    state: s.state,
                    previous: before.0,
                    reason: s.reason.clone(),
                    seq: 0,
                    at: SystemTime::now(),
                    pid: s.pid,
                    attempt: s.attempt,
                    restarts: s.restarts,
                });
            }
        });
        if let Some(mut e) = event {
            let Ok(mut seq) = self.seq.lock() else { return };
            *seq += 1;
            e.seq = *seq;
            tracing::info!(worker = %e.worker, from = %e.previous, to = %e.state, reason = %e.reason, "state change");
            // No subscribers is fine.
            let _ = self.events.send(e);
        }
    }
}

/// The supervisor: the state of every worker and the way to act on them.
pub struct Supervisor {
    slots: BTreeMap<WorkerName, Slot>,
    publisher: Publisher,
}

impl Supervisor {
    /// Start one driver per worker (capture and agents at once, the browser
    /// on demand). Drivers stop their worker and return when `shutdown` is
    /// cancelled; await the returned set to know they are all down.
    pub fn start(
        paths: CoworkPaths,
        config: watch::Receiver<Config>,
        shutdown: CancellationToken,
    ) -> (Arc<Self>, tokio::task::JoinSet<()>) {
        let publisher = Publisher {
            events: broadcast::channel(EVENT_BUFFER).0,
            seq: Arc::new(Mutex::new(0)),
        };
        let max_restarts = config.borrow().supervisor.max_restarts;
        let mut slots = BTreeMap::new();
        let mut drivers = tokio::task::JoinSet::new();
        for name in WorkerName::ALL {
            let (snap_tx, _) = watch::channel(WorkerSnapshot::new(name, max_restarts));
            let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
            let activity = Arc::new(Activity::new());
            let driver = Driver {
                name,
                paths: paths.clone(),
                config: config.clone(),
                slot: snap_tx.clone(),
                publisher: publisher.clone(),
                commands: cmd_rx,
                shutdown: shutdown.clone(),
                activity: activity.clone(),
                lock: None,
            };
            drivers.spawn(driver.run());
            slots.insert(
                name,
                Slot {
                    snapshot: snap_tx,
                    commands: cmd_tx,
                    activity,
                },
            );
        }
        (Arc::new(Self { slots, publisher }), drivers)
    }

    fn slot(&self, w: WorkerName) -> &Slot {
        // Every WorkerName has a slot: `start` inserts WorkerName::ALL.
        &self.slots[&w]
    }

    /// The current snapshot of one worker.
    pub fn snapshot(&self, w: WorkerName) -> WorkerSnapshot {
        self.slot(w).snapshot.borrow().clone()
    }

    /// Snapshots of every worker, in display order.
    pub fn snapshots(&self) -> Vec<WorkerSnapshot> {
        WorkerName::ALL.iter().map(|w| self.snapshot(*w)).collect()
    }

    /// Follow one worker's snapshot.
    pub fn watch(&self, w: WorkerName) -> watch::Receiver<WorkerSnapshot> {
        self.slot(w).snapshot.subscribe()
    }

    /// Subscribe to every state change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<HealthEvent> {
        self.publisher.events.subscribe()
    }

    /// Restart a worker from scratch; returns once its new process is
    /// spawned (or its start failed).
    pub async fn retry(&self, w: WorkerName) {
        let (tx, rx) = oneshot::channel();
        if self.slot(w).commands.send(Command::Retry(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Ask an on-demand worker to start if it is stopped.
    pub fn demand(&self, w: WorkerName) {
        let _ = self.slot(w).commands.send(Command::Demand);
    }

    /// Mark a call to `w` in flight until the guard drops.
    pub fn activity(&self, w: WorkerName) -> ActivityGuard {
        let a = self.slot(w).activity.clone();
        a.active.fetch_add(1, Ordering::SeqCst);
        ActivityGuard(a)
    }
}

/// Why one run of a worker process ended.
enum RunEnd {
    /// coworkd is shutting down.
    Shutdown,
    /// The on-demand worker was idle and has been stopped.
    Idle,
    /// `retry` asked for a fresh start.
    Retry(oneshot::Sender<()>),
    /// It crashed, hung, never got ready, or could not start.
    Failed(String),
}

struct Driver {
    name: WorkerName,
    paths: CoworkPaths,
    config: watch::Receiver<Config>,
    slot: watch::Sender<WorkerSnapshot>,
    publisher: Publisher,
    commands: mpsc::UnboundedReceiver<Command>,
    shutdown: CancellationToken,
    activity: Arc<Activity>,
    lock: Option<Lockfile>,
}

impl Driver {
    fn set(&self, f: impl FnOnce(&mut WorkerSnapshot)) {
        self.publisher.update(&self.slot, f);
    }

    fn sup(&self) -> SupervisorConfig {
        self.config.borrow().supervisor.clone()
    }

    async fn run(mut self) {
        let mut wanted = !self.name.on_demand();
        let mut retry_ack: Option<oneshot::Sender<()>> = None;
        loop {
            if !wanted {
                match self.wait_for_start().await {
                    Some(ack) => retry_ack = ack,
                    None => return,
                }
                wanted = true;
            }
            let end = self.run_once(retry_ack.take()).await;
            match end {
                RunEnd::Shutdown => return,
                RunEnd::Idle => wanted = false,
                RunEnd::Retry(ack) => {
                    self.set(|s| {
                        s.attempt = 0;
                        s.restarts = 0;
                    });
                    retry_ack = Some(ack);
                }
                RunEnd::Failed(reason) => match self.after_failure(reason).await {
                    Some(ack) => retry_ack = ack,
                    None => return,
                },
            }
        }
    }

    /// Stopped (on-demand): wait for a call or a retry. `None` on shutdown;
    /// `Some(ack)` to start, with the retry to answer if that was the cause.
    async fn wait_for_start(&mut self) -> Option<Option<oneshot::Sender<()>>> {
        self.set(|s| {
            s.state = WorkerState::Stopped;
            s.pid = None;
            s.routable = false;
            s.ready_at = None;
            if s.reason.is_empty() {
                s.reason = "starts on the first call".into();
            }
        });
        tokio::select! {
            _ = self.shutdown.cancelled() => None,
            cmd = self.commands.recv() => match cmd {
                None => None,
                Some(Command::Demand) => Some(None),
                Some(Command::Retry(ack)) => {
                    self.set(|s| { s.attempt = 0; s.restarts = 0; });
                    Some(Some(ack))
                }
            },
        }
    }

    /// Count the failure and either wait out the backoff or give up.
    /// `None` on shutdown.
    async fn after_failure(&mut self, reason: String) -> Option<Option<oneshot::Sender<()>>> {
        let failures = self.slot.borrow().attempt + 1;
        let sup = self.sup();
        match sup.backoff().after_failure(failures) {
            AfterFailure::RestartIn { delay, attempt } => {
                let at = Instant::now() + delay;
                self.set(|s| {
                    s.state = WorkerState::Restarting;
                    s.attempt = attempt;
                    s.max_restarts = sup.max_restarts;
                    s.next_retry_at = Some(at);
                    s.reason = reason;
                    s.routable = false;
                });
                let shutdown = self.shutdown.clone();
                let failed_at = Instant::now();
                let mut wake = TokioInstant::from_std(at);
                let mut config_alive = true;
                let ack = loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        _ = tokio::time::sleep_until(wake) => break None,
                        // Supervisor settings apply at once, also to a
                        // backoff already under way.
                        changed = self.config.changed(), if config_alive => {
                            if changed.is_err() {
                                config_alive = false; // no live reload
                                continue;
                            }
                            let sup = self.sup();
                            let at = failed_at + sup.backoff().delay(attempt);
                            wake = TokioInstant::from_std(at);
                            self.set(|s| {
                                s.next_retry_at = Some(at);
                                s.max_restarts = sup.max_restarts;
                            });
                        }
                        cmd = next_retry(&mut self.commands) => match cmd {
                            Some(ack) => {
                                self.set(|s| { s.attempt = 0; s.restarts = 0; });
                                break Some(ack);
                            }
                            None => return None,
                        },
                    }
                };
                self.set(|s| {
                    s.next_retry_at = None;
                    if ack.is_none() {
                        s.restarts += 1;
                    }
                });
                Some(ack)
            }
            AfterFailure::GiveUp => {
                self.set(|s| {
                    s.state = WorkerState::Failed;
                    s.attempt = failures;
                    s.max_restarts = sup.max_restarts;
                    s.next_retry_at = None;
                    s.routable = false;
                    s.reason = format!(
                        "{reason}; gave up after {} restarts, run `coworkctl retry {}`",
                        s.restarts, s.name
                    );
                });
                let shutdown = self.shutdown.clone();
                tokio::select! {
                    _ = shutdown.cancelled() => None,
                    ack = next_retry(&mut self.commands) => {
                        let ack = ack?;
                        self.set(|s| { s.attempt = 0; s.restarts = 0; });
                        Some(Some(ack))
                    }
                }
            }
        }
    }

    /// The argv to start: the configured command, or the worker binary
    /// installed beside coworkd.
    fn argv(&self) -> Vec<String> {
        if let Some(cmd) = self.config.borrow().command_of(self.name) {
            return cmd.to_vec();
        }
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join(self.name.binary())))
            .unwrap_or_else(|| PathBuf::from(self.name.binary()));
        vec![exe.to_string_lossy().into_owned()]
    }

    fn spawn(&self, argv: &[String]) -> std::io::Result<(Child, tokio::net::unix::pipe::Receiver)> {
        let (ready_r, ready_w) = cowork_proto::ready::pipe()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.paths.log_file(self.name.as_str()))?;
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env(cowork_proto::paths::HOME_ENV, &self.paths.home)
            .env(
                cowork_proto::worker::SOCKET_ENV,
                self.paths.worker_socket(self.name.as_str()),
            )
            .env(
                cowork_proto::ready::READY_FD_ENV,
                cowork_proto::ready::READY_FD.to_string(),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let ready_fd = ready_w.as_raw_fd();
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe libc calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || child_setup(ready_fd, parent));
        }
        let child = cmd.spawn()?;
        drop(ready_w); // only the child holds the write end now
        let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(ready_r)?;
        Ok((child, rx))
    }

    /// One life of the worker process: spawn, readiness, monitoring.
    async fn run_once(&mut self, mut retry_ack: Option<oneshot::Sender<()>>) -> RunEnd {
        let sup = self.sup();
        let argv = self.argv();
        self.set(|s| {
            s.state = WorkerState::Starting;
            s.reason = format!("starting {}", argv[0]);
            s.routable = false;
            s.ready_at = None;
            s.pid = None;
            s.max_restarts = sup.max_restarts;
        });
        let spawned = self.spawn(&argv);
        if let Some(ack) = retry_ack.take() {
            let _ = ack.send(());
        }
        let (mut child, mut ready_rx) = match spawned {
            Ok(x) => x,
            Err(e) => return RunEnd::Failed(format!("cannot start {}: {e}", argv[0])),
        };
        let pid = child.id().unwrap_or(0);
        self.lock.take();
        self.write_lock(pid).await;
        self.set(|s| s.pid = Some(pid));

        // Readiness.
        let deadline = TokioInstant::now() + sup.ready_timeout();
        let mut buf = [0u8; 16];
        let mut pipe_open = true;
        loop {
            tokio::select! {
                n = ready_rx.read(&mut buf), if pipe_open => match n {
                    Ok(n) if n > 0 => break,
                    _ => pipe_open = false, // closed without a signal: wait for exit or timeout
                },
                status = child.wait() => {
                    return RunEnd::Failed(self.ended(status, "before signalling ready"));
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let why = format!(
                        "no ready signal within {}",
                        crate::state::human_secs(sup.ready_timeout())
                    );
                    self.set(|s| {
                        s.state = WorkerState::Degraded;
                        s.reason = why.clone();
                    });
                    self.terminate(&mut child, sup.stop_grace()).await;
                    return RunEnd::Failed(why);
                }
                _ = self.shutdown.cancelled() => {
                    self.stop(&mut child, "coworkd shutting down").await;
                    return RunEnd::Shutdown;
                }
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Retry(ack)) => {
                        self.terminate(&mut child, sup.stop_grace()).await;
                        return RunEnd::Retry(ack);
                    }
                    Some(Command::Demand) => {}
                    None => return RunEnd::Shutdown,
                },
            }
        }
        drop(ready_rx);
        // A wrapper (`sh -c 'exec prog'`) may have exec'd since the spawn:
        // record the identity of the program that is now serving.
        self.write_lock(pid).await;
        let ready_at = Instant::now();
        self.set(|s| {
            s.state = WorkerState::Running;
            s.reason.clear();
            s.ready_at = Some(ready_at);
            s.routable = true;
        });
        self.monitor(&mut child, ready_at).await
    }

    /// Watch a ready worker until it ends, hangs, idles out or is told to go.
    async fn monitor(&mut self, child: &mut Child, ready_at: Instant) -> RunEnd {
        let socket = self.paths.worker_socket(self.name.as_str());
        let mut probe = WorkerClient::new(cowork_proto::uds::channel(&socket));
        let mut failed_probes = 0u32;
        let mut stable = false;
        let mut next_probe = TokioInstant::now() + self.sup().probe_interval();
        loop {
            let sup = self.sup();
            let stable_at = TokioInstant::from_std(ready_at + sup.stable_after());
            let idle_at = match (self.name.on_demand(), self.activity.idle_since()) {
                (true, Some(since)) => Some(TokioInstant::from_std(
                    since.max(ready_at) + sup.browser_idle(),
                )),
                // Calls in flight: look again in a second.
                (true, None) => Some(TokioInstant::now() + Duration::from_secs(1)),
                (false, _) => None,
            };
            tokio::select! {
                status = child.wait() => {
                    return RunEnd::Failed(self.ended(status, "unexpectedly"));
                }
                _ = tokio::time::sleep_until(next_probe) => {
                    let answer = tokio::time::timeout(
                        sup.probe_timeout(),
                        probe.get_health(GetHealthRequest {}),
                    ).await;
                    next_probe = TokioInstant::now() + sup.probe_interval();
                    match answer {
                        Ok(Ok(h)) => {
                            failed_probes = 0;
                            let h = h.into_inner();
                            self.set(|s| {
                                if h.state == worker_health::State::Degraded as i32 {
                                    s.state = WorkerState::Degraded;
                                    s.reason = h.reason;
                                } else {
                                    s.state = WorkerState::Running;
                                    s.reason.clear();
                                }
                            });
                        }
                        Ok(Err(status)) => {
                            failed_probes += 1;
                            tracing::warn!(worker = %self.name, error = %status.message(), failed_probes, "liveness probe failed");
                        }
                        Err(_) => {
                            failed_probes += 1;
                            tracing::warn!(worker = %self.name, failed_probes, "liveness probe timed out");
                        }
                    }
                    if failed_probes >= sup.probe_failures {
                        let why = format!(
                            "hung: {failed_probes} liveness probes unanswered within {} ms",
                            sup.probe_timeout_ms
                        );
                        self.set(|s| s.routable = false);
                        self.terminate(child, sup.stop_grace()).await;
                        return RunEnd::Failed(why);
                    }
                }
                _ = tokio::time::sleep_until(stable_at), if !stable => {
                    stable = true;
                    self.set(|s| s.attempt = 0);
                }
                _ = async { match idle_at { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                    if let Some(since) = self.activity.idle_since() {
                        if since.max(ready_at).elapsed() >= sup.browser_idle() {
                            let why = format!("stopped after {} idle", crate::state::human_secs(sup.browser_idle()));
                            self.stop(child, &why).await;
                            return RunEnd::Idle;
                        }
                    }
                }
                _ = self.shutdown.cancelled() => {
                    self.stop(child, "coworkd shutting down").await;
                    return RunEnd::Shutdown;
                }
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Retry(ack)) => {
                        self.set(|s| s.routable = false);
                        self.terminate(child, sup.stop_grace()).await;
                        return RunEnd::Retry(ack);
                    }
                    Some(Command::Demand) => {}
                    None => return RunEnd::Shutdown,
                },
            }
        }
    }

    /// Write the worker's lockfile with `pid`'s identity as it is now, or
    /// update the one already written. The identity is read off the async
    /// thread: it may wait for a fresh child's `execve` to finish.
    async fn write_lock(&mut self, pid: u32) {
        let name = format!("worker:{}", self.name);
        let record = tokio::task::spawn_blocking(move || LockRecord::for_child(&name, pid)).await;
        let result = match record {
            Ok(r) => r.and_then(|r| match self.lock.as_mut() {
                Some(lock) => lock.update(r),
                None => Lockfile::write(&self.paths.locks_dir, &format!("worker-{}", self.name), r)
                    .map(|l| self.lock = Some(l)),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "lockfile task failed");
                return;
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "no lockfile for worker");
        }
    }

    /// Stop on purpose: publish `stopped` with `why`.
    async fn stop(&mut self, child: &mut Child, why: &str) {
        self.set(|s| s.routable = false);
        let grace = self.sup().stop_grace();
        let exit = self.terminate(child, grace).await;
        self.set(|s| {
            s.state = WorkerState::Stopped;
            s.reason = why.to_owned();
            s.pid = None;
            s.ready_at = None;
            s.last_exit = exit;
        });
    }

    /// SIGTERM (+SIGCONT so a stopped process can act on it) to the worker's
    /// process group, `grace`, then SIGKILL; reap it and drop its lock.
    async fn terminate(&mut self, child: &mut Child, grace: Duration) -> Option<ExitInfo> {
        use nix::sys::signal::Signal;
        let child_pid = child.id();
        let status = match child_pid {
            None => child.wait().await.ok(),
            Some(pid) => {
                lockfile::signal_tree(pid, Signal::SIGTERM);
                lockfile::signal_tree(pid, Signal::SIGCONT);
                match tokio::time::timeout(grace, child.wait()).await {
                    Ok(s) => s.ok(),
                    Err(_) => {
                        tracing::warn!(worker = %self.name, pid, "no exit after SIGTERM; sending SIGKILL");
                        lockfile::signal_tree(pid, Signal::SIGKILL);
                        child.wait().await.ok()
                    }
                }
            }
        };
        if let Some(pid) = child_pid {
            kill_group_remnants(pid);
        }
        self.lock.take();
        status.map(exit_info)
    }

    /// Record how a process ended and describe it with its last log lines.
    fn ended(&mut self, status: std::io::Result<std::process::ExitStatus>, when: &str) -> String {
        if let Some(pid) = self.slot.borrow().pid {
            kill_group_remnants(pid);
        }
        self.lock.take();
        let exit = status.ok().map(exit_info);
        let tail = log_tail(&self.paths.log_file(self.name.as_str()), LOG_TAIL_LINES);
        let what = exit
            .map(|e| e.to_string())
            .unwrap_or_else(|| "ended".into());
        let reason = match tail.last() {
            Some(last) => format!("{what} {when}; last log line: {last}"),
            None => format!("{what} {when}"),
        };
        self.set(|s| {
            s.last_exit = exit;
            s.last_log_lines = tail;
            s.pid = None;
            s.routable = false;
            s.ready_at = None;
        });
        reason
    }
}

/// SIGKILL whatever is left of a reaped worker's process group (children it
/// started that outlived it). The group id cannot be handed to a new process
/// while members remain, so this never hits a stranger.
fn kill_group_remnants(pgid: u32) {
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// The next Retry command, ignoring Demand. `None` when the supervisor is
/// gone.
async fn next_retry(
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> Option<oneshot::Sender<()>> {
    loop {
        match commands.recv().await? {
            Command::Retry(ack) => return Some(ack),
            Command::Demand => continue,
        }
    }
}

fn exit_info(s: std::process::ExitStatus) -> ExitInfo {
    ExitInfo {
        code: s.code(),
        signal: s.signal(),
    }
}

/// The last `n` non-empty lines of a log file (reads at most its last 16 KiB).
pub fn log_tail(path: &std::path::Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(16 * 1024);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<String> = text
        .lines()
        .skip(usize::from(start > 0)) // first line may be cut
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.chars().take(500).collect())
        .collect();
    let keep = lines.len().saturating_sub(n);
    lines.drain(..keep);
    lines
}

/// In the child between fork and exec: own process group, parent-death
/// signal (Linux), the readiness pipe on fd 3.
fn child_setup(ready_fd: libc::c_int, parent: libc::pid_t) -> std::io::Result<()> {
    let check = |r: libc::c_int| {
        if r == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: async-signal-safe calls on descriptors this process owns.
    unsafe {
        check(libc::setpgid(0, 0))?;
        #[cfg(target_os = "linux")]
        {
            check(libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
            ))?;
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("parent exited during spawn"));
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = parent;
        let target = cowork_proto::ready::READY_FD;
        if ready_fd == target {
            let flags = libc::fcntl(target, libc::F_GETFD);
            check(flags)?;
            check(libc::fcntl(
                target,
                libc::F_SETFD,
                flags & !libc::FD_CLOEXEC,
            ))?;
        } else {
            check(libc::dup2(ready_fd, target))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.log");
        std::fs::write(&p, "one\n\ntwo\nthree\nfour\n").unwrap();
        assert_eq!(log_tail(&p, 2), ["three", "four"]);
        assert_eq!(log_tail(&p, 10), ["one", "two", "three", "four"]);
        assert!(log_tail(&dir.path().join("missing"), 3).is_empty());
    }

    #[test]
    fn activity_guard_tracks_calls() {
        let a = Arc::new(Activity::new());
        a.active.fetch_add(1, Ordering::SeqCst);
        let g = ActivityGuard(a.clone());
        assert!(a.idle_since().is_none());
        let before = Instant::now();
        drop(g);
        assert!(a.idle_since().unwrap() >= before);
    }
}
