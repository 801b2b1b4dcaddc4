//! The fit check as a whole: a model's GGUF metadata from wherever it is
//! (a file, under models/ when the path is relative; an http(s) URL read
//! by Range; or Ollama's `/api/show`), its KV cache for the context
//! budget, and the verdict against this machine's memory. `models fit`
//! runs it; so will a model load.

use super::download::sandboxed;
use super::fit::{classify, context_budget, Fit, Memory, Shape};
use super::hardware::{self, System};
use super::source::{self, Found, SourceError};
use crate::config::AgentsConfig;
use crate::llm::engines::ApiFamily;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where Ollama listens when config names no Ollama engine.
pub const DEFAULT_OLLAMA: &str = "http://127.0.0.1:11434";

/// How long the CPU load is sampled for.
pub const CPU_SAMPLE: Duration = Duration::from_millis(200);

/// Why a fit check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The source is not one a check can read.
    #[error("{0}")]
    Invalid(String),
    /// The file does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The metadata could not be read or does not describe a model the
    /// estimate knows, or `[agents]` cannot be read.
    #[error("{0}")]
    Unusable(String),
    /// A blocking task died.
    #[error("{0}")]
    Task(String),
}

/// A fit check's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The verdict with its numbers.
    pub fit: Fit,
    /// The model's shape, from its metadata.
    pub shape: Shape,
    /// The context the estimate used: min(asked or configured, the
    /// model's maximum).
    pub context: u64,
    /// This machine's memory, as the verdict saw it.
    pub memory: Memory,
    /// Bytes of metadata read to decide.
    pub metadata_bytes: u64,
    /// The model carries its own chat template (`tokenizer.chat_template`).
    pub chat_template: bool,
}

/// Runs fit checks (cheap to clone).
#[derive(Debug, Clone)]
pub struct Checker {
    config: PathBuf,
    models_dir: PathBuf,
    client: reqwest::Client,
}

impl Checker {
    /// Checks under the `[agents]` of `config`, with relative paths under
    /// `models_dir`.
    pub fn new(config: PathBuf, models_dir: PathBuf) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        Self {
            config,
            models_dir,
            client,
        }
    }

    fn config(&self) -> Result<AgentsConfig, CheckError> {
        AgentsConfig::load(&self.config).map_err(CheckError::Unusable)
    }

    /// Will the model at `source` fit, with a context of `ctx` tokens (0:
    /// `[agents] local_context_tokens`)?
    pub async fn check(&self, source: &str, ctx: u64) -> Result<Report, CheckError> {
        let source = source.trim();
        if source.is_empty() {
            return Err(CheckError::Invalid(
                "give a GGUF file, an http(s) URL or ollama:<name>".into(),
            ));
        }
        let found = self.found(source).await?;
        let shape = Shape::from_metadata(&found.metadata).map_err(|e| {
            CheckError::Unusable(format!("{source}: cannot estimate the KV cache: {e}"))
        })?;
        let configured = if ctx > 0 {
            ctx
        } else {
            self.config()?.local_context_tokens
        };
        let context = context_budget(configured, shape.context_length);
        let kv = shape.kv_cache(context);
        let memory = system_now().await?.memory();
        let fit = classify(found.model_bytes, kv, context, memory);
        Ok(Report {
            fit,
            shape,
            context,
            memory,
            metadata_bytes: found.read_bytes,
            chat_template: found.metadata.get("tokenizer.chat_template").is_some(),
        })
    }

    /// The metadata of `src`: `ollama:NAME`, an http(s) URL, or a path.
    async fn found(&self, src: &str) -> Result<Found, CheckError> {
        let unusable = |e: SourceError| CheckError::Unusable(e.to_string());
        if let Some(name) = src.strip_prefix("ollama:") {
            let base = self
                .config()?
                .configured()
                .into_iter()
                .find(|e| e.api == ApiFamily::Ollama)
                .map(|e| e.base_url)
                .unwrap_or_else(|| DEFAULT_OLLAMA.into());
            return source::read_ollama(&self.client, &base, name)
                .await
                .map_err(unusable);
        }
        let lower = src.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return source::read_url(&self.client, src).await.map_err(unusable);
        }
        // A path: absolute as given, relative to the models directory.
        let path = if Path::new(src).is_absolute() {
            PathBuf::from(src)
        } else {
            sandboxed(&self.models_dir, src).map_err(|e| CheckError::Invalid(e.to_string()))?
        };
        tokio::task::spawn_blocking(move || source::read_file(&path))
            .await
            .map_err(|e| CheckError::Task(e.to_string()))?
            .map_err(|e| match e {
                SourceError::Io(m) => CheckError::NotFound(m),
                e => unusable(e),
            })
    }
}

/// This machine's memory, CPU load and GPUs now.
pub async fn system_now() -> Result<System, CheckError> {
    tokio::task::spawn_blocking(|| hardware::detect(CPU_SAMPLE))
        .await
        .map_err(|e| CheckError::Task(e.to_string()))
}
