//! capture-agent's tables in cowork.db: creation and versioned migration
//! (capture's own, never another process's tables), batched upserts in one
//! transaction, crash recovery of open rows, retention, per-stream consent
//! and the recent-activity query. The only module here that speaks SQL.

use crate::event::{Stream, StreamSet};
use crate::pipeline::NextIds;
use crate::record::Row;
use crate::source::now_ms;
use cowork_db::{Ledger, MigrateError, Owner, Step};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};

/// Where capture's schema versions are recorded.
const LEDGER: Ledger = Ledger::Single("capture_schema_migrations");

/// Every table capture-agent owns. Nothing else in the file is touched.
pub const TABLES: &[&str] = &[
    "capture_schema_migrations",
    "capture_streams",
    "capture_activities",
    "capture_focus_sessions",
    "capture_idle_periods",
    "capture_keystroke_chunks",
    "capture_clipboard_events",
    "capture_audio_segments",
];

/// Capture's migrations, in order; migration `i` brings the schema to
/// version `i + 1`. Append only.
const MIGRATIONS: &[Step] = &[
    // 1: the four streams and consent.
    Step::Sql(
        "CREATE TABLE capture_streams (
        stream TEXT PRIMARY KEY,
        enabled INTEGER NOT NULL,
        changed_ms INTEGER NOT NULL
     );
     CREATE TABLE capture_activities (
        id INTEGER PRIMARY KEY,
        app_name TEXT NOT NULL,
        app_id TEXT NOT NULL,
        window_title TEXT NOT NULL,
        url TEXT,
        started_ms INTEGER NOT NULL,
        ended_ms INTEGER,
        end_reason TEXT,
        focus_session_id INTEGER,
        updated_ms INTEGER NOT NULL
     );
     CREATE INDEX capture_activities_started ON capture_activities(started_ms);
     CREATE TABLE capture_focus_sessions (
        id INTEGER PRIMARY KEY,
        app_name TEXT NOT NULL,
        app_id TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        ended_ms INTEGER,
        end_reason TEXT,
        activity_count INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
     );
     CREATE INDEX capture_focus_sessions_started ON capture_focus_sessions(started_ms);
     CREATE TABLE capture_idle_periods (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        started_ms INTEGER NOT NULL,
        ended_ms INTEGER,
        updated_ms INTEGER NOT NULL
     );
     CREATE INDEX capture_idle_periods_started ON capture_idle_periods(started_ms);
     CREATE TABLE capture_keystroke_chunks (
        id INTEGER PRIMARY KEY,
        text TEXT NOT NULL,
        char_count INTEGER NOT NULL,
        key_count INTEGER NOT NULL,
        app_name TEXT NOT NULL,
        app_id TEXT NOT NULL,
        window_title TEXT NOT NULL,
        activity_id INTEGER,
        started_ms INTEGER NOT NULL,
        ended_ms INTEGER NOT NULL,
        flush_reason TEXT,
        updated_ms INTEGER NOT NULL
     );
     CREATE INDEX capture_keystroke_chunks_started ON capture_keystroke_chunks(started_ms);
     CREATE TABLE capture_clipboard_events (
        id INTEGER PRIMARY KEY,
        op TEXT NOT NULL,
        text TEXT,
        char_count INTEGER,
        source_app TEXT NOT NULL,
        source_app_id TEXT NOT NULL,
        window_title TEXT NOT NULL,
        activity_id INTEGER,
        at_ms INTEGER NOT NULL
     );
     CREATE INDEX capture_clipboard_events_at ON capture_clipboard_events(at_ms);",
    ),
    // 2: rows by when they were last written, for readers that follow
    // changes (agents-agent's memory reads what changed since its mark).
    Step::Sql(
        "CREATE INDEX capture_activities_updated ON capture_activities(updated_ms, id);
         CREATE INDEX capture_keystroke_chunks_updated ON capture_keystroke_chunks(updated_ms, id);",
    ),
    // 3: the audio stream: one row per recorded segment file (in
    // `$COWORK_HOME/audio/`). Ids only grow (AUTOINCREMENT), so readers
    // can follow new segments by id.
    Step::Sql(
        "CREATE TABLE capture_audio_segments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        file TEXT NOT NULL UNIQUE,
        started_ms INTEGER NOT NULL,
        ended_ms INTEGER NOT NULL,
        sample_rate INTEGER NOT NULL,
        samples INTEGER NOT NULL,
        speech_ms INTEGER NOT NULL,
        peak_db REAL NOT NULL,
        source TEXT NOT NULL,
        created_ms INTEGER NOT NULL
     );
     CREATE INDEX capture_audio_segments_started ON capture_audio_segments(started_ms);",
    ),
];

