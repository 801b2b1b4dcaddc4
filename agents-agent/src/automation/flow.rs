//! A flow and its blocks (seed 003 "Automations Engine"), pure: parsed from
//! the JSON people write, checked before it is stored.
//!
//! ```json
//! {"name": "Daily time", "trigger": {"type": "schedule", "cron": "0 9 * * 1-5", "missed": "coalesce"},
//!  "inputs": [{"name": "tz", "description": "IANA zone", "default": "UTC"}],
//!  "on_interrupted": "fail",
//!  "steps": [
//!    {"id": "now", "type": "mcpToolCall", "server": "time", "tool": "get_current_time",
//!     "arguments": {"timezone": "${tz}"}, "idempotent": true, "retry": {"max": 2, "backoff_ms": 500}},
//!    {"id": "check", "type": "condition", "if": {"left": "${now.data.is_dst}", "op": "eq", "right": true},
//!     "then": "tell", "else": "end"},
//!    {"id": "tell", "type": "notification", "title": "Time", "body": "${now.text}", "tier": "helpful"}
//!  ]}
//! ```

use super::schedule::{Cron, Missed};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest flow (steps).
pub const MAX_STEPS: usize = 100;
/// Longest delay a step may ask for (s): a week.
pub const MAX_DELAY_S: u64 = 7 * 24 * 3600;

/// A flow as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    /// What people call it.
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// What starts it (default: only by hand, or as a tool).
    #[serde(default)]
    pub trigger: Trigger,
    /// Its input variables (offered as the tool's parameters).
    #[serde(default)]
    pub inputs: Vec<Input>,
    /// A step found in flight after a crash: fail the run, or run it again
    /// when it is marked idempotent.
    #[serde(default)]
    pub on_interrupted: OnInterrupted,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// One input variable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// Its name (`${name}` in steps).
    pub name: String,
    /// What it means (the tool parameter's description).
    #[serde(default)]
    pub description: String,
    /// Its value when none is given (none: required).
    #[serde(default)]
    pub default: Option<Value>,
}

/// A crashed step's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnInterrupted {
    /// The run fails, saying which step was interrupted.
    #[default]
    Fail,
    /// An idempotent step runs again; any other still fails the run.
    Retry,
}

/// What starts a flow.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Trigger {
    /// By hand (`automations run`) or as a tool only.
    #[default]
    Manual,
    /// A cron-style schedule in local time.
    Schedule {
        /// `m h dom mon dow`.
        cron: String,
        /// Missed occurrences: skip or coalesce.
        #[serde(default)]
        missed: Missed,
    },
    /// A capture pattern.
    Capture(CapturePattern),
    /// A notification from an MCP server.
    Mcp {
        /// The server's name.
        server: String,
        /// The notification's method (`notifications/tools/list_changed`,
        /// `notifications/resources/updated`, `notifications/message`);
        /// empty: any.
        #[serde(default)]
        method: String,
    },
}

/// What in capture starts a flow (one of the three).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapturePattern {
    /// An app (its name, `*` wildcards) ...
    #[serde(default)]
    pub app: Option<String>,
    /// ... in focus for this many minutes without a switch.
    #[serde(default)]
    pub minutes: Option<u32>,
    /// A window title matching this pattern (`*` wildcards, any case).
    #[serde(default)]
    pub title: Option<String>,
    /// `context_switch`: any change of app in focus (to `app`, if set).
    #[serde(default)]
    pub event: Option<String>,
}

impl CapturePattern {
    /// The kind of pattern, checked.
    pub fn kind(&self) -> Result<CaptureKind, String> {
        match (&self.event, &self.title, &self.minutes) {
            (Some(e), _, _) if e == "context_switch" => Ok(CaptureKind::ContextSwitch),
            (Some(e), _, _) => Err(format!(
                "a capture trigger's event is \"context_switch\", not {e:?}"
            )),
            (None, Some(_), _) => Ok(CaptureKind::Title),
            (None, None, Some(m)) if *m > 0 && self.app.is_some() => Ok(CaptureKind::Focus),
            _ => Err(
                "a capture trigger needs {app, minutes}, {title} or {event: \"context_switch\"}"
                    .into(),
            ),
        }
    }
}

/// The three capture patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureKind {
    /// An app in focus for N minutes.
    Focus,
    /// A window title matching a pattern.
    Title,
    /// A change of the app in focus.
    ContextSwitch,
}

