//! `coworkctl browser`: the browser's actions by hand (`cowork.browser.v1`),
//! the same vocabulary agents use; refs (`e12`) come from `browser
//! snapshot`. A person's own actions run without the approval facts and
//! are logged like an agent's (`browser log`).

use crate::context::{call, long, Ctx};
use anyhow::{Context as _, Result};
use clap::Subcommand;
use cowork_proto::pb::browser::{self as pb, browser_client::BrowserClient};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// `coworkctl browser`.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Whether Chromium is open, its tabs, the profile and downloads dirs.
    Status,
    /// Load URL in the current tab (opens Chromium when it is not open).
    Open {
        /// The URL.
        url: String,
    },
    /// The page's elements, each with the ref the next command uses.
    Snapshot {
        /// Character budget (default 12000).
        #[arg(long, default_value_t = 0)]
        max_chars: u32,
    },
    /// Click an element.
    Click {
        /// Its ref (e12).
        r#ref: String,
    },
    /// Replace a field's text.
    Type {
        /// Its ref.
        r#ref: String,
        /// The text.
        text: String,
        /// Press Enter afterwards.
        #[arg(long)]
        submit: bool,
    },
    /// Press a key in the focused element (Enter, Tab, Escape, ArrowDown, a).
    Press {
        /// The key.
        key: String,
    },
    /// Choose an option of a select by value or label.
    Select {
        /// The select's ref.
        r#ref: String,
        /// The option.
        value: String,
    },
    /// Scroll an element into view, or the page a screenful (or --dy px).
    Scroll {
        /// The element.
        r#ref: Option<String>,
        /// Pixels down (negative: up).
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        dy: i32,
    },
    /// Move the mouse over an element.
    Hover {
        /// Its ref.
        r#ref: String,
    },
    /// Give a file input local files.
    Upload {
        /// Its ref.
        r#ref: String,
        /// Files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The visible text of the page or of one element.
    Text {
        /// The element.
        r#ref: Option<String>,
    },
    /// Run a JavaScript expression; prints its JSON value.
    Eval {
        /// The expression.
        js: String,
    },
    /// Save a PNG of the page.
    Screenshot {
        /// Where.
        file: PathBuf,
        /// The whole page, not only the viewport.
        #[arg(long)]
        full_page: bool,
    },
    /// The tabs.
    Tabs,
    /// Open a tab.
    NewTab {
        /// Its URL.
        url: Option<String>,
    },
    /// Close tab N.
    CloseTab {
        /// Its index.
        index: u32,
    },
    /// Make tab N current.
    SwitchTab {
        /// Its index.
        index: u32,
    },
    /// The previous page.
    Back,
    /// Wait until TEXT is on the page.
    Wait {
        /// The text.
        text: String,
        /// How long (ms; default 10000, at most 60000).
        #[arg(long, default_value_t = 0)]
        timeout_ms: u32,
    },
    /// The execution log, newest first.
    Log {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only this agent operation's actions.
        #[arg(long)]
        operation: Option<String>,
    },
    /// Close Chromium (the profile stays).
    Close,
}

fn me() -> Option<pb::Caller> {
    Some(pb::Caller::default())
}

