//! Where a fit check's metadata comes from: a local GGUF file (16 MB, then
//! doubling), a remote one read over HTTP Range in 2 MB steps (capped at 120 MB, so a model
//! is checked before it is downloaded), or a model that lives in Ollama
//! (`/api/show` for its metadata, `/api/tags` for its size).

use super::gguf::{self, GgufError, Metadata, Value, MAX_HEADER};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Bytes fetched (or read) per step.
pub const STEP: u64 = 2 * 1024 * 1024;

/// Metadata with what it took to get it.
#[derive(Debug, Clone)]
pub struct Found {
    /// The metadata.
    pub metadata: Metadata,
    /// The model's size (file size; for Ollama, its size in /api/tags).
    pub model_bytes: u64,
    /// Bytes read to parse it (0 for Ollama).
    pub read_bytes: u64,
}

/// Why metadata could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The bytes are not usable GGUF metadata.
    #[error("{source_name}: {error}")]
    Gguf {
        /// File or URL.
        source_name: String,
        /// Parser's verdict.
        error: GgufError,
    },
    /// The header did not end within the cap.
    #[error("{0}: the GGUF metadata does not end within the first 120 MB")]
    TooLarge(String),
    /// Reading failed.
    #[error("{0}")]
    Io(String),
    /// The server said no or answered oddly.
    #[error("{0}")]
    Http(String),
    /// Ollama does not know the model or did not answer.
    #[error("{0}")]
    Ollama(String),
}

/// Parse `buf`; `Ok(None)` when more bytes are needed.
fn attempt(name: &str, buf: &[u8], eof: bool) -> Result<Option<Metadata>, SourceError> {
    match gguf::parse(buf) {
        Ok(m) => Ok(Some(m)),
        Err(GgufError::Truncated { .. }) if !eof && (buf.len() as u64) < MAX_HEADER => Ok(None),
        Err(GgufError::Truncated { .. }) if !eof => Err(SourceError::TooLarge(name.into())),
        Err(error) => Err(SourceError::Gguf {
            source_name: name.into(),
            error,
        }),
    }
}

/// First read of a local file: most headers end within it (Gemma 3's
/// 262,144-token vocabulary ends before 8 MB), and a read from disk is
/// cheap next to parsing the same bytes again.
pub const LOCAL_FIRST: u64 = 16 * 1024 * 1024;

/// Read a local file's metadata (blocking): 16 MB, then doubling, up to
/// the 120 MB cap.
pub fn read_file(path: &Path) -> Result<Found, SourceError> {
    let name = path.display().to_string();
    let io = |e: std::io::Error| SourceError::Io(format!("{name}: {e}"));
    let mut f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let mut buf = Vec::new();
    let mut want = LOCAL_FIRST;
    loop {
        let want_now = want.min(MAX_HEADER);
        let got = (&mut f)
            .take(want_now.saturating_sub(buf.len() as u64))
            .read_to_end(&mut buf)
            .map_err(io)?;
        let eof = got == 0 || buf.len() as u64 >= len;
        if let Some(m) = attempt(&name, &buf, eof)? {
            return Ok(Found {
                metadata: m,
                model_bytes: len,
                read_bytes: buf.len() as u64,
            });
        }
        want = want.saturating_mul(2);
    }
}

/// Read a remote file's metadata with `Range: bytes=a-b` requests of 2 MB
/// each until it parses (or 120 MB). A server that ignores Range is read
/// as a stream and dropped as soon as the metadata is complete.
pub async fn read_url(client: &reqwest::Client, full_url: &str) -> Result<Found, SourceError> {
    // Messages name the URL without credentials.
    let url = &super::fetch::redacted(full_url);
    let http = |e: reqwest::Error| SourceError::Http(format!("{url}: {}", e.without_url()));
    let mut buf: Vec<u8> = Vec::new();
    let mut total: Option<u64> = None;
    loop {
        let start = buf.len() as u64;
        let end = (start + STEP).min(MAX_HEADER) - 1;
        let mut resp = client
            .get(full_url)
            .header(reqwest::header::RANGE, format!("bytes={start}-{end}"))
            .send()
            .await
            .map_err(http)?;
        match resp.status().as_u16() {
            206 => {
                let range = resp
                    .headers()
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(super::download::parse_content_range);
                match range {
                    Some((s, t)) if s == start => total = total.or(t),
                    _ => {
                        return Err(SourceError::Http(format!(
                            "{url}: the server answered bytes={start}-{end} with another range"
                        )))
                    }
                }
                // Never more than was asked, whatever the server sends.
                let want = (end + 1 - start) as usize;
                let before = buf.len();
                while buf.len() - before < want {
                    match resp.chunk().await.map_err(http)? {
                        Some(c) => {
                            let room = want - (buf.len() - before);
                            buf.extend_from_slice(&c[..c.len().min(room)]);
                        }
                        None => break,
                    }
                }
                let got = buf.len() - before;
                let eof = got == 0 || total.is_some_and(|t| buf.len() as u64 >= t);
                if let Some(m) = attempt(url, &buf, eof)? {
                    return Ok(Found {
                        metadata: m,
                        model_bytes: total.unwrap_or(0),
                        read_bytes: buf.len() as u64,
                    });
                }
            }
            200 => {
                // No Range support: stream from byte 0, stop when parsed.
                let total = resp.content_length();
                buf.clear();
                let mut next = STEP;
                loop {
                    let chunk = resp.chunk().await.map_err(http)?;
                    let eof = chunk.is_none();
                    if let Some(c) = chunk {
                        buf.extend_from_slice(&c);
                    }
                    if eof || buf.len() as u64 >= next || buf.len() as u64 >= MAX_HEADER {
                        next = buf.len() as u64 + STEP;
                        if let Some(m) = attempt(url, &buf, eof)? {
                            return Ok(Found {
                                metadata: m,
                                model_bytes: total.unwrap_or(0),
                                read_bytes: buf.len() as u64,
                            });
                        }
                    }
                }
            }
            s => {
                return Err(SourceError::Http(format!(
                    "{url}: HTTP {s} {}",
                    resp.status().canonical_reason().unwrap_or("")
                )))
            }
        }
    }
}

