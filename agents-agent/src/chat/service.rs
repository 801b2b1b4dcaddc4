//! `cowork.chat.v1.Chat`: a thin adapter from the proto to [`Chat`].

use super::store::{MessageRow, ThreadRow};
use super::{Ask, Chat, ChatError, Citation, Event};
use cowork_proto::pb::chat::{
    chat_chunk::Chunk, chat_server, ChatChunk, ChatError as ErrorChunk, Citations, Finish,
    GetStatusRequest, GetStatusResponse, GetThreadRequest, GetThreadResponse, GetUsageRequest,
    GetUsageResponse, ListThreadsRequest, ListThreadsResponse, Message, RouteDecision,
    SendMessageRequest, SetProviderKeyRequest, SetProviderKeyResponse, TextDelta, Thread, Usage,
};
use std::pin::Pin;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

/// The Chat service.
#[derive(Debug, Clone)]
pub struct ChatService {
    chat: Chat,
}

impl ChatService {
    /// Serve `chat`.
    pub fn new(chat: Chat) -> Self {
        Self { chat }
    }
}

impl From<ChatError> for Status {
    fn from(e: ChatError) -> Self {
        let msg = e.to_string();
        match e {
            ChatError::Invalid(_) => Status::invalid_argument(msg),
            ChatError::NotFound(_) => Status::not_found(msg),
            ChatError::Config(_) => Status::failed_precondition(msg),
            ChatError::Secrets(_) => Status::unavailable(msg),
            ChatError::Db(_) | ChatError::Task(_) => Status::internal(msg),
            ChatError::Memory(_) => Status::unavailable(msg),
        }
    }
}

fn chunk(e: Event) -> ChatChunk {
    let c = match e {
        Event::Route(r) => Chunk::Route(RouteDecision {
            model: r.model,
            reason: r.reason,
            notice: r.notice,
            cost_estimate_usd: r.cost_estimate_usd,
            thread_id: r.thread_id,
            message_id: r.message_id,
            ask_id: r.ask_id,
            engine: r.engine,
            reload_ms: r.reload_ms,
        }),
        Event::Citations(c) => Chunk::Citations(Citations {
            citations: c.into_iter().map(Into::into).collect(),
        }),
        Event::Delta(text) => Chunk::Delta(TextDelta { text }),
        Event::Usage(prompt_tokens, completion_tokens) => Chunk::Usage(Usage {
            prompt_tokens,
            completion_tokens,
        }),
        Event::Finish(reason) => Chunk::Finish(Finish { reason }),
        Event::Error(message) => Chunk::Error(ErrorChunk { message }),
    };
    ChatChunk { chunk: Some(c) }
}

fn thread_pb(t: ThreadRow) -> Thread {
    Thread {
        id: t.id,
        title: t.title,
        created_unix_ms: t.created_ms,
        updated_unix_ms: t.updated_ms,
        message_count: t.message_count,
        app_id: t.app_id,
    }
}

impl From<Citation> for cowork_proto::pb::memory::Citation {
    fn from(c: Citation) -> Self {
        Self {
            source_type: c.source_type,
            source_id: c.source_id,
            time_unix_ms: c.time_ms,
            snippet: c.snippet,
            chunk_id: c.chunk_id,
            layer: c.layer,
        }
    }
}

fn message_pb((m, cites): (MessageRow, Vec<Citation>)) -> Message {
    Message {
        citations: cites.into_iter().map(Into::into).collect(),
        id: m.id,
        role: m.role,
        content: m.content,
        model: m.model,
        ask_id: m.ask_id,
        created_unix_ms: m.created_ms,
        finish_reason: m.finish_reason,
    }
}

#[tonic::async_trait]
impl chat_server::Chat for ChatService {
    async fn get_status(
        &self,
        _: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        Ok(Response::new(GetStatusResponse {
            pid: std::process::id(),
            engines: self.chat.engines_up().await?,
        }))
    }

    type SendMessageStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, Status>> + Send>>;

    async fn send_message(
        &self,
        req: Request<SendMessageRequest>,
    ) -> Result<Response<Self::SendMessageStream>, Status> {
        let r = req.into_inner();
        let events = self.chat.send(Ask {
            thread_id: r.thread_id,
            text: r.text,
            preference: r.preference,
            retry_of_message_id: r.retry_of_message_id,
            attachments: r.attachments,
            tools: r.tools,
            background: r.background,
            grounded: r.grounded,
            app_id: r.app_id,
        })?;
        let chunks = tokio_stream::wrappers::ReceiverStream::new(events)
            .map(|e| e.map(chunk).map_err(Status::from));
        Ok(Response::new(Box::pin(chunks)))
    }

    async fn list_threads(
        &self,
        req: Request<ListThreadsRequest>,
    ) -> Result<Response<ListThreadsResponse>, Status> {
        let threads = self.chat.threads(req.into_inner().limit).await?;
        Ok(Response::new(ListThreadsResponse {
            threads: threads.into_iter().map(thread_pb).collect(),
        }))
    }

    async fn get_usage(
        &self,
        _: Request<GetUsageRequest>,
    ) -> Result<Response<GetUsageResponse>, Status> {
        let u = self.chat.usage().await?;
        Ok(Response::new(GetUsageResponse {
            plan: u.plan,
            free_tokens_this_month: u.usage.free_tokens_this_month,
            free_monthly_tokens: u.policy.free_monthly_tokens,
            spent_today_usd: u.usage.spent_today,
            spent_this_week_usd: u.usage.spent_this_week,
            spent_this_month_usd: u.usage.spent_this_month,
            cap_per_interaction_usd: u.policy.caps.per_interaction,
            cap_daily_usd: u.policy.caps.daily,
            cap_weekly_usd: u.policy.caps.weekly,
            cap_monthly_usd: u.policy.caps.monthly,
            calls_this_month: u.calls_this_month,
            cloud_providers: u.cloud_providers,
        }))
    }

    async fn set_provider_key(
        &self,
        req: Request<SetProviderKeyRequest>,
    ) -> Result<Response<SetProviderKeyResponse>, Status> {
        let r = req.into_inner();
        Ok(Response::new(SetProviderKeyResponse {
            cloud_providers: self.chat.set_provider_key(&r.provider, &r.api_key).await?,
        }))
    }

    async fn get_thread(
        &self,
        req: Request<GetThreadRequest>,
    ) -> Result<Response<GetThreadResponse>, Status> {
        let (thread, messages) = self.chat.thread(req.into_inner().thread_id).await?;
        Ok(Response::new(GetThreadResponse {
            thread: Some(thread_pb(thread)),
            messages: messages.into_iter().map(message_pb).collect(),
        }))
    }
}
