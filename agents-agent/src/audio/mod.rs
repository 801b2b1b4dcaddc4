//! Transcription of the `audio` capture stream (seed 003 "Audio (The
//! Ears)"): capture-agent records voice-gated segments; this domain turns
//! each into a transcript with whisper.cpp, on this machine. Audio never
//! leaves the device: there is no cloud path here, and the `cloud` column
//! stays 0 (a cloud transcription would need the person's separate,
//! explicit consent, which this version never asks for).
//!
//! - [`model`] chooses the Whisper model by hardware (pure).
//! - [`whisper`] runs whisper.cpp through whisper-rs (the only code
//!   touching it).
//! - [`store`] keeps transcripts, and finds the queue (capture's segments
//!   after the last transcribed).
//! - [`service`] serves `cowork.audio.v1.Audio`.
//!
//! The queue runs one segment at a time on a blocking thread. The model is
//! loaded when there is work and unloaded after `idle_unload_s` without
//! any. A transcript and its pieces commit in one transaction; only then is
//! the audio file deleted (unless `keep_audio`), so a kill -9 at any point
//! leaves the segment to be transcribed again at the next start. While the
//! machine is critically hot (thermal mode "all paused") nothing runs and
//! a running transcription is stopped between compute steps.

pub mod model;
pub mod service;
pub mod store;
pub mod whisper;

use crate::db::Db;
use crate::thermal::Thermal;
use crate::util::now_ms;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// agents-agent's keys of `[audio]` (capture-agent reads the recording
/// keys of the same section).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AudioConfig {
    /// Keep audio files after they are transcribed (they are deleted at
    /// once otherwise; capture's retention deletes kept ones).
    pub keep_audio: bool,
    /// "auto" (by hardware, from the installed models) or a ggml file.
    pub model: String,
    /// The spoken language ("en"; "auto" detects).
    pub language: String,
    /// whisper.cpp threads; 0 = half the machine's (transcription runs
    /// beside the person's own work).
    pub threads: usize,
    /// Unload the model after this long without work, seconds.
    pub idle_unload_s: u64,
    /// How often the queue looks for new segments, ms.
    pub poll_ms: u64,
}

impl Default for AudioConfig {
    fn default() -> Self {
        Self {
            keep_audio: false,
            model: "auto".into(),
            language: "en".into(),
            threads: 0,
            idle_unload_s: 60,
            poll_ms: 1000,
        }
    }
}

/// capture-agent's keys of `[audio]`: accepted here, read there.
const CAPTURE_KEYS: &[&str] = &[
    "source",
    "device",
    "sim_files",
    "sim_speed",
    "vad_threshold_db",
    "silence_ms",
    "min_speech_ms",
    "max_segment_s",
    "retention_days",
];

const OUR_KEYS: &[&str] = &[
    "keep_audio",
    "model",
    "language",
    "threads",
    "idle_unload_s",
    "poll_ms",
];

impl AudioConfig {
    /// `[audio]` of the config file at `path` (defaults when absent); a
    /// key neither process knows is an error (a typo would otherwise be
    /// silently ignored).
    pub fn load(path: &Path) -> Result<Self, String> {
        let table: toml::Table = crate::config::section(path, "audio")?;
        if let Some(k) = table
            .keys()
            .find(|k| !OUR_KEYS.contains(&k.as_str()) && !CAPTURE_KEYS.contains(&k.as_str()))
        {
            return Err(format!(
                "[audio] has an unknown key {k:?} (known: {}, {})",
                OUR_KEYS.join(", "),
                CAPTURE_KEYS.join(", ")
            ));
        }
        let c: AudioConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e| format!("[audio] is invalid: {e}"))?;
        if c.threads > 256 {
            return Err(format!(
                "[audio] threads must be 0 (auto) to 256, not {}",
                c.threads
            ));
        }
        if c.language.is_empty() || c.language.len() > 8 {
            return Err(format!(
                "[audio] language must be a language code such as \"en\" or \"auto\", not {:?}",
                c.language
            ));
        }
        Ok(c)
    }

    /// Threads to use on a machine with `cores`.
    pub fn threads_for(&self, cores: usize) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            (cores / 2).max(1)
        }
    }
}