/// capture-agent as an owner of tables in cowork.db.
const OWNER: Owner = Owner {
    name: "capture",
    steps: MIGRATIONS,
};

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = OWNER.version();

/// Errors of the capture store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("{what} ({path}): {source}")]
    Sql {
        /// What was being done.
        what: &'static str,
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file was migrated by a newer capture-agent.
    #[error("{path} has capture schema version {found}, newer than this capture-agent's {SCHEMA_VERSION}: upgrade Cowork")]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// The version found.
        found: i64,
    },
}

/// Which records a recent-activity query returns.
#[derive(Debug, Clone, Default)]
pub struct RecentQuery {
    /// Only records overlapping [from, to) (Unix ms); None = unbounded.
    pub from_ms: Option<i64>,
    /// See `from_ms`.
    pub to_ms: Option<i64>,
    /// At most this many records, newest first.
    pub limit: usize,
    /// Only these streams; empty = all.
    pub streams: Vec<Stream>,
}

/// One record of recent activity, whatever its stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecentItem {
    /// The stream's name.
    pub stream: String,
    /// activity, focus_session, idle, sleep, keystroke_chunk or clipboard.
    pub kind: String,
    /// Row id in its table.
    pub id: i64,
    /// Start (or the moment), Unix ms.
    pub started_ms: i64,
    /// End, Unix ms; None while open.
    pub ended_ms: Option<i64>,
    /// App name.
    pub app: String,
    /// App id / class.
    pub app_id: String,
    /// Window title.
    pub title: String,
    /// Browser URL.
    pub url: String,
    /// Keystroke or clipboard text.
    pub text: String,
    /// End reason, flush reason or clipboard op.
    pub detail: String,
}

