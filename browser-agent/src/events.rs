//! What Chromium tells browser-agent between and during actions, each
//! handled by a task of its own: main-frame loads intercepted (Fetch) and
//! failed before they are sent when an unapproved agent action would reach
//! an origin outside `allowed_origins` or load with a method other than
//! GET; navigations a page asked for, counted so an action knows to wait;
//! dialogs answered by policy; downloads cancelled or kept. The state the
//! tasks share with actions is [`Shared`].

use crate::cdp::within;
use crate::error::BrowserError;
use crate::policy::{self, Fact, Gate, OriginPattern};
use chromiumoxide::cdp::browser_protocol::browser::{
    CancelDownloadParams, DownloadProgressState, EventDownloadProgress, EventDownloadWillBegin,
};
use chromiumoxide::cdp::browser_protocol::fetch::{
    ContinueRequestParams, EnableParams, EventRequestPaused, FailRequestParams, RequestPattern,
    RequestStage,
};
use chromiumoxide::cdp::browser_protocol::network::{ErrorReason, ResourceType};
use chromiumoxide::cdp::browser_protocol::page::{
    EventFrameRequestedNavigation, EventFrameStoppedLoading, EventJavascriptDialogOpening,
    HandleJavaScriptDialogParams,
};
use chromiumoxide::cdp::browser_protocol::target::{GetTargetInfoParams, TargetId};
use chromiumoxide::{Browser, Page};
use futures::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// What the event tasks share with actions.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) gate: Gate,
    pub(crate) allowed: Vec<OriginPattern>,
    pub(crate) blocked: Vec<String>,
    pub(crate) dialogs: Vec<String>,
    pub(crate) downloads: Vec<String>,
    pub(crate) downloading: HashMap<String, String>,
    pub(crate) documents: u64,
    /// The current tab's target id (its main frame's id): only its loads
    /// are waited for.
    pub(crate) current_frame: String,
    /// Main-frame loads that stopped (finished, failed, or ended as a
    /// download or an empty answer).
    pub(crate) stopped: u64,
    /// Page targets created (tabs a page opened).
    pub(crate) opened: u64,
}

pub(crate) type SharedRef = Arc<Mutex<Shared>>;

/// Why a session broke, once it did.
pub(crate) type Broke = Arc<Mutex<Option<String>>>;

pub(crate) fn set_broke(b: &Broke, why: &str) {
    if let Ok(mut g) = b.lock() {
        g.get_or_insert_with(|| why.to_owned());
    }
}

pub(crate) fn lock(s: &SharedRef) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where the counters stood when an action began.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Mark {
    pub(crate) documents: u64,
    pub(crate) stopped: u64,
    pub(crate) opened: u64,
}

impl Shared {
    /// The counters now.
    pub(crate) fn mark(&self) -> Mark {
        Mark {
            documents: self.documents,
            stopped: self.stopped,
            opened: self.opened,
        }
    }
}

