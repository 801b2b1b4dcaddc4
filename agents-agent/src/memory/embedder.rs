//! Embedders: any OpenAI-compatible `/v1/embeddings` (a llama-server
//! session we run, a detected engine, a LAN engine, a cloud provider the
//! person allowed) and Ollama's `/api/embed`. Which one `[memory]
//! embedder` picks, batches bounded by characters and count, inputs cut
//! below the model's limit, vectors L2-normalised.

use crate::config::{AgentsConfig, MemoryConfig};
use crate::llm::client::{self, ChatTarget, Transport};
use crate::llm::engines::{ApiFamily, Health};
use crate::llm::managed::sessions::Sessions;
use crate::llm::managed::Mode;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The largest embeddings response read (a batch of 1024-dim vectors as
/// JSON is a few MB).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Why a batch was not embedded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmbedError {
    /// The embedder accepted and did not answer in time: the job fails.
    #[error("the embedder did not answer within {} s", .0.as_secs())]
    Hung(Duration),
    /// It could not be reached or failed: the job waits.
    #[error("{0}")]
    Failed(String),
    /// It refused these inputs (HTTP 400, 413 or 422: too long, or
    /// otherwise bad): trying them again as they are will not help.
    #[error("{0}")]
    Refused(String),
}

/// The embedder memory uses, as resolved from `[memory] embedder`.
#[derive(Debug, Clone)]
pub struct Embedder {
    /// Where it runs: `managed:<alias>`, an instance key, a provider id.
    pub engine: String,
    /// Its base URL.
    pub base_url: String,
    /// Its wire format.
    pub api: ApiFamily,
    /// The model asked for.
    pub model: String,
    /// A cloud provider (allowed by `allow_cloud_embeddings`).
    pub cloud: bool,
    via: Via,
}

#[derive(Debug, Clone)]
enum Via {
    /// A session we run (leased per request, so it may idle-unload).
    Session(String),
    /// An engine someone else runs.
    Local,
    /// A cloud provider with its key.
    Cloud(reqwest::Client, String),
}

impl Embedder {
    /// Whether text the person typed or copied may be sent to it.
    pub fn may_see_private_text(&self) -> bool {
        !self.cloud
    }

    /// Embed `inputs` (already cut to the model's limit): one unit-length
    /// vector per input, in order. An answer slower than `hang` is
    /// [`EmbedError::Hung`].
    pub async fn embed(
        &self,
        sessions: &Sessions,
        inputs: &[String],
        hang: Duration,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let failed = EmbedError::Failed;
        let (transport, base) = match &self.via {
            Via::Session(id) => {
                let lease = sessions
                    .lease_id(id)
                    .await
                    .map_err(|e| failed(format!("{}: {e}", self.engine)))?;
                let base = lease.base_url.clone();
                (
                    Transport::Local {
                        session: Some(Arc::new(lease)),
                    },
                    base,
                )
            }
            Via::Local => (Transport::Local { session: None }, self.base_url.clone()),
            Via::Cloud(client, key) => (
                Transport::Cloud {
                    client: client.clone(),
                    api_key: key.clone(),
                },
                self.base_url.clone(),
            ),
        };
        let target = ChatTarget {
            name: self.engine.clone(),
            base_url: base.clone(),
            api: self.api,
            model: self.model.clone(),
            transport,
        };
        let (path, body) = request(self.api, &self.model, inputs);
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let call = async {
            let mut reply = client::post(&target, &url, body.to_string())
                .await
                .map_err(failed)?;
            let mut text = Vec::new();
            while let Some(chunk) = reply.body.next().await {
                let chunk = chunk.map_err(|e| failed(format!("lost {base} mid-reply: {e}")))?;
                if text.len() + chunk.len() > MAX_BODY {
                    return Err(failed(format!(
                        "{base}: the reply is over {MAX_BODY} bytes"
                    )));
                }
                text.extend_from_slice(&chunk);
            }
            let text = String::from_utf8_lossy(&text);
            if !(200..300).contains(&reply.status) {
                let why = format!(
                    "{base} answered HTTP {}: {}",
                    reply.status,
                    crate::memory::chunk::truncate(text.trim(), 300)
                );
                return Err(if matches!(reply.status, 400 | 413 | 422) {
                    EmbedError::Refused(why)
                } else {
                    failed(why)
                });
            }
            parse_vectors(self.api, &text, inputs.len()).map_err(failed)
        };
        tokio::time::timeout(hang, call)
            .await
            .map_err(|_| EmbedError::Hung(hang))?
    }
}

