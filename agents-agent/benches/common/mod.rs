//! What the chat benchmarks share: one answer timed straight to an
//! engine with agents-agent's own HTTP client, and through the suite's
//! `Chat/SendMessage`; medians.

use agents_agent::llm::client::{stream_chat, ChatMessage, ChatTarget, Transport};
use agents_agent::llm::engines::ApiFamily;
use cowork_e2e::Suite;
use cowork_proto::pb::chat::{chat_chunk::Chunk, chat_client::ChatClient, SendMessageRequest};
use std::time::{Duration, Instant};

/// The answer length asked for.
pub const MAX_TOKENS: u32 = 120;
/// The prompt every run sends.
pub const PROMPT: &str = "Count from one to thirty in words, separated by commas.";

/// The median of `v`.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Straight to the engine on `port` serving `model`: (time to first
/// token, tokens per second after it, deltas).
pub async fn direct(port: u16, model: &str) -> (Duration, f64, usize) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let msgs = vec![ChatMessage {
        role: "user".into(),
        content: PROMPT.into(),
    }];
    let t = Instant::now();
    let target = ChatTarget {
        name: "direct".into(),
        base_url: format!("http://127.0.0.1:{port}/v1"),
        api: ApiFamily::OpenAi,
        model: model.into(),
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

/// Through coworkd → agents-agent → whatever it routes a local chat to.
pub async fn through_suite(suite: &Suite) -> (Duration, f64, usize) {
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
