//! Automations (seed 003 "Automations Engine"): flows of steps that run on
//! their own — on a schedule, on a capture pattern, on an MCP server's
//! notification, by hand, or as an agent's `flow_<id>` tool.
//!
//! Pure: `flow.rs` (the blocks, parsed and checked), `vars.rs` (`${…}`
//! substitution), `schedule.rs` (cron and the missed-run policy), and the
//! run's course here ([`advance`], [`after_crash`]). Runtime: `runner.rs`
//! (runs, durable step by step), `triggers.rs` (the loop that starts
//! them), `store.rs` (the only SQL), `service.rs`.

pub mod flow;
pub mod runner;
pub mod schedule;
pub mod service;
pub mod store;
pub mod triggers;
pub mod vars;

use flow::{Block, Flow, OnInterrupted};
use serde_json::Value;

/// A stored flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRow {
    /// `flow_…`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Whether its trigger fires.
    pub enabled: bool,
    /// manual, schedule, capture or mcp.
    pub trigger_type: String,
    /// The flow's JSON.
    pub json: String,
    /// Bumped by every re-add.
    pub version: i64,
    /// When added (Unix ms).
    pub created_ms: i64,
    /// When last changed.
    pub updated_ms: i64,
    /// The trigger's memory (JSON): when it last looked, what it fired for.
    pub trigger_state: String,
    /// What the trigger last did, or why it cannot.
    pub trigger_note: String,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    /// `run_…`.
    pub id: String,
    /// Its flow.
    pub flow_id: String,
    /// The flow's name then.
    pub flow_name: String,
    /// The flow as it was when the run began (edits do not change a run).
    pub flow_json: String,
    /// running, waiting, waiting_for_human, done, failed, interrupted.
    pub status: String,
    /// What started it.
    pub trigger: String,
    /// The occurrence it is for.
    pub occurrence_key: String,
    /// The index of the step to run next (or running now).
    pub cursor: usize,
    /// The variables map.
    pub vars_json: String,
    /// The result.
    pub output_json: String,
    /// Why it failed.
    pub error: String,
    /// The call waiting for a person (JSON [`Waiting`]), or empty.
    pub waiting_json: String,
    /// A delay's deadline while it waits (Unix ms).
    pub resume_at_ms: i64,
    /// When it began.
    pub started_ms: i64,
    /// When it ended (0: not yet).
    pub finished_ms: i64,
}

/// One executed step (an attempt) as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRow {
    /// Its place in the run's log (1, 2, …).
    pub seq: u32,
    /// The step's index in the flow.
    pub index: usize,
    /// The step's id.
    pub step_id: String,
    /// Its block type.
    pub block: String,
    /// running, waiting, waiting_for_human, done, failed, interrupted.
    pub status: String,
    /// 1 for the first try.
    pub attempt: u32,
    /// When it began.
    pub started_ms: i64,
    /// When it ended.
    pub finished_ms: i64,
    /// Its output.
    pub output_json: String,
    /// Its error.
    pub error: String,
    /// A delay's deadline (Unix ms), kept across restarts.
    pub deadline_ms: i64,
    /// An agent step's operation.
    pub operation_id: String,
}

/// A step waiting for a person's approval.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Waiting {
    /// The call's id (`approvals approve RUN/CALL`).
    pub call_id: String,
    /// The server (or `browser`).
    pub server: String,
    /// The tool (or browser action).
    pub tool: String,
    /// The substituted arguments.
    pub arguments: String,
    /// The approval phase that asked.
    pub phase: u8,
    /// Why.
    pub reason: String,
    /// Since when (Unix ms).
    pub asked_ms: i64,
    /// An agent step's operation waits instead (its calls are in
    /// `approvals list` under the operation).
    #[serde(default)]
    pub operation_id: String,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Its output.
    Done(Value),
    /// Why it failed (after its retries).
    Failed(String),
}

/// Where a run goes after a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Run the step at this index.
    Step(usize),
    /// The run is done with this result.
    Finish(Value),
    /// The run failed.
    Fail(String),
}

fn index_of(flow: &Flow, target: &str) -> Option<usize> {
    flow.steps.iter().position(|s| s.id == target)
}

