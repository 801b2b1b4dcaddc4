//! Why a browser action failed, in words the caller can act on.

use crate::config::ConfigError;
use crate::store::StoreError;

/// Why an action failed.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// config.toml's `[browser]` cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Chromium could not be opened.
    #[error("cannot open the browser: {0}")]
    Launch(String),
    /// The page stopped answering, Chromium died or its socket was lost:
    /// it was killed and opens again at the next action.
    #[error(
        "{0}; Chromium was stopped and opens again, with the same profile, at the next action"
    )]
    Lost(String),
    /// Bad input: an unknown or stale ref, a bad URL, no such tab.
    #[error("{0}")]
    Invalid(String),
    /// What was waited for did not happen.
    #[error("{0}")]
    NotFound(String),
    /// The page refused (a script threw, a command failed).
    #[error("{0}")]
    Page(String),
    /// The execution log could not be written or read.
    #[error("execution log: {0}")]
    Log(#[from] StoreError),
}
