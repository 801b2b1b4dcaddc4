//! Chat through the suite vs straight to the engine, in the same run:
//! time to first token and tokens/s against llama.cpp's llama-server with
//! Gemma 3 270M (installed by scripts/test.sh). The direct baseline uses
//! the same HTTP client agents-agent uses, in this process, without
//! coworkd, agents-agent, the router, the database or context.
//! Targets (issue 4): ≤ 5 ms added to first token, ≥ 98 % of direct tokens/s.

mod common;

use common::{direct, median, through_suite, MAX_TOKENS};
use cowork_e2e::*;
use std::time::Duration;

const RUNS: usize = 5;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let engine = start_llama(&["--seed", "1"]);
    let port = engine.port;
    let suite = Suite::start(&format!(
        "[agents]\nprobe_ports = false\nmax_output_tokens = {MAX_TOKENS}\n[[agents.engines]]\nid = \"llamacpp\"\n\
         base_url = \"http://127.0.0.1:{port}/v1\"\napi = \"openai\"\n"
    ));
    suite
        .wait_state("agents", "running", Duration::from_secs(20))
        .await;
    // Warm both paths (model load, detection cache).
    direct(port, "gemma3-270m").await;
    through_suite(&suite).await;
    let (mut dt, mut dr, mut st, mut sr) = (vec![], vec![], vec![], vec![]);
    let mut tokens = 0;
    for _ in 0..RUNS {
        let (t, r, n) = direct(port, "gemma3-270m").await;
        dt.push(t.as_secs_f64() * 1000.0);
        dr.push(r);
        let (t, r, _) = through_suite(&suite).await;
        st.push(t.as_secs_f64() * 1000.0);
        sr.push(r);
        tokens = n;
    }
    let (dt, dr, st, sr) = (median(dt), median(dr), median(st), median(sr));
    println!("| measure | through coworkd | direct to the engine (same run) | ratio / target |");
    println!("|---|---|---|---|");
    println!(
        "| time to first token, median of {RUNS} (ms) | {st:.1} | {dt:.1} | {:+.1} ms (target ≤ 5 ms) |",
        st - dt
    );
    println!(
        "| tokens/s after the first (~{tokens} deltas), median of {RUNS} | {sr:.1} | {dr:.1} | {:.1} % of direct (target ≥ 98 %) |",
        sr / dr * 100.0
    );
}