/// Run a `browser` command.
pub async fn run(cmd: Cmd, ctx: &mut Ctx) -> Result<ExitCode> {
    let mut c = BrowserClient::new(ctx.channel.clone());
    let r = match cmd {
        Cmd::Status => {
            let s = c.get_status(call(pb::GetStatusRequest {})).await?.into_inner();
            ctx.show_block(|| status_json(&s), || status_text(&s))?;
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Snapshot { max_chars } => {
            let s = c
                .snapshot(long(pb::SnapshotRequest {
                    caller: me(),
                    max_chars,
                }))
                .await?
                .into_inner();
            ctx.show_block(
                || {
                    json!({"url": s.url, "title": s.title, "snapshot": s.text,
                           "elements": s.elements, "elided": s.elided, "action_id": s.action_id})
                },
                || format!("{} — {}\n{}\n", s.url, s.title, s.text),
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Screenshot { file, full_page } => {
            let s = c
                .screenshot(long(pb::ScreenshotRequest {
                    caller: me(),
                    full_page,
                }))
                .await?
                .into_inner();
            std::fs::write(&file, &s.png)
                .with_context(|| format!("cannot write {}", file.display()))?;
            ctx.show(
                || json!({"file": file, "bytes": s.png.len(), "sha256": s.sha256, "action_id": s.action_id}),
                || format!("wrote {} ({} bytes, sha256 {})", file.display(), s.png.len(), s.sha256),
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Tabs | Cmd::NewTab { .. } | Cmd::CloseTab { .. } | Cmd::SwitchTab { .. } => {
            let t = match cmd {
                Cmd::NewTab { url } => {
                    c.new_tab(long(pb::NavigateRequest {
                        caller: me(),
                        url: url.unwrap_or_default(),
                    }))
                    .await?
                }
                Cmd::CloseTab { index } => {
                    c.close_tab(long(pb::TabRequest {
                        caller: me(),
                        index,
                    }))
                    .await?
                }
                Cmd::SwitchTab { index } => {
                    c.switch_tab(long(pb::TabRequest {
                        caller: me(),
                        index,
                    }))
                    .await?
                }
                _ => c.tabs(long(pb::TabsRequest {})).await?,
            }
            .into_inner();
            ctx.show_block(
                || json!({"tabs": t.tabs.iter().map(tab_json).collect::<Vec<_>>()}),
                || tabs_text(&t.tabs),
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Log { limit, operation } => {
            let l = c
                .log(call(pb::LogRequest {
                    limit,
                    operation_id: operation.unwrap_or_default(),
                }))
                .await?
                .into_inner();
            ctx.show_block(
                || json!({"actions": l.actions.iter().map(logged_json).collect::<Vec<_>>()}),
                || log_text(&l.actions),
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Close => {
            let r = c.close(long(pb::CloseRequest {})).await?.into_inner();
            ctx.show(
                || json!({"was_open": r.was_open}),
                || if r.was_open { "closed".into() } else { "the browser was not open".into() },
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Open { url } => c.navigate(long(pb::NavigateRequest { caller: me(), url })).await?,
        Cmd::Click { r#ref } => c.click(long(pb::TargetRequest { caller: me(), r#ref })).await?,
        Cmd::Type { r#ref, text, submit } => {
            c.r#type(long(pb::TypeRequest {
                caller: me(),
                r#ref,
                text,
                submit,
            }))
            .await?
        }
        Cmd::Press { key } => c.press(long(pb::PressRequest { caller: me(), key })).await?,
        Cmd::Select { r#ref, value } => {
            c.select(long(pb::SelectRequest {
                caller: me(),
                r#ref,
                value,
            }))
            .await?
        }
        Cmd::Scroll { r#ref, dy } => {
            c.scroll(long(pb::ScrollRequest {
                caller: me(),
                r#ref: r#ref.unwrap_or_default(),
                dy,
            }))
            .await?
        }
        Cmd::Hover { r#ref } => c.hover(long(pb::TargetRequest { caller: me(), r#ref })).await?,
        Cmd::Upload { r#ref, files } => {
            let paths = files
                .iter()
                .map(|f| {
                    std::path::absolute(f)
                        .map(|p| p.display().to_string())
                        .with_context(|| format!("{}", f.display()))
                })
                .collect::<Result<Vec<_>>>()?;
            c.upload(long(pb::UploadRequest {
                caller: me(),
                r#ref,
                paths,
            }))
            .await?
        }
        Cmd::Text { r#ref } => {
            c.extract_text(long(pb::TargetRequest {
                caller: me(),
                r#ref: r#ref.unwrap_or_default(),
            }))
            .await?
        }
        Cmd::Eval { js } => {
            c.evaluate(long(pb::EvaluateRequest {
                caller: me(),
                expression: js,
            }))
            .await?
        }
        Cmd::Back => c.back(long(pb::BackRequest { caller: me() })).await?,
        Cmd::Wait { text, timeout_ms } => {
            c.wait_for(long(pb::WaitForRequest {
                caller: me(),
                text,
                timeout_ms,
            }))
            .await?
        }
    }
    .into_inner();
    ctx.show_block(|| action_json(&r), || action_text(&r))?;
    Ok(ExitCode::SUCCESS)
}

/// An action's result as JSON.
pub fn action_json(r: &pb::ActionResponse) -> Value {
    json!({
        "outcome": r.outcome,
        "approval_reasons": r.approval_reasons,
        "url": r.url,
        "title": r.title,
        "text": r.text,
        "duration_ms": r.duration_ms,
        "dialogs": r.dialogs,
        "downloads": r.downloads,
        "new_tabs": r.new_tabs.iter().map(tab_json).collect::<Vec<_>>(),
        "action_id": r.action_id,
    })
}

/// An action's result in words: text when it returned some, else where
/// the page is; then what happened on the way.
pub fn action_text(r: &pb::ActionResponse) -> String {
    let mut s = String::new();
    if !r.text.is_empty() {
        let _ = writeln!(s, "{}", r.text);
    } else {
        let _ = writeln!(s, "{} — {} ({} ms)", r.url, r.title, r.duration_ms);
    }
    for why in &r.approval_reasons {
        let _ = writeln!(s, "needs approval: {why}");
    }
    for d in &r.dialogs {
        let _ = writeln!(s, "dialog: {d}");
    }
    for d in &r.downloads {
        let _ = writeln!(s, "downloaded: {d}");
    }
    for t in &r.new_tabs {
        let _ = writeln!(s, "new tab {}: {}", t.index, t.url);
    }
    s
}

fn tab_json(t: &pb::Tab) -> Value {
    json!({"index": t.index, "url": t.url, "title": t.title, "current": t.current})
}

fn tabs_text(tabs: &[pb::Tab]) -> String {
    let mut s = String::new();
    for t in tabs {
        let _ = writeln!(
            s,
            "{} {:>2}  {}  {}",
            if t.current { "*" } else { " " },
            t.index,
            t.url,
            t.title
        );
    }
    if s.is_empty() {
        s.push_str("the browser is not open\n");
    }
    s
}

fn status_json(s: &pb::GetStatusResponse) -> Value {
    json!({
        "pid": s.pid,
        "browser_open": s.browser_open,
        "chromium_pid": s.chromium_pid,
        "headless": s.headless,
        "profile_dir": s.profile_dir,
        "downloads_dir": s.downloads_dir,
        "relaunches": s.relaunches,
        "last_failure": s.last_failure,
        "tabs": s.tabs.iter().map(tab_json).collect::<Vec<_>>(),
    })
}

fn status_text(s: &pb::GetStatusResponse) -> String {
    let mut o = String::new();
    if s.browser_open {
        let _ = writeln!(
            o,
            "Chromium pid {} ({}), browser-agent pid {}",
            s.chromium_pid,
            if s.headless { "headless" } else { "windowed" },
            s.pid
        );
    } else {
        let _ = writeln!(o, "Chromium is not open (browser-agent pid {})", s.pid);
    }
    let _ = writeln!(o, "profile:   {}", s.profile_dir);
    let _ = writeln!(o, "downloads: {}", s.downloads_dir);
    if s.relaunches > 0 {
        let _ = writeln!(
            o,
            "restarted {} time(s); last: {}",
            s.relaunches, s.last_failure
        );
    }
    if s.browser_open {
        o.push_str(&tabs_text(&s.tabs));
    }
    o
}

fn logged_json(a: &pb::LoggedAction) -> Value {
    json!({
        "id": a.id, "at_ms": a.at_ms, "operation_id": a.operation_id, "action": a.action,
        "target_ref": a.target_ref, "target_name": a.target_name, "url_before": a.url_before,
        "url_after": a.url_after, "duration_ms": a.duration_ms, "outcome": a.outcome,
        "screenshot_sha256": a.screenshot_sha256, "detail": a.detail,
    })
}

fn log_text(actions: &[pb::LoggedAction]) -> String {
    if actions.is_empty() {
        return "no browser actions yet\n".into();
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<6} {:<12} {:<12} {:<24} {:>7}  {:<40} OUTCOME",
        "ID", "OPERATION", "ACTION", "TARGET", "MS", "URL"
    );
    for a in actions {
        let target = if a.target_ref.is_empty() {
            a.detail.clone()
        } else {
            format!("{} {:?}", a.target_ref, a.target_name)
        };
        let op = if a.operation_id.is_empty() {
            "(you)"
        } else {
            a.operation_id.as_str()
        };
        let _ = writeln!(
            s,
            "{:<6} {:<12} {:<12} {:<24} {:>7}  {:<40} {}",
            a.id,
            clip(op, 12),
            a.action,
            clip(&target, 24),
            a.duration_ms,
            clip(&a.url_after, 40),
            clip(&a.outcome, 80)
        );
    }
    s
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_in_words_and_the_log_table() {
        let r = pb::ActionResponse {
            outcome: "ok".into(),
            url: "http://h/".into(),
            title: "Home".into(),
            duration_ms: 12,
            dialogs: vec!["alert \"hi\": accepted".into()],
            ..Default::default()
        };
        assert_eq!(
            action_text(&r),
            "http://h/ — Home (12 ms)\ndialog: alert \"hi\": accepted\n"
        );
        let t = pb::ActionResponse {
            text: "Hello".into(),
            ..r
        };
        assert!(action_text(&t).starts_with("Hello\n"));
        assert_eq!(log_text(&[]), "no browser actions yet\n");
        let l = log_text(&[pb::LoggedAction {
            id: 3,
            action: "click".into(),
            target_ref: "e2".into(),
            target_name: "Sign in".into(),
            outcome: "ok".into(),
            ..Default::default()
        }]);
        assert!(l.lines().nth(1).unwrap().contains("(you)"), "{l}");
        assert!(l.contains("e2 \"Sign in\""), "{l}");
    }
}
