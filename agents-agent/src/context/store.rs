//! Read-only queries of capture's tables (capture-agent owns and migrates
//! them; agents-agent never writes or alters them): the recent windows of
//! Layer 1, and the changed rows memory indexes. The only SQL for them.

use super::layer1::Window;
use rusqlite::{Connection, OptionalExtension};

/// The `recent` newest activities, newest first; empty when capture has
/// none, or has not created its tables yet.
pub fn recent_windows(c: &Connection, recent: u32) -> Vec<Window> {
    let Ok(mut s) = c.prepare(
        "SELECT app_name, window_title, url, ended_ms IS NULL FROM capture_activities
         ORDER BY started_ms DESC, id DESC LIMIT ?1",
    ) else {
        return Vec::new();
    };
    let Ok(rows) = s.query_map([recent], |r| {
        Ok(Window {
            app: r.get(0)?,
            title: r.get(1)?,
            url: r.get(2)?,
            open: r.get(3)?,
        })
    }) else {
        return Vec::new();
    };
    rows.filter_map(Result::ok).collect()
}

/// One activity (a window's interval), as the apps' read lane gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// The app.
    pub app: String,
    /// The window's title.
    pub title: String,
    /// The URL, when capture knows it.
    pub url: Option<String>,
    /// Unix ms.
    pub started_ms: i64,
    /// Unix ms (None: still in focus).
    pub ended_ms: Option<i64>,
}

/// Activities that started at `since_ms` or later (or are still open),
/// newest first, at most `limit`; empty without capture's tables.
pub fn activities_since(c: &Connection, since_ms: i64, limit: u32) -> Vec<Activity> {
    let Ok(mut s) = c.prepare_cached(
        "SELECT app_name, window_title, url, started_ms, ended_ms FROM capture_activities
         WHERE started_ms >= ?1 OR ended_ms IS NULL OR ended_ms >= ?1
         ORDER BY started_ms DESC, id DESC LIMIT ?2",
    ) else {
        return Vec::new();
    };
    let Ok(rows) = s.query_map(rusqlite::params![since_ms, limit], |r| {
        Ok(Activity {
            app: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
            title: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
            url: r.get(2)?,
            started_ms: r.get(3)?,
            ended_ms: r.get(4)?,
        })
    }) else {
        return Vec::new();
    };
    rows.filter_map(Result::ok).collect()
}

/// The app in focus and since when it has been (its activities back to
/// the last change of app), from capture's activities; None when capture
/// has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Focus {
    /// The app in focus now.
    pub app: String,
    /// The newest window's title.
    pub title: String,
    /// When this app came into focus (Unix ms).
    pub since_ms: i64,
    /// The newest activity's row id.
    pub activity_id: i64,
    /// The newest activity's URL, when capture knows it.
    pub url: Option<String>,
}

/// Where the person's focus is (read only; the newest 200 activities).
pub fn focus(c: &Connection) -> Option<Focus> {
    let mut s = c
        .prepare(
            "SELECT id, app_name, window_title, started_ms, url FROM capture_activities
             ORDER BY started_ms DESC, id DESC LIMIT 200",
        )
        .ok()?;
    let rows: Vec<(i64, String, String, i64, Option<String>)> = s
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                r.get(3)?,
                r.get(4)?,
            ))
        })
        .ok()?
        .filter_map(Result::ok)
        .collect();
    let (id, app, title, mut since, url) = rows.first().cloned()?;
    for (_, a, _, started, _) in &rows[1..] {
        if *a != app {
            break;
        }
        since = *started;
    }
    Some(Focus {
        app,
        title,
        since_ms: since,
        activity_id: id,
        url,
    })
}

/// One changed capture row, as memory reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRow {
    /// Its id in its table.
    pub id: i64,
    /// Its text: app, title and URL of an activity; the typed text of a
    /// keystroke chunk; the copied text of a clipboard event.
    pub text: String,
    /// The app it happened in.
    pub app: String,
    /// The window's title (activities and chunks), for context.
    pub title: String,
    /// The browser URL of an activity.
    pub url: Option<String>,
    /// When it started (Unix ms).
    pub time_ms: i64,
    /// Closed: an activity that ended, a chunk that was flushed (a
    /// clipboard event always is).
    pub closed: bool,
    /// Its high-water mark: `updated_ms` (activities, chunks) or `at_ms`.
    pub mark_ms: i64,
}

