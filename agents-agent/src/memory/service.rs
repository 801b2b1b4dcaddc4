//! `cowork.memory.v1.Memory`: a thin adapter to [`Memory`].

use super::assemble::Card;
use super::item::Kind;
use super::profile::Entry;
use super::recall::{Found, Mode, Query};
use super::store::Pinned;
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
            MemoryError::NotFound(m) => tonic::Status::not_found(m),
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

fn profile_pb(entries: Vec<Entry>) -> Vec<pb::ProfileEntry> {
    entries
        .into_iter()
        .map(|e| pb::ProfileEntry {
            key: e.key,
            value: e.value,
            origin: e.origin.as_str().into(),
            updated_unix_ms: e.updated_ms,
        })
        .collect()
}

fn pins_pb(pins: Vec<Pinned>) -> Vec<pb::Pin> {
    pins.into_iter()
        .map(|p| {
            let first = p.items.first();
            pb::Pin {
                source_type: first.map(|i| i.kind.as_str().into()).unwrap_or_default(),
                time_unix_ms: first.map_or(0, |i| i.time_ms),
                snippet: first
                    .map(|i| super::chunk::truncate(i.text.trim(), 160).to_owned())
                    .unwrap_or_default(),
                source_id: p.source_id,
                pinned_unix_ms: p.pinned_ms,
            }
        })
        .collect()
}

fn card_pb(c: Card) -> pb::ContextCard {
    let mut out = pb::ContextCard {
        active_window: c.active_window,
        recent_activity: c.recent_activity,
        working_memory: profile_pb(c.profile),
        pins: pins_pb(c.pins),
        ..Default::default()
    };
    if let Some(a) = c.assembled {
        out.layers = a
            .block
            .layers()
            .into_iter()
            .map(|(l, tokens, pieces)| pb::ContextLayer {
                name: l.as_str().into(),
                tokens,
                pieces,
            })
            .collect();
        out.citations = a.block.citations().into_iter().map(Into::into).collect();
        out.context_tokens = a.block.tokens();
        out.budget_tokens = a.budget;
        out.refusal = a.refusal.is_some();
        out.refusal_reason = a.refusal.map(|r| r.reason()).unwrap_or_default();
        out.text = a.block.text.unwrap_or_default();
        out.note = a.note;
        out.best_similarity = a.best_similarity;
        out.relevance_floor = a.floor;
        out.unknown_names = a.unknown;
        out.relevant_sources = a.relevant as u32;
    }
    out
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
        observer: Some(pb::Observer {
            observations: s.observer.observations,
            reflections: s.observer.reflections,
            superseded: s.observer.superseded,
            unobserved_tokens: s.observer.unobserved_tokens,
            observe_tokens: s.observer.observe_tokens,
            last_run_unix_ms: s.observer.last_run.as_ref().map(|r| r.0),
            last_error: s.observer.last_run.map(|r| r.1).unwrap_or_default(),
        }),
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

    async fn get_profile(
        &self,
        _: Request<pb::GetProfileRequest>,
    ) -> Result<Response<pb::Profile>, tonic::Status> {
        Ok(Response::new(pb::Profile {
            entries: profile_pb(self.memory.profile().await?),
        }))
    }

    async fn set_profile(
        &self,
        req: Request<pb::SetProfileRequest>,
    ) -> Result<Response<pb::Profile>, tonic::Status> {
        let r = req.into_inner();
        Ok(Response::new(pb::Profile {
            entries: profile_pb(self.memory.set_profile(&r.key, &r.value).await?),
        }))
    }

    async fn unset_profile(
        &self,
        req: Request<pb::UnsetProfileRequest>,
    ) -> Result<Response<pb::Profile>, tonic::Status> {
        let key = req.into_inner().key;
        Ok(Response::new(pb::Profile {
            entries: profile_pb(self.memory.unset_profile(Some(&key)).await?),
        }))
    }

    async fn clear_profile(
        &self,
        _: Request<pb::ClearProfileRequest>,
    ) -> Result<Response<pb::Profile>, tonic::Status> {
        Ok(Response::new(pb::Profile {
            entries: profile_pb(self.memory.unset_profile(None).await?),
        }))
    }

    async fn pin(&self, req: Request<pb::PinRequest>) -> Result<Response<pb::Pins>, tonic::Status> {
        Ok(Response::new(pb::Pins {
            pins: pins_pb(self.memory.pin(&req.into_inner().source_id).await?),
        }))
    }

    async fn unpin(
        &self,
        req: Request<pb::UnpinRequest>,
    ) -> Result<Response<pb::Pins>, tonic::Status> {
        Ok(Response::new(pb::Pins {
            pins: pins_pb(self.memory.unpin(&req.into_inner().source_id).await?),
        }))
    }

    async fn list_pins(
        &self,
        _: Request<pb::ListPinsRequest>,
    ) -> Result<Response<pb::Pins>, tonic::Status> {
        Ok(Response::new(pb::Pins {
            pins: pins_pb(self.memory.pins().await?),
        }))
    }

    async fn get_context(
        &self,
        req: Request<pb::GetContextRequest>,
    ) -> Result<Response<pb::ContextCard>, tonic::Status> {
        let r = req.into_inner();
        if r.query.chars().count() > super::recall::MAX_QUERY {
            return Err(tonic::Status::invalid_argument(format!(
                "the query is over {} characters",
                super::recall::MAX_QUERY
            )));
        }
        let card = self.memory.card(&r.query, r.grounded, &r.thread_id).await?;
        Ok(Response::new(card_pb(card)))
    }
}
