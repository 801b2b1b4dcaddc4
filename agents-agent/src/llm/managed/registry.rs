//! The sessions loaded now: which model each serves, where, for what, in
//! what state, and since when it was last used. Pure: time comes in with
//! every call.

use super::Mode;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where a loaded session's process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Its server answers.
    Ready,
    /// Unloaded after `idle_unload_s` without requests; the next request
    /// starts it again.
    Idle,
    /// Its server crashed; it is being restarted (with backoff).
    Down,
}

impl State {
    /// "ready", "idle" or "down", as `models sessions` prints it.
    pub fn name(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::Idle => "idle",
            State::Down => "down",
        }
    }
}

/// One loaded model and its `llama-server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Its id (`models sessions`, `models unload`).
    pub id: String,
    /// The GGUF file.
    pub model: PathBuf,
    /// The model name it answers to; the engine is `managed:<alias>`.
    pub alias: String,
    /// Loopback port (0 while not running).
    pub port: u16,
    /// Its process, leader of its own process group (0 while not running).
    pub pid: u32,
    /// Where its process is.
    pub state: State,
    /// Why its server last failed, if it did.
    pub last_error: Option<String>,
    /// Times its server was restarted after a crash.
    pub restarts: u32,
    /// Chat or embeddings.
    pub mode: Mode,
    /// Context size it was loaded with.
    pub ctx: u32,
    /// When it became ready, ms since the epoch.
    pub ready_ms: i64,
    /// When a request last used it, ms since the epoch.
    pub used_ms: i64,
}

impl Session {
    /// Its name as an engine (`coworkctl engines`).
    pub fn engine_key(&self) -> String {
        format!("managed:{}", self.alias)
    }

    /// Its OpenAI-compatible base URL.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }
}

/// The sessions by id.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    sessions: BTreeMap<String, Session>,
}

impl Registry {
    /// Add (or replace) a session.
    pub fn insert(&mut self, s: Session) {
        self.sessions.insert(s.id.clone(), s);
    }

    /// Remove by session id, alias or model path; the removed session.
    pub fn remove(&mut self, what: &str) -> Option<Session> {
        let id = self.find(what)?.id.clone();
        self.sessions.remove(&id)
    }

    /// A session by id, alias or model path.
    pub fn find(&self, what: &str) -> Option<&Session> {
        self.sessions.get(what).or_else(|| {
            self.sessions
                .values()
                .find(|s| s.alias == what || s.model.as_os_str() == what)
        })
    }

    /// The session serving `mode` for `model` (alias or path), if loaded.
    /// One session per model and mode: a request with other options uses
    /// it rather than reloading.
    pub fn serving(&self, model: &str, mode: Mode) -> Option<&Session> {
        self.sessions
            .values()
            .find(|s| s.mode == mode && (s.alias == model || s.model.as_os_str() == model))
    }

    /// Any session serving `mode` (the first loaded), when no model is
    /// named.
    pub fn any(&self, mode: Mode) -> Option<&Session> {
        self.sessions
            .values()
            .filter(|s| s.mode == mode)
            .min_by_key(|s| s.ready_ms)
    }

    /// Change the session `id` (nothing if it was unloaded meanwhile).
    pub fn update(&mut self, id: &str, f: impl FnOnce(&mut Session)) {
        if let Some(s) = self.sessions.get_mut(id) {
            f(s);
        }
    }

    /// A request used `id` at `now_ms`.
    pub fn touch(&mut self, id: &str, now_ms: i64) {
        if let Some(s) = self.sessions.get_mut(id) {
            s.used_ms = s.used_ms.max(now_ms);
        }
    }

    /// Sessions unused for `idle_unload_s` at `now_ms` (0: never).
    pub fn idle(&self, now_ms: i64, idle_unload_s: u64) -> Vec<String> {
        if idle_unload_s == 0 {
            return Vec::new();
        }
        let limit = i64::try_from(idle_unload_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        self.sessions
            .values()
            .filter(|s| s.state == State::Ready && now_ms.saturating_sub(s.used_ms) >= limit)
            .map(|s| s.id.clone())
            .collect()
    }

    /// Every session, by id.
    pub fn all(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, alias: &str, mode: Mode, ready_ms: i64) -> Session {
        Session {
            id: id.into(),
            model: PathBuf::from(format!("/m/{alias}.gguf")),
            alias: alias.into(),
            port: 41000,
            pid: 1,
            state: State::Ready,
            last_error: None,
            restarts: 0,
            mode,
            ctx: 4096,
            ready_ms,
            used_ms: ready_ms,
        }
    }

    #[test]
    fn sessions_are_found_by_id_alias_or_file_and_by_role() {
        let mut r = Registry::default();
        r.insert(session("s1", "gemma", Mode::Chat, 10));
        r.insert(session("s2", "minilm", Mode::Embedding, 20));
        r.insert(session("s3", "qwen", Mode::Chat, 5));
        assert_eq!(r.find("s1").unwrap().alias, "gemma");
        assert_eq!(r.find("minilm").unwrap().id, "s2");
        assert_eq!(r.find("/m/qwen.gguf").unwrap().id, "s3");
        assert_eq!(r.serving("gemma", Mode::Chat).unwrap().id, "s1");
        assert_eq!(r.serving("gemma", Mode::Embedding), None);
        assert_eq!(r.any(Mode::Chat).unwrap().id, "s3", "the first loaded");
        assert_eq!(
            r.any(Mode::Embedding).unwrap().engine_key(),
            "managed:minilm"
        );
        assert_eq!(
            r.find("s2").unwrap().base_url(),
            "http://127.0.0.1:41000/v1"
        );
        assert_eq!(r.remove("gemma").unwrap().id, "s1");
        assert!(r.find("s1").is_none());
        assert_eq!(r.all().count(), 2);
    }

    #[test]
    fn idle_sessions_are_the_ones_unused_for_the_limit() {
        let mut r = Registry::default();
        r.insert(session("a", "a", Mode::Chat, 0));
        r.insert(session("b", "b", Mode::Chat, 0));
        r.touch("b", 500_000);
        r.touch("b", 100);
        assert_eq!(r.idle(600_000, 600), vec!["a".to_string()]);
        r.update("a", |s| s.state = State::Idle);
        assert!(r.idle(600_000, 600).is_empty(), "already unloaded");
        r.update("a", |s| s.state = State::Ready);
        assert_eq!(
            r.idle(1_100_000, 600),
            vec!["a".to_string(), "b".to_string()]
        );
        assert!(r.idle(10_000_000, 0).is_empty(), "0 = never");
    }
}