/// Retries of a failed step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Retry {
    /// Further attempts after the first.
    #[serde(default)]
    pub max: u32,
    /// Wait before each, doubled every time (ms).
    #[serde(default)]
    pub backoff_ms: u64,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Its id (`${id.…}` reads its output).
    pub id: String,
    /// What it does.
    #[serde(flatten)]
    pub block: Block,
    /// Retries when it fails.
    #[serde(default)]
    pub retry: Retry,
    /// Safe to run twice (a crash mid-call may re-run it).
    #[serde(default)]
    pub idempotent: bool,
    /// Stop here and return this step's output as the run's result.
    #[serde(default, rename = "directOutput", alias = "direct_output")]
    pub direct_output: bool,
    /// When it fails for good, go to this step instead of failing the run.
    #[serde(default, rename = "onError", alias = "on_error")]
    pub on_error: Option<String>,
}

/// A comparison in a condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Test {
    /// The left side (usually `${…}`).
    pub left: Value,
    /// eq, ne, gt, ge, lt, le, contains, exists, truthy.
    #[serde(default = "default_op")]
    pub op: String,
    /// The right side.
    #[serde(default)]
    pub right: Value,
}

fn default_op() -> String {
    "truthy".into()
}

/// The block types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Block {
    /// Call an MCP tool.
    #[serde(rename = "mcpToolCall")]
    McpToolCall {
        /// The server.
        server: String,
        /// The tool.
        tool: String,
        /// Its arguments.
        #[serde(default = "empty_object")]
        arguments: Value,
    },
    /// An agent operation (its model chosen as agent operations' are).
    #[serde(rename = "agentStep")]
    AgentStep {
        /// The task.
        task: String,
        /// Model calls at most.
        #[serde(default = "default_agent_steps")]
        max_steps: u32,
    },
    /// If/else on variables: go to `then` or `else` (a later step's id,
    /// or "end"; none: the next step).
    #[serde(rename = "condition")]
    Condition {
        /// The test.
        #[serde(rename = "if")]
        test: Test,
        /// Where to go when it holds.
        #[serde(default)]
        then: Option<String>,
        /// Where to go when it does not.
        #[serde(default, rename = "else")]
        otherwise: Option<String>,
    },
    /// Wait (the deadline survives restarts).
    #[serde(rename = "delay")]
    Delay {
        /// Seconds.
        seconds: u64,
    },
    /// Tell the person (through the notification throttle).
    #[serde(rename = "notification")]
    Notification {
        /// Its title.
        title: String,
        /// Its text.
        #[serde(default)]
        body: String,
        /// urgent, helpful or informational.
        #[serde(default = "default_tier")]
        tier: String,
    },
    /// A browser action (one of the `browser__*` tools' names without the
    /// prefix: navigate, click, type, snapshot, extract_text, ...).
    #[serde(rename = "browser")]
    Browser {
        /// The action.
        action: String,
        /// Its arguments, as the tool takes them.
        #[serde(default = "empty_object")]
        arguments: Value,
    },
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}
fn default_agent_steps() -> u32 {
    8
}
fn default_tier() -> String {
    "helpful".into()
}

impl Block {
    /// The block's type name, as in the JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Block::McpToolCall { .. } => "mcpToolCall",
            Block::AgentStep { .. } => "agentStep",
            Block::Condition { .. } => "condition",
            Block::Delay { .. } => "delay",
            Block::Notification { .. } => "notification",
            Block::Browser { .. } => "browser",
        }
    }

    /// Whether running it twice can do something twice outside Cowork
    /// (a tool call, an agent, the browser).
    pub fn acts_outside(&self) -> bool {
        matches!(
            self,
            Block::McpToolCall { .. } | Block::AgentStep { .. } | Block::Browser { .. }
        )
    }
}

impl Trigger {
    /// Its type's name.
    pub fn name(&self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule { .. } => "schedule",
            Trigger::Capture(_) => "capture",
            Trigger::Mcp { .. } => "mcp",
        }
    }
}