/// The writer side of capture's tables.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Open (creating if needed) cowork.db at `path`: WAL,
    /// `synchronous=NORMAL`, busy timeout; migrate capture's tables; close
    /// rows a crash left open.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |what: &'static str| {
            let path = path.to_path_buf();
            move |source| StoreError::Sql { what, path, source }
        };
        let conn = cowork_db::open(path).map_err(err("cannot open the database"))?;
        // Deleted capture text (retention, rewritten open rows) is zeroed,
        // not left in free pages.
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(err("cannot set secure_delete"))?;
        let mut store = Self {
            conn,
            path: path.to_path_buf(),
        };
        store.migrate()?;
        store.recover()?;
        Ok(store)
    }

    fn err(&self, what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sql {
            what,
            path: self.path.clone(),
            source,
        }
    }

    /// The schema version of capture's tables in this file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        cowork_db::versions(&self.conn, LEDGER, &[OWNER])
            .map(|v| v[0])
            .map_err(|e| self.migrate_error(e))
    }

    fn migrate_error(&self, e: MigrateError) -> StoreError {
        match e {
            MigrateError::TooNew { found, .. } => StoreError::TooNew {
                path: self.path.clone(),
                found,
            },
            MigrateError::Sql { source, .. } => StoreError::Sql {
                what: "cannot migrate capture's tables",
                path: self.path.clone(),
                source,
            },
        }
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        cowork_db::migrate(&mut self.conn, LEDGER, &[OWNER])
            .map(|_| ())
            .map_err(|e| self.migrate_error(e))
    }

    /// Close every row a killed capture-agent left open, at the last time
    /// it was written (reason "crash"). Returns how many were closed.
    pub fn recover(&mut self) -> Result<usize, StoreError> {
        let n = self
            .conn
            .execute_batch(
                "UPDATE capture_activities SET ended_ms = max(started_ms, updated_ms),
                    end_reason = 'crash' WHERE ended_ms IS NULL;
                 UPDATE capture_focus_sessions SET ended_ms = max(started_ms, updated_ms),
                    end_reason = 'crash' WHERE ended_ms IS NULL;
                 UPDATE capture_idle_periods SET ended_ms = max(started_ms, updated_ms)
                    WHERE ended_ms IS NULL;
                 UPDATE capture_keystroke_chunks SET flush_reason = 'crash'
                    WHERE flush_reason IS NULL;",
            )
            .map(|_| self.conn.changes() as usize)
            .map_err(self.err("cannot close rows left open by a crash"))?;
        Ok(n)
    }

    /// The next free id of each table.
    pub fn next_ids(&self) -> Result<NextIds, StoreError> {
        let next = |table: &str| -> Result<i64, StoreError> {
            self.conn
                .query_row(
                    &format!("SELECT coalesce(max(id), 0) + 1 FROM {table}"),
                    [],
                    |r| r.get(0),
                )
                .map_err(self.err("cannot read row ids"))
        };
        Ok(NextIds {
            activity: next("capture_activities")?,
            focus: next("capture_focus_sessions")?,
            away: next("capture_idle_periods")?,
            chunk: next("capture_keystroke_chunks")?,
            clipboard: next("capture_clipboard_events")?,
        })
    }

    /// Persisted consent, over `defaults` for streams never switched.
    pub fn load_streams(&self, defaults: StreamSet) -> Result<StreamSet, StoreError> {
        let mut set = defaults;
        let mut stmt = self
            .conn
            .prepare("SELECT stream, enabled FROM capture_streams")
            .map_err(self.err("cannot read stream consent"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))
            .map_err(self.err("cannot read stream consent"))?;
        for row in rows {
            let (name, on) = row.map_err(self.err("cannot read stream consent"))?;
            match name.parse::<Stream>() {
                Ok(s) => set.set(s, on),
                Err(e) => tracing::warn!(error = %e, "ignoring consent for an unknown stream"),
            }
        }
        Ok(set)
    }

    /// Persist one stream's consent.
    pub fn save_stream(&self, stream: Stream, on: bool) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO capture_streams (stream, enabled, changed_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(stream) DO UPDATE SET enabled = excluded.enabled,
                    changed_ms = excluded.changed_ms",
                params![stream.name(), on, now_ms()],
            )
            .map(|_| ())
            .map_err(self.err("cannot save stream consent"))
    }

    /// Write rows (inserting, or updating by id) in one transaction.
    pub fn write(&mut self, rows: &[Row]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let path = self.path.clone();
        let err = |source| StoreError::Sql {
            what: "cannot write capture rows",
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        for row in rows {
            write_row(&tx, row, now).map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// Delete records that ended before `cutoff_ms`. Returns rows deleted.
    pub fn enforce_retention(&mut self, cutoff_ms: i64) -> Result<usize, StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Sql {
            what: "cannot enforce retention",
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let mut n = 0;
        for table in [
            "capture_activities",
            "capture_focus_sessions",
            "capture_idle_periods",
            "capture_keystroke_chunks",
        ] {
            n += tx
                .execute(
                    &format!("DELETE FROM {table} WHERE ended_ms IS NOT NULL AND ended_ms < ?1"),
                    [cutoff_ms],
                )
                .map_err(err)?;
        }
        for table in ["capture_clipboard_events", "capture_audio_segments"] {
            let at = if table == "capture_audio_segments" {
                "ended_ms"
            } else {
                "at_ms"
            };
            n += tx
                .execute(&format!("DELETE FROM {table} WHERE {at} < ?1"), [cutoff_ms])
                .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(n)
    }
}

fn write_row(tx: &rusqlite::Transaction<'_>, row: &Row, now: i64) -> rusqlite::Result<()> {
    match row {
        Row::Activity(a) => {
            tx.prepare_cached(
                "INSERT INTO capture_activities (id, app_name, app_id, window_title, url,
                    started_ms, ended_ms, end_reason, focus_session_id, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT(id) DO UPDATE SET ended_ms = excluded.ended_ms,
                    end_reason = excluded.end_reason, updated_ms = excluded.updated_ms",
            )?
            .execute(params![
                a.id,
                a.app,
                a.app_id,
                a.title,
                a.url,
                a.started_ms,
                a.ended_ms,
                a.end_reason,
                a.focus_session_id,
                now
            ])?;
        }
        Row::Focus(f) => {
            tx.prepare_cached(
                "INSERT INTO capture_focus_sessions (id, app_name, app_id, started_ms, ended_ms,
                    end_reason, activity_count, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(id) DO UPDATE SET ended_ms = excluded.ended_ms,
                    end_reason = excluded.end_reason, activity_count = excluded.activity_count,
                    updated_ms = excluded.updated_ms",
            )?
            .execute(params![
                f.id,
                f.app,
                f.app_id,
                f.started_ms,
                f.ended_ms,
                f.end_reason,
                f.activity_count,
                now
            ])?;
        }
        Row::Away(a) => {
            tx.prepare_cached(
                "INSERT INTO capture_idle_periods (id, kind, started_ms, ended_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET ended_ms = excluded.ended_ms,
                    updated_ms = excluded.updated_ms",
            )?
            .execute(params![a.id, a.kind, a.started_ms, a.ended_ms, now])?;
        }
        Row::Chunk(c) => {
            tx.prepare_cached(
                "INSERT INTO capture_keystroke_chunks (id, text, char_count, key_count, app_name,
                    app_id, window_title, activity_id, started_ms, ended_ms, flush_reason,
                    updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT(id) DO UPDATE SET text = excluded.text,
                    char_count = excluded.char_count, key_count = excluded.key_count,
                    ended_ms = excluded.ended_ms, flush_reason = excluded.flush_reason,
                    updated_ms = excluded.updated_ms",
            )?
            .execute(params![
                c.id,
                c.text,
                c.text.chars().count() as i64,
                c.key_count,
                c.context.app,
                c.context.app_id,
                c.context.title,
                c.context.activity_id,
                c.started_ms,
                c.ended_ms,
                c.flush_reason,
                now
            ])?;
        }
        Row::Clipboard(c) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO capture_clipboard_events (id, op, text, char_count,
                    source_app, source_app_id, window_title, activity_id, at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                c.id,
                c.op,
                c.text,
                c.text.as_ref().map(|t| t.chars().count() as i64),
                c.context.app,
                c.context.app_id,
                c.context.title,
                c.context.activity_id,
                c.at_ms
            ])?;
        }
        // Written once, complete; a file recorded again after a crash
        // (its row may have made it) is ignored.
        Row::Audio(a) => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO capture_audio_segments (file, started_ms, ended_ms,
                    sample_rate, samples, speech_ms, peak_db, source, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                a.file,
                a.started_ms,
                a.ended_ms,
                crate::audio::vad::SAMPLE_RATE,
                a.samples as i64,
                a.speech_ms as i64,
                a.peak_db,
                a.source,
                now
            ])?;
        }
    }
    Ok(())
}

