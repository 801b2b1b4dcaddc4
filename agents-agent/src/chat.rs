//! `cowork.chat.v1.Chat`: threads and messages in cowork.db, the complexity
//! router, Layer 1 activity context, and answers streamed from a local
//! engine as typed chunks.

use crate::chat_store::{self as store, MessageRow};
use crate::client::{stream_chat, ChatMessage};
use crate::config::AgentsConfig;
use crate::engines::{candidates, ApiFamily, Health, Role};
use crate::router::{self, Policy, Preference, Request as RouteRequest, Target, Tier};
use cowork_proto::pb::chat::{
    chat_chunk::Chunk, chat_server, ChatChunk, ChatError, Finish, GetStatusRequest,
    GetStatusResponse, GetThreadRequest, GetThreadResponse, ListThreadsRequest,
    ListThreadsResponse, Message, RouteDecision, SendMessageRequest, TextDelta, Thread, Usage,
};
use std::path::PathBuf;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

/// Longest message accepted.
pub const MAX_MESSAGE: usize = 256 * 1024;

/// The Chat service.
#[derive(Debug, Clone)]
pub struct ChatService {
    db: PathBuf,
    config: PathBuf,
    /// The engine found last, reused for [`DETECTION_TTL`] so a message
    /// does not pay for probing every engine.
    found: std::sync::Arc<std::sync::Mutex<Option<(std::time::Instant, LocalEngine)>>>,
    /// agents-agent's one connection to cowork.db, opened on first use.
    conn: std::sync::Arc<std::sync::Mutex<Option<rusqlite::Connection>>>,
}

/// How long a detected engine is used before it is re-detected in the
/// background (an engine error forgets it at once).
pub const DETECTION_TTL: std::time::Duration = std::time::Duration::from_secs(10);

impl ChatService {
    /// Serve chat over cowork.db at `db`, configured by `config`.
    pub fn new(db: PathBuf, config: PathBuf) -> Self {
        Self {
            db,
            config,
            found: Default::default(),
            conn: Default::default(),
        }
    }

    async fn local_engine(&self, cfg: &AgentsConfig) -> Option<LocalEngine> {
        let cached = self.found.lock().ok().and_then(|g| g.clone());
        if let Some((at, e)) = cached {
            if at.elapsed() >= DETECTION_TTL {
                // Serve the known engine now and re-detect in the
                // background, so no message waits for probes.
                let (me, cfg) = (self.clone(), cfg.clone());
                tokio::spawn(async move {
                    let found = find_local(&cfg).await;
                    me.remember(found);
                });
            }
            return Some(e);
        }
        let found = find_local(cfg).await;
        self.remember(found.clone());
        found
    }

    fn remember(&self, found: Option<LocalEngine>) {
        if let Ok(mut g) = self.found.lock() {
            *g = found.map(|e| (std::time::Instant::now(), e));
        }
    }

    fn forget_engine(&self) {
        if let Ok(mut g) = self.found.lock() {
            *g = None;
        }
    }
}

/// A local engine that answered, with the model to use.
#[derive(Debug, Clone)]
struct LocalEngine {
    base_url: String,
    api: ApiFamily,
    engine: String,
    model: String,
}

async fn find_local(cfg: &AgentsConfig) -> Option<LocalEngine> {
    let instances = candidates(&cfg.configured(), cfg.probe_ports, &cfg.overrides());
    let probed = crate::probe::probe_all(instances).await;
    probed
        .into_iter()
        .find(|p| p.health == Health::Up && p.instance.role == Role::Main && !p.models.is_empty())
        .map(|p| LocalEngine {
            base_url: p.instance.base_url,
            api: p.instance.api,
            engine: p.instance.engine,
            model: p.models[0].clone(),
        })
}

fn tier_of(model_id: &str) -> Option<Tier> {
    [Tier::Free, Tier::Boost, Tier::Pro, Tier::Max]
        .into_iter()
        .find(|t| t.model_id() == model_id)
}

