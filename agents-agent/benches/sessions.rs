//! Managed llama-server sessions vs the same llama-server started by hand,
//! in the same run (issue 15): time to first token and tokens/s of Gemma
//! 3 270M through coworkd → agents-agent → its session, against a
//! by-hand server of the same binary with the same arguments, called with
//! agents-agent's own HTTP client in this process; load-to-ready of a
//! session against spawn-to-ready by hand; embeddings/s of
//! all-MiniLM-L6-v2 through the gateway against the same session called
//! directly. Targets: ≥ 98 % of direct tokens/s, ≤ +5 ms first token.

mod common;

use common::{direct, median, through_suite, MAX_TOKENS};
use cowork_e2e::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const RUNS: usize = 9;
/// The arguments a managed session of Gemma gets (see `coworkctl models
/// sessions`), for the by-hand server.
const SAME_ARGS: &[&str] = &[
    "--ctx-size",
    "2048",
    "--threads",
    "2",
    "--chat-template",
    "gemma",
    "--no-jinja",
];

fn ctl_json(suite: &Suite, args: &[&str]) -> Value {
    serde_json::from_str(&ok(&suite.ctl(args))).expect("json")
}

fn key_of(pid: u64) -> String {
    let env = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    env.split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"LLAMA_API_KEY="))
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .expect("key")
}

/// Embeddings per second of `batches` POSTs of `body` to `port`.
fn embeddings_per_s(port: u16, key: &str, body: &str, inputs: usize, batches: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..batches {
        let (status, text) = post_json(port, key, "/v1/embeddings", body);
        assert_eq!(status, 200, "{text}");
    }
    (inputs * batches) as f64 / t.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let gemma = gemma_model_path();
    // Spawn-to-ready by hand, 3 times.
    let mut by_hand_ready = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let s = start_llama_model(&gemma, "gemma-3-270m-q4_k_m", SAME_ARGS);
        by_hand_ready.push(t.elapsed().as_secs_f64() * 1000.0);
        drop(s);
    }
    let by_hand = start_llama_model(&gemma, "gemma-3-270m-q4_k_m", SAME_ARGS);
    let suite = Suite::start(&format!(
        "[agents]\nprobe_ports = false\nmax_output_tokens = {MAX_TOKENS}\nlocal_context_tokens = 2048\n\
         [agents.llama]\nserver = \"{}\"\nthreads = 2\nidle_unload_s = 0\n",
        llama_server_path()
    ));
    suite
        .wait_state("agents", "running", Duration::from_secs(30))
        .await;
    // Load-to-ready of a session, 3 times (the last one stays).
    let mut session_ready = Vec::new();
    for i in 0..3 {
        let t = Instant::now();
        let l = ctl_json(&suite, &["--json", "models", "load", &gemma]);
        session_ready.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(l["session"]["state"], "ready", "{l}");
        if i < 2 {
            ok(&suite.ctl(&["models", "unload", "gemma-3-270m-q4_k_m"]));
        }
    }
    // The same chat through a second suite whose engine is the by-hand
    // server (configured, as someone else's engine is): the same prompt
    // with the same context, so the two differ only by the session.
    let hand_suite = Suite::start(&format!(
        "[agents]\nprobe_ports = false\nmax_output_tokens = {MAX_TOKENS}\nlocal_context_tokens = 2048\n\
         [[agents.engines]]\nid = \"llamacpp\"\nbase_url = \"http://127.0.0.1:{}/v1\"\napi = \"openai\"\n",
        by_hand.port
    ));
    hand_suite
        .wait_state("agents", "running", Duration::from_secs(30))
        .await;
    // Warm every path.
    direct(by_hand.port, "gemma-3-270m-q4_k_m").await;
    through_suite(&suite).await;
    through_suite(&hand_suite).await;
    let (mut dt, mut dr, mut st, mut sr, mut ht, mut hr) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut tokens = 0;
    for _ in 0..RUNS {
        let (t, r, n) = direct(by_hand.port, "gemma-3-270m-q4_k_m").await;
        dt.push(t.as_secs_f64() * 1000.0);
        dr.push(r);
        let (t, r, _) = through_suite(&suite).await;
        st.push(t.as_secs_f64() * 1000.0);
        sr.push(r);
        let (t, r, _) = through_suite(&hand_suite).await;
        ht.push(t.as_secs_f64() * 1000.0);
        hr.push(r);
        tokens = n;
    }
    drop(hand_suite);
    drop(by_hand);

    // Embeddings: the session directly (with its key) vs the gateway.
    let e = ctl_json(
        &suite,
        &[
            "--json",
            "models",
            "load",
            &minilm_model_path(),
            "--embedding",
        ],
    );
    let (eport, epid) = (
        e["session"]["port"].as_u64().unwrap() as u16,
        e["session"]["pid"].as_u64().unwrap(),
    );
    let ekey = key_of(epid);
    let gport = free_port();
    ok(&suite.ctl(&["gateway", "enable", "--port", &gport.to_string()]));
    let gkey = ok(&suite.ctl(&["gateway", "key"])).trim().to_owned();
    wait_until(Duration::from_secs(10), "gateway", || {
        std::net::TcpStream::connect(("127.0.0.1", gport)).is_ok()
    });
    const INPUTS: usize = 32;
    let inputs: Vec<String> = (0..INPUTS)
        .map(|i| {
            format!("note {i}: the person edited the quarterly report and sent it to the team")
        })
        .collect();
    let body = serde_json::json!({"model": "all-minilm-l6-v2-f16", "input": inputs}).to_string();
    embeddings_per_s(eport, &ekey, &body, INPUTS, 2);
    embeddings_per_s(gport, &gkey, &body, INPUTS, 2);
    let (mut ed, mut eg) = (vec![], vec![]);
    for _ in 0..RUNS {
        ed.push(embeddings_per_s(eport, &ekey, &body, INPUTS, 4));
        eg.push(embeddings_per_s(gport, &gkey, &body, INPUTS, 4));
    }

    let (dt, dr, st, sr) = (median(dt), median(dr), median(st), median(sr));
    let (ht, hr) = (median(ht), median(hr));
    let (bh, sl) = (median(by_hand_ready), median(session_ready));
    let (ed, eg) = (median(ed), median(eg));
    println!("| measure | managed session | by hand / direct (same run) | ratio / target |");
    println!("|---|---|---|---|");
    println!(
        "| time to first token through the suite, median of {RUNS} (ms) | {st:.1} | {ht:.1} (by-hand server as a configured engine) | {:+.1} ms (target ≤ +5 ms) |",
        st - ht
    );
    println!(
        "| tokens/s through the suite (~{tokens} deltas), median of {RUNS} | {sr:.1} | {hr:.1} | {:.1} % (target ≥ 98 %) |",
        sr / hr * 100.0
    );
    println!(
        "| for reference: straight to the by-hand server, no suite (user message only) | | {dt:.1} ms first token, {dr:.1} tokens/s | suite +{:.1} ms |",
        ht - dt
    );
    println!(
        "| ready after start, median of 3 (ms) | {sl:.0} (`models load`, fit check included) | {bh:.0} (spawn to /health 200) | {:+.0} ms |",
        sl - bh
    );
    println!(
        "| all-MiniLM-L6-v2 embeddings/s, batches of {INPUTS}, median of {RUNS} | {eg:.0} (through the gateway) | {ed:.0} (the session directly) | {:.1} % |",
        eg / ed * 100.0
    );
}
