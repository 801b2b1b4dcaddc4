//! The machine's heat (seed 003 "Thermal Management"): coworkd reads the
//! level and reports it here; this domain decides what local AI does.
//! People never see the word "thermal": they read that local AI was paused
//! because the machine was getting hot, and that it can be restored.
//!
//! Pure: [`Level`], [`Mode`] and [`step`] (what a reading changes). Runtime:
//! [`Thermal`] (stops sessions, pauses embedding through
//! `llm::managed::sessions`, notifies). `service.rs`: `cowork.thermal.v1`.

pub mod service;

use crate::config::AgentsConfig;
use crate::llm::detect::EngineWatch;
use crate::notifications::{Notifier, Raise};
use crate::util::now_ms;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A reading's level (macOS's thermalState names; Linux readings are
/// mapped onto them by coworkd).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Cool.
    Nominal,
    /// Warm; nothing to do.
    Fair,
    /// Hot: local chat models stop, embedding pauses.
    Serious,
    /// Very hot: all local inference stops.
    Critical,
}

impl Level {
    /// Parse a level's name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "nominal" => Some(Self::Nominal),
            "fair" => Some(Self::Fair),
            "serious" => Some(Self::Serious),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nominal => "nominal",
            Self::Fair => "fair",
            Self::Serious => "serious",
            Self::Critical => "critical",
        }
    }
}

/// What local AI is doing about the heat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As usual.
    Normal,
    /// Chat models stopped, embedding paused (serious).
    LocalPaused,
    /// All local inference stopped (critical).
    AllPaused,
    /// Cool again; waits for the person to restore (never automatic: a
    /// cold start is expensive, and a flapping reading must not toggle
    /// sessions).
    Cooled,
}

impl Mode {
    /// Its name, as `cowork.thermal.v1.State.mode` says it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::LocalPaused => "local_paused",
            Self::AllPaused => "all_paused",
            Self::Cooled => "cooled",
        }
    }
}

/// What a reading asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing changes.
    Nothing,
    /// Stop chat sessions, pause embedding.
    PauseLocal,
    /// Stop every local session.
    PauseAll,
    /// Offer to restore.
    OfferRestore,
}

/// The mode after a reading of `level` in `mode`, and what to do. Only
/// worse readings stop more; a cool reading after a pause offers a
/// restore once and restores nothing by itself.
pub fn step(mode: Mode, level: Level) -> (Mode, Action) {
    match (mode, level) {
        (Mode::AllPaused, Level::Critical | Level::Serious) => (Mode::AllPaused, Action::Nothing),
        (_, Level::Critical) => (Mode::AllPaused, Action::PauseAll),
        (Mode::LocalPaused, Level::Serious) => (mode, Action::Nothing),
        (_, Level::Serious) => (Mode::LocalPaused, Action::PauseLocal),
        (Mode::LocalPaused | Mode::AllPaused, _) => (Mode::Cooled, Action::OfferRestore),
        (m, _) => (m, Action::Nothing),
    }
}

/// The state the service reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The last reading.
    pub level: Level,
    /// What local AI is doing.
    pub mode: Mode,
    /// Where the reading came from.
    pub source: String,
    /// Since when (Unix ms).
    pub since_ms: i64,
    /// Chats go to the cloud meanwhile.
    pub cloud_allowed: bool,
    /// What was done, in words.
    pub detail: String,
}

/// The runtime (cheap to clone).
#[derive(Clone)]
pub struct Thermal {
    engines: EngineWatch,
    notifier: Notifier,
    config: PathBuf,
    state: Arc<Mutex<State>>,
    /// All local inference was paused (critical) and the person has not
    /// restored it since: cooling down alone restarts nothing, Whisper
    /// included (seed 003).
    all_paused: Arc<std::sync::atomic::AtomicBool>,
    /// One reading at a time.
    acting: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Thermal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Thermal").finish_non_exhaustive()
    }
}

impl Thermal {
    /// Acting on the engines `engines` sees (our sessions, a detected
    /// Ollama), telling the person through `notifier`.
    pub fn new(engines: EngineWatch, notifier: Notifier, config: PathBuf) -> Self {
        Self {
            engines,
            notifier,
            config,
            state: Arc::new(Mutex::new(State {
                level: Level::Nominal,
                mode: Mode::Normal,
                source: String::new(),
                since_ms: now_ms(),
                cloud_allowed: false,
                detail: String::new(),
            })),
            all_paused: Default::default(),
            acting: Default::default(),
        }
    }