/// Parse and check a flow's JSON. The seed's form with the trigger as the
/// first block (`{"type": "trigger", "trigger": {...}}`) is accepted too.
pub fn parse(json: &str) -> Result<Flow, String> {
    let mut v: Value =
        serde_json::from_str(json).map_err(|e| format!("the flow is not valid JSON: {e}"))?;
    if let Some(steps) = v.get_mut("steps").and_then(Value::as_array_mut) {
        if steps
            .first()
            .is_some_and(|s| s.get("type").and_then(Value::as_str) == Some("trigger"))
        {
            let t = steps.remove(0);
            let trig = t.get("trigger").cloned().unwrap_or(t);
            if let Some(o) = v.as_object_mut() {
                o.insert("trigger".into(), trig);
            }
        }
    }
    let flow: Flow = serde_json::from_value(v).map_err(|e| format!("the flow is invalid: {e}"))?;
    check(&flow)?;
    Ok(flow)
}

/// The checks a stored flow passes.
pub fn check(flow: &Flow) -> Result<(), String> {
    if flow.name.trim().is_empty() {
        return Err("the flow needs a name".into());
    }
    if flow.steps.is_empty() || flow.steps.len() > MAX_STEPS {
        return Err(format!("a flow has 1 to {MAX_STEPS} steps"));
    }
    let ids: Vec<&str> = flow.steps.iter().map(|s| s.id.as_str()).collect();
    for (i, s) in flow.steps.iter().enumerate() {
        if s.id.is_empty()
            || !s
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "step {} has id {:?}: ids are letters, digits, _ and -",
                i + 1,
                s.id
            ));
        }
        if ids[..i].contains(&s.id.as_str()) {
            return Err(format!("two steps have the id {:?}", s.id));
        }
        if flow.inputs.iter().any(|v| v.name == s.id) {
            return Err(format!("step {:?} has an input's name", s.id));
        }
        // Jumps go forward only, so every run ends.
        let forward = |target: &Option<String>, what: &str| -> Result<(), String> {
            match target.as_deref() {
                None | Some("end") => Ok(()),
                Some(t) => match ids.iter().position(|x| *x == t) {
                    Some(j) if j > i => Ok(()),
                    Some(_) => Err(format!(
                        "step {:?}: {what} goes back to {t:?}; jumps go to a later step",
                        s.id
                    )),
                    None => Err(format!("step {:?}: {what} names no step {t:?}", s.id)),
                },
            }
        };
        forward(&s.on_error, "onError")?;
        match &s.block {
            Block::Condition {
                test,
                then,
                otherwise,
            } => {
                forward(then, "then")?;
                forward(otherwise, "else")?;
                if !matches!(
                    test.op.as_str(),
                    "eq" | "ne" | "gt" | "ge" | "lt" | "le" | "contains" | "exists" | "truthy"
                ) {
                    return Err(format!("step {:?}: unknown op {:?}", s.id, test.op));
                }
            }
            Block::Delay { seconds } if *seconds > MAX_DELAY_S => {
                return Err(format!(
                    "step {:?}: a delay is at most {MAX_DELAY_S} s",
                    s.id
                ))
            }
            // A tier from a variable is checked when the step runs.
            Block::Notification { tier, .. }
                if !tier.contains("${")
                    && !matches!(tier.as_str(), "urgent" | "helpful" | "informational") =>
            {
                return Err(format!(
                    "step {:?}: tier is urgent, helpful or informational",
                    s.id
                ))
            }
            Block::McpToolCall { server, tool, .. } if server.is_empty() || tool.is_empty() => {
                return Err(format!("step {:?} needs a server and a tool", s.id))
            }
            Block::AgentStep { task, .. } if task.trim().is_empty() => {
                return Err(format!("step {:?} needs a task", s.id))
            }
            _ => {}
        }
        if s.retry.max > 10 {
            return Err(format!("step {:?}: at most 10 retries", s.id));
        }
    }
    match &flow.trigger {
        Trigger::Schedule { cron, .. } => {
            Cron::parse(cron)?;
        }
        Trigger::Capture(p) => {
            p.kind()?;
        }
        Trigger::Mcp { server, .. } if server.is_empty() => {
            return Err("an mcp trigger names its server".into())
        }
        _ => {}
    }
    Ok(())
}

