//! Memory's retrieval quality and speed, measured the way a person uses
//! it: data loaded with `coworkctl memory import` into a fresh home,
//! embedded by the pipeline with all-MiniLM-L6-v2 (a llama-server session
//! Cowork runs), and queried through `cowork.memory.v1.Memory/Search` on
//! coworkd's socket (what `coworkctl memory search` calls).
//!
//! - BEIR SciFact (train queries, `../shared/data/scifact`): nDCG@10 and
//!   recall@100 for keyword, vector and hybrid, beside BEIR's published
//!   BM25 (0.665) and BM25 + rerank (0.688) on its test split; query
//!   latency p50/p95.
//! - LoCoMo (`../shared/data/locomo`): evidence-session recall@10, beside
//!   the published all-MiniLM-L6-v2 figure (0.914).
//! - Embeddings per second through the pipeline vs direct calls to the
//!   same llama-server session, same batch size, same run.
//!
//! The data folder is `$COWORK_DATA`, else `../shared/data` beside the
//! checkout. `COWORK_BENCH_QUERIES=N` evaluates the first N queries only.

mod common;

use common::*;
use cowork_e2e::*;
use cowork_proto::pb::memory::{memory_client::MemoryClient, SearchRequest};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const MODES: [&str; 3] = ["keyword", "vector", "hybrid"];

fn config() -> String {
    format!(
        "[agents]\nprobe_ports = false\n[agents.llama]\nserver = \"{}\"\nthreads = 2\n\
         idle_unload_s = 0\n[memory]\npoll_ms = 250\n",
        llama_server_path()
    )
}

async fn search(
    client: &mut MemoryClient<Channel>,
    query: &str,
    mode: &str,
    k: u32,
    types: &[&str],
    collection: &str,
) -> (Vec<String>, f64) {
    let t = Instant::now();
    let r = client
        .search(SearchRequest {
            query: query.into(),
            types: types.iter().map(|t| t.to_string()).collect(),
            k,
            mode: mode.into(),
            collection: collection.into(),
            // The data's own dates are years old: a time word in a
            // question ("last week") is about the conversation, not now.
            since_ms: Some(0),
            ..Default::default()
        })
        .await
        .expect("Search")
        .into_inner();
    let ms = t.elapsed().as_secs_f64() * 1e3;
    (r.hits.into_iter().map(|h| h.source_id).collect(), ms)
}

fn ndcg_at_10(ranked: &[String], relevant: &HashSet<String>) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(10)
        .enumerate()
        .filter(|(_, id)| relevant.contains(*id))
        .map(|(i, _)| 1.0 / ((i + 2) as f64).log2())
        .sum();
    let ideal: f64 = (0..relevant.len().min(10))
        .map(|i| 1.0 / ((i + 2) as f64).log2())
        .sum();
    if ideal == 0.0 {
        0.0
    } else {
        dcg / ideal
    }
}

