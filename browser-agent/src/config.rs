//! `[browser]` in config.toml: which Chromium, headless or not, the
//! origins an agent may reach without asking, and the time limits. Read
//! again at every action, so a change applies without a restart (headless
//! and the executable apply at the next launch).

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why config.toml could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// config.toml.
        path: PathBuf,
        /// The OS's reason.
        source: std::io::Error,
    },
    /// `[browser]` is not valid.
    #[error("{path}: [browser]: {message}")]
    Invalid {
        /// config.toml.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The `[browser]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrowserConfig {
    /// Run Chromium without a window (default true); false shows it.
    pub headless: bool,
    /// The Chromium program (default `chromium`, found on PATH).
    pub executable: String,
    /// Origins (`http://127.0.0.1:8080`, `https://*.example.com`) an agent
    /// may navigate to without a person's approval; checked again after
    /// every redirect and for every new tab. Empty: every origin asks.
    pub allowed_origins: Vec<String>,
    /// Longest one CDP call may take before the page counts as hung and
    /// Chromium is killed and opened again (ms, default 15000).
    pub cdp_timeout_ms: u64,
    /// Longest one action may take in all (ms, default 30000).
    pub action_timeout_ms: u64,
    /// A snapshot's default character budget (default 12000).
    pub snapshot_max_chars: u32,
    /// Offer the browser's actions to agent operations as `browser__*`
    /// tools (default true; read by agents-agent).
    pub agent_tools: bool,
    /// Phase 4 of the approval policy for those tools: auto (default; the
    /// facts decide what asks), manual or default (read by agents-agent).
    pub approval_policy: String,
}

impl Default for BrowserConfig {
    fn default() -> Self {
        Self {
            headless: true,
            executable: "chromium".into(),
            allowed_origins: Vec::new(),
            cdp_timeout_ms: 15_000,
            action_timeout_ms: 30_000,
            snapshot_max_chars: 12_000,
            agent_tools: true,
            approval_policy: "auto".into(),
        }
    }
}

impl BrowserConfig {
    /// Read `[browser]` from `path`; a missing file means all defaults.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
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
        Self::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parse a whole config file's text (other sections are ignored).
    pub fn parse(text: &str) -> Result<Self, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let Some(section) = table.get("browser") else {
            return Ok(Self::default());
        };
        let c: BrowserConfig = section.clone().try_into().map_err(|e| e.to_string())?;
        for o in &c.allowed_origins {
            crate::policy::OriginPattern::parse(o)?;
        }
        if c.cdp_timeout_ms < 100 || c.action_timeout_ms < c.cdp_timeout_ms {
            return Err(format!(
                "cdp_timeout_ms ({}) must be at least 100 and at most action_timeout_ms ({})",
                c.cdp_timeout_ms, c.action_timeout_ms
            ));
        }
        Ok(c)
    }

    /// [`Self::cdp_timeout_ms`] as a duration.
    pub fn cdp_timeout(&self) -> Duration {
        Duration::from_millis(self.cdp_timeout_ms)
    }

    /// [`Self::action_timeout_ms`] as a duration.
    pub fn action_timeout(&self) -> Duration {
        Duration::from_millis(self.action_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_other_sections_and_bad_values() {
        assert_eq!(BrowserConfig::parse("").unwrap(), BrowserConfig::default());
        let c = BrowserConfig::parse(
            "[capture]\nx = 1\n[browser]\nheadless = false\nallowed_origins = [\"http://127.0.0.1:8000\"]\n",
        )
        .unwrap();
        assert!(!c.headless);
        assert_eq!(c.allowed_origins, ["http://127.0.0.1:8000"]);
        assert!(BrowserConfig::parse("[browser]\nheadles = true\n")
            .unwrap_err()
            .contains("headles"));
        assert!(BrowserConfig::parse("[browser]\nallowed_origins = [\"not a url\"]\n").is_err());
        assert!(BrowserConfig::parse("[browser]\ncdp_timeout_ms = 50000\n")
            .unwrap_err()
            .contains("action_timeout_ms"));
    }
}