/// A read-only connection for queries, beside the writer (WAL lets them
/// run concurrently).
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    cowork_db::open_reader(path).map_err(|source| StoreError::Sql {
        what: "cannot open the database for reading",
        path: path.to_path_buf(),
        source,
    })
}

/// Recent records across the requested streams, newest first.
pub fn recent(conn: &Connection, q: &RecentQuery) -> Result<Vec<RecentItem>, rusqlite::Error> {
    let want = |s: Stream| q.streams.is_empty() || q.streams.contains(&s);
    let limit = q.limit.max(1) as i64;
    let from = q.from_ms.unwrap_or(i64::MIN);
    let to = q.to_ms.unwrap_or(i64::MAX);
    let mut items = Vec::new();
    // Every query selects: kind, id, started, ended, app, app_id, title, url,
    // text, detail; overlap with [from, to).
    let mut run = |stream: Stream, sql: &str| -> rusqlite::Result<()> {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params![from, to, limit], |r| {
            Ok(RecentItem {
                stream: stream.name().to_owned(),
                kind: r.get(0)?,
                id: r.get(1)?,
                started_ms: r.get(2)?,
                ended_ms: r.get(3)?,
                app: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                app_id: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                title: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
                url: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
                text: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
                detail: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
            })
        })?;
        for row in rows {
            items.push(row?);
        }
        Ok(())
    };
    if want(Stream::Window) {
        run(
            Stream::Window,
            "SELECT 'activity', id, started_ms, ended_ms, app_name, app_id, window_title, url,
                NULL, end_reason FROM capture_activities
             WHERE started_ms < ?2 AND coalesce(ended_ms, ?1) >= ?1
             ORDER BY started_ms DESC, id DESC LIMIT ?3",
        )?;
    }
    if want(Stream::Focus) {
        run(
            Stream::Focus,
            "SELECT 'focus_session', id, started_ms, ended_ms, app_name, app_id, NULL, NULL,
                NULL, end_reason FROM capture_focus_sessions
             WHERE started_ms < ?2 AND coalesce(ended_ms, ?1) >= ?1
             ORDER BY started_ms DESC, id DESC LIMIT ?3",
        )?;
        run(
            Stream::Focus,
            "SELECT kind, id, started_ms, ended_ms, NULL, NULL, NULL, NULL, NULL, NULL
             FROM capture_idle_periods
             WHERE started_ms < ?2 AND coalesce(ended_ms, ?1) >= ?1
             ORDER BY started_ms DESC, id DESC LIMIT ?3",
        )?;
    }
    if want(Stream::Keystrokes) {
        run(
            Stream::Keystrokes,
            "SELECT 'keystroke_chunk', id, started_ms, ended_ms, app_name, app_id, window_title,
                NULL, text, flush_reason FROM capture_keystroke_chunks
             WHERE started_ms < ?2 AND ended_ms >= ?1
             ORDER BY started_ms DESC, id DESC LIMIT ?3",
        )?;
    }
    if want(Stream::Clipboard) {
        run(
            Stream::Clipboard,
            "SELECT 'clipboard', id, at_ms, at_ms, source_app, source_app_id, window_title,
                NULL, text, op FROM capture_clipboard_events
             WHERE at_ms < ?2 AND at_ms >= ?1
             ORDER BY at_ms DESC, id DESC LIMIT ?3",
        )?;
    }
    if want(Stream::Audio) {
        run(
            Stream::Audio,
            "SELECT 'audio_segment', id, started_ms, ended_ms, NULL, NULL, NULL, NULL, NULL,
                file FROM capture_audio_segments
             WHERE started_ms < ?2 AND ended_ms >= ?1
             ORDER BY started_ms DESC, id DESC LIMIT ?3",
        )?;
    }
    items.sort_by(|a, b| {
        b.started_ms
            .cmp(&a.started_ms)
            .then_with(|| b.kind.cmp(&a.kind))
            .then_with(|| b.id.cmp(&a.id))
    });
    items.truncate(limit as usize);
    Ok(items)
}