async fn scifact(suite: &Suite, data: &Path) -> f64 {
    let dir = data.join("scifact");
    let corpus = dir.join("corpus.jsonl");
    let t = Instant::now();
    let imported = json(&suite.ctl(&[
        "--json",
        "memory",
        "import",
        &corpus.display().to_string(),
        "--type",
        "document",
        "--collection",
        "scifact",
    ]));
    let import_s = t.elapsed().as_secs_f64();
    let chunks = wait_embedded(suite, "document", Duration::from_secs(3600));
    let embed_s = t.elapsed().as_secs_f64();
    println!(
        "SciFact: {} documents imported as {} chunks in {import_s:.1} s (keyword-searchable); \
         all {chunks} embedded after {embed_s:.1} s ({:.1} chunks/s through the pipeline)",
        imported["imported"],
        imported["chunks"],
        chunks as f64 / embed_s
    );
    let mut qrels: HashMap<String, HashSet<String>> = HashMap::new();
    for line in std::fs::read_to_string(dir.join("qrels.train.tsv"))
        .expect("qrels")
        .lines()
        .skip(1)
    {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() == 3 && f[2].trim() != "0" {
            qrels.entry(f[0].into()).or_default().insert(f[1].into());
        }
    }
    let queries: Vec<(String, String)> = std::fs::read_to_string(dir.join("queries.train.jsonl"))
        .expect("queries")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|q| {
            Some((
                q["_id"].as_str()?.to_owned(),
                q["text"].as_str()?.to_owned(),
            ))
        })
        .filter(|(id, _)| qrels.contains_key(id))
        .take(limit())
        .collect();
    let mut client = MemoryClient::new(suite.channel());
    println!(
        "\n{:<8} {:>8} {:>11} {:>14} {:>14}   ({} train queries)",
        "mode",
        "nDCG@10",
        "recall@100",
        "k=10 p50/p95",
        "k=100 p50/p95",
        queries.len()
    );
    let mut hybrid = 0.0;
    for mode in MODES {
        let (mut ndcg, mut recall) = (0.0, 0.0);
        let (mut times, mut times10) = (Vec::new(), Vec::new());
        for (id, text) in &queries {
            let (ranked, ms) = search(&mut client, text, mode, 100, &["document"], "scifact").await;
            let rel = &qrels[id];
            ndcg += ndcg_at_10(&ranked, rel);
            recall += ranked.iter().filter(|r| rel.contains(*r)).count() as f64 / rel.len() as f64;
            times.push(ms);
            // As a person searches: the default ten hits.
            times10.push(
                search(&mut client, text, mode, 10, &["document"], "scifact")
                    .await
                    .1,
            );
        }
        let n = queries.len() as f64;
        println!(
            "{mode:<8} {:>8.3} {:>11.3} {:>6.1}/{:<7.1} {:>6.1}/{:<7.1}",
            ndcg / n,
            recall / n,
            percentile(&mut times10, 0.5),
            percentile(&mut times10, 0.95),
            percentile(&mut times, 0.5),
            percentile(&mut times, 0.95)
        );
        if mode == "hybrid" {
            hybrid = ndcg / n;
        }
    }
    println!(
        "published (BEIR test split): BM25 0.665, BM25 + cross-encoder rerank 0.688, \
         all-MiniLM-L6-v2 dense ~0.64; targets here: keyword ≥ 0.65, hybrid ≥ 0.70, p95 ≤ 30 ms"
    );
    hybrid
}

async fn locomo(suite: &Suite, data: &Path) -> f64 {
    let samples = locomo_samples(data);
    let turns = import_locomo(suite, &samples);
    let t = Instant::now();
    wait_embedded(suite, "conversation", Duration::from_secs(1800));
    println!(
        "\nLoCoMo: {} conversations, {turns} turns imported; embedded in {:.1} s",
        samples.len(),
        t.elapsed().as_secs_f64()
    );
    let mut client = MemoryClient::new(suite.channel());
    println!(
        "{:<8} {:>10} {:>16} {:>8}",
        "mode", "recall@10", "recall@10 (1-4)", "p95 ms"
    );
    let mut hybrid = 0.0;
    for mode in MODES {
        let (mut all, mut n_all, mut answerable, mut n_ans, mut times) =
            (0.0, 0usize, 0.0, 0usize, Vec::new());
        for s in &samples {
            let id = s["sample_id"].as_str().unwrap_or("");
            for qa in s["qa"].as_array().into_iter().flatten().take(limit()) {
                let evidence = evidence_sessions(qa);
                if evidence.is_empty() {
                    continue;
                }
                let q = qa["question"].as_str().unwrap_or("");
                let (hits, ms) = search(
                    &mut client,
                    q,
                    mode,
                    10,
                    &["conversation"],
                    &format!("locomo-{id}"),
                )
                .await;
                times.push(ms);
                let got: HashSet<String> = hits.iter().filter_map(|h| session_of(h)).collect();
                let r = evidence.intersection(&got).count() as f64 / evidence.len() as f64;
                all += r;
                n_all += 1;
                if qa["category"].as_u64() != Some(5) {
                    answerable += r;
                    n_ans += 1;
                }
            }
        }
        println!(
            "{mode:<8} {:>10.3} {:>16.3} {:>8.1}   ({n_all} questions, {n_ans} not adversarial)",
            all / n_all as f64,
            answerable / n_ans.max(1) as f64,
            percentile(&mut times, 0.95)
        );
        if mode == "hybrid" {
            hybrid = all / n_all as f64;
        }
    }
    println!("published: all-MiniLM-L6-v2 session recall@10 0.914 (all questions); target ≥ 0.92");
    hybrid
}

