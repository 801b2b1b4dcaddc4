//! Memory at a million activity rows: search p50/p95 through the real
//! suite (`cowork.memory.v1.Memory/Search` on coworkd's socket, the query
//! embedded by all-MiniLM-L6-v2 in a llama-server session Cowork runs) and
//! agents-agent's resident memory, for keyword, vector and hybrid search.
//!
//! The home is built with memory's own store (`memory::store`): 1M
//! activity items (window titles from a 5,000-word vocabulary) and, in the
//! index of the session's model, 1M unit vectors of 384 dimensions in
//! 2,000 clusters (no embedder could embed a million rows here in a
//! bench's time; the query vectors are real). The items carry no capture
//! row, so the retention sweep leaves them alone, and the index is marked
//! enqueued, so nothing is embedded again. `COWORK_SCALE_N` changes the
//! size.

use agents_agent::memory::item::{Kind, Source, Stream};
use agents_agent::memory::jobs::{Progress, Status};
use agents_agent::memory::store;
use agents_agent::schema;
use cowork_e2e::*;
use cowork_proto::pb::memory::{memory_client::MemoryClient, SearchRequest};
use std::time::{Duration, Instant};
use vectors::{centroids, percentile, point, Rng};

mod vectors;

const DIMS: usize = 384;
const WORDS: usize = 5000;
const QUERIES: usize = 100;

/// A word index, Zipf-like (small indexes are common).
fn zipf(r: &mut Rng) -> usize {
    let u = r.unit() as f64;
    ((WORDS as f64).powf(u) as usize).saturating_sub(1) % WORDS
}

fn word(i: usize) -> String {
    const SYL: [&str; 16] = [
        "ka", "lo", "mi", "ser", "ta", "ven", "dor", "pi", "ru", "nel", "qua", "bo", "zi", "fen",
        "ha", "tu",
    ];
    format!(
        "{}{}{}",
        SYL[i % 16],
        SYL[(i / 16) % 16],
        SYL[(i / 256) % 16]
    )
}

fn build(home: &std::path::Path, n: usize, model: &str) {
    let mut c = cowork_db::open(&home.join("cowork.db")).expect("open cowork.db");
    cowork_db::migrate(&mut c, agents_agent::db::LEDGER, schema::OWNERS).expect("migrate");
    let mut r = Rng(0x5ca1e);
    let apps = ["Code", "Firefox", "Slack", "xterm", "Calc", "Mail"];
    let centroids = centroids(&mut r, 2000, DIMS);
    let t = Instant::now();
    let index = store::create_index(&c, Kind::Activity, model, 0).expect("index");
    let done = Progress {
        status: Status::Done,
        chunks_embedded: 0,
        total_chunks: 0,
        embed_started_at: None,
        embed_error: None,
    };
    let now = agents_agent::util::now_ms();
    let per_tx = 20_000;
    for start in (0..n).step_by(per_tx) {
        let tx = c.transaction().expect("tx");
        let mut vectors = Vec::with_capacity(per_tx);
        for i in start..(start + per_tx).min(n) {
            let app = apps[i % apps.len()];
            let title = format!(
                "{} {} {} — {i}",
                word(zipf(&mut r)),
                word(zipf(&mut r)),
                word(zipf(&mut r))
            );
            let s = Source {
                stream: Stream::Window,
                source_id: format!("activity:{i}"),
                row: None,
                text: format!("{app} — {title}"),
                time_ms: now - (n - i) as i64 * 30_000,
                app: app.into(),
                collection: String::new(),
                thread: String::new(),
                seq: 0,
            };
            store::put_source(&tx, Kind::Activity, &s, std::slice::from_ref(&s.text))
                .expect("item");
            let id = tx.last_insert_rowid();
            let v = point(&mut r, &centroids, 0.8);
            vectors.push((id, v));
        }
        tx.commit().expect("commit");
        store::commit_batch(&c, &index, 0, &vectors, &done, now).expect("vectors");
        if start % 200_000 == 0 {
            eprintln!("  {start} rows ({:.0} s)", t.elapsed().as_secs_f64());
        }
    }
    // Every item is in its index: nothing is left for the embedder.
    c.execute(
        "UPDATE memory_indexes SET enqueued_upto = (SELECT max(id) FROM memory_items)",
        [],
    )
    .expect("mark enqueued");
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    println!(
        "built {n} activity items with {DIMS}-dim vectors in {:.0} s; cowork.db {:.0} MiB",
        t.elapsed().as_secs_f64(),
        std::fs::metadata(home.join("cowork.db")).map_or(0, |m| m.len()) as f64 / (1 << 20) as f64
    );
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("COWORK_SCALE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let home = Suite::temp_home();
    // The session's alias is the model name its vectors are filed under.
    build(home.path(), n, "all-minilm-l6-v2-f16");
    let cfg = format!(
        "[agents]\nprobe_ports = false\n[agents.llama]\nserver = \"{}\"\nthreads = 2\n\
         idle_unload_s = 0\n[[agents.llama.autoload]]\nmodel = \"{}\"\nembedding = true\n",
        llama_server_path(),
        minilm_model_path()
    );
    let suite = Suite::start_in(home, &cfg);
    suite
        .wait_worker("agents", "serving", Duration::from_secs(120), |w| {
            matches!(state(w), "running" | "degraded")
        })
        .await;
    let mut client = MemoryClient::new(suite.channel());
    // Until the autoloaded session embeds queries.
    wait_for(Duration::from_secs(120), "vector search", || {
        let o = suite.ctl(&["--json", "memory", "search", "kalomi", "--mode", "vector"]);
        o.status.success().then_some(())
    });
    let mut r = Rng(42);
    let queries: Vec<String> = (0..QUERIES)
        .map(|_| format!("{} {}", word(zipf(&mut r)), word(zipf(&mut r))))
        .collect();
    println!("search at {n} activity items, k = 10, {QUERIES} queries (client round trip):");
    let pid = suite.worker("agents").await.pid;
    for mode in ["keyword", "vector", "hybrid"] {
        let mut times = Vec::new();
        let mut found = 0;
        for q in &queries {
            let t = Instant::now();
            let h = client
                .search(SearchRequest {
                    query: q.clone(),
                    k: 10,
                    mode: mode.into(),
                    ..Default::default()
                })
                .await
                .expect("search")
                .into_inner();
            times.push(t.elapsed().as_secs_f64() * 1e3);
            found += h.hits.len();
            assert_eq!(h.mode, mode, "{}", h.note);
        }
        println!(
            "  {mode:<8} p50 {:>6.1} ms   p95 {:>6.1} ms   ({:.1} hits a query)",
            percentile(&mut times, 0.5),
            percentile(&mut times, 0.95),
            found as f64 / QUERIES as f64
        );
    }
    println!(
        "  agents-agent RSS after the searches: {:.0} MiB (peak {:.0} MiB)",
        proc_rss_bytes(pid) as f64 / (1 << 20) as f64,
        proc_peak_rss_bytes(pid) as f64 / (1 << 20) as f64
    );
}