/// One tab: its page and the tasks listening to it.
pub(crate) struct Tab {
    pub(crate) page: Page,
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

impl Drop for Tab {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Navigation and load counters, and dialogs, for one tab.
pub(crate) async fn adopt(
    page: Page,
    shared: &SharedRef,
    cdp: Duration,
) -> Result<Tab, BrowserError> {
    let mut dialogs = within(
        cdp,
        "listening to dialogs",
        page.event_listener::<EventJavascriptDialogOpening>(),
    )
    .await?;
    // A navigation the page asked for (a submit, a link, a script):
    // counted as it is requested, so an action knows to wait for it.
    let mut requested = within(
        cdp,
        "listening to navigations",
        page.event_listener::<EventFrameRequestedNavigation>(),
    )
    .await?;
    let (p, sh) = (page.clone(), shared.clone());
    let nav_task = tokio::spawn(async move {
        while let Some(ev) = requested.next().await {
            if p.mainframe().await.ok().flatten().as_ref() == Some(&ev.frame_id) {
                lock(&sh).documents += 1;
            }
        }
    });
    let mut stops = within(
        cdp,
        "listening to loads",
        page.event_listener::<EventFrameStoppedLoading>(),
    )
    .await?;
    let (p, sh) = (page.clone(), shared.clone());
    let stop_task = tokio::spawn(async move {
        while let Some(ev) = stops.next().await {
            if p.mainframe().await.ok().flatten().as_ref() == Some(&ev.frame_id) {
                lock(&sh).stopped += 1;
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
        tasks: vec![dialog_task, nav_task, stop_task],
    })
}

/// Downloads: a download an unapproved agent action started is cancelled
/// and reported as an approval reason; the others land in `dir`.
pub(crate) async fn download_tasks(
    browser: &Arc<Browser>,
    shared: &SharedRef,
    dir: &Path,
) -> Result<Vec<JoinHandle<()>>, BrowserError> {
    let mut begins = browser
        .event_listener::<EventDownloadWillBegin>()
        .await
        .map_err(|e| BrowserError::Launch(e.to_string()))?;
    let mut progress = browser
        .event_listener::<EventDownloadProgress>()
        .await
        .map_err(|e| BrowserError::Launch(e.to_string()))?;
    let (b, shared2) = (browser.clone(), shared.clone());
    let begin_task = tokio::spawn(async move {
        while let Some(ev) = begins.next().await {
            let stop = {
                let mut sh = lock(&shared2);
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
    let (shared, dir) = (shared.clone(), dir.to_path_buf());
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

/// Every tab's document loads, intercepted at the browser (so a tab a
/// script opens is covered from its first load): a top-level load an
/// unapproved agent action would make to an origin outside
/// `allowed_origins`, or with a method other than GET — and a frame's
/// non-GET load — is failed before it is sent, its facts kept as the
/// action's approval reasons. Everything else continues.
pub(crate) async fn intercept_loads(
    browser: &Arc<Browser>,
    shared: &SharedRef,
) -> Result<Vec<JoinHandle<()>>, BrowserError> {
    let launch = |e: chromiumoxide::error::CdpError| BrowserError::Launch(e.to_string());
    let mut paused = browser
        .event_listener::<EventRequestPaused>()
        .await
        .map_err(launch)?;
    let pattern = RequestPattern::builder()
        .url_pattern("*")
        .resource_type(ResourceType::Document)
        .request_stage(RequestStage::Request)
        .build();
    browser
        .execute(EnableParams::builder().pattern(pattern).build())
        .await
        .map_err(launch)?;
    let (b, sh) = (browser.clone(), shared.clone());
    let task = tokio::spawn(async move {
        while let Some(ev) = paused.next().await {
            // A page target's id is its main frame's: a frame that is a
            // page is a top-level load.
            let target = TargetId::new(ev.frame_id.inner().clone());
            let top = b
                .execute(GetTargetInfoParams::builder().target_id(target).build())
                .await
                .is_ok_and(|r| r.result.target_info.r#type == "page");
            let reasons = {
                let mut s = lock(&sh);
                let mut facts: Vec<Fact> = Vec::new();
                if top {
                    if ev.frame_id.inner() == &s.current_frame {
                        s.documents += 1;
                    }
                    facts.extend(policy::origin_fact(&s.allowed, &ev.request.url));
                }
                if !ev.request.method.eq_ignore_ascii_case("GET") {
                    facts.push(Fact::NonGetNavigation {
                        method: ev.request.method.clone(),
                        url: ev.request.url.clone(),
                    });
                }
                let r = s.gate.asks(&facts);
                s.blocked.extend(r.iter().cloned());
                r
            };
            let id = ev.request_id.clone();
            let sent = if reasons.is_empty() {
                b.execute(ContinueRequestParams::new(id)).await.map(|_| ())
            } else {
                tracing::info!(url = %ev.request.url, "load stopped for approval");
                b.execute(FailRequestParams::new(id, ErrorReason::BlockedByClient))
                    .await
                    .map(|_| ())
            };
            if let Err(e) = sent {
                tracing::debug!(error = %e, "cannot answer an intercepted request");
            }
        }
    });
    Ok(vec![task])
}
