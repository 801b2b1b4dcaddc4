//! `coworkctl notifications`: what was raised, and answering it
//! (`cowork.notifications.v1`).

use crate::context::{call, Ctx};
use anyhow::Result;
use clap::Subcommand;
use cowork_proto::pb::notifications::{self as pb, notifications_client::NotificationsClient};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::process::ExitCode;

/// `coworkctl notifications`.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Notifications, newest first, with their state.
    List {
        /// How many.
        #[arg(long, default_value_t = 30)]
        limit: u32,
    },
    /// Dismiss one (cooldowns and learning follow).
    Dismiss {
        /// Its id.
        id: String,
    },
    /// Accept one: its suggested action starts.
    Accept {
        /// Its id.
        id: String,
    },
    /// Expand one into a chat thread with its context.
    Expand {
        /// Its id.
        id: String,
    },
    /// The throttle: caps, deliveries in the last hour, held, demoted.
    Settings,
}

/// Run a `notifications` command.
pub async fn run(cmd: Cmd, ctx: &mut Ctx) -> Result<ExitCode> {
    let mut c = NotificationsClient::new(ctx.channel.clone());
    let (id, action) = match cmd {
        Cmd::List { limit } => {
            let r = c.list(call(pb::ListRequest { limit })).await?.into_inner();
            ctx.show_block(
                || json!({"notifications": r.notifications.iter().map(notification_json).collect::<Vec<_>>()}),
                || list_text(&r.notifications),
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Settings => {
            let s = c
                .get_settings(call(pb::GetSettingsRequest {}))
                .await?
                .into_inner();
            ctx.show_block(|| settings_json(&s), || settings_text(&s))?;
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Dismiss { id } => (id, "dismiss"),
        Cmd::Accept { id } => (id, "accept"),
        Cmd::Expand { id } => (id, "expand"),
    };
    let n = c
        .respond(call(pb::RespondRequest {
            id,
            action: action.into(),
        }))
        .await?
        .into_inner();
    ctx.show(
        || notification_json(&n),
        || format!("{} {}: {}", n.id, n.state, n.note),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// One notification in `--json`.
pub fn notification_json(n: &pb::Notification) -> Value {
    json!({
        "id": n.id, "trigger_type": n.trigger_type, "tier": n.tier, "title": n.title,
        "body": n.body, "state": n.state, "note": n.note, "created_ms": n.created_ms,
        "delivered_ms": n.delivered_ms, "answered_ms": n.answered_ms,
        "action": serde_json::from_str::<Value>(&n.action_json).unwrap_or(Value::Null),
        "members": n.members, "thread_id": n.thread_id,
    })
}

/// Notifications as a table.
pub fn list_text(ns: &[pb::Notification]) -> String {
    if ns.is_empty() {
        return "no notifications\n".into();
    }
    let mut s = String::new();
    for n in ns {
        let _ = writeln!(
            s,
            "{}  {:<13} {:<11} {}  {}",
            n.id, n.tier, n.state, n.title, n.note
        );
    }
    s
}

/// `settings --json`.
pub fn settings_json(s: &pb::Settings) -> Value {
    json!({
        "interval_s": s.interval_s,
        "per_hour": {"urgent": s.urgent_per_hour, "helpful": s.helpful_per_hour, "informational": s.informational_per_hour},
        "last_hour": {"urgent": s.urgent_last_hour, "helpful": s.helpful_last_hour, "informational": s.informational_last_hour},
        "bundle_hold_s": s.bundle_hold_s, "cooldown_s": s.cooldown_s, "deep_work_min": s.deep_work_min,
        "held": s.held, "deep_work": s.deep_work, "demoted": s.demoted,
    })
}

/// The throttle in words.
pub fn settings_text(s: &pb::Settings) -> String {
    format!(
        "last hour / cap: urgent {}/{}, helpful {}/{}, informational {}/{}\n\
         bundling {} s, cooldown after a dismissal {} min, deep work after {} min\n\
         now: {}, {} held for the next switch{}\n",
        s.urgent_last_hour,
        s.urgent_per_hour,
        s.helpful_last_hour,
        s.helpful_per_hour,
        s.informational_last_hour,
        s.informational_per_hour,
        s.bundle_hold_s,
        s.cooldown_s / 60,
        s.deep_work_min,
        if s.deep_work {
            "in deep work"
        } else {
            "not in deep work"
        },
        s.held,
        if s.demoted.is_empty() {
            String::new()
        } else {
            format!("; demoted: {}", s.demoted.join(", "))
        }
    )
}
