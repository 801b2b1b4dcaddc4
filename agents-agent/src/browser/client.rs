//! One browser tool call for an agent operation, through coworkd's public
//! socket to `cowork.browser.v1.Browser` (coworkd starts browser-agent on
//! demand). What the model gets back is text: where the page is, what
//! happened on the way (dialogs, downloads, new tabs), and after an action
//! that may change the page, its new snapshot — so the next call can use
//! fresh refs. A call browser-agent stops for approval comes back as
//! [`Answer::NeedsApproval`], with nothing done.

use super::tools::Call;
use cowork_proto::pb::browser::{self as pb, browser_client::BrowserClient};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// Longest one browser call may take (an action's cap plus Chromium's
/// start).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(90);
/// The snapshot budget for what the model gets after an action.
pub const SNAPSHOT_CHARS: u32 = 6000;
/// How much of a page's text navigate returns.
pub const NAVIGATE_TEXT_CHARS: usize = 1500;

/// What a call came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It ran; the text for the model.
    Done(String),
    /// It waits for a person, for these reasons (nothing was done, or the
    /// step that needed approval was stopped).
    NeedsApproval(Vec<String>),
}

/// The Browser service behind coworkd's socket.
#[derive(Debug, Clone)]
pub struct BrowserTools {
    socket: PathBuf,
}

fn req<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(CALL_TIMEOUT);
    // The browser action joins the operation's trace (through coworkd's
    // relay to browser-agent).
    cowork_proto::traces::inject_metadata(&tracing::Span::current(), r.metadata_mut());
    r
}

impl BrowserTools {
    /// Calls through coworkd's public socket at `socket`.
    pub fn new(socket: PathBuf) -> Self {
        Self { socket }
    }

