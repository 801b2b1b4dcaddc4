//! Proactive notifications (seed 003 "Proactive Notifications"): agents-agent
//! decides what is worth a notification and when; coworkd only dispatches
//! it to the desktop (`cowork.system.v1.System/Notify`) and sends the
//! person's answer back (`Respond`).
//!
//! Pure: `throttle.rs` (the gates). `queue.rs` runs them over the rows in
//! one transaction (bundling, holding for deep work, the digest at the
//! next switch). Runtime: [`Notifier`] (raising, the loop that watches
//! capture's focus and releases what is due, dispatch, answers);
//! `store.rs` (the only SQL); `service.rs`.

pub mod queue;
pub mod service;
pub mod store;
pub mod throttle;

use crate::context::store as capture;
use crate::db::{Db, DbError};
use crate::util::{new_id, now_ms};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use throttle::{Limits, Tier};

/// How often due notifications are released (and focus looked at).
const TICK: Duration = Duration::from_secs(1);

/// A notification as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    /// `nt-…`.
    pub id: String,
    /// What raised it.
    pub trigger_type: String,
    /// urgent, helpful, informational.
    pub tier: String,
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// Rows with one key, due together, become one.
    pub bundle_key: String,
    /// pending, delivered, held, dropped, bundled, undelivered, accepted,
    /// dismissed, expanded.
    pub state: String,
    /// Why it is in its state.
    pub note: String,
    /// What accept does (JSON), or empty.
    pub action_json: String,
    /// A bundle's or digest's members.
    pub members: Vec<String>,
    /// Raised at (Unix ms).
    pub created_ms: i64,
    /// Due at (after the bundling hold).
    pub release_ms: i64,
    /// Shown at (0: not shown).
    pub delivered_ms: i64,
    /// Answered at.
    pub answered_ms: i64,
    /// The thread expand made.
    pub thread_id: String,
}

/// What a domain raises.
#[derive(Debug, Clone, Default)]
pub struct Raise {
    /// Its kind (cooldowns and learning are per kind).
    pub trigger_type: String,
    /// urgent, helpful or informational.
    pub tier: String,
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// What accept does.
    pub action: Option<Value>,
    /// Related ones, due together, merge (empty: never).
    pub bundle_key: String,
}

/// Why a notifications request failed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// No such notification.
    #[error("no notification {0:?} (see `coworkctl notifications list`)")]
    NotFound(String),
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// cowork.db failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// `[notifications]` in config.toml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Raise nothing proactive (automations' and approvals' still go out).
    pub enabled: bool,
    /// How often the proactive triggers look at capture (s).
    pub interval_s: u64,
    /// Hourly caps.
    pub urgent_per_hour: u32,
    /// Hourly caps.
    pub helpful_per_hour: u32,
    /// Hourly caps.
    pub informational_per_hour: u32,
    /// How long related notifications are held to be merged (s).
    pub bundle_hold_s: u64,
    /// After a dismissal, the same kind waits this long (minutes).
    pub cooldown_min: f64,
    /// One app in focus this long is deep work (minutes).
    pub deep_work_min: f64,
    /// One app in focus this long raises a "long session" note (minutes).
    pub long_session_min: f64,
    /// Dismissals in a week that demote a kind one tier.
    pub demote_after: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_s: 60,
            urgent_per_hour: 10,
            helpful_per_hour: 4,
            informational_per_hour: 2,
            bundle_hold_s: 30,
            cooldown_min: 30.0,
            deep_work_min: 25.0,
            long_session_min: 90.0,
            demote_after: 3,
        }
    }
}

impl Settings {
    /// `[notifications]` of `path` (defaults when absent).
    pub fn load(path: &Path) -> Result<Self, String> {
        let s: Self = crate::config::section(path, "notifications")?;
        if s.interval_s == 0
            || s.deep_work_min < 0.0
            || s.long_session_min < 0.0
            || s.cooldown_min < 0.0
        {
            return Err("[notifications] interval_s is above 0; minutes are not negative".into());
        }
        Ok(s)
    }

