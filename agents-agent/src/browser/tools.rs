//! The browser's tools as an agent sees them: each one's name,
//! description and JSON schema, the `[browser]` settings agents-agent
//! reads (`agent_tools`, `approval_policy`), and a call's JSON arguments
//! checked and turned into a [`Call`]. Pure.

use crate::mcp::ServerPolicy;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// One browser tool call, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// Load a URL.
    Navigate(String),
    /// The page's elements with refs.
    Snapshot(u32),
    /// Click a ref.
    Click(String),
    /// Type into a ref (then Enter).
    Type(String, String, bool),
    /// A key.
    Press(String),
    /// Choose an option.
    Select(String, String),
    /// Scroll a ref into view, or the page.
    Scroll(String, i32),
    /// Hover a ref.
    Hover(String),
    /// Give a file input files.
    Upload(String, Vec<String>),
    /// Text of the page or a ref.
    ExtractText(String),
    /// Run JavaScript.
    Evaluate(String),
    /// A PNG (its size and hash go to the model).
    Screenshot(bool),
    /// The tabs.
    Tabs,
    /// Open a tab.
    NewTab(String),
    /// Close a tab.
    CloseTab(u32),
    /// Switch tabs.
    SwitchTab(u32),
    /// Go back.
    Back,
    /// Wait for a text.
    WaitFor(String, u32),
}

/// `[browser]` as agents-agent reads it (browser-agent reads the rest).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AgentSettings {
    /// Offer the tools at all (default true).
    pub agent_tools: bool,
    /// Phase 4 of the approval policy for the browser's tools: "auto"
    /// (default: the browser's facts decide what asks), "manual" (every
    /// call asks) or "default" (later phases decide).
    pub approval_policy: String,
    /// The Chromium executable (installed apps' windows use it too).
    pub executable: String,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            agent_tools: true,
            approval_policy: "auto".into(),
            executable: "chromium".into(),
        }
    }
}

impl AgentSettings {
    /// Read `[browser]` from a config file's text (missing: defaults).
    pub fn parse(text: &str) -> Result<Self, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let Some(b) = table.get("browser") else {
            return Ok(Self::default());
        };
        let s: Self = b
            .clone()
            .try_into()
            .map_err(|e| format!("[browser]: {e}"))?;
        s.policy()?;
        Ok(s)
    }

    /// The phase-4 policy.
    pub fn policy(&self) -> Result<ServerPolicy, String> {
        ServerPolicy::parse(&self.approval_policy).ok_or_else(|| {
            format!(
                "[browser] approval_policy must be auto, manual or default, not {:?}",
                self.approval_policy
            )
        })
    }
}

struct Spec {
    name: &'static str,
    description: &'static str,
    properties: Value,
    required: &'static [&'static str],
}

fn specs() -> Vec<Spec> {
    let r = json!({"type": "string", "description": "An element's ref from the last snapshot, e.g. e12"});
    vec![
        Spec { name: "navigate", description: "Open a URL in the browser's current tab. Returns the page's elements (with refs for click/type) and the start of its text.", properties: json!({"url": {"type": "string", "description": "The URL to open"}}), required: &["url"] },
        Spec { name: "snapshot", description: "The current page's interactive and named elements, each with a ref (e12) the other browser tools take.", properties: json!({"max_chars": {"type": "integer", "description": "Character budget (default 6000)"}}), required: &[] },
        Spec { name: "click", description: "Click an element by its ref.", properties: json!({"ref": r}), required: &["ref"] },
        Spec { name: "type", description: "Replace the text of a field by its ref; submit presses Enter afterwards.", properties: json!({"ref": r, "text": {"type": "string"}, "submit": {"type": "boolean"}}), required: &["ref", "text"] },
        Spec { name: "press", description: "Press a key in the focused element: Enter, Tab, Escape, ArrowDown, or a character.", properties: json!({"key": {"type": "string"}}), required: &["key"] },
        Spec { name: "select", description: "Choose an option of a select element by its value or label.", properties: json!({"ref": r, "value": {"type": "string"}}), required: &["ref", "value"] },
        Spec { name: "scroll", description: "Scroll an element into view by its ref, or the page by dy pixels (default a screenful).", properties: json!({"ref": r, "dy": {"type": "integer"}}), required: &[] },
        Spec { name: "hover", description: "Move the mouse over an element by its ref.", properties: json!({"ref": r}), required: &["ref"] },
        Spec { name: "upload", description: "Give a file input local files (absolute paths).", properties: json!({"ref": r, "paths": {"type": "array", "items": {"type": "string"}}}), required: &["ref", "paths"] },
        Spec { name: "extract_text", description: "The visible text of the page, or of one element by its ref.", properties: json!({"ref": r}), required: &[] },
        Spec { name: "evaluate", description: "Run a JavaScript expression in the page and return its JSON value.", properties: json!({"expression": {"type": "string"}}), required: &["expression"] },
        Spec { name: "screenshot", description: "Take a PNG screenshot (its size and SHA-256 are returned).", properties: json!({"full_page": {"type": "boolean"}}), required: &[] },
        Spec { name: "tabs", description: "List the browser's tabs.", properties: json!({}), required: &[] },
        Spec { name: "new_tab", description: "Open a new tab (optionally at a URL) and make it current.", properties: json!({"url": {"type": "string"}}), required: &[] },
        Spec { name: "close_tab", description: "Close a tab by its index.", properties: json!({"index": {"type": "integer"}}), required: &["index"] },
        Spec { name: "switch_tab", description: "Make a tab current by its index.", properties: json!({"index": {"type": "integer"}}), required: &["index"] },
        Spec { name: "back", description: "Go back to the previous page.", properties: json!({}), required: &[] },
        Spec { name: "wait_for", description: "Wait until a text appears on the page.", properties: json!({"text": {"type": "string"}, "timeout_ms": {"type": "integer"}}), required: &["text"] },
    ]
}

