//! Memory: everything captured or said, made searchable (seed 003
//! "Embedding Pipeline", "Database Hardening" → vector index
//! namespacing).
//!
//! Pure pieces: what an item is and which index it goes to ([`item`]),
//! what each source row becomes ([`sources`]), chunking ([`chunk`]), the
//! embedding job's state machine ([`jobs`]), a search's time filter
//! ([`query`]), keyword queries and per-source folding ([`search`]),
//! hybrid ranking ([`fusion`]) and the binary codes of the coarse vector
//! pass ([`quantize`]), working memory's rules ([`profile`]) and a
//! grounded context's layers, budget and refusal ([`rag`]). Runtime:
//! [`store`] (the only SQL for memory's tables), [`embedder`] (which
//! embedder, and calling it), [`indexer`] (the background loops that
//! index new rows and embed them), [`recall`] (a search, end to end),
//! [`assemble`] (a grounded context, the Context Card, and memory as
//! chat's `Grounding`) and [`service`] (`cowork.memory.v1.Memory`).
//! [`Memory`] is the handle the service and the indexer share.

pub mod assemble;
pub mod chunk;
pub mod embedder;
pub mod fusion;
pub mod indexer;
pub mod item;
pub mod jobs;
pub mod observe;
pub mod observer;
pub mod profile;
pub mod quantize;
pub mod query;
pub mod rag;
pub mod recall;
pub mod search;
pub mod service;
pub mod sources;
pub mod store;

use crate::config::MemoryConfig;
use crate::db::{Db, DbError};
use crate::llm::managed::sessions::Sessions;
use crate::util::now_ms;
use embedder::Embedder;
use item::{Kind, Stream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long a resolved embedder is reused before `[memory] embedder` is
/// resolved again.
const EMBEDDER_TTL: Duration = Duration::from_secs(5);
/// How long the reason there is none is reused: finding an engine means
/// probing them, which engine detection does every 10 s too. An
/// embedding session loaded meanwhile is found at once.
const NO_EMBEDDER_TTL: Duration = Duration::from_secs(10);

/// How long an embedder that did not answer is passed over by searches
/// (they go by keyword alone meanwhile, instead of each waiting for it).
const UNRESPONSIVE_FOR: Duration = Duration::from_secs(60);

/// Lines of one import request, at most.
pub const MAX_IMPORT_LINES: usize = 10_000;

/// Why a memory call failed.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// cowork.db said no.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The request cannot be served as asked (bad type, mode, time).
    #[error("{0}")]
    Invalid(String),
    /// `[memory]` in config.toml is invalid.
    #[error("{0}")]
    Config(String),
    /// The embedder could not be reached, or refused.
    #[error("{0}")]
    Embedder(String),
    /// No such source, or pin.
    #[error("{0}")]
    NotFound(String),
}

impl From<rusqlite::Error> for MemoryError {
    fn from(e: rusqlite::Error) -> Self {
        MemoryError::Db(DbError::Sql(e))
    }
}

/// The handle memory's service and indexer share (cheap to clone).
#[derive(Clone)]
pub struct Memory {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    config: PathBuf,
    sessions: Sessions,
    embedder: Mutex<Option<(Instant, Result<Embedder, String>)>>,
    /// An embedder that did not answer: (its engine, until when, why).
    unresponsive: Mutex<Option<(String, Instant, String)>>,
    /// The size of memory's tables, and when it was measured.
    size: Mutex<Option<(Instant, u64)>>,
    /// Woken when there is new work (an import, a reindex).
    wake: Notify,
    /// When chat last asked memory for an answer's context.
    chat_asked: Mutex<Option<Instant>>,
    /// Wakes a background model call that must give way to chat.
    chat_asking: Notify,
}

impl Memory {
    /// Whether local AI is paused (embedding jobs wait).
    pub fn local_paused(&self) -> bool {
        self.sessions().paused().is_some()
    }

