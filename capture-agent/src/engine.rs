//! The capture engine: one thread that owns the pipeline and the writer
//! connection. Sources send it events through a bounded channel (back
//! pressure, bounded memory); it commits rows in one transaction at least
//! every `flush_interval_ms` (default 250 ms), checkpointing open rows with
//! each commit, so a SIGKILL loses at most that interval's events. SIGTERM
//! closes and commits everything.

use crate::audio::recorder::{AudioMsg, Recorder};
use crate::config::{CaptureConfig, SourceKind};
use crate::event::{AwayKind, Stream, StreamSet};
use crate::pipeline::{ActiveWindow, Pipeline};
use crate::record::Row;
use crate::source::{now_ms, sim::SimSource, Sink, Source, SourceMsg};
use crate::store::{Store, StoreError};
use cowork_proto::worker::HealthHandle;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Events and commands waiting for the engine at most.
pub const QUEUE: usize = 16 * 1024;
/// Rows buffered before a commit is forced, whatever the interval.
pub const MAX_BATCH: usize = 8 * 1024;
/// Rows kept while the database refuses writes, before the oldest go.
pub const MAX_BACKLOG: usize = 256 * 1024;
/// How often config.toml is checked for privacy changes.
const CONFIG_CHECK: Duration = Duration::from_secs(2);
/// One capture commit in this many is traced (failed ones always are).
const COMMIT_SPAN_EVERY: u64 = 10;
/// How often open rows are rewritten, so a crash closes them within a
/// second of when it happened (heartbeat + one flush interval ≤ 1 s).
pub const HEARTBEAT: Duration = Duration::from_millis(700);

/// Events per second over the last minute, in one-second buckets. Pure.
#[derive(Debug, Clone)]
pub struct RateWindow {
    buckets: [(i64, u32); 60],
}

impl Default for RateWindow {
    fn default() -> Self {
        Self {
            buckets: [(i64::MIN, 0); 60],
        }
    }
}

impl RateWindow {
    /// Count one event at `sec` (Unix seconds).
    pub fn record(&mut self, sec: i64) {
        let b = &mut self.buckets[sec.rem_euclid(60) as usize];
        if b.0 != sec {
            *b = (sec, 0);
        }
        b.1 = b.1.saturating_add(1);
    }
    /// Events in the 60 seconds ending at `now_sec`.
    pub fn count(&self, now_sec: i64) -> u64 {
        self.buckets
            .iter()
            .filter(|(s, _)| *s <= now_sec && *s > now_sec - 60)
            .map(|(_, n)| u64::from(*n))
            .sum()
    }
}

/// One stream's live figures.
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    /// Time of the last event recorded (the event's own time), Unix ms.
    pub last_event_ms: Option<i64>,
    /// Events recorded per second, by arrival.
    pub rate: RateWindow,
    /// Events recorded since start.
    pub total: u64,
}

/// What the service reads without asking the engine thread.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Enabled streams.
    pub streams: Option<StreamSet>,
    /// The source's name.
    pub source: String,
    /// The source's state: Ok(detail) or Err(reason).
    pub source_health: Option<Result<String, String>>,
    /// Per stream, in [`Stream::ALL`] order.
    pub stats: [StreamStats; 5],
    /// The audio recorder.
    pub audio: AudioLive,
    /// The active window.
    pub active: Option<ActiveWindow>,
    /// Idle or asleep.
    pub away: Option<AwayKind>,
    /// Rows written since start.
    pub rows_written: u64,
    /// The last database error, if writes are failing.
    pub store_error: Option<String>,
}

/// The audio recorder's live figures.
#[derive(Debug, Clone, Default)]
pub struct AudioLive {
    /// "microphone" or "sim".
    pub source: String,
    /// Recording: `Ok(detail)`, or `Err(reason)`; None while the stream
    /// is off.
    pub health: Option<Result<String, String>>,
    /// Segments recorded since start.
    pub segments: u64,
    /// End of the last segment recorded, Unix ms.
    pub last_segment_ms: Option<i64>,
    /// Microphone blocks dropped because the recorder fell behind.
    pub dropped_blocks: u64,
    /// The audio folder.
    pub dir: String,
}

