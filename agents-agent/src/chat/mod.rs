//! Chat: threads and messages, and answers routed by the complexity
//! router to a local engine or a cloud provider, streamed as typed events.
//! [`answer`] is the answer pipeline (thread → context → route → prompt →
//! stream → ledger), [`store`] the threads and messages tables,
//! [`service`] `cowork.chat.v1.Chat`. This module holds chat's types and
//! the small queries beside the pipeline.

pub mod answer;
pub mod service;
pub mod store;

use crate::config::{provider_secret, AgentsConfig};
use crate::db::{Db, DbError};
use crate::llm::detect::probe_configured;
use crate::llm::engines::Health;
use crate::llm::resolve::Resolver;
use crate::llm::router::{Policy, Usage};
use crate::llm::tier::provider;
use crate::usage::ledger;
use std::path::PathBuf;

/// Longest message accepted.
pub const MAX_MESSAGE: usize = 256 * 1024;

/// What the person sends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ask {
    /// Continue this thread ("" starts one).
    pub thread_id: String,
    /// The message.
    pub text: String,
    /// "local", "cloud" or "" (the configured preference).
    pub preference: String,
    /// Retry this assistant message with the next tier ("" for none).
    pub retry_of_message_id: String,
    /// Attached files or images.
    pub attachments: u32,
    /// Tools offered.
    pub tools: u32,
    /// A background job: to the engine's cron companion when one is up.
    pub background: bool,
    /// A grounded question: answered from memory, refused without a
    /// model call when memory holds nothing relevant.
    pub grounded: bool,
    /// The installed app a new thread belongs to ("" for none).
    pub app_id: String,
}

/// Which apps are installed (the apps domain answers; chat only asks, so
/// a thread never belongs to an app that is not there).
pub trait InstalledApps: Send + Sync {
    /// Whether `id` is an installed app.
    fn is_installed(&self, id: &str) -> bool;
}

/// One source an answer was given (stored with the answer, streamed
/// before its text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Citation {
    /// activity, conversation, observation or document.
    pub source_type: String,
    /// The source's id (what `memory forget` and `memory pin` take).
    pub source_id: String,
    /// When (Unix ms).
    pub time_ms: i64,
    /// The start of the text given.
    pub snippet: String,
    /// The memory item (chunk) given.
    pub chunk_id: i64,
    /// The layer it came from: pinned, recent, search or backfill.
    pub layer: String,
}

/// What memory gives one answer: the context block and its sources, or
/// a refusal made without a model call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grounded {
    /// The memory block for the model (working memory and the assembled
    /// context), None when there is nothing to give.
    pub text: Option<String>,
    /// The same block without keystroke or clipboard text: what a cloud
    /// model gets.
    pub text_for_cloud: Option<String>,
    /// The sources in `text`.
    pub citations: Vec<Citation>,
    /// The sources in `text_for_cloud`.
    pub citations_for_cloud: Vec<Citation>,
    /// A grounded question memory cannot ground: the message shown.
    pub refusal: Option<String>,
    /// The same when a cloud model answers (it never gets typed or
    /// copied text, so it may have nothing where a local model would).
    pub refusal_for_cloud: Option<String>,
}

/// What [`Grounding::ground`] is asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroundingRequest {
    /// The question.
    pub question: String,
    /// Its thread (its earlier answers' citations backfill a follow-up).
    pub thread_id: String,
    /// Apply the refusal checkpoints.
    pub grounded: bool,
}

/// A boxed future (what [`Grounding`] returns).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Memory as chat sees it: what the memory layers give an answer. The
/// memory domain implements it (memory reads chat's tables; chat only
/// knows this trait, so the two do not import each other).
pub trait Grounding: Send + Sync {
    /// The memory context for `req` (an error is logged and the answer
    /// goes on without memory, unless the question is grounded).
    fn ground(&self, req: GroundingRequest) -> BoxFuture<'_, Result<Grounded, String>>;

    /// The question stored as `message_id` was refused: memory must not
    /// keep it (nor ever index it).
    fn refused(&self, message_id: String) -> BoxFuture<'_, Result<(), String>>;
}

/// Where an answer went and why, sent before any text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Route {
    /// The `provider/model` id.
    pub model: String,
    /// The router's reason.
    pub reason: String,
    /// A notice for the person ("" for none).
    pub notice: String,
    /// Estimated cost in USD.
    pub cost_estimate_usd: f64,
    /// The thread.
    pub thread_id: String,
    /// The answer's message id.
    pub message_id: String,
    /// The ask (retry chain).
    pub ask_id: String,
    /// The engine instance or provider answering ("" when none can).
    pub engine: String,
    /// How long the answer waited for its session's server to start
    /// again (it had been unloaded for idleness, or crashed).
    pub reload_ms: Option<u64>,
}

/// One piece of a streamed answer, in order: a route, deltas and usage,
/// then a finish or an error.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The route decision.
    Route(Route),
    /// The sources the answer is given (before its text).
    Citations(Vec<Citation>),
    /// Answer text.
    Delta(String),
    /// Tokens the engine counted (prompt, completion).
    Usage(u64, u64),
    /// The answer is complete, with the engine's finish reason.
    Finish(String),
    /// The answer failed, with why.
    Error(String),
}