/// The request for `inputs`: the path under the base URL and the body.
pub fn request(
    api: ApiFamily,
    model: &str,
    inputs: &[String],
) -> (&'static str, serde_json::Value) {
    match api {
        ApiFamily::OpenAi => (
            "/embeddings",
            serde_json::json!({"model": model, "input": inputs, "encoding_format": "float"}),
        ),
        ApiFamily::Ollama => (
            "/api/embed",
            serde_json::json!({"model": model, "input": inputs, "truncate": true}),
        ),
    }
}

/// The `n` vectors of an embeddings response, unit length, in input
/// order (OpenAI's `data[].index`, Ollama's `embeddings` order). A wrong
/// count, a ragged or empty vector, or a non-finite value is an error.
pub fn parse_vectors(api: ApiFamily, body: &str, n: usize) -> Result<Vec<Vec<f32>>, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("the embeddings reply is not JSON: {e}"))?;
    let floats = |x: &serde_json::Value| -> Result<Vec<f32>, String> {
        x.as_array()
            .ok_or("an embedding is not an array")?
            .iter()
            .map(|f| {
                f.as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f as f32)
                    .ok_or_else(|| "an embedding holds a value that is not a number".to_owned())
            })
            .collect()
    };
    let mut out: Vec<Vec<f32>> = match api {
        ApiFamily::OpenAi => {
            let data = v["data"]
                .as_array()
                .ok_or("the embeddings reply has no data array")?;
            let mut slots: Vec<Option<Vec<f32>>> = vec![None; data.len()];
            for (i, d) in data.iter().enumerate() {
                let at = d["index"].as_u64().map_or(i, |x| x as usize);
                let slot = slots
                    .get_mut(at)
                    .ok_or_else(|| format!("embedding index {at} is out of range"))?;
                *slot = Some(floats(&d["embedding"])?);
            }
            slots
                .into_iter()
                .map(|s| s.ok_or_else(|| "an embedding index is missing".to_owned()))
                .collect::<Result<_, _>>()?
        }
        ApiFamily::Ollama => v["embeddings"]
            .as_array()
            .ok_or("the embeddings reply has no embeddings array")?
            .iter()
            .map(floats)
            .collect::<Result<_, _>>()?,
    };
    if out.len() != n {
        return Err(format!("asked for {n} embeddings, got {}", out.len()));
    }
    let dims = out.first().map_or(0, Vec::len);
    if dims == 0 || out.iter().any(|e| e.len() != dims) {
        return Err("the embeddings are empty or of different lengths".into());
    }
    for e in &mut out {
        normalize(e);
    }
    Ok(out)
}

/// Scale `v` to unit length (a zero vector is left as it is).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Split inputs of these character counts into consecutive batches of at
/// most `max_items` inputs and `max_chars` characters (an input longer
/// than `max_chars` alone is a batch): the ranges of each.
pub fn batches(lens: &[usize], max_chars: usize, max_items: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut chars) = (0, 0);
    for (i, &len) in lens.iter().enumerate() {
        if i > start && (i - start >= max_items.max(1) || chars + len > max_chars) {
            out.push(start..i);
            start = i;
            chars = 0;
        }
        chars += len;
    }
    if start < lens.len() {
        out.push(start..lens.len());
    }
    out
}

/// Whether an engine's model name is an embedding model (what `auto`
/// looks for on engines someone else runs).
pub fn is_embedding_model(name: &str) -> bool {
    let n = name.to_lowercase();
    [
        "embed",
        "minilm",
        "bge-",
        "e5-",
        "gte-",
        "mxbai",
        "arctic-embed",
        "sentence",
    ]
    .iter()
    .any(|k| n.contains(k))
}

