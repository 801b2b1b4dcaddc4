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

use crate::chromium::{self, Chromium, LaunchSpec};
use crate::config::{BrowserConfig, ConfigError};
use crate::policy::{self, Fact, Gate, OriginPattern};
use crate::snapshot::{self, PageElements, PAGE_JS};
use crate::store::{Log, LoggedAction, StoreError};
use chromiumoxide::cdp::browser_protocol::browser::{
    CancelDownloadParams, CloseParams, DownloadProgressState, EventDownloadProgress,
    EventDownloadWillBegin, SetDownloadBehaviorBehavior, SetDownloadBehaviorParams,
};
use chromiumoxide::cdp::browser_protocol::dom::SetFileInputFilesParams;
use chromiumoxide::cdp::browser_protocol::fetch::{
    ContinueRequestParams, EnableParams, EventRequestPaused, FailRequestParams, RequestPattern,
    RequestStage,
};
use chromiumoxide::cdp::browser_protocol::input::{
    DispatchKeyEventParams, DispatchKeyEventType, InsertTextParams,
};
use chromiumoxide::cdp::browser_protocol::network::{ErrorReason, ResourceType};
use chromiumoxide::cdp::browser_protocol::page::{
    CaptureScreenshotFormat, EventJavascriptDialogOpening, GetNavigationHistoryParams,
    HandleJavaScriptDialogParams, NavigateToHistoryEntryParams,
};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::handler::HandlerConfig;
use chromiumoxide::layout::Point;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, Page};
use cowork_proto::paths::CoworkPaths;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How long Chromium gets to print its DevTools address.
pub const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest ExtractText returns (characters).
pub const MAX_TEXT: usize = 100_000;
/// How long an action waits for a navigation it started to finish.
pub const SETTLE: Duration = Duration::from_secs(10);
/// How long an action waits for a download it started to complete.
pub const DOWNLOAD_WAIT: Duration = Duration::from_secs(15);
/// The longest WaitFor.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

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

/// Who asks (see [`Gate`]), and for which operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The agent operation ("" for a person).
    pub operation_id: String,
    /// An agent's action.
    pub agent: bool,
    /// A person approved it.
    pub approved: bool,
}

/// One action, in the vocabulary people and agents share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Load a URL in the current tab.
    Navigate {
        /// The URL.
        url: String,
    },
    /// The page's elements with refs, in a budget (0: the default).
    Snapshot {
        /// Character budget.
        max_chars: usize,
    },
    /// Click an element.
    Click {
        /// Its ref.
        reference: String,
    },
    /// Replace a field's text.
    Type {
        /// Its ref.
        reference: String,
        /// The text.
        text: String,
        /// Press Enter afterwards.
        submit: bool,
    },
    /// A key to the focused element.
    Press {
        /// Enter, Tab, Escape, ArrowDown, a character, ...
        key: String,
    },
    /// Choose an option.
    Select {
        /// The select's ref.
        reference: String,
        /// The option's value or label.
        value: String,
    },
    /// Scroll an element into view, or the page by `dy` pixels.
    Scroll {
        /// The element (empty: the page).
        reference: String,
        /// Pixels (0: a screenful).
        dy: i32,
    },
    /// Move the mouse over an element.
    Hover {
        /// Its ref.
        reference: String,
    },
    /// Give a file input local files.
    Upload {
        /// Its ref.
        reference: String,
        /// Absolute paths.
        paths: Vec<String>,
    },
    /// Visible text of the page or an element.
    ExtractText {
        /// The element (empty: the page).
        reference: String,
    },
    /// A JavaScript expression's JSON value.
    Evaluate {
        /// The expression.
        expression: String,
    },
    /// A PNG of the viewport or the whole page.
    Screenshot {
        /// The whole page.
        full_page: bool,
    },
    /// The tabs.
    Tabs,
    /// Open a tab (and make it current).
    NewTab {
        /// Its URL (empty: about:blank).
        url: String,
    },
    /// Close a tab.
    CloseTab {
        /// Its index.
        index: usize,
    },
    /// Make a tab current.
    SwitchTab {
        /// Its index.
        index: usize,
    },
    /// The previous page of the current tab.
    Back,
    /// Wait until a text is on the page.
    WaitFor {
        /// The text.
        text: String,
        /// How long (zero: 10 s).
        timeout: Duration,
    },
}

