//! What the memory benchmarks share: where the evaluation data is, the
//! LoCoMo conversations as `memory import` lines, waiting for the
//! embedder, percentiles. (Included by each bench as `mod common;`; a
//! bench uses some of it.)
#![allow(dead_code)]

use cowork_e2e::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `$COWORK_DATA`, else `../shared/data` beside the checkout.
pub fn data_dir() -> PathBuf {
    std::env::var_os("COWORK_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/data"))
}

/// The data folder ([`data_dir`]), which must hold `file`.
pub fn data_with(file: &str) -> PathBuf {
    let data = data_dir();
    assert!(
        data.join(file).is_file(),
        "no {file} in {}: set COWORK_DATA",
        data.display()
    );
    data
}

/// The `p` percentile (0–1) of `v`.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

/// A command's stdout as JSON (it must have succeeded).
pub fn json(o: &std::process::Output) -> Value {
    let text = ok(o);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Wait until every item of `kind` has its vector; returns the items.
/// Reads cowork.db directly (read only, every 50 ms): polling through
/// coworkctl would spawn a process five times a second on a 2-core
/// machine whose cores the embedder needs.
pub fn wait_embedded(suite: &Suite, kind: &str, timeout: Duration) -> u64 {
    let c = rusqlite::Connection::open_with_flags(
        suite.home.path().join("cowork.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open cowork.db");
    let deadline = Instant::now() + timeout;
    loop {
        let one = |sql: &str| -> i64 { c.query_row(sql, [kind], |r| r.get(0)).unwrap_or(0) };
        let items = one("SELECT count(*) FROM memory_items WHERE kind = ?1");
        let vectors = one(
            "SELECT coalesce(max(vectors), 0) FROM memory_indexes WHERE kind = ?1 AND state = 'serving'",
        );
        let failed =
            one("SELECT count(*) FROM memory_jobs WHERE kind = ?1 AND embed_status = 'failed'");
        if items > 0 && items == vectors {
            return items as u64;
        }
        assert_eq!(
            failed,
            0,
            "an embedding job failed: {}",
            ok(&suite.ctl(&["memory", "status"]))
        );
        assert!(
            Instant::now() < deadline,
            "not embedded in {timeout:?}: {items} items, {vectors} vectors"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `COWORK_BENCH_QUERIES=N`: evaluate the first N queries only.
pub fn limit() -> usize {
    std::env::var("COWORK_BENCH_QUERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX)
}

/// "1:56 pm on 8 May, 2023" → RFC 3339.
pub fn locomo_time(s: &str) -> Option<String> {
    let (clock, date) = s.split_once(" on ")?;
    let (hm, ampm) = clock.trim().split_once(' ')?;
    let (h, m) = hm.split_once(':')?;
    let mut h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    match ampm.to_lowercase().as_str() {
        "pm" if h < 12 => h += 12,
        "am" if h == 12 => h = 0,
        _ => {}
    }
    let parts: Vec<&str> = date.split_whitespace().collect();
    let day: u32 = parts.first()?.parse().ok()?;
    let month_name = parts.get(1)?.trim_end_matches(',').to_lowercase();
    let month = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ]
    .iter()
    .position(|n| *n == month_name)?
        + 1;
    let year: u32 = parts.get(2)?.parse().ok()?;
    Some(format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:00Z"))
}

/// LoCoMo's conversations (`locomo/locomo.dev.json`).
pub fn locomo_samples(data: &Path) -> Vec<Value> {
    serde_json::from_str(
        &std::fs::read_to_string(data.join("locomo/locomo.dev.json")).expect("locomo"),
    )
    .expect("locomo JSON")
}

/// One conversation's turns as `memory import --type conversation`
/// lines: `_id` `<conv>:<dia_id>`, one thread per session, the session's
/// date, a shared photo's caption in the text.
pub fn locomo_lines(s: &Value) -> Vec<String> {
    let id = s["sample_id"].as_str().expect("sample_id");
    let conv = s["conversation"].as_object().expect("conversation");
    let mut lines = Vec::new();
    for n in 1.. {
        let Some(session) = conv.get(&format!("session_{n}")).and_then(Value::as_array) else {
            if n > 60 {
                break;
            }
            continue;
        };
        let when = conv
            .get(&format!("session_{n}_date_time"))
            .and_then(Value::as_str)
            .and_then(locomo_time)
            .expect("session date");
        for t in session {
            let mut text = t["text"].as_str().unwrap_or("").to_owned();
            if let Some(c) = t["blip_caption"].as_str() {
                text += &format!(" [shares a photo: {c}]");
            }
            lines.push(
                serde_json::json!({
                    "_id": format!("{id}:{}", t["dia_id"].as_str().unwrap_or("")),
                    "thread": format!("{id}:session_{n}"),
                    "speaker": t["speaker"],
                    "text": text,
                    "time": when,
                })
                .to_string(),
            );
        }
    }
    lines
}

/// Import `samples` with `coworkctl memory import`, each into collection
/// `locomo-<id>`; returns the turns imported.
pub fn import_locomo(suite: &Suite, samples: &[Value]) -> usize {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut turns = 0;
    for s in samples {
        let id = s["sample_id"].as_str().expect("sample_id");
        let lines = locomo_lines(s);
        turns += lines.len();
        let file = tmp.path().join(format!("{id}.jsonl"));
        std::fs::write(&file, lines.join("\n")).expect("write");
        suite.memory_import(&file, "conversation", &format!("locomo-{id}"));
    }
    turns
}

/// The sessions a LoCoMo question's evidence is in.
pub fn evidence_sessions(qa: &Value) -> std::collections::HashSet<String> {
    qa["evidence"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .flat_map(|e| e.split(';'))
        .filter_map(|e| session_of(e.trim()))
        .collect()
}

/// A LoCoMo dialogue id's session: "conv-26:D3:12" or "D3:12" → "D3".
pub fn session_of(dia: &str) -> Option<String> {
    Some(dia.rsplit(':').nth(1)?.to_owned())
}
