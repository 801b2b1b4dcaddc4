//! The sessions runtime: load a model into a supervised `llama-server`,
//! lease it to requests (starting it again when it was unloaded for
//! idleness or crashed), restart it with backoff when it crashes while in
//! use, unload it after `[agents.llama] idle_unload_s` without requests,
//! and end every server when agents-agent stops.

use super::args::Spec;
use super::process::{self, Running, StartError};
use super::registry::{Registry, Session, State};
use super::Mode;
use crate::config::AgentsConfig;
use crate::util::{new_id, now_ms};
use cowork_proto::backoff::{AfterFailure, BackoffPolicy};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long a server may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// A server that ran this long before crashing starts a fresh restart
/// budget.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// What to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    /// The GGUF file.
    pub model: PathBuf,
    /// Context size (None: `[agents] local_context_tokens`).
    pub ctx: Option<u32>,
    /// Chat or embeddings.
    pub mode: Mode,
    /// Layers offloaded to the GPU (None: llama-server's default).
    pub gpu_layers: Option<u32>,
    /// A built-in chat template, for a model without its own.
    pub chat_template: Option<String>,
}

/// Why a session could not be loaded, found or used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SessionError {
    /// `[agents]` cannot be read.
    #[error("{0}")]
    Config(String),
    /// The model file is not there.
    #[error("{0}")]
    NotFound(String),
    /// The model is loaded already with other options.
    #[error("{0}")]
    Conflict(String),
    /// Its server did not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Its server keeps crashing.
    #[error("{0}")]
    GaveUp(String),
    /// agents-agent is stopping.
    #[error("agents-agent is stopping")]
    Stopping,
    /// Local AI is paused (the machine was getting hot) until the person
    /// restores it.
    #[error("{0}")]
    Paused(String),
}

/// Why local AI is paused, and how far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPause {
    /// What the person reads.
    pub reason: String,
    /// Embedding sessions too (critical), not only chat.
    pub all: bool,
}

/// A session serving one request: where to send it and with which key.
/// While it is held the session is not unloaded for idleness; dropping it
/// counts as a use.
pub struct Lease {
    /// The engine name (`managed:<alias>`).
    pub engine: String,
    /// Its OpenAI-compatible base URL.
    pub base_url: String,
    /// The model name it answers to.
    pub model: String,
    /// The key it requires.
    pub api_key: String,
    /// How long a start took, when this request had to start it (it had
    /// been unloaded, or it crashed).
    pub reloaded: Option<Duration>,
    slot: Arc<Slot>,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("engine", &self.engine)
            .field("base_url", &self.base_url)
            .field("api_key", &"<hidden>")
            .field("reloaded", &self.reloaded)
            .finish()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.slot.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.inner.touch(&self.slot.id);
    }
}

/// What `models sessions` shows of one session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The session.
    pub session: Session,
    /// Its server's resident memory (0 while not running).
    pub rss_bytes: u64,
    /// Time since a request last used it.
    pub idle: Duration,
}

/// One loaded session's runtime.
struct Slot {
    id: String,
    spec: Spec,
    /// The server, while it runs (None: unloaded for idleness, crashed,
    /// or not yet started).
    run: tokio::sync::Mutex<Option<Running>>,
    /// Crashes since it last ran stably.
    crashes: AtomicU32,
    /// Requests holding a lease.
    in_flight: AtomicU32,
    /// Unloaded for good.
    removed: AtomicBool,
}

struct Inner {
    config: PathBuf,
    locks_dir: PathBuf,
    shutdown: CancellationToken,
    registry: Mutex<Registry>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    backoff: BackoffPolicy,
    /// Loads one at a time: two loads of one model make one session.
    loading: tokio::sync::Mutex<()>,
    /// Local AI paused (none: running as usual).
    paused: Mutex<Option<LocalPause>>,
}

impl Inner {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn touch(&self, id: &str) {
        self.registry().touch(id, now_ms());
    }
}

/// The sessions (cheap to clone).
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

