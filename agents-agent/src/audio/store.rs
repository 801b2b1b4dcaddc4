//! Transcripts in cowork.db: `audio_transcripts` (one per capture
//! segment, keyed by its id) and `audio_transcript_segments` (the timed
//! pieces). The only SQL for them. Capture's segments are read through
//! `context::store`. The queue is "segments after the last one
//! transcribed": segments are taken in id order (capture's ids only grow)
//! and every one taken gets a transcript row (done, empty, failed or
//! missing), so a transcription killed half-way simply runs again.

use super::whisper::TimedText;
use crate::context::store as capture;
use cowork_db::{Owner, Step};
use rusqlite::{params, Connection};

/// Audio as an owner of tables (append only).
pub const OWNER: Owner = Owner {
    name: "audio",
    steps: &[Step::Sql(
        "CREATE TABLE audio_transcripts (
            segment_id INTEGER PRIMARY KEY,
            started_ms INTEGER NOT NULL,
            ended_ms INTEGER NOT NULL,
            status TEXT NOT NULL,
            text TEXT NOT NULL,
            model TEXT NOT NULL,
            audio_ms INTEGER NOT NULL,
            took_ms INTEGER NOT NULL,
            cloud INTEGER NOT NULL DEFAULT 0,
            error TEXT NOT NULL,
            created_ms INTEGER NOT NULL);
         CREATE INDEX audio_transcripts_started ON audio_transcripts(started_ms);
         CREATE TABLE audio_transcript_segments (
            segment_id INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            start_ms INTEGER NOT NULL,
            end_ms INTEGER NOT NULL,
            text TEXT NOT NULL,
            PRIMARY KEY (segment_id, seq));",
    )],
};

/// A recorded segment waiting for its transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// capture_audio_segments.id.
    pub id: i64,
    /// Its file name in the audio folder (as capture wrote it; checked
    /// before use).
    pub file: String,
    /// Start, Unix ms.
    pub started_ms: i64,
    /// End, Unix ms.
    pub ended_ms: i64,
}

/// How a transcription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Text was heard.
    Done,
    /// No speech in it.
    Empty,
    /// whisper.cpp or the file failed.
    Failed,
    /// The file was gone (retention, or deleted by hand).
    Missing,
}

impl Status {
    /// Its name in the table and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Done => "done",
            Status::Empty => "empty",
            Status::Failed => "failed",
            Status::Missing => "missing",
        }
    }
}

/// A transcript to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTranscript {
    /// The segment.
    pub segment: Pending,
    /// How it ended.
    pub status: Status,
    /// Its timed pieces.
    pub pieces: Vec<TimedText>,
    /// The model ("tiny.en").
    pub model: String,
    /// Audio length, ms.
    pub audio_ms: i64,
    /// Time taken, ms.
    pub took_ms: i64,
    /// Why it failed.
    pub error: String,
}

/// A stored transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// capture_audio_segments.id.
    pub segment_id: i64,
    /// Start, Unix ms.
    pub started_ms: i64,
    /// End, Unix ms.
    pub ended_ms: i64,
    /// done, empty, failed, missing.
    pub status: String,
    /// The whole text.
    pub text: String,
    /// Its timed pieces.
    pub pieces: Vec<TimedText>,
    /// The model.
    pub model: String,
    /// Audio length, ms.
    pub audio_ms: i64,
    /// Time taken, ms.
    pub took_ms: i64,
    /// Sent to a cloud service (never without consent).
    pub cloud: bool,
    /// Why it failed.
    pub error: String,
    /// The segment's file name (when capture still has its row).
    pub file: Option<String>,
}

/// The last segment transcribed (0 before any).
pub fn last_transcribed(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT coalesce(max(segment_id), 0) FROM audio_transcripts",
        [],
        |r| r.get(0),
    )
}

