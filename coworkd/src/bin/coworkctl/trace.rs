//! `coworkctl trace <ID|last|status>`: one call's spans across processes,
//! as a waterfall (`cowork.system.v1.System/GetTrace`), and what the traces
//! table holds (`GetTraceStatus`). An operation's timeline
//! (`agent show ID --timeline`) is rendered here too.

use crate::context::{call, human_bytes, rfc3339_ms, Ctx};
use anyhow::Result;
use cowork_proto::pb::system::{self as pb, system_client::SystemClient};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::process::ExitCode;

/// `coworkctl trace`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A trace id (32 hex digits, as a call's `cowork-trace-id` header
    /// says), `last` for the newest, or `status` for what is stored, the
    /// settings and the spans each process lost.
    pub id: String,
    /// With `last`: the newest trace of this agent operation.
    #[arg(long, value_name = "ID")]
    pub op: Option<String>,
}

/// Run `trace`.
pub async fn run(a: Args, ctx: &mut Ctx) -> Result<ExitCode> {
    let mut c = SystemClient::new(ctx.channel.clone());
    if a.id == "status" {
        let s = c
            .get_trace_status(call(pb::GetTraceStatusRequest {}))
            .await?
            .into_inner();
        ctx.show_block(|| status_json(&s), || status_text(&s))?;
        return Ok(ExitCode::SUCCESS);
    }
    let t = c
        .get_trace(call(pb::GetTraceRequest {
            trace_id: a.id,
            op: a.op.unwrap_or_default(),
        }))
        .await?
        .into_inner();
    ctx.show_block(|| trace_json(&t), || waterfall(&t))?;
    Ok(ExitCode::SUCCESS)
}

/// `trace status --json`.
pub fn status_json(s: &pb::GetTraceStatusResponse) -> Value {
    json!({
        "retention_days": s.retention_days, "max_mb": s.max_mb,
        "sample_ratio": s.sample_ratio, "otlp_endpoint": s.otlp_endpoint,
        "settings_error": s.settings_error, "spans": s.spans, "bytes": s.bytes,
        "oldest_unix_us": s.oldest_unix_us,
        "lost": s.lost.iter().map(|l| json!({
            "process": l.process, "dropped": l.dropped,
            "otlp_dropped": l.otlp_dropped, "otlp_failed": l.otlp_failed,
        })).collect::<Vec<_>>(),
    })
}

/// `trace status` in words.
pub fn status_text(s: &pb::GetTraceStatusResponse) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "spans: {} ({} of {} MB), kept {} days{}",
        s.spans,
        human_bytes(s.bytes),
        s.max_mb,
        s.retention_days,
        if s.oldest_unix_us > 0 {
            format!(", oldest {}", rfc3339_ms(s.oldest_unix_us / 1000))
        } else {
            String::new()
        }
    );
    let _ = writeln!(out, "sampled: {:.0}% of calls", s.sample_ratio * 100.0);
    let _ = writeln!(
        out,
        "export: {}",
        if s.otlp_endpoint.is_empty() {
            "off".to_owned()
        } else {
            format!("OTLP/HTTP to {}", s.otlp_endpoint)
        }
    );
    if !s.settings_error.is_empty() {
        let _ = writeln!(out, "[traces] is not used: {}", s.settings_error);
    }
    if s.lost.is_empty() {
        let _ = writeln!(out, "lost: none");
    }
    for l in &s.lost {
        let _ = writeln!(
            out,
            "lost by {}: {} dropped (queue full), {} not exported (queue full), {} in failed exports",
            l.process, l.dropped, l.otlp_dropped, l.otlp_failed
        );
    }
    out
}

