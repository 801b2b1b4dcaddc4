//! CDP calls on a page with the per-call limit, and the page helper's
//! calls: evaluate a script, resolve a ref (`page.js`'s `act`), press a
//! key, read the title.

use crate::error::BrowserError;
use crate::snapshot::PAGE_JS;
use chromiumoxide::cdp::browser_protocol::input::{DispatchKeyEventParams, DispatchKeyEventType};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::Page;
use std::time::Duration;

/// A CDP call with the per-call limit: over it, the page counts as hung.
pub(crate) async fn within<T, E: std::fmt::Display>(
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

/// Run `expr` in the page's current document and return its JSON value.
/// Raw `Runtime.evaluate` without a context id: the document that is
/// there now, never an execution context cached from the one before a
/// navigation (chromiumoxide's `evaluate` can use one).
pub(crate) async fn evaluate(
    page: &Page,
    expr: impl Into<String>,
) -> Result<serde_json::Value, String> {
    let params = EvaluateParams::builder()
        .expression(expr)
        .return_by_value(true)
        .build()?;
    let r = page.execute(params).await.map_err(|e| e.to_string())?;
    if let Some(ex) = &r.result.exception_details {
        return Err(ex
            .exception
            .as_ref()
            .and_then(|e| e.description.clone())
            .unwrap_or_else(|| ex.text.clone()));
    }
    Ok(r.result
        .result
        .value
        .clone()
        .unwrap_or(serde_json::Value::Null))
}

/// Evaluate `template` with `{js}` replaced by the page helper.
pub(crate) async fn eval<T: serde::de::DeserializeOwned>(
    page: &Page,
    cdp: Duration,
    template: &str,
) -> Result<T, BrowserError> {
    let expr = template.replace("{js}", PAGE_JS);
    let v = within(cdp, "running a script", evaluate(page, expr)).await?;
    serde_json::from_value(v)
        .map_err(|e| BrowserError::Page(format!("the page answered something unexpected: {e}")))
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct FormFacts {
    pub(crate) method: String,
    pub(crate) action: String,
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ElementFacts {
    pub(crate) submits: Option<FormFacts>,
    pub(crate) download: Option<String>,
    pub(crate) href: Option<String>,
    #[serde(default)]
    pub(crate) sensitive: String,
    pub(crate) form: Option<FormFacts>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Target {
    pub(crate) error: Option<String>,
    pub(crate) role: String,
    pub(crate) name: String,
    pub(crate) x: f64,
    pub(crate) y: f64,
    pub(crate) width: f64,
    pub(crate) height: f64,
    pub(crate) facts: ElementFacts,
    pub(crate) text: String,
    /// What covers the element's centre, if something else does.
    pub(crate) covered: String,
}

/// The element behind a ref, through `page.js`'s `act` (`how`: point,
/// focus, select, scroll, text); an unknown or stale ref is an error that
/// says to take a new snapshot.
pub(crate) async fn target(
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

pub(crate) async fn target_raw<T: serde::de::DeserializeOwned>(
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
    let v = within(cdp, "finding the element", evaluate(page, expr)).await?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Err(BrowserError::Invalid(e.to_owned()));
    }
    serde_json::from_value(v)
        .map_err(|e| BrowserError::Page(format!("the page answered something unexpected: {e}")))
}

/// What pressing a key would do (`page.js`'s `keyFacts`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct KeyFacts {
    pub(crate) submits: Option<FormFacts>,
    pub(crate) sensitive: String,
}

/// Whether the page still runs scripts (answers `1` within a second): a
/// slow call on a live page is the page's business, on a dead one a hang.
pub(crate) async fn probe(page: &Page) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(1), evaluate(page, "1")).await,
        Ok(Ok(_))
    )
}

/// Press one key (chromiumoxide's US layout names: Enter, Tab, ArrowDown,
/// a character).
pub(crate) async fn press(page: &Page, cdp: Duration, key: &str) -> Result<(), BrowserError> {
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

pub(crate) async fn title(page: &Page, cdp: Duration) -> String {
    let limit = cdp.min(Duration::from_secs(2));
    match tokio::time::timeout(limit, evaluate(page, "document.title")).await {
        Ok(Ok(serde_json::Value::String(t))) => t,
        _ => String::new(),
    }
}

pub(crate) fn js_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}
