//! `coworkctl trace <ID|last>`: one call's spans across processes, as a
//! waterfall (`cowork.system.v1.System/GetTrace`).

use crate::context::{call, Ctx};
use anyhow::Result;
use cowork_proto::pb::system::{self as pb, system_client::SystemClient};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::process::ExitCode;

/// `coworkctl trace`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A trace id (32 hex digits, as a call's `cowork-trace-id` header
    /// says), or `last` for the newest.
    pub id: String,
}

/// Run `trace`.
pub async fn run(a: Args, ctx: &mut Ctx) -> Result<ExitCode> {
    let t = SystemClient::new(ctx.channel.clone())
        .get_trace(call(pb::GetTraceRequest { trace_id: a.id }))
        .await?
        .into_inner();
    ctx.show_block(|| trace_json(&t), || waterfall(&t))?;
    Ok(ExitCode::SUCCESS)
}

/// `trace --json`.
pub fn trace_json(t: &pb::GetTraceResponse) -> Value {
    json!({
        "trace_id": t.trace_id,
        "spans": t.spans.iter().map(|s| json!({
            "span_id": s.span_id, "parent_span_id": s.parent_span_id,
            "process": s.process, "name": s.name,
            "start_unix_us": s.start_unix_us, "duration_us": s.duration_us,
            "outcome": s.outcome,
            "attributes": serde_json::from_str::<Value>(&s.attributes_json).unwrap_or(Value::Null),
        })).collect::<Vec<_>>(),
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
}
