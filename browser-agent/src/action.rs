//! The actions, in the one vocabulary people and agents share, and what
//! an action did. Pure: the log's wording of a request (typed text and
//! scripts only as their length), URLs people type, upload paths checked.

use crate::error::BrowserError;
use std::path::Path;
use std::time::Duration;

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
pub fn check_upload_paths(paths: &[String]) -> Result<Vec<String>, BrowserError> {
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
