//! What traces cost end to end (issue 22): two suites side by side, one
//! recording every call (`[traces]` defaults) and one with
//! `sample_ratio = 0` (traces off: no trace layer in any process; the
//! baseline, in the same run, calls interleaved): a relayed unary call's
//! round trip (capture's GetStatus: a span in coworkd and in the worker),
//! and a chat's first token and tokens per second against the real
//! llama-server with Gemma 3 270M. The unary figures come from several
//! rounds of fresh suite pairs, the traced one started first in every
//! other round, and an A/A round (both traced) shows how far two suites
//! differ when nothing does. Targets:
//! ≤ +5 µs per relayed call, no measurable change in tokens/s. Run with
//! `scripts/bench.sh` (release binaries); figures, not pass/fail.

use cowork_e2e::*;
use cowork_proto::pb::capture::{capture_client::CaptureClient, GetStatusRequest};
use cowork_proto::pb::chat::{chat_chunk::Chunk, chat_client::ChatClient, SendMessageRequest};
use cowork_proto::pb::worker::{worker_client::WorkerClient, GetHealthRequest};
use std::time::{Duration, Instant};

/// Longer than the span writer's batch delay.
fn traces_batch_delay() -> Duration {
    cowork_proto::traces::BATCH_DELAY + Duration::from_millis(300)
}
use tonic::transport::Channel;

