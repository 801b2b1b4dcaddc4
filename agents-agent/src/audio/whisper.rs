//! whisper.cpp through whisper-rs: the only code that touches it. A
//! loaded model transcribes 16 kHz mono samples into timed segments; an
//! abort flag stops it between compute steps (thermal critical, shutdown).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum WhisperError {
    /// The model file cannot be loaded.
    #[error("cannot load the Whisper model {path}: {message}")]
    Load {
        /// The file.
        path: PathBuf,
        /// What whisper.cpp said.
        message: String,
    },
    /// Transcription failed.
    #[error("whisper.cpp failed: {0}")]
    Run(String),
    /// Stopped by the abort flag.
    #[error("transcription was stopped")]
    Aborted,
}

/// One timed piece of a transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedText {
    /// Offset from the audio's start, ms.
    pub start_ms: i64,
    /// Offset of its end, ms.
    pub end_ms: i64,
    /// What was said.
    pub text: String,
}

/// A loaded model.
pub struct Whisper {
    /// Holds the model (the context) alive.
    state: std::sync::Mutex<WhisperState>,
    path: PathBuf,
}

impl std::fmt::Debug for Whisper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Whisper").field("path", &self.path).finish()
    }
}

impl Whisper {
    /// Load the ggml model at `path` (blocking: call off the async
    /// threads).
    pub fn load(path: &Path) -> Result<Self, WhisperError> {
        whisper_rs::install_logging_hooks();
        if !path.is_file() {
            return Err(WhisperError::Load {
                path: path.to_path_buf(),
                message: "no such file".into(),
            });
        }
        // (Flash attention, the CLI's default, was 30 % slower with this
        // whisper.cpp on this CPU in the benchmark: off, whisper-rs's
        // default.)
        let ctx = WhisperContext::new_with_params(path, WhisperContextParameters::default())
            .map_err(|e| WhisperError::Load {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        // One state (its compute buffers, ~130 MB for tiny) made with the
        // model and reused by every transcription: making it each time cost
        // a fifth of a 10 s clip's time in the benchmark.
        let state = ctx.create_state().map_err(|e| WhisperError::Load {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Self {
            state: std::sync::Mutex::new(state),
            path: path.to_path_buf(),
        })
    }

    /// Transcribe `samples` (16 kHz mono, [-1, 1]) on `threads` threads;
    /// `language` "auto" detects it. Blocking.
    pub fn transcribe(
        &self,
        samples: &[f32],
        language: &str,
        threads: usize,
        abort: Arc<AtomicBool>,
    ) -> Result<Vec<TimedText>, WhisperError> {
        // A panic while it was held cannot have left whisper.cpp's state
        // half-way (nothing in `full` unwinds through C++): take it back.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut p = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        p.set_n_threads(threads.max(1) as i32);
        p.set_language(Some(language));
        p.set_print_special(false);
        p.set_print_progress(false);
        p.set_print_realtime(false);
        p.set_print_timestamps(false);
        p.set_no_context(true);
        p.set_suppress_blank(true);
        // whisper-rs 0.16's `set_abort_callback_safe` hands whisper.cpp a
        // pointer to a boxed trait object but reads it back as the closure
        // itself (it aborted every encode here: error -6); so the raw
        // callback, with the flag itself as its data.
        // SAFETY: `abort_if_set` only reads an AtomicBool through the
        // pointer, and `abort` (an Arc we hold) outlives `full`, the only
        // call that uses it.
        unsafe {
            p.set_abort_callback(Some(abort_if_set));
            p.set_abort_callback_user_data(Arc::as_ptr(&abort) as *mut std::ffi::c_void);
        }
        let r = state.full(p, samples);
        if abort.load(Ordering::Relaxed) {
            return Err(WhisperError::Aborted);
        }
        r.map_err(|e| WhisperError::Run(e.to_string()))?;
        let mut out = Vec::new();
        for seg in state.as_iter() {
            let text = seg
                .to_str_lossy()
                .map_err(|e| WhisperError::Run(e.to_string()))?
                .trim()
                .to_owned();
            if text.is_empty() || is_non_speech(&text) {
                continue;
            }
            // whisper.cpp counts in centiseconds.
            out.push(TimedText {
                start_ms: seg.start_timestamp() * 10,
                end_ms: seg.end_timestamp() * 10,
                text,
            });
        }
        Ok(out)
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// whisper.cpp's abort callback: the flag `data` points to.
unsafe extern "C" fn abort_if_set(data: *mut std::ffi::c_void) -> bool {
    // SAFETY: `data` is the AtomicBool `transcribe` keeps alive (see there).
    let flag = unsafe { &*(data as *const AtomicBool) };
    flag.load(Ordering::Relaxed)
}

/// Whisper's markers for what is not speech ("[BLANK_AUDIO]", "(music)").
pub fn is_non_speech(text: &str) -> bool {
    let t = text.trim();
    (t.starts_with('[') && t.ends_with(']')) || (t.starts_with('(') && t.ends_with(')'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_not_speech() {
        assert!(is_non_speech("[BLANK_AUDIO]"));
        assert!(is_non_speech(" (music) "));
        assert!(!is_non_speech("Ever tried. Ever failed."));
    }

    #[test]
    fn a_missing_model_says_which_file() {
        let e = Whisper::load(Path::new("/nonexistent/ggml-tiny.en.bin")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot load the Whisper model /nonexistent/ggml-tiny.en.bin: no such file"
        );
    }
}