impl Action {
    /// The action's name in the log.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Navigate { .. } => "navigate",
            Action::Snapshot { .. } => "snapshot",
            Action::Click { .. } => "click",
            Action::Type { .. } => "type",
            Action::Press { .. } => "press",
            Action::Select { .. } => "select",
            Action::Scroll { .. } => "scroll",
            Action::Hover { .. } => "hover",
            Action::Upload { .. } => "upload",
            Action::ExtractText { .. } => "extract_text",
            Action::Evaluate { .. } => "evaluate",
            Action::Screenshot { .. } => "screenshot",
            Action::Tabs => "tabs",
            Action::NewTab { .. } => "new_tab",
            Action::CloseTab { .. } => "close_tab",
            Action::SwitchTab { .. } => "switch_tab",
            Action::Back => "back",
            Action::WaitFor { .. } => "wait_for",
        }
    }

    /// The ref it targets, if any.
    pub fn reference(&self) -> &str {
        match self {
            Action::Click { reference }
            | Action::Type { reference, .. }
            | Action::Select { reference, .. }
            | Action::Scroll { reference, .. }
            | Action::Hover { reference }
            | Action::Upload { reference, .. }
            | Action::ExtractText { reference } => reference,
            _ => "",
        }
    }

    /// What the log keeps of the request: URLs and keys as they are, typed
    /// text and scripts only as their length (they may hold secrets).
    pub fn detail(&self) -> String {
        match self {
            Action::Navigate { url } | Action::NewTab { url } => url.clone(),
            Action::Type { text, submit, .. } => format!(
                "{} characters{}",
                text.chars().count(),
                if *submit { ", then Enter" } else { "" }
            ),
            Action::Press { key } => key.clone(),
            Action::Select { value, .. } => value.clone(),
            Action::Scroll { dy, .. } => format!("dy {dy}"),
            Action::Upload { paths, .. } => format!("{} file(s)", paths.len()),
            Action::Evaluate { expression } => {
                format!("{} characters of JavaScript", expression.chars().count())
            }
            Action::Screenshot { full_page } => {
                if *full_page {
                    "full page".into()
                } else {
                    "viewport".into()
                }
            }
            Action::CloseTab { index } | Action::SwitchTab { index } => format!("tab {index}"),
            Action::WaitFor { text, timeout } => {
                format!("{text:?} within {} ms", timeout.as_millis())
            }
            Action::Snapshot { max_chars } => format!("max {max_chars} characters"),
            _ => String::new(),
        }
    }
}

/// A tab as people see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TabInfo {
    /// Its index.
    pub index: usize,
    /// Its URL.
    pub url: String,
    /// Its title.
    pub title: String,
    /// The current tab.
    pub current: bool,
}

/// What an action did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Why it waits for a person (nothing, or nothing more, was done);
    /// empty: it ran.
    pub approval_reasons: Vec<String>,
    /// The page after.
    pub url: String,
    /// Its title.
    pub title: String,
    /// ExtractText's text, Evaluate's JSON, a snapshot's lines.
    pub text: String,
    /// A snapshot's element count and how many were elided.
    pub elements: (usize, usize),
    /// A screenshot.
    pub png: Vec<u8>,
    /// Its SHA-256.
    pub png_sha256: String,
    /// Dialogs answered meanwhile.
    pub dialogs: Vec<String>,
    /// Files downloaded meanwhile.
    pub downloads: Vec<String>,
    /// Tabs opened meanwhile.
    pub new_tabs: Vec<TabInfo>,
    /// Every tab after.
    pub tabs: Vec<TabInfo>,
    /// How long it took.
    pub duration_ms: u64,
    /// The log row.
    pub action_id: i64,
    /// The target's accessible name.
    pub target_name: String,
}

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

