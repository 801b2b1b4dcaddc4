//! The GGUF reader and the KV-cache estimate against independent ground
//! truth: files written by the `gguf` PyPI package's GGUFWriter (llama,
//! gemma3 with a sliding window, qwen2 without key/value lengths; v3
//! little- and big-endian, and v2), and the real Gemma 3 270M model, all
//! read back by the package's GGUFReader, with the KV estimate computed in
//! Python (`tests/python/gguf_fixtures.py`).

use agents_agent::models::{fit, gguf};
use cowork_e2e::*;
use serde_json::Value;

fn fixtures(args: &[&str]) -> serde_json::Map<String, Value> {
    match python_json("gguf_fixtures.py", args) {
        Value::Object(m) => m,
        other => panic!("{other}"),
    }
}

/// GGUFReader flattens nested arrays; compare like with like.
fn flatten(v: Value) -> Value {
    match v {
        Value::Array(items) if items.iter().any(Value::is_array) => Value::Array(
            items
                .into_iter()
                .flat_map(|i| match flatten(i) {
                    Value::Array(inner) => inner,
                    x => vec![x],
                })
                .collect(),
        ),
        x => x,
    }
}

/// Read a file the way a Range download does: a growing prefix, 2 MB at a
/// time, until the metadata is complete. Returns it and the bytes read.
fn read_progressively(path: &str) -> (gguf::Metadata, usize) {
    let bytes = std::fs::read(path).expect("read the file");
    let mut have = 0;
    loop {
        have = (have + 2 * 1024 * 1024).min(bytes.len());
        match gguf::parse(&bytes[..have]) {
            Ok(m) => return (m, have),
            Err(gguf::GgufError::Truncated { .. }) if have < bytes.len() => continue,
            Err(e) => panic!("{path}: {e}"),
        }
    }
}

fn check(path: &str, want: &Value) {
    let (m, _) = read_progressively(path);
    assert_eq!(Some(m.version as u64), want["version"].as_u64(), "{path}");
    assert_eq!(Some(m.big_endian), want["big_endian"].as_bool(), "{path}");
    assert_eq!(
        Some(m.tensor_count),
        want["tensor_count"].as_u64(),
        "{path}"
    );
    let kv = want["kv"].as_object().unwrap();
    assert_eq!(m.kv.len(), kv.len(), "{path}: key count");
    for (k, v) in kv {
        let ours = m.get(k).unwrap_or_else(|| panic!("{path}: {k} missing"));
        assert_eq!(&flatten(ours.to_json()), v, "{path}: {k}");
    }
    let shape = fit::Shape::from_metadata(&m).unwrap();
    let est = &want["kv_estimate"];
    let ctx = fit::context_budget(4096, shape.context_length);
    assert_eq!(Some(ctx), est["ctx"].as_u64(), "{path}");
    assert_eq!(
        Some(shape.kv_per_token()),
        est["per_token"].as_u64(),
        "{path}"
    );
    assert_eq!(Some(shape.kv_cache(ctx)), est["cache"].as_u64(), "{path}");
}

#[test]
fn files_written_by_the_gguf_package_read_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let want = fixtures(&["write", dir.path().to_str().unwrap()]);
    assert_eq!(want.len(), 7, "{:?}", want.keys());
    let mut seen_v2 = false;
    for (path, w) in &want {
        seen_v2 |= w["version"] == 2;
        check(path, w);
    }
    assert!(seen_v2);
}

#[test]
fn the_real_gemma_model_reads_back_the_same() {
    let path = gemma_model_path();
    let want = fixtures(&["read", &path]);
    let w = &want[&path];
    check(&path, w);
    let (m, read) = read_progressively(&path);
    assert_eq!(m.architecture(), Some("gemma3"));
    // The metadata (with a 262,144-token vocabulary) is near the start:
    // a few 2 MB steps, far below the 120 MB cap.
    let size = std::fs::metadata(&path).unwrap().len() as usize;
    assert!(read < size && m.end as usize <= read, "{read} of {size}");
    assert!(fit::Shape::from_metadata(&m)
        .unwrap()
        .sliding_window
        .is_some());
}
