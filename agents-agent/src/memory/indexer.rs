//! The background loops that keep memory's indexes current.
//!
//! - The **collector** polls capture's tables and chat's messages past
//!   each source's high-water mark every `[memory] poll_ms` and stores
//!   what is new or changed as items, keyword-searchable when its
//!   transaction commits (capture never talks to agents: the database is
//!   the only channel). A row still open (the current activity, a chunk
//!   being typed) is skipped until it closes; a stream the person turned
//!   off has its items removed and is not read until it is on again; every
//!   `[memory] sweep_s` it removes the items of rows capture's retention
//!   deleted.
//! - The **embedder loop** puts new items into embedding jobs for the
//!   current embedder's index of their type and works through them batch
//!   by batch, committing the vectors and the job's checkpoint together,
//!   so a killed agents-agent resumes at the next batch with no duplicate.
//!   A different embedder starts a new generation beside the serving one
//!   and takes its place once built.

use super::embedder::{self, EmbedError, Embedder};
use super::item::{Kind, Stream};
use super::jobs::{Progress, Status};
use super::store::{self, Index};
use super::{sources, Memory, MemoryError};
use crate::context::store as capture;
use crate::util::now_ms;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Rows read from one source in one page.
const PAGE: u32 = 500;
/// Pages read from one source in one pass (the rest waits for the next).
const PAGES: u32 = 20;
/// How far back each pass reads capture's rows again (ms): a row stored
/// late with an earlier mark (clock steps) is not skipped; rows read
/// again are found unchanged.
const OVERLAP_MS: i64 = 2_000;
/// Items per embedding job (each embedded in requests bounded by
/// `[memory] batch_items` and `batch_chars`, checkpointed after each).
pub const JOB_ITEMS: usize = 256;
/// How long the embedder loop waits before trying a failed embedder again.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// How long it sleeps with nothing to do, unless woken.
const IDLE: Duration = Duration::from_secs(2);

/// Start both loops; they end with `shutdown`.
pub fn spawn(memory: Memory, shutdown: CancellationToken) {
    let (m, s) = (memory.clone(), shutdown.clone());
    tokio::spawn(async move { collect_loop(m, s).await });
    tokio::spawn(async move { embed_loop(memory, shutdown).await });
}

/// What one collector pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Collected {
    /// Sources stored (new or changed).
    pub stored: usize,
    /// Items removed (a stream turned off, rows deleted by retention).
    pub removed: usize,
}

