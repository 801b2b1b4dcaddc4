//! The recorder: one thread per recording, from a source of 16 kHz mono
//! samples (the microphone, or the sim source replaying WAV files) through
//! the gate to segment files. It tells the engine what it recorded and
//! how it is ([`AudioMsg`]); the engine writes the rows. It runs only while
//! the `audio` stream is on: turning it off stops the thread and drops the
//! open segment (nothing is kept from after consent was withdrawn).

use super::vad::{Segment, Vad, SAMPLE_RATE};
use super::{wav, AudioSegmentRow, AudioSettings, AudioSourceKind, SegmentName};
use crate::source::now_ms;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the recorder tells the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioMsg {
    /// A segment file was written (its row is the engine's to write).
    Segment(AudioSegmentRow),
    /// The recorder's state: `Ok(detail)` or `Err(reason)`.
    Health(Result<String, String>),
}

const RUN: u8 = 0;
/// Stop and drop the open segment (consent withdrawn).
const STOP_DISCARD: u8 = 1;
/// Stop and keep the open segment (shutdown).
const STOP_KEEP: u8 = 2;

/// A running recording.
#[derive(Debug)]
pub struct Recorder {
    stop: Arc<AtomicU8>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Microphone blocks dropped because the recorder fell behind.
    pub dropped: Arc<AtomicU64>,
}

impl Recorder {
    /// Start recording with `settings` into `dir`, reporting to `out`
    /// (which returns false once the engine is gone).
    pub fn start(
        settings: AudioSettings,
        dir: PathBuf,
        out: impl Fn(AudioMsg) -> bool + Send + 'static,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let stop = Arc::new(AtomicU8::new(RUN));
        let dropped = Arc::new(AtomicU64::new(0));
        let (s, d) = (stop.clone(), dropped.clone());
        let thread = std::thread::Builder::new()
            .name("capture-audio".into())
            .spawn(move || {
                let mut run = Run {
                    vad: Vad::new(settings.vad()),
                    settings,
                    dir,
                    stop: s,
                    out: Box::new(out),
                    t0_ms: now_ms(),
                    rate: 1.0,
                    segments: 0,
                };
                run.run(d);
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
            dropped,
        })
    }

    /// Stop and wait for the thread. With `keep_open`, a segment being
    /// recorded is closed and written (shutdown); without, it is dropped
    /// (consent withdrawn).
    pub fn stop(mut self, keep_open: bool) {
        self.stop.store(
            if keep_open { STOP_KEEP } else { STOP_DISCARD },
            Ordering::SeqCst,
        );
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(STOP_DISCARD, Ordering::SeqCst);
    }
}

struct Run {
    settings: AudioSettings,
    dir: PathBuf,
    vad: Vad,
    stop: Arc<AtomicU8>,
    out: Box<dyn Fn(AudioMsg) -> bool + Send>,
    /// The wall time of sample 0 (moved when the microphone's stream
    /// drifts from the wall clock, as after dropped blocks).
    t0_ms: i64,
    /// Stream time per wall time: a sim replay's speed, else 1.
    rate: f64,
    segments: u64,
}

impl Run {
    fn stopping(&self) -> Option<u8> {
        match self.stop.load(Ordering::SeqCst) {
            RUN => None,
            s => Some(s),
        }
    }

    fn run(&mut self, dropped: Arc<AtomicU64>) {
        match self.settings.source {
            AudioSourceKind::Sim => self.sim(),
            AudioSourceKind::Microphone => self.microphone(dropped),
        }
        if self.stopping() == Some(STOP_KEEP) {
            let segs = self.vad.finish();
            self.emit(segs, self.settings.source.name());
        }
    }

