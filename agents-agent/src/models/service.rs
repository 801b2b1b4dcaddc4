//! `cowork.models.v1.Models`: a thin adapter from proto to the download
//! manager, the fit check and the llama-server sessions.

use super::check::{system_now, CheckError, Checker};
use super::download::FileRequest;
use super::fetch::FetchError;
use super::load::{LoadAsk, LoadError, Loader};
use super::manager::{DownloadError, Downloads};
use super::store::{self, FileRecord, Record};
use crate::llm::managed::sessions::{SessionError, SessionInfo};
use cowork_proto::pb::models as pb;
use std::pin::Pin;
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

impl From<CheckError> for Status {
    fn from(e: CheckError) -> Self {
        let msg = e.to_string();
        match e {
            CheckError::Invalid(_) => Status::invalid_argument(msg),
            CheckError::NotFound(_) => Status::not_found(msg),
            CheckError::Unusable(_) => Status::failed_precondition(msg),
            CheckError::Task(_) => Status::internal(msg),
        }
    }
}

impl From<SessionError> for Status {
    fn from(e: SessionError) -> Self {
        let msg = e.to_string();
        match e {
            SessionError::NotFound(_) => Status::not_found(msg),
            SessionError::Conflict(_) => Status::already_exists(msg),
            SessionError::Config(_) | SessionError::GaveUp(_) => Status::failed_precondition(msg),
            SessionError::Start(_) => Status::unavailable(msg),
            SessionError::Stopping | SessionError::Paused(_) => Status::unavailable(msg),
        }
    }
}

impl From<LoadError> for Status {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::NotFound(_) => Status::not_found(e.to_string()),
            LoadError::DoesNotFit(_) => Status::failed_precondition(e.to_string()),
            LoadError::Session(s) => s.into(),
        }
    }
}

fn session(i: SessionInfo) -> pb::Session {
    let s = i.session;
    pb::Session {
        engine: s.engine_key(),
        base_url: if s.port == 0 {
            String::new()
        } else {
            s.base_url()
        },
        id: s.id,
        name: s.alias,
        model: s.model.display().to_string(),
        port: u32::from(s.port),
        pid: s.pid,
        mode: s.mode.name().into(),
        ctx: s.ctx,
        state: s.state.name().into(),
        rss_bytes: i.rss_bytes,
        idle_ms: i.idle.as_millis() as u64,
        last_error: s.last_error.unwrap_or_default(),
        restarts: s.restarts,
    }
}

/// The Models service.
#[derive(Clone)]
pub struct ModelsService {
    downloads: Downloads,
    checker: Checker,
    loader: Loader,
}

impl ModelsService {
    /// Serve `downloads`, fit checks by `checker` and sessions by `loader`.
    pub fn new(downloads: Downloads, checker: Checker, loader: Loader) -> Self {
        Self {
            downloads,
            checker,
            loader,
        }
    }
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
        let r = self.checker.check(&req.source, req.ctx).await?;
        Ok(Response::new(pb::FitResponse {
            level: r.fit.level.name().into(),
            explanation: r.fit.explanation,
            architecture: r.shape.architecture.clone(),
            context: r.context,
            context_max: r.shape.context_length,
            model_bytes: r.fit.model_bytes,
            kv_bytes: r.fit.kv_bytes,
            required_bytes: r.fit.required,
            usable_bytes: r.fit.usable,
            usable_vram_bytes: r.fit.usable_vram,
            total_ram_bytes: r.memory.total_ram,
            vram_bytes: r.memory.vram,
            metadata_bytes: r.metadata_bytes,
            layers: r.shape.layers,
            kv_per_token_bytes: r.shape.kv_per_token(),
            sliding_window: r.shape.sliding_window,
        }))
    }

    async fn load(
        &self,
        req: Request<pb::LoadRequest>,
    ) -> Result<Response<pb::LoadResponse>, Status> {
        let req = req.into_inner();
        let l = self
            .loader
            .load(LoadAsk {
                model: req.model,
                ctx: (req.ctx > 0).then_some(req.ctx),
                embedding: req.embedding,
                gpu_layers: req.gpu_layers,
                force: req.force,
            })
            .await?;
        let id = l.session.id.clone();
        let info = self
            .loader
            .sessions()
            .list()
            .into_iter()
            .find(|i| i.session.id == id)
            .unwrap_or(SessionInfo {
                session: l.session,
                rss_bytes: 0,
                idle: Default::default(),
            });
        let (fit_level, fit_explanation) = l
            .fit
            .map(|(level, why)| (level.name().to_owned(), why))
            .unwrap_or_default();
        Ok(Response::new(pb::LoadResponse {
            session: Some(session(info)),
            already_loaded: l.already_loaded,
            fit_level,
            fit_explanation,
            warnings: l.warnings,
            load_ms: l.took.as_millis() as u64,
        }))
    }

    async fn unload(
        &self,
        req: Request<pb::UnloadRequest>,
    ) -> Result<Response<pb::UnloadResponse>, Status> {
        let s = self
            .loader
            .sessions()
            .unload(&req.into_inner().session)
            .await?;
        Ok(Response::new(pb::UnloadResponse {
            session: Some(session(SessionInfo {
                session: s,
                rss_bytes: 0,
                idle: Default::default(),
            })),
        }))
    }

    async fn sessions(
        &self,
        _: Request<pb::SessionsRequest>,
    ) -> Result<Response<pb::SessionsResponse>, Status> {
        Ok(Response::new(pb::SessionsResponse {
            sessions: self
                .loader
                .sessions()
                .list()
                .into_iter()
                .map(session)
                .collect(),
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