    /// A memory over cowork.db, configured by `config`'s `[memory]`, embedding
    /// through `sessions` (or the engines config names).
    pub fn new(db: Db, config: PathBuf, sessions: Sessions) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                config,
                sessions,
                embedder: Mutex::new(None),
                unresponsive: Mutex::new(None),
                size: Mutex::new(None),
                wake: Notify::new(),
                chat_asked: Mutex::new(None),
                chat_asking: Notify::new(),
            }),
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The llama-server sessions (an embedding session is leased per call).
    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    /// `[memory]`, read fresh.
    pub fn config(&self) -> Result<MemoryConfig, MemoryError> {
        MemoryConfig::load(&self.inner.config).map_err(MemoryError::Config)
    }

    /// The embedder `[memory] embedder` resolves to now, or why there is
    /// none (keyword search only); resolved again after a few seconds, or
    /// at once with `fresh`.
    pub async fn embedder(&self, fresh: bool) -> Result<Embedder, String> {
        if !fresh {
            if let Ok(cached) = self.inner.embedder.lock() {
                if let Some((at, e)) = cached.as_ref() {
                    let fresh_enough = match e {
                        Ok(_) => at.elapsed() < EMBEDDER_TTL,
                        Err(_) => {
                            at.elapsed() < NO_EMBEDDER_TTL
                                && self
                                    .inner
                                    .sessions
                                    .serving(crate::llm::managed::Mode::Embedding)
                                    .is_none()
                        }
                    };
                    if fresh_enough {
                        return e.clone();
                    }
                }
            }
        }
        let e = embedder::resolve(&self.inner.config, &self.inner.sessions).await;
        if let Ok(mut cached) = self.inner.embedder.lock() {
            *cached = Some((Instant::now(), e.clone()));
        }
        e
    }

    /// Forget the cached embedder (its engine failed): the next call
    /// resolves it again.
    pub fn embedder_failed(&self) {
        if let Ok(mut cached) = self.inner.embedder.lock() {
            *cached = None;
        }
    }

    /// `engine` did not answer (`why`): searches pass it over for a while
    /// rather than each waiting for it.
    pub fn unresponsive(&self, engine: &str, why: String) {
        if let Ok(mut u) = self.inner.unresponsive.lock() {
            *u = Some((engine.to_owned(), Instant::now() + UNRESPONSIVE_FOR, why));
        }
    }

    /// `engine` answered.
    pub fn responsive(&self, engine: &str) {
        if let Ok(mut u) = self.inner.unresponsive.lock() {
            if u.as_ref().is_some_and(|(e, _, _)| e == engine) {
                *u = None;
            }
        }
    }

    /// Why searches pass `engine` over now, if they do.
    pub fn passed_over(&self, engine: &str) -> Option<String> {
        let u = self.inner.unresponsive.lock().ok()?;
        let (e, until, why) = u.as_ref()?;
        (e == engine && Instant::now() < *until).then(|| why.clone())
    }

    /// Chat is asking for an answer's context now: a background call on
    /// the same engine gives way.
    pub fn chat_asked(&self) {
        if let Ok(mut t) = self.inner.chat_asked.lock() {
            *t = Some(Instant::now());
        }
        self.inner.chat_asking.notify_waiters();
    }

    /// Wait until chat asks for an answer's context.
    pub async fn chat_asking(&self) {
        self.inner.chat_asking.notified().await;
    }

    /// How long since chat last asked (a long time when it never did).
    pub fn chat_quiet_for(&self) -> Duration {
        self.inner
            .chat_asked
            .lock()
            .ok()
            .and_then(|t| t.map(|t| t.elapsed()))
            .unwrap_or(Duration::MAX)
    }

    /// Wake the indexer (new rows or jobs to look at).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Wait for [`Memory::wake`] or `timeout`, whichever comes first.
    pub async fn woken(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.inner.wake.notified()).await;
    }

    /// Forget sources by id, or everything in a time range (of one app):
    /// gone from the keyword index and every vector index in one
    /// transaction, and never indexed again.
    pub async fn forget(&self, f: Forget) -> Result<store::Forgotten, MemoryError> {
        let now = now_ms();
        let done = match f {
            Forget::Sources { ids, collection } => {
                if ids.is_empty() {
                    return Err(MemoryError::Invalid(
                        "name the sources to forget, or a time range".into(),
                    ));
                }
                self.db()
                    .write(move |c| store::forget_sources(c, &ids, collection.as_deref(), now))
                    .await?
            }
            Forget::Range {
                since_ms,
                until_ms,
                app,
            } => {
                if since_ms.is_none() && until_ms.is_none() && app.is_empty() {
                    return Err(MemoryError::Invalid(
                        "forgetting everything needs a range: give --since (or --until, --app)"
                            .into(),
                    ));
                }
                self.db()
                    .write(move |c| store::forget_range(c, since_ms, until_ms, &app, now))
                    .await?
            }
        };
        Ok(done)
    }

    /// Embed the items of `kinds` (all when empty) again: their vector
    /// indexes are dropped and rebuilt in the background. Returns the
    /// items that will be embedded.
    pub async fn reindex(&self, kinds: Vec<Kind>) -> Result<u64, MemoryError> {
        let kinds = if kinds.is_empty() {
            Kind::ALL.to_vec()
        } else {
            kinds
        };
        let n = self
            .db()
            .write(move |c| {
                store::drop_indexes(c, &kinds)?;
                store::count_items(c, &kinds)
            })
            .await?;
        self.wake();
        Ok(n)
    }

    /// Import JSONL `lines` of `kind` (document or conversation) into
    /// `collection`; `first_line` numbers them in errors. Idempotent by
    /// each line's `_id`; keyword-searchable when this returns, embedded
    /// in the background.
    pub async fn import(
        &self,
        kind: Kind,
        collection: String,
        lines: Vec<String>,
        first_line: u64,
    ) -> Result<Imported, MemoryError> {
        if !matches!(kind, Kind::Document | Kind::Conversation) {
            return Err(MemoryError::Invalid(format!(
                "cannot import {kind}: the type is document or conversation"
            )));
        }
        if lines.len() > MAX_IMPORT_LINES {
            return Err(MemoryError::Invalid(format!(
                "{} lines in one request: send at most {MAX_IMPORT_LINES}",
                lines.len()
            )));
        }
        if collection.len() > sources::MAX_ID || collection.chars().any(char::is_control) {
            return Err(MemoryError::Invalid(format!(
                "a collection name is at most {} bytes with no control characters",
                sources::MAX_ID
            )));
        }
        let mut out = Imported::default();
        let mut parsed = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match sources::parse_line(kind, line) {
                Ok(l) => parsed.push(l),
                Err(e) => out
                    .errors
                    .push(format!("line {}: {e}", first_line + i as u64)),
            }
        }
        let done = self
            .db()
            .write(move |c| {
                let tx = store::begin(c)?;
                let mut n = Imported::default();
                for line in &parsed {
                    let stored = match line {
                        sources::Line::Document { id, title, text } => {
                            let source = item::Source {
                                stream: Stream::Import,
                                source_id: id.clone(),
                                row: None,
                                text: text.clone(),
                                time_ms: now_ms(),
                                app: String::new(),
                                collection: collection.clone(),
                                thread: String::new(),
                                seq: 0,
                            };
                            let chunks = sources::chunks_of(text, title);
                            store::put_document(&tx, &source, &chunks)?
                        }
                        sources::Line::Conversation(m) => {
                            crate::chat::store::import_message(&tx, &collection, m)?;
                            let thread =
                                crate::chat::store::imported_thread_id(&collection, &m.thread);
                            let stored =
                                crate::chat::store::imported_message_id(&collection, &m.id);
                            let (seq, prev) =
                                crate::chat::store::context_of(&tx, &thread, m.time_ms, &stored)?;
                            let ctx = sources::Context { seq, prev };
                            let source = sources::imported_message(m, &collection, &ctx);
                            let chunks = sources::chunks_of(&source.text, "");
                            store::put_source(&tx, Kind::Conversation, &source, &chunks)?
                        }
                    };
                    match stored {
                        store::Stored::Written(chunks) => {
                            n.imported += 1;
                            n.chunks += chunks as u64;
                        }
                        store::Stored::Unchanged => n.unchanged += 1,
                        // A forgotten id stays forgotten.
                        store::Stored::Skipped => n.unchanged += 1,
                    }
                }
                tx.commit()?;
                Ok(n)
            })
            .await?;
        out.imported = done.imported;
        out.unchanged = done.unchanged;
        out.chunks = done.chunks;
        self.wake();
        Ok(out)
    }
}