/// Errors talking to the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine thread is gone.
    #[error("the capture engine has stopped")]
    Stopped,
    /// The database refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine did not answer in time.
    #[error("the capture engine did not answer within {0:?}")]
    Timeout(Duration),
}

enum Command {
    Source(SourceMsg),
    /// The recorder sent something (on its own channel: see `Core::audio_rx`).
    AudioReady,
    SetStream(Stream, bool, mpsc::Sender<Result<(), String>>),
    Flush(mpsc::Sender<Result<(), String>>),
    Shutdown(mpsc::Sender<()>),
}

/// A handle on the running engine.
#[derive(Debug, Clone)]
pub struct Engine {
    tx: SyncSender<Command>,
    live: Arc<Mutex<Live>>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
    db_path: PathBuf,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// Pick the source the config asks for. `Err` is the reason the worker is
/// degraded (auto with no display).
pub fn make_source(cfg: &CaptureConfig) -> Result<Box<dyn Source>, String> {
    match cfg.source {
        SourceKind::Sim => Ok(Box::new(
            SimSource::new(cfg.sim_script.clone(), cfg.sim_speed)
                .with_clock_offset(cfg.sim_clock_offset_s.saturating_mul(1000)),
        )),
        #[cfg(target_os = "linux")]
        SourceKind::X11 => Ok(Box::new(crate::source::x11::X11Source::new(
            cfg.idle_threshold_s as i64 * 1000,
        ))),
        #[cfg(target_os = "linux")]
        SourceKind::Auto => {
            if crate::source::x11::display_configured() {
                Ok(Box::new(crate::source::x11::X11Source::new(
                    cfg.idle_threshold_s as i64 * 1000,
                )))
            } else {
                Err(
                    "no display: DISPLAY is not set, so there is no desktop to capture; \
                     run inside an X11 session or set [capture] source = \"sim\""
                        .into(),
                )
            }
        }
        #[cfg(not(target_os = "linux"))]
        SourceKind::X11 | SourceKind::Auto => {
            Err("no capture source for this platform yet; set [capture] source = \"sim\"".into())
        }
    }
}

fn stream_index(s: Stream) -> usize {
    Stream::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

fn config_mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Engine {
    /// Open the store, restore consent, start the source and the engine
    /// thread. Store errors are fatal (the worker cannot do its job); a
    /// source that cannot start leaves the worker serving, degraded.
    /// With `config_error`, capture fails closed: no source runs (nothing
    /// is recorded under settings the person did not write), the worker is
    /// degraded with the error, and the service still answers.
    pub fn start(
        db_path: &Path,
        config_path: &Path,
        home: &Path,
        cfg: CaptureConfig,
        config_error: Option<String>,
        health: HealthHandle,
    ) -> Result<Self, EngineError> {
        let store = Store::open(db_path)?;
        let streams = store.load_streams(StreamSet::default())?;
        let ids = store.next_ids()?;
        let privacy = cfg
            .privacy()
            .unwrap_or_else(|_| crate::privacy::Privacy::default());
        let pipeline = Pipeline::new(streams, privacy, cfg.keystroke_debounce_ms as i64, ids);
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let live = Arc::new(Mutex::new(Live {
            streams: Some(streams),
            ..Default::default()
        }));
        let paused = config_error.as_deref().map(paused_reason);
        let chosen = match &paused {
            Some(reason) => Err(reason.clone()),
            None => make_source(&cfg),
        };
        let source = match chosen {
            Ok(s) => {
                if let Ok(mut l) = live.lock() {
                    l.source = s.name().to_owned();
                }
                Some(s)
            }
            Err(reason) => {
                tracing::warn!(%reason, "capture is degraded");
                health.set_degraded(reason.clone());
                if let Ok(mut l) = live.lock() {
                    l.source = cfg.source.name().to_owned();
                    l.source_health = Some(Err(reason));
                }
                None
            }
        };
        // Segment files whose rows a crash lost are recorded again (the
        // store ignores those it has); half-written files go.
        let audio_dir = crate::audio::audio_dir(home);
        let recovered = match crate::audio::folder::recover(&audio_dir) {
            Ok(rows) => rows.into_iter().map(Row::Audio).collect(),
            Err(e) => {
                tracing::warn!(dir = %audio_dir.display(), error = %e, "cannot read the audio folder");
                Vec::new()
            }
        };
        if let Ok(mut l) = live.lock() {
            l.audio.source = cfg.audio.source.name().to_owned();
            l.audio.dir = audio_dir.display().to_string();
        }
        let (audio_tx, audio_rx) = mpsc::channel();
        let mut core = Core {
            recorder: None,
            audio_dir,
            audio_tx,
            audio_rx,
            wake: tx.clone(),
            store,
            pipeline,
            source,
            cfg,
            config_path: config_path.to_path_buf(),
            home: home.to_path_buf(),
            live: live.clone(),
            health,
            pending: recovered,
            dirty_since: None,
            commits: 0,
            paused,
            held_health: None,
            sink: {
                let sink_tx = tx.clone();
                Sink::new(move |m| sink_tx.send(Command::Source(m)).is_ok())
            },
        };
        let thread = std::thread::Builder::new()
            .name("capture-engine".into())
            .spawn(move || {
                core.start_source();
                core.sync_recorder();
                core.run(rx);
            })
            .map_err(|_| EngineError::Stopped)?;
        Ok(Self {
            tx,
            live,
            thread: Arc::new(Mutex::new(Some(thread))),
            db_path: db_path.to_path_buf(),
        })
    }

    /// The database file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// A snapshot of the live figures.
    pub fn live(&self) -> Live {
        self.live.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn ask<T>(
        &self,
        make: impl FnOnce(mpsc::Sender<T>) -> Command,
        timeout: Duration,
    ) -> Result<T, EngineError> {
        let (reply, rx) = mpsc::channel();
        self.tx
            .send(make(reply))
            .map_err(|_| EngineError::Stopped)?;
        rx.recv_timeout(timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => EngineError::Timeout(timeout),
            RecvTimeoutError::Disconnected => EngineError::Stopped,
        })
    }

    /// Turn a stream on or off, persistently. Blocks until applied.
    pub fn set_stream(&self, stream: Stream, on: bool) -> Result<Result<(), String>, EngineError> {
        self.ask(
            |r| Command::SetStream(stream, on, r),
            Duration::from_secs(10),
        )
    }

    /// Commit everything received so far. Blocks until committed.
    pub fn flush(&self) -> Result<Result<(), String>, EngineError> {
        self.ask(Command::Flush, Duration::from_secs(10))
    }

    /// Close every open row, commit, and stop the engine thread.
    pub fn shutdown(&self) {
        let _ = self.ask(Command::Shutdown, Duration::from_secs(5));
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

struct Core {
    store: Store,
    /// The audio recorder, while the `audio` stream is on.
    recorder: Option<Recorder>,
    /// `$COWORK_HOME/audio`.
    audio_dir: PathBuf,
    /// Where the recorder sends what it records: a channel of its own,
    /// unbounded (a segment every few seconds at most), so the recorder
    /// never blocks on the engine and the engine can join it at any time
    /// without a deadlock.
    audio_tx: mpsc::Sender<AudioMsg>,
    /// See `audio_tx`; drained after every command.
    audio_rx: mpsc::Receiver<AudioMsg>,
    /// Wakes the engine when the recorder sent something.
    wake: SyncSender<Command>,
    pipeline: Pipeline,
    source: Option<Box<dyn Source>>,
    cfg: CaptureConfig,
    config_path: PathBuf,
    home: PathBuf,
    live: Arc<Mutex<Live>>,
    health: HealthHandle,
    pending: Vec<Row>,
    dirty_since: Option<Instant>,
    /// Commits so far (one in [`COMMIT_SPAN_EVERY`] is traced).
    commits: u64,
    /// Why capture is paused (config.toml's `[capture]` is invalid):
    /// nothing is read or recorded until the file is valid again.
    paused: Option<String>,
    /// Where sources send their events.
    sink: Sink,
    /// The source's last health while paused (the pause's reason shows
    /// instead), put back on resume.
    held_health: Option<Result<String, String>>,
}

/// The health reason while `[capture]` is invalid.
fn paused_reason(config_error: &str) -> String {
    format!("{config_error}; capture is paused until config.toml is valid again")
}

impl Core {
    /// The pipeline's clock: now, or a sim replay's clock
    /// (`sim_clock_offset_s` from now), so the events it stamps in the
    /// past are not taken for late ones.
    fn clock_ms(&self) -> i64 {
        match self.cfg.source {
            crate::config::SourceKind::Sim => {
                now_ms().saturating_add(self.cfg.sim_clock_offset_s.saturating_mul(1000))
            }
            _ => now_ms(),
        }
    }

    fn start_source(&mut self) {
        let wants = self.pipeline.streams().wants();
        if let Some(src) = self.source.as_mut() {
            if let Err(e) = src.start(wants, self.sink.clone()) {
                tracing::warn!(source = src.name(), error = %e, "capture source failed to start");
                self.health.set_degraded(e.0.clone());
                if let Ok(mut l) = self.live.lock() {
                    l.source_health = Some(Err(e.0));
                }
            }
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Command>) {
        let flush_every = Duration::from_millis(self.cfg.flush_interval_ms);
        let mut next_retention = Instant::now();
        let mut next_config_check = Instant::now() + CONFIG_CHECK;
        let mut config_seen = config_mtime(&self.config_path);
        let mut next_heartbeat = Instant::now() + HEARTBEAT;
        loop {
            let now = Instant::now();
            let mut wait = next_retention
                .min(next_config_check)
                .min(next_heartbeat)
                .saturating_duration_since(now);
            if let Some(since) = self.dirty_since {
                wait = wait.min((since + flush_every).saturating_duration_since(now));
            }
            if let Some(deadline) = self.pipeline.deadline() {
                let ms = deadline.saturating_sub(self.clock_ms()).max(0) as u64;
                wait = wait.min(Duration::from_millis(ms));
            }
            match rx.recv_timeout(wait) {
                // Paused: what the source still had in flight is dropped.
                Ok(Command::Source(SourceMsg::Event(_))) if self.paused.is_some() => {}
                Ok(Command::Source(SourceMsg::Event(ev))) => {
                    let at = ev.at_ms;
                    let is_window = matches!(
                        ev.event,
                        crate::event::SourceEvent::Window(_)
                            | crate::event::SourceEvent::NoWindow
                            | crate::event::SourceEvent::AwayStart(_)
                            | crate::event::SourceEvent::AwayEnd
                    );
                    let recorded = self.pipeline.handle(ev);
                    self.touch();
                    if let Ok(mut l) = self.live.lock() {
                        if let Some(s) = recorded {
                            let st = &mut l.stats[stream_index(s)];
                            st.last_event_ms = Some(at);
                            st.rate.record(now_ms().div_euclid(1000));
                            st.total += 1;
                        }
                        if is_window {
                            l.active = self.pipeline.active_window().cloned();
                            l.away = self.pipeline.away();
                        }
                    }
                }
                // Paused: the source's own health is kept for the resume.
                Ok(Command::Source(SourceMsg::Health(h))) if self.paused.is_some() => {
                    self.held_health = Some(h);
                }
                Ok(Command::Source(SourceMsg::Health(h))) => {
                    match &h {
                        Ok(detail) => {
                            tracing::info!(%detail, "capture source");
                            if self
                                .live
                                .lock()
                                .map(|l| l.store_error.is_none())
                                .unwrap_or(true)
                            {
                                self.health.set_ready();
                            }
                        }
                        Err(reason) => {
                            tracing::warn!(%reason, "capture source degraded");
                            self.health.set_degraded(reason.clone());
                        }
                    }
                    if let Ok(mut l) = self.live.lock() {
                        l.source_health = Some(h);
                    }
                }
                Ok(Command::AudioReady) => {}
                Ok(Command::SetStream(stream, on, reply)) => {
                    let r = self.set_stream(stream, on);
                    let _ = reply.send(r);
                }
                Ok(Command::Flush(reply)) => {
                    let r = self.commit();
                    let _ = reply.send(r);
                }
                Ok(Command::Shutdown(reply)) => {
                    self.stop();
                    let _ = reply.send(());
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.stop();
                    return;
                }
            }
            while let Ok(msg) = self.audio_rx.try_recv() {
                self.audio(msg);
            }
            self.pipeline.advance(self.clock_ms());
            if self.pipeline.pending() > 0 {
                self.pending.extend(self.pipeline.take_rows());
                self.touch();
            }
            let now = Instant::now();
            if now >= next_heartbeat {
                next_heartbeat = now + HEARTBEAT;
                if self.pipeline.heartbeat() {
                    self.touch();
                }
            }
            if self.pending.len() >= MAX_BATCH
                || self.dirty_since.is_some_and(|s| now >= s + flush_every)
            {
                let _ = self.commit();
            }
            if now >= next_retention {
                self.retention();
                next_retention = now + Duration::from_secs(self.cfg.retention_interval_s);
            }
            if now >= next_config_check {
                next_config_check = now + CONFIG_CHECK;
                let m = config_mtime(&self.config_path);
                if m != config_seen {
                    config_seen = m;
                    self.reload_config();
                }
            }
        }
    }

    /// The recorder runs exactly while the `audio` stream is on and
    /// capture is not paused.
    fn sync_recorder(&mut self) {
        let want = self.paused.is_none() && self.pipeline.streams().get(Stream::Audio);
        match (want, self.recorder.is_some()) {
            (true, false) => {
                let (tx, wake) = (self.audio_tx.clone(), self.wake.clone());
                match Recorder::start(self.cfg.audio.clone(), self.audio_dir.clone(), move |m| {
                    // A full command queue means the engine is awake anyway.
                    let sent = tx.send(m).is_ok();
                    let _ = wake.try_send(Command::AudioReady);
                    sent
                }) {
                    Ok(r) => {
                        tracing::info!(
                            source = self.cfg.audio.source.name(),
                            "audio recording started"
                        );
                        self.recorder = Some(r);
                    }
                    Err(e) => self.set_audio_health(Err(format!(
                        "audio: cannot start recording into {}: {e}",
                        self.audio_dir.display()
                    ))),
                }
            }
            (false, true) => {
                if let Some(r) = self.recorder.take() {
                    // Consent withdrawn (or paused): the open segment goes.
                    r.stop(false);
                    tracing::info!("audio recording stopped");
                }
                if let Ok(mut l) = self.live.lock() {
                    l.audio.health = None;
                }
                self.settle_health();
            }
            _ => {}
        }
    }

    /// A message from the recorder.
    fn audio(&mut self, msg: AudioMsg) {
        match msg {
            AudioMsg::Segment(row) => {
                let i = stream_index(Stream::Audio);
                if let Ok(mut l) = self.live.lock() {
                    l.audio.segments += 1;
                    l.audio.last_segment_ms = Some(row.ended_ms);
                    let st = &mut l.stats[i];
                    st.last_event_ms = Some(row.ended_ms);
                    st.rate.record(now_ms().div_euclid(1000));
                    st.total += 1;
                }
                // Recorded while the stream was on: its row is written even
                // if consent was withdrawn since.
                self.pending.push(Row::Audio(row));
                self.touch();
            }
            // From a recorder already stopped: stale.
            AudioMsg::Health(_) if self.recorder.is_none() => {}
            AudioMsg::Health(h) => self.set_audio_health(h),
        }
        if let (Some(r), Ok(mut l)) = (self.recorder.as_ref(), self.live.lock()) {
            l.audio.dropped_blocks = r.dropped.load(std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn set_audio_health(&mut self, h: Result<String, String>) {
        match &h {
            Ok(detail) => tracing::info!(%detail, "audio recorder"),
            Err(reason) => tracing::warn!(%reason, "audio recorder degraded"),
        }
        if let Ok(mut l) = self.live.lock() {
            l.audio.health = Some(h);
        }
        self.settle_health();
    }

    /// The worker's health from everything that can degrade it: paused,
    /// the store, the desktop source, the recorder (while audio is on).
    fn settle_health(&self) {
        if self.paused.is_some() {
            return;
        }
        let Ok(l) = self.live.lock() else { return };
        if let Some(e) = &l.store_error {
            self.health
                .set_degraded(format!("cannot write capture rows: {e}"));
        } else if let Some(Err(reason)) = &l.source_health {
            self.health.set_degraded(reason.clone());
        } else if let Some(Err(reason)) = &l.audio.health {
            self.health.set_degraded(reason.clone());
        } else {
            self.health.set_ready();
        }
    }

    fn touch(&mut self) {
        if self.dirty_since.is_none() {
            self.dirty_since = Some(Instant::now());
        }
    }

    fn set_stream(&mut self, stream: Stream, on: bool) -> Result<(), String> {
        self.store
            .save_stream(stream, on)
            .map_err(|e| e.to_string())?;
        self.pipeline.set_stream(stream, on, self.clock_ms());
        let streams = self.pipeline.streams();
        if let Some(src) = self.source.as_mut().filter(|_| self.paused.is_none()) {
            src.set_wants(streams.wants());
        }
        if let Ok(mut l) = self.live.lock() {
            l.streams = Some(streams);
        }
        tracing::info!(%stream, enabled = on, "capture stream consent changed");
        if stream == Stream::Audio {
            self.sync_recorder();
        }
        self.pending.extend(self.pipeline.take_rows());
        self.commit()
    }

    /// Checkpoint open rows and write everything pending in one
    /// transaction. On failure the rows stay pending (bounded).
    fn commit(&mut self) -> Result<(), String> {
        self.pipeline.checkpoint();
        self.pending.extend(self.pipeline.take_rows());
        self.dirty_since = None;
        if self.pending.is_empty() {
            return Ok(());
        }
        // A sample of commits is traced (one in COMMIT_SPAN_EVERY, and
        // every failed one, after the fact): rows and time, never content.
        self.commits += 1;
        let commit_span = || {
            tracing::info_span!(
                target: cowork_proto::traces::TARGET,
                "commit",
                rows = self.pending.len(),
                outcome = tracing::field::Empty,
            )
        };
        let result = if self.commits % COMMIT_SPAN_EVERY == 1 {
            let span = commit_span();
            let r = span.in_scope(|| self.store.write(&self.pending));
            span.record("outcome", if r.is_ok() { "ok" } else { "error" });
            r
        } else {
            let r = self.store.write(&self.pending);
            if r.is_err() {
                commit_span().record("outcome", "error");
            }
            r
        };
        match result {
            Ok(()) => {
                let n = self.pending.len() as u64;
                self.pending.clear();
                if let Ok(mut l) = self.live.lock() {
                    l.rows_written += n;
                    if l.store_error.take().is_some() && !matches!(l.source_health, Some(Err(_))) {
                        self.health.set_ready();
                    }
                }
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                tracing::error!(error = %msg, rows = self.pending.len(), "capture write failed; will retry");
                self.health
                    .set_degraded(format!("cannot write capture rows: {msg}"));
                if self.pending.len() > MAX_BACKLOG {
                    let drop = self.pending.len() - MAX_BACKLOG;
                    tracing::error!(
                        rows = drop,
                        "capture backlog full: dropping the oldest rows"
                    );
                    self.pending.drain(..drop);
                }
                self.dirty_since = Some(Instant::now());
                if let Ok(mut l) = self.live.lock() {
                    l.store_error = Some(msg.clone());
                }
                Err(msg)
            }
        }
    }

    fn retention(&mut self) {
        // Audio files: the shorter of the two retentions (a file never
        // outlives its row).
        let audio_cutoff = now_ms() - self.cfg.audio.retention_ms().min(self.cfg.retention_ms());
        match crate::audio::folder::expire(&self.audio_dir, audio_cutoff) {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "retention: old audio files deleted"),
            Err(e) => tracing::warn!(error = %e, "audio retention failed; will retry"),
        }
        let cutoff = now_ms() - self.cfg.retention_ms();
        match self.store.enforce_retention(cutoff) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                rows = n,
                days = self.cfg.retention_days,
                "retention: old capture rows deleted"
            ),
            Err(e) => tracing::warn!(error = %e, "retention failed; will retry"),
        }
    }

    fn reload_config(&mut self) {
        let c = match CaptureConfig::load(&self.config_path, &self.home) {
            Ok(c) => c,
            Err(e) => return self.pause(paused_reason(&e.to_string())),
        };
        let privacy = match c.privacy() {
            Ok(p) => p,
            Err(e) => return self.pause(paused_reason(&e.to_string())),
        };
        self.pipeline.set_privacy(privacy, self.clock_ms());
        if self.source.is_none() && self.paused.is_some() {
            // Paused since start: no source was chosen yet.
            self.cfg = c;
        } else {
            if c.source != self.cfg.source || c.sim_script != self.cfg.sim_script {
                tracing::info!("capture source settings change at the next capture-agent start");
            }
            self.cfg.retention_days = c.retention_days;
            self.cfg.retention_interval_s = c.retention_interval_s;
            self.cfg.denylist = c.denylist;
            self.cfg.denylist_extra = c.denylist_extra;
            self.cfg.redact_patterns = c.redact_patterns;
            if c.audio != self.cfg.audio {
                // Recording settings apply at the next start of recording.
                if let Ok(mut l) = self.live.lock() {
                    l.audio.source = c.audio.source.name().to_owned();
                }
                self.cfg.audio = c.audio;
            }
        }
        tracing::info!("capture privacy and retention settings reloaded");
        if self.paused.take().is_some() {
            self.resume();
        }
    }

    /// Fail closed: close what is open (recorded under the rules it began
    /// with), stop reading, and say why. Recording resumes when
    /// config.toml is valid again.
    fn pause(&mut self, reason: String) {
        if self.paused.as_ref() == Some(&reason) {
            return;
        }
        tracing::error!(%reason, "capture paused");
        if self.paused.is_none() {
            self.pipeline.shutdown(self.clock_ms());
            let _ = self.commit();
            if let Some(src) = self.source.as_mut() {
                src.set_wants(crate::event::StreamSet::none().wants());
            }
            if let Some(r) = self.recorder.take() {
                r.stop(true);
            }
        }
        self.health.set_degraded(reason.clone());
        if let Ok(mut l) = self.live.lock() {
            let before = l.source_health.replace(Err(reason.clone()));
            if self.paused.is_none() {
                self.held_health = before;
            }
            l.active = None;
        }
        self.paused = Some(reason);
    }

    /// config.toml is valid again: read and record as the person asked.
    fn resume(&mut self) {
        self.sync_recorder();
        tracing::info!("capture resumed: config.toml is valid again");
        if let Ok(mut l) = self.live.lock() {
            l.source_health = Some(
                self.held_health
                    .take()
                    .unwrap_or_else(|| Ok("resumed: config.toml is valid again".into())),
            );
        }
        if self.source.is_none() {
            match make_source(&self.cfg) {
                Ok(s) => {
                    if let Ok(mut l) = self.live.lock() {
                        l.source = s.name().to_owned();
                    }
                    self.source = Some(s);
                    self.start_source();
                }
                Err(reason) => {
                    self.health.set_degraded(reason.clone());
                    if let Ok(mut l) = self.live.lock() {
                        l.source_health = Some(Err(reason));
                    }
                    return;
                }
            }
        } else if let Some(src) = self.source.as_mut() {
            src.set_wants(self.pipeline.streams().wants());
        }
        let (store_error, source_health) = self
            .live
            .lock()
            .map(|l| (l.store_error.clone(), l.source_health.clone()))
            .unwrap_or_default();
        match (store_error, source_health) {
            (Some(e), _) => self
                .health
                .set_degraded(format!("cannot write capture rows: {e}")),
            (None, Some(Err(reason))) => self.health.set_degraded(reason),
            _ => self.health.set_ready(),
        }
    }

    fn stop(&mut self) {
        // The segment being recorded is closed and kept; its row (and any
        // still queued) is written with the rest.
        if let Some(r) = self.recorder.take() {
            r.stop(true);
        }
        while let Ok(msg) = self.audio_rx.try_recv() {
            if let AudioMsg::Segment(row) = msg {
                self.pending.push(Row::Audio(row));
            }
        }
        self.pipeline.shutdown(self.clock_ms());
        if let Err(e) = self.commit() {
            tracing::error!(error = %e, "final capture commit failed");
        } else {
            tracing::info!("capture flushed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_window_counts_the_last_minute() {
        let mut r = RateWindow::default();
        for s in 0..120 {
            r.record(s);
        }
        r.record(119);
        assert_eq!(r.count(119), 61);
        assert_eq!(r.count(200), 0);
    }
}
