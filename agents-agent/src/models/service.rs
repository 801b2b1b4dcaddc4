//! `cowork.models.v1.Models`: a thin adapter from proto to the download
//! manager, the metadata sources, the fit check and hardware detection.

use super::download::FileRequest;
use super::fetch::FetchError;
use super::fit::{classify, context_budget, Shape};
use super::hardware::{self, System};
use super::manager::{DownloadError, Downloads};
use super::source::{self, Found};
use super::store::{self, FileRecord, Record};
use crate::config::AgentsConfig;
use crate::llm::engines::ApiFamily;
use cowork_proto::pb::models as pb;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

impl From<DownloadError> for tonic::Status {
    fn from(e: DownloadError) -> Self {
        match &e {
            DownloadError::Request(_) => tonic::Status::invalid_argument(e.to_string()),
            DownloadError::Disk(FetchError::Request(_)) => {
                tonic::Status::invalid_argument(e.to_string())
            }
            DownloadError::Busy { .. } => tonic::Status::already_exists(e.to_string()),
            DownloadError::NotFound(_) => tonic::Status::not_found(e.to_string()),
            _ => tonic::Status::internal(e.to_string()),
        }
    }
}

/// Where Ollama listens when config names no Ollama engine.
pub const DEFAULT_OLLAMA: &str = "http://127.0.0.1:11434";

/// The Models service.
#[derive(Clone)]
pub struct ModelsService {
    downloads: Downloads,
    config_path: PathBuf,
    client: reqwest::Client,
}

impl ModelsService {
    /// Serve `downloads`, reading `[agents]` from `config_path`.
    pub fn new(downloads: Downloads, config_path: PathBuf) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        Self {
            downloads,
            config_path,
            client,
        }
    }

    async fn found(&self, src: &str) -> Result<Found, Status> {
        let failed = |e: source::SourceError| Status::failed_precondition(e.to_string());
        if let Some(name) = src.strip_prefix("ollama:") {
            let cfg = AgentsConfig::load(&self.config_path).map_err(Status::failed_precondition)?;
            let base = cfg
                .configured()
                .into_iter()
                .find(|e| e.api == ApiFamily::Ollama)
                .map(|e| e.base_url)
                .unwrap_or_else(|| DEFAULT_OLLAMA.into());
            return source::read_ollama(&self.client, &base, name)
                .await
                .map_err(failed);
        }
        let lower = src.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return source::read_url(&self.client, src).await.map_err(failed);
        }
        // A path: absolute as given, relative to the models directory.
        let path = if std::path::Path::new(src).is_absolute() {
            PathBuf::from(src)
        } else {
            super::download::sandboxed(self.downloads.root(), src)
                .map_err(|e| Status::invalid_argument(e.to_string()))?
        };
        tokio::task::spawn_blocking(move || source::read_file(&path))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| match e {
                source::SourceError::Io(m) => Status::not_found(m),
                e => failed(e),
            })
    }
}

async fn system_now() -> Result<System, Status> {
    tokio::task::spawn_blocking(|| hardware::detect(Duration::from_millis(200)))
        .await
        .map_err(|e| Status::internal(e.to_string()))
}

fn file_progress(f: &FileRecord) -> pb::FileProgress {
    pb::FileProgress {
        name: f.name.clone(),
        downloaded: f.downloaded,
        total: f.total,
        state: f.state.clone(),
        url: f.url.clone(),
        resumed_from: f.resumed_from,
        sha256: f.sha256.clone(),
        error: f.error.clone(),
    }
}

fn progress(r: &Record) -> pb::PullProgress {
    let total = if r.files.iter().all(|f| f.total > 0) {
        r.files.iter().map(|f| f.total).sum()
    } else {
        0
    };
    pb::PullProgress {
        id: r.id.clone(),
        state: r.state.clone(),
        downloaded: r.files.iter().map(|f| f.downloaded).sum(),
        total,
        error: r.error.clone(),
        files: r.files.iter().map(file_progress).collect(),
    }
}

type ProgressStream = Pin<Box<dyn Stream<Item = Result<pb::PullProgress, Status>> + Send>>;

/// Stream a task's states until it reaches a final one.
fn follow(mut rx: tokio::sync::watch::Receiver<Record>) -> ProgressStream {
    Box::pin(async_stream(move |tx| async move {
        loop {
            let r = rx.borrow_and_update().clone();
            let end = store::is_final(&r.state);
            if tx.send(Ok(progress(&r))).await.is_err() || end {
                return;
            }
            if rx.changed().await.is_err() {
                // The task ended without a final state (the worker is
                // stopping): say where it stands.
                let r = rx.borrow().clone();
                let _ = tx.send(Ok(progress(&r))).await;
                return;
            }
        }
    }))
}

/// A stream fed by a spawned producer.
fn async_stream<F, Fut>(
    f: F,
) -> tokio_stream::wrappers::ReceiverStream<Result<pb::PullProgress, Status>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<pb::PullProgress, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[tonic::async_trait]
impl pb::models_server::Models for ModelsService {
    type PullStream = ProgressStream;
    type WatchStream = ProgressStream;