/// The capture tables memory reads, by its stream name.
fn changed_sql(stream: &str) -> Option<&'static str> {
    Some(match stream {
        "window" => {
            "SELECT id, '', app_name, window_title, url, started_ms, ended_ms IS NOT NULL, updated_ms
             FROM capture_activities WHERE (updated_ms, id) > (?1, ?2)
             ORDER BY updated_ms, id LIMIT ?3"
        }
        "keystrokes" => {
            "SELECT id, text, app_name, window_title, NULL, started_ms, flush_reason IS NOT NULL,
                updated_ms
             FROM capture_keystroke_chunks WHERE (updated_ms, id) > (?1, ?2)
             ORDER BY updated_ms, id LIMIT ?3"
        }
        "clipboard" => {
            // Written once and never changed: ids alone order them (an
            // event's time is when it happened, not when it was stored).
            "SELECT id, coalesce(text, ''), source_app, window_title, NULL, at_ms, 1, at_ms
             FROM capture_clipboard_events WHERE ?1 = ?1 AND id > ?2
             ORDER BY id LIMIT ?3"
        }
        _ => return None,
    })
}

/// Rows of capture's `stream` ("window", "keystrokes", "clipboard")
/// written or changed after the mark `(mark_ms, id)` (clipboard events,
/// never changed once written: after the id), oldest first, at most
/// `limit`; empty when capture has not created its tables yet.
pub fn changed_rows(
    c: &Connection,
    stream: &str,
    after: (i64, i64),
    limit: u32,
) -> rusqlite::Result<Vec<CaptureRow>> {
    let Some(sql) = changed_sql(stream) else {
        return Ok(Vec::new());
    };
    let mut s = match c.prepare_cached(sql) {
        Ok(s) => s,
        Err(e) if no_table(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let rows = s.query_map(rusqlite::params![after.0, after.1, limit], |r| {
        Ok(CaptureRow {
            id: r.get(0)?,
            text: r.get(1)?,
            app: r.get(2)?,
            title: r.get(3)?,
            url: r.get(4)?,
            time_ms: r.get(5)?,
            closed: r.get(6)?,
            mark_ms: r.get(7)?,
        })
    })?;
    rows.collect()
}

/// The time of the oldest closed row of `stream` after the mark
/// `(mark_ms, id)` (as [`changed_rows`] reads them): None when there is
/// none.
pub fn oldest_after(
    c: &Connection,
    stream: &str,
    after: (i64, i64),
) -> rusqlite::Result<Option<i64>> {
    let sql = match stream {
        "window" => {
            "SELECT min(started_ms) FROM capture_activities
             WHERE (updated_ms, id) > (?1, ?2) AND ended_ms IS NOT NULL"
        }
        "keystrokes" => {
            "SELECT min(started_ms) FROM capture_keystroke_chunks
             WHERE (updated_ms, id) > (?1, ?2) AND flush_reason IS NOT NULL"
        }
        "clipboard" => "SELECT min(at_ms) FROM capture_clipboard_events WHERE ?1 = ?1 AND id > ?2",
        _ => return Ok(None),
    };
    match c.query_row(sql, rusqlite::params![after.0, after.1], |r| r.get(0)) {
        Err(e) if no_table(&e) => Ok(None),
        other => other,
    }
}

fn no_table(e: &rusqlite::Error) -> bool {
    e.to_string().contains("no such table")
}

/// Which of `ids` still exist in capture's `stream` table (retention
/// deletes old rows), asked in pages of a few hundred.
pub fn existing_rows(c: &Connection, stream: &str, ids: &[i64]) -> rusqlite::Result<Vec<i64>> {
    let table = match stream {
        "window" => "capture_activities",
        "keystrokes" => "capture_keystroke_chunks",
        "clipboard" => "capture_clipboard_events",
        "audio" => "capture_audio_segments",
        _ => return Ok(Vec::new()),
    };
    const PAGE: usize = 500;
    let mut out = Vec::with_capacity(ids.len());
    for page in ids.chunks(PAGE) {
        let marks = vec!["?"; page.len()].join(",");
        let mut s = match c.prepare_cached(&format!("SELECT id FROM {table} WHERE id IN ({marks})"))
        {
            Ok(s) => s,
            Err(e) if no_table(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        for id in s.query_map(rusqlite::params_from_iter(page), |r| r.get(0))? {
            out.push(id?);
        }
    }
    Ok(out)
}

/// A recorded audio segment (capture's `capture_audio_segments` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSegment {
    /// Its id (ids only grow).
    pub id: i64,
    /// Its file name in the audio folder, as capture wrote it.
    pub file: String,
    /// Start, Unix ms.
    pub started_ms: i64,
    /// End, Unix ms.
    pub ended_ms: i64,
}

/// Audio segments with an id above `after`, oldest first (none before
/// capture made its table).
pub fn audio_segments_after(
    c: &Connection,
    after: i64,
    limit: u32,
) -> rusqlite::Result<Vec<AudioSegment>> {
    let mut s = match c.prepare_cached(
        "SELECT id, file, started_ms, ended_ms FROM capture_audio_segments
         WHERE id > ?1 ORDER BY id LIMIT ?2",
    ) {
        Ok(s) => s,
        Err(e) if no_table(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let rows = s.query_map(rusqlite::params![after, limit], |r| {
        Ok(AudioSegment {
            id: r.get(0)?,
            file: r.get(1)?,
            started_ms: r.get(2)?,
            ended_ms: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// How many audio segments have an id above `after`.
pub fn audio_segments_count_after(c: &Connection, after: i64) -> rusqlite::Result<u64> {
    match c.query_row(
        "SELECT count(*) FROM capture_audio_segments WHERE id > ?1",
        [after],
        |r| r.get::<_, i64>(0),
    ) {
        Ok(n) => Ok(n.max(0) as u64),
        Err(e) if no_table(&e) => Ok(0),
        Err(e) => Err(e),
    }
}

/// Has capture made its audio segments table?
pub fn has_audio_segments(c: &Connection) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'capture_audio_segments'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// The file of audio segment `id`, while capture keeps its row.
pub fn audio_segment_file(c: &Connection, id: i64) -> rusqlite::Result<Option<String>> {
    match c
        .prepare_cached("SELECT file FROM capture_audio_segments WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
    {
        Err(e) if no_table(&e) => Ok(None),
        other => other,
    }
}

/// Whether the person turned `stream` on; a stream never switched is off
/// here (used for `audio`, which capture records only once turned on).
pub fn stream_on(c: &Connection, stream: &str) -> rusqlite::Result<bool> {
    let r = c
        .prepare_cached("SELECT enabled FROM capture_streams WHERE stream = ?1")
        .and_then(|mut s| s.query_row([stream], |r| r.get::<_, i64>(0)).optional());
    match r {
        Ok(v) => Ok(v == Some(1)),
        Err(e) if no_table(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The streams the person turned off (`capture_streams.enabled = 0`);
/// streams never switched keep capture's defaults and are not listed.
pub fn disabled_streams(c: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut s = match c.prepare_cached("SELECT stream FROM capture_streams WHERE enabled = 0") {
        Ok(s) => s,
        Err(e) if no_table(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let rows = s.query_map([], |r| r.get(0))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_capture_activities_newest_first_and_nothing_without_them() {
        let c = Connection::open_in_memory().unwrap();
        assert!(
            recent_windows(&c, 5).is_empty(),
            "no capture tables: nothing"
        );
        c.execute_batch(
            "CREATE TABLE capture_activities (id INTEGER PRIMARY KEY, app_name TEXT, window_title TEXT,
                url TEXT, started_ms INTEGER, ended_ms INTEGER);
             INSERT INTO capture_activities VALUES (1, 'Code', 'main.rs', NULL, 1, 2);
             INSERT INTO capture_activities VALUES (2, 'Firefox', 'Docs', 'https://d.test', 3, NULL);",
        )
        .unwrap();
        let w = recent_windows(&c, 5);
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].app.as_str(), w[0].open), ("Firefox", true));
        assert_eq!(
            (w[1].title.as_str(), w[1].url.as_deref()),
            ("main.rs", None)
        );
        assert_eq!(recent_windows(&c, 1).len(), 1);
    }
}
