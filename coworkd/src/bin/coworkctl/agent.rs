//! `coworkctl agent`: operations, where the model works on a task with
//! the MCP tools (`cowork.agents.v1`), and how an operation is shown
//! (`approvals` shows them the same way).

use crate::context::{call, exit_code, long, Ctx};
use anyhow::Result;
use clap::Subcommand;
use cowork_proto::pb::agents::{self as pb, agents_client::AgentsClient};
use cowork_proto::pb::system::{self as sys, system_client::SystemClient};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::process::ExitCode;

/// `coworkctl agent`.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Start an operation and wait until it finishes, fails, pauses or
    /// waits for an approval.
    Run {
        /// The task, in words.
        #[arg(required = true)]
        task: Vec<String>,
        /// Force this tool (server/tool) on the first model call.
        #[arg(long, value_name = "SERVER/TOOL")]
        tool_choice: Option<String>,
        /// Run as an automation (routine tools run unattended).
        #[arg(long)]
        automation: bool,
        /// Step limit (default 10).
        #[arg(long, default_value_t = 0)]
        max_steps: u32,
        /// Return at once instead of waiting.
        #[arg(long)]
        no_wait: bool,
    },
    /// One operation.
    Show {
        /// Its id.
        id: String,
        /// Also its timeline: model calls, tool calls, approvals (who
        /// decided, when) and browser actions, in time order, from its
        /// trace spans.
        #[arg(long)]
        timeline: bool,
    },
    /// Operations, newest first.
    List,
    /// Resume a paused operation.
    Resume {
        /// Its id.
        id: String,
    },
}

/// Run an `agent` command.
pub async fn run(cmd: Cmd, ctx: &mut Ctx) -> Result<ExitCode> {
    let mut c = AgentsClient::new(ctx.channel.clone());
    let op = match cmd {
        Cmd::Run {
            task,
            tool_choice,
            automation,
            max_steps,
            no_wait,
        } => c
            .start_operation(long(pb::StartOperationRequest {
                task: task.join(" "),
                tool_choice: tool_choice.unwrap_or_default(),
                automation,
                max_steps,
                wait: !no_wait,
            }))
            .await?
            .into_inner(),
        Cmd::Show { id, timeline } => {
            let op = c
                .get_operation(call(pb::OperationRef { id: id.clone() }))
                .await?
                .into_inner();
            if !timeline {
                op
            } else {
                // No spans (yet, or never sampled) is an empty timeline,
                // not a failure: the operation itself exists.
                let (t, none) = match SystemClient::new(ctx.channel.clone())
                    .get_timeline(call(sys::GetTimelineRequest { op: id.clone() }))
                    .await
                {
                    Ok(t) => (t.into_inner(), None),
                    Err(s) if s.code() == tonic::Code::NotFound => (
                        sys::GetTimelineResponse {
                            op: id.clone(),
                            spans: Vec::new(),
                        },
                        Some(s.message().to_owned()),
                    ),
                    Err(s) => return Err(s.into()),
                };
                ctx.show_block(
                    || {
                        let mut v = operation_json(&op);
                        v["timeline"] = crate::trace::timeline_json(&t)["spans"].clone();
                        v
                    },
                    || {
                        let timeline = match &none {
                            Some(why) => crate::trace::no_timeline(&id, why),
                            None => crate::trace::timeline_text(&t),
                        };
                        format!("{}{timeline}", operation_text(&op))
                    },
                )?;
                return Ok(exit_code(op.status != "error"));
            }
        }
        Cmd::Resume { id } => c
            .resume_operation(long(pb::OperationRef { id }))
            .await?
            .into_inner(),
        Cmd::List => {
            let r = c
                .list_operations(call(pb::ListOperationsRequest { limit: 50 }))
                .await?
                .into_inner();
            for o in &r.operations {
                ctx.show(
                    || operation_json(o),
                    || format!("{}  {:<17} {}", o.id, o.status, o.task),
                )?;
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    show_operation(&op, ctx)
}

/// Print an operation; exit 1 when it ended in error.
pub fn show_operation(o: &pb::Operation, ctx: &mut Ctx) -> Result<ExitCode> {
    ctx.show_block(|| operation_json(o), || operation_text(o))?;
    Ok(exit_code(o.status != "error"))
}

/// One operation as `agent ... --json` prints it.
pub fn operation_json(o: &pb::Operation) -> Value {
    json!({
        "id": o.id, "task": o.task, "status": o.status, "step": o.step,
        "max_steps": o.max_steps, "result": o.result, "reason": o.reason,
        "cost_usd": o.cost_usd,
        "pending": o.pending.iter().map(pending_json).collect::<Vec<_>>(),
        "tool_calls": o.tool_calls.iter().map(|c| json!({
            "server": c.server, "tool": c.tool, "arguments": c.arguments_json,
            "outcome": c.outcome, "result": c.result})).collect::<Vec<_>>(),
    })
}

/// One call waiting for approval (`id` is OPERATION/CALL).
pub fn pending_json(p: &pb::PendingCall) -> Value {
    json!({
        "id": format!("{}/{}", p.operation_id, p.call_id),
        "operation_id": p.operation_id, "call_id": p.call_id, "server": p.server,
        "tool": p.tool, "arguments": p.arguments_json, "phase": p.phase, "reason": p.reason})
}

/// An operation in words: its line, its tool calls, what waits, why it
/// stopped, its result.
pub fn operation_text(o: &pb::Operation) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}  {}  step {}/{}  {}",
        o.id, o.status, o.step, o.max_steps, o.task
    );
    for c in &o.tool_calls {
        let _ = writeln!(
            s,
            "  {} {}/{} {} → {}",
            c.outcome, c.server, c.tool, c.arguments_json, c.result
        );
    }
    for p in &o.pending {
        let _ = writeln!(
            s,
            "  waiting: {}/{} {}/{} {} ({})",
            p.operation_id, p.call_id, p.server, p.tool, p.arguments_json, p.reason
        );
    }
    if !o.reason.is_empty() {
        let _ = writeln!(s, "  {}", o.reason);
    }
    if !o.result.is_empty() {
        let _ = writeln!(s, "{}", o.result);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op() -> pb::Operation {
        pb::Operation {
            id: "op-1".into(),
            task: "what time is it".into(),
            status: "waiting_for_human".into(),
            step: 1,
            max_steps: 10,
            pending: vec![pb::PendingCall {
                operation_id: "op-1".into(),
                call_id: "c1".into(),
                server: "time".into(),
                tool: "get_current_time".into(),
                arguments_json: "{}".into(),
                phase: 6,
                reason: "manual mode asks".into(),
            }],
            tool_calls: vec![pb::ToolCallRecord {
                server: "time".into(),
                tool: "convert_time".into(),
                arguments_json: "{}".into(),
                outcome: "ran".into(),
                result: "09:00".into(),
            }],
            reason: "1 tool call(s) wait for approval".into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_operation_in_words_and_json() {
        let t = operation_text(&op());
        assert!(
            t.starts_with("op-1  waiting_for_human  step 1/10  what time is it\n"),
            "{t}"
        );
        assert!(t.contains("  ran time/convert_time {} → 09:00\n"), "{t}");
        assert!(
            t.contains("  waiting: op-1/c1 time/get_current_time {} (manual mode asks)\n"),
            "{t}"
        );
        let v = operation_json(&op());
        assert_eq!(v["pending"][0]["id"], "op-1/c1");
        assert_eq!(v["tool_calls"][0]["outcome"], "ran");
        for key in [
            "id",
            "task",
            "status",
            "step",
            "max_steps",
            "result",
            "reason",
            "cost_usd",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
    }
}