/// Evaluate a condition's test on substituted values.
pub fn holds(op: &str, left: &Value, right: &Value) -> bool {
    let num = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let unresolved = |v: &Value| v.as_str().is_some_and(|s| s.starts_with("${"));
    match op {
        "exists" => !left.is_null() && !unresolved(left),
        "truthy" => match left {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64() != Some(0.0),
            Value::String(s) => !s.is_empty() && s != "false" && !unresolved(left),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
        },
        "eq" | "ne" => {
            let same = match (num(left), num(right)) {
                (Some(a), Some(b)) => a == b,
                _ => {
                    left == right
                        || left
                            .as_str()
                            .zip(right.as_str())
                            .is_some_and(|(a, b)| a == b)
                }
            };
            (op == "eq") == same
        }
        "gt" | "ge" | "lt" | "le" => match (num(left), num(right)) {
            (Some(a), Some(b)) => match op {
                "gt" => a > b,
                "ge" => a >= b,
                "lt" => a < b,
                _ => a <= b,
            },
            _ => false,
        },
        "contains" => match (left, right) {
            (Value::String(a), Value::String(b)) => a.contains(b.as_str()),
            (Value::Array(a), b) => a.contains(b),
            (Value::Object(o), Value::String(k)) => o.contains_key(k),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_docs_example_parses() {
        let src = include_str!("flow.rs");
        let start = src.find("//! ```json").unwrap();
        let end = src[start + 10..].find("//! ```").unwrap() + start + 10;
        let json: String = src[start..end]
            .lines()
            .skip(1)
            .map(|l| l.trim_start_matches("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        let f = parse(&json).unwrap();
        assert_eq!(f.steps.len(), 3);
        assert_eq!(f.trigger.name(), "schedule");
        assert!(matches!(f.steps[1].block, Block::Condition { .. }));
    }

    #[test]
    fn the_seeds_trigger_block_is_read_as_the_trigger() {
        let f = parse(
            r#"{"name":"x","steps":[{"type":"trigger","trigger":{"type":"mcp","server":"s"}},
                {"id":"a","type":"delay","seconds":1}]}"#,
        )
        .unwrap();
        assert_eq!(f.trigger.name(), "mcp");
        assert_eq!(f.steps.len(), 1);
    }

    #[test]
    fn bad_flows_are_refused_with_reasons() {
        let cases = [
            (
                r#"{"name":"","steps":[{"id":"a","type":"delay","seconds":1}]}"#,
                "name",
            ),
            (r#"{"name":"x","steps":[]}"#, "1 to"),
            (
                r#"{"name":"x","steps":[{"id":"a","type":"delay","seconds":1},{"id":"a","type":"delay","seconds":1}]}"#,
                "two steps",
            ),
            (
                r#"{"name":"x","steps":[{"id":"a","type":"delay","seconds":1},{"id":"b","type":"condition","if":{"left":1},"then":"a"}]}"#,
                "later step",
            ),
            (
                r#"{"name":"x","steps":[{"id":"a","type":"condition","if":{"left":1},"then":"zz"}]}"#,
                "names no step",
            ),
            (
                r#"{"name":"x","steps":[{"id":"a","type":"teleport"}]}"#,
                "invalid",
            ),
            (
                r#"{"name":"x","trigger":{"type":"schedule","cron":"* *"},"steps":[{"id":"a","type":"delay","seconds":1}]}"#,
                "five fields",
            ),
            (
                r#"{"name":"x","trigger":{"type":"capture"},"steps":[{"id":"a","type":"delay","seconds":1}]}"#,
                "capture trigger",
            ),
            (
                r#"{"name":"x","steps":[{"id":"a b","type":"delay","seconds":1}]}"#,
                "ids are",
            ),
            (
                r#"{"name":"x","steps":[{"id":"a","type":"notification","title":"t","tier":"loud"}]}"#,
                "tier",
            ),
            ("not json", "not valid JSON"),
        ];
        for (json, want) in cases {
            let e = parse(json).unwrap_err();
            assert!(e.contains(want), "{json}: {e}");
        }
    }

    #[test]
    fn conditions() {
        assert!(holds("gt", &json!("12"), &json!(5)));
        assert!(!holds("lt", &json!("abc"), &json!(5)));
        assert!(holds("eq", &json!(3), &json!("3")));
        assert!(holds("ne", &json!("a"), &json!("b")));
        assert!(holds("contains", &json!("hello world"), &json!("world")));
        assert!(holds("contains", &json!([1, 2]), &json!(2)));
        assert!(!holds("exists", &json!("${missing.x}"), &Value::Null));
        assert!(!holds("truthy", &json!(""), &Value::Null));
        assert!(holds("truthy", &json!({"a": 1}), &Value::Null));
    }
}
