//! What agents-agent can answer with right now: the local engines found by
//! probing (chat's main instance and the background jobs' cron instance)
//! and the cloud providers that have a key. Re-detected every
//! [`WATCH_INTERVAL`] in the background, so no message waits for probes;
//! the worker reports itself `degraded` ("no model engine reachable") while
//! nothing can answer, and keeps serving everything else.

use super::engines::{choose, ApiFamily, Health};
use super::managed::registry::Session;
use super::managed::sessions::Sessions;
use super::managed::Mode;
use super::probe::{probe_all, Probed};
use super::providers::ReadyProvider;
use crate::config::AgentsConfig;
use cowork_proto::worker::HealthHandle;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often engines are re-detected in the background.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(10);

/// The reason given while nothing can answer.
pub const NO_ENGINE: &str = "no model engine reachable";

/// A local engine instance that answered, with the model to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEngine {
    /// Its API base.
    pub base_url: String,
    /// Its wire format.
    pub api: ApiFamily,
    /// The engine id ("ollama", "llamacpp", ...).
    pub engine: String,
    /// Its instance key (`llamacpp:8080`, `ollama-cron:11435`, ...).
    pub key: String,
    /// The model used (its first listed model).
    pub model: String,
    /// The managed session's id, when we run this engine ourselves.
    pub session: Option<String>,
}

impl LocalEngine {
    /// The engine a loaded session is (`managed:<alias>`).
    pub fn of_session(s: &Session) -> Self {
        Self {
            base_url: s.base_url(),
            api: ApiFamily::OpenAi,
            engine: "llama-server".into(),
            key: s.engine_key(),
            model: s.alias.clone(),
            session: Some(s.id.clone()),
        }
    }
}

/// One detection's result.
#[derive(Debug, Clone, Default)]
pub struct Detected {
    /// Where chats go.
    pub main: Option<LocalEngine>,
    /// Where background jobs go (a cron companion, else the main).
    pub background: Option<LocalEngine>,
    /// Cloud providers with a key.
    pub cloud: Vec<ReadyProvider>,
    /// Why `[agents]` could not be read, if it could not.
    pub config_error: Option<String>,
}

impl Detected {
    /// `None` when something can answer, else the degraded reason.
    pub fn degraded_reason(&self) -> Option<String> {
        if let Some(e) = &self.config_error {
            return Some(format!("{NO_ENGINE}: {e}"));
        }
        (self.main.is_none() && self.cloud.is_empty()).then(|| {
            format!(
                "{NO_ENGINE}: start a local engine (see `coworkctl engines`) or give a cloud \
                 provider a key (GEMINI_API_KEY, OPENROUTER_API_KEY)"
            )
        })
    }
}

/// Shared detection state (cheap to clone).
#[derive(Debug, Clone)]
pub struct EngineWatch {
    config: PathBuf,
    health: HealthHandle,
    sessions: Sessions,
    last: Arc<Mutex<Option<Detected>>>,
}

impl EngineWatch {
    /// Watch the engines `config` declares and the `sessions` we run,
    /// reporting to `health`.
    pub fn new(config: PathBuf, health: HealthHandle, sessions: Sessions) -> Self {
        Self {
            config,
            health,
            sessions,
            last: Default::default(),
        }
    }

    /// The sessions we run.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The latest detection; detects now when there is none yet or when
    /// the last one found no local engine (one may have just started).
    /// A loaded chat session is preferred over probed engines, for chats
    /// and background jobs alike.
    pub async fn current(&self) -> Detected {
        let last = self.last.lock().ok().and_then(|g| g.clone());
        match last {
            Some(d) if d.main.is_some() || self.sessions.serving(Mode::Chat).is_some() => {
                self.with_sessions(d)
            }
            _ => self.refresh().await,
        }
    }

    /// The probed engines, with the loaded chat session (if any) in front;
    /// health follows.
    fn with_sessions(&self, mut d: Detected) -> Detected {
        if let Some(s) = self.sessions.serving(Mode::Chat) {
            let e = LocalEngine::of_session(&s);
            d.main = Some(e.clone());
            d.background = Some(e);
        }
        // Local AI paused (the machine was getting hot): no local engine
        // answers, ours or probed; a cloud provider may.
        if let Some(p) = self.sessions.paused() {
            d.main = None;
            d.background = None;
            if d.cloud.is_empty() {
                self.health.set_degraded(paused_message(&p.reason));
                return d;
            }
        }
        match d.degraded_reason() {
            Some(r) => self.health.set_degraded(r),
            None => self.health.set_ready(),
        }
        d
    }

