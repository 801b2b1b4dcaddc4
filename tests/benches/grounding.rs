//! Memory's layers measured on LoCoMo (`../shared/data/locomo`), through
//! `cowork.memory.v1.Memory/GetContext` on coworkd's socket — what
//! `coworkctl context --query "<q>" --grounded --json` calls — with
//! all-MiniLM-L6-v2 embedding (a llama-server session Cowork runs):
//!
//! - Refusal: each conversation's questions (categories 1–4) asked of a
//!   memory holding only the other conversations (target: refused ≥ 0.95)
//!   and of one holding their own (target: refused ≤ 0.05). Two homes: the
//!   first conversations in one, the rest in the other; each question is
//!   asked of both. Shown at the shipped relevance floor, and swept over
//!   floors (`[memory] relevance_floor`, read fresh per request): the
//!   calibration docs/BENCHMARKS.md states.
//! - Evidence recall@10 of the assembled layers together (sessions of the
//!   cited sources, `n_docs = 10`) and context tokens per question, beside
//!   the raw turns of the whole conversation.
//!
//! `COWORK_BENCH_QUERIES=N` asks the first N questions of each
//! conversation only.

mod common;

use common::*;
use cowork_e2e::*;
use cowork_proto::pb::memory::{
    memory_client::MemoryClient, ContextCard, GetContextRequest, Hit, SearchRequest,
};
use serde_json::Value;
use std::collections::HashMap;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// The floors swept (the shipped one is marked in the table).
const FLOORS: [f64; 8] = [0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6];
/// The floors swept without the check of names (`check_names = false`).
const FLOOR_ONLY: [f64; 5] = [0.4, 0.5, 0.6, 0.7, 0.8];

fn config(memory: &str) -> String {
    format!(
        "[agents]\nprobe_ports = false\n[agents.llama]\nserver = \"{}\"\nthreads = 2\n\
         idle_unload_s = 0\n[memory]\npoll_ms = 250\n{memory}\n",
        llama_server_path()
    )
}

/// One question: its conversation, text and evidence sessions.
struct Question {
    conv: String,
    text: String,
    evidence: HashSet<String>,
}

fn questions(samples: &[Value]) -> Vec<Question> {
    let mut out = Vec::new();
    for s in samples {
        let conv = s["sample_id"].as_str().unwrap_or("").to_owned();
        for qa in s["qa"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|q| matches!(q["category"].as_u64(), Some(1..=4)))
            .take(limit())
        {
            out.push(Question {
                conv: conv.clone(),
                text: qa["question"].as_str().unwrap_or("").to_owned(),
                evidence: evidence_sessions(qa),
            });
        }
    }
    out
}

async fn card(client: &mut MemoryClient<Channel>, q: &str) -> (ContextCard, f64) {
    let t = Instant::now();
    let c = client
        .get_context(GetContextRequest {
            query: q.into(),
            grounded: true,
            thread_id: String::new(),
        })
        .await
        .expect("GetContext")
        .into_inner();
    (c, t.elapsed().as_secs_f64() * 1e3)
}

/// Refused share of `qs` at the floor now configured, and that floor as
/// the cards report it.
async fn refused(client: &mut MemoryClient<Channel>, qs: &[&Question]) -> (f64, f64) {
    let (mut n, mut floor) = (0, 0.0);
    for q in qs {
        let c = card(client, &q.text).await.0;
        n += usize::from(c.refusal);
        floor = c.relevance_floor;
    }
    (n as f64 / qs.len().max(1) as f64, floor)
}

/// A home holding `held`, embedded.
async fn home(held: &[Value]) -> Suite {
    let suite = Suite::start(&config("observe = false"));
    suite.agents_serving().await;
    suite.load_minilm();
    let t = Instant::now();
    let turns = import_locomo(&suite, held);
    wait_embedded(&suite, "conversation", Duration::from_secs(1800));
    println!(
        "home of {:?}: {turns} turns imported and embedded in {:.1} s",
        held.iter()
            .filter_map(|s| s["sample_id"].as_str())
            .collect::<Vec<_>>(),
        t.elapsed().as_secs_f64()
    );
    suite
}