/// Every tool: (tool name, description, JSON schema of its arguments).
pub fn all() -> Vec<(&'static str, &'static str, Map<String, Value>)> {
    specs()
        .into_iter()
        .map(|s| {
            let mut schema = Map::new();
            schema.insert("type".into(), json!("object"));
            schema.insert("properties".into(), s.properties);
            schema.insert("required".into(), json!(s.required));
            (s.name, s.description, schema)
        })
        .collect()
}

/// Turn a tool's JSON arguments into a call; a clear error for the model
/// names what is missing or wrong.
pub fn parse(tool: &str, args: &Map<String, Value>) -> Result<Call, String> {
    let s = |k: &str| -> Result<String, String> {
        match args.get(k) {
            Some(Value::String(v)) if !v.is_empty() => Ok(v.clone()),
            Some(v) if !v.is_null() => Err(format!("{tool}: {k} must be a string, not {v}")),
            _ => Err(format!("{tool}: {k} is required")),
        }
    };
    let opt_s = |k: &str| args.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let int = |k: &str| args.get(k).and_then(Value::as_i64).unwrap_or(0);
    let flag = |k: &str| args.get(k).and_then(Value::as_bool).unwrap_or(false);
    let index = |k: &str| -> Result<u32, String> {
        args.get(k)
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| format!("{tool}: {k} must be a tab index (0, 1, ...)"))
    };
    Ok(match tool {
        "navigate" => Call::Navigate(s("url")?),
        "snapshot" => Call::Snapshot(int("max_chars").clamp(0, 100_000) as u32),
        "click" => Call::Click(s("ref")?),
        "type" => Call::Type(s("ref")?, opt_s("text"), flag("submit")),
        "press" => Call::Press(s("key")?),
        "select" => Call::Select(s("ref")?, s("value")?),
        "scroll" => Call::Scroll(opt_s("ref"), int("dy").clamp(-100_000, 100_000) as i32),
        "hover" => Call::Hover(s("ref")?),
        "upload" => {
            let paths: Vec<String> = args
                .get("paths")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if paths.is_empty() {
                return Err("upload: paths must list at least one file".into());
            }
            Call::Upload(s("ref")?, paths)
        }
        "extract_text" => Call::ExtractText(opt_s("ref")),
        "evaluate" => Call::Evaluate(s("expression")?),
        "screenshot" => Call::Screenshot(flag("full_page")),
        "tabs" => Call::Tabs,
        "new_tab" => Call::NewTab(opt_s("url")),
        "close_tab" => Call::CloseTab(index("index")?),
        "switch_tab" => Call::SwitchTab(index("index")?),
        "back" => Call::Back,
        "wait_for" => Call::WaitFor(s("text")?, int("timeout_ms").clamp(0, 60_000) as u32),
        other => return Err(format!("there is no browser tool {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn every_tool_has_an_object_schema_and_parses() {
        let tools = all();
        assert_eq!(tools.len(), 18);
        for (name, _, schema) in &tools {
            assert_eq!(schema["type"], "object", "{name}");
            let required: Vec<&str> = schema["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            for r in required {
                assert!(schema["properties"].get(r).is_some(), "{name}: {r}");
            }
        }
        assert_eq!(
            parse("navigate", &args(json!({"url": "http://h/"}))),
            Ok(Call::Navigate("http://h/".into()))
        );
        assert_eq!(
            parse(
                "type",
                &args(json!({"ref": "e3", "text": "hi", "submit": true}))
            ),
            Ok(Call::Type("e3".into(), "hi".into(), true))
        );
        assert_eq!(parse("tabs", &Map::new()), Ok(Call::Tabs));
        assert!(parse("click", &Map::new())
            .unwrap_err()
            .contains("ref is required"));
        assert!(parse("click", &args(json!({"ref": 3})))
            .unwrap_err()
            .contains("string"));
        assert!(parse("close_tab", &args(json!({"index": -1}))).is_err());
        assert!(parse("upload", &args(json!({"ref": "e1", "paths": []}))).is_err());
        assert!(parse("fly", &Map::new()).is_err());
    }

    #[test]
    fn settings_default_to_offered_and_auto() {
        let d = AgentSettings::parse("").unwrap();
        assert!(d.agent_tools);
        assert_eq!(d.policy(), Ok(ServerPolicy::Auto));
        let m = AgentSettings::parse(
            "[browser]\nheadless = false\napproval_policy = \"manual\"\nagent_tools = false\n",
        )
        .unwrap();
        assert!(!m.agent_tools);
        assert_eq!(m.policy(), Ok(ServerPolicy::Manual));
        assert!(AgentSettings::parse("[browser]\napproval_policy = \"yolo\"\n").is_err());
    }
}
