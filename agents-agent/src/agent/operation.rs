//! Agent operations (seed 003 "Agent Execution Model"), the pure part: an
//! operation's state, and the runner that turns it into the next
//! instructions. Decisions live here; side effects (model calls, tool
//! calls, persistence) live in the executor (`agent.rs`).
//!
//! Status: idle → running → done | error, with waiting_for_human while
//! tool calls await a person and paused after a crash, a guardrail or a
//! check-in (resumable).

use super::approval::{self, Settings, Verdict};
use super::guardrails;
use serde::{Deserialize, Serialize};

/// Steps an operation may take unless told otherwise.
pub const DEFAULT_MAX_STEPS: u32 = 10;
/// The most steps an operation may be given.
pub const MAX_MAX_STEPS: u32 = 100;

/// Where an operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created, not started.
    Idle,
    /// Working.
    Running,
    /// Tool calls wait for a person's approve or reject.
    WaitingForHuman,
    /// Stopped until resumed (crash, guardrail, check-in).
    Paused,
    /// Finished with an answer.
    Done,
    /// Failed for good.
    Error,
}

impl Status {
    /// The stored and shown name.
    pub fn name(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Running => "running",
            Status::WaitingForHuman => "waiting_for_human",
            Status::Paused => "paused",
            Status::Done => "done",
            Status::Error => "error",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Status::Idle,
            Status::Running,
            Status::WaitingForHuman,
            Status::Paused,
            Status::Done,
            Status::Error,
        ]
        .into_iter()
        .find(|x| x.name() == s)
    }
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The model's call id.
    pub id: String,
    /// The MCP server.
    pub server: String,
    /// The tool.
    pub tool: String,
    /// Arguments, a JSON object as text.
    pub arguments: String,
}

/// A call waiting for a person, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The call.
    pub call: ToolCall,
    /// The approval phase that asked.
    pub phase: u8,
    /// Its reason.
    pub reason: String,
    /// When it began to wait (Unix ms; 0 in operations saved before this
    /// was recorded: those wait for a person, as before).
    #[serde(default)]
    pub asked_ms: i64,
}

/// Whether a call waiting since `asked_ms` has waited longer than
/// `timeout_ms` by `now_ms` (a timeout of 0 never expires).
pub fn expired(asked_ms: i64, now_ms: i64, timeout_ms: i64) -> bool {
    timeout_ms > 0 && asked_ms > 0 && now_ms - asked_ms >= timeout_ms
}

/// What happened to a tool call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The call.
    pub call: ToolCall,
    /// ran, failed, blocked or rejected.
    pub outcome: String,
    /// The tool's text, or why not.
    pub result: String,
}

/// An operation, everything needed to resume it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// Its id.
    pub id: String,
    /// What the person asked.
    pub task: String,
    /// Where it is.
    pub status: Status,
    /// Steps taken (model calls).
    pub step: u32,
    /// Step limit.
    pub max_steps: u32,
    /// Inside an automation (approval phase 3).
    pub automation: bool,
    /// `server/tool` forced on the first model call.
    pub tool_choice: Option<String>,
    /// The conversation in OpenAI chat format (system, user, assistant
    /// with tool_calls, tool).
    pub messages: Vec<serde_json::Value>,
    /// Calls waiting for a person.
    pub pending: Vec<Pending>,
    /// Every tool call and its outcome.
    pub calls: Vec<CallRecord>,
    /// Guardrail history.
    pub steps: Vec<guardrails::Step>,
    /// The final answer.
    pub result: String,
    /// Why error or paused.
    pub reason: String,
    /// USD spent.
    pub cost_usd: f64,
    /// When it started, Unix ms.
    pub started_ms: i64,
    /// When a person last answered a check-in (or the start).
    pub last_check_in_ms: i64,
}

