//! Embedding jobs: the items each is to embed, their state and
//! checkpoint (see [`crate::memory::jobs`] for the state machine).

use super::{begin, kind_of, stream_of, Index};
use crate::memory::item::{Item, Kind};
use crate::memory::jobs::{self, Progress, Status};
use rusqlite::{params, Connection, OptionalExtension};

/// One embedding job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Its id.
    pub id: i64,
    /// The type it embeds.
    pub kind: Kind,
    /// Into this generation's index.
    pub generation: u32,
    /// Its state and checkpoint.
    pub progress: Progress,
}

fn job(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    let status: String = r.get(3)?;
    Ok(Job {
        id: r.get(0)?,
        kind: kind_of(&r.get::<_, String>(1)?)?,
        generation: r.get(2)?,
        progress: Progress {
            status: status.parse().map_err(|e: String| {
                rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, e.into())
            })?,
            chunks_embedded: r.get(4)?,
            total_chunks: r.get(5)?,
            embed_started_at: r.get(6)?,
            embed_error: r.get(7)?,
        },
    })
}

const JOB_SQL: &str = "SELECT id, kind, generation, embed_status, chunks_embedded, total_chunks,
    embed_started_at, embed_error FROM memory_jobs";

/// Put the items of `index`'s type after its `enqueued_upto` into jobs of
/// at most `per_job` items; `private` says whether keystroke and
/// clipboard text may go to this embedder. Returns the jobs created.
pub fn enqueue(
    c: &Connection,
    index: &Index,
    per_job: usize,
    private: bool,
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let tx = begin(c)?;
    let items: Vec<(i64, String)> = tx
        .prepare_cached(
            "SELECT id, stream FROM memory_items WHERE kind = ?1 AND id > ?2 ORDER BY id",
        )?
        .query_map(params![index.kind.as_str(), index.enqueued_upto], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let Some(last) = items.last().map(|i| i.0) else {
        return Ok(0);
    };
    let mut wanted = Vec::with_capacity(items.len());
    for (id, stream) in &items {
        if private || !stream_of(stream)?.is_private_text() {
            wanted.push(*id);
        }
    }
    let mut jobs = 0;
    for part in wanted.chunks(per_job.max(1)) {
        tx.execute(
            "INSERT INTO memory_jobs (kind, generation, embed_status, total_chunks, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![
                index.kind.as_str(),
                index.generation,
                Status::Pending.as_str(),
                part.len() as i64,
                now_ms
            ],
        )?;
        let job = tx.last_insert_rowid();
        let mut s = tx.prepare_cached(
            "INSERT INTO memory_job_items (job_id, ord, item_id) VALUES (?1, ?2, ?3)",
        )?;
        for (ord, id) in part.iter().enumerate() {
            s.execute(params![job, ord as i64, id])?;
        }
        jobs += 1;
    }
    tx.execute(
        "UPDATE memory_indexes SET enqueued_upto = ?3 WHERE kind = ?1 AND generation = ?2",
        params![index.kind.as_str(), index.generation, last],
    )?;
    tx.commit()?;
    Ok(jobs)
}

/// The job of `index` to work on next: one left `processing`, else the
/// oldest `pending`.
pub fn next_job(c: &Connection, index: &Index) -> rusqlite::Result<Option<Job>> {
    c.query_row(
        &format!(
            "{JOB_SQL} WHERE kind = ?1 AND generation = ?2
               AND embed_status IN ('processing', 'pending')
             ORDER BY embed_status = 'processing' DESC, id LIMIT 1"
        ),
        params![index.kind.as_str(), index.generation],
        job,
    )
    .optional()
}

/// One job by id.
#[cfg(test)]
pub fn get_job(c: &Connection, id: i64) -> rusqlite::Result<Option<Job>> {
    c.query_row(&format!("{JOB_SQL} WHERE id = ?1"), [id], job)
        .optional()
}

/// Whether a generation still has work queued.
pub fn has_open_jobs(c: &Connection, kind: Kind, generation: u32) -> rusqlite::Result<bool> {
    c.prepare_cached(
        "SELECT 1 FROM memory_jobs WHERE kind = ?1 AND generation = ?2
         AND embed_status IN ('pending', 'processing', 'paused')",
    )?
    .exists(params![kind.as_str(), generation])
}