/// A model in Ollama: its `model_info` (the GGUF keys, as JSON) from
/// `POST /api/show`, its size from `GET /api/tags`.
pub async fn read_ollama(
    client: &reqwest::Client,
    base_url: &str,
    model: &str,
) -> Result<Found, SourceError> {
    let base = base_url.trim_end_matches('/');
    let err = |e: reqwest::Error| SourceError::Ollama(format!("Ollama at {base}: {e}"));
    let resp = client
        .post(format!("{base}/api/show"))
        .json(&serde_json::json!({ "model": model }))
        .send()
        .await
        .map_err(err)?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        return Err(SourceError::Ollama(format!(
            "Ollama at {base} has no model {model:?} ({status}: {})",
            body.trim()
        )));
    }
    let show: serde_json::Value = resp.json().await.map_err(err)?;
    let info = show
        .get("model_info")
        .and_then(|v| v.as_object())
        .ok_or_else(|| {
            SourceError::Ollama(format!(
                "Ollama's /api/show for {model:?} has no model_info"
            ))
        })?;
    let kv: BTreeMap<String, Value> = info
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), json_value(v)?)))
        .collect();
    let tags: serde_json::Value = client
        .get(format!("{base}/api/tags"))
        .send()
        .await
        .map_err(err)?
        .json()
        .await
        .map_err(err)?;
    let size = ollama_size(&tags, model).ok_or_else(|| {
        SourceError::Ollama(format!(
            "Ollama at {base} does not list {model:?} in /api/tags"
        ))
    })?;
    Ok(Found {
        metadata: Metadata {
            version: 3,
            big_endian: false,
            tensor_count: 0,
            kv,
            end: 0,
        },
        model_bytes: size,
        read_bytes: 0,
    })
}

/// A model's size in an `/api/tags` answer (`name` with or without the
/// `:latest` tag).
pub fn ollama_size(tags: &serde_json::Value, model: &str) -> Option<u64> {
    let with_tag = if model.contains(':') {
        model.to_string()
    } else {
        format!("{model}:latest")
    };
    tags.get("models")?.as_array()?.iter().find_map(|m| {
        let name = m.get("name").or_else(|| m.get("model"))?.as_str()?;
        (name == model || name == with_tag).then(|| m.get("size")?.as_u64())?
    })
}

/// A JSON value as a metadata value (null has none).
pub fn json_value(v: &serde_json::Value) -> Option<Value> {
    use serde_json::Value as J;
    Some(match v {
        J::Null => return None,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Value::U64(u),
            (None, Some(i)) => Value::I64(i),
            _ => Value::F64(n.as_f64()?),
        },
        J::String(s) => Value::String(s.clone()),
        J::Array(a) => Value::Array(a.iter().filter_map(json_value).collect()),
        J::Object(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_json_becomes_metadata_and_sizes_match_tags() {
        let tags = serde_json::json!({"models": [
            {"name": "llama3.2:3b", "size": 2019393189u64},
            {"name": "qwen3:latest", "size": 5u64}]});
        assert_eq!(ollama_size(&tags, "llama3.2:3b"), Some(2019393189));
        assert_eq!(ollama_size(&tags, "qwen3"), Some(5));
        assert_eq!(ollama_size(&tags, "nope"), None);
        assert_eq!(json_value(&serde_json::json!(-3)), Some(Value::I64(-3)));
        assert_eq!(json_value(&serde_json::json!(1.5)), Some(Value::F64(1.5)));
        assert_eq!(
            json_value(&serde_json::json!([1, null, "a"])),
            Some(Value::Array(vec![Value::U64(1), Value::String("a".into())]))
        );
    }

    #[test]
    fn a_file_is_read_in_one_step_when_its_header_ends_early() {
        let mut w = gguf::tests::Writer::new(3, false, 0, 2);
        w.kv_str("general.architecture", "llama");
        w.kv_u32("llama.block_count", 2);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.gguf");
        let mut bytes = w.out;
        let header = bytes.len() as u64;
        bytes.resize(20 * 1024 * 1024, 0);
        std::fs::write(&p, &bytes).unwrap();
        let f = read_file(&p).unwrap();
        assert_eq!(f.metadata.arch_u64("block_count"), Some(2));
        assert_eq!(f.model_bytes, 20 * 1024 * 1024);
        assert_eq!(f.read_bytes, LOCAL_FIRST);
        assert!(f.metadata.end <= header);
        // Not GGUF: a clear error, not a loop.
        std::fs::write(&p, b"PK\x03\x04 not a model").unwrap();
        assert!(matches!(read_file(&p), Err(SourceError::Gguf { .. })));
    }
}