    /// Idle until told to stop.
    fn park(&self) {
        while self.stopping().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn sim(&mut self) {
        if self.settings.sim_files.is_empty() {
            (self.out)(AudioMsg::Health(Err(
                "[audio] source = \"sim\" needs sim_files (WAV files to replay)".into(),
            )));
            return self.park();
        }
        let mut clips = Vec::new();
        for f in &self.settings.sim_files {
            match wav::read_16k_mono(f) {
                Ok(s) => clips.push(s),
                Err(e) => {
                    (self.out)(AudioMsg::Health(Err(format!("sim audio: {e}"))));
                    return self.park();
                }
            }
        }
        // A second of silence after each file, so its last words close.
        let gap = vec![0i16; SAMPLE_RATE as usize];
        let total: usize = clips.iter().map(|c| c.len() + gap.len()).sum();
        let speed = self.settings.sim_speed;
        // As fast as possible: as if the files had just finished playing;
        // otherwise the replay's own pace.
        if speed == 0.0 {
            self.t0_ms = now_ms() - (total as i64 * 1000 / i64::from(SAMPLE_RATE));
        } else {
            self.t0_ms = now_ms();
            self.rate = speed;
        }
        (self.out)(AudioMsg::Health(Ok(format!(
            "sim: replaying {} file(s)",
            clips.len()
        ))));
        const BLOCK: usize = 1600; // 100 ms
        for clip in &clips {
            for block in clip.chunks(BLOCK).chain(gap.chunks(BLOCK)) {
                if self.stopping().is_some() {
                    return;
                }
                let segs = self.vad.push(block);
                self.emit(segs, "sim");
                if speed > 0.0 {
                    std::thread::sleep(Duration::from_secs_f64(0.1 / speed));
                }
            }
        }
        let segs = self.vad.finish();
        self.emit(segs, "sim");
        (self.out)(AudioMsg::Health(Ok(format!(
            "sim: replayed {} file(s) into {} segment(s)",
            clips.len(),
            self.segments
        ))));
        self.park();
    }

    #[cfg(any(target_os = "linux", target_os = "macos"))]
    fn microphone(&mut self, dropped: Arc<AtomicU64>) {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<i16>>(256);
        let (etx, erx) = std::sync::mpsc::sync_channel::<String>(4);
        let mic = match super::mic::open(&self.settings.device, tx, etx, dropped) {
            Ok(m) => m,
            Err(e) => {
                (self.out)(AudioMsg::Health(Err(format!("audio: {e}"))));
                return self.park();
            }
        };
        (self.out)(AudioMsg::Health(Ok(format!(
            "microphone: {}",
            mic.description
        ))));
        self.t0_ms = now_ms();
        let mut fed: u64 = 0;
        while self.stopping().is_none() {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(block) => {
                    fed += block.len() as u64;
                    // The block just arrived ends now: if the stream's
                    // clock and the wall clock parted by more than 250 ms
                    // (blocks dropped, device drift), the wall clock wins.
                    let anchor = now_ms() - (fed * 1000 / u64::from(SAMPLE_RATE)) as i64;
                    if (anchor - self.t0_ms).abs() > 250 {
                        self.t0_ms = anchor;
                    }
                    let segs = self.vad.push(&block);
                    self.emit(segs, "microphone");
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if let Ok(e) = erx.try_recv() {
                (self.out)(AudioMsg::Health(Err(format!("audio: microphone: {e}"))));
            }
        }
        drop(mic);
    }

    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    fn microphone(&mut self, _dropped: Arc<AtomicU64>) {
        (self.out)(AudioMsg::Health(Err(
            "audio: microphone capture is not built for this system".into(),
        )));
        self.park();
    }

    /// Write each segment's file and report it.
    fn emit(&mut self, segs: Vec<Segment>, source: &'static str) {
        for seg in segs {
            let stream_ms = seg.start_sample as f64 * 1000.0 / f64::from(SAMPLE_RATE);
            let started_ms = self.t0_ms + (stream_ms / self.rate) as i64;
            let name = SegmentName {
                started_ms,
                ended_ms: started_ms + (seg.duration_ms() as f64 / self.rate) as i64,
            };
            let file = name.file_name();
            match write_segment(&self.dir, &file, &seg.samples) {
                Ok(()) => {
                    self.segments += 1;
                    tracing::debug!(%file, ms = seg.duration_ms(), "audio segment recorded");
                    (self.out)(AudioMsg::Segment(AudioSegmentRow {
                        file,
                        started_ms: name.started_ms,
                        ended_ms: name.ended_ms,
                        samples: seg.samples.len() as u64,
                        speech_ms: seg.speech_ms,
                        peak_db: seg.peak_db,
                        source,
                    }));
                }
                Err(e) => {
                    tracing::error!(error = %e, "audio segment lost");
                    (self.out)(AudioMsg::Health(Err(format!("audio: {e}"))));
                }
            }
        }
    }
}

fn write_segment(dir: &Path, file: &str, samples: &[i16]) -> Result<(), wav::WavError> {
    wav::write_atomic(&dir.join(file), samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn sim_replays_files_into_segment_files_and_reports() {
        let dir = tempfile::tempdir().unwrap();
        let clip = dir.path().join("clip.wav");
        // 0.5 s silence, 1 s tone, 0.5 s silence.
        let mut s = vec![0i16; 8000];
        s.extend((0..16_000).map(|i| ((i as f32 * 0.17).sin() * 9000.0) as i16));
        s.extend(vec![0i16; 8000]);
        wav::write_atomic(&clip, &s).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let settings = AudioSettings {
            source: AudioSourceKind::Sim,
            sim_files: vec![clip],
            sim_speed: 0.0,
            ..Default::default()
        };
        let out_dir = dir.path().join("audio");
        let r = Recorder::start(settings, out_dir.clone(), move |m| {
            g.lock().unwrap().push(m);
            true
        })
        .unwrap();
        for _ in 0..200 {
            if got
                .lock()
                .unwrap()
                .iter()
                .any(|m| matches!(m, AudioMsg::Health(Ok(d)) if d.contains("replayed")))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        r.stop(true);
        let got = got.lock().unwrap();
        let segs: Vec<_> = got
            .iter()
            .filter_map(|m| match m {
                AudioMsg::Segment(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(segs.len(), 1, "{got:?}");
        assert_eq!(segs[0].source, "sim");
        assert_eq!(segs[0].speech_ms, 1000);
        let back = wav::read_16k_mono(&out_dir.join(&segs[0].file)).unwrap();
        assert_eq!(back.len() as u64, segs[0].samples);
        assert_eq!(
            SegmentName::parse(&segs[0].file).map(|n| n.ended_ms - n.started_ms),
            Some(segs[0].ended_ms - segs[0].started_ms)
        );
        assert!(matches!(got.last(), Some(AudioMsg::Health(Ok(d))) if d.contains("1 segment")));
    }

    #[test]
    fn a_missing_sim_file_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let r = Recorder::start(
            AudioSettings {
                source: AudioSourceKind::Sim,
                sim_files: vec![dir.path().join("nope.wav")],
                ..Default::default()
            },
            dir.path().join("audio"),
            move |m| {
                g.lock().unwrap().push(m);
                true
            },
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        r.stop(false);
        let got = got.lock().unwrap();
        assert!(
            matches!(got.first(), Some(AudioMsg::Health(Err(e))) if e.contains("nope.wav: not a readable WAV file")),
            "{got:?}"
        );
    }
}