/// What the event tasks share with actions.
#[derive(Debug, Default)]
struct Shared {
    gate: Gate,
    allowed: Vec<OriginPattern>,
    blocked: Vec<String>,
    dialogs: Vec<String>,
    downloads: Vec<String>,
    downloading: HashMap<String, String>,
    documents: u64,
}

type SharedRef = Arc<Mutex<Shared>>;

fn lock(s: &SharedRef) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

struct Tab {
    page: Page,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Tab {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct Session {
    chromium: Chromium,
    browser: Arc<Browser>,
    tasks: Tasks,
    lost: Arc<AtomicBool>,
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
        self.lost
            .load(Ordering::SeqCst)
            .then(|| "the DevTools connection to Chromium was lost".to_string())
    }
}

/// The browser (cheap to clone).
#[derive(Clone)]
pub struct Driver {
    session: Arc<tokio::sync::Mutex<Option<Session>>>,
    shared: SharedRef,
    status: Arc<Mutex<Status>>,
    log: Log,
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
        }
        let mut url_before = String::new();
        let result = async {
            let s = self.ensure(&mut guard, &cfg).await?;
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
        let e = match (e, broken) {
            (BrowserError::Lost(why), _) => BrowserError::Lost(why),
            (_, Some(why)) => BrowserError::Lost(why),
            (e, None) => return e,
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
        let chromium = chromium::launch(&spec, LAUNCH_TIMEOUT)
            .await
            .map_err(|e| BrowserError::Launch(e.to_string()))?;
        let handler_config = HandlerConfig {
            request_timeout: cfg.cdp_timeout() + Duration::from_secs(5),
            viewport: None,
            ..Default::default()
        };
        let connect = Browser::connect_with_config(chromium.ws_url.clone(), handler_config);
        let (browser, mut handler) = match tokio::time::timeout(cfg.cdp_timeout(), connect).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                let _ = chromium.kill().await;
                return Err(BrowserError::Launch(format!(
                    "cannot connect over CDP: {e}"
                )));
            }
            Err(_) => {
                let _ = chromium.kill().await;
                return Err(BrowserError::Launch(
                    "Chromium's DevTools did not answer".into(),
                ));
            }
        };
        let lost = Arc::new(AtomicBool::new(false));
        let lost2 = lost.clone();
        let handler_task = tokio::spawn(async move {
            while let Some(r) = handler.next().await {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "CDP handler");
                }
            }
            lost2.store(true, Ordering::SeqCst);
        });
        let browser = Arc::new(browser);
        let mut session = Session {
            chromium,
            browser: browser.clone(),
            tasks: Tasks(vec![handler_task]),
            lost,
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
        session.tasks.0.extend(self.download_tasks(&browser).await?);
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

    async fn download_tasks(
        &self,
        browser: &Arc<Browser>,
    ) -> Result<Vec<JoinHandle<()>>, BrowserError> {
        let mut begins = browser
            .event_listener::<EventDownloadWillBegin>()
            .await
            .map_err(|e| BrowserError::Launch(e.to_string()))?;
        let mut progress = browser
            .event_listener::<EventDownloadProgress>()
            .await
            .map_err(|e| BrowserError::Launch(e.to_string()))?;
        let (shared, b) = (self.shared.clone(), browser.clone());
        let begin_task = tokio::spawn(async move {
            while let Some(ev) = begins.next().await {
                let stop = {
                    let mut sh = lock(&shared);
                    if sh.gate.checks() {
                        let fact = Fact::Download {
                            file: ev.suggested_filename.clone(),
                            url: ev.url.clone(),
                        };
                        let r = sh.gate.asks(&[fact]);
                        sh.blocked.extend(r);
                        true
                    } else {
                        sh.downloading
                            .insert(ev.guid.clone(), ev.suggested_filename.clone());
                        false
                    }
                };
                if stop {
                    let _ = b.execute(CancelDownloadParams::new(ev.guid.clone())).await;
                }
            }
        });
        let (shared, dir) = (self.shared.clone(), self.downloads.clone());
        let progress_task = tokio::spawn(async move {
            while let Some(ev) = progress.next().await {
                let mut sh = lock(&shared);
                match ev.state {
                    DownloadProgressState::Completed => {
                        let name = sh.downloading.remove(&ev.guid).unwrap_or_default();
                        let path = ev
                            .file_path
                            .clone()
                            .map(PathBuf::from)
                            .unwrap_or_else(|| dir.join(&name));
                        // Sandboxed like models: only a file inside the dir
                        // is reported as ours.
                        if path.starts_with(&dir) {
                            sh.downloads.push(path.display().to_string());
                        } else {
                            tracing::error!(path = %path.display(), "a download landed outside browser-downloads/");
                        }
                    }
                    DownloadProgressState::Canceled => {
                        sh.downloading.remove(&ev.guid);
                    }
                    _ => {}
                }
            }
        });
        Ok(vec![begin_task, progress_task])
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
        let docs_before = lock(&self.shared).documents;
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
                let v: PageElements = eval(page, cdp, "(\n{js}\n).snapshot()", &[]).await?;
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
                within(cdp, "clicking", s.page()?.click(Point { x: t.x, y: t.y })).await?;
                self.settle(s, cdp, docs_before).await;
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
                let _: serde_json::Value =
                    target_raw(s.page()?, cdp, reference, "focus", "").await?;
                within(
                    cdp,
                    "typing",
                    s.page()?.execute(InsertTextParams::new(text.clone())),
                )
                .await?;
                if *submit {
                    press(s.page()?, cdp, "Enter").await?;
                    self.settle(s, cdp, docs_before).await;
                }
            }
            Action::Press { key } => {
                if key == "Enter" {
                    let f: Option<FormFacts> = eval(s.page()?, cdp, ACTIVE_FORM_JS, &[]).await?;
                    if let Some(f) = f {
                        let mut facts = vec![Fact::SubmitsForm {
                            method: f.method.clone(),
                            action: f.action.clone(),
                        }];
                        facts.extend(policy::origin_fact(&allowed, &f.action));
                        if let Some(o) = ask(facts) {
                            return Ok(o);
                        }
                    }
                }
                press(s.page()?, cdp, key).await?;
                self.settle(s, cdp, docs_before).await;
            }
            Action::Select { reference, value } => {
                let t: Target = target(s.page()?, cdp, reference, "select", value).await?;
                out.target_name = t.name;
                self.settle(s, cdp, docs_before).await;
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
                    let _: serde_json::Value = eval(s.page()?, cdp, &js, &[]).await?;
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
                    eval(s.page()?, cdp, "(\n{js}\n).pageText()", &[]).await?
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
                let r = within(
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
                .await?;
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
                self.settle(s, cdp, docs_before).await;
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
                let _ = within(cdp, "closing the tab", tab.page.clone().close()).await;
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
                self.settle(s, cdp, docs_before).await;
            }
            Action::WaitFor { text, timeout } => {
                let limit = if timeout.is_zero() {
                    Duration::from_secs(10)
                } else {
                    (*timeout).min(MAX_WAIT)
                };
                let deadline = Instant::now() + limit;
                let js = format!("(\n{PAGE_JS}\n).pageText().includes({})", js_str(text));
                loop {
                    let found: bool = eval(s.page()?, cdp, &js, &[]).await?;
                    if found {
                        break;
                    }
                    if Instant::now() >= deadline {
                        return Err(BrowserError::NotFound(format!(
                            "{text:?} did not appear on the page within {} ms",
                            limit.as_millis()
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        out.new_tabs = self.sync_tabs(s, cdp, &allowed).await;
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
        match tokio::time::timeout(cdp, page.goto(url)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                if !lock(&self.shared).blocked.is_empty() {
                    // Stopped by the interception: reported as approval reasons.
                    return Ok(());
                }
                Err(BrowserError::Page(format!("cannot load {url}: {e}")))
            }
            Err(_) => {
                let probe = page.evaluate("1");
                match tokio::time::timeout(Duration::from_secs(1), probe).await {
                    Ok(Ok(_)) => Err(BrowserError::Page(format!(
                        "{url} did not finish loading within {} s",
                        cdp.as_secs()
                    ))),
                    _ => Err(BrowserError::Lost(format!(
                        "the page at {url} stopped answering (a hung renderer) for {} s",
                        cdp.as_secs()
                    ))),
                }
            }
        }
    }

    /// After an action that may navigate: when a main-frame document
    /// request was made, wait (bounded) for the new page to load, and for
    /// downloads it started to complete.
    async fn settle(&self, s: &Session, cdp: Duration, docs_before: u64) {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let started = lock(&self.shared).documents != docs_before;
        if started {
            let deadline = Instant::now() + SETTLE.min(cdp);
            while Instant::now() < deadline {
                if let Ok(page) = s.page() {
                    let probe = page.evaluate("document.readyState");
                    if let Ok(Ok(v)) = tokio::time::timeout(Duration::from_secs(2), probe).await {
                        if v.into_value::<String>().is_ok_and(|r| r == "complete") {
                            break;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
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
    ) -> Vec<TabInfo> {
        let Ok(Ok(pages)) = tokio::time::timeout(cdp, s.browser.pages()).await else {
            return Vec::new();
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

/// Interception and dialogs for one tab.
async fn adopt(page: Page, shared: &SharedRef, cdp: Duration) -> Result<Tab, BrowserError> {
    let pattern = RequestPattern::builder()
        .url_pattern("*")
        .resource_type(ResourceType::Document)
        .request_stage(RequestStage::Request)
        .build();
    let mut paused = within(
        cdp,
        "listening to requests",
        page.event_listener::<EventRequestPaused>(),
    )
    .await?;
    let mut dialogs = within(
        cdp,
        "listening to dialogs",
        page.event_listener::<EventJavascriptDialogOpening>(),
    )
    .await?;
    within(
        cdp,
        "intercepting navigations",
        page.execute(EnableParams::builder().pattern(pattern).build()),
    )
    .await?;
    let (p, sh) = (page.clone(), shared.clone());
    let requests = tokio::spawn(async move {
        while let Some(ev) = paused.next().await {
            let main = p.mainframe().await.ok().flatten();
            let reasons = if main.as_ref() == Some(&ev.frame_id) {
                let mut s = lock(&sh);
                s.documents += 1;
                let mut facts: Vec<Fact> = policy::origin_fact(&s.allowed, &ev.request.url)
                    .into_iter()
                    .collect();
                if !ev.request.method.eq_ignore_ascii_case("GET") {
                    facts.push(Fact::NonGetNavigation {
                        method: ev.request.method.clone(),
                        url: ev.request.url.clone(),
                    });
                }
                let r = s.gate.asks(&facts);
                s.blocked.extend(r.iter().cloned());
                r
            } else {
                Vec::new()
            };
            let id = ev.request_id.clone();
            let sent = if reasons.is_empty() {
                p.execute(ContinueRequestParams::new(id)).await.map(|_| ())
            } else {
                tracing::info!(url = %ev.request.url, "navigation stopped for approval");
                p.execute(FailRequestParams::new(id, ErrorReason::BlockedByClient))
                    .await
                    .map(|_| ())
            };
            if let Err(e) = sent {
                tracing::debug!(error = %e, "cannot answer an intercepted request");
            }
        }
    });
    let (p, sh) = (page.clone(), shared.clone());
    let dialog_task = tokio::spawn(async move {
        while let Some(ev) = dialogs.next().await {
            let kind = ev.r#type.as_ref().to_string();
            // Alerts are only read; leaving a page is allowed; a confirm or
            // a prompt usually guards a step a person should take: no.
            let accept = matches!(kind.as_str(), "alert" | "beforeunload");
            lock(&sh).dialogs.push(format!(
                "{kind} {:?}: {}",
                ev.message,
                if accept { "accepted" } else { "dismissed" }
            ));
            if let Err(e) = p.execute(HandleJavaScriptDialogParams::new(accept)).await {
                tracing::warn!(error = %e, "cannot answer a dialog");
            }
        }
    });
    Ok(Tab {
        page,
        tasks: vec![requests, dialog_task],
    })
}

/// A CDP call with the per-call limit: over it, the page counts as hung.
async fn within<T, E: std::fmt::Display>(
    limit: Duration,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, BrowserError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(BrowserError::Page(format!("{what}: {e}"))),
        Err(_) => Err(BrowserError::Lost(format!(
            "the page did not answer {what} within {} s (a hung renderer?)",
            limit.as_secs()
        ))),
    }
}

/// Evaluate `template` with `{js}` replaced by the page helper.
async fn eval<T: serde::de::DeserializeOwned>(
    page: &Page,
    cdp: Duration,
    template: &str,
    _args: &[&str],
) -> Result<T, BrowserError> {
    let expr = template.replace("{js}", PAGE_JS);
    let r = within(cdp, "running a script", page.evaluate(expr)).await?;
    r.into_value::<T>()
        .map_err(|e| BrowserError::Page(format!("the page answered something unexpected: {e}")))
}

#[derive(Debug, Default, serde::Deserialize)]
struct FormFacts {
    method: String,
    action: String,
}

#[derive(Debug, Default, serde::Deserialize)]
struct ElementFacts {
    submits: Option<FormFacts>,
    download: Option<String>,
    href: Option<String>,
    #[serde(default)]
    sensitive: String,
    form: Option<FormFacts>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct Target {
    error: Option<String>,
    role: String,
    name: String,
    x: f64,
    y: f64,
    width: f64,
    height: f64,
    facts: ElementFacts,
    text: String,
}

/// The element behind a ref, through `page.js`'s `act` (`how`: point,
/// focus, select, scroll, text); an unknown or stale ref is an error that
/// says to take a new snapshot.
async fn target(
    page: &Page,
    cdp: Duration,
    reference: &str,
    how: &str,
    arg: &str,
) -> Result<Target, BrowserError> {
    let t: Target = target_raw(page, cdp, reference, how, arg).await?;
    match t.error {
        Some(e) => Err(BrowserError::Invalid(e)),
        None => Ok(t),
    }
}

async fn target_raw<T: serde::de::DeserializeOwned>(
    page: &Page,
    cdp: Duration,
    reference: &str,
    how: &str,
    arg: &str,
) -> Result<T, BrowserError> {
    if reference.is_empty() {
        return Err(BrowserError::Invalid(
            "a ref (such as e12, from `browser snapshot`) is needed".into(),
        ));
    }
    let expr = format!(
        "(\n{PAGE_JS}\n).act({}, {}, {})",
        js_str(reference),
        js_str(how),
        js_str(arg)
    );
    let r = within(cdp, "finding the element", page.evaluate(expr)).await?;
    let v: serde_json::Value = r.into_value().unwrap_or(serde_json::Value::Null);
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Err(BrowserError::Invalid(e.to_owned()));
    }
    serde_json::from_value(v)
        .map_err(|e| BrowserError::Page(format!("the page answered something unexpected: {e}")))
}

const ACTIVE_FORM_JS: &str = "(() => { let a = document.activeElement; \
    while (a && (a.tagName === 'IFRAME' || a.tagName === 'FRAME')) { try { a = a.contentDocument.activeElement; } catch (e) { break; } } \
    if (!a || a.tagName !== 'INPUT' || !a.form) return null; \
    return {method: (a.form.getAttribute('method') || 'get').toUpperCase(), action: a.form.action}; })()";

/// Press one key (chromiumoxide's US layout names: Enter, Tab, ArrowDown,
/// a character).
async fn press(page: &Page, cdp: Duration, key: &str) -> Result<(), BrowserError> {
    let def = chromiumoxide::keys::get_key_definition(key).ok_or_else(|| {
        BrowserError::Invalid(format!(
            "unknown key {key:?} (Enter, Tab, Escape, Backspace, ArrowUp, ArrowDown, PageDown, a character, ...)"
        ))
    })?;
    let mut cmd = DispatchKeyEventParams::builder()
        .key(def.key)
        .code(def.code)
        .windows_virtual_key_code(def.key_code)
        .native_virtual_key_code(def.key_code);
    let down = if let Some(t) = def.text {
        cmd = cmd.text(t);
        DispatchKeyEventType::KeyDown
    } else if def.key.len() == 1 {
        cmd = cmd.text(def.key);
        DispatchKeyEventType::KeyDown
    } else {
        DispatchKeyEventType::RawKeyDown
    };
    let down = cmd
        .clone()
        .r#type(down)
        .build()
        .map_err(BrowserError::Page)?;
    let up = cmd
        .r#type(DispatchKeyEventType::KeyUp)
        .build()
        .map_err(BrowserError::Page)?;
    within(cdp, "pressing a key", page.execute(down)).await?;
    within(cdp, "releasing a key", page.execute(up)).await?;
    Ok(())
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

async fn title(page: &Page, cdp: Duration) -> String {
    let limit = cdp.min(Duration::from_secs(2));
    tokio::time::timeout(limit, page.get_title())
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

/// A URL people may type: with a scheme, or a host (https:// is added).
pub fn normalize_url(url: &str) -> Result<String, BrowserError> {
    let url = url.trim();
    let parsed = url::Url::parse(url).or_else(|e| {
        if url.contains("://") || url.is_empty() || url.contains(' ') {
            Err(e)
        } else {
            url::Url::parse(&format!("https://{url}"))
        }
    });
    match parsed {
        Ok(u) if matches!(u.scheme(), "http" | "https" | "file" | "about" | "data") => {
            Ok(u.to_string())
        }
        Ok(u) => Err(BrowserError::Invalid(format!(
            "{url:?}: {} URLs are not opened (http, https, file, about, data are)",
            u.scheme()
        ))),
        Err(e) => Err(BrowserError::Invalid(format!("{url:?} is not a URL: {e}"))),
    }
}

/// Upload paths must be absolute and name regular files.
fn check_upload_paths(paths: &[String]) -> Result<Vec<String>, BrowserError> {
    if paths.is_empty() {
        return Err(BrowserError::Invalid("no file to upload".into()));
    }
    paths
        .iter()
        .map(|p| {
            let path = Path::new(p);
            if !path.is_absolute() {
                return Err(BrowserError::Invalid(format!(
                    "{p:?} is not an absolute path"
                )));
            }
            match std::fs::metadata(path) {
                Ok(m) if m.is_file() => Ok(p.clone()),
                Ok(_) => Err(BrowserError::Invalid(format!("{p} is not a file"))),
                Err(e) => Err(BrowserError::Invalid(format!("{p}: {e}"))),
            }
        })
        .collect()
}

fn js_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_people_type_and_ones_that_are_refused() {
        assert_eq!(
            normalize_url("example.com").unwrap(),
            "https://example.com/"
        );
        assert_eq!(
            normalize_url("http://127.0.0.1:8080/a?b=1").unwrap(),
            "http://127.0.0.1:8080/a?b=1"
        );
        assert_eq!(normalize_url("about:blank").unwrap(), "about:blank");
        assert!(normalize_url("javascript:alert(1)").is_err());
        assert!(normalize_url("chrome://settings").is_err());
        assert!(normalize_url("not a url").is_err());
        assert!(normalize_url("").is_err());
    }

    #[test]
    fn the_log_never_keeps_typed_text_or_scripts() {
        let a = Action::Type {
            reference: "e1".into(),
            text: "hunter2".into(),
            submit: true,
        };
        assert_eq!(a.detail(), "7 characters, then Enter");
        assert_eq!(a.reference(), "e1");
        let e = Action::Evaluate {
            expression: "document.cookie".into(),
        };
        assert!(!e.detail().contains("cookie"));
    }

    #[test]
    fn upload_paths_are_checked() {
        assert!(check_upload_paths(&[]).is_err());
        assert!(check_upload_paths(&["relative.txt".into()]).is_err());
        assert!(check_upload_paths(&["/".into()]).is_err());
        assert!(check_upload_paths(&["/nonexistent/x".into()]).is_err());
        let f = tempfile::NamedTempFile::new().unwrap();
        let p = f.path().display().to_string();
        assert_eq!(check_upload_paths(std::slice::from_ref(&p)).unwrap(), [p]);
    }
}