/// The oldest segment without a transcript.
pub fn next_pending(c: &Connection) -> rusqlite::Result<Option<Pending>> {
    let after = last_transcribed(c)?;
    Ok(capture::audio_segments_after(c, after, 1)?
        .into_iter()
        .next()
        .map(|s| Pending {
            id: s.id,
            file: s.file,
            started_ms: s.started_ms,
            ended_ms: s.ended_ms,
        }))
}

/// Segments waiting, and transcripts stored.
pub fn counts(c: &Connection) -> rusqlite::Result<(u64, u64)> {
    let done: i64 = c.query_row("SELECT count(*) FROM audio_transcripts", [], |r| r.get(0))?;
    let pending = capture::audio_segments_count_after(c, last_transcribed(c)?)?;
    Ok((pending, done.max(0) as u64))
}

/// Store a transcript and its pieces, in one transaction.
pub fn insert(c: &Connection, t: &NewTranscript, now_ms: i64) -> rusqlite::Result<()> {
    let tx = c.unchecked_transaction()?;
    let text = t
        .pieces
        .iter()
        .map(|p| p.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    tx.execute(
        "INSERT OR REPLACE INTO audio_transcripts (segment_id, started_ms, ended_ms, status, text,
            model, audio_ms, took_ms, cloud, error, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10)",
        params![
            t.segment.id,
            t.segment.started_ms,
            t.segment.ended_ms,
            t.status.as_str(),
            text,
            t.model,
            t.audio_ms,
            t.took_ms,
            t.error,
            now_ms
        ],
    )?;
    tx.execute(
        "DELETE FROM audio_transcript_segments WHERE segment_id = ?1",
        [t.segment.id],
    )?;
    for (i, p) in t.pieces.iter().enumerate() {
        tx.execute(
            "INSERT INTO audio_transcript_segments (segment_id, seq, start_ms, end_ms, text)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![t.segment.id, i as i64, p.start_ms, p.end_ms, p.text],
        )?;
    }
    tx.commit()
}