    /// Whether all local inference is paused for heat until the person
    /// restores it (transcription waits meanwhile).
    pub fn all_local_paused(&self) -> bool {
        self.all_paused.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The state now.
    pub fn get(&self) -> State {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        s.cloud_allowed = self.cloud_allowed();
        s
    }

    /// Whether a cloud provider has a key (the person chose a cloud model).
    fn cloud_allowed(&self) -> bool {
        AgentsConfig::load(&self.config)
            .and_then(|c| c.cloud_here())
            .is_ok_and(|c| !c.is_empty())
    }

    /// coworkd's reading: act on a change.
    pub async fn report(&self, level: Level, source: String) -> State {
        let _one = self.acting.lock().await;
        let mode = self.state.lock().unwrap_or_else(|e| e.into_inner()).mode;
        let (next, action) = step(mode, level);
        let cloud = self.cloud_allowed();
        let (detail, title, body) = match action {
            Action::Nothing => (None, None, String::new()),
            Action::PauseLocal => {
                let n = self.pause(false).await;
                let title = if cloud {
                    "Switched to cloud — machine was getting hot"
                } else {
                    "Local AI paused — machine was getting hot"
                };
                (
                    Some(format!("{n} local chat model(s) stopped; embedding paused")),
                    Some(title),
                    if cloud {
                        "Chats use your cloud model until you restore local AI.".to_string()
                    } else {
                        "Chats wait until the machine cools down and you restore local AI."
                            .to_string()
                    },
                )
            }
            Action::PauseAll => {
                self.all_paused
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                let n = self.pause(true).await;
                let title = if cloud {
                    "All AI moved to cloud"
                } else {
                    "All local AI paused — machine was getting hot"
                };
                (
                    Some(format!("all {n} local model session(s) stopped")),
                    Some(title),
                    "Local models stay off until you restore them.".to_string(),
                )
            }
            Action::OfferRestore => (
                Some("cool again; waiting for you to restore local AI".to_string()),
                Some("Cooled down. Tap to restore local AI."),
                "Accept to reload your local models.".to_string(),
            ),
        };
        {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.level = level;
            s.source = source;
            if next != s.mode {
                s.mode = next;
                s.since_ms = now_ms();
            }
            if let Some(d) = detail {
                s.detail = d;
            }
        }
        if let Some(title) = title {
            tracing::warn!(
                level = level.name(),
                mode = next.name(),
                "local AI follows the machine's heat"
            );
            let action = (action == Action::OfferRestore)
                .then(|| serde_json::json!({"kind": "restore_local"}));
            if let Err(e) = self
                .notifier
                .raise(Raise {
                    trigger_type: "system".into(),
                    tier: "urgent".into(),
                    title: title.into(),
                    body,
                    action,
                    bundle_key: String::new(),
                })
                .await
            {
                tracing::warn!(error = %e, "cannot tell the person");
            }
        }
        self.get()
    }

    /// Stop our sessions (chat ones, or `all`) and unload a detected
    /// Ollama's model: how many models were stopped.
    async fn pause(&self, all: bool) -> usize {
        let n = self
            .engines
            .sessions()
            .pause_local(pause_reason(), all)
            .await;
        let ollama = self.engines.unload_ollama().await;
        if !ollama.is_empty() {
            tracing::info!(engines = ?ollama, "Ollama unloaded its model");
        }
        n + ollama.len()
    }

    /// The person restores local AI: sessions reload, embedding goes on.
    pub async fn restore_local(&self) -> State {
        let _one = self.acting.lock().await;
        let n = self.engines.sessions().resume_local();
        self.all_paused
            .store(false, std::sync::atomic::Ordering::SeqCst);
        {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.mode = Mode::Normal;
            s.since_ms = now_ms();
            s.detail = format!("restored: {n} local model session(s) reloading");
        }
        tracing::info!(sessions = n, "local AI restored");
        self.get()
    }
}

/// Why local AI is paused, in the person's words.
fn pause_reason() -> String {
    "the machine was getting hot".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heat_pauses_and_cool_only_offers() {
        assert_eq!(
            step(Mode::Normal, Level::Fair),
            (Mode::Normal, Action::Nothing)
        );
        assert_eq!(
            step(Mode::Normal, Level::Serious),
            (Mode::LocalPaused, Action::PauseLocal)
        );
        assert_eq!(
            step(Mode::LocalPaused, Level::Serious),
            (Mode::LocalPaused, Action::Nothing)
        );
        assert_eq!(
            step(Mode::LocalPaused, Level::Critical),
            (Mode::AllPaused, Action::PauseAll)
        );
        // Back from critical to serious: nothing restarts.
        assert_eq!(
            step(Mode::AllPaused, Level::Serious),
            (Mode::AllPaused, Action::Nothing)
        );
        assert_eq!(
            step(Mode::AllPaused, Level::Nominal),
            (Mode::Cooled, Action::OfferRestore)
        );
        // Flapping around the trip point after a cool-down: the offer is
        // made once; a new serious reading pauses again.
        assert_eq!(
            step(Mode::Cooled, Level::Fair),
            (Mode::Cooled, Action::Nothing)
        );
        assert_eq!(
            step(Mode::Cooled, Level::Serious),
            (Mode::LocalPaused, Action::PauseLocal)
        );
    }

    #[test]
    fn the_words_never_say_thermal() {
        for s in [
            pause_reason(),
            crate::llm::detect::paused_message(&pause_reason()),
        ] {
            assert!(!s.to_lowercase().contains("thermal"), "{s}");
        }
        let src = include_str!("mod.rs");
        for line in src
            .lines()
            .filter(|l| l.contains("title = ") || l.contains("\"Cooled"))
        {
            assert!(!line.to_lowercase().contains("thermal"), "{line}");
        }
    }
}