    /// The throttle's limits.
    pub fn limits(&self) -> Limits {
        Limits {
            per_hour: [
                self.urgent_per_hour,
                self.helpful_per_hour,
                self.informational_per_hour,
            ],
            cooldown_ms: (self.cooldown_min * 60_000.0) as i64,
            demote_after: self.demote_after,
        }
    }
}

/// What accept does, carried out by whoever main wires in: it gets the
/// notification's action (JSON) and answers with what it started.
pub type AcceptHandler =
    Arc<dyn Fn(Value) -> BoxFuture<'static, Result<String, String>> + Send + Sync>;

/// The notifications runtime (cheap to clone).
#[derive(Clone)]
pub struct Notifier {
    db: Db,
    config: PathBuf,
    /// coworkd's public socket (System/Notify).
    socket: PathBuf,
    wake: Arc<tokio::sync::Notify>,
    on_accept: Arc<OnceLock<AcceptHandler>>,
    /// The app in focus at the last look (a change is a context switch).
    last_app: Arc<Mutex<Option<String>>>,
    /// Whether the desktop took the last notification, and why not.
    availability: Arc<Mutex<String>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").finish_non_exhaustive()
    }
}

impl Notifier {
    /// Over cowork.db, `[notifications]` of `config`, dispatching through
    /// coworkd at `socket`.
    pub fn new(db: Db, config: PathBuf, socket: PathBuf) -> Self {
        Self {
            db,
            config,
            socket,
            wake: Default::default(),
            on_accept: Default::default(),
            last_app: Default::default(),
            availability: Arc::new(Mutex::new("unknown (nothing sent yet)".into())),
        }
    }

    /// Who carries out an accepted notification's action (set once).
    pub fn set_accept_handler(&self, h: AcceptHandler) {
        let _ = self.on_accept.set(h);
    }

