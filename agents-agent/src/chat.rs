//! `cowork.chat.v1.Chat`: threads and messages in cowork.db, the complexity
//! router, Layer 1 activity context, and answers streamed from a local
//! engine as typed chunks.

use crate::chat_store::{self as store, MessageRow};
use crate::client::{stream_chat, ChatMessage, ChatTarget, Transport};
use crate::config::{parse_preference, AgentsConfig};
use crate::db::Db;
use crate::engines::{ApiFamily, Health};
use crate::providers::{self, ReadyProvider};
use crate::router::{self, Refusal, Request as RouteRequest, Target, Tier};
use crate::usage::UsageEntry;
use crate::watch::{EngineWatch, LocalEngine};
use cowork_proto::pb::chat::{
    chat_chunk::Chunk, chat_server, ChatChunk, ChatError, Finish, GetStatusRequest,
    GetStatusResponse, GetThreadRequest, GetThreadResponse, GetUsageRequest, GetUsageResponse,
    ListThreadsRequest, ListThreadsResponse, Message, RouteDecision, SendMessageRequest,
    SetProviderKeyRequest, SetProviderKeyResponse, TextDelta, Thread, Usage,
};
use std::path::PathBuf;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

/// Longest message accepted.
pub const MAX_MESSAGE: usize = 256 * 1024;

/// The Chat service.
#[derive(Debug, Clone)]
pub struct ChatService {
    config: PathBuf,
    /// What can answer (shared with the background detection).
    watch: EngineWatch,
    /// agents-agent's one connection to cowork.db.
    db: Db,
    /// The TLS client cloud calls share, built on first use.
    cloud_client: std::sync::Arc<std::sync::OnceLock<Result<reqwest::Client, String>>>,
}

impl ChatService {
    /// Serve chat over cowork.db at `db`, configured by `config`, answering
    /// with what `watch` finds.
    pub fn new(db: Db, config: PathBuf, watch: EngineWatch) -> Self {
        Self {
            db,
            config,
            watch,
            cloud_client: Default::default(),
        }
    }

    fn cloud_client(&self) -> Result<reqwest::Client, String> {
        self.cloud_client
            .get_or_init(crate::client::cloud_client)
            .clone()
    }

    /// The model an agent operation uses: the local engine when one is
    /// up, else the plan's cloud tier when its provider has a key.
    /// Returns the target and the cloud tier it bills to (None: local).
    pub async fn agent_target(&self) -> Result<(ChatTarget, Option<Tier>), String> {
        let detected = self.watch.current().await;
        if let Some(local) = &detected.main {
            let t = self.target(&Target::Local(String::new()), Some(local), &detected.cloud)?;
            return Ok((t, None));
        }
        let cfg = AgentsConfig::load(&self.config)?;
        let tier = match cfg.plan()? {
            router::Plan::Free => Tier::Free,
            router::Plan::Paid(t) => t,
        };
        if detected.cloud.is_empty() {
            return Err(Refusal::NoEngine.to_string());
        }
        let t = self.target(&Target::Cloud(tier), None, &detected.cloud)?;
        Ok((t, Some(tier)))
    }

    /// Where a routed request goes: the local engine, or the tier's cloud
    /// provider.
    fn target(
        &self,
        decision: &Target,
        local: Option<&LocalEngine>,
        cloud: &[ReadyProvider],
    ) -> Result<ChatTarget, String> {
        match decision {
            Target::Local(_) => {
                let e = local.ok_or(crate::watch::NO_ENGINE)?;
                Ok(ChatTarget {
                    name: e.key.clone(),
                    base_url: e.base_url.clone(),
                    api: e.api,
                    model: e.model.clone(),
                    transport: Transport::Local,
                })
            }
            Target::Cloud(t) => {
                let (provider, model) = providers::for_tier(*t);
                let ready = cloud
                    .iter()
                    .find(|r| r.provider == provider)
                    .ok_or_else(|| Refusal::CloudNotSetUp(*t).to_string())?;
                Ok(ChatTarget {
                    name: provider.id.to_owned(),
                    base_url: ready.base_url.clone(),
                    api: ApiFamily::OpenAi,
                    model: model.to_owned(),
                    transport: Transport::Cloud {
                        client: self.cloud_client()?,
                        api_key: ready.api_key.clone(),
                    },
                })
            }
        }
    }
}

fn tier_of(model_id: &str) -> Option<Tier> {
    [Tier::Free, Tier::Boost, Tier::Pro, Tier::Max]
        .into_iter()
        .find(|t| t.model_id() == model_id)
}

fn chunk(c: Chunk) -> Result<ChatChunk, Status> {
    Ok(ChatChunk { chunk: Some(c) })
}

type ChunkTx = mpsc::Sender<Result<ChatChunk, Status>>;

