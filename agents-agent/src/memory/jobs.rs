//! The embedding job's state machine (seed 003 "Resumable Ingestion
//! State Machine"). Pure: the store persists what these functions decide.
//!
//! ```text
//! pending → processing → done
//!              ├──→ paused (crash or thermal) → pending
//!              └──→ failed (hung over 5 minutes, terminal, with embed_error)
//! ```

use std::fmt;
use std::str::FromStr;

/// A job in `processing` this long without finishing has hung (the
/// default of `[memory] hang_timeout_s`).
pub const HANG_MS: i64 = 5 * 60 * 1000;

/// `embed_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Waiting for the embedder.
    Pending,
    /// Being embedded, batch by batch.
    Processing,
    /// Every chunk embedded.
    Done,
    /// Stopped by a crash or the thermal state; becomes pending again.
    Paused,
    /// Hung or refused for good (terminal).
    Failed,
}

impl Status {
    /// Every status, in display order.
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Processing,
        Status::Done,
        Status::Paused,
        Status::Failed,
    ];

    /// Its name in `embed_status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Processing => "processing",
            Status::Done => "done",
            Status::Paused => "paused",
            Status::Failed => "failed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Status::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown embed_status {s:?}"))
    }
}

/// What a job's row holds of its progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// `embed_status`.
    pub status: Status,
    /// Chunks embedded so far: the checkpoint after every batch.
    pub chunks_embedded: u64,
    /// Chunks in the job.
    pub total_chunks: u64,
    /// When processing started (Unix ms), for hang detection.
    pub embed_started_at: Option<i64>,
    /// Why it failed.
    pub embed_error: Option<String>,
}

/// At start (or after a restart): a job left `processing` by a killed
/// process is `paused` — or `failed` when its current batch started over
/// `hang_ms` ago — and a `paused` one (a crash, or a clean stop between
/// batches) is `pending` again, to resume at its checkpoint. Other states
/// are kept.
pub fn recover(p: &Progress, now_ms: i64, hang_ms: i64) -> Progress {
    let mut p = p.clone();
    if p.status == Status::Processing {
        p.status = Status::Paused;
        if p.embed_started_at.is_some_and(|t| now_ms - t > hang_ms) {
            p.status = Status::Failed;
            p.embed_error = Some(format!(
                "hung: processing for over {} s (at chunk {} of {}); \
                 `coworkctl memory reindex` embeds its type again",
                hang_ms / 1000,
                p.chunks_embedded,
                p.total_chunks
            ));
        }
    }
    if p.status == Status::Paused {
        p.status = Status::Pending;
    }
    p
}

/// The next batch of a job: chunk positions `[from, to)`, or None when
/// every chunk is embedded. Resumes at the checkpoint, so a job killed
/// after batch 3 of 10 starts at batch 4.
pub fn next_batch(p: &Progress, batch: u64) -> Option<(u64, u64)> {
    (p.chunks_embedded < p.total_chunks).then(|| {
        (
            p.chunks_embedded,
            (p.chunks_embedded + batch.max(1)).min(p.total_chunks),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: Status, done: u64, started: Option<i64>) -> Progress {
        Progress {
            status,
            chunks_embedded: done,
            total_chunks: 500,
            embed_started_at: started,
            embed_error: None,
        }
    }

    #[test]
    fn a_crash_pauses_then_resumes_and_an_old_one_fails() {
        let now = 10 * HANG_MS;
        let crashed = recover(
            &job(Status::Processing, 150, Some(now - 1000)),
            now,
            HANG_MS,
        );
        assert_eq!(crashed.status, Status::Pending);
        assert_eq!(crashed.chunks_embedded, 150, "the checkpoint is kept");
        let hung = recover(
            &job(Status::Processing, 150, Some(now - HANG_MS - 1)),
            now,
            HANG_MS,
        );
        assert_eq!(hung.status, Status::Failed);
        assert!(hung.embed_error.unwrap().contains("150 of 500"));
        assert_eq!(
            recover(&job(Status::Paused, 10, None), now, HANG_MS).status,
            Status::Pending
        );
        for kept in [Status::Done, Status::Failed, Status::Pending] {
            assert_eq!(recover(&job(kept, 0, None), now, HANG_MS).status, kept);
        }
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
        }
    }

    #[test]
    fn batches_resume_at_the_checkpoint() {
        // Batch 3 of 10 (50 each) committed: the next is batch 4.
        assert_eq!(
            next_batch(&job(Status::Pending, 150, None), 50),
            Some((150, 200))
        );
        assert_eq!(
            next_batch(&job(Status::Pending, 480, None), 50),
            Some((480, 500))
        );
        assert_eq!(next_batch(&job(Status::Pending, 500, None), 50), None);
    }
}