/// Why a chat request failed before (or instead of) an answer.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// No such thread or message.
    #[error("{0}")]
    NotFound(String),
    /// `[agents]` in config.toml cannot be used.
    #[error("{0}")]
    Config(String),
    /// The OS credential store refused.
    #[error("{0}")]
    Secrets(String),
    /// cowork.db failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A blocking task died.
    #[error("{0}")]
    Task(String),
    /// Memory could not ground a grounded question.
    #[error("memory could not be searched: {0}")]
    Memory(String),
}

/// A thread with its messages, each with its citations.
pub type ThreadView = (store::ThreadRow, Vec<(store::MessageRow, Vec<Citation>)>);

/// The usage ledger against the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageReport {
    /// The plan's name.
    pub plan: String,
    /// The router's policy (quota and caps).
    pub policy: Policy,
    /// What has been used.
    pub usage: Usage,
    /// Model calls this month.
    pub calls_this_month: u64,
    /// Cloud providers that have a key.
    pub cloud_providers: Vec<String>,
}

/// Chat (cheap to clone).
#[derive(Debug, Clone)]
pub struct Chat {
    config: PathBuf,
    /// agents-agent's cowork.db.
    db: Db,
    /// Which engine or provider answers.
    resolver: Resolver,
    /// The memory layers (None: answers without memory).
    grounding: Option<std::sync::Arc<dyn Grounding>>,
    /// The installed apps (None: no thread may name one).
    apps: Option<std::sync::Arc<dyn InstalledApps>>,
}

impl std::fmt::Debug for dyn InstalledApps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InstalledApps")
    }
}

impl std::fmt::Debug for dyn Grounding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Grounding")
    }
}

impl Chat {
    /// Chat over `db`, configured by `config`, answering through `resolver`.
    pub fn new(db: Db, config: PathBuf, resolver: Resolver) -> Self {
        Self {
            db,
            config,
            resolver,
            grounding: None,
            apps: None,
        }
    }

    /// Chat whose threads may belong to installed apps.
    pub fn with_apps(mut self, apps: std::sync::Arc<dyn InstalledApps>) -> Self {
        self.apps = Some(apps);
        self
    }

    /// Give answers memory's layers.
    pub fn with_grounding(mut self, grounding: std::sync::Arc<dyn Grounding>) -> Self {
        self.grounding = Some(grounding);
        self
    }

    fn config(&self) -> Result<AgentsConfig, ChatError> {
        AgentsConfig::load(&self.config).map_err(ChatError::Config)
    }

    /// The keys of the engine instances that answer probes now.
    pub async fn engines_up(&self) -> Result<Vec<String>, ChatError> {
        Ok(probe_configured(&self.config)
            .await
            .map_err(ChatError::Config)?
            .into_iter()
            .filter(|p| p.health == Health::Up)
            .map(|p| p.instance.key)
            .collect())
    }

    /// Threads, most recently updated first (`limit` 0: 50; at most 1000).
    pub async fn threads(&self, limit: u32) -> Result<Vec<store::ThreadRow>, ChatError> {
        let limit = match limit {
            0 => 50,
            n => n.min(1000),
        };
        Ok(self.db.read(move |c| store::threads(c, limit)).await?)
    }

    /// One thread and its messages, oldest first.
    pub async fn thread(&self, id: String) -> Result<ThreadView, ChatError> {
        let id2 = id.clone();
        let (thread, messages) = self
            .db
            .read(move |c| {
                let messages = store::messages(c, &id2)?
                    .into_iter()
                    .map(|m| {
                        let cites = store::citations(c, &m.id)?;
                        Ok((m, cites))
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok((store::thread(c, &id2)?, messages))
            })
            .await?;
        let thread = thread.ok_or_else(|| ChatError::NotFound(format!("no thread {id}")))?;
        Ok((thread, messages))
    }

    /// The usage ledger against the plan's quota and caps.
    pub async fn usage(&self) -> Result<UsageReport, ChatError> {
        let cfg = self.config()?;
        let policy = cfg.policy().map_err(ChatError::Config)?;
        let cloud = cfg.cloud_here().map_err(ChatError::Config)?;
        let (usage, calls_this_month) = ledger::this_month(&self.db).await?;
        Ok(UsageReport {
            plan: cfg.plan.clone(),
            policy,
            usage,
            calls_this_month,
            cloud_providers: cloud.iter().map(|r| r.provider.id.to_owned()).collect(),
        })
    }

    /// Keep `api_key` for `provider_id` in the OS credential store (empty:
    /// delete it); returns the cloud providers that have a key now.
    pub async fn set_provider_key(
        &self,
        provider_id: &str,
        api_key: &str,
    ) -> Result<Vec<String>, ChatError> {
        if provider(provider_id).is_none() {
            return Err(ChatError::Invalid(format!(
                "unknown provider {provider_id:?}; known: gemini, openrouter"
            )));
        }
        let key = api_key.trim().to_owned();
        if key.chars().any(|c| c.is_control() || c == ' ') {
            return Err(ChatError::Invalid(
                "the key contains spaces or control characters".into(),
            ));
        }
        let name = provider_secret(provider_id);
        let stored = tokio::task::spawn_blocking(move || {
            if key.is_empty() {
                crate::secrets::delete(&name)
            } else {
                crate::secrets::put(&name, &key)
            }
        })
        .await
        .map_err(|e| ChatError::Task(e.to_string()))?;
        stored.map_err(|e| ChatError::Secrets(e.to_string()))?;
        let detected = self.resolver.watch().refresh().await;
        Ok(detected
            .cloud
            .iter()
            .map(|p| p.provider.id.to_owned())
            .collect())
    }
}