    /// Detect now, remember the result and report health.
    pub async fn refresh(&self) -> Detected {
        let d = detect(&self.config).await;
        if let Ok(mut g) = self.last.lock() {
            *g = Some(d.clone());
        }
        self.with_sessions(d)
    }

    /// Ask every detected Ollama to unload its model now (`keep_alive: 0`);
    /// the engines we run ourselves are stopped through their sessions
    /// instead. Returns the engines that confirmed.
    pub async fn unload_ollama(&self) -> Vec<String> {
        let last = self.last.lock().ok().and_then(|g| g.clone());
        let Some(d) = last else { return Vec::new() };
        let mut engines: Vec<LocalEngine> = d.main.into_iter().chain(d.background).collect();
        engines.dedup_by(|a, b| a.key == b.key);
        let mut done = Vec::new();
        for e in engines
            .into_iter()
            .filter(|e| e.api == ApiFamily::Ollama && e.session.is_none())
        {
            let target = super::client::ChatTarget {
                name: e.key.clone(),
                base_url: e.base_url.clone(),
                api: e.api,
                model: e.model.clone(),
                transport: super::client::Transport::Local { session: None },
            };
            let url = format!("{}/api/generate", e.base_url.trim_end_matches('/'));
            let body = serde_json::json!({"model": e.model, "keep_alive": 0}).to_string();
            match super::client::post(&target, &url, body).await {
                Ok(r) if (200..300).contains(&r.status) => done.push(e.key),
                Ok(r) => {
                    tracing::warn!(engine = %e.key, status = %r.status, "Ollama did not unload")
                }
                Err(err) => tracing::warn!(engine = %e.key, error = %err, "Ollama did not unload"),
            }
        }
        done
    }

    /// Forget the last detection (an engine just failed).
    pub fn forget(&self) {
        if let Ok(mut g) = self.last.lock() {
            *g = None;
        }
    }

    /// Re-detect every [`WATCH_INTERVAL`] until `shutdown`.
    pub fn spawn(self, shutdown: CancellationToken) {
        tokio::spawn(async move {
            loop {
                self.refresh().await;
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(WATCH_INTERVAL) => {}
                }
            }
        });
    }
}

/// What chat and health say while local AI is paused.
pub fn paused_message(reason: &str) -> String {
    format!("local AI is paused: {reason}; `coworkctl system restore-local` brings it back")
}

/// Probe every engine instance the `[agents]` of `config` names, now.
pub async fn probe_configured(config: &std::path::Path) -> Result<Vec<Probed>, String> {
    let cfg = AgentsConfig::load(config)?;
    Ok(probe_all(cfg.instances()).await)
}

/// Probe every candidate and read the cloud keys once.
pub async fn detect(config: &std::path::Path) -> Detected {
    let cfg = match AgentsConfig::load(config) {
        Ok(c) => c,
        Err(e) => {
            return Detected {
                config_error: Some(e),
                ..Detected::default()
            }
        }
    };
    let cloud = match cfg.cloud_here() {
        Ok(c) => c,
        Err(e) => {
            return Detected {
                config_error: Some(e),
                ..Detected::default()
            }
        }
    };
    let instances = cfg.instances();
    let probed = probe_all(instances).await;
    let up: Vec<_> = probed
        .iter()
        .filter(|p| p.health == Health::Up && !p.models.is_empty())
        .map(|p| p.instance.clone())
        .collect();
    let engine = |background| {
        choose(&up, background).and_then(|i| {
            let p = probed.iter().find(|p| p.instance.key == i.key)?;
            Some(LocalEngine {
                base_url: i.base_url.clone(),
                api: i.api,
                engine: i.engine.clone(),
                key: i.key.clone(),
                model: p.models.first()?.clone(),
                session: None,
            })
        })
    };
    Detected {
        main: engine(false),
        background: engine(true),
        cloud,
        config_error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degraded_only_when_nothing_can_answer() {
        let mut d = Detected::default();
        assert!(d.degraded_reason().unwrap().starts_with(NO_ENGINE));
        d.main = Some(LocalEngine {
            base_url: "http://127.0.0.1:8080/v1".into(),
            api: ApiFamily::OpenAi,
            engine: "llamacpp".into(),
            key: "llamacpp:8080".into(),
            model: "m".into(),
            session: None,
        });
        assert_eq!(d.degraded_reason(), None);
        d.config_error = Some("[agents] is invalid".into());
        assert!(d.degraded_reason().unwrap().contains("invalid"));
    }
}