const BLOCKS: usize = 40;
const BLOCK: usize = 100;
const CHATS: usize = 6;
const PACED: usize = 500;
const ROUNDS: usize = 4;

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
/// worker-side span): the relay's own cost. Worker/GetHealth, not Ping:
/// Ping echoes `traceparent` back (a diagnostic of propagation), which
/// adds that header's bytes to two more hops.
async fn relay_only(client: &mut WorkerClient<Channel>) -> Duration {
    let mut req = tonic::Request::new(GetHealthRequest {});
    req.metadata_mut()
        .insert(cowork_proto::grpc::WORKER_HEADER, "agents".parse().unwrap());
    let t = Instant::now();
    client.get_health(req).await.expect("health");
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

/// One round's p50s (µs) for the traced suite and the other: relayed
/// Worker/GetHealth (coworkd's relay span only), GetStatus back to back (spans
/// in coworkd and capture-agent) and paced (200 calls/s).
struct Round {
    relay: (f64, f64),
    /// CPU (µs) per relayed Worker/GetHealth: coworkd's, all its threads
    /// (the span writer included).
    relay_cpu: (f64, f64),
    /// The same, coworkd's span writer's thread alone (the SDK's batch
    /// thread, "OpenTelemetry.Traces.BatchProcessor", `comm`
    /// "OpenTelemetry.T"; off the request's path). These suites export
    /// nothing over OTLP, whose batch thread has the same name.
    relay_cpu_writer: (f64, f64),
    /// The same for the whole suite (coworkd and its workers).
    relay_cpu_suite: (f64, f64),
    status: (f64, f64),
    status_p99: (f64, f64),
    paced: (f64, f64),
}

/// Start two suites (`a` first), measure them interleaved, stop them.
async fn round(a_config: &str, b_config: &str) -> Round {
    let a = Suite::start(a_config);
    let b = Suite::start(b_config);
    for s in [&a, &b] {
        s.wait_state("agents", "running", Duration::from_secs(30))
            .await;
        s.wait_state("capture", "running", Duration::from_secs(30))
            .await;
    }
    let (mut ca, mut cb) = (
        CaptureClient::new(a.channel()),
        CaptureClient::new(b.channel()),
    );
    let (mut wa, mut wb) = (
        WorkerClient::new(a.channel()),
        WorkerClient::new(b.channel()),
    );
    for _ in 0..300 {
        ping(&mut ca).await;
        ping(&mut cb).await;
        relay_only(&mut wa).await;
        relay_only(&mut wb).await;
    }
    let (mut r_a, mut r_b) = (Vec::new(), Vec::new());
    // Each process of a suite (coworkd first), its threads' CPU so far.
    let snapshot = |s: &Suite| {
        let d = s.coworkd_pid();
        std::iter::once(d)
            .chain(proc_children(d))
            .map(|pid| (pid, proc_threads_cpu_ns(pid)))
            .collect::<Vec<_>>()
    };
    // CPU since a snapshot, ns: coworkd's, the whole suite's, and
    // coworkd's span writer's.
    let since = |before: &[(u32, std::collections::HashMap<u32, u64>)]| {
        let each: Vec<u64> = before
            .iter()
            .map(|(pid, threads)| proc_cpu_ns_since(*pid, threads))
            .collect();
        let (pid, threads) = &before[0];
        let (writer, _) = proc_cpu_ns_since_split(*pid, threads, "OpenTelemetry");
        (each[0], each.iter().sum::<u64>(), writer)
    };
    let (a0, b0) = (snapshot(&a), snapshot(&b));
    for _ in 0..BLOCKS {
        for _ in 0..BLOCK {
            r_a.push(relay_only(&mut wa).await.as_secs_f64() * 1e6);
        }
        for _ in 0..BLOCK {
            r_b.push(relay_only(&mut wb).await.as_secs_f64() * 1e6);
        }
    }
    // Let the span writer write this section's spans before reading.
    tokio::time::sleep(traces_batch_delay()).await;
    let (a1, b1) = (since(&a0), since(&b0));
    let per_call = |ns: u64| ns as f64 / 1e3 / (BLOCKS * BLOCK) as f64;
    let (mut t_a, mut t_b) = (Vec::new(), Vec::new());
    for _ in 0..BLOCKS {
        for _ in 0..BLOCK {
            t_a.push(ping(&mut ca).await.as_secs_f64() * 1e6);
        }
        for _ in 0..BLOCK {
            t_b.push(ping(&mut cb).await.as_secs_f64() * 1e6);
        }
    }
    // Paced (200 calls/s, alternating): a call's own cost, without the
    // span writer competing for the two cores as it does back to back.
    let (mut p_a, mut p_b) = (Vec::new(), Vec::new());
    for _ in 0..PACED {
        p_a.push(ping(&mut ca).await.as_secs_f64() * 1e6);
        tokio::time::sleep(Duration::from_millis(5)).await;
        p_b.push(ping(&mut cb).await.as_secs_f64() * 1e6);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Round {
        relay: (pct(&mut r_a, 0.5), pct(&mut r_b, 0.5)),
        relay_cpu: (per_call(a1.0), per_call(b1.0)),
        relay_cpu_writer: (per_call(a1.2), per_call(b1.2)),
        relay_cpu_suite: (per_call(a1.1), per_call(b1.1)),
        status: (pct(&mut t_a.clone(), 0.5), pct(&mut t_b.clone(), 0.5)),
        status_p99: (pct(&mut t_a, 0.99), pct(&mut t_b, 0.99)),
        paced: (pct(&mut p_a, 0.5), pct(&mut p_b, 0.5)),
    }
}

/// The median over rounds of one figure, traced and off, and the median
/// of the rounds' differences.
fn over_rounds(rounds: &[Round], f: impl Fn(&Round) -> (f64, f64)) -> (f64, f64, f64) {
    let mut on: Vec<f64> = rounds.iter().map(|r| f(r).0).collect();
    let mut off: Vec<f64> = rounds.iter().map(|r| f(r).1).collect();
    let mut d: Vec<f64> = rounds.iter().map(|r| f(r).0 - f(r).1).collect();
    (median(&mut on), median(&mut off), median(&mut d))
}

/// The median (of an even count, the mean of the middle two).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n.is_multiple_of(2) {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    } else {
        v[n / 2]
    }
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
    let (traced, untraced) = (agents(""), agents("[traces]\nsample_ratio = 0.0"));

    // Unary calls: ROUNDS pairs of fresh suites, which one starts first
    // alternating (a suite's own placement and start order bias it by a
    // few µs: the A/A round below measures that), calls interleaved in
    // blocks of BLOCK.
    let mut rounds = Vec::new();
    for i in 0..ROUNDS {
        rounds.push(if i % 2 == 0 {
            round(&traced, &untraced).await
        } else {
            let r = round(&untraced, &traced).await;
            let swap = |(x, y): (f64, f64)| (y, x);
            Round {
                relay: swap(r.relay),
                relay_cpu: swap(r.relay_cpu),
                relay_cpu_writer: swap(r.relay_cpu_writer),
                relay_cpu_suite: swap(r.relay_cpu_suite),
                status: swap(r.status),
                status_p99: swap(r.status_p99),
                paced: swap(r.paced),
            }
        });
    }
    // A/A: both traced; what the same comparison shows with no difference.
    let aa = round(&traced, &traced).await;

    // Chats: one pair of suites, warm the engine, then alternate.
    let on = Suite::start(&traced);
    let off = Suite::start(&untraced);
    for s in [&on, &off] {
        s.wait_state("agents", "running", Duration::from_secs(30))
            .await;
    }
    // Spans of the unary rounds are gone with their suites: count this
    // pair's own after a burst of calls.
    let mut c_on = CaptureClient::new(on.channel());
    for _ in 0..2_000 {
        ping(&mut c_on).await;
    }
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

    // One table row per unary figure: traced, off, the median difference,
    // each round's difference, the A/A difference.
    let row = |label: &str, target: &str, f: &dyn Fn(&Round) -> (f64, f64)| {
        let (on, off, d) = over_rounds(&rounds, f);
        let each = rounds
            .iter()
            .map(|r| format!("{:+.1}", f(r).0 - f(r).1))
            .collect::<Vec<_>>()
            .join(", ");
        let (a, b) = f(&aa);
        println!(
            "| {label} | {on:.1} | {off:.1} | {d:+.1} µs{target} | {each} | {:+.1} |",
            a - b
        );
    };
    println!("{ROUNDS} rounds of fresh suite pairs (start order alternating), {} calls per suite and figure each; medians over the rounds", BLOCKS * BLOCK);
    println!();
    println!("| figure | traced | traces off (sample_ratio = 0) | difference (median of rounds) | each round | A/A (both traced) |");
    println!("|---|---|---|---|---|---|");
    row(
        "relayed Worker/GetHealth (a relay span only), p50 (µs)",
        " (target ≤ +5 µs)",
        &|r| r.relay,
    );
    row(
        "CPU per relayed Worker/GetHealth, coworkd (µs)",
        "",
        &|r| r.relay_cpu,
    );
    row("  of which the request's threads (µs)", "", &|r| {
        (
            r.relay_cpu.0 - r.relay_cpu_writer.0,
            r.relay_cpu.1 - r.relay_cpu_writer.1,
        )
    });
    row(
        "  of which the span writer's thread, off the request's path (µs)",
        "",
        &|r| r.relay_cpu_writer,
    );
    row(
        "CPU per relayed Worker/GetHealth, whole suite (µs)",
        "",
        &|r| r.relay_cpu_suite,
    );
    row("relayed GetStatus, back to back, p50 (µs)", "", &|r| {
        r.status
    });
    row("relayed GetStatus, back to back, p99 (µs)", "", &|r| {
        r.status_p99
    });
    row("relayed GetStatus, paced 200/s, p50 (µs)", "", &|r| {
        r.paced
    });
    println!(
        "| chat first token, median of {CHATS} (ms) | {f_on:.1} | {f_off:.1} | {:+.1} ms | | |",
        f_on - f_off
    );
    println!(
        "| chat tokens/s after the first, median of {CHATS} | {s_on:.1} | {s_off:.1} | ×{:.3} | | |",
        s_on / s_off
    );
    println!(
        "spans stored by the chat pair: traced suite {}, other {}; lost by the traced suite: {}",
        recorded(&on),
        recorded(&off),
        lost["lost"]
    );
}
