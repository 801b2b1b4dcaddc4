//! The live browser: one Chromium (opened on the first action, with the
//! persistent profile), its tabs, and every action on them. Actions run
//! one at a time. Every CDP call has a time limit (`[browser]
//! cdp_timeout_ms`, 15 s) under a per-action cap; a hung page, a dead
//! renderer or a lost websocket kills Chromium's whole process group and
//! the next action opens it again with the same profile, while the caller
//! gets an error that says what happened. Main-frame document requests of
//! every tab are intercepted (Fetch) so an agent's navigation to an origin
//! outside `allowed_origins` — a redirect included — or with a method
//! other than GET is stopped before it is sent; downloads land in
//! `browser-downloads/`; dialogs are answered by policy, never left open.

use crate::action::{check_upload_paths, normalize_url, Action, Caller, Outcome, TabInfo};
use crate::cdp::{
    eval, evaluate, js_str, press, probe, target, target_raw, title, within, KeyFacts, Target,
};
use crate::chromium::{self, Chromium, LaunchSpec};
use crate::config::BrowserConfig;
pub use crate::error::BrowserError;
use crate::events::{
    adopt, download_tasks, intercept_loads, lock, set_broke, Broke, Mark, SharedRef, Tab,
};
use crate::policy::{self, Fact, Gate, OriginPattern};
use crate::screenshots::Screenshots;
use crate::snapshot::{self, PageElements, PAGE_JS};
use crate::store::{Log, LoggedAction};
use chromiumoxide::cdp::browser_protocol::browser::{
    CloseParams, SetDownloadBehaviorBehavior, SetDownloadBehaviorParams,
};
use chromiumoxide::cdp::browser_protocol::dom::SetFileInputFilesParams;
use chromiumoxide::cdp::browser_protocol::input::InsertTextParams;
use chromiumoxide::cdp::browser_protocol::page::{
    CaptureScreenshotFormat, GetNavigationHistoryParams, NavigateToHistoryEntryParams,
};
use chromiumoxide::cdp::browser_protocol::target::{EventTargetCrashed, EventTargetCreated};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::handler::HandlerConfig;
use chromiumoxide::layout::Point;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, Page};
use cowork_proto::paths::CoworkPaths;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

/// How long a Chromium that exits at once is waited for (its status and
/// last lines make the launch error).
pub const LAUNCH_SETTLE: Duration = Duration::from_millis(100);
/// Longest ExtractText returns (characters).
pub const MAX_TEXT: usize = 100_000;
/// How long an action waits for a navigation it started to finish.
pub const SETTLE: Duration = Duration::from_secs(10);
/// How long an action that may navigate looks for a navigation it caused.
pub const SETTLE_PEEK: Duration = Duration::from_millis(25);
/// How long an action waits for a download it started to complete.
pub const DOWNLOAD_WAIT: Duration = Duration::from_secs(15);
/// The longest WaitFor.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// What GetStatus reports, kept current without waiting for an action.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// Chromium's pid (0: not open).
    pub chromium_pid: u32,
    /// Headless or windowed.
    pub headless: bool,
    /// The tabs after the last action.
    pub tabs: Vec<TabInfo>,
    /// Kills and reopenings so far.
    pub relaunches: u32,
    /// Why the last one happened.
    pub last_failure: String,
}

struct Session {
    chromium: Chromium,
    browser: Arc<Browser>,
    tasks: Tasks,
    /// Why the session broke without Chromium exiting (a lost socket, a
    /// crashed renderer), set by event tasks.
    broke: Broke,
    tabs: Vec<Tab>,
    current: usize,
    headless: bool,
}

/// Event tasks, aborted when dropped.
#[derive(Default)]
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl Session {
    fn page(&self) -> Result<&Page, BrowserError> {
        self.tabs
            .get(self.current)
            .map(|t| &t.page)
            .ok_or_else(|| BrowserError::Invalid("no tab is open".into()))
    }

    /// Why the session cannot be used any more, if it cannot.
    fn broken(&self) -> Option<String> {
        if let Some(e) = self.chromium.exit() {
            return Some(e.to_string());
        }
        self.broke.lock().ok().and_then(|b| b.clone())
    }
}

/// The browser (cheap to clone).
#[derive(Clone)]
pub struct Driver {
    session: Arc<tokio::sync::Mutex<Option<Session>>>,
    shared: SharedRef,
    status: Arc<Mutex<Status>>,
    log: Log,
    screenshots: Screenshots,
    config: PathBuf,
    profile: PathBuf,
    downloads: PathBuf,
    locks: PathBuf,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// A driver over the Cowork home's profile, downloads dir and cowork.db.
    pub fn new(paths: &CoworkPaths) -> Self {
        Self {
            session: Default::default(),
            shared: Default::default(),
            status: Default::default(),
            log: Log::new(paths.home.join("cowork.db")),
            screenshots: Screenshots::new(
                paths.home.join("browser-screenshots"),
                crate::screenshots::CAP_BYTES,
            ),
            config: paths.config_file(),
            profile: paths.home.join("browser-profile"),
            downloads: paths.home.join("browser-downloads"),
            locks: paths.locks_dir.clone(),
        }
    }