/// An operation's timeline in words: one line per span, by time, with
/// its clock time, offset, duration and what it was (model and tokens,
/// tool and outcome, approval and who decided after how long, browser
/// action), indented under its parent.
pub fn timeline_text(t: &pb::GetTimelineResponse) -> String {
    let mut out = format!("timeline of {}\n", t.op);
    let t0 = t.spans.iter().map(|s| s.start_unix_us).min().unwrap_or(0);
    let _ = writeln!(
        out,
        "{:<24} {:>10} {:>10}  {:<8} {:<24} DETAIL",
        "AT (UTC)", "OFFSET", "DURATION", "PROCESS", "SPAN"
    );
    for (s, d) in t.spans.iter().zip(depths(&t.spans)) {
        let a: Value = serde_json::from_str(&s.attributes_json).unwrap_or(Value::Null);
        let get = |k: &str| match a.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        };
        let detail = match s.name.as_str() {
            "model" => format!(
                "{}/{} {} → {} tokens, {}",
                get("engine"),
                get("model"),
                get("prompt_tokens"),
                get("completion_tokens"),
                s.outcome
            ),
            "tool" | "mcp.call" => format!("{}/{} {}", get("server"), get("tool"), s.outcome),
            "approval" => format!(
                "{}/{} {} by {} after waiting {} ms",
                get("server"),
                get("tool"),
                get("decision"),
                get("decided_by"),
                get("wait_ms")
            ),
            "browser.action" => format!("{} {}", get("action"), s.outcome),
            "relay" | "request" => format!("{} {}", get("path"), s.outcome),
            _ => s.outcome.clone(),
        };
        let _ = writeln!(
            out,
            "{:<24} {:>8.1}ms {:>8.1}ms  {:<8} {:<24} {}",
            rfc3339_ms(s.start_unix_us / 1000),
            (s.start_unix_us - t0) as f64 / 1000.0,
            s.duration_us as f64 / 1000.0,
            s.process,
            format!("{}{}", "  ".repeat(d), s.name),
            detail
        );
    }
    out
}

/// What `agent show ID --timeline` says when no span of the operation is
/// stored (yet: spans are written within a second or two; or never, when
/// `[traces] sample_ratio` skipped it).
pub fn no_timeline(op: &str, why: &str) -> String {
    format!("timeline of {op}: no spans ({why})\n")
}

/// `agent show ID --timeline --json`: the spans, as `trace --json` shows
/// them, with their trace ids.
pub fn timeline_json(t: &pb::GetTimelineResponse) -> Value {
    json!({
        "op": t.op,
        "spans": t.spans.iter().map(|s| {
            let mut v = span_json(s);
            v["trace_id"] = json!(s.trace_id);
            v
        }).collect::<Vec<_>>(),
    })
}

fn span_json(s: &pb::TraceSpan) -> Value {
    json!({
        "span_id": s.span_id, "parent_span_id": s.parent_span_id,
        "process": s.process, "name": s.name,
        "start_unix_us": s.start_unix_us, "duration_us": s.duration_us,
        "outcome": s.outcome,
        "attributes": serde_json::from_str::<Value>(&s.attributes_json).unwrap_or(Value::Null),
    })
}

/// `trace --json`.
pub fn trace_json(t: &pb::GetTraceResponse) -> Value {
    json!({
        "trace_id": t.trace_id,
        "spans": t.spans.iter().map(span_json).collect::<Vec<_>>(),
    })
}

/// Each span's depth: children under their parent, in start order.
fn depths(spans: &[pb::TraceSpan]) -> Vec<usize> {
    spans
        .iter()
        .map(|s| {
            let mut depth = 0;
            let mut parent = s.parent_span_id.as_str();
            // Bounded: a malformed trace with a cycle cannot loop.
            while depth < spans.len() {
                match spans.iter().find(|p| p.span_id == parent) {
                    Some(p) => {
                        depth += 1;
                        parent = p.parent_span_id.as_str();
                    }
                    None => break,
                }
            }
            depth
        })
        .collect()
}