fn chunk(c: Chunk) -> Result<ChatChunk, Status> {
    Ok(ChatChunk { chunk: Some(c) })
}

fn db_err(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("cowork.db: {e}"))
}

type ChunkTx = mpsc::Sender<Result<ChatChunk, Status>>;

impl ChatService {
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        let db = self.db.clone();
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            if guard.is_none() {
                *guard = Some(store::open(&db)?);
            }
            match guard.as_ref() {
                Some(c) => f(c),
                None => Err(rusqlite::Error::InvalidQuery),
            }
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(db_err)
    }

    async fn answer(&self, req: SendMessageRequest, out: ChunkTx) -> Result<(), Status> {
        let cfg = AgentsConfig::load(&self.config).map_err(Status::failed_precondition)?;
        let text = req.text.clone();
        let retry_of = req.retry_of_message_id.clone();
        let thread_id = req.thread_id.clone();
        // Thread, ask and the message being retried.
        let (thread_id, ask_id, retried, history) = self
            .blocking(move |c| {
                let retried = if retry_of.is_empty() {
                    None
                } else {
                    store::get_message(c, &retry_of)?
                };
                let thread_id = match (&retried, thread_id.is_empty()) {
                    (Some(m), _) => m.thread_id.clone(),
                    (None, true) => store::create_thread(c, &text)?,
                    (None, false) => thread_id,
                };
                let exists = store::thread_exists(c, &thread_id)?;
                let ask_id = retried
                    .as_ref()
                    .map(|m| m.ask_id.clone())
                    .unwrap_or_else(|| store::new_id("ask"));
                let history = if exists {
                    store::messages(c, &thread_id)?
                } else {
                    Vec::new()
                };
                Ok((thread_id, ask_id, retried, (exists, history)))
            })
            .await?;
        let (exists, mut history) = history;
        if !exists {
            return Err(Status::not_found(format!("no thread {thread_id}")));
        }
        if !req.retry_of_message_id.is_empty()
            && retried.as_ref().is_none_or(|m| m.role != "assistant")
        {
            return Err(Status::not_found(format!(
                "no assistant message {} to retry",
                req.retry_of_message_id
            )));
        }
        let question = match &retried {
            // Retry: answer the same question again (the user message
            // before the retried answer).
            Some(m) => {
                let pos = history
                    .iter()
                    .position(|h| h.id == m.id)
                    .unwrap_or(history.len());
                history.truncate(pos);
                history
                    .iter()
                    .rev()
                    .find(|h| h.role == "user")
                    .map(|h| h.content.clone())
                    .unwrap_or_default()
            }
            None => {
                let user = MessageRow {
                    id: store::new_id("m"),
                    thread_id: thread_id.clone(),
                    role: "user".into(),
                    content: req.text.clone(),
                    model: String::new(),
                    ask_id: ask_id.clone(),
                    created_ms: store::now_ms(),
                    finish_reason: String::new(),
                };
                let u = user.clone();
                self.blocking(move |c| store::put_message(c, &u)).await?;
                history.push(user);
                req.text.clone()
            }
        };
        let local = self.local_engine(&cfg).await;
        let preference = match req.preference.as_str() {
            "cloud" => Preference::Cloud,
            "local" | "" => Preference::Local,
            other => {
                return Err(Status::invalid_argument(format!(
                    "preference must be local or cloud, not {other:?}"
                )))
            }
        };
        let policy = Policy {
            preference,
            local_model: local.as_ref().map(|l| format!("{}/{}", l.engine, l.model)),
            ..Policy::default()
        };
        let context = self
            .blocking(|c| Ok(store::activity_context(c, 8)))
            .await
            .unwrap_or(None);
        let tokens = history.iter().map(|m| m.content.len() as u64).sum::<u64>() / 4
            + context.as_ref().map_or(0, |c| c.len() as u64 / 4);
        let retry_target = retried.as_ref().map(|m| match tier_of(&m.model) {
            Some(t) => Target::Cloud(t),
            None => Target::Local(m.model.clone()),
        });
        let ask = ask_id.clone();
        let usage = self
            .blocking(move |c| crate::usage::usage_at(c, store::now_ms(), Some(&ask)))
            .await?;
        let decision = router::route(
            &policy,
            &RouteRequest {
                tokens,
                attachments: req.attachments,
                tools: req.tools,
                retry_of: retry_target,
            },
            &usage,
        );
        let message_id = store::new_id("m");
        let model_id = decision.target.model_id().to_owned();
        let _ = out
            .send(chunk(Chunk::Route(RouteDecision {
                model: model_id.clone(),
                reason: decision.reason.clone(),
                notice: decision.notice.clone().unwrap_or_default(),
                cost_estimate_usd: decision.cost_estimate,
                thread_id: thread_id.clone(),
                message_id: message_id.clone(),
                ask_id: ask_id.clone(),
            })))
            .await;
        let mut answer = MessageRow {
            id: message_id,
            thread_id,
            role: "assistant".into(),
            content: String::new(),
            model: model_id,
            ask_id,
            created_ms: store::now_ms(),
            finish_reason: String::new(),
        };
        let result = match (&decision.refusal, &decision.target, &local) {
            (Some(r), _, _) => Err(r.to_string()),
            (None, Target::Cloud(t), _) => Err(format!(
                "the router chose the cloud ({}: {}), but cloud providers are not connected in \
                 this build yet; run a local engine (see `coworkctl engines`)",
                t.name(),
                decision.reason
            )),
            (None, Target::Local(_), None) => Err("no model engine reachable".into()),
            (None, Target::Local(_), Some(engine)) => {
                let mut messages = Vec::new();
                if let Some(ctx) = &context {
                    messages.push(ChatMessage {
                        role: "system".into(),
                        content: ctx.clone(),
                    });
                }
                for m in &history {
                    if m.content.is_empty() || m.finish_reason == "error" {
                        continue;
                    }
                    messages.push(ChatMessage {
                        role: m.role.clone(),
                        content: m.content.clone(),
                    });
                }
                if retried.is_some() && messages.last().is_none_or(|m| m.role != "user") {
                    messages.push(ChatMessage {
                        role: "user".into(),
                        content: question,
                    });
                }
                self.relay(engine, &messages, cfg.max_output_tokens, &out, &mut answer)
                    .await
            }
        };
        if let Err(e) = result {
            self.forget_engine();
            answer.finish_reason = "error".into();
            let _ = out
                .send(chunk(Chunk::Error(ChatError { message: e })))
                .await;
        }
        let a = answer;
        self.blocking(move |c| store::put_message(c, &a)).await?;
        Ok(())
    }

    async fn relay(
        &self,
        engine: &LocalEngine,
        messages: &[ChatMessage],
        max_tokens: Option<u32>,
        out: &ChunkTx,
        answer: &mut MessageRow,
    ) -> Result<(), String> {
        let (tx, mut rx) = mpsc::channel(64);
        let (base, api, model, msgs) = (
            engine.base_url.clone(),
            engine.api,
            engine.model.clone(),
            messages.to_vec(),
        );
        // The sender lives in the call: when it ends, the receiver drains
        // and closes.
        let call = async move { stream_chat(&base, api, &model, &msgs, max_tokens, &tx).await };
        tokio::pin!(call);
        let mut result = None;
        loop {
            tokio::select! {
                r = &mut call, if result.is_none() => { result = Some(r); }
                d = rx.recv() => match d {
                    Some(d) => {
                        if !d.text.is_empty() {
                            answer.content.push_str(&d.text);
                            if out.send(chunk(Chunk::Delta(TextDelta { text: d.text }))).await.is_err() {
                                // The client went away: dropping the call cancels the engine.
                                return Err("the client went away".into());
                            }
                        }
                        if let Some((p, c)) = d.usage {
                            let _ = out.send(chunk(Chunk::Usage(Usage { prompt_tokens: p, completion_tokens: c }))).await;
                        }
                        if let Some(f) = d.finish_reason {
                            answer.finish_reason = f;
                        }
                    }
                    None => break,
                },
            }
        }
        match result {
            Some(Ok(())) | None => {
                if answer.finish_reason.is_empty() {
                    answer.finish_reason = "stop".into();
                }
                let _ = out
                    .send(chunk(Chunk::Finish(Finish {
                        reason: answer.finish_reason.clone(),
                    })))
                    .await;
                Ok(())
            }
            Some(Err(e)) => Err(e),
        }
    }
}