/// Record step `i`'s outcome in `vars` and say where the run goes.
pub fn advance(flow: &Flow, i: usize, outcome: &Outcome, vars: &mut Value) -> Next {
    let step = &flow.steps[i];
    let goto = |target: Option<&str>, output: Value| match target {
        Some("end") => Next::Finish(output),
        Some(t) => index_of(flow, t).map_or(Next::Fail(format!("no step {t:?}")), Next::Step),
        None if i + 1 < flow.steps.len() => Next::Step(i + 1),
        None => Next::Finish(output),
    };
    match outcome {
        Outcome::Done(output) => {
            if let Some(m) = vars.as_object_mut() {
                m.insert(step.id.clone(), output.clone());
            }
            if step.direct_output {
                return Next::Finish(output.clone());
            }
            match &step.block {
                Block::Condition {
                    then, otherwise, ..
                } => {
                    let held = output.get("result").and_then(Value::as_bool) == Some(true);
                    let target = if held { then } else { otherwise };
                    goto(target.as_deref(), output.clone())
                }
                _ => goto(None, output.clone()),
            }
        }
        Outcome::Failed(e) => {
            if let Some(m) = vars.as_object_mut() {
                m.insert(step.id.clone(), serde_json::json!({"error": e}));
            }
            match &step.on_error {
                Some(t) => goto(Some(t), serde_json::json!({"error": e})),
                None => Next::Fail(format!("step {:?} failed: {e}", step.id)),
            }
        }
    }
}

/// What a restart does with a step it finds in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterCrash {
    /// Run it again (it does nothing outside, or it is idempotent and the
    /// flow says retry); a delay keeps its deadline.
    Rerun,
    /// Never re-run on a guess: the step is interrupted and the run fails.
    Interrupt(String),
}

/// Decide for step `i` found `running` after a crash.
pub fn after_crash(flow: &Flow, i: usize) -> AfterCrash {
    let step = &flow.steps[i];
    if !step.block.acts_outside() {
        return AfterCrash::Rerun;
    }
    match (flow.on_interrupted, step.idempotent) {
        (OnInterrupted::Retry, true) => AfterCrash::Rerun,
        (OnInterrupted::Retry, false) => AfterCrash::Interrupt(format!(
            "step {:?} ({}) was in flight when agents-agent stopped; it may or may not have run, \
             and it is not marked idempotent, so it was not run again",
            step.id,
            step.block.name()
        )),
        (OnInterrupted::Fail, _) => AfterCrash::Interrupt(format!(
            "step {:?} ({}) was in flight when agents-agent stopped; it may or may not have run \
             (the flow's on_interrupted is \"fail\")",
            step.id,
            step.block.name()
        )),
    }
}

/// The wait before retry `attempt` (2, 3, …): the backoff doubled each time.
pub fn retry_wait_ms(backoff_ms: u64, attempt: u32) -> u64 {
    backoff_ms.saturating_mul(1u64 << attempt.saturating_sub(2).min(16))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flow() -> Flow {
        flow::parse(
            r#"{"name":"t","steps":[
              {"id":"a","type":"mcpToolCall","server":"s","tool":"t","idempotent":true},
              {"id":"b","type":"condition","if":{"left":"${a.n}","op":"gt","right":1},"then":"d","else":"c"},
              {"id":"c","type":"delay","seconds":1,"onError":"end"},
              {"id":"d","type":"notification","title":"x","directOutput":true},
              {"id":"e","type":"agentStep","task":"never reached"}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn outputs_go_into_vars_and_conditions_branch() {
        let f = flow();
        let mut vars = json!({});
        assert_eq!(
            advance(&f, 0, &Outcome::Done(json!({"n": 2})), &mut vars),
            Next::Step(1)
        );
        assert_eq!(vars["a"]["n"], 2);
        assert_eq!(
            advance(&f, 1, &Outcome::Done(json!({"result": true})), &mut vars),
            Next::Step(3)
        );
        assert_eq!(
            advance(&f, 1, &Outcome::Done(json!({"result": false})), &mut vars),
            Next::Step(2)
        );
        // directOutput returns early.
        assert_eq!(
            advance(
                &f,
                3,
                &Outcome::Done(json!({"notification": "n1"})),
                &mut vars
            ),
            Next::Finish(json!({"notification": "n1"}))
        );
    }

    #[test]
    fn failures_fail_fast_unless_an_error_branch() {
        let f = flow();
        let mut vars = json!({});
        assert!(
            matches!(advance(&f, 0, &Outcome::Failed("boom".into()), &mut vars), Next::Fail(e) if e.contains("boom"))
        );
        assert!(matches!(
            advance(&f, 2, &Outcome::Failed("x".into()), &mut vars),
            Next::Finish(_)
        ));
        assert_eq!(vars["c"]["error"], "x");
    }

    #[test]
    fn a_step_in_flight_is_never_rerun_on_a_guess() {
        let mut f = flow();
        assert!(matches!(after_crash(&f, 0), AfterCrash::Interrupt(_)));
        assert_eq!(after_crash(&f, 2), AfterCrash::Rerun);
        f.on_interrupted = OnInterrupted::Retry;
        assert_eq!(after_crash(&f, 0), AfterCrash::Rerun);
        assert!(
            matches!(after_crash(&f, 4), AfterCrash::Interrupt(e) if e.contains("not marked idempotent"))
        );
        assert_eq!(retry_wait_ms(500, 2), 500);
        assert_eq!(retry_wait_ms(500, 4), 2000);
    }
}
