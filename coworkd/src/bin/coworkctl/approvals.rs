//! `coworkctl approvals`: tool calls waiting for a person, and deciding
//! them (`cowork.agents.v1`).

use crate::agent::{pending_json, show_operation};
use crate::context::{call, long, Ctx};
use anyhow::Result;
use clap::Subcommand;
use cowork_proto::pb::agents::{self as pb, agents_client::AgentsClient};
use serde_json::json;
use std::fmt::Write as _;
use std::process::ExitCode;

/// `coworkctl approvals`.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Tool calls waiting for a person.
    List,
    /// Approve one (ID as `approvals list` shows it: OPERATION/CALL).
    Approve {
        /// OPERATION/CALL.
        id: String,
    },
    /// Reject one: the model is told and decides what next.
    Reject {
        /// OPERATION/CALL.
        id: String,
    },
}

/// Run an `approvals` command.
pub async fn run(cmd: Cmd, ctx: &mut Ctx) -> Result<ExitCode> {
    let mut c = AgentsClient::new(ctx.channel.clone());
    let op = match cmd {
        Cmd::List => {
            let r = c
                .list_approvals(call(pb::ListApprovalsRequest {}))
                .await?
                .into_inner();
            ctx.show_block(
                || json!({ "pending": r.pending.iter().map(pending_json).collect::<Vec<_>>() }),
                || pending_text(&r.pending),
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Approve { id } => c.approve(long(approval_ref(&id)?)).await?.into_inner(),
        Cmd::Reject { id } => c.reject(long(approval_ref(&id)?)).await?.into_inner(),
    };
    show_operation(&op, ctx)
}

/// OPERATION/CALL, as `approvals list` shows it.
pub fn approval_ref(id: &str) -> Result<pb::ApprovalRef> {
    match id.split_once('/') {
        Some((o, c)) if !o.is_empty() && !c.is_empty() => Ok(pb::ApprovalRef {
            operation_id: o.into(),
            call_id: c.into(),
        }),
        _ => Err(anyhow::anyhow!(
            "an approval id is OPERATION/CALL, as `coworkctl approvals list` shows it"
        )),
    }
}

/// The waiting calls in words.
pub fn pending_text(pending: &[pb::PendingCall]) -> String {
    if pending.is_empty() {
        return "nothing waits for approval\n".into();
    }
    let mut s = String::new();
    for p in pending {
        let _ = writeln!(
            s,
            "{}/{}  {}/{} {}\n  {}",
            p.operation_id, p.call_id, p.server, p.tool, p.arguments_json, p.reason
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_the_waiting_list() {
        let r = approval_ref("op-1/c1").unwrap();
        assert_eq!(
            (r.operation_id.as_str(), r.call_id.as_str()),
            ("op-1", "c1")
        );
        for bad in ["op-1", "/c1", "op-1/", ""] {
            assert!(approval_ref(bad).is_err(), "{bad}");
        }
        assert_eq!(pending_text(&[]), "nothing waits for approval\n");
        let t = pending_text(&[pb::PendingCall {
            operation_id: "op-1".into(),
            call_id: "c1".into(),
            server: "time".into(),
            tool: "get_current_time".into(),
            arguments_json: "{}".into(),
            reason: "asks".into(),
            ..Default::default()
        }]);
        assert_eq!(t, "op-1/c1  time/get_current_time {}\n  asks\n");
    }
}
