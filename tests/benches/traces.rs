//! What traces cost end to end (issue 22): two suites side by side, one
//! recording every call (`[traces]` defaults) and one with
//! `sample_ratio = 0` (traces off: no trace layer in any process; the
//! baseline, in the same run, calls interleaved): a relayed unary call's
//! round trip (capture's GetStatus: a span in coworkd and in the worker),
//! and a chat's first token and tokens per second against the real
//! llama-server with Gemma 3 270M. Targets:
//! ≤ +5 µs per relayed call, no measurable change in tokens/s. Run with
//! `scripts/bench.sh` (release binaries); figures, not pass/fail.

use cowork_e2e::*;
use cowork_proto::pb::capture::{capture_client::CaptureClient, GetStatusRequest};
use cowork_proto::pb::chat::{chat_chunk::Chunk, chat_client::ChatClient, SendMessageRequest};
use cowork_proto::pb::worker::{worker_client::WorkerClient, PingRequest};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const BLOCKS: usize = 60;
const BLOCK: usize = 100;
const CHATS: usize = 6;
const PACED: usize = 1_500;

/// A relayed unary call traced on both sides (coworkd's relay span,
/// capture-agent's request span).
async fn ping(client: &mut CaptureClient<Channel>) -> Duration {
    let t = Instant::now();
    client
        .get_status(GetStatusRequest {})
        .await
        .expect("status");
    t.elapsed()
}

/// A relayed call traced by coworkd alone (the worker contract has no
/// worker-side span): the relay's own cost.
async fn relay_ping(client: &mut WorkerClient<Channel>) -> Duration {
    let mut req = tonic::Request::new(PingRequest {
        payload: vec![7; 32],
    });
    req.metadata_mut()
        .insert(cowork_proto::grpc::WORKER_HEADER, "agents".parse().unwrap());
    let t = Instant::now();
    client.ping(req).await.expect("ping");
    t.elapsed()
}