impl Operation {
    /// A new operation for `task`.
    pub fn new(id: String, task: String, max_steps: u32, automation: bool, now_ms: i64) -> Self {
        let max_steps = match max_steps {
            0 => DEFAULT_MAX_STEPS,
            n => n.min(MAX_MAX_STEPS),
        };
        Self {
            messages: vec![serde_json::json!({"role": "user", "content": task})],
            id,
            task,
            status: Status::Idle,
            step: 0,
            max_steps,
            automation,
            tool_choice: None,
            pending: Vec::new(),
            calls: Vec::new(),
            steps: Vec::new(),
            result: String::new(),
            reason: String::new(),
            cost_usd: 0.0,
            started_ms: now_ms,
            last_check_in_ms: now_ms,
        }
    }
}

/// What the executor must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Instruction {
    /// Ask the model (with the tools offered).
    CallLlm,
    /// Run these tool calls (in parallel) and append their results.
    CallToolsBatch(Vec<ToolCall>),
    /// Park these calls for a person.
    RequestHumanApprove(Vec<Pending>),
    /// Refuse these calls (allow-list mode), telling the model why.
    Block(Vec<(ToolCall, String)>),
    /// Stop: done with this answer.
    Finish(String),
    /// Stop: paused with this reason.
    Pause(String),
    /// Stop: failed with this reason.
    Fail(String),
}

/// The model's reply to one step.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// Its text.
    pub content: String,
    /// The tool calls it asked for.
    pub tool_calls: Vec<ToolCall>,
}

/// Before a model call: whether the operation may take another step.
pub fn before_step(op: &Operation, now_ms: i64) -> Option<Instruction> {
    if op.step >= op.max_steps {
        return Some(Instruction::Fail(format!(
            "stopped after {} steps (the limit): the model kept calling tools",
            op.max_steps
        )));
    }
    match guardrails::check(
        &op.steps,
        &op.task,
        op.started_ms,
        op.last_check_in_ms,
        now_ms,
    ) {
        guardrails::Verdict::Continue => None,
        guardrails::Verdict::Pause(r) | guardrails::Verdict::CheckIn(r) => {
            Some(Instruction::Pause(r))
        }
        guardrails::Verdict::Abort(r) => Some(Instruction::Fail(r)),
    }
}

/// After a model reply: what to do with it (mixed execution: calls the
/// policy lets run go now, the rest wait or are blocked).
pub fn after_reply(op: &Operation, reply: &Reply, settings: &Settings) -> Vec<Instruction> {
    if reply.tool_calls.is_empty() {
        return vec![Instruction::Finish(reply.content.clone())];
    }
    let (mut run, mut ask, mut block) = (Vec::new(), Vec::new(), Vec::new());
    for c in &reply.tool_calls {
        let d = approval::decide(
            settings,
            approval::Call {
                server: &c.server,
                tool: &c.tool,
                automation: op.automation,
            },
        );
        match d.verdict {
            Verdict::Run => run.push(c.clone()),
            Verdict::Ask => ask.push(Pending {
                call: c.clone(),
                phase: d.phase,
                reason: d.reason,
                asked_ms: 0,
            }),
            Verdict::Block => block.push((c.clone(), d.reason)),
        }
    }
    let mut out = Vec::new();
    if !block.is_empty() {
        out.push(Instruction::Block(block));
    }
    if !run.is_empty() {
        out.push(Instruction::CallToolsBatch(run));
    }
    if !ask.is_empty() {
        out.push(Instruction::RequestHumanApprove(ask));
    }
    out
}