/// What `memory status` shows.
#[derive(Debug, Clone)]
pub struct Status {
    /// The embedder, or why there is none.
    pub embedder: Result<Embedder, String>,
    /// Its vectors' dimension (0 until it has embedded something).
    pub dims: u32,
    /// Each type: its items and its vector indexes.
    pub kinds: Vec<KindStatus>,
    /// Jobs by state: (state, jobs, chunks embedded, chunks in all).
    pub jobs: Vec<(jobs::Status, u64, u64, u64)>,
    /// The newest embedding error.
    pub last_error: Option<String>,
    /// Bytes of memory's tables and indexes (measured at most once a
    /// minute).
    pub size_bytes: u64,
    /// The oldest row not yet read into memory (keyword index lag).
    pub oldest_unindexed_ms: Option<i64>,
    /// The oldest item the current embedder has still to embed.
    pub oldest_unembedded_ms: Option<i64>,
    /// Observational memory.
    pub observer: ObserverStatus,
}

/// Observational memory in [`Status`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObserverStatus {
    /// Current observations (reflections among them).
    pub observations: u64,
    /// Current reflections.
    pub reflections: u64,
    /// Observations a reflection replaced (kept, not searched).
    pub superseded: u64,
    /// Raw history not yet observed (tokens).
    pub unobserved_tokens: u64,
    /// The threshold the Observer starts at (tokens).
    pub observe_tokens: u64,
    /// The last run and its error ("" none).
    pub last_run: Option<(i64, String)>,
}

/// One type in [`Status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindStatus {
    /// The type.
    pub kind: Kind,
    /// Its items (keyword-searchable).
    pub items: u64,
    /// The index serving its searches.
    pub serving: Option<store::Index>,
    /// A newer generation being built beside it.
    pub building: Option<store::Index>,
}