impl Sessions {
    /// Sessions configured by `config`'s `[agents.llama]`, their locks in
    /// `locks_dir`, all ended when `shutdown` fires (see [`Self::stop_all_now`]).
    pub fn new(config: PathBuf, locks_dir: PathBuf, shutdown: CancellationToken) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                locks_dir,
                shutdown,
                registry: Default::default(),
                slots: Default::default(),
                backoff: BackoffPolicy {
                    initial: Duration::from_millis(500),
                    max: Duration::from_secs(30),
                    max_restarts: 5,
                },
                loading: Default::default(),
                paused: Default::default(),
            }),
        }
    }

    fn config(&self) -> Result<AgentsConfig, SessionError> {
        AgentsConfig::load(&self.inner.config).map_err(SessionError::Config)
    }

    /// Reap servers a killed agents-agent left behind (`llama-*` locks,
    /// identity-checked). Call it before the first load.
    pub async fn sweep_orphans(&self) {
        match cowork_proto::lockfile::sweep_prefixed(&self.inner.locks_dir, process::LOCK_PREFIX)
            .await
        {
            Ok(r) if !r.killed.is_empty() => {
                tracing::warn!(killed = ?r.killed, "reaped orphaned llama-server sessions")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "llama-server sweep failed"),
        }
    }

    /// Load `load` and wait until its server is ready. A model already
    /// loaded with the same options is that session (`true`: it was
    /// already loaded); with other options it is refused: one agreed
    /// context size per model, never a silent reload.
    pub async fn load(&self, load: Load) -> Result<(Session, bool), SessionError> {
        let _one_at_a_time = self.inner.loading.lock().await;
        let cfg = self.config()?;
        if !load.model.is_file() {
            return Err(SessionError::NotFound(format!(
                "{} is not a file",
                load.model.display()
            )));
        }
        let ctx = load
            .ctx
            .unwrap_or_else(|| u32::try_from(cfg.local_context_tokens).unwrap_or(u32::MAX));
        let alias = alias_of(&load.model);
        let existing = self.inner.registry().find(&alias).cloned();
        if let Some(s) = existing {
            let same = s.model == load.model && s.mode == load.mode && s.ctx == ctx;
            if same {
                return Ok((s, true));
            }
            return Err(SessionError::Conflict(format!(
                "{alias} is loaded already ({}, ctx {}, session {}): unload it first to \
                 load it with other options",
                s.mode.name(),
                s.ctx,
                s.id
            )));
        }
        let spec = Spec {
            model: load.model.clone(),
            alias: alias.clone(),
            port: 0,
            ctx,
            mode: load.mode,
            gpu_layers: load.gpu_layers,
            threads: cfg.llama.threads,
            chat_template: load.chat_template.clone(),
            extra_args: cfg.llama.extra_args.clone(),
        };
        let slot = Arc::new(Slot {
            id: new_id("llama"),
            spec,
            run: Default::default(),
            crashes: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            removed: AtomicBool::new(false),
        });
        let now = now_ms();
        let session = Session {
            id: slot.id.clone(),
            model: load.model,
            alias,
            port: 0,
            pid: 0,
            state: State::Idle,
            last_error: None,
            restarts: 0,
            mode: load.mode,
            ctx,
            ready_ms: now,
            used_ms: now,
        };
        // Started before it is registered: a failed load leaves nothing.
        let mut run = slot.run.lock().await;
        let running = self.start(&slot, &cfg.llama.server).await?;
        let session = Session {
            port: running.port,
            pid: running.pid,
            state: State::Ready,
            ready_ms: now_ms(),
            ..session
        };
        self.supervise(&slot, &running);
        *run = Some(running);
        drop(run);
        self.inner.registry().insert(session.clone());
        self.inner.slots().insert(slot.id.clone(), slot);
        tracing::info!(id = %session.id, model = %session.alias, port = session.port,
            mode = session.mode.name(), "session loaded");
        Ok((session, false))
    }

    /// Start the slot's server on a fresh port (once more on another
    /// port if that one was taken meanwhile).
    async fn start(&self, slot: &Slot, server: &str) -> Result<Running, SessionError> {
        let mut last = None;
        for _ in 0..2 {
            if self.inner.shutdown.is_cancelled() {
                return Err(SessionError::Stopping);
            }
            let port = process::free_port().map_err(|e| {
                SessionError::Start(StartError::Spawn {
                    server: server.into(),
                    error: format!("no free port: {e}"),
                })
            })?;
            let spec = Spec {
                port,
                ..slot.spec.clone()
            };
            match process::start(server, &spec, &self.inner.locks_dir, READY_TIMEOUT).await {
                Ok(r) => return Ok(r),
                Err(e @ StartError::Exited { .. }) if e.to_string().contains("bind") => {
                    last = Some(e);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last
            .map(SessionError::Start)
            .unwrap_or(SessionError::Stopping))
    }

    /// Watch a started server: an exit nobody asked for is a crash.
    fn supervise(&self, slot: &Arc<Slot>, running: &Running) {
        let (me, slot, pid, watch) = (
            self.clone(),
            slot.clone(),
            running.pid,
            running.exit_watch(),
        );
        tokio::spawn(async move {
            let exit = process::wait_exit(watch).await;
            let mut run = slot.run.lock().await;
            // Unloaded, stopped for idleness, or already replaced.
            let started = match run.as_ref() {
                Some(r) if r.pid == pid => r.started,
                _ => return,
            };
            *run = None;
            drop(run);
            if slot.removed.load(Ordering::Relaxed) || me.inner.shutdown.is_cancelled() {
                return;
            }
            let crashes = if started.elapsed() >= STABLE_AFTER {
                slot.crashes.store(1, Ordering::Relaxed);
                1
            } else {
                slot.crashes.fetch_add(1, Ordering::Relaxed) + 1
            };
            let why = format!(
                "llama-server crashed ({}): {}",
                exit.status,
                last_line(&exit.tail)
            );
            tracing::warn!(id = %slot.id, status = %exit.status, tail = %exit.tail, "session crashed");
            me.inner.registry().update(&slot.id, |s| {
                s.state = State::Down;
                s.pid = 0;
                s.port = 0;
                s.last_error = Some(why);
            });
            // In use: restart after the backoff; else it starts on the
            // next request.
            let in_use = slot.in_flight.load(Ordering::Relaxed) > 0 || me.recently_used(&slot.id);
            match me.inner.backoff.after_failure(crashes) {
                AfterFailure::RestartIn { delay, .. } if in_use => {
                    tokio::select! {
                        _ = me.inner.shutdown.cancelled() => {}
                        _ = tokio::time::sleep(delay) => {
                            if let Err(e) = me.ensure_running(&slot).await {
                                tracing::warn!(id = %slot.id, error = %e, "restart failed");
                            }
                        }
                    }
                }
                _ => {}
            }
        });
    }

    fn recently_used(&self, id: &str) -> bool {
        let idle_s = self.config().map(|c| c.llama.idle_unload_s).unwrap_or(600);
        let used = self.inner.registry().find(id).map(|s| s.used_ms);
        used.is_some_and(|u| {
            idle_s == 0 || now_ms().saturating_sub(u) < (idle_s.saturating_mul(1000)) as i64
        })
    }

    /// The slot's server, started now if it is not running (the time that
    /// took, if it did).
    async fn ensure_running(
        &self,
        slot: &Arc<Slot>,
    ) -> Result<(u16, String, Option<Duration>), SessionError> {
        let mut run = slot.run.lock().await;
        if let Some(r) = run.as_ref() {
            if r.exit().is_none() {
                return Ok((r.port, r.key.clone(), None));
            }
        }
        if slot.removed.load(Ordering::Relaxed) {
            return Err(SessionError::NotFound(format!(
                "session {} was unloaded",
                slot.id
            )));
        }
        let crashes = slot.crashes.load(Ordering::Relaxed);
        if let AfterFailure::GiveUp = self.inner.backoff.after_failure(crashes) {
            let why = self
                .inner
                .registry()
                .find(&slot.id)
                .and_then(|s| s.last_error.clone())
                .unwrap_or_default();
            return Err(SessionError::GaveUp(format!(
                "{} crashed {crashes} times in a row; not restarting it (unload and load it \
                 again to retry). Last: {why}",
                slot.spec.alias
            )));
        }
        let server = self.config()?.llama.server;
        let t0 = Instant::now();
        let started = self.start(slot, &server).await;
        let running = match started {
            Ok(r) => r,
            Err(e) => {
                if crashes > 0 {
                    slot.crashes.fetch_add(1, Ordering::Relaxed);
                }
                self.inner.registry().update(&slot.id, |s| {
                    s.state = State::Down;
                    s.last_error = Some(e.to_string());
                });
                return Err(e);
            }
        };
        let took = t0.elapsed();
        self.inner.registry().update(&slot.id, |s| {
            if s.state == State::Down {
                s.restarts += 1;
            }
            s.state = State::Ready;
            s.pid = running.pid;
            s.port = running.port;
        });
        tracing::info!(id = %slot.id, port = running.port, ms = took.as_millis() as u64, "session started again");
        self.supervise(slot, &running);
        let out = (running.port, running.key.clone(), Some(took));
        *run = Some(running);
        Ok(out)
    }

    /// A lease on the session serving `mode` for `model` (None: the
    /// first loaded for `mode`); None when no session serves it. Starts
    /// its server if it was unloaded or crashed.
    pub async fn lease(
        &self,
        mode: Mode,
        model: Option<&str>,
    ) -> Option<Result<Lease, SessionError>> {
        let id = {
            let reg = self.inner.registry();
            match model {
                Some(m) => reg.serving(m, mode),
                None => reg.any(mode),
            }
            .map(|s| s.id.clone())?
        };
        Some(self.lease_id(&id).await)
    }

    /// Whether local AI is paused, and why.
    pub fn paused(&self) -> Option<LocalPause> {
        self.inner
            .paused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether sessions of `mode` may not run now.
    pub fn is_paused(&self, mode: Mode) -> bool {
        self.paused().is_some_and(|p| p.all || mode == Mode::Chat)
    }

    /// Pause local AI: stop the servers of chat sessions (`all`: of every
    /// session); none starts again until [`Self::resume_local`]. Sessions
    /// stay registered. Returns how many servers were stopped.
    pub async fn pause_local(&self, reason: String, all: bool) -> usize {
        *self.inner.paused.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(LocalPause { reason, all });
        let slots: Vec<(String, Mode, Arc<Slot>)> = {
            let reg = self.inner.registry();
            let slots = self.inner.slots();
            reg.all()
                .filter(|s| all || s.mode == Mode::Chat)
                .filter_map(|s| slots.get(&s.id).map(|x| (s.id.clone(), s.mode, x.clone())))
                .collect()
        };
        let mut stopped = 0;
        for (id, mode, slot) in slots {
            let mut run = slot.run.lock().await;
            if let Some(r) = run.take() {
                r.stop().await;
                self.inner.registry().update(&id, |s| {
                    s.state = State::Idle;
                    s.pid = 0;
                    s.port = 0;
                });
                tracing::info!(%id, mode = mode.name(), "session stopped: local AI paused");
                stopped += 1;
            }
        }
        stopped
    }

    /// Restore local AI: sessions may run again, and their servers start
    /// now (in the background). Returns how many sessions reload.
    pub fn resume_local(&self) -> usize {
        *self.inner.paused.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let ids: Vec<String> = self.inner.registry().all().map(|s| s.id.clone()).collect();
        for id in &ids {
            let (me, id) = (self.clone(), id.clone());
            tokio::spawn(async move {
                if let Err(e) = me.lease_id(&id).await {
                    tracing::warn!(%id, error = %e, "session did not reload");
                }
            });
        }
        ids.len()
    }

    /// A lease on session `id`.
    pub async fn lease_id(&self, id: &str) -> Result<Lease, SessionError> {
        let slot = self
            .inner
            .slots()
            .get(id)
            .cloned()
            .ok_or_else(|| SessionError::NotFound(format!("no session {id}")))?;
        let mode = self
            .inner
            .registry()
            .all()
            .find(|s| s.id == id)
            .map(|s| s.mode);
        if let (Some(p), Some(m)) = (self.paused(), mode) {
            if p.all || m == Mode::Chat {
                return Err(SessionError::Paused(p.reason));
            }
        }
        slot.in_flight.fetch_add(1, Ordering::Relaxed);
        self.inner.touch(id);
        // From here the lease's drop undoes the count.
        let (engine, model) = (
            format!("managed:{}", slot.spec.alias),
            slot.spec.alias.clone(),
        );
        let mut lease = Lease {
            engine,
            base_url: String::new(),
            model,
            api_key: String::new(),
            reloaded: None,
            slot: slot.clone(),
            inner: self.inner.clone(),
        };
        let (port, key, reloaded) = self.ensure_running(&slot).await?;
        lease.base_url = format!("http://127.0.0.1:{port}/v1");
        lease.api_key = key;
        lease.reloaded = reloaded;
        Ok(lease)
    }

    /// The session a chat (or background job) would use, as detection
    /// reports engines.
    pub fn serving(&self, mode: Mode) -> Option<Session> {
        self.inner.registry().any(mode).cloned()
    }

    /// Every session, with its memory and idle time.
    pub fn list(&self) -> Vec<SessionInfo> {
        let now = now_ms();
        self.inner
            .registry()
            .all()
            .map(|s| SessionInfo {
                rss_bytes: if s.pid == 0 {
                    0
                } else {
                    cowork_proto::procinfo::sample(s.pid).map_or(0, |p| p.rss_bytes)
                },
                idle: Duration::from_millis(now.saturating_sub(s.used_ms).max(0) as u64),
                session: s.clone(),
            })
            .collect()
    }

    /// Unload a session (by id, model name or file) and stop its server.
    pub async fn unload(&self, what: &str) -> Result<Session, SessionError> {
        let session = self.inner.registry().remove(what).ok_or_else(|| {
            SessionError::NotFound(format!("no session or loaded model {what:?}"))
        })?;
        let slot = self.inner.slots().remove(&session.id);
        if let Some(slot) = slot {
            slot.removed.store(true, Ordering::Relaxed);
            let running = slot.run.lock().await.take();
            if let Some(r) = running {
                let exit = r.stop().await;
                tracing::info!(id = %session.id, status = %exit.status, "session unloaded");
            }
        }
        Ok(session)
    }

    /// Stop the servers of sessions unused for `idle_unload_s` (they
    /// start again on the next request). Returns how many were stopped.
    pub async fn unload_idle(&self) -> usize {
        let Ok(cfg) = self.config() else { return 0 };
        let ids = self
            .inner
            .registry()
            .idle(now_ms(), cfg.llama.idle_unload_s);
        let mut stopped = 0;
        for id in ids {
            let Some(slot) = self.inner.slots().get(&id).cloned() else {
                continue;
            };
            if slot.in_flight.load(Ordering::Relaxed) > 0 {
                continue;
            }
            let mut run = slot.run.lock().await;
            // Used while we waited for the lock?
            if slot.in_flight.load(Ordering::Relaxed) > 0 {
                continue;
            }
            // Stopped under the slot's lock: a request arriving meanwhile
            // waits, then starts a fresh server.
            if let Some(r) = run.take() {
                r.stop().await;
                self.inner.registry().update(&id, |s| {
                    s.state = State::Idle;
                    s.pid = 0;
                    s.port = 0;
                });
                drop(run);
                tracing::info!(%id, idle_unload_s = cfg.llama.idle_unload_s, "idle session unloaded");
                stopped += 1;
            }
        }
        stopped
    }

    /// Check for idle sessions until shutdown, then end every server.
    pub fn spawn_idle_watch(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let idle_s = me.config().map(|c| c.llama.idle_unload_s).unwrap_or(600);
                // A quarter of the limit, between 200 ms and 5 s.
                let tick = Duration::from_millis((idle_s.saturating_mul(250)).clamp(200, 5000));
                tokio::select! {
                    _ = me.inner.shutdown.cancelled() => break,
                    _ = tokio::time::sleep(tick) => {}
                }
                me.unload_idle().await;
            }
            me.stop_all_now();
        });
    }

    /// agents-agent is stopping: SIGTERM every server's group without
    /// waiting (their locks stay for the next sweep).
    pub fn stop_all_now(&self) {
        let slots: Vec<Arc<Slot>> = self.inner.slots().values().cloned().collect();
        for slot in slots {
            slot.removed.store(true, Ordering::Relaxed);
            if let Ok(mut g) = slot.run.try_lock() {
                if let Some(r) = g.take() {
                    r.stop_now();
                }
            }
        }
    }
}

/// A session's model name: the file's stem (`gemma-3-270m-q4_k_m`).
pub fn alias_of(model: &Path) -> String {
    model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "model".into())
}

fn last_line(tail: &str) -> &str {
    tail.lines().last().unwrap_or("no output")
}