/// Embeddings per second straight to the session's server: `n` inputs
/// of about `chars` characters, in batches of 32 (the pipeline's default).
async fn direct_rate(suite: &Suite, texts: &[String]) -> f64 {
    let s = json(&suite.ctl(&["--json", "models", "sessions"]));
    let session = s["sessions"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["mode"] == "embedding"))
        .cloned()
        .expect("an embedding session");
    let (pid, port) = (
        session["pid"].as_u64().expect("pid") as u32,
        session["port"].as_u64().expect("port"),
    );
    let env = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    let key = env
        .split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"LLAMA_API_KEY="))
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .expect("key");
    let client = reqwest::Client::new();
    let t = Instant::now();
    for batch in texts.chunks(32) {
        let r = client
            .post(format!("http://127.0.0.1:{port}/v1/embeddings"))
            .bearer_auth(&key)
            .json(
                &serde_json::json!({"model": session["alias"], "input": batch,
                                      "encoding_format": "float"}),
            )
            .send()
            .await
            .expect("embeddings");
        assert!(r.status().is_success(), "{}", r.status());
        let _ = r.bytes().await;
    }
    texts.len() as f64 / t.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let data = data_with("scifact/corpus.jsonl");
    let suite = Suite::start(&config());
    suite.agents_serving().await;
    suite.load_minilm();
    // Throughput: the same 1024 inputs (SciFact documents cut to 900
    // characters, one chunk each) through the pipeline, then straight to
    // the same session's server.
    let texts: Vec<String> = std::fs::read_to_string(data.join("scifact/corpus.jsonl"))
        .expect("corpus")
        .lines()
        .take(1024)
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|d| {
            let t = d["text"].as_str().unwrap_or("").trim().to_owned();
            let cut: String = t.chars().take(900).collect();
            cut.trim().to_owned()
        })
        .collect();
    let file = suite.home.path().join("throughput.jsonl");
    let lines: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"_id": format!("t{i}"), "text": t}).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n")).expect("write");
    // Warm: the embedder is resolved and its session answering.
    let warm = suite.home.path().join("warm.jsonl");
    std::fs::write(&warm, "{\"_id\": \"warm\", \"text\": \"warm up\"}\n").expect("write");
    suite.memory_import(&warm, "document", "warm");
    wait_embedded(&suite, "document", Duration::from_secs(120));
    let t = Instant::now();
    suite.memory_import(&file, "document", "throughput");
    wait_embedded(&suite, "document", Duration::from_secs(1800));
    let pipeline = texts.len() as f64 / t.elapsed().as_secs_f64();
    let direct = direct_rate(&suite, &texts).await;
    println!(
        "embeddings/s, {} inputs of ≤ 900 characters, batches of 32: pipeline {pipeline:.1} \
         (import → every vector committed), direct {direct:.1}; ratio {:.2} (target ≥ 0.9)\n",
        texts.len(),
        pipeline / direct
    );
    let hybrid = scifact(&suite, &data).await;
    let locomo = locomo(&suite, &data).await;
    println!("\nsummary: SciFact hybrid nDCG@10 {hybrid:.3}; LoCoMo hybrid session recall@10 {locomo:.3}");
}