/// How long a measured size is shown before measuring again.
const SIZE_TTL: Duration = Duration::from_secs(60);

impl Memory {
    /// Where memory stands: embedder, jobs, indexes, lag, size.
    pub async fn status(&self) -> Result<Status, MemoryError> {
        let embedder = self.embedder(false).await;
        let model = embedder.as_ref().ok().map(|e| e.model.clone());
        let observe_tokens = self.config()?.observe_tokens;
        let observer = self
            .db()
            .read(move |c| {
                let (observations, reflections, superseded) = store::observation_counts(c)?;
                Ok(ObserverStatus {
                    observations,
                    reflections,
                    superseded,
                    unobserved_tokens: store::unobserved_chars(c)?
                        / crate::llm::tokens::CHARS_PER_TOKEN,
                    observe_tokens,
                    last_run: store::observer_state(c)?,
                })
            })
            .await?;
        let (indexes, counts, unindexed, unembedded) = self
            .db()
            .read(move |c| {
                let indexes = store::indexes(c, None)?;
                let counts = store::counts(c)?;
                let disabled = crate::context::store::disabled_streams(c)?;
                let mut unindexed: Option<i64> = None;
                let oldest = |t: Option<i64>, into: &mut Option<i64>| {
                    if let Some(t) = t {
                        *into = Some(into.map_or(t, |o: i64| o.min(t)));
                    }
                };
                for stream in Stream::CAPTURE {
                    if disabled.iter().any(|d| d == stream.as_str()) {
                        continue;
                    }
                    let mark = store::watermark(c, stream.as_str())?;
                    oldest(
                        crate::context::store::oldest_after(c, stream.as_str(), mark)?,
                        &mut unindexed,
                    );
                }
                let (_, after) = store::watermark(c, Stream::Chat.as_str())?;
                oldest(
                    crate::chat::store::messages_after(c, after, 1)?
                        .first()
                        .map(|m| m.message.created_ms),
                    &mut unindexed,
                );
                let mut unembedded = None;
                for i in indexes.iter().filter(|i| Some(&i.model) == model.as_ref()) {
                    oldest(store::oldest_unembedded(c, i)?, &mut unembedded);
                }
                Ok((indexes, counts, unindexed, unembedded))
            })
            .await?;
        let size_bytes = self.size_bytes().await?;
        let of = |kind: Kind, state: &str| {
            indexes
                .iter()
                .find(|i| i.kind == kind && i.state == state)
                .cloned()
        };
        let kinds = Kind::ALL
            .iter()
            .map(|&kind| KindStatus {
                kind,
                items: counts.items.get(kind.as_str()).copied().unwrap_or(0),
                serving: of(kind, store::SERVING),
                building: of(kind, store::BUILDING),
            })
            .collect();
        let dims = match &embedder {
            Ok(e) => indexes
                .iter()
                .find(|i| i.model == e.model && i.dims > 0)
                .map_or(0, |i| i.dims),
            Err(_) => 0,
        };
        let jobs = jobs::Status::ALL
            .iter()
            .map(|st| {
                let (n, done, total) = counts.jobs.get(st.as_str()).copied().unwrap_or_default();
                (*st, n, done, total)
            })
            .collect();
        Ok(Status {
            embedder,
            dims,
            kinds,
            jobs,
            last_error: counts.last_error,
            size_bytes,
            oldest_unindexed_ms: unindexed,
            oldest_unembedded_ms: unembedded,
            observer,
        })
    }

    /// Bytes of memory's tables, measured at most once a [`SIZE_TTL`].
    async fn size_bytes(&self) -> Result<u64, MemoryError> {
        if let Ok(cached) = self.inner.size.lock() {
            if let Some((at, n)) = *cached {
                if at.elapsed() < SIZE_TTL {
                    return Ok(n);
                }
            }
        }
        let n = self.db().read(store::size_bytes).await?;
        if let Ok(mut cached) = self.inner.size.lock() {
            *cached = Some((Instant::now(), n));
        }
        Ok(n)
    }
}

/// What to forget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forget {
    /// These sources (as hits name them), in one import collection when
    /// given.
    Sources {
        /// Source ids.
        ids: Vec<String>,
        /// Only in this collection.
        collection: Option<String>,
    },
    /// Everything in `[since, until)`, of one app when it is not empty.
    Range {
        /// From (Unix ms).
        since_ms: Option<i64>,
        /// Before (Unix ms).
        until_ms: Option<i64>,
        /// The app ("" any).
        app: String,
    },
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// Lines stored (new or changed).
    pub imported: u64,
    /// Lines stored already as they are.
    pub unchanged: u64,
    /// Chunks written.
    pub chunks: u64,
    /// `line N: why` for each line refused.
    pub errors: Vec<String>,
}