/// Does cowork.db at `path` have capture's tables yet?
pub fn has_tables(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'capture_activities'",
        [],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ActivityRow, AppContext, ChunkRow};

    fn activity(id: i64, started: i64, ended: Option<i64>) -> Row {
        Row::Activity(ActivityRow {
            id,
            app: "Code".into(),
            app_id: "code".into(),
            title: format!("t{id}"),
            url: None,
            started_ms: started,
            ended_ms: ended,
            end_reason: ended.map(|_| "switch"),
            focus_session_id: None,
        })
    }

    #[test]
    fn audio_segments_are_written_once_listed_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("cowork.db")).unwrap();
        let seg = |file: &str, at: i64| {
            Row::Audio(crate::audio::AudioSegmentRow {
                file: file.into(),
                started_ms: at,
                ended_ms: at + 2000,
                samples: 32_000,
                speech_ms: 1500,
                peak_db: -12,
                source: "sim",
            })
        };
        s.write(&[
            seg("seg-1000-3000.wav", 1000),
            seg("seg-9000-11000.wav", 9000),
        ])
        .unwrap();
        // Recorded again after a crash (its row had made it): ignored.
        s.write(&[seg("seg-1000-3000.wav", 1000)]).unwrap();
        let r = open_reader(&dir.path().join("cowork.db")).unwrap();
        let items = recent(
            &r,
            &RecentQuery {
                limit: 10,
                streams: vec![Stream::Audio],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            (items[0].kind.as_str(), items[0].detail.as_str()),
            ("audio_segment", "seg-9000-11000.wav")
        );
        assert_eq!(items[1].id, 1);
        assert_eq!(s.enforce_retention(5000).unwrap(), 1);
        // Ids only grow, even once the newest row is gone.
        s.enforce_retention(20_000).unwrap();
        s.write(&[seg("seg-30000-32000.wav", 30_000)]).unwrap();
        let id: i64 = r
            .query_row("SELECT max(id) FROM capture_audio_segments", [], |x| {
                x.get(0)
            })
            .unwrap();
        assert!(id > 2, "{id}: an id used before");
    }

    #[test]
    fn migrates_once_and_leaves_other_tables_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cowork.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("CREATE TABLE agents_threads (id INTEGER PRIMARY KEY); INSERT INTO agents_threads VALUES (7);")
                .unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        let mode: String = s
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let other: i64 = s
            .conn
            .query_row("SELECT id FROM agents_threads", [], |r| r.get(0))
            .unwrap();
        assert_eq!(other, 7);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cowork.db");
        drop(Store::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute(
                "INSERT INTO capture_schema_migrations VALUES (?1, 0)",
                [SCHEMA_VERSION + 1],
            )
            .unwrap();
        let e = Store::open(&path).unwrap_err();
        assert!(e.to_string().contains("upgrade Cowork"), "{e}");
    }

    #[test]
    fn upserts_complete_open_rows_and_recovery_closes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cowork.db");
        let mut s = Store::open(&path).unwrap();
        s.write(&[activity(1, 10, None), activity(2, 20, None)])
            .unwrap();
        s.write(&[activity(1, 10, Some(15))]).unwrap();
        s.write(&[Row::Chunk(ChunkRow {
            id: 1,
            text: "ab".into(),
            key_count: 2,
            context: AppContext::default(),
            started_ms: 1,
            ended_ms: 2,
            flush_reason: None,
        })])
        .unwrap();
        drop(s);
        let s = Store::open(&path).unwrap();
        let reader = open_reader(&path).unwrap();
        let items = recent(
            &reader,
            &RecentQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .unwrap();
        let a1 = items
            .iter()
            .find(|i| i.kind == "activity" && i.id == 1)
            .unwrap();
        assert_eq!((a1.ended_ms, a1.detail.as_str()), (Some(15), "switch"));
        let a2 = items
            .iter()
            .find(|i| i.kind == "activity" && i.id == 2)
            .unwrap();
        assert_eq!(a2.detail, "crash");
        let written: i64 = s
            .conn
            .query_row(
                "SELECT updated_ms FROM capture_activities WHERE id = 2",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(a2.ended_ms, Some(written), "closed at its last write");
        let c = items.iter().find(|i| i.kind == "keystroke_chunk").unwrap();
        assert_eq!(c.detail, "crash");
        assert_eq!(s.next_ids().unwrap().activity, 3);
    }

    #[test]
    fn recent_filters_by_stream_time_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cowork.db");
        let mut s = Store::open(&path).unwrap();
        let rows: Vec<Row> = (1..=10)
            .map(|i| activity(i, i * 100, Some(i * 100 + 50)))
            .collect();
        s.write(&rows).unwrap();
        let reader = open_reader(&path).unwrap();
        let got = recent(
            &reader,
            &RecentQuery {
                from_ms: Some(300),
                to_ms: Some(800),
                limit: 3,
                streams: vec![Stream::Window],
            },
        )
        .unwrap();
        assert_eq!(got.iter().map(|i| i.id).collect::<Vec<_>>(), [7, 6, 5]);
        let none = recent(
            &reader,
            &RecentQuery {
                limit: 3,
                streams: vec![Stream::Clipboard],
                ..Default::default()
            },
        )
        .unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn retention_deletes_only_old_finished_rows_and_consent_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cowork.db");
        let mut s = Store::open(&path).unwrap();
        s.write(&[
            activity(1, 0, Some(10)),
            activity(2, 5, None),
            activity(3, 100, Some(200)),
        ])
        .unwrap();
        assert_eq!(s.enforce_retention(50).unwrap(), 1);
        assert_eq!(s.next_ids().unwrap().activity, 4);
        s.save_stream(Stream::Clipboard, false).unwrap();
        let set = s.load_streams(StreamSet::default()).unwrap();
        assert!(!set.get(Stream::Clipboard));
        assert!(set.get(Stream::Window));
    }
}