/// Tool calls of the last assistant message that have no result (a crash
/// interrupted them), to be answered before the model is asked again.
pub fn unanswered_calls(messages: &[serde_json::Value]) -> Vec<String> {
    let Some(pos) = messages.iter().rposition(|m| m["role"] == "assistant") else {
        return Vec::new();
    };
    let answered: Vec<&str> = messages[pos + 1..]
        .iter()
        .filter(|m| m["role"] == "tool")
        .filter_map(|m| m["tool_call_id"].as_str())
        .collect();
    messages[pos]["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_str())
        .filter(|id| !answered.contains(id))
        .map(str::to_owned)
        .collect()
}

/// A model-facing function name for `server/tool`: `server__tool` with
/// characters outside `[A-Za-z0-9_-]` replaced, at most 64 long.
pub fn function_name(server: &str, tool: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let mut n = format!("{}__{}", clean(server), clean(tool));
    n.truncate(64);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiting_call_expires_after_its_timeout_and_never_with_zero() {
        assert!(!expired(1_000, 1_500, 1_000));
        assert!(expired(1_000, 2_000, 1_000));
        assert!(!expired(1_000, 99_000, 0));
        // Not stamped yet: never expired on a guess.
        assert!(!expired(0, 99_000, 1_000));
    }

    fn call(id: &str, server: &str, tool: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            server: server.into(),
            tool: tool.into(),
            arguments: "{}".into(),
        }
    }

    #[test]
    fn a_reply_without_tools_finishes() {
        let op = Operation::new("op".into(), "t".into(), 0, false, 0);
        assert_eq!(op.max_steps, DEFAULT_MAX_STEPS);
        let r = Reply {
            content: "done".into(),
            tool_calls: vec![],
        };
        assert_eq!(
            after_reply(&op, &r, &Settings::default()),
            vec![Instruction::Finish("done".into())]
        );
    }

    #[test]
    fn mixed_execution_runs_safe_calls_and_parks_dangerous_ones() {
        let mut s = Settings::default();
        s.auto_run.insert("time".into());
        s.default_mode =
            approval::DefaultMode::AllowList(["notes/list".to_string()].into_iter().collect());
        let op = Operation::new("op".into(), "t".into(), 5, false, 0);
        let r = Reply {
            content: String::new(),
            tool_calls: vec![
                call("1", "time", "get_current_time"),
                call("2", "mail", "send_email"),
                call("3", "notes", "list"),
                call("4", "notes", "export"),
            ],
        };
        let out = after_reply(&op, &r, &s);
        assert_eq!(out.len(), 3, "{out:?}");
        match &out[0] {
            Instruction::Block(b) => {
                assert_eq!(b[0].0.id, "4");
                assert!(b[0].1.contains("allow-list"));
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(
            out[1],
            Instruction::CallToolsBatch(vec![
                call("1", "time", "get_current_time"),
                call("3", "notes", "list")
            ])
        );
        match &out[2] {
            Instruction::RequestHumanApprove(p) => {
                assert_eq!((p[0].call.id.as_str(), p[0].phase), ("2", 1));
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn step_limit_and_guardrails_stop_the_loop() {
        let mut op = Operation::new("op".into(), "triage".into(), 2, false, 0);
        assert_eq!(before_step(&op, 1_000), None);
        op.step = 2;
        assert!(
            matches!(before_step(&op, 1_000), Some(Instruction::Fail(r)) if r.contains("2 steps"))
        );
        op.step = 0;
        assert!(matches!(
            before_step(&op, guardrails::CHECK_IN_MS),
            Some(Instruction::Pause(r)) if r.contains("triage")
        ));
        for _ in 0..3 {
            op.steps.push(guardrails::Step {
                at_ms: 1,
                tool: "a/x".into(),
                input: "{}".into(),
                failed: false,
                cost_usd: 0.0,
                error: String::new(),
            });
        }
        assert!(matches!(before_step(&op, 10), Some(Instruction::Pause(r)) if r.contains("stuck")));
    }

    #[test]
    fn calls_a_crash_left_unanswered() {
        let m = vec![
            serde_json::json!({"role": "user", "content": "x"}),
            serde_json::json!({"role": "assistant", "content": "", "tool_calls": [
                {"id": "a"}, {"id": "b"}]}),
            serde_json::json!({"role": "tool", "tool_call_id": "a", "content": "ok"}),
        ];
        assert_eq!(unanswered_calls(&m), ["b"]);
        assert!(unanswered_calls(&m[..1]).is_empty());
    }

    #[test]
    fn function_names_are_safe() {
        assert_eq!(
            function_name("time", "get_current_time"),
            "time__get_current_time"
        );
        assert_eq!(function_name("a.b", "x y/z"), "a_b__x_y_z");
        assert_eq!(function_name(&"s".repeat(60), "tool").len(), 64);
        for s in [Status::Idle, Status::WaitingForHuman, Status::Error] {
            assert_eq!(Status::parse(s.name()), Some(s));
        }
    }
}