    /// The persistent profile.
    pub fn profile_dir(&self) -> &Path {
        &self.profile
    }

    /// Where downloads land.
    pub fn downloads_dir(&self) -> &Path {
        &self.downloads
    }

    /// The execution log.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The execution log's screenshots.
    pub fn screenshots(&self) -> &Screenshots {
        &self.screenshots
    }

    /// The current status (never waits for a running action).
    pub fn status(&self) -> Status {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Close Chromium gracefully (its profile is flushed); `true` when one
    /// was open.
    pub async fn close(&self) -> bool {
        let mut guard = self.session.lock().await;
        let Some(s) = guard.take() else {
            return false;
        };
        self.set_closed();
        close_session(s).await;
        true
    }

    fn set_closed(&self) {
        if let Ok(mut st) = self.status.lock() {
            st.chromium_pid = 0;
            st.tabs.clear();
        }
    }

    /// Run one action for `caller`, logging it.
    pub async fn act(&self, caller: &Caller, action: Action) -> Result<Outcome, BrowserError> {
        let started = Instant::now();
        let at_ms = now_ms();
        // The action in the caller's trace: its name, operation and
        // outcome only (never the text typed or the page's content).
        let span = tracing::info_span!(
            target: cowork_proto::traces::TARGET,
            "browser.action",
            action = action.name(),
            op = %caller.operation_id,
            outcome = tracing::field::Empty,
        );
        let cfg = BrowserConfig::load(&self.config)?;
        let mut guard = self.session.lock().await;
        {
            let mut sh = lock(&self.shared);
            sh.gate = Gate {
                agent: caller.agent,
                approved: caller.approved,
            };
            sh.allowed = policy::patterns(&cfg.allowed_origins);
            sh.blocked.clear();
            sh.dialogs.clear();
            sh.downloads.clear();
            // Only downloads this action starts are waited for (one a kill
            // cut off never reports its end).
            sh.downloading.clear();
        }
        let mut url_before = String::new();
        let result = async {
            let s = self.ensure(&mut guard, &cfg).await?;
            if let Ok(page) = s.page() {
                lock(&self.shared).current_frame = page.target_id().inner().clone();
            }
            url_before = current_url(s, &cfg).await;
            match tokio::time::timeout(cfg.action_timeout(), self.run(s, &cfg, &action)).await {
                Ok(r) => r,
                Err(_) => Err(BrowserError::Lost(format!(
                    "{} did not finish within {} s",
                    action.name(),
                    cfg.action_timeout().as_secs()
                ))),
            }
        }
        .instrument(span.clone())
        .await;
        // A hung or dead browser is killed now; the next action opens it.
        let result = match result {
            Err(e) => Err(self.after_failure(&mut guard, e).await),
            Ok(o) => match guard.as_ref().and_then(|s| s.broken()) {
                Some(why) => Err(self
                    .after_failure(&mut guard, BrowserError::Lost(why))
                    .await),
                None => Ok(o),
            },
        };
        // Steps the interception or the download watch stopped are the
        // action's approval reasons (and a stopped load's error page is
        // left for the page before it).
        let result = result.map(|mut o| {
            o.approval_reasons.append(&mut lock(&self.shared).blocked);
            o
        });
        if let (Ok(o), Some(s)) = (&result, guard.as_mut()) {
            if !o.approval_reasons.is_empty() {
                leave_error_page(s, &cfg).await;
            }
        }
        let (mut url_after, mut tabs) = (String::new(), Vec::new());
        if let Some(s) = guard.as_ref() {
            url_after = current_url(s, &cfg).await;
            tabs = tab_infos(s, &cfg).await;
        }
        if let Ok(mut st) = self.status.lock() {
            st.tabs = tabs.clone();
        }
        // What the page does after this action (a timer, a refresh, a
        // download) is not covered by its approval.
        lock(&self.shared).gate.approved = false;
        drop(guard);
        let duration_ms = started.elapsed().as_millis() as u64;
        let (outcome_text, target_name, sha) = match &result {
            Ok(o) if !o.approval_reasons.is_empty() => (
                format!("needs_approval: {}", o.approval_reasons.join("; ")),
                o.target_name.clone(),
                o.png_sha256.clone(),
            ),
            Ok(o) => ("ok".into(), o.target_name.clone(), o.png_sha256.clone()),
            Err(e) => (format!("error: {e}"), String::new(), String::new()),
        };
        span.record(
            "outcome",
            match &result {
                Ok(o) if !o.approval_reasons.is_empty() => "needs_approval",
                Ok(_) => "ok",
                Err(_) => "error",
            },
        );
        span.in_scope(|| {});
        drop(span);
        let row = LoggedAction {
            id: 0,
            at_ms,
            operation_id: caller.operation_id.clone(),
            action: action.name().into(),
            target_ref: action.reference().into(),
            target_name,
            url_before,
            url_after: url_after.clone(),
            duration_ms,
            outcome: outcome_text,
            screenshot_sha256: sha,
            detail: action.detail(),
        };
        let action_id = match self.log.record(row).await {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, "cannot write the browser's execution log");
                0
            }
        };
        tracing::info!(
            action = action.name(),
            agent = caller.agent,
            duration_ms,
            ok = result.is_ok(),
            "browser action"
        );
        let mut o = result?;
        o.url = url_after;
        o.tabs = tabs;
        o.duration_ms = duration_ms;
        o.action_id = action_id;
        let mut sh = lock(&self.shared);
        o.dialogs = std::mem::take(&mut sh.dialogs);
        o.downloads = std::mem::take(&mut sh.downloads);
        Ok(o)
    }

    async fn after_failure(&self, guard: &mut Option<Session>, e: BrowserError) -> BrowserError {
        let broken = guard.as_ref().and_then(|s| s.broken());
        // What broke the session says more than how the action noticed.
        let e = match (broken, e) {
            (Some(why), _) => BrowserError::Lost(why),
            (None, BrowserError::Lost(why)) => BrowserError::Lost(why),
            (None, e) => return e,
        };
        if let Some(s) = guard.take() {
            let pid = s.chromium.pid;
            let Session { chromium, .. } = s;
            let exit = chromium.kill().await;
            tracing::warn!(pid, status = %exit.status, error = %e, "Chromium killed");
        }
        self.set_closed();
        if let Ok(mut st) = self.status.lock() {
            st.relaunches += 1;
            st.last_failure = e.to_string();
        }
        e
    }

    /// The session, opened when none is (or the last one broke).
    async fn ensure<'a>(
        &self,
        guard: &'a mut Option<Session>,
        cfg: &BrowserConfig,
    ) -> Result<&'a mut Session, BrowserError> {
        if let Some(why) = guard.as_ref().and_then(|s| s.broken()) {
            // It died between actions: say so in the status, open anew.
            if let Some(Session { chromium, .. }) = guard.take() {
                let _ = chromium.kill().await;
            }
            if let Ok(mut st) = self.status.lock() {
                st.relaunches += 1;
                st.last_failure = why;
            }
        }
        if guard.is_none() {
            *guard = Some(self.launch(cfg).await?);
        }
        guard
            .as_mut()
            .ok_or_else(|| BrowserError::Launch("no session".into()))
    }

    async fn launch(&self, cfg: &BrowserConfig) -> Result<Session, BrowserError> {
        for dir in [&self.profile, &self.downloads] {
            std::fs::create_dir_all(dir).map_err(|e| {
                BrowserError::Launch(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let spec = LaunchSpec {
            executable: cfg.executable.clone(),
            profile: self.profile.clone(),
            headless: cfg.headless,
            locks_dir: self.locks.clone(),
        };
        let chromium = chromium::launch(&spec, LAUNCH_SETTLE)
            .await
            .map_err(|e| BrowserError::Launch(e.to_string()))?;
        let handler_config = HandlerConfig {
            request_timeout: cfg.cdp_timeout() + Duration::from_secs(5),
            viewport: None,
            // A certificate error is an error: never a silent stranger
            // under an allowed origin's name, with the person's logins.
            ignore_https_errors: false,
            ..Default::default()
        };
        let connect = Browser::connect_with_config(chromium.ws_url.clone(), handler_config);
        let (browser, mut handler) = match tokio::time::timeout(cfg.cdp_timeout(), connect).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                let exit = chromium.kill().await;
                return Err(BrowserError::Launch(format!(
                    "cannot connect over CDP: {e}; {exit}"
                )));
            }
            Err(_) => {
                let exit = chromium.kill().await;
                return Err(BrowserError::Launch(format!(
                    "Chromium's DevTools did not answer; {exit}"
                )));
            }
        };
        let broke: Broke = Default::default();
        let broke2 = broke.clone();
        let handler_task = tokio::spawn(async move {
            while let Some(r) = handler.next().await {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "CDP handler");
                }
            }
            set_broke(&broke2, "the DevTools connection to Chromium was lost");
        });
        let browser = Arc::new(browser);
        let mut session = Session {
            chromium,
            browser: browser.clone(),
            tasks: Tasks(vec![handler_task]),
            broke,
            tabs: Vec::new(),
            current: 0,
            headless: cfg.headless,
        };
        let cdp = cfg.cdp_timeout();
        let downloads_dir = self.downloads.display().to_string();
        within(
            cdp,
            "allowing downloads",
            browser.execute(
                SetDownloadBehaviorParams::builder()
                    .behavior(SetDownloadBehaviorBehavior::Allow)
                    .download_path(downloads_dir)
                    .events_enabled(true)
                    .build()
                    .map_err(BrowserError::Page)?,
            ),
        )
        .await?;
        session
            .tasks
            .0
            .extend(download_tasks(&browser, &self.shared, &self.downloads).await?);
        session
            .tasks
            .0
            .extend(intercept_loads(&browser, &self.shared).await?);
        let mut created = browser
            .event_listener::<EventTargetCreated>()
            .await
            .map_err(|e| BrowserError::Launch(e.to_string()))?;
        let sh = self.shared.clone();
        session.tasks.0.push(tokio::spawn(async move {
            while let Some(ev) = created.next().await {
                // Opened by a page (ours, from NewTab, have no opener).
                if ev.target_info.r#type == "page" && ev.target_info.opener_id.is_some() {
                    lock(&sh).opened += 1;
                }
            }
        }));
        // A crashed renderer: the session is replaced at the next action.
        let mut crashes = browser
            .event_listener::<EventTargetCrashed>()
            .await
            .map_err(|e| BrowserError::Launch(e.to_string()))?;
        let b = session.broke.clone();
        session.tasks.0.push(tokio::spawn(async move {
            if let Some(ev) = crashes.next().await {
                tracing::warn!(status = %ev.status, "a page's renderer crashed");
                set_broke(&b, &format!("a page's renderer crashed ({})", ev.status));
            }
        }));
        let page = within(cdp, "opening a tab", browser.new_page("about:blank")).await?;
        let first = page.target_id().clone();
        session.tabs.push(adopt(page, &self.shared, cdp).await?);
        // The tab Chromium opened by itself goes.
        if let Ok(Ok(pages)) = tokio::time::timeout(cdp, browser.pages()).await {
            for p in pages {
                if p.target_id() != &first {
                    let _ = tokio::time::timeout(cdp, p.close()).await;
                }
            }
        }
        if let Ok(mut st) = self.status.lock() {
            st.chromium_pid = session.chromium.pid;
            st.headless = session.headless;
        }
        Ok(session)
    }

    async fn run(
        &self,
        s: &mut Session,
        cfg: &BrowserConfig,
        action: &Action,
    ) -> Result<Outcome, BrowserError> {
        let cdp = cfg.cdp_timeout();
        let gate = lock(&self.shared).gate;
        let allowed = policy::patterns(&cfg.allowed_origins);
        let ask = |facts: Vec<Fact>| -> Option<Outcome> {
            let reasons = gate.asks(&facts);
            (!reasons.is_empty()).then(|| Outcome {
                approval_reasons: reasons,
                ..Default::default()
            })
        };
        // An agent acts only on pages of the allowed origins (a tab a
        // person opened elsewhere, or that a page opened, asks first).
        let on_page = !matches!(
            action,
            Action::Navigate { .. }
                | Action::NewTab { .. }
                | Action::Tabs
                | Action::CloseTab { .. }
                | Action::SwitchTab { .. }
        );
        let page_url = match action {
            Action::SwitchTab { index } => match s.tabs.get(*index) {
                Some(t) => tab_url(&t.page, cdp).await,
                None => String::new(),
            },
            _ if on_page => tab_url(s.page()?, cdp).await,
            _ => String::new(),
        };
        if !page_url.is_empty() {
            if let Some(o) = ask(policy::origin_fact(&allowed, &page_url)
                .into_iter()
                .collect())
            {
                return Ok(o);
            }
        }
        let mark = lock(&self.shared).mark();
        let mut out = Outcome::default();
        match action {
            Action::Navigate { url } => {
                let url = normalize_url(url)?;
                if let Some(o) = ask(policy::origin_fact(&allowed, &url).into_iter().collect()) {
                    return Ok(o);
                }
                self.goto(s, &url, cdp).await?;
            }
            Action::Snapshot { max_chars } => {
                let page = s.page()?;
                let v: PageElements = eval(page, cdp, "(\n{js}\n).snapshot()").await?;
                let max = if *max_chars == 0 {
                    cfg.snapshot_max_chars as usize
                } else {
                    *max_chars
                };
                let r = snapshot::render(&v.elements, max);
                out.title = v.title;
                out.text = r.text;
                out.elements = (r.shown, r.elided);
            }
            Action::Click { reference } => {
                let t = target(s.page()?, cdp, reference, "point", "click").await?;
                out.target_name = t.name.clone();
                let mut facts = Vec::new();
                if let Some(f) = &t.facts.submits {
                    facts.push(Fact::SubmitsForm {
                        method: f.method.clone(),
                        action: f.action.clone(),
                    });
                    if let Some(o) = policy::origin_fact(&allowed, &f.action) {
                        facts.push(o);
                    }
                }
                // A link's target is checked before the click: a new tab's
                // first load is not intercepted.
                if let Some(h) = t.facts.href.as_ref().filter(|h| h.starts_with("http")) {
                    facts.extend(policy::origin_fact(&allowed, h));
                }
                if let Some(d) = &t.facts.download {
                    facts.push(Fact::Download {
                        file: d.rsplit('/').next().unwrap_or(d).to_owned(),
                        url: d.clone(),
                    });
                }
                if let Some(mut o) = ask(facts) {
                    o.target_name = t.name;
                    return Ok(o);
                }
                if t.width <= 0.0 && t.height <= 0.0 {
                    return Err(BrowserError::Invalid(format!(
                        "ref {reference} ({} {:?}) has no size on the page; it cannot be clicked",
                        t.role, t.name
                    )));
                }
                if !t.covered.is_empty() {
                    return Err(BrowserError::Invalid(format!(
                        "ref {reference} ({} {:?}) is covered by <{}> at its centre: the click would land there; close or scroll what covers it",
                        t.role, t.name, t.covered
                    )));
                }
                within(cdp, "clicking", s.page()?.click(Point { x: t.x, y: t.y })).await?;
                self.settle(s, cdp, mark).await;
            }
            Action::Type {
                reference,
                text,
                submit,
            } => {
                let t = target(s.page()?, cdp, reference, "point", "type").await?;
                out.target_name = t.name.clone();
                let mut facts = Vec::new();
                if !t.facts.sensitive.is_empty() {
                    facts.push(Fact::SensitiveField {
                        kind: t.facts.sensitive.clone(),
                    });
                }
                if *submit {
                    if let Some(f) = &t.facts.form {
                        facts.push(Fact::SubmitsForm {
                            method: f.method.clone(),
                            action: f.action.clone(),
                        });
                    }
                }
                if let Some(mut o) = ask(facts) {
                    o.target_name = t.name;
                    return Ok(o);
                }
                let focused: serde_json::Value =
                    target_raw(s.page()?, cdp, reference, "focus", "").await?;
                if focused["focused"] != true {
                    // Text must never land in whatever had the focus before.
                    return Err(BrowserError::Invalid(format!(
                        "ref {reference} ({} {:?}) cannot take the focus, so nothing was typed",
                        t.role, t.name
                    )));
                }
                within(
                    cdp,
                    "typing",
                    s.page()?.execute(InsertTextParams::new(text.clone())),
                )
                .await?;
                if *submit {
                    press(s.page()?, cdp, "Enter").await?;
                    self.settle(s, cdp, mark).await;
                }
            }
            Action::Press { key } => {
                let js = format!("(\n{{js}}\n).keyFacts({})", js_str(key));
                let k: KeyFacts = eval(s.page()?, cdp, &js).await?;
                let mut facts = Vec::new();
                if let Some(f) = &k.submits {
                    facts.push(Fact::SubmitsForm {
                        method: f.method.clone(),
                        action: f.action.clone(),
                    });
                    facts.extend(policy::origin_fact(&allowed, &f.action));
                }
                // A printable key types into the focused field.
                if !k.sensitive.is_empty() && key.chars().count() == 1 {
                    facts.push(Fact::SensitiveField {
                        kind: k.sensitive.clone(),
                    });
                }
                if let Some(o) = ask(facts) {
                    return Ok(o);
                }
                press(s.page()?, cdp, key).await?;
                self.settle(s, cdp, mark).await;
            }
            Action::Select { reference, value } => {
                let t: Target = target(s.page()?, cdp, reference, "select", value).await?;
                out.target_name = t.name;
                self.settle(s, cdp, mark).await;
            }
            Action::Scroll { reference, dy } => {
                if reference.is_empty() {
                    let js = format!(
                        "window.scrollBy(0, {}); [window.scrollX, window.scrollY]",
                        if *dy == 0 {
                            "Math.round(window.innerHeight * 0.8)".to_string()
                        } else {
                            dy.to_string()
                        }
                    );
                    let _: serde_json::Value = eval(s.page()?, cdp, &js).await?;
                } else {
                    let t = target(s.page()?, cdp, reference, "scroll", "").await?;
                    out.target_name = t.name;
                }
            }
            Action::Hover { reference } => {
                let t = target(s.page()?, cdp, reference, "point", "hover").await?;
                out.target_name = t.name;
                within(
                    cdp,
                    "moving the mouse",
                    s.page()?.move_mouse(Point { x: t.x, y: t.y }),
                )
                .await?;
            }
            Action::Upload { reference, paths } => {
                let files = check_upload_paths(paths)?;
                let t = target(s.page()?, cdp, reference, "point", "upload").await?;
                out.target_name = t.name.clone();
                if let Some(mut o) = ask(vec![Fact::UploadsFiles { count: files.len() }]) {
                    o.target_name = t.name;
                    return Ok(o);
                }
                let page = s.page()?;
                let expr = format!("(\n{PAGE_JS}\n).act({}, 'element', '')", js_str(reference));
                let r = within(
                    cdp,
                    "finding the file input",
                    page.execute(
                        EvaluateParams::builder()
                            .expression(expr)
                            .return_by_value(false)
                            .build()
                            .map_err(BrowserError::Page)?,
                    ),
                )
                .await?;
                let Some(object_id) = r.result.result.object_id.clone() else {
                    return Err(BrowserError::Invalid(format!(
                        "ref {reference} is not an element on this page; take a new snapshot"
                    )));
                };
                within(
                    cdp,
                    "setting the files",
                    page.execute(
                        SetFileInputFilesParams::builder()
                            .files(files)
                            .object_id(object_id)
                            .build()
                            .map_err(BrowserError::Page)?,
                    ),
                )
                .await
                .map_err(|e| match e {
                    BrowserError::Page(m) => {
                        BrowserError::Invalid(format!("ref {reference} does not take files ({m})"))
                    }
                    e => e,
                })?;
            }
            Action::ExtractText { reference } => {
                let text: String = if reference.is_empty() {
                    eval(s.page()?, cdp, "(\n{js}\n).pageText()").await?
                } else {
                    let t = target(s.page()?, cdp, reference, "text", "").await?;
                    out.target_name = t.name;
                    t.text
                };
                out.text = text.chars().take(MAX_TEXT).collect();
            }
            Action::Evaluate { expression } => {
                if let Some(o) = ask(vec![Fact::RunsScript]) {
                    return Ok(o);
                }
                let r = match within(
                    cdp,
                    "evaluating",
                    s.page()?.execute(
                        EvaluateParams::builder()
                            .expression(expression.clone())
                            .return_by_value(true)
                            .await_promise(true)
                            .build()
                            .map_err(BrowserError::Page)?,
                    ),
                )
                .await
                {
                    // A slow script on a live page is not a hang.
                    Err(BrowserError::Lost(_)) if probe(s.page()?).await => {
                        return Err(BrowserError::Page(format!(
                            "the script did not finish within {} s",
                            cdp.as_secs()
                        )))
                    }
                    r => r?,
                };
                if let Some(ex) = &r.result.exception_details {
                    let msg = ex
                        .exception
                        .as_ref()
                        .and_then(|e| e.description.clone())
                        .unwrap_or_else(|| ex.text.clone());
                    return Err(BrowserError::Page(format!("the script threw: {msg}")));
                }
                out.text = r
                    .result
                    .result
                    .value
                    .clone()
                    .unwrap_or(serde_json::Value::Null)
                    .to_string();
                self.settle(s, cdp, mark).await;
            }
            Action::Screenshot { full_page } => {
                let png = within(
                    cdp,
                    "taking a screenshot",
                    s.page()?.screenshot(
                        ScreenshotParams::builder()
                            .format(CaptureScreenshotFormat::Png)
                            .full_page(*full_page)
                            .build(),
                    ),
                )
                .await?;
                out.png_sha256 = hex(&Sha256::digest(&png));
                // The log row names it; the file lets the log show it.
                let (store, sha, bytes) = (
                    self.screenshots.clone(),
                    out.png_sha256.clone(),
                    png.clone(),
                );
                match tokio::task::spawn_blocking(move || store.save(&sha, &bytes)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "screenshot not kept"),
                    Err(e) => tracing::warn!(error = %e, "screenshot not kept"),
                }
                out.png = png;
            }
            Action::Tabs => {}
            Action::NewTab { url } => {
                let url = if url.is_empty() {
                    "about:blank".to_string()
                } else {
                    normalize_url(url)?
                };
                if let Some(o) = ask(policy::origin_fact(&allowed, &url).into_iter().collect()) {
                    return Ok(o);
                }
                let page = within(cdp, "opening a tab", s.browser.new_page("about:blank")).await?;
                s.tabs.push(adopt(page, &self.shared, cdp).await?);
                s.current = s.tabs.len() - 1;
                if url != "about:blank" {
                    self.goto(s, &url, cdp).await?;
                }
            }
            Action::CloseTab { index } => {
                if *index >= s.tabs.len() {
                    return Err(no_tab(*index, s.tabs.len()));
                }
                let tab = s.tabs.remove(*index);
                let gone = tab.page.target_id().clone();
                let _ = within(cdp, "closing the tab", tab.page.clone().close()).await;
                // Until its target is detached it is still listed: wait, so
                // it is not taken for a tab the page opened.
                let deadline = Instant::now() + Duration::from_secs(2);
                while Instant::now() < deadline {
                    match tokio::time::timeout(cdp, s.browser.pages()).await {
                        Ok(Ok(pages)) if pages.iter().any(|p| p.target_id() == &gone) => {
                            tokio::time::sleep(Duration::from_millis(20)).await
                        }
                        _ => break,
                    }
                }
                if s.tabs.is_empty() {
                    let page =
                        within(cdp, "opening a tab", s.browser.new_page("about:blank")).await?;
                    s.tabs.push(adopt(page, &self.shared, cdp).await?);
                }
                if s.current >= *index && s.current > 0 {
                    s.current -= 1;
                }
                s.current = s.current.min(s.tabs.len() - 1);
            }
            Action::SwitchTab { index } => {
                if *index >= s.tabs.len() {
                    return Err(no_tab(*index, s.tabs.len()));
                }
                s.current = *index;
                within(
                    cdp,
                    "activating the tab",
                    s.tabs[*index].page.bring_to_front(),
                )
                .await?;
            }
            Action::Back => {
                let page = s.page()?;
                let h = within(
                    cdp,
                    "reading the history",
                    page.execute(GetNavigationHistoryParams::default()),
                )
                .await?;
                let i = h.result.current_index;
                let Some(prev) = (i > 0)
                    .then(|| h.result.entries.get((i - 1) as usize))
                    .flatten()
                else {
                    return Err(BrowserError::Invalid(
                        "there is no earlier page in this tab".into(),
                    ));
                };
                if let Some(o) = ask(policy::origin_fact(&allowed, &prev.url)
                    .into_iter()
                    .collect())
                {
                    return Ok(o);
                }
                within(
                    cdp,
                    "going back",
                    page.execute(NavigateToHistoryEntryParams::new(prev.id)),
                )
                .await?;
                self.settle(s, cdp, mark).await;
            }
            Action::WaitFor { text, timeout } => {
                // Inside the action's cap (with a second to spare), so a
                // long wait ends as "not found", never as a hang.
                let cap = cfg.action_timeout().saturating_sub(Duration::from_secs(1));
                let limit = if timeout.is_zero() {
                    Duration::from_secs(10)
                } else {
                    (*timeout).min(MAX_WAIT)
                }
                .min(cap);
                let deadline = Instant::now() + limit;
                let js = format!("(\n{PAGE_JS}\n).pageText().includes({})", js_str(text));
                loop {
                    // A navigation meanwhile destroys the context: try again.
                    let left = deadline.saturating_duration_since(Instant::now());
                    let found = matches!(
                        tokio::time::timeout(left.min(cdp), evaluate(s.page()?, js.as_str())).await,
                        Ok(Ok(serde_json::Value::Bool(true)))
                    );
                    if found {
                        break;
                    }
                    if Instant::now() >= deadline {
                        if !probe(s.page()?).await {
                            return Err(BrowserError::Lost(
                                "the page stopped answering while waiting".into(),
                            ));
                        }
                        return Err(BrowserError::NotFound(format!(
                            "{text:?} did not appear on the page within {} ms",
                            limit.as_millis()
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        out.new_tabs = self.sync_tabs(s, cdp, &allowed, mark).await;
        if out.title.is_empty() {
            out.title = title(s.page()?, cdp).await;
        }
        Ok(out)
    }

    /// Load `url` in the current tab. A load that does not finish within
    /// the CDP limit is a hang when the page no longer answers a trivial
    /// script (then Chromium is killed), else a slow page.
    async fn goto(&self, s: &mut Session, url: &str, cdp: Duration) -> Result<(), BrowserError> {
        let page = s.page()?;
        // A renderer that crashes meanwhile ends the wait at once.
        let broke = s.broke.clone();
        let crashed = async move {
            loop {
                if broke.lock().map(|b| b.is_some()).unwrap_or(true) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let load = tokio::select! {
            r = tokio::time::timeout(cdp, page.goto(url)) => r,
            _ = crashed => return Err(BrowserError::Lost(format!("loading {url} failed"))),
        };
        match load {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                if !lock(&self.shared).blocked.is_empty() {
                    // Stopped by the interception: reported as approval reasons.
                    return Ok(());
                }
                Err(BrowserError::Page(format!("cannot load {url}: {e}")))
            }
            Err(_) => {
                if probe(page).await {
                    Err(BrowserError::Page(format!(
                        "{url} did not finish loading within {} s",
                        cdp.as_secs()
                    )))
                } else {
                    Err(BrowserError::Lost(format!(
                        "the page at {url} stopped answering (a hung renderer) for {} s",
                        cdp.as_secs()
                    )))
                }
            }
        }
    }

    /// After an action that may navigate: when the page asked for a
    /// main-frame load, wait (bounded) until that load stopped — a new
    /// document, an error page, a download or an empty answer — and the
    /// document is complete; then for downloads the action started.
    async fn settle(&self, s: &Session, cdp: Duration, mark: Mark) {
        // The request arrives before the input's acknowledgement; a moment
        // lets the event task count it.
        tokio::time::sleep(SETTLE_PEEK).await;
        if lock(&self.shared).documents != mark.documents {
            let deadline = Instant::now() + SETTLE.min(cdp);
            while lock(&self.shared).stopped == mark.stopped && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            while Instant::now() < deadline {
                if let Ok(page) = s.page() {
                    let state = evaluate(page, "document.readyState");
                    if let Ok(Ok(v)) = tokio::time::timeout(Duration::from_secs(2), state).await {
                        if v == "complete" {
                            break;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let deadline = Instant::now() + DOWNLOAD_WAIT;
        while !lock(&self.shared).downloading.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Tabs a page opened (or closed) since the last action: adopted, and
    /// for an agent, closed again when they went outside the allowed
    /// origins. Returns the new ones.
    async fn sync_tabs(
        &self,
        s: &mut Session,
        cdp: Duration,
        allowed: &[OriginPattern],
        mark: Mark,
    ) -> Vec<TabInfo> {
        // A tab the page opened is attached a moment after it is created:
        // wait (bounded) until every one created during the action is.
        let created = lock(&self.shared).opened - mark.opened;
        let deadline = Instant::now() + Duration::from_secs(2);
        let pages = loop {
            let Ok(Ok(pages)) = tokio::time::timeout(cdp, s.browser.pages()).await else {
                return Vec::new();
            };
            let known = s.tabs.len() as u64;
            if pages.len() as u64 >= known + created || Instant::now() >= deadline {
                break pages;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let live: Vec<_> = pages.iter().map(|p| p.target_id().clone()).collect();
        let before = s.tabs.len();
        s.tabs.retain(|t| live.contains(t.page.target_id()));
        if s.tabs.len() != before {
            s.current = s.current.min(s.tabs.len().saturating_sub(1));
        }
        let mut new = Vec::new();
        for p in pages {
            if s.tabs.iter().any(|t| t.page.target_id() == p.target_id()) {
                continue;
            }
            let url = tokio::time::timeout(cdp, p.url())
                .await
                .ok()
                .and_then(|r| r.ok())
                .flatten()
                .unwrap_or_default();
            let gate = lock(&self.shared).gate;
            let reasons = gate.asks(
                &policy::origin_fact(allowed, &url)
                    .into_iter()
                    .collect::<Vec<_>>(),
            );
            if !reasons.is_empty() {
                let _ = tokio::time::timeout(cdp, p.close()).await;
                lock(&self.shared).blocked.extend(
                    reasons
                        .into_iter()
                        .map(|r| format!("{r} (a new tab; closed)")),
                );
                continue;
            }
            match adopt(p, &self.shared, cdp).await {
                Ok(t) => {
                    s.tabs.push(t);
                    new.push(TabInfo {
                        index: s.tabs.len() - 1,
                        url,
                        ..Default::default()
                    });
                }
                Err(e) => tracing::warn!(error = %e, "cannot take over a new tab"),
            }
        }
        if s.tabs.is_empty() {
            if let Ok(Ok(page)) = tokio::time::timeout(cdp, s.browser.new_page("about:blank")).await
            {
                if let Ok(t) = adopt(page, &self.shared, cdp).await {
                    s.tabs.push(t);
                }
            }
            s.current = 0;
        }
        new
    }
}

/// After a load was stopped for approval the tab shows Chromium's error
/// page: go back to the page before it.
async fn leave_error_page(s: &Session, cfg: &BrowserConfig) {
    let Ok(page) = s.page() else { return };
    let cdp = cfg.cdp_timeout();
    if !current_url(s, cfg).await.starts_with("chrome-error:") {
        return;
    }
    let Ok(h) = within(
        cdp,
        "reading the history",
        page.execute(GetNavigationHistoryParams::default()),
    )
    .await
    else {
        return;
    };
    let i = h.result.current_index;
    if let Some(prev) = (i > 0)
        .then(|| h.result.entries.get((i - 1) as usize))
        .flatten()
    {
        let _ = within(
            cdp,
            "going back",
            page.execute(NavigateToHistoryEntryParams::new(prev.id)),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Close a session gracefully: Browser.close (Chromium flushes its
/// profile), then the process group is stopped and reaped.
async fn close_session(s: Session) {
    let closing = tokio::time::timeout(
        Duration::from_secs(2),
        s.browser.execute(CloseParams::default()),
    )
    .await;
    let Session { chromium, .. } = s;
    if matches!(closing, Ok(Ok(_))) {
        let _ = chromium.exited_within(Duration::from_millis(2500)).await;
    }
    let exit = chromium.stop().await;
    tracing::info!(status = %exit.status, "Chromium closed");
}

async fn current_url(s: &Session, cfg: &BrowserConfig) -> String {
    let Ok(page) = s.page() else {
        return String::new();
    };
    let limit = cfg.cdp_timeout().min(Duration::from_secs(2));
    tokio::time::timeout(limit, page.url())
        .await
        .ok()
        .and_then(|r| r.ok())
        .flatten()
        .unwrap_or_default()
}

async fn tab_url(page: &Page, cdp: Duration) -> String {
    tokio::time::timeout(cdp.min(Duration::from_secs(2)), page.url())
        .await
        .ok()
        .and_then(|r| r.ok())
        .flatten()
        .unwrap_or_default()
}

async fn tab_infos(s: &Session, cfg: &BrowserConfig) -> Vec<TabInfo> {
    let limit = cfg.cdp_timeout().min(Duration::from_secs(2));
    let mut out = Vec::new();
    for (i, t) in s.tabs.iter().enumerate() {
        let url = tokio::time::timeout(limit, t.page.url())
            .await
            .ok()
            .and_then(|r| r.ok())
            .flatten()
            .unwrap_or_default();
        out.push(TabInfo {
            index: i,
            url,
            title: title(&t.page, limit).await,
            current: i == s.current,
        });
    }
    out
}

fn no_tab(index: usize, n: usize) -> BrowserError {
    BrowserError::Invalid(format!(
        "there is no tab {index} (tabs 0 to {})",
        n.saturating_sub(1)
    ))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