/// Write a job's progress.
pub fn set_progress(c: &Connection, id: i64, p: &Progress, now_ms: i64) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE memory_jobs SET embed_status = ?2, chunks_embedded = ?3, total_chunks = ?4,
            embed_started_at = ?5, embed_error = ?6, updated_ms = ?7 WHERE id = ?1",
        params![
            id,
            p.status.as_str(),
            p.chunks_embedded,
            p.total_chunks,
            p.embed_started_at,
            p.embed_error,
            now_ms
        ],
    )?;
    Ok(())
}

/// At start: every job a killed process left `processing` is paused (or
/// failed, when it hung), then paused jobs are pending again. Returns
/// how many jobs changed state.
pub fn recover_jobs(c: &Connection, now_ms: i64, hang_ms: i64) -> rusqlite::Result<usize> {
    let tx = begin(c)?;
    let open: Vec<Job> = tx
        .prepare(&format!(
            "{JOB_SQL} WHERE embed_status IN ('processing', 'paused')"
        ))?
        .query_map([], job)?
        .collect::<rusqlite::Result<_>>()?;
    for j in &open {
        set_progress(
            &tx,
            j.id,
            &jobs::recover(&j.progress, now_ms, hang_ms),
            now_ms,
        )?;
    }
    tx.commit()?;
    Ok(open.len())
}

/// One chunk of a job, to embed.
#[derive(Debug, Clone, PartialEq)]
pub struct JobItem {
    /// Its position in the job.
    pub ord: u64,
    /// The item (None: deleted since the job was made).
    pub item: Option<Item>,
}

/// A job's chunks at positions `[from, to)`.
pub fn job_items(c: &Connection, job: i64, from: u64, to: u64) -> rusqlite::Result<Vec<JobItem>> {
    let mut s = c.prepare_cached(
        "SELECT j.ord, m.id, m.kind, m.stream, m.source_id, m.chunk, m.text, m.time_ms, m.app,
                m.collection, m.thread, m.seq
         FROM memory_job_items j LEFT JOIN memory_items m ON m.id = j.item_id
         WHERE j.job_id = ?1 AND j.ord >= ?2 AND j.ord < ?3 ORDER BY j.ord",
    )?;
    let rows = s.query_map(params![job, from, to], |r| {
        let ord: u64 = r.get(0)?;
        let id: Option<i64> = r.get(1)?;
        let item = match id {
            None => None,
            Some(_) => Some(Item {
                id: r.get(1)?,
                kind: kind_of(&r.get::<_, String>(2)?)?,
                stream: stream_of(&r.get::<_, String>(3)?)?,
                source_id: r.get(4)?,
                chunk: r.get(5)?,
                text: r.get(6)?,
                time_ms: r.get(7)?,
                app: r.get(8)?,
                collection: r.get(9)?,
                thread: r.get(10)?,
                seq: r.get(11)?,
            }),
        };
        Ok(JobItem { ord, item })
    })?;
    rows.collect()
}

/// The time of the oldest item of `index`'s type it still has to embed:
/// in an open job past its checkpoint, or not yet in a job (None when
/// there is none).
pub fn oldest_unembedded(c: &Connection, index: &Index) -> rusqlite::Result<Option<i64>> {
    let queued: Option<i64> = c.query_row(
        "SELECT min(m.time_ms) FROM memory_jobs j
         JOIN memory_job_items ji ON ji.job_id = j.id
         JOIN memory_items m ON m.id = ji.item_id
         WHERE j.kind = ?1 AND j.generation = ?2
           AND j.embed_status IN ('pending', 'processing', 'paused')
           AND ji.ord >= j.chunks_embedded",
        params![index.kind.as_str(), index.generation],
        |r| r.get(0),
    )?;
    let new: Option<i64> = c.query_row(
        "SELECT min(time_ms) FROM memory_items WHERE kind = ?1 AND id > ?2",
        params![index.kind.as_str(), index.enqueued_upto],
        |r| r.get(0),
    )?;
    Ok(match (queued, new) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// Local AI paused: every open job (pending or processing) is `paused`
/// until [`resume_paused_jobs`]. Returns how many.
pub fn pause_open_jobs(c: &Connection) -> rusqlite::Result<usize> {
    c.execute(
        "UPDATE memory_jobs SET embed_status = 'paused' WHERE embed_status IN ('pending', 'processing')",
        [],
    )
}

/// Local AI restored: paused jobs are pending again (at their checkpoint).
pub fn resume_paused_jobs(c: &Connection) -> rusqlite::Result<usize> {
    c.execute(
        "UPDATE memory_jobs SET embed_status = 'pending' WHERE embed_status = 'paused'",
        [],
    )
}