impl ChatService {
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Status> {
        Ok(self.db.run(f).await?)
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
        let detected = self.watch.current().await;
        let local = if req.background {
            detected.background.clone()
        } else {
            detected.main.clone()
        };
        let mut policy = cfg.policy().map_err(Status::failed_precondition)?;
        if !req.preference.is_empty() {
            policy.preference = parse_preference(&req.preference)
                .map_err(|e| Status::invalid_argument(format!("preference {e}")))?;
        }
        policy.local_model = local.as_ref().map(|l| format!("{}/{}", l.engine, l.model));
        policy.cloud_tiers = [Tier::Free, Tier::Boost, Tier::Pro, Tier::Max]
            .into_iter()
            .filter(|t| {
                let (p, _) = providers::for_tier(*t);
                detected.cloud.iter().any(|r| r.provider == p)
            })
            .collect();
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
        let target = match &decision.refusal {
            Some(r) => Err(r.to_string()),
            None => self.target(&decision.target, local.as_ref(), &detected.cloud),
        };
        let _ = out
            .send(chunk(Chunk::Route(RouteDecision {
                model: model_id.clone(),
                reason: decision.reason.clone(),
                notice: decision.notice.clone().unwrap_or_default(),
                cost_estimate_usd: decision.cost_estimate,
                thread_id: thread_id.clone(),
                message_id: message_id.clone(),
                ask_id: ask_id.clone(),
                engine: target.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
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
        let result = match target {
            Err(e) => Err(e),
            Ok(target) => {
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
                let prompt_estimate =
                    messages.iter().map(|m| m.content.len() as u64).sum::<u64>() / 4;
                let mut answer_usage = None;
                let r = self
                    .relay(
                        &target,
                        &messages,
                        cfg.max_output_tokens,
                        &out,
                        (&mut answer, &mut answer_usage),
                    )
                    .await;
                // The ledger: what the call used (the engine's count, else
                // an estimate of 4 characters per token), and what it cost.
                let (tokens_in, tokens_out) = answer_usage
                    .take()
                    .unwrap_or((prompt_estimate, answer.content.len() as u64 / 4));
                let tier = match &decision.target {
                    Target::Local(_) => None,
                    Target::Cloud(t) => Some(*t),
                };
                let entry = UsageEntry {
                    at_ms: store::now_ms(),
                    ask_id: answer.ask_id.clone(),
                    model: answer.model.clone(),
                    tier: tier.map_or("local", Tier::name).to_owned(),
                    tokens_in,
                    tokens_out,
                    cost_usd: tier.map_or(0.0, |t| router::actual_cost(t, tokens_in, tokens_out)),
                };
                if tokens_in + tokens_out > 0 {
                    self.blocking(move |c| crate::usage::record(c, &entry))
                        .await?;
                }
                r
            }
        };
        if let Err(e) = result {
            if matches!(decision.target, Target::Local(_)) {
                self.watch.forget();
            }
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
        target: &ChatTarget,
        messages: &[ChatMessage],
        max_tokens: Option<u32>,
        out: &ChunkTx,
        (answer, usage): (&mut MessageRow, &mut Option<(u64, u64)>),
    ) -> Result<(), String> {
        let (tx, mut rx) = mpsc::channel(64);
        let (target, msgs) = (target.clone(), messages.to_vec());
        let target_name = target.name.clone();
        // The sender lives in the call: when it ends, the receiver drains
        // and closes.
        let call = async move { stream_chat(&target, &msgs, max_tokens, &tx).await };
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
                                tracing::info!(engine = %target_name, "the client went away; cancelling the answer");
                                return Err("the client went away".into());
                            }
                        }
                        if let Some((p, c)) = d.usage {
                            *usage = Some((p, c));
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
        let instances = cfg.instances();
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

    async fn get_usage(
        &self,
        _: Request<GetUsageRequest>,
    ) -> Result<Response<GetUsageResponse>, Status> {
        let cfg = AgentsConfig::load(&self.config).map_err(Status::failed_precondition)?;
        let policy = cfg.policy().map_err(Status::failed_precondition)?;
        let cloud = cfg.cloud_here().map_err(Status::failed_precondition)?;
        let now = store::now_ms();
        let (usage, calls) = self
            .blocking(move |c| {
                let (_, _, month) = crate::usage::period_starts(now);
                Ok((
                    crate::usage::usage_at(c, now, None)?,
                    crate::usage::calls_since(c, month)?,
                ))
            })
            .await?;
        Ok(Response::new(GetUsageResponse {
            plan: cfg.plan.clone(),
            free_tokens_this_month: usage.free_tokens_this_month,
            free_monthly_tokens: policy.free_monthly_tokens,
            spent_today_usd: usage.spent_today,
            spent_this_week_usd: usage.spent_this_week,
            spent_this_month_usd: usage.spent_this_month,
            cap_per_interaction_usd: policy.caps.per_interaction,
            cap_daily_usd: policy.caps.daily,
            cap_weekly_usd: policy.caps.weekly,
            cap_monthly_usd: policy.caps.monthly,
            calls_this_month: calls,
            cloud_providers: cloud.iter().map(|r| r.provider.id.to_owned()).collect(),
        }))
    }

    async fn set_provider_key(
        &self,
        req: Request<SetProviderKeyRequest>,
    ) -> Result<Response<SetProviderKeyResponse>, Status> {
        let r = req.into_inner();
        if providers::provider(&r.provider).is_none() {
            return Err(Status::invalid_argument(format!(
                "unknown provider {:?}; known: gemini, openrouter",
                r.provider
            )));
        }
        let key = r.api_key.trim().to_owned();
        if key.chars().any(|c| c.is_control() || c == ' ') {
            return Err(Status::invalid_argument(
                "the key contains spaces or control characters",
            ));
        }
        let name = crate::config::provider_secret(&r.provider);
        let stored = tokio::task::spawn_blocking(move || {
            if key.is_empty() {
                crate::secrets::delete(&name)
            } else {
                crate::secrets::put(&name, &key)
            }
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        stored.map_err(|e| Status::unavailable(e.to_string()))?;
        let detected = self.watch.refresh().await;
        Ok(Response::new(SetProviderKeyResponse {
            cloud_providers: detected
                .cloud
                .iter()
                .map(|p| p.provider.id.to_owned())
                .collect(),
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