fn thread_pb(t: store::ThreadRow) -> Thread {
    Thread {
        id: t.id,
        title: t.title,
        created_unix_ms: t.created_ms,
        updated_unix_ms: t.updated_ms,
        message_count: t.message_count,
    }
}

#[tonic::async_trait]
impl chat_server::Chat for ChatService {
    async fn get_status(
        &self,
        _: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        let cfg = AgentsConfig::load(&self.config).map_err(Status::failed_precondition)?;
        let instances = candidates(&cfg.configured(), cfg.probe_ports, &cfg.overrides());
        let up = crate::probe::probe_all(instances)
            .await
            .into_iter()
            .filter(|p| p.health == Health::Up)
            .map(|p| p.instance.key)
            .collect();
        Ok(Response::new(GetStatusResponse {
            pid: std::process::id(),
            engines: up,
        }))
    }

    type SendMessageStream = tokio_stream::wrappers::ReceiverStream<Result<ChatChunk, Status>>;

    async fn send_message(
        &self,
        req: Request<SendMessageRequest>,
    ) -> Result<Response<Self::SendMessageStream>, Status> {
        let req = req.into_inner();
        if req.retry_of_message_id.is_empty() && req.text.trim().is_empty() {
            return Err(Status::invalid_argument("the message is empty"));
        }
        if req.text.len() > MAX_MESSAGE {
            return Err(Status::invalid_argument(format!(
                "the message is {} bytes, over the {MAX_MESSAGE}-byte limit",
                req.text.len()
            )));
        }
        let (tx, rx) = mpsc::channel(64);
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(s) = me.answer(req, tx.clone()).await {
                let _ = tx.send(Err(s)).await;
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn list_threads(
        &self,
        req: Request<ListThreadsRequest>,
    ) -> Result<Response<ListThreadsResponse>, Status> {
        let limit = match req.into_inner().limit {
            0 => 50,
            n => n.min(1000),
        };
        let threads = self.blocking(move |c| store::threads(c, limit)).await?;
        Ok(Response::new(ListThreadsResponse {
            threads: threads.into_iter().map(thread_pb).collect(),
        }))
    }

    async fn get_thread(
        &self,
        req: Request<GetThreadRequest>,
    ) -> Result<Response<GetThreadResponse>, Status> {
        let id = req.into_inner().thread_id;
        let id2 = id.clone();
        let (thread, messages) = self
            .blocking(move |c| Ok((store::thread(c, &id2)?, store::messages(c, &id2)?)))
            .await?;
        let thread = thread.ok_or_else(|| Status::not_found(format!("no thread {id}")))?;
        Ok(Response::new(GetThreadResponse {
            thread: Some(thread_pb(thread)),
            messages: messages
                .into_iter()
                .map(|m| Message {
                    id: m.id,
                    role: m.role,
                    content: m.content,
                    model: m.model,
                    ask_id: m.ask_id,
                    created_unix_ms: m.created_ms,
                    finish_reason: m.finish_reason,
                })
                .collect(),
        }))
    }
}
