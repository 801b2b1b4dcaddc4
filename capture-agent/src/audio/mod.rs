//! The `audio` stream (seed 003 "Audio (The Ears)"): microphone audio, cut
//! into voice-activity-gated 16 kHz mono segments, each written to
//! `$COWORK_HOME/audio/` as a WAV file with a row in
//! `capture_audio_segments`. Capture only records: transcription is
//! agents-agent's (CPU-heavy work never runs in capture), and nothing here
//! sends audio anywhere.
//!
//! Pure: [`vad`] (the gate), the settings and [`SegmentName`]. Adapters:
//! [`wav`] (files), [`folder`] (crash recovery, retention), `mic` (cpal),
//! [`recorder`] (the thread tying a source of samples to the gate and the
//! files).

pub mod folder;
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub mod mic;
pub mod recorder;
pub mod vad;
pub mod wav;

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where audio comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AudioSourceKind {
    /// The microphone (`device`, or the default input).
    #[default]
    Microphone,
    /// The simulation source: replays `sim_files`.
    Sim,
}

impl AudioSourceKind {
    /// "microphone" or "sim".
    pub fn name(self) -> &'static str {
        match self {
            AudioSourceKind::Microphone => "microphone",
            AudioSourceKind::Sim => "sim",
        }
    }
}

/// Capture's keys of `[audio]` (agents-agent reads the transcription keys
/// of the same section; each ignores the other's).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct AudioSettings {
    /// "microphone" | "sim".
    pub source: AudioSourceKind,
    /// The input device's name; empty = the system's default input.
    pub device: String,
    /// WAV files the sim source replays, in order (relative paths are
    /// relative to the Cowork home).
    pub sim_files: Vec<PathBuf>,
    /// Replay speed: 1 = real time, 0 = as fast as possible.
    pub sim_speed: f64,
    /// dB above the noise floor that counts as speech.
    pub vad_threshold_db: f32,
    /// Silence that ends a segment, ms.
    pub silence_ms: u64,
    /// Speech a segment needs to be kept, ms.
    pub min_speech_ms: u64,
    /// The longest segment, seconds.
    pub max_segment_s: u64,
    /// Days an audio file is kept at most, transcribed or not (agents-agent
    /// deletes it as soon as it is transcribed unless `keep_audio`).
    pub retention_days: f64,
}

impl Default for AudioSettings {
    fn default() -> Self {
        let v = vad::VadSettings::default();
        Self {
            source: AudioSourceKind::Microphone,
            device: String::new(),
            sim_files: Vec::new(),
            sim_speed: 1.0,
            vad_threshold_db: v.threshold_db,
            silence_ms: v.silence_ms,
            min_speech_ms: v.min_speech_ms,
            max_segment_s: v.max_segment_ms / 1000,
            retention_days: 7.0,
        }
    }
}

impl AudioSettings {
    /// Check values and make sim paths absolute.
    pub fn normalize(mut self, home: &Path) -> Result<Self, String> {
        if !(self.sim_speed >= 0.0 && self.sim_speed.is_finite()) {
            return Err(format!(
                "[audio] sim_speed must be 0 (as fast as possible) or positive, not {}",
                self.sim_speed
            ));
        }
        if !(self.retention_days > 0.0 && self.retention_days.is_finite()) {
            return Err(format!(
                "[audio] retention_days must be positive, not {}",
                self.retention_days
            ));
        }
        if !(1..=30).contains(&self.max_segment_s) {
            return Err(format!(
                "[audio] max_segment_s must be 1 to 30 (Whisper reads 30 s at a time), not {}",
                self.max_segment_s
            ));
        }
        if !(100..=10_000).contains(&self.silence_ms) {
            return Err(format!(
                "[audio] silence_ms must be 100 to 10000, not {}",
                self.silence_ms
            ));
        }
        if self.min_speech_ms > 10_000 {
            return Err(format!(
                "[audio] min_speech_ms must be at most 10000, not {}",
                self.min_speech_ms
            ));
        }
        if !(self.vad_threshold_db > 0.0 && self.vad_threshold_db < 60.0) {
            return Err(format!(
                "[audio] vad_threshold_db must be between 0 and 60, not {}",
                self.vad_threshold_db
            ));
        }
        self.sim_files = self
            .sim_files
            .into_iter()
            .map(|p| if p.is_absolute() { p } else { home.join(p) })
            .collect();
        Ok(self)
    }

    /// The gate these settings describe.
    pub fn vad(&self) -> vad::VadSettings {
        vad::VadSettings {
            threshold_db: self.vad_threshold_db,
            silence_ms: self.silence_ms,
            min_speech_ms: self.min_speech_ms,
            max_segment_ms: self.max_segment_s * 1000,
            ..vad::VadSettings::default()
        }
    }

    /// Retention of audio files, ms.
    pub fn retention_ms(&self) -> i64 {
        (self.retention_days * 86_400_000.0) as i64
    }
}

/// A segment file's name (`seg-<start>-<end>.wav`): a contract with
/// agents-agent, which reads and deletes these files, so it is shared.
pub use cowork_proto::paths::SegmentName;

/// One recorded segment, as its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSegmentRow {
    /// File name in the audio folder.
    pub file: String,
    /// Start, Unix ms.
    pub started_ms: i64,
    /// End, Unix ms.
    pub ended_ms: i64,
    /// Samples in the file (16 kHz mono).
    pub samples: u64,
    /// Speech in it, ms (what the gate heard).
    pub speech_ms: u64,
    /// Its loudest 20 ms, dBFS (0 when unknown).
    pub peak_db: i16,
    /// "microphone", "sim" or "recovered".
    pub source: &'static str,
}

/// The audio folder of a Cowork home.
pub fn audio_dir(home: &Path) -> PathBuf {
    home.join("audio")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_and_sim_paths_resolved() {
        let home = Path::new("/h");
        let s = AudioSettings {
            sim_files: vec!["a.wav".into(), "/x/b.wav".into()],
            ..Default::default()
        }
        .normalize(home)
        .unwrap();
        assert_eq!(
            s.sim_files,
            vec![PathBuf::from("/h/a.wav"), PathBuf::from("/x/b.wav")]
        );
        assert_eq!(s.vad().max_segment_ms, 30_000);
        for bad in [
            AudioSettings {
                sim_speed: -1.0,
                ..Default::default()
            },
            AudioSettings {
                max_segment_s: 31,
                ..Default::default()
            },
            AudioSettings {
                retention_days: 0.0,
                ..Default::default()
            },
            AudioSettings {
                vad_threshold_db: 0.0,
                ..Default::default()
            },
        ] {
            assert!(bad.normalize(home).is_err());
        }
    }
}