/// The ten best hits of a hybrid search for `q` (of `types`; all when
/// empty), the data's own dates not taken for a time filter.
async fn ten(client: &mut MemoryClient<Channel>, q: &str, types: &[&str]) -> Vec<Hit> {
    client
        .search(SearchRequest {
            query: q.into(),
            k: 10,
            mode: "hybrid".into(),
            types: types.iter().map(|t| t.to_string()).collect(),
            since_ms: Some(0),
            ..Default::default()
        })
        .await
        .expect("Search")
        .into_inner()
        .hits
}

/// Evidence-session recall and tokens of the context GetContext
/// assembles for `qs` (at the n_docs configured).
async fn layers(client: &mut MemoryClient<Channel>, qs: &[&Question]) -> (f64, f64) {
    let (mut recall, mut tokens, mut n) = (0.0, 0u64, 0usize);
    for q in qs.iter().filter(|q| !q.evidence.is_empty()) {
        let (c, _) = card(client, &q.text).await;
        recall += found(q, &cited(&c), None);
        tokens += c.context_tokens;
        n += 1;
    }
    (recall / n.max(1) as f64, tokens as f64 / n.max(1) as f64)
}

/// The source ids a card cites.
fn cited(c: &ContextCard) -> Vec<String> {
    c.citations.iter().map(|x| x.source_id.clone()).collect()
}

/// The share of `q`'s evidence sessions that `ids` name.
fn found(q: &Question, ids: &[String], db: Option<&rusqlite::Connection>) -> f64 {
    let got = sessions_cited(ids, q, db);
    q.evidence.intersection(&got).count() as f64 / q.evidence.len().max(1) as f64
}

/// The sessions of `q`'s conversation that `ids` name: turns directly,
/// observations through their sources (read from `db`).
fn sessions_cited(
    ids: &[String],
    q: &Question,
    db: Option<&rusqlite::Connection>,
) -> HashSet<String> {
    let prefix = format!("{}:", q.conv);
    let mut out = HashSet::new();
    for id in ids {
        if let (Some(n), Some(c)) = (id.strip_prefix("observation:"), db) {
            let sources: String = c
                .query_row(
                    "SELECT sources FROM memory_observations WHERE id = ?1",
                    [n.parse::<i64>().unwrap_or(0)],
                    |r| r.get(0),
                )
                .unwrap_or_default();
            out.extend(
                sources
                    .lines()
                    .filter(|s| s.starts_with(&prefix))
                    .filter_map(session_of),
            );
        } else if id.starts_with(&prefix) {
            out.extend(session_of(id));
        }
    }
    out
}