async fn collect_loop(memory: Memory, shutdown: CancellationToken) {
    let mut last_sweep: Option<Instant> = None;
    let mut warned = false;
    loop {
        let (poll, sweep_every) = match memory.config() {
            Ok(c) => {
                warned = false;
                (
                    Duration::from_millis(c.poll_ms),
                    Duration::from_secs(c.sweep_s),
                )
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, "memory keeps its defaults until [memory] is valid");
                    warned = true;
                }
                let d = crate::config::MemoryConfig::default();
                (
                    Duration::from_millis(d.poll_ms),
                    Duration::from_secs(d.sweep_s),
                )
            }
        };
        if last_sweep.is_none_or(|t| t.elapsed() >= sweep_every) {
            // Found by a reader (a scan of every item's row), removed by
            // the writer: the sweep never holds writes up for long.
            match sweep(&memory).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(items = n, "memory removed items of deleted rows"),
                Err(e) => tracing::warn!(error = %e, "memory could not sweep deleted rows"),
            }
            last_sweep = Some(Instant::now());
        }
        match memory.db().write(collect).await {
            Ok(done) => {
                if done.stored > 0 {
                    memory.wake();
                }
                if done.stored + done.removed > 0 {
                    tracing::debug!(
                        stored = done.stored,
                        removed = done.removed,
                        "memory collected"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "memory could not read new rows"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

/// Remove the items of capture rows that capture deleted (retention):
/// the items removed.
async fn sweep(memory: &Memory) -> Result<usize, MemoryError> {
    let gone = memory.db().read(deleted_rows).await?;
    if gone.iter().all(|(_, rows)| rows.is_empty()) {
        return Ok(0);
    }
    let n = memory
        .db()
        .write(move |c| {
            let tx = store::begin(c)?;
            let mut n = 0;
            for (stream, rows) in &gone {
                n += store::remove_rows(&tx, *stream, rows)?;
            }
            tx.commit()?;
            Ok(n)
        })
        .await?;
    Ok(n)
}

/// The capture rows, per stream, that items were made from and that no
/// longer exist (capture's retention deleted them). Read only.
pub fn deleted_rows(c: &rusqlite::Connection) -> rusqlite::Result<Vec<(Stream, Vec<i64>)>> {
    let mut out = Vec::new();
    for stream in Stream::FROM_CAPTURE_ROWS {
        let mut gone = Vec::new();
        let mut after = 0;
        loop {
            let rows = store::rows_of(c, stream, after, 1000)?;
            let Some(last) = rows.last().copied() else {
                break;
            };
            let alive: std::collections::HashSet<i64> =
                capture::existing_rows(c, stream.as_str(), &rows)?
                    .into_iter()
                    .collect();
            gone.extend(rows.into_iter().filter(|r| !alive.contains(r)));
            after = last;
        }
        out.push((stream, gone));
    }
    Ok(out)
}

/// One collector pass over every source, in one transaction: new and
/// changed capture rows and chat messages become items; turned-off
/// streams' items go.
pub fn collect(c: &rusqlite::Connection) -> rusqlite::Result<Collected> {
    let tx = store::begin(c)?;
    let mut done = Collected::default();
    let disabled = capture::disabled_streams(&tx)?;
    for stream in Stream::CAPTURE {
        let name = stream.as_str();
        if disabled.iter().any(|d| d == name) {
            // Consent withdrawn: its items leave memory, and its rows are
            // read from the start when it is on again.
            done.removed += store::remove_stream(&tx, stream)?;
            if store::watermark(&tx, name)? != (0, 0) {
                store::set_watermark(&tx, name, 0, 0)?;
            }
            continue;
        }
        let mark = store::watermark(&tx, name)?;
        let mut at = match stream {
            Stream::Clipboard => mark,
            _ => ((mark.0 - OVERLAP_MS).max(0), 0),
        };
        for _ in 0..PAGES {
            let rows = capture::changed_rows(&tx, name, at, PAGE)?;
            for row in &rows {
                if let Some(source) = sources::from_capture(stream, row) {
                    let chunks = sources::chunks_of(&source.text, "");
                    if let store::Stored::Written(_) =
                        store::put_source(&tx, Kind::Activity, &source, &chunks)?
                    {
                        done.stored += 1;
                    }
                }
                at = (row.mark_ms, row.id);
            }
            if rows.len() < PAGE as usize {
                break;
            }
        }
        if at > mark {
            store::set_watermark(&tx, name, at.0, at.1)?;
        }
    }
    let (_, chat_mark) = store::watermark(&tx, Stream::Chat.as_str())?;
    let mut after = chat_mark;
    for _ in 0..PAGES {
        let messages = crate::chat::store::messages_after(&tx, after, PAGE)?;
        for m in &messages {
            let (seq, prev) = crate::chat::store::context_of(
                &tx,
                &m.message.thread_id,
                m.message.created_ms,
                &m.message.id,
            )?;
            if let Some(source) = sources::from_message(m, &sources::Context { seq, prev }) {
                let chunks = sources::chunks_of(&source.text, "");
                if let store::Stored::Written(_) =
                    store::put_source(&tx, Kind::Conversation, &source, &chunks)?
                {
                    done.stored += 1;
                }
            }
            after = m.rowid;
        }
        if messages.len() < PAGE as usize {
            break;
        }
    }
    // An idle pass writes nothing (no WAL frame, no wakeup for readers).
    if after != chat_mark {
        store::set_watermark(&tx, Stream::Chat.as_str(), 0, after)?;
    }
    done = collect_audio(&tx, done)?;
    tx.commit()?;
    Ok(done)
}

/// Transcripts of recorded speech, followed by segment id like chat by
/// rowid; with the audio stream off, its items leave memory (as a capture
/// stream's do) and are read again from the start when it is on.
fn collect_audio(
    tx: &rusqlite::Transaction<'_>,
    mut done: Collected,
) -> rusqlite::Result<Collected> {
    let name = Stream::Audio.as_str();
    let (_, mark) = store::watermark(tx, name)?;
    if !capture::stream_on(tx, name)? {
        if mark != 0 {
            done.removed += store::remove_stream(tx, Stream::Audio)?;
            store::set_watermark(tx, name, 0, 0)?;
        }
        return Ok(done);
    }
    let mut after = mark;
    for _ in 0..PAGES {
        let transcripts = crate::audio::store::with_text_after(tx, after, PAGE)?;
        for t in &transcripts {
            if let Some(source) = sources::from_transcript(t) {
                let chunks = sources::chunks_of(&source.text, "");
                if let store::Stored::Written(_) =
                    store::put_source(tx, Kind::Activity, &source, &chunks)?
                {
                    done.stored += 1;
                }
            }
            after = t.segment_id;
        }
        if transcripts.len() < PAGE as usize {
            break;
        }
    }
    if after != mark {
        store::set_watermark(tx, name, 0, after)?;
    }
    Ok(done)
}

async fn embed_loop(memory: Memory, shutdown: CancellationToken) {
    let hang_ms = memory
        .config()
        .map_or(super::jobs::HANG_MS, |c| c.hang_timeout_s as i64 * 1000);
    // Jobs a killed agents-agent left processing resume (or fail when
    // they had hung); nothing is embedded twice.
    match memory
        .db()
        .write(move |c| store::recover_jobs(c, now_ms(), hang_ms))
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(jobs = n, "embedding jobs resumed after a restart"),
        Err(e) => tracing::warn!(error = %e, "cannot recover embedding jobs"),
    }
    let mut was_paused = false;
    loop {
        // Local AI paused (the machine was getting hot): open jobs are
        // `paused`; restored, they go on at their checkpoints.
        let paused = memory.local_paused();
        if paused != was_paused {
            let r = if paused {
                memory.db().write(store::pause_open_jobs).await
            } else {
                memory.db().write(store::resume_paused_jobs).await
            };
            match r {
                Ok(n) => tracing::info!(jobs = n, paused, "embedding jobs follow local AI"),
                Err(e) => tracing::warn!(error = %e, "cannot pause or resume embedding jobs"),
            }
            was_paused = paused;
        }
        if paused {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(IDLE) => {}
            }
            continue;
        }
        let wait = match embed_pass(&memory, &shutdown).await {
            Ok(true) => Duration::ZERO,
            Ok(false) => IDLE,
            Err(e) => {
                tracing::warn!(error = %e, "embedding paused");
                memory.embedder_failed();
                RETRY_AFTER
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = memory.woken(wait) => {}
        }
    }
}

/// One pass: indexes for the current embedder, new items into jobs, and
/// one job worked through. Ok(true) when there may be more to do at once.
async fn embed_pass(memory: &Memory, shutdown: &CancellationToken) -> Result<bool, MemoryError> {
    let Ok(embedder) = memory.embedder(false).await else {
        // No embedder: keyword search only (status says why).
        return Ok(false);
    };
    let cfg = memory.config()?;
    let private = embedder.may_see_private_text();
    let model = embedder.model.clone();
    let targets = memory
        .db()
        .write(move |c| prepare(c, &model, private, now_ms()))
        .await?;
    for index in targets {
        let Some(job) = ({
            let i = index.clone();
            memory.db().read(move |c| store::next_job(c, &i)).await?
        }) else {
            let i = index.clone();
            let promoted = memory.db().write(move |c| promote_if_built(c, &i)).await?;
            if promoted {
                tracing::info!(kind = %index.kind, model = %index.model, "new vector index serving");
            }
            continue;
        };
        run_job(memory, &embedder, &index, job, &cfg, shutdown).await?;
        return Ok(true);
    }
    Ok(false)
}

/// The index of each type with items that vectors of `model` go to —
/// made (serving, or building beside another model's) when there is none
/// — with every new item put in a job.
fn prepare(
    c: &rusqlite::Connection,
    model: &str,
    private: bool,
    now: i64,
) -> rusqlite::Result<Vec<Index>> {
    let mut out = Vec::new();
    for kind in Kind::ALL {
        let existing = store::indexes(c, Some(kind))?;
        let index = match existing.into_iter().find(|i| i.model == model) {
            Some(i) => i,
            None if store::count_items(c, &[kind])? == 0 => continue,
            None => store::create_index(c, kind, model, now)?,
        };
        store::enqueue(c, &index, JOB_ITEMS, private, now)?;
        out.push(index);
    }
    Ok(out)
}

/// A building index whose jobs are all finished takes the place of the
/// one serving.
fn promote_if_built(c: &rusqlite::Connection, index: &Index) -> rusqlite::Result<bool> {
    if index.state != store::BUILDING || store::has_open_jobs(c, index.kind, index.generation)? {
        return Ok(false);
    }
    store::promote(c, index.kind)?;
    Ok(true)
}

/// One embedding request of a job: its chunk positions and the items
/// still there.
struct Batch {
    /// Positions `[from, from + take)` in the job.
    take: u64,
    /// The items' ids and texts (deleted items passed over).
    ids: Vec<i64>,
    texts: Vec<String>,
}

/// The request after job `id`'s checkpoint `progress`: as many items as
/// `[memory] batch_items` and `batch_chars` allow (at least one), each
/// cut to `max_input_chars`; typed and copied text only when `private`
/// (the embedder is local). None past the job's end.
async fn next_batch(
    memory: &Memory,
    id: i64,
    progress: &Progress,
    private: bool,
    cfg: &crate::config::MemoryConfig,
) -> Result<Option<Batch>, MemoryError> {
    let Some((from, to)) = super::jobs::next_batch(progress, cfg.batch_items as u64) else {
        return Ok(None);
    };
    let items = memory
        .db()
        .read(move |c| store::job_items(c, id, from, to))
        .await?;
    let inputs: Vec<String> = items
        .iter()
        .map(|j| {
            j.item.as_ref().map_or(String::new(), |i| {
                super::chunk::truncate(&i.text, cfg.max_input_chars).to_owned()
            })
        })
        .collect();
    let lens: Vec<usize> = inputs.iter().map(|t| t.chars().count()).collect();
    let take = embedder::batches(&lens, cfg.batch_chars, cfg.batch_items)
        .first()
        .map_or(items.len(), |r| r.len())
        .clamp(1, items.len().max(1));
    let mut batch = Batch {
        take: take as u64,
        ids: Vec::new(),
        texts: Vec::new(),
    };
    for (j, text) in items.iter().zip(inputs).take(take) {
        match &j.item {
            // Queued for a local embedder, now another: never sent.
            Some(item) if item.stream.is_private_text() && !private => {}
            Some(item) => {
                batch.ids.push(item.id);
                batch.texts.push(text);
            }
            // Deleted since the job was made.
            None => {}
        }
    }
    Ok(Some(batch))
}

/// How many times a refused input is tried again, cut in half each time.
const SHORTER_TRIES: usize = 2;

/// Embed `texts` one at a time after the embedder refused them together:
/// an input refused alone is tried again cut in half (a text over the
/// model's token limit), then passed over (None) with the reason.
async fn embed_one_by_one(
    memory: &Memory,
    embedder: &Embedder,
    texts: &[String],
    hang: Duration,
) -> Result<(Vec<Option<Vec<f32>>>, Vec<String>), EmbedError> {
    let (mut out, mut skipped) = (Vec::with_capacity(texts.len()), Vec::new());
    for text in texts {
        let mut input = text.clone();
        let mut tries = 0;
        loop {
            match embedder
                .embed(memory.sessions(), std::slice::from_ref(&input), hang)
                .await
            {
                Ok(mut v) => {
                    out.push(v.pop());
                    break;
                }
                Err(EmbedError::Refused(why)) if tries < SHORTER_TRIES => {
                    tracing::debug!(error = %why, "an input was refused; trying it shorter");
                    let half = input.chars().count() / 2;
                    input = super::chunk::truncate(&input, half.max(1)).to_owned();
                    tries += 1;
                }
                Err(EmbedError::Refused(why)) => {
                    skipped.push(why);
                    out.push(None);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok((out, skipped))
}

/// Work through `job` from its checkpoint, one embedding request at a
/// time, each request's vectors and the new checkpoint committed together
/// — while the embedder already works on the next request, so it never
/// waits for the database. A hung embedder fails the job; one that cannot
/// be reached or refuses leaves it pending for later (the error is
/// returned).
async fn run_job(
    memory: &Memory,
    embedder: &Embedder,
    index: &Index,
    job: store::Job,
    cfg: &crate::config::MemoryConfig,
    shutdown: &CancellationToken,
) -> Result<(), MemoryError> {
    let id = job.id;
    let mut progress = Progress {
        status: Status::Processing,
        embed_started_at: Some(now_ms()),
        embed_error: None,
        ..job.progress.clone()
    };
    let p = progress.clone();
    memory
        .db()
        .write(move |c| store::set_progress(c, id, &p, now_ms()))
        .await?;
    let hang = Duration::from_secs(cfg.hang_timeout_s);
    let stop = |progress: Progress| async move {
        memory
            .db()
            .write(move |c| store::set_progress(c, id, &progress, now_ms()))
            .await
    };
    // One request's vectors with the checkpoint after it.
    let commit = |pairs: Vec<(i64, Vec<f32>)>, progress: Progress| {
        let index = index.clone();
        async move {
            memory
                .db()
                .write(move |c| store::commit_batch(c, &index, id, &pairs, &progress, now_ms()))
                .await
                .map(|_| ())
        }
    };
    let private = embedder.may_see_private_text();
    let mut next = next_batch(memory, id, &progress, private, cfg).await?;
    // The previous request's commit, finished while this one is embedded.
    let mut committing: Option<Vec<(i64, Vec<f32>)>> = None;
    let mut committed = progress.clone();
    while let Some(batch) = next.take() {
        if shutdown.is_cancelled() {
            // Stopping: paused at the checkpoint (the time it is down is
            // not counted as a hang), taken up again at the next start.
            if let Some(pairs) = committing.take() {
                commit(pairs, committed.clone()).await?;
            }
            progress = committed.clone();
            progress.status = Status::Paused;
            stop(progress).await?;
            return Ok(());
        }
        let embed = async {
            if batch.texts.is_empty() {
                Ok(Vec::new())
            } else {
                embedder.embed(memory.sessions(), &batch.texts, hang).await
            }
        };
        let previous = async {
            match committing.take() {
                Some(pairs) => commit(pairs, committed.clone()).await,
                None => Ok(()),
            }
        };
        let started = Instant::now();
        let (vectors, done) = tokio::join!(embed, previous);
        tracing::debug!(
            job = id,
            inputs = batch.texts.len(),
            ms = started.elapsed().as_millis() as u64,
            "embedded a batch (and committed the one before)"
        );
        done?;
        let vectors: Vec<Option<Vec<f32>>> = match vectors {
            Ok(v) => v.into_iter().map(Some).collect(),
            Err(EmbedError::Refused(why)) => {
                tracing::info!(job = id, error = %why, "a batch was refused; embedding its inputs one by one");
                match embed_one_by_one(memory, embedder, &batch.texts, hang).await {
                    Ok((v, skipped)) => {
                        if let Some(last) = skipped.last() {
                            progress.embed_error = Some(format!(
                                "{} input(s) refused and left without a vector (keyword search \
                                 still finds them): {last}",
                                skipped.len()
                            ));
                        }
                        v
                    }
                    Err(e) => {
                        progress.status = Status::Pending;
                        progress.embed_started_at = None;
                        progress.embed_error = Some(e.to_string());
                        stop(progress).await?;
                        return Err(MemoryError::Embedder(e.to_string()));
                    }
                }
            }
            Err(EmbedError::Hung(d)) => {
                progress.status = Status::Failed;
                progress.embed_error = Some(format!(
                    "the embedder {} did not answer within {} s (at chunk {} of {})",
                    embedder.engine,
                    d.as_secs(),
                    progress.chunks_embedded,
                    progress.total_chunks
                ));
                tracing::warn!(job = id, error = ?progress.embed_error, "embedding job failed");
                memory.unresponsive(
                    &embedder.engine,
                    progress.embed_error.clone().unwrap_or_default(),
                );
                stop(progress).await?;
                return Ok(());
            }
            Err(EmbedError::Failed(why)) => {
                progress.status = Status::Pending;
                progress.embed_started_at = None;
                progress.embed_error = Some(why.clone());
                stop(progress).await?;
                return Err(MemoryError::Embedder(why));
            }
        };
        if !batch.texts.is_empty() {
            memory.responsive(&embedder.engine);
        }
        let dims = committed_dims(index, vectors.iter().flatten().next());
        if let Some(got) = dims {
            progress.status = Status::Failed;
            progress.embed_error = Some(format!(
                "{} returned {got}-dimensional vectors for model {}, whose index holds {}: \
                 run `coworkctl memory reindex`",
                embedder.engine, index.model, index.dims
            ));
            stop(progress).await?;
            return Ok(());
        }
        progress.chunks_embedded += batch.take;
        progress.embed_started_at = Some(now_ms());
        if progress.chunks_embedded >= progress.total_chunks {
            progress.status = Status::Done;
            progress.embed_started_at = None;
        }
        committed = progress.clone();
        committing = Some(
            batch
                .ids
                .into_iter()
                .zip(vectors)
                .filter_map(|(id, v)| Some((id, v?)))
                .collect(),
        );
        next = next_batch(memory, id, &progress, private, cfg).await?;
    }
    if let Some(pairs) = committing {
        commit(pairs, committed).await?;
    }
    Ok(())
}

/// The length of `vectors` when it differs from `index`'s dimension
/// (the model behind the name changed); None when they fit.
fn committed_dims(index: &Index, first: Option<&Vec<f32>>) -> Option<usize> {
    let got = first?.len();
    (index.dims != 0 && got != index.dims as usize).then_some(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{params, Connection};

    /// cowork.db with memory's and chat's tables, and capture's as
    /// capture-agent creates them (the columns memory reads).
    fn db() -> Connection {
        cowork_db::register_sqlite_vec();
        let c = crate::db::migrated(&[crate::chat::store::OWNER, store::OWNER]);
        c.execute_batch(
            "CREATE TABLE capture_streams (stream TEXT PRIMARY KEY, enabled INTEGER NOT NULL,
                changed_ms INTEGER NOT NULL);
             CREATE TABLE capture_activities (id INTEGER PRIMARY KEY, app_name TEXT NOT NULL,
                app_id TEXT NOT NULL, window_title TEXT NOT NULL, url TEXT,
                started_ms INTEGER NOT NULL, ended_ms INTEGER, end_reason TEXT,
                focus_session_id INTEGER, updated_ms INTEGER NOT NULL);
             CREATE TABLE capture_keystroke_chunks (id INTEGER PRIMARY KEY, text TEXT NOT NULL,
                char_count INTEGER NOT NULL, key_count INTEGER NOT NULL, app_name TEXT NOT NULL,
                app_id TEXT NOT NULL, window_title TEXT NOT NULL, activity_id INTEGER,
                started_ms INTEGER NOT NULL, ended_ms INTEGER NOT NULL, flush_reason TEXT,
                updated_ms INTEGER NOT NULL);
             CREATE TABLE capture_clipboard_events (id INTEGER PRIMARY KEY, op TEXT NOT NULL,
                text TEXT, char_count INTEGER, source_app TEXT NOT NULL,
                source_app_id TEXT NOT NULL, window_title TEXT NOT NULL, activity_id INTEGER,
                at_ms INTEGER NOT NULL);",
        )
        .unwrap();
        c
    }

    fn activity(c: &Connection, id: i64, title: &str, ended: Option<i64>, updated: i64) {
        c.execute(
            "INSERT INTO capture_activities (id, app_name, app_id, window_title, url, started_ms,
                ended_ms, updated_ms) VALUES (?1, 'Firefox', 'firefox', ?2, NULL, ?3, ?4, ?5)
             ON CONFLICT(id) DO UPDATE SET window_title = excluded.window_title,
                ended_ms = excluded.ended_ms, updated_ms = excluded.updated_ms",
            params![id, title, updated - 10, ended, updated],
        )
        .unwrap();
    }

    fn found(c: &Connection, word: &str) -> Vec<String> {
        let hits =
            store::keyword(c, &format!("\"{word}\""), &store::Filter::default(), 10).unwrap();
        let ids: Vec<i64> = hits.iter().map(|h| h.0).collect();
        store::items(c, &ids)
            .unwrap()
            .into_iter()
            .map(|i| i.source_id)
            .collect()
    }

    #[test]
    fn closed_rows_are_indexed_changes_reindexed_and_consent_and_retention_followed() {
        let c = db();
        activity(&c, 1, "Quarterly invoices", Some(1_000_000), 1_000_000);
        activity(&c, 2, "Open draft", None, 1_000_100);
        c.execute(
            "INSERT INTO capture_keystroke_chunks (id, text, char_count, key_count, app_name, app_id,
                window_title, started_ms, ended_ms, flush_reason, updated_ms)
             VALUES (1, 'cargo test --workspace', 22, 22, 'xterm', 'xterm', 'shell', 5, 6, 'enter', 7)",
            [],
        )
        .unwrap();
        c.execute(
            "INSERT INTO capture_clipboard_events (id, op, text, source_app, source_app_id,
                window_title, at_ms) VALUES (1, 'copy', 'ticket PRJ-4411', 'Slack', 'slack', 'x', 3)",
            [],
        )
        .unwrap();
        crate::chat::store::import_message(
            &c,
            "",
            &crate::chat::store::ImportedMessage {
                id: "m1".into(),
                thread: "t".into(),
                speaker: "Ann".into(),
                text: "the flamingo budget".into(),
                time_ms: 9,
            },
        )
        .unwrap();
        // The person's own message with the same id as the import's line.
        let t = crate::chat::store::create_thread(&c, "mine").unwrap();
        c.execute(
            "INSERT INTO agents_messages (id, thread_id, role, content, model, ask_id, created_ms,
                finish_reason) VALUES ('m1', ?1, 'user', 'my own words', '', '', 2, 'stop')",
            [&t],
        )
        .unwrap();
        let first = collect(&c).unwrap();
        assert_eq!(first.stored, 5, "{first:?}");
        assert_eq!(found(&c, "invoices"), vec!["activity:1"]);
        assert!(
            found(&c, "draft").is_empty(),
            "an open activity waits until it closes"
        );
        assert_eq!(found(&c, "workspace"), vec!["keystrokes:1"]);
        assert_eq!(found(&c, "PRJ-4411"), vec!["clipboard:1"]);
        assert_eq!(found(&c, "flamingo"), vec!["m1"]);
        assert_eq!(
            found(&c, "words"),
            vec!["m1"],
            "the person's message is intact"
        );
        // Nothing new: nothing stored.
        assert_eq!(collect(&c).unwrap().stored, 0);
        // The open activity closes with a new title: indexed now.
        activity(&c, 2, "Final draft", Some(1_000_500), 1_000_500);
        assert_eq!(collect(&c).unwrap().stored, 1);
        assert_eq!(found(&c, "draft"), vec!["activity:2"]);
        // Keystrokes turned off: their items leave memory.
        c.execute(
            "INSERT INTO capture_streams VALUES ('keystrokes', 0, 1)",
            [],
        )
        .unwrap();
        assert_eq!(collect(&c).unwrap().removed, 1);
        assert!(found(&c, "workspace").is_empty());
        // And come back when consent does.
        c.execute("UPDATE capture_streams SET enabled = 1", [])
            .unwrap();
        collect(&c).unwrap();
        assert_eq!(found(&c, "workspace"), vec!["keystrokes:1"]);
        // Retention deleted activity 1: the sweep finds its row gone.
        c.execute("DELETE FROM capture_activities WHERE id = 1", [])
            .unwrap();
        let gone = deleted_rows(&c).unwrap();
        assert_eq!(gone[0], (Stream::Window, vec![1]), "{gone:?}");
        assert!(
            gone[1..].iter().all(|(_, rows)| rows.is_empty()),
            "{gone:?}"
        );
        assert_eq!(
            store::remove_rows(&c, Stream::Window, &gone[0].1).unwrap(),
            1
        );
        assert!(found(&c, "invoices").is_empty());
    }
}