    /// The settings, or the defaults with a warning when invalid.
    pub fn settings(&self) -> Settings {
        Settings::load(&self.config).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "notifications keep their defaults");
            Settings::default()
        })
    }

    /// Raise a notification: urgent ones go out at once; others wait the
    /// bundling hold, then pass the gates. Returns its id.
    pub async fn raise(&self, r: Raise) -> Result<String, NotifyError> {
        self.raise_once(r, None).await
    }

    /// Raise unless `dedupe_key` was raised before (then its id).
    pub async fn raise_once(
        &self,
        r: Raise,
        dedupe_key: Option<String>,
    ) -> Result<String, NotifyError> {
        let tier = Tier::parse(&r.tier).ok_or_else(|| {
            NotifyError::Invalid(format!(
                "tier {:?} is not urgent, helpful or informational",
                r.tier
            ))
        })?;
        let hold = if tier == Tier::Urgent {
            0
        } else {
            self.settings().bundle_hold_s as i64 * 1000
        };
        let now = now_ms();
        let row = Row {
            id: new_id("nt"),
            trigger_type: r.trigger_type,
            tier: tier.name().into(),
            title: r.title,
            body: r.body,
            bundle_key: r.bundle_key,
            state: "pending".into(),
            action_json: r.action.map(|a| a.to_string()).unwrap_or_default(),
            created_ms: now,
            release_ms: now + hold,
            ..Default::default()
        };
        let (n, key) = (row.clone(), dedupe_key.clone());
        let inserted = self
            .db
            .write(move |c| store::insert(c, &n, key.as_deref()))
            .await?;
        if !inserted {
            if let Some(k) = dedupe_key {
                if let Some(id) = self.db.read(move |c| store::by_dedupe(c, &k)).await? {
                    return Ok(id);
                }
            }
        }
        if tier == Tier::Urgent {
            // Out now, not at the next tick.
            self.wake.notify_one();
        }
        Ok(row.id)
    }

    /// Notifications, newest first.
    pub async fn list(&self, limit: u32) -> Result<Vec<Row>, NotifyError> {
        let limit = if limit == 0 { 50 } else { limit.min(1000) };
        Ok(self.db.read(move |c| store::list(c, limit)).await?)
    }

    /// The person's answer: accept (its action runs), dismiss (logged;
    /// cooldown and learning follow), expand (a chat thread with its
    /// context).
    pub async fn respond(&self, id: &str, action: &str) -> Result<Row, NotifyError> {
        let i = id.to_owned();
        let mut n = self
            .db
            .read(move |c| store::get(c, &i))
            .await?
            .ok_or_else(|| NotifyError::NotFound(id.to_owned()))?;
        if matches!(n.state.as_str(), "accepted" | "dismissed" | "expanded") {
            return Ok(n);
        }
        n.answered_ms = now_ms();
        match action {
            "accept" => {
                n.state = "accepted".into();
                if let (Some(h), Ok(a)) = (
                    self.on_accept.get(),
                    serde_json::from_str::<Value>(&n.action_json),
                ) {
                    n.note = match h(a).await {
                        Ok(what) => what,
                        Err(e) => format!("accepted, but: {e}"),
                    };
                }
            }
            "dismiss" => n.state = "dismissed".into(),
            "expand" => {
                n.state = "expanded".into();
                let text = format!("{}\n\n{}", n.title, n.body);
                let thread = self
                    .db
                    .write(move |c| {
                        let id = crate::chat::store::create_thread(c, &text)?;
                        crate::chat::store::put_message(
                            c,
                            &crate::chat::store::MessageRow {
                                id: new_id("msg"),
                                thread_id: id.clone(),
                                role: "assistant".into(),
                                content: text,
                                model: "cowork/notification".into(),
                                ask_id: String::new(),
                                created_ms: now_ms(),
                                finish_reason: "stop".into(),
                            },
                        )?;
                        Ok(id)
                    })
                    .await?;
                n.note = format!("chat thread {thread}");
                n.thread_id = thread;
            }
            other => {
                return Err(NotifyError::Invalid(format!(
                    "the answer is accept, dismiss or expand, not {other:?}"
                )))
            }
        }
        let r = n.clone();
        self.db.write(move |c| store::update(c, &r)).await?;
        tracing::info!(id = %n.id, state = %n.state, "notification answered");
        Ok(n)
    }

    /// The throttle's view now: deliveries in the last hour, held ones,
    /// demoted kinds, deep work.
    pub async fn status(
        &self,
    ) -> Result<(Settings, [u32; 3], usize, Vec<String>, bool), NotifyError> {
        let s = self.settings();
        let now = now_ms();
        let demote = s.demote_after.max(1);
        let (counts, held, demoted, focus) = self
            .db
            .read(move |c| {
                Ok((
                    store::delivered_since(c, now - 3_600_000)?,
                    store::in_state(c, "held", i64::MAX)?.len(),
                    store::often_dismissed(c, now - 7 * 24 * 3_600_000, demote)?,
                    capture::focus(c),
                ))
            })
            .await?;
        let deep = focus.is_some_and(|f| is_deep(&s, &f, now));
        Ok((s, counts, held, demoted, deep))
    }

    /// Whether desktop notifications went out last time, or why not.
    pub fn availability(&self) -> String {
        self.availability
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// Release what is due and show it. Focus is looked at every time (a
    /// change of app is a context switch: the digest goes out); with
    /// `proactive`, the proactive triggers run too.
    async fn release(&self, proactive: bool) {
        let s = self.settings();
        let now = now_ms();
        let focus = self.db.read(|c| Ok(capture::focus(c))).await.ok().flatten();
        let deep_work = focus.as_ref().is_some_and(|f| is_deep(&s, f, now));
        let switched = {
            let app = focus.as_ref().map(|f| f.app.clone());
            let mut last = self.last_app.lock().unwrap_or_else(|e| e.into_inner());
            let changed = last.is_some() && app.is_some() && *last != app;
            *last = app;
            changed
        };
        if proactive && s.enabled {
            if let Some(f) = &focus {
                self.long_session(&s, f, now).await;
            }
        }
        let limits = s.limits();
        let focus_state = queue::Focus {
            deep_work,
            switched,
        };
        let out = match self
            .db
            .write(move |c| queue::release(c, &limits, focus_state, now))
            .await
        {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "cannot release notifications");
                return;
            }
        };
        for n in out {
            self.dispatch(n).await;
        }
    }

    /// One app in focus for `long_session_min`: one note per session.
    async fn long_session(&self, s: &Settings, f: &capture::Focus, now: i64) {
        let minutes = (now - f.since_ms) as f64 / 60_000.0;
        if s.long_session_min <= 0.0 || minutes < s.long_session_min {
            return;
        }
        let r = Raise {
            trigger_type: "long_session".into(),
            tier: "informational".into(),
            title: format!("{} min in {}", minutes.round(), f.app),
            body: "A good moment for a short break. Accept for a summary of this session.".into(),
            action: Some(serde_json::json!({
                "kind": "agent",
                "task": format!("Summarize what I did in {} in the last {} minutes, from my activity.", f.app, minutes.round()),
            })),
            bundle_key: "long_session".into(),
        };
        let key = format!("long_session:{}:{}", f.app, f.since_ms);
        if let Err(e) = self.raise_once(r, Some(key)).await {
            tracing::warn!(error = %e, "cannot raise a long-session note");
        }
    }

    /// Hand one notification to coworkd for the desktop.
    async fn dispatch(&self, mut n: Row) {
        use cowork_proto::pb::system::{system_client::SystemClient, NotifyRequest};
        let req = NotifyRequest {
            id: n.id.clone(),
            title: n.title.clone(),
            body: n.body.clone(),
            tier: n.tier.clone(),
            actionable: true,
        };
        let answer = async {
            let ch = cowork_proto::uds::connect(&self.socket)
                .await
                .map_err(|e| e.to_string())?;
            let mut r = tonic::Request::new(req);
            r.set_timeout(Duration::from_secs(10));
            SystemClient::new(ch)
                .notify(r)
                .await
                .map(|r| r.into_inner())
                .map_err(|e| e.message().to_string())
        }
        .await;
        let why = match answer {
            Ok(a) if a.dispatched => {
                if let Ok(mut av) = self.availability.lock() {
                    *av = "available".into();
                }
                tracing::info!(id = %n.id, tier = %n.tier, "notification shown");
                return;
            }
            Ok(a) => a.unavailable_reason,
            Err(e) => format!("coworkd did not take it: {e}"),
        };
        if let Ok(mut av) = self.availability.lock() {
            *av = format!("unavailable: {why}");
        }
        // Not shown: it does not count against the caps.
        n.state = "undelivered".into();
        n.note = why;
        n.delivered_ms = 0;
        let _ = self.db.write(move |c| store::update(c, &n)).await;
    }

    /// The loop: releases every second, looks at capture every
    /// `interval_s` (and at every tick for a context switch), until
    /// `shutdown`.
    pub fn spawn(&self, shutdown: tokio_util::sync::CancellationToken) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut last_look = std::time::Instant::now() - Duration::from_secs(3600);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(TICK) => {}
                    _ = me.wake.notified() => {}
                }
                let every = Duration::from_secs(me.settings().interval_s);
                let look = last_look.elapsed() >= every;
                if look {
                    last_look = std::time::Instant::now();
                }
                me.release(look).await;
            }
        });
    }
}

/// Deep work: one app in focus for `deep_work_min` or more.
fn is_deep(s: &Settings, f: &capture::Focus, now_ms: i64) -> bool {
    s.deep_work_min > 0.0 && (now_ms - f.since_ms) as f64 >= s.deep_work_min * 60_000.0
}