/// Observational memory on one conversation: Gemma 3 270M (llama.cpp's
/// llama-server) observes it; then the layers with observations, and
/// observations alone, beside the raw turns.
async fn observed(sample: &Value, all: &[Question]) {
    let engine = start_llama(&["--ctx-size", "4096"]);
    let with_engine = |memory: &str| {
        config(&format!(
            "{memory}\nobserve_tokens = 300\nobserve_window_tokens = 1500\n\
             observe_max_tokens = 300\nreflect_tokens = 1000000\nn_docs = 10\n\
             context_tokens = 4000\n[[agents.engines]]\nid = \"llamacpp\"\n\
             base_url = \"http://127.0.0.1:{}/v1\"\napi = \"openai\"",
            engine.port
        ))
    };
    let suite = Suite::start(&with_engine("observe = false"));
    suite.agents_serving().await;
    suite.load_minilm();
    let turns = import_locomo(&suite, std::slice::from_ref(sample));
    wait_embedded(&suite, "conversation", Duration::from_secs(1800));
    let id = sample["sample_id"].as_str().unwrap_or("");
    let qs: Vec<&Question> = all.iter().filter(|q| q.conv == id).collect();
    let mut client = MemoryClient::new(suite.channel());
    let (raw_recall, raw_tokens) = layers(&mut client, &qs).await;
    let t = Instant::now();
    suite.write_config(&with_engine("observe = true"));
    let db = rusqlite::Connection::open_with_flags(
        suite.home.path().join("cowork.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open cowork.db");
    let left = |db: &rusqlite::Connection| -> i64 {
        db.query_row(
            "SELECT coalesce(sum(length(text)), 0) / 4 FROM memory_items WHERE kind = 'conversation'
             AND id > coalesce((SELECT row FROM memory_watermarks WHERE source = 'observer'), 0)",
            [],
            |r| r.get(0),
        )
        .unwrap_or(i64::MAX)
    };
    while left(&db) >= 300 {
        assert!(
            t.elapsed() < Duration::from_secs(3600),
            "not observed in an hour"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let observe_s = t.elapsed().as_secs_f64();
    wait_embedded(&suite, "observation", Duration::from_secs(600));
    let (n_obs, obs_tokens, history_tokens): (i64, i64, i64) = db
        .query_row(
            "SELECT (SELECT count(*) FROM memory_observations),
                    (SELECT coalesce(sum(length(text)), 0) / 4 FROM memory_observations),
                    (SELECT coalesce(sum(length(text)), 0) / 4 FROM memory_items
                     WHERE kind = 'conversation')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("counts");
    let (with_recall, with_tokens) = layers(&mut client, &qs).await;
    // Observations alone: the ten a search of them returns.
    let (mut o_recall, mut o_tokens, mut n) = (0.0, 0u64, 0usize);
    for q in qs.iter().filter(|q| !q.evidence.is_empty()) {
        let hits = ten(&mut client, &q.text, &["observation"]).await;
        let ids: Vec<String> = hits.iter().map(|h| h.source_id.clone()).collect();
        o_recall += found(q, &ids, Some(&db));
        o_tokens += hits.iter().map(|h| h.snippet.len() as u64 / 4).sum::<u64>();
        n += 1;
    }
    let n = n.max(1) as f64;
    println!(
        "\nobservational memory, {id} ({turns} turns, {history_tokens} tokens of raw history): \
         Gemma 3 270M made {n_obs} observations ({obs_tokens} tokens, {:.1}× smaller) in {observe_s:.0} s",
        history_tokens as f64 / obs_tokens.max(1) as f64
    );
    println!(
        "{:<34} {:>10} {:>16}",
        "context (n_docs = 10)", "recall", "tokens/question"
    );
    println!(
        "{:<34} {raw_recall:>10.3} {raw_tokens:>16.0}",
        "layers, before observations"
    );
    println!(
        "{:<34} {with_recall:>10.3} {with_tokens:>16.0}",
        "layers, with observations"
    );
    println!(
        "{:<34} {:>10.3} {:>16.0}",
        "observations alone (10 hits)",
        o_recall / n,
        o_tokens as f64 / n
    );
}

#[tokio::main]
async fn main() {
    let data = data_with("locomo/locomo.dev.json");
    let samples = locomo_samples(&data);
    let half = samples.len() / 2;
    let halves = [&samples[..half], &samples[half..]];
    let all = questions(&samples);
    println!(
        "LoCoMo: {} conversations, {} questions of categories 1–4; homes of {} and {} conversations",
        samples.len(),
        all.len(),
        halves[0].len(),
        halves[1].len()
    );
    let mut shipped = 0.0;
    // (floor → refused own, refused others), summed over both homes.
    let mut sweep = vec![(0.0, 0.0); FLOORS.len()];
    let mut alone = vec![(0.0, 0.0); FLOOR_ONLY.len()];
    let (mut own_n, mut other_n) = (0usize, 0usize);
    let (mut own_shipped, mut other_shipped) = (0.0, 0.0);
    let (mut recall, mut recall_n, mut tokens, mut raw_tokens) = (0.0, 0usize, 0u64, 0u64);
    // The baseline: the ten best raw turns a search returns.
    let (mut turns_recall, mut turns_tokens) = (0.0, 0u64);
    let turn_tokens: HashMap<String, u64> = samples
        .iter()
        .flat_map(locomo_lines)
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
        .map(|t| {
            let n = t["speaker"].as_str().unwrap_or("").len()
                + t["text"].as_str().unwrap_or("").len()
                + 2;
            (t["_id"].as_str().unwrap_or("").to_owned(), n as u64 / 4)
        })
        .collect();
    let mut times = Vec::new();
    for held in halves {
        let ids: HashSet<&str> = held
            .iter()
            .filter_map(|s| s["sample_id"].as_str())
            .collect();
        let own: Vec<&Question> = all
            .iter()
            .filter(|q| ids.contains(q.conv.as_str()))
            .collect();
        let others: Vec<&Question> = all
            .iter()
            .filter(|q| !ids.contains(q.conv.as_str()))
            .collect();
        let suite = home(held).await;
        let mut client = MemoryClient::new(suite.channel());
        // As shipped (no floor configured: the embedder's calibrated one).
        let (o, floor) = refused(&mut client, &own).await;
        let (x, _) = refused(&mut client, &others).await;
        shipped = floor;
        own_shipped += o * own.len() as f64;
        other_shipped += x * others.len() as f64;
        own_n += own.len();
        other_n += others.len();
        for (i, f) in FLOORS.iter().enumerate() {
            suite.write_config(&config(&format!("observe = false\nrelevance_floor = {f}")));
            sweep[i].0 += refused(&mut client, &own).await.0 * own.len() as f64;
            sweep[i].1 += refused(&mut client, &others).await.0 * others.len() as f64;
        }
        // The floor alone, without the check of names memory never saw.
        for (i, f) in FLOOR_ONLY.iter().enumerate() {
            suite.write_config(&config(&format!(
                "observe = false\ncheck_names = false\nrelevance_floor = {f}"
            )));
            alone[i].0 += refused(&mut client, &own).await.0 * own.len() as f64;
            alone[i].1 += refused(&mut client, &others).await.0 * others.len() as f64;
        }
        // The layers together at ten sources: evidence recall and tokens,
        // beside the whole conversation's raw turns.
        suite.write_config(&config(
            "observe = false\nn_docs = 10\ncontext_tokens = 4000",
        ));
        for q in &own {
            if q.evidence.is_empty() {
                continue;
            }
            let (c, ms) = card(&mut client, &q.text).await;
            times.push(ms);
            recall += found(q, &cited(&c), None);
            recall_n += 1;
            tokens += c.context_tokens;
            let hits = ten(&mut client, &q.text, &[]).await;
            let ids: Vec<String> = hits.iter().map(|h| h.source_id.clone()).collect();
            turns_recall += found(q, &ids, None);
            turns_tokens += hits
                .iter()
                .map(|h| turn_tokens.get(&h.source_id).copied().unwrap_or(0))
                .sum::<u64>();
            let sample = held
                .iter()
                .find(|s| s["sample_id"].as_str() == Some(&q.conv))
                .expect("sample");
            raw_tokens += locomo_lines(sample)
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .map(|t| {
                    (t["speaker"].as_str().unwrap_or("").len()
                        + t["text"].as_str().unwrap_or("").len()
                        + 3) as u64
                        / 4
                })
                .sum::<u64>();
        }
    }
    println!("\nrefusal rate, grounded questions (categories 1–4):");
    println!(
        "{:>8} {:>14} {:>18}",
        "floor", "own memory", "others' memory"
    );
    println!(
        "{:>8} {:>14.3} {:>18.3}   as shipped (MiniLM floor {shipped}); targets ≤ 0.05 and ≥ 0.95",
        "shipped",
        own_shipped / own_n as f64,
        other_shipped / other_n as f64
    );
    for (f, (o, x)) in FLOORS.iter().zip(&sweep) {
        println!(
            "{f:>8.2} {:>14.3} {:>18.3}",
            o / own_n as f64,
            x / other_n as f64
        );
    }
    println!("without the check of names (the floor alone):");
    for (f, (o, x)) in FLOOR_ONLY.iter().zip(&alone) {
        println!(
            "{f:>8.2} {:>14.3} {:>18.3}",
            o / own_n as f64,
            x / other_n as f64
        );
    }
    let n = recall_n.max(1) as f64;
    println!(
        "\nassembled layers at n_docs = 10: evidence-session recall {:.3} over {recall_n} questions; \
         {:.0} context tokens a question vs {:.0} for the conversation's raw turns ({:.1}× fewer); \
         GetContext p50/p95 {:.1}/{:.1} ms",
        recall / n,
        tokens as f64 / n,
        raw_tokens as f64 / n,
        raw_tokens as f64 / tokens.max(1) as f64,
        percentile(&mut times, 0.5),
        percentile(&mut times, 0.95)
    );
    println!(
        "raw turns, the ten a hybrid search returns from the same memory: evidence-session recall \
         {:.3}, {:.0} tokens a question",
        turns_recall / n,
        turns_tokens as f64 / n
    );
    println!(
        "published: all-MiniLM-L6-v2 session recall@10 0.914 (raw turns, one conversation, all \
         questions); the Observer is off in these homes (Gemma 3 270M would take an hour over \
         all the turns): it runs on one conversation below"
    );
    let smallest = samples
        .iter()
        .min_by_key(|s| locomo_lines(s).len())
        .expect("a conversation");
    observed(smallest, &all).await;
}
