//! Vector search speed, side by side in one run, through memory's own
//! store (`memory::store::nearest`) on a real cowork.db file:
//! - 100,000 × 1024 unit vectors in 1,000 clusters (random, but with
//!   neighbours worth finding), top-10 for 50 queries drawn like the data;
//! - sqlite-vec's exact scan (`embedding MATCH ? AND k = 10`) vs ours (the
//!   binary codes' Hamming KNN, 80 candidates for 10 hits, then the candidates
//!   rescored exactly): p50/p95, the ratio, and recall@10 of ours against
//!   the exact answer (targets: ≤ 25 ms p50, recall@10 ≥ 0.95).
//!
//! `COWORK_KNN_N` and `COWORK_KNN_DIMS` change the size.

use agents_agent::memory::item::{Kind, Source, Stream};
use agents_agent::memory::jobs::{Progress, Status};
use agents_agent::memory::store::{self, Filter, Knn};
use agents_agent::schema;
use std::time::Instant;
use vectors::{centroids, percentile, point, Rng};

mod vectors;

const QUERIES: usize = 50;
const CLUSTERS: usize = 1000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n = env("COWORK_KNN_N", 100_000);
    let dims = env("COWORK_KNN_DIMS", 1024);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cowork.db");
    let mut c = cowork_db::open(&path).expect("open cowork.db");
    cowork_db::migrate(&mut c, agents_agent::db::LEDGER, schema::OWNERS).expect("migrate");

    let mut r = Rng(0x5eed);
    let centroids = centroids(&mut r, CLUSTERS, dims);
    let t = Instant::now();
    let tx = c.transaction().expect("tx");
    for i in 0..n {
        let s = Source {
            stream: Stream::Window,
            source_id: format!("activity:{i}"),
            row: Some(i as i64),
            text: format!("window {i}"),
            time_ms: i as i64,
            app: "Editor".into(),
            collection: String::new(),
            thread: String::new(),
            seq: 0,
        };
        store::put_source(&tx, Kind::Activity, &s, std::slice::from_ref(&s.text)).expect("item");
    }
    tx.commit().expect("commit");
    let index = store::create_index(&c, Kind::Activity, "bench", 0).expect("index");
    let done = Progress {
        status: Status::Done,
        chunks_embedded: 0,
        total_chunks: 0,
        embed_started_at: None,
        embed_error: None,
    };
    let mut batch = Vec::with_capacity(1000);
    for id in 1..=n as i64 {
        batch.push((id, point(&mut r, &centroids, 0.7)));
        if batch.len() == 1000 || id == n as i64 {
            store::commit_batch(&c, &index, 0, &batch, &done, 0).expect("vectors");
            batch.clear();
        }
    }

    let index = store::indexes(&c, Some(Kind::Activity))
        .expect("indexes")
        .remove(0);
    println!(
        "{n} × {dims} vectors in {CLUSTERS} clusters written in {:.1} s ({} vectors in {})",
        t.elapsed().as_secs_f64(),
        index.vectors,
        index.table
    );
    let queries: Vec<Vec<f32>> = (0..QUERIES)
        .map(|_| point(&mut r, &centroids, 0.7))
        .collect();
    let filter = Filter::default();
    // Warm both paths once (page cache), then alternate them per query.
    for how in [Knn::Exact, Knn::Coarse] {
        store::nearest(&c, &index, &queries[0], &filter, 10, how).expect("warm");
    }
    let (mut exact_ms, mut ours_ms, mut found, mut wanted) = (Vec::new(), Vec::new(), 0, 0);
    for q in &queries {
        let t = Instant::now();
        let exact = store::nearest(&c, &index, q, &filter, 10, Knn::Exact).expect("exact");
        exact_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let ours = store::nearest(&c, &index, q, &filter, 10, Knn::Coarse).expect("coarse");
        ours_ms.push(t.elapsed().as_secs_f64() * 1e3);
        wanted += exact.len();
        found += ours
            .iter()
            .filter(|h| exact.iter().any(|e| e.0 == h.0))
            .count();
    }
    let (e50, e95) = (
        percentile(&mut exact_ms, 0.5),
        percentile(&mut exact_ms, 0.95),
    );
    let (o50, o95) = (
        percentile(&mut ours_ms, 0.5),
        percentile(&mut ours_ms, 0.95),
    );
    println!("KNN top-10, {QUERIES} queries:");
    println!("  sqlite-vec exact scan      p50 {e50:>7.1} ms   p95 {e95:>7.1} ms");
    println!(
        "  ours (binary 80 + rescore) p50 {o50:>7.1} ms   p95 {o95:>7.1} ms   ({:.2}× the exact p50)",
        o50 / e50
    );
    println!(
        "  recall@10 of ours against exact: {:.3}   (targets: p50 ≤ 25 ms, recall ≥ 0.95)",
        found as f64 / wanted as f64
    );
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(dir.path().join("cowork.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    println!("  cowork.db: {:.0} MiB", size as f64 / (1 << 20) as f64);
}