/// The waterfall: process, span (indented under its parent), start offset
/// from the first span, duration, outcome.
pub fn waterfall(t: &pb::GetTraceResponse) -> String {
    let mut out = format!("trace {}\n", t.trace_id);
    let t0 = t.spans.iter().map(|s| s.start_unix_us).min().unwrap_or(0);
    let _ = writeln!(
        out,
        "{:<10} {:<28} {:>10} {:>10}  OUTCOME",
        "PROCESS", "SPAN", "START", "DURATION"
    );
    for (s, d) in t.spans.iter().zip(depths(&t.spans)) {
        let name = format!("{}{}", "  ".repeat(d), s.name);
        let _ = writeln!(
            out,
            "{:<10} {:<28} {:>8.2}ms {:>8.2}ms  {}",
            s.process,
            name,
            (s.start_unix_us - t0) as f64 / 1000.0,
            s.duration_us as f64 / 1000.0,
            s.outcome
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(
        id: &str,
        parent: &str,
        process: &str,
        name: &str,
        start: i64,
        dur: i64,
    ) -> pb::TraceSpan {
        pb::TraceSpan {
            span_id: id.into(),
            parent_span_id: parent.into(),
            process: process.into(),
            name: name.into(),
            start_unix_us: start,
            duration_us: dur,
            outcome: "ok".into(),
            attributes_json: r#"{"worker":"agents"}"#.into(),
            trace_id: String::new(),
        }
    }

    #[test]
    fn the_waterfall_indents_children_and_offsets_from_the_first_span() {
        let t = pb::GetTraceResponse {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            spans: vec![
                span("a", "0000000000000000", "coworkd", "relay", 1_000, 5_250),
                span("b", "a", "agents", "chat", 1_200, 5_000),
                span("c", "b", "agents", "engine", 2_000, 3_000),
            ],
        };
        let w = waterfall(&t);
        assert!(w.contains("coworkd    relay"), "{w}");
        assert!(w.contains("agents       chat"), "{w}");
        assert!(w.contains("agents         engine"), "{w}");
        assert!(w.contains("    1.00ms     3.00ms  ok"), "{w}");
        let j = trace_json(&t);
        assert_eq!(j["spans"][1]["attributes"]["worker"], "agents");
        // A cycle ends.
        let cyc = vec![
            span("x", "y", "p", "n", 0, 1),
            span("y", "x", "p", "n", 0, 1),
        ];
        assert_eq!(depths(&cyc), vec![2, 2]);
    }

    #[test]
    fn a_timeline_says_who_decided_and_the_status_what_was_lost() {
        let mut model = span("m", "0", "agents", "model", 1_000_000, 400_000);
        model.attributes_json = r#"{"op":"op-1","engine":"local","model":"gemma","prompt_tokens":"90","completion_tokens":"12"}"#.into();
        let mut ask = span("t", "0", "agents", "tool", 1_500_000, 1_000);
        ask.attributes_json = r#"{"op":"op-1","server":"time","tool":"get_current_time"}"#.into();
        ask.outcome = "needs_approval".into();
        let mut approval = span("a", "0", "agents", "approval", 9_000_000, 10);
        approval.attributes_json = r#"{"op":"op-1","server":"time","tool":"get_current_time","decision":"approved","decided_by":"person (api)","wait_ms":7500}"#.into();
        let t = pb::GetTimelineResponse {
            op: "op-1".into(),
            spans: vec![model, ask, approval],
        };
        let text = timeline_text(&t);
        assert!(text.contains("local/gemma 90 → 12 tokens, ok"), "{text}");
        assert!(
            text.contains("time/get_current_time needs_approval"),
            "{text}"
        );
        assert!(
            text.contains("1970-01-01T00:00:09.000Z")
                && text.contains("approved by person (api) after waiting 7500 ms"),
            "{text}"
        );
        assert_eq!(timeline_json(&t)["spans"][2]["attributes"]["wait_ms"], 7500);
        let st = pb::GetTraceStatusResponse {
            retention_days: 7,
            max_mb: 64,
            sample_ratio: 0.5,
            spans: 10,
            bytes: 2048,
            lost: vec![pb::LostSpans {
                process: "agents".into(),
                dropped: 3,
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = status_text(&st);
        assert!(
            text.contains("spans: 10 (2.0 KiB of 64 MB), kept 7 days"),
            "{text}"
        );
        assert!(text.contains("sampled: 50% of calls"), "{text}");
        assert!(text.contains("export: off"), "{text}");
        assert!(text.contains("lost by agents: 3 dropped"), "{text}");
        assert_eq!(status_json(&st)["lost"][0]["dropped"], 3);
    }
}
