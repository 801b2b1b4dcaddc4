//! What recording a relayed call's span costs coworkd, in process: the
//! relay's tracing work (its span, continuing the caller's `traceparent`,
//! injecting its own, the `cowork-trace-id` value, recording wait, outcome
//! and bytes, ending; the span is written to a real cowork.db between
//! blocks, untimed) with traces on (`sample_ratio = 1`) and with this call
//! not sampled (`sample_ratio` < 1 for this trace id), against the same
//! code with traces off (`sample_ratio = 0`: no tracer; the baseline,
//! measured in the same run). Issue 22's target: ≤ 5 µs per relayed call.

use cowork_proto::traces::{self, CallSpan, RelaySpan, TracesSettings};
use std::hint::black_box;
use std::time::Instant;

/// Calls per block; the batch processor writes each block before the next
/// (a block stays under its queue, so no span is dropped and cheapened).
const BLOCK: usize = 1_000;
const BLOCKS: usize = 30;

fn relay_work(tracer: Option<&traces::Tracer>, incoming: &http::HeaderMap) -> http::HeaderMap {
    let mut span = RelaySpan::start(tracer, "agents", "/cowork.worker.v1.Worker/Ping", incoming);
    let mut out = incoming.clone();
    let id = span.inject(&mut out);
    span.record_wait_ms(0);
    if let Some(id) = id {
        out.insert(traces::TRACE_ID_HEADER_NAME, id);
    }
    span.outcome("ok".into());
    span.end(37);
    out
}

/// Median ns per call over the blocks (`flush` between blocks, untimed).
fn measure(tracer: Option<&traces::Tracer>, incoming: &http::HeaderMap, flush: &dyn Fn()) -> f64 {
    let mut per_call = Vec::with_capacity(BLOCKS);
    for _ in 0..BLOCKS {
        let t = Instant::now();
        for _ in 0..BLOCK {
            black_box(relay_work(tracer, black_box(incoming)));
        }
        per_call.push(t.elapsed().as_nanos() as f64 / BLOCK as f64);
        flush();
    }
    per_call.sort_by(f64::total_cmp);
    per_call[BLOCKS / 2]
}

fn main() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut incoming = http::HeaderMap::new();
    incoming.insert(
        "traceparent",
        http::HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    let run = |settings: Option<TracesSettings>| -> f64 {
        match settings {
            None => measure(None, &incoming, &|| {}),
            Some(s) => {
                use opentelemetry::trace::TracerProvider as _;
                let (provider, _) = traces::provider(dir.path().join("cowork.db"), "coworkd", s);
                let tracer = provider.tracer("coworkd");
                let ns = measure(Some(&tracer), &incoming, &|| {
                    let _ = provider.force_flush();
                });
                let _ = provider.shutdown();
                ns
            }
        }
    };
    // Interleaved rounds; the median of each.
    let (mut off, mut unsampled, mut on) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        off.push(run(None));
        unsampled.push(run(Some(TracesSettings {
            sample_ratio: 0.000_001,
            ..Default::default()
        })));
        on.push(run(Some(TracesSettings::default())));
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (off, unsampled, on) = (med(&mut off), med(&mut unsampled), med(&mut on));
    let c = cowork_db::traces::open(&dir.path().join("cowork.db")).expect("cowork.db");
    let written = cowork_db::traces::stats(&c).expect("stats").spans;
    println!("| relay's tracing work, per call | ns | vs traces off |");
    println!("|---|---|---|");
    println!("| traces off: sample_ratio = 0 (baseline) | {off:.0} | - |");
    println!(
        "| traces on, this call not sampled | {unsampled:.0} | +{:.2} µs |",
        (unsampled - off) / 1000.0
    );
    println!(
        "| traced, sample_ratio = 1 | {on:.0} | +{:.2} µs (target ≤ +5 µs) |",
        (on - off) / 1000.0
    );
    println!(
        "spans written to cowork.db: {written} (none dropped: {})",
        written as usize == 5 * BLOCK * BLOCKS
    );
}
