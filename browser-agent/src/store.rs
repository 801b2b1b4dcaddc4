//! The execution log, `browser_actions` in cowork.db: every action, a
//! person's or an agent's, with the operation it served, its target ref and
//! accessible name, the URL before and after, its duration, its outcome and
//! the hash of a screenshot taken by it. The only SQL for browser-agent's
//! tables; migrated by browser-agent, versioned in
//! `browser_schema_migrations`. One connection, opened on first use (a
//! browser that is never used never touches cowork.db).

use cowork_db::{Ledger, MigrateError, Owner, Step};
use rusqlite::{params, Connection};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

const LEDGER: Ledger = Ledger::Single("browser_schema_migrations");

/// browser-agent's tables.
pub const TABLES: &[&str] = &["browser_schema_migrations", "browser_actions"];

/// browser-agent's schema steps.
pub const OWNER: Owner = Owner {
    name: "browser",
    steps: &[Step::Sql(
        "CREATE TABLE browser_actions (
            id INTEGER PRIMARY KEY,
            at_ms INTEGER NOT NULL,
            operation_id TEXT NOT NULL,
            action TEXT NOT NULL,
            target_ref TEXT NOT NULL,
            target_name TEXT NOT NULL,
            url_before TEXT NOT NULL,
            url_after TEXT NOT NULL,
            duration_ms INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            screenshot_sha256 TEXT NOT NULL,
            detail TEXT NOT NULL
         );
         CREATE INDEX browser_actions_operation ON browser_actions(operation_id, id);",
    )],
};

/// Why the log could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("cowork.db: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The file could not be brought to this build's schema.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// The blocking task died.
    #[error("cowork.db task failed: {0}")]
    Task(String),
}

/// One logged action.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoggedAction {
    /// Row id (0 before it is written).
    pub id: i64,
    /// When it started (Unix ms).
    pub at_ms: i64,
    /// The agent operation it served ("" for a person).
    pub operation_id: String,
    /// navigate, click, type, ...
    pub action: String,
    /// The ref it targeted.
    pub target_ref: String,
    /// That element's accessible name.
    pub target_name: String,
    /// The page before.
    pub url_before: String,
    /// The page after.
    pub url_after: String,
    /// How long it took.
    pub duration_ms: u64,
    /// ok, needs_approval: ..., error: ...
    pub outcome: String,
    /// SHA-256 of the screenshot it took, if it took one.
    pub screenshot_sha256: String,
    /// What was asked (a URL, a key; typed text only as its length).
    pub detail: String,
}

/// The log (cheap to clone).
#[derive(Debug, Clone)]
pub struct Log {
    path: PathBuf,
    conn: Arc<Mutex<Option<Connection>>>,
}

impl Log {
    /// The log in the cowork.db at `path`.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            conn: Default::default(),
        }
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            if guard.is_none() {
                let mut c = cowork_db::open(&path)?;
                cowork_db::migrate(&mut c, LEDGER, &[OWNER])?;
                *guard = Some(c);
            }
            match guard.as_mut() {
                Some(c) => f(c),
                None => Err(StoreError::Task("no connection".into())),
            }
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Write one action; returns its id.
    pub async fn record(&self, a: LoggedAction) -> Result<i64, StoreError> {
        self.with(move |c| {
            c.execute(
                "INSERT INTO browser_actions (at_ms, operation_id, action, target_ref, target_name,
                    url_before, url_after, duration_ms, outcome, screenshot_sha256, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    a.at_ms,
                    a.operation_id,
                    a.action,
                    a.target_ref,
                    a.target_name,
                    a.url_before,
                    a.url_after,
                    a.duration_ms as i64,
                    a.outcome,
                    a.screenshot_sha256,
                    a.detail
                ],
            )?;
            Ok(c.last_insert_rowid())
        })
        .await
    }

    /// Newest first: at most `limit` (0: 50; at most 1000), of one
    /// operation when `operation_id` is not empty.
    pub async fn list(
        &self,
        limit: u32,
        operation_id: String,
    ) -> Result<Vec<LoggedAction>, StoreError> {
        let limit = match limit {
            0 => 50,
            n => n.min(1000),
        };
        self.with(move |c| {
            let mut st = c.prepare(
                "SELECT id, at_ms, operation_id, action, target_ref, target_name, url_before,
                        url_after, duration_ms, outcome, screenshot_sha256, detail
                 FROM browser_actions WHERE (?1 = '' OR operation_id = ?1)
                 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = st.query_map(params![operation_id, limit], |r| {
                Ok(LoggedAction {
                    id: r.get(0)?,
                    at_ms: r.get(1)?,
                    operation_id: r.get(2)?,
                    action: r.get(3)?,
                    target_ref: r.get(4)?,
                    target_name: r.get(5)?,
                    url_before: r.get(6)?,
                    url_after: r.get(7)?,
                    duration_ms: r.get::<_, i64>(8)?.max(0) as u64,
                    outcome: r.get(9)?,
                    screenshot_sha256: r.get(10)?,
                    detail: r.get(11)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn actions_are_written_and_listed_newest_first_per_operation() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::new(dir.path().join("cowork.db"));
        for (op, action) in [("", "navigate"), ("op-1", "click"), ("op-1", "type")] {
            log.record(LoggedAction {
                at_ms: 1,
                operation_id: op.into(),
                action: action.into(),
                outcome: "ok".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let all = log.list(0, String::new()).await.unwrap();
        assert_eq!(
            all.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(),
            ["type", "click", "navigate"]
        );
        let op = log.list(1, "op-1".into()).await.unwrap();
        assert_eq!(op.len(), 1);
        assert_eq!(op[0].action, "type");
        // A second handle on the same file migrates nothing twice.
        let again = Log::new(dir.path().join("cowork.db"));
        assert_eq!(again.list(0, String::new()).await.unwrap().len(), 3);
    }
}
