//! The `[capture]` section of `$COWORK_HOME/config.toml`. Every key is
//! optional; other sections belong to other processes and are ignored.

use crate::privacy::{Privacy, DEFAULT_DENYLIST, DEFAULT_REDACT};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// X11 when a display is reachable; otherwise the worker reports
    /// itself degraded (it never pretends).
    #[default]
    Auto,
    /// The X11 source (EWMH, XScreenSaver, RECORD, CLIPBOARD).
    X11,
    /// The simulation source: replays `sim_script`.
    Sim,
}

impl SourceKind {
    /// "auto", "x11" or "sim".
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Auto => "auto",
            SourceKind::X11 => "x11",
            SourceKind::Sim => "sim",
        }
    }
}

/// `[capture]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureConfig {
    /// "auto" | "x11" | "sim".
    pub source: SourceKind,
    /// The JSONL script the sim source replays (relative paths are relative
    /// to the Cowork home).
    pub sim_script: Option<PathBuf>,
    /// Replay speed: 1 = real time, 10 = ten times faster, 0 = as fast as
    /// possible.
    pub sim_speed: f64,
    /// Where the replay's clock starts, in seconds from now (negative: a
    /// script that happened two days ago is `-172800`); 0 = now.
    pub sim_clock_offset_s: i64,
    /// Apps never recorded (matched case-insensitively against app name
    /// and app id). Replaces the default list of password managers.
    pub denylist: Vec<String>,
    /// More apps never recorded, on top of `denylist`.
    pub denylist_extra: Vec<String>,
    /// Regular expressions redacted from titles, URLs, keystroke and
    /// clipboard text before anything is written. With a capture group,
    /// group 1 is kept (`(token=)\S+` → `token=[redacted]`).
    pub redact_patterns: Vec<String>,
    /// Days records are kept.
    pub retention_days: f64,
    /// How often retention runs, in seconds.
    pub retention_interval_s: u64,
    /// No input for this long is idle/AFK.
    pub idle_threshold_s: u64,
    /// A keystroke chunk closes after this long without keys.
    pub keystroke_debounce_ms: u64,
    /// Rows are committed at least this often (the most a SIGKILL can
    /// lose; capped at 1000).
    pub flush_interval_ms: u64,
    /// The `[audio]` section's recording keys (not part of `[capture]`).
    #[serde(skip)]
    pub audio: crate::audio::AudioSettings,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            source: SourceKind::Auto,
            sim_script: None,
            sim_speed: 1.0,
            sim_clock_offset_s: 0,
            denylist: DEFAULT_DENYLIST.iter().map(|s| s.to_string()).collect(),
            denylist_extra: Vec::new(),
            redact_patterns: DEFAULT_REDACT.iter().map(|s| s.to_string()).collect(),
            retention_days: 30.0,
            retention_interval_s: 3600,
            idle_threshold_s: 300,
            keystroke_debounce_ms: 2000,
            flush_interval_ms: 250,
            audio: crate::audio::AudioSettings::default(),
        }
    }
}

/// Errors reading `[capture]`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Not valid TOML, or `[capture]` has a wrong key or value.
    #[error("{path}: [capture] is invalid: {message}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// What TOML or the checks said.
        message: String,
    },
}

#[derive(Debug, Default, Deserialize)]
struct File {
    #[serde(default)]
    capture: CaptureConfig,
    #[serde(default)]
    audio: crate::audio::AudioSettings,
}

impl CaptureConfig {
    /// Read `[capture]` from `path`; a missing file means all defaults.
    pub fn load(path: &Path, home: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        Self::parse(&text, home).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parse a whole config file's text.
    pub fn parse(text: &str, home: &Path) -> Result<Self, String> {
        let file = toml::from_str::<File>(text).map_err(|e| e.to_string())?;
        let mut c = file.capture;
        c.audio = file.audio.normalize(home)?;
        if !(c.sim_speed >= 0.0 && c.sim_speed.is_finite()) {
            return Err(format!(
                "sim_speed must be 0 (as fast as possible) or a positive number, not {}",
                c.sim_speed
            ));
        }
        if !(c.retention_days > 0.0 && c.retention_days.is_finite()) {
            return Err(format!(
                "retention_days must be positive, not {}",
                c.retention_days
            ));
        }
        c.flush_interval_ms = c.flush_interval_ms.clamp(10, 1000);
        c.retention_interval_s = c.retention_interval_s.max(1);
        if let Some(p) = c.sim_script.take() {
            c.sim_script = Some(if p.is_absolute() { p } else { home.join(p) });
        }
        c.privacy()?;
        Ok(c)
    }

    /// The privacy filter these settings describe.
    pub fn privacy(&self) -> Result<Privacy, String> {
        Privacy::new(
            self.denylist.iter().chain(&self.denylist_extra).cloned(),
            self.redact_patterns.iter().cloned(),
        )
        .map_err(|e| e.to_string())
    }

    /// Retention as milliseconds.
    pub fn retention_ms(&self) -> i64 {
        (self.retention_days * 86_400_000.0) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_other_sections_are_ignored() {
        let c = CaptureConfig::parse("[supervisor]\nmax_restarts = 3\n", Path::new("/h")).unwrap();
        assert_eq!(c, CaptureConfig::default());
        assert_eq!(c.retention_days, 30.0);
        assert!(c.privacy().unwrap().is_denied(&crate::event::WindowInfo {
            app: "Bitwarden".into(),
            ..Default::default()
        }));
    }

    #[test]
    fn sim_settings_and_relative_script() {
        let c = CaptureConfig::parse(
            "[capture]\nsource = \"sim\"\nsim_script = \"demo.jsonl\"\nsim_speed = 0\n\
             sim_clock_offset_s = -172800\n",
            Path::new("/h"),
        )
        .unwrap();
        assert_eq!(c.source, SourceKind::Sim);
        assert_eq!(c.sim_script.as_deref(), Some(Path::new("/h/demo.jsonl")));
        assert_eq!(c.sim_speed, 0.0);
        assert_eq!(c.sim_clock_offset_s, -172_800);
    }

    #[test]
    fn bad_values_are_clear_errors() {
        for (text, needle) in [
            ("[capture]\nsource = \"wayland\"\n", "wayland"),
            ("[capture]\nsim_speed = -1\n", "sim_speed"),
            ("[capture]\nredact_patterns = [\"(\"]\n", "redact pattern"),
            ("[capture]\nretention_dayz = 3\n", "retention_dayz"),
        ] {
            let e = CaptureConfig::parse(text, Path::new("/h")).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