/// First token (ms) and tokens per second after it.
async fn chat(suite: &Suite) -> (f64, f64) {
    let t = Instant::now();
    let mut s = ChatClient::new(suite.channel())
        .send_message(SendMessageRequest {
            text: "Count from one to forty in words, separated by commas.".into(),
            preference: "local".into(),
            ..Default::default()
        })
        .await
        .expect("send")
        .into_inner();
    let (mut first, mut tokens) = (None, 0u64);
    while let Some(c) = s.message().await.expect("chunk") {
        match c.chunk {
            Some(Chunk::Delta(_)) if first.is_none() => first = Some(t.elapsed()),
            Some(Chunk::Usage(u)) => tokens = u.completion_tokens,
            Some(Chunk::Error(e)) => panic!("chat failed: {}", e.message),
            _ => {}
        }
    }
    let first = first.expect("a first token");
    let rest = t.elapsed() - first;
    (
        first.as_secs_f64() * 1e3,
        tokens.saturating_sub(1) as f64 / rest.as_secs_f64(),
    )
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let engine = start_llama(&[]);
    let agents = |traces: &str| {
        format!(
            "{traces}\n[agents]\nprobe_ports = false\nmax_output_tokens = 96\n\
             [[agents.engines]]\nid = \"llamacpp\"\nbase_url = \"http://127.0.0.1:{}/v1\"\napi = \"openai\"\n",
            engine.port
        )
    };
    let on = Suite::start(&agents(""));
    let off = Suite::start(&agents("[traces]\nsample_ratio = 0.0"));
    for s in [&on, &off] {
        s.wait_state("agents", "running", Duration::from_secs(30))
            .await;
        s.wait_state("capture", "running", Duration::from_secs(30))
            .await;
    }
    let (mut a, mut b) = (
        CaptureClient::new(on.channel()),
        CaptureClient::new(off.channel()),
    );
    for _ in 0..300 {
        ping(&mut a).await;
        ping(&mut b).await;
    }
    let (mut t_on, mut t_off) = (Vec::new(), Vec::new());
    for _ in 0..BLOCKS {
        for _ in 0..BLOCK {
            t_on.push(ping(&mut a).await.as_secs_f64() * 1e6);
        }
        for _ in 0..BLOCK {
            t_off.push(ping(&mut b).await.as_secs_f64() * 1e6);
        }
    }
    let (on50, off50) = (pct(&mut t_on, 0.5), pct(&mut t_off, 0.5));
    let (on99, off99) = (pct(&mut t_on, 0.99), pct(&mut t_off, 0.99));

    // The relay alone: Worker/Ping, back to back, in blocks.
    let (mut wa, mut wb) = (
        WorkerClient::new(on.channel()),
        WorkerClient::new(off.channel()),
    );
    let (mut r_on, mut r_off) = (Vec::new(), Vec::new());
    for _ in 0..BLOCKS {
        for _ in 0..BLOCK {
            r_on.push(relay_ping(&mut wa).await.as_secs_f64() * 1e6);
        }
        for _ in 0..BLOCK {
            r_off.push(relay_ping(&mut wb).await.as_secs_f64() * 1e6);
        }
    }
    let (ron50, roff50) = (pct(&mut r_on, 0.5), pct(&mut r_off, 0.5));

    // Paced (200 calls/s, alternating): a call's own cost, without the
    // span writer competing for the two cores as it does back to back.
    let (mut p_on, mut p_off) = (Vec::new(), Vec::new());
    for _ in 0..PACED {
        p_on.push(ping(&mut a).await.as_secs_f64() * 1e6);
        tokio::time::sleep(Duration::from_millis(5)).await;
        p_off.push(ping(&mut b).await.as_secs_f64() * 1e6);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (pon50, poff50) = (pct(&mut p_on, 0.5), pct(&mut p_off, 0.5));

    // Warm the engine, then alternate.
    chat(&on).await;
    chat(&off).await;
    let (mut ft_on, mut ft_off, mut tps_on, mut tps_off) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..CHATS {
        let (f, t) = chat(&on).await;
        ft_on.push(f);
        tps_on.push(t);
        let (f, t) = chat(&off).await;
        ft_off.push(f);
        tps_off.push(t);
    }
    let (f_on, f_off) = (pct(&mut ft_on, 0.5), pct(&mut ft_off, 0.5));
    let (s_on, s_off) = (pct(&mut tps_on, 0.5), pct(&mut tps_off, 0.5));
    // The traced suite recorded every call; the other none.
    std::thread::sleep(Duration::from_millis(1500));
    let recorded = |s: &Suite| {
        rusqlite::Connection::open(s.home.path().join("cowork.db"))
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM traces_spans", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .unwrap_or(0)
    };
    let lost = on.ctl_json(&["trace", "status"]);

    println!("| figure | traced | traces off (sample_ratio = 0) | difference |");
    println!("|---|---|---|---|");
    println!(
        "| relayed Worker/Ping (a relay span only), p50 (µs) | {ron50:.1} | {roff50:.1} | {:+.1} µs (target ≤ +5 µs) |",
        ron50 - roff50
    );
    println!(
        "| relayed GetStatus, paced 200/s, p50 (µs) | {pon50:.1} | {poff50:.1} | {:+.1} µs |",
        pon50 - poff50
    );
    println!(
        "| relayed GetStatus, back to back, p50 (µs) | {on50:.1} | {off50:.1} | {:+.1} µs |",
        on50 - off50
    );
    println!(
        "| relayed GetStatus, back to back, p99 (µs) | {on99:.1} | {off99:.1} | {:+.1} µs |",
        on99 - off99
    );
    println!(
        "| chat first token, median of {CHATS} (ms) | {f_on:.1} | {f_off:.1} | {:+.1} ms |",
        f_on - f_off
    );
    println!(
        "| chat tokens/s after the first, median of {CHATS} | {s_on:.1} | {s_off:.1} | ×{:.3} |",
        s_on / s_off
    );
    println!(
        "spans stored: traced suite {}, other {}; lost by the traced suite: {}",
        recorded(&on),
        recorded(&off),
        lost["lost"]
    );
}
