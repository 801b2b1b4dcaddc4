//! `cowork.memory.v1.Memory`: a thin adapter to [`Memory`].

use super::item::Kind;
use super::recall::{Found, Mode, Query};
use super::{Forget, Memory, MemoryError, Status};
use cowork_proto::pb::memory as pb;
use tonic::{Request, Response};

impl From<MemoryError> for tonic::Status {
    fn from(e: MemoryError) -> Self {
        match e {
            MemoryError::Invalid(m) => tonic::Status::invalid_argument(m),
            MemoryError::Config(m) | MemoryError::Embedder(m) => {
                tonic::Status::failed_precondition(m)
            }
            MemoryError::Db(e) => tonic::Status::internal(e.to_string()),
        }
    }
}

/// The Memory service.
#[derive(Clone)]
pub struct MemoryService {
    memory: Memory,
}

impl MemoryService {
    /// Serve `memory`.
    pub fn new(memory: Memory) -> Self {
        Self { memory }
    }
}

fn kinds(names: &[String]) -> Result<Vec<Kind>, tonic::Status> {
    names
        .iter()
        .map(|n| n.parse().map_err(tonic::Status::invalid_argument))
        .collect()
}

/// A time given as milliseconds, or as text (a duration ago, RFC 3339).
fn time(ms: Option<i64>, text: &str) -> Result<Option<i64>, tonic::Status> {
    match (ms, text.trim()) {
        (Some(ms), _) => Ok(Some(ms)),
        (None, "") => Ok(None),
        (None, t) => super::query::parse_time(t, crate::util::now_ms())
            .map(Some)
            .map_err(tonic::Status::invalid_argument),
    }
}

fn found(f: Found) -> pb::SearchResponse {
    pb::SearchResponse {
        hits: f
            .hits
            .into_iter()
            .map(|h| pb::Hit {
                source_type: h.item.kind.as_str().into(),
                source_id: h.item.source_id,
                time_ms: h.item.time_ms,
                app: h.item.app,
                snippet: h.snippet,
                score: h.score,
                keyword_score: h.keyword.map(|k| k.1),
                keyword_rank: h.keyword.map(|k| k.0),
                vector_score: h.vector.map(|v| v.1),
                vector_rank: h.vector.map(|v| v.0),
                stream: h.item.stream.as_str().into(),
                chunk: h.item.chunk,
                collection: h.item.collection,
            })
            .collect(),
        mode: f.mode.as_str().into(),
        note: f.note,
        text: f.text,
        since_ms: f.range.since_ms,
        until_ms: f.range.until_ms,
        took_us: f.took.as_micros() as u64,
    }
}

fn status(s: Status) -> pb::StatusResponse {
    let embedder = match &s.embedder {
        Ok(e) => pb::Embedder {
            model: e.model.clone(),
            dims: s.dims,
            engine: e.engine.clone(),
            base_url: e.base_url.clone(),
            note: String::new(),
            cloud: e.cloud,
        },
        Err(why) => pb::Embedder {
            note: why.clone(),
            ..Default::default()
        },
    };
    pb::StatusResponse {
        embedder: Some(embedder),
        jobs: s
            .jobs
            .iter()
            .map(|(st, jobs, done, total)| pb::JobCount {
                status: st.as_str().into(),
                jobs: *jobs,
                chunks_embedded: *done,
                total_chunks: *total,
            })
            .collect(),
        indexes: s
            .kinds
            .iter()
            .map(|k| {
                let serving = k.serving.as_ref();
                let building = k.building.as_ref();
                pb::IndexStatus {
                    source_type: k.kind.as_str().into(),
                    items: k.items,
                    vectors: serving.map_or(0, |i| i.vectors),
                    table: serving.map_or(String::new(), |i| i.table.clone()),
                    model: serving.map_or(String::new(), |i| i.model.clone()),
                    dims: serving.map_or(0, |i| i.dims),
                    generation: serving.map_or(0, |i| u64::from(i.generation)),
                    building_table: building.map_or(String::new(), |i| i.table.clone()),
                    building_vectors: building.map_or(0, |i| i.vectors),
                }
            })
            .collect(),
        oldest_unindexed_ms: s.oldest_unindexed_ms,
        oldest_unembedded_ms: s.oldest_unembedded_ms,
        size_bytes: s.size_bytes,
        last_error: s.last_error.unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl pb::memory_server::Memory for MemoryService {
    async fn search(
        &self,
        req: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, tonic::Status> {
        let r = req.into_inner();
        let q = Query {
            text: r.query,
            kinds: kinds(&r.types)?,
            since_ms: time(r.since_ms, &r.since)?,
            until_ms: time(r.until_ms, &r.until)?,
            app: r.app,
            k: r.k as usize,
            mode: r
                .mode
                .parse::<Mode>()
                .map_err(tonic::Status::invalid_argument)?,
            collection: r.collection,
        };
        Ok(Response::new(found(self.memory.search(q).await?)))
    }

    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, tonic::Status> {
        Ok(Response::new(status(self.memory.status().await?)))
    }

    async fn forget(
        &self,
        req: Request<pb::ForgetRequest>,
    ) -> Result<Response<pb::ForgetResponse>, tonic::Status> {
        let r = req.into_inner();
        let what = if r.source_ids.is_empty() {
            Forget::Range {
                since_ms: time(r.since_ms, &r.since)?,
                until_ms: time(r.until_ms, &r.until)?,
                app: r.app,
            }
        } else {
            Forget::Sources {
                ids: r.source_ids,
                collection: (!r.collection.is_empty()).then_some(r.collection),
            }
        };
        let f = self.memory.forget(what).await?;
        Ok(Response::new(pb::ForgetResponse {
            sources: f.sources,
            items: f.items,
        }))
    }

    async fn reindex(
        &self,
        req: Request<pb::ReindexRequest>,
    ) -> Result<Response<pb::ReindexResponse>, tonic::Status> {
        let kinds = kinds(&req.into_inner().types)?;
        Ok(Response::new(pb::ReindexResponse {
            items: self.memory.reindex(kinds).await?,
        }))
    }

    async fn import(
        &self,
        req: Request<pb::ImportRequest>,
    ) -> Result<Response<pb::ImportResponse>, tonic::Status> {
        let r = req.into_inner();
        let kind = r.r#type.parse().map_err(tonic::Status::invalid_argument)?;
        let done = self
            .memory
            .import(kind, r.collection, r.lines, r.first_line)
            .await?;
        Ok(Response::new(pb::ImportResponse {
            imported: done.imported,
            unchanged: done.unchanged,
            chunks: done.chunks,
            errors: done.errors,
        }))
    }
}
