//! agents-agent's one connection to cowork.db, opened (and its tables
//! migrated) on first use, used from blocking threads one call at a time.

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A cowork.db failure, with the operation's error.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite said no.
    #[error("cowork.db: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The blocking task died.
    #[error("cowork.db task failed: {0}")]
    Task(String),
}

impl From<DbError> for tonic::Status {
    fn from(e: DbError) -> Self {
        tonic::Status::internal(e.to_string())
    }
}

/// Shared handle (cheap to clone).
#[derive(Debug, Clone)]
pub struct Db {
    path: PathBuf,
    conn: Arc<Mutex<Option<Connection>>>,
}

/// Open cowork.db with agents-agent's settings and every table it owns.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open(path)?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    crate::chat_store::migrate(&c)?;
    crate::usage::migrate(&c)?;
    crate::mcp::store::migrate(&c)?;
    crate::agent::migrate(&c)?;
    crate::models::store::migrate(&c)?;
    crate::gateway::store::migrate(&c)?;
    Ok(c)
}

impl Db {
    /// The database at `path` (opened on first use).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            conn: Default::default(),
        }
    }

    /// Run `f` on the connection in a blocking thread.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, DbError> {
        let (path, conn) = (self.path.clone(), self.conn.clone());
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            if guard.is_none() {
                *guard = Some(open(&path)?);
            }
            match guard.as_ref() {
                Some(c) => f(c),
                None => Err(rusqlite::Error::InvalidQuery),
            }
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
        .map_err(DbError::from)
    }
}