/// What the queue is doing (the service reports it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    /// off, idle, transcribing, paused, degraded.
    pub state: String,
    /// Why, in words.
    pub detail: String,
    /// The model chosen, and why.
    pub model: Option<model::Choice>,
    /// The model is in memory.
    pub loaded: bool,
    /// The last transcription's audio length and time taken, ms.
    pub last_audio_ms: u64,
    /// See `last_audio_ms`.
    pub last_took_ms: u64,
    /// `[audio] keep_audio`.
    pub keep_audio: bool,
}

/// The runtime (cheap to clone).
#[derive(Clone)]
pub struct Audio {
    db: Db,
    config: PathBuf,
    audio_dir: PathBuf,
    model_dirs: Vec<PathBuf>,
    thermal: Option<Thermal>,
    status: Arc<Mutex<Status>>,
    wake: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Audio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audio")
            .field("audio_dir", &self.audio_dir)
            .finish()
    }
}

/// A segment file name as capture writes it (`seg-<ms>-<ms>.wav`): the
/// only names read from the audio folder (the row could have been written
/// by anything that can write cowork.db).
pub fn is_segment_file(name: &str) -> bool {
    cowork_proto::paths::SegmentName::parse(name).is_some()
}

/// Read a segment file: 16 kHz mono 16-bit PCM, as capture writes it.
pub fn read_segment(path: &Path) -> Result<Vec<f32>, String> {
    let mut r = hound::WavReader::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let s = r.spec();
    if s.sample_rate != 16_000 || s.channels != 1 || s.bits_per_sample != 16 {
        return Err(format!(
            "{}: {} Hz, {} channel(s), {} bit: not a capture segment (16 kHz mono 16-bit)",
            path.display(),
            s.sample_rate,
            s.channels,
            s.bits_per_sample
        ));
    }
    r.samples::<i16>()
        .map(|v| v.map(|x| f32::from(x) / 32768.0))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

impl Audio {
    /// Transcribing segments of `audio_dir` with the models found in
    /// `model_dirs`, pausing when `thermal` says all local AI is paused.
    pub fn new(
        db: Db,
        config: PathBuf,
        audio_dir: PathBuf,
        model_dirs: Vec<PathBuf>,
        thermal: Option<Thermal>,
    ) -> Self {
        Self {
            db,
            config,
            audio_dir,
            model_dirs,
            thermal,
            status: Arc::new(Mutex::new(Status {
                state: "idle".into(),
                ..Default::default()
            })),
            wake: Default::default(),
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The queue's state now.
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The audio folder.
    pub fn audio_dir(&self) -> &Path {
        &self.audio_dir
    }

    fn set(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn set_state(&self, state: &str, detail: impl Into<String>) {
        let detail = detail.into();
        let changed = {
            let s = self.status.lock().unwrap_or_else(|e| e.into_inner());
            s.state != state || s.detail != detail
        };
        if changed {
            tracing::info!(state, %detail, "audio transcription");
            self.set(|s| {
                s.state = state.into();
                s.detail = detail;
            });
        }
    }

    fn paused_by_heat(&self) -> bool {
        self.thermal.as_ref().is_some_and(|t| t.all_local_paused())
    }

    /// Run the queue until `shutdown`.
    pub fn spawn(&self, shutdown: CancellationToken) {
        let me = self.clone();
        tokio::spawn(async move { me.run(shutdown).await });
    }

    async fn run(self, shutdown: CancellationToken) {
        // The machine, read once (the same reading models' fit check uses).
        let hw = tokio::task::spawn_blocking(|| {
            model::Hardware::from(&crate::models::hardware::detect(Duration::ZERO))
        })
        .await
        .unwrap_or(model::Hardware {
            ram_bytes: 8 << 30,
            cores: 1,
        });
        let mut loaded: Option<(Arc<whisper::Whisper>, Instant)> = None;
        let mut last_sweep: Option<Instant> = None;
        loop {
            let cfg = match AudioConfig::load(&self.config) {
                Ok(c) => c,
                Err(e) => {
                    self.set_state("degraded", format!("{e}; transcription waits"));
                    if self.sleep(&shutdown, Duration::from_secs(2)).await {
                        return;
                    }
                    continue;
                }
            };
            self.set(|s| s.keep_audio = cfg.keep_audio);
            let poll = Duration::from_millis(cfg.poll_ms.clamp(50, 60_000));
            if last_sweep.is_none_or(|t| t.elapsed() >= Duration::from_secs(300)) {
                last_sweep = Some(Instant::now());
                match self.db.write(store::forget_deleted).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(transcripts = n, "transcripts of deleted segments removed")
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot sweep transcripts"),
                }
            }
            let step = self.step(&cfg, hw, &mut loaded, &shutdown).await;
            // Idle: unload a model nobody needs.
            if let Some((_, used)) = &loaded {
                if !matches!(step, Step::Worked)
                    && used.elapsed() >= Duration::from_secs(cfg.idle_unload_s)
                {
                    loaded = None;
                    self.set(|s| s.loaded = false);
                    tracing::info!("Whisper model unloaded (idle)");
                }
            }
            if matches!(step, Step::Worked) {
                if shutdown.is_cancelled() {
                    return;
                }
                continue;
            }
            if self.sleep(&shutdown, poll).await {
                return;
            }
        }
    }

    /// Sleep until woken, `d` passes or shutdown (true).
    async fn sleep(&self, shutdown: &CancellationToken, d: Duration) -> bool {
        tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = self.wake.notified() => false,
            _ = tokio::time::sleep(d) => false,
        }
    }

    async fn step(
        &self,
        cfg: &AudioConfig,
        hw: model::Hardware,
        loaded: &mut Option<(Arc<whisper::Whisper>, Instant)>,
        shutdown: &CancellationToken,
    ) -> Step {
        let on = match self
            .db
            .read(|c| crate::context::store::stream_on(c, "audio"))
            .await
        {
            Ok(on) => on,
            Err(e) => {
                self.set_state("degraded", format!("cannot read cowork.db: {e}"));
                return Step::Idle;
            }
        };
        if !on {
            if loaded.take().is_some() {
                self.set(|s| s.loaded = false);
            }
            self.set_state("off", "the audio stream is off (coworkctl audio enable)");
            return Step::Idle;
        }
        if self.paused_by_heat() {
            if loaded.take().is_some() {
                self.set(|s| s.loaded = false);
                tracing::warn!("Whisper model unloaded: the machine is critically hot");
            }
            self.set_state(
                "paused",
                "the machine was critically hot: transcription waits until local AI is restored",
            );
            return Step::Idle;
        }
        let next = match self.db.read(store::next_pending).await {
            Ok(n) => n,
            Err(e) => {
                self.set_state("degraded", format!("cannot read cowork.db: {e}"));
                return Step::Idle;
            }
        };
        let Some(seg) = next else {
            self.set_state("idle", "nothing to transcribe");
            return Step::Idle;
        };
        // The model: chosen by hardware, loaded on demand.
        let choice = match model::choose(
            hw,
            &model::discover(&self.model_dirs),
            &cfg.model,
            &cfg.language,
        ) {
            Ok(c) => c,
            Err(e) => {
                self.set(|s| s.model = None);
                self.set_state("degraded", format!("{e}; recorded audio waits"));
                return Step::Idle;
            }
        };
        self.set(|s| s.model = Some(choice.clone()));
        if loaded
            .as_ref()
            .is_some_and(|(w, _)| w.path() != choice.model.path)
        {
            *loaded = None;
        }
        if loaded.is_none() {
            let path = choice.model.path.clone();
            let t = Instant::now();
            match tokio::task::spawn_blocking(move || whisper::Whisper::load(&path)).await {
                Ok(Ok(w)) => {
                    tracing::info!(model = %choice.model.name, ms = t.elapsed().as_millis() as u64, "Whisper model loaded");
                    *loaded = Some((Arc::new(w), Instant::now()));
                    self.set(|s| s.loaded = true);
                }
                Ok(Err(e)) => {
                    self.set_state("degraded", format!("{e}; recorded audio waits"));
                    return Step::Idle;
                }
                Err(e) => {
                    self.set_state("degraded", format!("loading the model failed: {e}"));
                    return Step::Idle;
                }
            }
        }
        let Some((engine, used)) = loaded.as_mut() else {
            return Step::Idle;
        };
        *used = Instant::now();
        self.set_state(
            "transcribing",
            format!(
                "segment {} ({} ms of audio)",
                seg.id,
                seg.ended_ms - seg.started_ms
            ),
        );
        let outcome = self
            .transcribe(engine.clone(), &seg, cfg, hw.cores, shutdown)
            .await;
        *used = Instant::now();
        let new = match outcome {
            Outcome::Stopped => return Step::Idle,
            Outcome::Stored(t) => t,
        };
        let keep = cfg.keep_audio;
        let file = seg.file.clone();
        let status = new.status;
        let (audio_ms, took_ms) = (new.audio_ms, new.took_ms);
        match self
            .db
            .write(move |c| store::insert(c, &new, now_ms()))
            .await
        {
            Ok(()) => {
                self.set(|s| {
                    s.last_audio_ms = audio_ms.max(0) as u64;
                    s.last_took_ms = took_ms.max(0) as u64;
                });
                tracing::info!(
                    segment = seg.id,
                    status = status.as_str(),
                    audio_ms,
                    took_ms,
                    "audio transcribed"
                );
                // Only once the transcript is committed does the audio go;
                // a failed one keeps its file (retention deletes it) for a
                // person to look at.
                let transcribed = matches!(status, store::Status::Done | store::Status::Empty);
                if transcribed && !keep && is_segment_file(&file) {
                    match std::fs::remove_file(self.audio_dir.join(&file)) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            tracing::warn!(%file, error = %e, "cannot delete a transcribed audio file")
                        }
                    }
                }
                Step::Worked
            }
            Err(e) => {
                self.set_state("degraded", format!("cannot store a transcript: {e}"));
                Step::Idle
            }
        }
    }

    /// Transcribe one segment (or say why it cannot be).
    async fn transcribe(
        &self,
        engine: Arc<whisper::Whisper>,
        seg: &store::Pending,
        cfg: &AudioConfig,
        cores: usize,
        shutdown: &CancellationToken,
    ) -> Outcome {
        let model_name = model::model_name(engine.path()).unwrap_or_default();
        let mut new = store::NewTranscript {
            segment: seg.clone(),
            status: store::Status::Failed,
            pieces: Vec::new(),
            model: model_name,
            audio_ms: seg.ended_ms - seg.started_ms,
            took_ms: 0,
            error: String::new(),
        };
        if !is_segment_file(&seg.file) {
            new.error = format!("{:?} is not a segment file name: not read", seg.file);
            return Outcome::Stored(new);
        }
        let path = self.audio_dir.join(&seg.file);
        if !path.exists() {
            new.status = store::Status::Missing;
            new.error = "the audio file is gone (deleted, or past [audio] retention_days)".into();
            return Outcome::Stored(new);
        }
        let abort = Arc::new(AtomicBool::new(false));
        let watch = {
            let (abort, me, shutdown) = (abort.clone(), self.clone(), shutdown.clone());
            tokio::spawn(async move {
                loop {
                    if shutdown.is_cancelled() || me.paused_by_heat() {
                        abort.store(true, Ordering::Relaxed);
                        return;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
            })
        };
        let (language, threads) = (cfg.language.clone(), cfg.threads_for(cores));
        let t = Instant::now();
        let flag = abort.clone();
        let result = tokio::task::spawn_blocking(move || {
            let samples = read_segment(&path)?;
            let audio_ms = samples.len() as i64 * 1000 / 16_000;
            engine
                .transcribe(&samples, &language, threads, flag)
                .map(|p| (p, audio_ms))
                .map_err(|e| match e {
                    whisper::WhisperError::Aborted => String::new(),
                    e => e.to_string(),
                })
        })
        .await;
        watch.abort();
        new.took_ms = t.elapsed().as_millis() as i64;
        match result {
            Ok(Ok((pieces, audio_ms))) => {
                new.audio_ms = audio_ms;
                new.status = if pieces.is_empty() {
                    store::Status::Empty
                } else {
                    store::Status::Done
                };
                new.pieces = pieces;
            }
            Ok(Err(e)) if e.is_empty() || abort.load(Ordering::Relaxed) => {
                tracing::info!(segment = seg.id, "transcription stopped; the segment waits");
                return Outcome::Stopped;
            }
            Ok(Err(e)) => new.error = e,
            Err(e) => new.error = format!("the transcription task failed: {e}"),
        }
        Outcome::Stored(new)
    }
}

enum Step {
    /// A segment was transcribed: look for the next at once.
    Worked,
    /// Nothing (or nothing possible) now.
    Idle,
}

enum Outcome {
    /// Stopped (heat, shutdown): the segment stays in the queue.
    Stopped,
    /// A transcript to store (done, empty, failed or missing).
    Stored(store::NewTranscript),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_keys_and_threads() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.toml");
        assert_eq!(AudioConfig::load(&p).unwrap(), AudioConfig::default());
        std::fs::write(
            &p,
            "[audio]\nkeep_audio = true\nsource = \"sim\"\nsim_files = [\"a.wav\"]\nthreads = 3\n",
        )
        .unwrap();
        let c = AudioConfig::load(&p).unwrap();
        assert!(c.keep_audio);
        assert_eq!(c.threads_for(8), 3);
        assert_eq!(AudioConfig::default().threads_for(2), 1);
        assert_eq!(AudioConfig::default().threads_for(8), 4);
        std::fs::write(&p, "[audio]\nkeep_audoi = true\n").unwrap();
        let e = AudioConfig::load(&p).unwrap_err();
        assert!(e.contains("unknown key \"keep_audoi\""), "{e}");
        std::fs::write(&p, "[audio]\nkeep_audio = \"yes\"\n").unwrap();
        assert!(AudioConfig::load(&p)
            .unwrap_err()
            .contains("[audio] is invalid"));
    }

    #[test]
    fn only_segment_names_are_read() {
        assert!(is_segment_file("seg-1700000000000-1700000004500.wav"));
        for bad in [
            "../seg-1-2.wav",
            "seg-1-2.wav/../../etc/passwd",
            "seg-1/2-3.wav",
            "seg--2.wav",
            "seg-1-2.wav.tmp",
            "/tmp/seg-1-2.wav",
            "seg-1-2.WAV",
        ] {
            assert!(!is_segment_file(bad), "{bad}");
        }
    }

    #[test]
    fn segments_must_be_16k_mono_16_bit() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        w.write_sample(1i16).unwrap();
        w.write_sample(1i16).unwrap();
        w.finalize().unwrap();
        let e = read_segment(&p).unwrap_err();
        assert!(e.contains("not a capture segment"), "{e}");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            ..spec
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        w.write_sample(16384i16).unwrap();
        w.finalize().unwrap();
        assert_eq!(read_segment(&p).unwrap(), vec![0.5]);
    }
}