    async fn pull(
        &self,
        req: Request<pb::PullRequest>,
    ) -> Result<Response<Self::PullStream>, Status> {
        let req = req.into_inner();
        let files: Vec<FileRequest> = req
            .files
            .into_iter()
            .map(|f| FileRequest {
                urls: f.urls,
                name: f.name,
                sha256: f.sha256,
                size: f.size,
            })
            .collect();
        let rx = self.downloads.start(&req.id, &files).await?;
        Ok(Response::new(follow(rx)))
    }

    async fn watch(
        &self,
        req: Request<pb::DownloadRef>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let id = req.into_inner().id;
        if let Some(rx) = self.downloads.watch(&id) {
            return Ok(Response::new(follow(rx)));
        }
        let r = self
            .downloads
            .get(&id)
            .await?
            .ok_or_else(|| Status::not_found(format!("no download {id:?}")))?;
        let p = progress(&r);
        Ok(Response::new(Box::pin(tokio_stream::iter([Ok(p)]))))
    }

    async fn list(
        &self,
        _: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let downloads = self
            .downloads
            .records()
            .await?
            .into_iter()
            .map(|r| pb::Download {
                id: r.id.clone(),
                state: r.state.clone(),
                files: r.files.iter().map(file_progress).collect(),
                created_at_ms: r.created_ms,
                updated_at_ms: r.updated_ms,
                error: r.error,
            })
            .collect();
        let d = self.downloads.clone();
        let files = tokio::task::spawn_blocking(move || d.files())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .into_iter()
            .map(|(name, size, path)| pb::ModelFile {
                name,
                size,
                path: path.display().to_string(),
            })
            .collect();
        Ok(Response::new(pb::ListResponse { downloads, files }))
    }

    async fn cancel(
        &self,
        req: Request<pb::DownloadRef>,
    ) -> Result<Response<pb::CancelResponse>, Status> {
        let id = req.into_inner().id;
        let cancelled = self.downloads.cancel(&id).await;
        Ok(Response::new(pb::CancelResponse { cancelled }))
    }

    async fn remove(
        &self,
        req: Request<pb::DownloadRef>,
    ) -> Result<Response<pb::RemoveResponse>, Status> {
        let id = req.into_inner().id;
        let deleted = self.downloads.remove(&id).await?;
        Ok(Response::new(pb::RemoveResponse {
            deleted: deleted.iter().map(|p| p.display().to_string()).collect(),
        }))
    }

    async fn fit(&self, req: Request<pb::FitRequest>) -> Result<Response<pb::FitResponse>, Status> {
        let req = req.into_inner();
        if req.source.trim().is_empty() {
            return Err(Status::invalid_argument(
                "give a GGUF file, an http(s) URL or ollama:<name>",
            ));
        }
        let found = self.found(req.source.trim()).await?;
        let shape = Shape::from_metadata(&found.metadata).map_err(|e| {
            Status::failed_precondition(format!(
                "{}: cannot estimate the KV cache: {e}",
                req.source
            ))
        })?;
        let configured = if req.ctx > 0 {
            req.ctx
        } else {
            AgentsConfig::load(&self.config_path)
                .map_err(Status::failed_precondition)?
                .local_context_tokens
        };
        let context = context_budget(configured, shape.context_length);
        let kv = shape.kv_cache(context);
        let sys = system_now().await?;
        let mem = sys.memory();
        let fit = classify(found.model_bytes, kv, context, mem);
        Ok(Response::new(pb::FitResponse {
            level: fit.level.name().into(),
            explanation: fit.explanation,
            architecture: shape.architecture.clone(),
            context,
            context_max: shape.context_length,
            model_bytes: fit.model_bytes,
            kv_bytes: fit.kv_bytes,
            required_bytes: fit.required,
            usable_bytes: fit.usable,
            usable_vram_bytes: fit.usable_vram,
            total_ram_bytes: mem.total_ram,
            vram_bytes: mem.vram,
            metadata_bytes: found.read_bytes,
            layers: shape.layers,
            kv_per_token_bytes: shape.kv_per_token(),
            sliding_window: shape.sliding_window,
        }))
    }

    async fn get_system(
        &self,
        _: Request<pb::GetSystemRequest>,
    ) -> Result<Response<pb::SystemInfo>, Status> {
        let s = system_now().await?;
        Ok(Response::new(pb::SystemInfo {
            total_memory_bytes: s.total_memory,
            used_memory_bytes: s.used_memory(),
            available_memory_bytes: s.available_memory,
            unified_memory: s.unified_memory,
            cpu_count: s.cpu_count,
            load_1: s.load[0],
            load_5: s.load[1],
            load_15: s.load[2],
            cpu_percent: s.cpu_percent,
            gpus: s
                .gpus
                .iter()
                .map(|g| pb::Gpu {
                    name: g.name.clone(),
                    vram_total_bytes: g.vram_total,
                    vram_used_bytes: g.vram_used,
                    source: g.source.clone(),
                })
                .collect(),
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
        }))
    }
}