/// Resolve `[memory] embedder` from the config at `path`: Ok(None) when
/// memory is keyword-only, with the reason.
pub async fn resolve(path: &Path, sessions: &Sessions) -> Result<Embedder, String> {
    let mem = MemoryConfig::load(path)?;
    let want = mem.embedder.trim();
    if want == "none" {
        return Err("[memory] embedder = \"none\": keyword search only".into());
    }
    // A session we run: the first embedding session (auto) or the one named.
    let alias = want.strip_prefix("managed:");
    if want == "auto" || alias.is_some() {
        let found = match alias {
            Some(a) => sessions
                .list()
                .into_iter()
                .find(|i| i.session.mode == Mode::Embedding && i.session.alias == a)
                .map(|i| i.session),
            None => sessions.serving(Mode::Embedding),
        };
        if let Some(s) = found {
            return Ok(Embedder {
                engine: s.engine_key(),
                base_url: s.base_url(),
                api: ApiFamily::OpenAi,
                model: mem.embed_model.clone().unwrap_or_else(|| s.alias.clone()),
                cloud: false,
                via: Via::Session(s.id.clone()),
            });
        }
        if alias.is_some() {
            return Err(format!("no embedding session {want} is loaded"));
        }
    }
    let cfg = AgentsConfig::load(path)?;
    // A cloud provider, only when the person allowed it.
    if let Some(ready) = cfg
        .cloud_here()
        .unwrap_or_default()
        .into_iter()
        .find(|r| r.provider.id == want)
    {
        if !mem.allow_cloud_embeddings {
            return Err(format!(
                "{want} is a cloud provider: set [memory] allow_cloud_embeddings = true to let it \
                 embed (never keystrokes or clipboard); keyword search only until then"
            ));
        }
        let model = mem
            .embed_model
            .clone()
            .ok_or_else(|| format!("[memory] embed_model must name {want}'s embedding model"))?;
        let client = client::cloud_client()?;
        return Ok(Embedder {
            engine: want.into(),
            base_url: ready.base_url.trim_end_matches('/').into(),
            api: ApiFamily::OpenAi,
            model,
            cloud: true,
            via: Via::Cloud(client, ready.api_key.clone()),
        });
    }
    // An engine someone else runs: the one named, or (auto) the first
    // serving an embedding model.
    let probed = crate::llm::probe::probe_all(cfg.instances()).await;
    for p in probed.iter().filter(|p| p.health == Health::Up) {
        let named = p.instance.key == want || p.instance.engine == want;
        if want != "auto" && !named {
            continue;
        }
        let model = match &mem.embed_model {
            Some(m) => Some(m.clone()),
            None => p.models.iter().find(|m| is_embedding_model(m)).cloned(),
        };
        let Some(model) = model else {
            if named {
                return Err(format!(
                    "{want} serves no embedding model ({}); name one with [memory] embed_model",
                    p.models.join(", ")
                ));
            }
            continue;
        };
        return Ok(Embedder {
            engine: p.instance.key.clone(),
            base_url: p.instance.base_url.trim_end_matches('/').into(),
            api: p.instance.api,
            model,
            cloud: false,
            via: Via::Local,
        });
    }
    Err(if want == "auto" {
        "no embedder: load one (`coworkctl models load <gguf> --embedding`) or run a local engine \
         serving an embedding model; keyword search only until then"
            .into()
    } else {
        format!("embedder {want} is not reachable; keyword search only until it is")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_of_both_apis_become_unit_vectors_in_input_order() {
        let openai = r#"{"data":[{"index":1,"embedding":[0,2]},{"index":0,"embedding":[3,4]}]}"#;
        let v = parse_vectors(ApiFamily::OpenAi, openai, 2).unwrap();
        assert_eq!(v, vec![vec![0.6, 0.8], vec![0.0, 1.0]]);
        let ollama = r#"{"model":"m","embeddings":[[1,0],[0,-5]]}"#;
        assert_eq!(
            parse_vectors(ApiFamily::Ollama, ollama, 2).unwrap(),
            vec![vec![1.0, 0.0], vec![0.0, -1.0]]
        );
        assert!(parse_vectors(ApiFamily::OpenAi, openai, 3)
            .unwrap_err()
            .contains("asked for 3"));
        assert!(parse_vectors(ApiFamily::Ollama, r#"{"embeddings":[[1],[1,2]]}"#, 2).is_err());
        assert!(parse_vectors(ApiFamily::Ollama, r#"{"embeddings":[[]]}"#, 1).is_err());
        assert!(parse_vectors(ApiFamily::OpenAi, "<html>", 1)
            .unwrap_err()
            .contains("not JSON"));
        let (path, body) = request(ApiFamily::Ollama, "nomic-embed-text", &["a".into()]);
        assert_eq!((path, body["input"][0].as_str()), ("/api/embed", Some("a")));
    }

    #[test]
    fn batches_are_bounded_by_characters_and_count() {
        assert_eq!(batches(&[10, 10, 10], 25, 8), vec![0..2, 2..3]);
        assert_eq!(batches(&[1, 1, 1, 1, 1], 100, 2), vec![0..2, 2..4, 4..5]);
        assert_eq!(
            batches(&[500, 1], 100, 8),
            vec![0..1, 1..2],
            "an oversized input alone"
        );
        assert!(batches(&[], 100, 8).is_empty());
        assert!(is_embedding_model("all-MiniLM-L6-v2.Q8_0"));
        assert!(is_embedding_model("nomic-embed-text:latest"));
        assert!(!is_embedding_model("gemma3:270m"));
    }
}
