//! `coworkctl automations`: flows and their runs (`cowork.automations.v1`).

use crate::context::{call, long, Ctx};
use anyhow::{Context as _, Result};
use clap::Subcommand;
use cowork_proto::pb::automations::{self as pb, automations_client::AutomationsClient};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::process::ExitCode;

/// `coworkctl automations`.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Store a flow from a JSON file (a new version when it names an existing id).
    Add {
        /// The flow's JSON file.
        file: std::path::PathBuf,
    },
    /// Every flow.
    List,
    /// One flow with its JSON.
    Show {
        /// The flow's id.
        id: String,
    },
    /// Turn a flow's trigger on.
    Enable {
        /// The flow's id.
        id: String,
    },
    /// Turn a flow's trigger off.
    Disable {
        /// The flow's id.
        id: String,
    },
    /// Run a flow now and wait for it to stop or wait.
    Run {
        /// The flow's id.
        id: String,
        /// An input variable, K=V (V as JSON when it parses as JSON).
        #[arg(long = "var", value_name = "K=V")]
        vars: Vec<String>,
        /// Start it and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// Runs, newest first (of one flow, or all); with RUN, one run's steps.
    Runs {
        /// A flow's id or a run's id.
        id: Option<String>,
        /// How many runs.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Delete a flow (its runs stay in the log).
    Rm {
        /// The flow's id.
        id: String,
    },
}

/// Run an `automations` command.
pub async fn run(cmd: Cmd, ctx: &mut Ctx) -> Result<ExitCode> {
    let mut c = AutomationsClient::new(ctx.channel.clone());
    match cmd {
        Cmd::Add { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let f = c
                .add_flow(call(pb::AddFlowRequest { json: text }))
                .await?
                .into_inner();
            ctx.show(
                || flow_json(&f),
                || {
                    format!(
                        "{}  {} (v{}, trigger {})",
                        f.id, f.name, f.version, f.trigger_type
                    )
                },
            )?;
        }
        Cmd::List => {
            let r = c
                .list_flows(call(pb::ListFlowsRequest {}))
                .await?
                .into_inner();
            ctx.show_block(
                || json!({"flows": r.flows.iter().map(flow_json).collect::<Vec<_>>()}),
                || flows_text(&r.flows),
            )?;
        }
        Cmd::Show { id } => {
            let f = c.get_flow(call(pb::FlowRef { id })).await?.into_inner();
            ctx.show(
                || flow_json(&f),
                || {
                    let pretty = serde_json::from_str::<Value>(&f.json)
                        .ok()
                        .and_then(|v| serde_json::to_string_pretty(&v).ok())
                        .unwrap_or(f.json.clone());
                    format!(
                        "{}  {}  {}  v{}  trigger {}  {}\n{pretty}",
                        f.id,
                        f.name,
                        if f.enabled { "enabled" } else { "disabled" },
                        f.version,
                        f.trigger_type,
                        f.trigger_note
                    )
                },
            )?;
        }
        Cmd::Enable { id } => set(&mut c, ctx, id, true).await?,
        Cmd::Disable { id } => set(&mut c, ctx, id, false).await?,
        Cmd::Run { id, vars, no_wait } => {
            let mut map = std::collections::HashMap::new();
            for kv in vars {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--var takes K=V, not {kv:?}"))?;
                map.insert(k.to_owned(), v.to_owned());
            }
            let r = c
                .run_flow(long(pb::RunFlowRequest {
                    id,
                    vars: map,
                    wait: !no_wait,
                }))
                .await?
                .into_inner();
            ctx.show_block(|| run_json(&r), || run_text(&r))?;
            if matches!(r.status.as_str(), "failed" | "interrupted") {
                return Ok(ExitCode::from(1));
            }
        }
        Cmd::Runs { id: Some(id), .. } if id.starts_with("run-") => {
            let r = c.get_run(call(pb::RunRef { id })).await?.into_inner();
            ctx.show_block(|| run_json(&r), || run_text(&r))?;
        }
        Cmd::Runs { id, limit } => {
            let r = c
                .list_runs(call(pb::ListRunsRequest {
                    flow_id: id.unwrap_or_default(),
                    limit,
                }))
                .await?
                .into_inner();
            ctx.show_block(
                || json!({"runs": r.runs.iter().map(run_json).collect::<Vec<_>>()}),
                || runs_text(&r.runs),
            )?;
        }
        Cmd::Rm { id } => {
            c.remove_flow(call(pb::FlowRef { id: id.clone() })).await?;
            ctx.show(|| json!({"removed": id}), || format!("removed {id}"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn set(
    c: &mut AutomationsClient<tonic::transport::Channel>,
    ctx: &mut Ctx,
    id: String,
    enabled: bool,
) -> Result<()> {
    let f = c
        .set_enabled(call(pb::SetEnabledRequest { id, enabled }))
        .await?
        .into_inner();
    ctx.show(
        || flow_json(&f),
        || {
            format!(
                "{} {}",
                f.id,
                if f.enabled { "enabled" } else { "disabled" }
            )
        },
    )
}

/// A flow in `--json`.
pub fn flow_json(f: &pb::Flow) -> Value {
    json!({
        "id": f.id, "name": f.name, "enabled": f.enabled, "trigger_type": f.trigger_type,
        "version": f.version, "created_ms": f.created_ms, "updated_ms": f.updated_ms,
        "trigger_note": f.trigger_note,
        "flow": serde_json::from_str::<Value>(&f.json).unwrap_or(Value::Null),
    })
}

fn parse(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or(Value::Null)
}

/// A run in `--json`.
pub fn run_json(r: &pb::Run) -> Value {
    json!({
        "id": r.id, "flow_id": r.flow_id, "flow_name": r.flow_name, "status": r.status,
        "trigger": r.trigger, "occurrence_key": r.occurrence_key,
        "started_ms": r.started_ms, "finished_ms": r.finished_ms, "error": r.error,
        "output": parse(&r.output_json), "vars": parse(&r.vars_json),
        "waiting_call": r.waiting_call, "waiting_reason": r.waiting_reason,
        "resume_at_ms": r.resume_at_ms,
        "steps": r.steps.iter().map(|s| json!({
            "index": s.index, "id": s.step_id, "block": s.block, "status": s.status,
            "attempt": s.attempt, "started_ms": s.started_ms, "finished_ms": s.finished_ms,
            "output": parse(&s.output_json), "error": s.error,
        })).collect::<Vec<_>>(),
    })
}

/// Flows as a table.
pub fn flows_text(flows: &[pb::Flow]) -> String {
    if flows.is_empty() {
        return "no flows (`coworkctl automations add FILE.json`)\n".into();
    }
    let mut s = String::new();
    for f in flows {
        let _ = writeln!(
            s,
            "{:<12} {:<8} {:<9} v{:<3} {}  {}",
            f.id,
            if f.enabled { "enabled" } else { "disabled" },
            f.trigger_type,
            f.version,
            f.name,
            f.trigger_note
        );
    }
    s
}

/// One run with its steps, in words.
pub fn run_text(r: &pb::Run) -> String {
    let mut s = format!("{}  {}  {} ({})\n", r.id, r.flow_name, r.status, r.trigger);
    for st in &r.steps {
        let what = if st.error.is_empty() {
            st.output_json.chars().take(160).collect::<String>()
        } else {
            st.error.clone()
        };
        let _ = writeln!(
            s,
            "  {:<12} {:<13} {:<18} #{}  {}",
            st.step_id, st.block, st.status, st.attempt, what
        );
    }
    if !r.waiting_call.is_empty() {
        let _ = writeln!(
            s,
            "waits: {} ({}) — `coworkctl approvals approve {}`",
            r.waiting_call, r.waiting_reason, r.waiting_call
        );
    }
    if r.resume_at_ms > 0 {
        let _ = writeln!(s, "resumes at {} (Unix ms)", r.resume_at_ms);
    }
    if !r.error.is_empty() {
        let _ = writeln!(s, "error: {}", r.error);
    }
    if r.status == "done" {
        let _ = writeln!(s, "output: {}", r.output_json);
    }
    s
}

/// Runs as a table.
pub fn runs_text(runs: &[pb::Run]) -> String {
    if runs.is_empty() {
        return "no runs\n".into();
    }
    let mut s = String::new();
    for r in runs {
        let _ = writeln!(
            s,
            "{}  {:<18} {:<9} {}  {}",
            r.id, r.status, r.trigger, r.flow_name, r.error
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiting_run_says_how_to_approve() {
        let r = pb::Run {
            id: "run-1".into(),
            flow_name: "f".into(),
            status: "waiting_for_human".into(),
            waiting_call: "run-1/send-1".into(),
            waiting_reason: "send_email matches the security denylist".into(),
            ..Default::default()
        };
        let t = run_text(&r);
        assert!(
            t.contains("coworkctl approvals approve run-1/send-1"),
            "{t}"
        );
        assert_eq!(run_json(&r)["waiting_call"], "run-1/send-1");
    }
}
