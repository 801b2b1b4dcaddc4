//! Chat through the suite vs straight to the engine, in the same run:
//! time to first token and tokens/s against llama.cpp's llama-server with
//! Gemma 3 270M (installed by scripts/test.sh). The direct baseline uses
//! the same HTTP client agents-agent uses, in this process, without
//! coworkd, agents-agent, the router, the database or context.
//! Targets (issue 4): ≤ 5 ms added to first token, ≥ 98 % of direct tokens/s.

use agents_agent::llm::client::{stream_chat, ChatMessage, ChatTarget, Transport};
use agents_agent::llm::engines::ApiFamily;
use cowork_e2e::*;
use cowork_proto::pb::chat::{chat_chunk::Chunk, chat_client::ChatClient, SendMessageRequest};
use std::time::{Duration, Instant};

const RUNS: usize = 5;
const MAX_TOKENS: u32 = 120;
const PROMPT: &str = "Count from one to thirty in words, separated by commas.";

/// (time to first token, tokens per second after it, deltas)
async fn direct(port: u16) -> (Duration, f64, usize) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let msgs = vec![ChatMessage {
        role: "user".into(),
        content: PROMPT.into(),
    }];
    let t = Instant::now();
    let target = ChatTarget {
        name: "llamacpp".into(),
        base_url: format!("http://127.0.0.1:{port}/v1"),
        api: ApiFamily::OpenAi,
        model: "gemma3-270m".into(),
        transport: Transport::Local { session: None },
    };
    let call =
        tokio::spawn(async move { stream_chat(&target, &msgs, Some(MAX_TOKENS), &tx).await });
    let (mut first, mut n, mut last) = (None, 0usize, t);
    while let Some(d) = rx.recv().await {
        if !d.text.is_empty() {
            first.get_or_insert(t.elapsed());
            n += 1;
            last = Instant::now();
        }
    }
    call.await.expect("join").expect("direct stream");
    let first = first.expect("a token");
    let rate = (n.saturating_sub(1)) as f64 / (last - t - first).as_secs_f64().max(1e-9);
    (first, rate, n)
}

async fn through_suite(suite: &Suite) -> (Duration, f64, usize) {
    let mut chat = ChatClient::new(suite.channel());
    let t = Instant::now();
    let mut s = chat
        .send_message(SendMessageRequest {
            text: PROMPT.into(),
            preference: "local".into(),
            ..Default::default()
        })
        .await
        .expect("send")
        .into_inner();
    let (mut first, mut n, mut last) = (None, 0usize, t);
    while let Some(c) = s.message().await.expect("chunk") {
        match c.chunk {
            Some(Chunk::Delta(d)) if !d.text.is_empty() => {
                first.get_or_insert(t.elapsed());
                n += 1;
                last = Instant::now();
            }
            Some(Chunk::Error(e)) => panic!("chat error: {}", e.message),
            _ => {}
        }
    }
    let first = first.expect("a token");
    let rate = (n.saturating_sub(1)) as f64 / (last - t - first).as_secs_f64().max(1e-9);
    (first, rate, n)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

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
    direct(port).await;
    through_suite(&suite).await;
    let (mut dt, mut dr, mut st, mut sr) = (vec![], vec![], vec![], vec![]);
    let mut tokens = 0;
    for _ in 0..RUNS {
        let (t, r, n) = direct(port).await;
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
