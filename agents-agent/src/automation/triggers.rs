//! What starts runs on their own: the schedule (cron with its missed-run
//! policy, looked at every few seconds, so a restart or a sleep is seen
//! as a gap), capture patterns (an app in focus for N minutes, a window
//! title, a context switch), and MCP servers' notifications. Each start
//! names its occurrence, so one occurrence runs once however often it is
//! seen. The loop also drives the runner's tick (due delays, agent steps,
//! approvals that expire).

use super::flow::{CaptureKind, Trigger};
use super::runner::Automations;
use super::schedule::{self, Cron};
use crate::agent::approval::glob_match;
use crate::context::store as capture;
use crate::util::now_ms;
use serde_json::{json, Map, Value};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often schedules and capture patterns are looked at.
const LOOK_EVERY: Duration = Duration::from_secs(5);

/// Start the loops; they end with `shutdown`.
pub fn spawn(a: Automations, shutdown: CancellationToken) {
    let (me, stop) = (a.clone(), shutdown.clone());
    tokio::spawn(async move {
        let mut last_look = std::time::Instant::now() - LOOK_EVERY;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if let Err(e) = me.tick().await {
                tracing::warn!(error = %e, "automations tick failed");
            }
            if last_look.elapsed() >= LOOK_EVERY {
                last_look = std::time::Instant::now();
                schedules(&me).await;
                capture_patterns(&me).await;
            }
        }
    });
    tokio::spawn(async move {
        let mut rx = a.mcp().subscribe();
        loop {
            let n = tokio::select! {
                _ = shutdown.cancelled() => return,
                n = rx.recv() => n,
            };
            let n = match n {
                Ok(n) => n,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(k)) => {
                    tracing::warn!(missed = k, "automations missed MCP notifications");
                    continue;
                }
                Err(_) => return,
            };
            for (row, f) in a.enabled_with("mcp").await {
                let Trigger::Mcp { server, method } = &f.trigger else {
                    continue;
                };
                if *server != n.server || (!method.is_empty() && *method != n.method) {
                    continue;
                }
                let mut vars = Map::new();
                vars.insert(
                    "trigger".into(),
                    json!({"server": n.server, "method": n.method}),
                );
                let key = format!("mcp:{}:{}:{}", n.server, n.method, crate::util::new_id("n"));
                match a.start(&row.id, "mcp", key, vars, false).await {
                    Ok(_) => {
                        a.set_trigger_state(
                            &row.id,
                            json!({}),
                            format!("ran on {} from {}", n.method, n.server),
                        )
                        .await
                    }
                    Err(e) => {
                        tracing::warn!(flow = %row.id, error = %e, "an MCP trigger could not start its flow")
                    }
                }
            }
        }
    });
}

async fn schedules(a: &Automations) {
    let now = now_ms();
    for (row, f) in a.enabled_with("schedule").await {
        let Trigger::Schedule { cron, missed } = &f.trigger else {
            continue;
        };
        let Ok(c) = Cron::parse(cron) else { continue };
        let state: Value = serde_json::from_str(&row.trigger_state).unwrap_or_else(|_| json!({}));
        // First look after adding or enabling: from now on.
        let last = state.get("last_ms").and_then(Value::as_i64).unwrap_or(now);
        let (occurrence, missed_n) = schedule::due(&c, *missed, last, now);
        let mut note = row.trigger_note.clone();
        if let Some(o) = occurrence {
            match a
                .start(
                    &row.id,
                    "schedule",
                    format!("schedule:{o}"),
                    Map::new(),
                    false,
                )
                .await
            {
                Ok(Some(r)) => {
                    note = format!("ran {} for {}{}", r.id, o, missed_note(missed_n, "skipped"))
                }
                Ok(None) => {}
                Err(e) => note = format!("could not start: {e}"),
            }
        } else if missed_n > 0 {
            note = missed_note(missed_n, "skipped (missed: skip)");
        }
        let next = c.next_after(now).unwrap_or(0);
        a.set_trigger_state(&row.id, json!({"last_ms": now, "next_ms": next}), note)
            .await;
    }
}

fn missed_note(n: u32, what: &str) -> String {
    if n == 0 {
        String::new()
    } else {
        format!("; {n} missed occurrence(s) {what}")
    }
}

async fn capture_patterns(a: &Automations) {
    let flows = a.enabled_with("capture").await;
    if flows.is_empty() {
        return;
    }
    let Ok(Some(focus)) = a.db().read(|c| Ok(capture::focus(c))).await else {
        return;
    };
    let now = now_ms();
    let lower = |s: &str| s.to_lowercase();
    for (row, f) in flows {
        let Trigger::Capture(p) = &f.trigger else {
            continue;
        };
        let Ok(kind) = p.kind() else { continue };
        let app_ok = p
            .app
            .as_deref()
            .is_none_or(|g| glob_match(&lower(g), &lower(&focus.app)));
        let mut state: Value =
            serde_json::from_str(&row.trigger_state).unwrap_or_else(|_| json!({}));
        let before = state.clone();
        let key = match kind {
            CaptureKind::Focus => {
                let need = p.minutes.unwrap_or(0) as i64 * 60_000;
                (app_ok && now - focus.since_ms >= need)
                    .then(|| format!("capture:focus:{}:{}", focus.app, focus.since_ms))
            }
            CaptureKind::Title => p
                .title
                .as_deref()
                .filter(|g| app_ok && glob_match(&lower(g), &lower(&focus.title)))
                .map(|_| format!("capture:title:{}", focus.activity_id)),
            CaptureKind::ContextSwitch => {
                let last = state.get("app").and_then(Value::as_str).map(str::to_owned);
                let switched = last.as_ref().is_some_and(|l| *l != focus.app);
                state["app"] = json!(focus.app);
                (switched && app_ok).then(|| format!("capture:switch:{}", focus.activity_id))
            }
        };
        let mut note = row.trigger_note.clone();
        if let Some(key) = key {
            let mut vars = Map::new();
            vars.insert(
                "trigger".into(),
                json!({"app": focus.app, "title": focus.title, "since_ms": focus.since_ms}),
            );
            match a.start(&row.id, "capture", key, vars, false).await {
                Ok(Some(r)) => note = format!("ran {} on {}", r.id, focus.app),
                Ok(None) => {}
                Err(e) => note = format!("could not start: {e}"),
            }
        }
        if state != before || note != row.trigger_note {
            a.set_trigger_state(&row.id, state, note).await;
        }
    }
}
