//! `model_downloads` in cowork.db: one row per download task with its
//! files (URLs, names, hashes) and their last progress, so a restarted
//! agents-agent resumes what was running.

use cowork_db::{Owner, Step};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

/// Model downloads as an owner of tables: its schema, oldest first (append only).
/// Version 1 is the release before versioning, written so a file that
/// release made is adopted as it is.
pub const OWNER: Owner = Owner {
    name: "models",
    steps: &[Step::Sql(
        "CREATE TABLE IF NOT EXISTS model_downloads (
                id TEXT PRIMARY KEY,
                state TEXT NOT NULL,
                files_json TEXT NOT NULL,
                error TEXT NOT NULL DEFAULT '',
                created_ms INTEGER NOT NULL,
                updated_ms INTEGER NOT NULL)",
    )],
};

/// A task's state.
pub const QUEUED: &str = "queued";
/// Bytes are moving.
pub const DOWNLOADING: &str = "downloading";
/// Size and SHA-256 are being checked.
pub const VERIFYING: &str = "verifying";
/// Every file is in place and verified.
pub const DONE: &str = "done";
/// Failed (see `error`); partial files are kept unless verification failed.
pub const ERROR: &str = "error";
/// Stopped by the person; partial files are kept for a resume.
pub const CANCELLED: &str = "cancelled";

/// True for a state a task does not leave by itself.
pub fn is_final(state: &str) -> bool {
    matches!(state, DONE | ERROR | CANCELLED)
}

/// One file of a task, with its progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FileRecord {
    /// URLs, tried in order.
    pub urls: Vec<String>,
    /// Name relative to models/.
    pub name: String,
    /// Expected SHA-256, or empty.
    pub sha256: String,
    /// Expected size (0: unknown in advance).
    pub size: u64,
    /// Bytes on disk.
    pub downloaded: u64,
    /// Full size once known (0: unknown).
    pub total: u64,
    /// This file's own state (same names as the task's).
    pub state: String,
    /// The URL in use.
    pub url: String,
    /// Where the last transfer resumed (0: from scratch).
    pub resumed_from: u64,
    /// Why this file failed.
    pub error: String,
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Task id.
    pub id: String,
    /// Task state.
    pub state: String,
    /// Files.
    pub files: Vec<FileRecord>,
    /// Why the task failed.
    pub error: String,
    /// Unix ms.
    pub created_ms: i64,
    /// Unix ms.
    pub updated_ms: i64,
}

/// Insert or replace a task (keeps `created_ms` of an existing row).
pub fn put(c: &Connection, r: &Record) -> rusqlite::Result<()> {
    let files = serde_json::to_string(&r.files).unwrap_or_else(|_| "[]".into());
    c.execute(
        "INSERT INTO model_downloads (id, state, files_json, error, created_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(id) DO UPDATE SET state = ?2, files_json = ?3, error = ?4, updated_ms = ?6",
        params![r.id, r.state, files, r.error, r.created_ms, r.updated_ms],
    )?;
    Ok(())
}

/// Every task, newest first.
pub fn list(c: &Connection) -> rusqlite::Result<Vec<Record>> {
    let mut st = c.prepare(
        "SELECT id, state, files_json, error, created_ms, updated_ms FROM model_downloads
         ORDER BY created_ms DESC, id",
    )?;
    let rows = st.query_map([], |r| {
        let files: String = r.get(2)?;
        Ok(Record {
            id: r.get(0)?,
            state: r.get(1)?,
            files: serde_json::from_str(&files).unwrap_or_default(),
            error: r.get(3)?,
            created_ms: r.get(4)?,
            updated_ms: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// One task.
pub fn get(c: &Connection, id: &str) -> rusqlite::Result<Option<Record>> {
    Ok(list(c)?.into_iter().find(|r| r.id == id))
}

/// Forget a task.
pub fn delete(c: &Connection, id: &str) -> rusqlite::Result<bool> {
    Ok(c.execute("DELETE FROM model_downloads WHERE id = ?1", [id])? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_keep_their_creation_time() {
        let c = crate::db::migrated(&[OWNER]);
        let mut r = Record {
            id: "m.gguf".into(),
            state: DOWNLOADING.into(),
            files: vec![FileRecord {
                urls: vec!["http://a/m.gguf".into(), "http://b/m.gguf".into()],
                name: "m.gguf".into(),
                downloaded: 7,
                ..Default::default()
            }],
            error: String::new(),
            created_ms: 1,
            updated_ms: 1,
        };
        put(&c, &r).unwrap();
        r.state = DONE.into();
        r.created_ms = 5;
        r.updated_ms = 9;
        put(&c, &r).unwrap();
        let got = get(&c, "m.gguf").unwrap().unwrap();
        assert_eq!(got.state, DONE);
        assert_eq!(got.created_ms, 1);
        assert_eq!(got.updated_ms, 9);
        assert_eq!(got.files, r.files);
        assert!(delete(&c, "m.gguf").unwrap());
        assert!(list(&c).unwrap().is_empty());
    }
}