    /// Run `call` for operation `operation_id` (`approved`: a person said
    /// yes to this very call).
    pub async fn call(
        &self,
        call: Call,
        operation_id: &str,
        approved: bool,
    ) -> Result<Answer, String> {
        let channel = cowork_proto::uds::connect(&self.socket)
            .await
            .map_err(|e| format!("cannot reach coworkd at {}: {e}", self.socket.display()))?;
        let mut c = BrowserClient::new(channel);
        let caller = Some(pb::Caller {
            operation_id: operation_id.to_owned(),
            agent: true,
            approved,
        });
        let e = |s: tonic::Status| format!("browser: {}", s.message());
        let (r, then_snapshot, then_text) = match call {
            Call::Snapshot(max_chars) => {
                let s = c
                    .snapshot(req(pb::SnapshotRequest {
                        caller,
                        max_chars: if max_chars == 0 {
                            SNAPSHOT_CHARS
                        } else {
                            max_chars
                        },
                    }))
                    .await
                    .map_err(e)?
                    .into_inner();
                if s.outcome == "needs_approval" {
                    return Ok(Answer::NeedsApproval(s.approval_reasons));
                }
                return Ok(Answer::Done(format!("{} — {}\n{}", s.url, s.title, s.text)));
            }
            Call::Screenshot(full_page) => {
                let s = c
                    .screenshot(req(pb::ScreenshotRequest { caller, full_page }))
                    .await
                    .map_err(e)?
                    .into_inner();
                if s.outcome == "needs_approval" {
                    return Ok(Answer::NeedsApproval(s.approval_reasons));
                }
                return Ok(Answer::Done(format!(
                    "took a PNG screenshot: {} bytes, sha256 {}",
                    s.png.len(),
                    s.sha256
                )));
            }
            Call::Tabs | Call::NewTab(_) | Call::CloseTab(_) | Call::SwitchTab(_) => {
                let t = match call {
                    Call::NewTab(url) => c.new_tab(req(pb::NavigateRequest { caller, url })).await,
                    Call::CloseTab(index) => {
                        c.close_tab(req(pb::TabRequest { caller, index })).await
                    }
                    Call::SwitchTab(index) => {
                        c.switch_tab(req(pb::TabRequest { caller, index })).await
                    }
                    _ => c.tabs(req(pb::TabsRequest {})).await,
                }
                .map_err(e)?
                .into_inner();
                if t.outcome == "needs_approval" {
                    return Ok(Answer::NeedsApproval(t.approval_reasons));
                }
                let mut s = String::new();
                for tab in &t.tabs {
                    let cur = if tab.current { " (current)" } else { "" };
                    let _ = writeln!(s, "tab {}{cur}: {} — {}", tab.index, tab.url, tab.title);
                }
                return Ok(Answer::Done(s));
            }
            Call::Navigate(url) => (
                c.navigate(req(pb::NavigateRequest { caller, url })).await,
                true,
                true,
            ),
            Call::Click(r#ref) => (
                c.click(req(pb::TargetRequest { caller, r#ref })).await,
                true,
                false,
            ),
            Call::Type(r#ref, text, submit) => (
                c.r#type(req(pb::TypeRequest {
                    caller,
                    r#ref,
                    text,
                    submit,
                }))
                .await,
                true,
                false,
            ),
            Call::Press(key) => (
                c.press(req(pb::PressRequest { caller, key })).await,
                true,
                false,
            ),
            Call::Select(r#ref, value) => (
                c.select(req(pb::SelectRequest {
                    caller,
                    r#ref,
                    value,
                }))
                .await,
                true,
                false,
            ),
            Call::Scroll(r#ref, dy) => (
                c.scroll(req(pb::ScrollRequest { caller, r#ref, dy })).await,
                true,
                false,
            ),
            Call::Hover(r#ref) => (
                c.hover(req(pb::TargetRequest { caller, r#ref })).await,
                false,
                false,
            ),
            Call::Upload(r#ref, paths) => (
                c.upload(req(pb::UploadRequest {
                    caller,
                    r#ref,
                    paths,
                }))
                .await,
                false,
                false,
            ),
            Call::ExtractText(r#ref) => (
                c.extract_text(req(pb::TargetRequest { caller, r#ref }))
                    .await,
                false,
                false,
            ),
            Call::Evaluate(expression) => (
                c.evaluate(req(pb::EvaluateRequest { caller, expression }))
                    .await,
                false,
                false,
            ),
            Call::Back => (c.back(req(pb::BackRequest { caller })).await, true, false),
            Call::WaitFor(text, timeout_ms) => (
                c.wait_for(req(pb::WaitForRequest {
                    caller,
                    text,
                    timeout_ms,
                }))
                .await,
                false,
                false,
            ),
        };
        let r = r.map_err(e)?.into_inner();
        if r.outcome == "needs_approval" {
            return Ok(Answer::NeedsApproval(r.approval_reasons));
        }
        let mut out = if r.text.is_empty() {
            format!("{} — {}\n", r.url, r.title)
        } else {
            format!("{}\n", r.text)
        };
        for d in &r.dialogs {
            let _ = writeln!(out, "dialog: {d}");
        }
        for d in &r.downloads {
            let _ = writeln!(out, "downloaded: {d}");
        }
        for t in &r.new_tabs {
            let _ = writeln!(out, "opened tab {}: {}", t.index, t.url);
        }
        let follow = Some(pb::Caller {
            operation_id: operation_id.to_owned(),
            agent: true,
            approved: false,
        });
        if then_snapshot {
            if let Ok(s) = c
                .snapshot(req(pb::SnapshotRequest {
                    caller: follow.clone(),
                    max_chars: SNAPSHOT_CHARS,
                }))
                .await
            {
                let s = s.into_inner();
                if s.outcome != "needs_approval" {
                    let _ = write!(out, "Elements:\n{}\n", s.text);
                }
            }
        }
        if then_text {
            if let Ok(t) = c
                .extract_text(req(pb::TargetRequest {
                    caller: follow,
                    r#ref: String::new(),
                }))
                .await
            {
                let t = t.into_inner();
                if t.outcome != "needs_approval" {
                    let text: String = t.text.chars().take(NAVIGATE_TEXT_CHARS).collect();
                    let _ = write!(out, "Text:\n{text}\n");
                }
            }
        }
        Ok(Answer::Done(out))
    }
}