/// Transcripts of audio that started at or after `since_ms`, newest
/// first.
pub fn list(c: &Connection, since_ms: i64, limit: u32) -> rusqlite::Result<Vec<Transcript>> {
    let mut s = c.prepare_cached(
        "SELECT segment_id, started_ms, ended_ms, status, text, model, audio_ms, took_ms, cloud,
            error FROM audio_transcripts WHERE started_ms >= ?1
         ORDER BY started_ms DESC, segment_id DESC LIMIT ?2",
    )?;
    let rows = s
        .query_map(params![since_ms, limit], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    fill(c, rows)
}

/// Finished transcripts with text, by segment id after `after` (what
/// memory indexes), oldest first.
pub fn with_text_after(
    c: &Connection,
    after: i64,
    limit: u32,
) -> rusqlite::Result<Vec<Transcript>> {
    let mut s = c.prepare_cached(
        "SELECT segment_id, started_ms, ended_ms, status, text, model, audio_ms, took_ms, cloud,
            error FROM audio_transcripts WHERE segment_id > ?1 AND status = 'done'
         ORDER BY segment_id LIMIT ?2",
    )?;
    let rows = s
        .query_map(params![after, limit], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Transcript> {
    Ok(Transcript {
        segment_id: r.get(0)?,
        started_ms: r.get(1)?,
        ended_ms: r.get(2)?,
        status: r.get(3)?,
        text: r.get(4)?,
        pieces: Vec::new(),
        model: r.get(5)?,
        audio_ms: r.get(6)?,
        took_ms: r.get(7)?,
        cloud: r.get::<_, i64>(8)? != 0,
        error: r.get(9)?,
        file: None,
    })
}

fn fill(c: &Connection, mut rows: Vec<Transcript>) -> rusqlite::Result<Vec<Transcript>> {
    for t in &mut rows {
        let mut s = c.prepare_cached(
            "SELECT start_ms, end_ms, text FROM audio_transcript_segments
             WHERE segment_id = ?1 ORDER BY seq",
        )?;
        t.pieces = s
            .query_map([t.segment_id], |r| {
                Ok(TimedText {
                    start_ms: r.get(0)?,
                    end_ms: r.get(1)?,
                    text: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        t.file = capture::audio_segment_file(c, t.segment_id)?;
    }
    Ok(rows)
}

/// Delete the transcripts whose segment capture's retention deleted:
/// how many went.
pub fn forget_deleted(c: &Connection) -> rusqlite::Result<usize> {
    let ids: Vec<i64> = c
        .prepare("SELECT segment_id FROM audio_transcripts ORDER BY segment_id")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    // No segment table (capture never ran here): nothing is known gone.
    if ids.is_empty() || !capture::has_audio_segments(c)? {
        return Ok(0);
    }
    let alive: std::collections::HashSet<i64> = capture::existing_rows(c, "audio", &ids)?
        .into_iter()
        .collect();
    let tx = c.unchecked_transaction()?;
    let mut n = 0;
    for id in ids.iter().filter(|i| !alive.contains(i)) {
        tx.execute(
            "DELETE FROM audio_transcript_segments WHERE segment_id = ?1",
            [id],
        )?;
        n += tx.execute("DELETE FROM audio_transcripts WHERE segment_id = ?1", [id])?;
    }
    tx.commit()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        crate::db::migrated(&[OWNER])
    }

    fn segment(c: &Connection, file: &str, started: i64) -> i64 {
        c.execute(
            "INSERT INTO capture_audio_segments (file, started_ms, ended_ms) VALUES (?1, ?2, ?3)",
            params![file, started, started + 1000],
        )
        .unwrap();
        c.last_insert_rowid()
    }

    #[test]
    fn the_queue_is_segments_without_transcripts_and_retention_is_followed() {
        let c = db();
        assert_eq!(next_pending(&c).unwrap(), None, "no capture table yet");
        assert_eq!(counts(&c).unwrap(), (0, 0));
        c.execute_batch(
            "CREATE TABLE capture_audio_segments (id INTEGER PRIMARY KEY AUTOINCREMENT,
                file TEXT NOT NULL UNIQUE, started_ms INTEGER NOT NULL, ended_ms INTEGER NOT NULL)",
        )
        .unwrap();
        let a = segment(&c, "seg-1000-2000.wav", 1000);
        let b = segment(&c, "seg-5000-6000.wav", 5000);
        let first = next_pending(&c).unwrap().unwrap();
        assert_eq!((first.id, first.file.as_str()), (a, "seg-1000-2000.wav"));
        insert(
            &c,
            &NewTranscript {
                segment: first,
                status: Status::Done,
                pieces: vec![
                    TimedText {
                        start_ms: 0,
                        end_ms: 900,
                        text: "Ever tried.".into(),
                    },
                    TimedText {
                        start_ms: 900,
                        end_ms: 1000,
                        text: "Ever failed.".into(),
                    },
                ],
                model: "tiny.en".into(),
                audio_ms: 1000,
                took_ms: 120,
                error: String::new(),
            },
            7,
        )
        .unwrap();
        assert_eq!(next_pending(&c).unwrap().map(|p| p.id), Some(b));
        assert_eq!(counts(&c).unwrap(), (1, 1));
        let all = list(&c, 0, 10).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].text, "Ever tried. Ever failed.");
        assert_eq!(all[0].pieces.len(), 2);
        assert_eq!(all[0].file.as_deref(), Some("seg-1000-2000.wav"));
        assert!(!all[0].cloud);
        assert!(list(&c, 2000, 10).unwrap().is_empty());
        assert_eq!(with_text_after(&c, 0, 10).unwrap().len(), 1);
        assert!(with_text_after(&c, a, 10).unwrap().is_empty());
        // Capture's retention deleted the segment: its transcript goes.
        c.execute("DELETE FROM capture_audio_segments WHERE id = ?1", [a])
            .unwrap();
        assert_eq!(forget_deleted(&c).unwrap(), 1);
        assert_eq!(counts(&c).unwrap(), (1, 0));
    }
}
