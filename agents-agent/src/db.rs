//! agents-agent's handle on cowork.db: one writer connection and a small
//! pool of read-only readers beside it. WAL lets a reader read while the
//! writer writes, so a slow search never holds up a chat message being
//! stored, a tool call being audited, or another search. Writes go
//! through [`Db::write`] one at a time; queries through [`Db::read`],
//! up to [`READERS`] at once. Both run on blocking threads.
//!
//! The file is opened, and every owner's tables migrated, on first use (or
//! at start through [`Db::open`]); a file migrated by a newer build is
//! refused and nothing is written. Imports no domain: the owners come in
//! from [`crate::schema`].

use cowork_db::{Ledger, MigrateError, Owner};
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Where agents-agent records each owner's schema version.
pub const LEDGER: Ledger = Ledger::PerOwner("agents_schema_migrations");

/// Read-only connections kept beside the writer.
pub const READERS: usize = 4;

/// A cowork.db failure, with the operation's error.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite said no.
    #[error("cowork.db: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The file could not be brought to this build's schema (or is newer
    /// than it).
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// The blocking task died.
    #[error("cowork.db task failed: {0}")]
    Task(String),
}

impl DbError {
    /// Whether the file itself cannot be used (migrated by a newer build,
    /// not a database, corrupt) rather than one operation failing: what
    /// the worker's health reports until the person acts.
    pub fn unusable_file(&self) -> bool {
        let bad_file = |e: &rusqlite::Error| {
            matches!(e, rusqlite::Error::SqliteFailure(f, _) if matches!(
                f.code,
                rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
            ))
        };
        match self {
            DbError::Migrate(MigrateError::TooNew { .. }) => true,
            DbError::Migrate(MigrateError::Sql { source, .. }) => bad_file(source),
            DbError::Sql(e) => bad_file(e),
            DbError::Task(_) => false,
        }
    }
}

/// Shared handle (cheap to clone).
#[derive(Debug, Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    owners: &'static [Owner],
    /// The one writer, opened and migrated on first use.
    writer: Mutex<Option<Connection>>,
    /// Set once the writer has migrated the file: readers open only then.
    ready: std::sync::OnceLock<()>,
    /// Idle readers; at most [`READERS`] exist, one per permit.
    readers: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl Db {
    /// cowork.db at `path`, holding `owners`' tables (opened on first use).
    pub fn new(path: PathBuf, owners: &'static [Owner]) -> Self {
        Self {
            inner: Arc::new(Inner {
                path,
                owners,
                writer: Mutex::new(None),
                ready: std::sync::OnceLock::new(),
                readers: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(READERS)),
            }),
        }
    }

    /// Open and migrate now (at start, so a file that cannot be used is
    /// reported before the first request).
    pub async fn open(&self) -> Result<(), DbError> {
        self.write(|_| Ok(())).await
    }

    /// Run `f` on the writer, in a blocking thread. Writes are serialised.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, DbError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.write(f))
            .await
            .map_err(|e| DbError::Task(e.to_string()))?
    }

    /// Run `f` on the writer on this thread, blocking it: for start-up,
    /// before the worker serves.
    pub fn write_blocking<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, DbError> {
        self.inner.write(f)
    }

    /// Run the read-only `f` on a reader, in a blocking thread, beside the
    /// writer and other readers, inside one read transaction (all of `f`
    /// sees one snapshot). A statement that writes fails.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, DbError> {
        if self.inner.ready.get().is_none() {
            self.open().await?;
        }
        // The permit goes with the blocking task, so a caller that goes
        // away never lets more than READERS connections exist.
        let permit = self
            .inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| DbError::Task(e.to_string()))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let idle = inner.readers.lock().ok().and_then(|mut r| r.pop());
            let conn = match idle {
                Some(c) => c,
                None => cowork_db::open_reader(&inner.path)?,
            };
            let r = read_in_transaction(&conn, f);
            // Only a connection with no transaction left open goes back.
            if conn.is_autocommit() {
                if let Ok(mut idle) = inner.readers.lock() {
                    idle.push(conn);
                }
            }
            drop(permit);
            Ok(r?)
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
    }
}

/// `f` inside a deferred transaction, rolled back whatever `f` did.
fn read_in_transaction<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let tx = conn.unchecked_transaction()?;
    let r = f(&tx);
    drop(tx);
    r
}

impl Inner {
    fn write<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, DbError> {
        let mut guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let conn = match guard.as_mut() {
            Some(c) => c,
            None => guard.insert(self.open_writer()?),
        };
        Ok(f(conn)?)
    }

    fn open_writer(&self) -> Result<Connection, DbError> {
        let mut c = cowork_db::open(&self.path)?;
        cowork_db::migrate(&mut c, LEDGER, self.owners)?;
        let _ = self.ready.set(());
        Ok(c)
    }
}

/// A migrated in-memory database with `owners`' tables, for unit tests of
/// a store.
#[cfg(test)]
pub fn migrated(owners: &[Owner]) -> Connection {
    let mut c = Connection::open_in_memory().expect("in-memory database");
    cowork_db::migrate(&mut c, LEDGER, owners).expect("migrations apply");
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use cowork_db::Step;
    use std::sync::{Condvar, Mutex as StdMutex};
    use std::time::Duration;

    const NOTES: Owner = Owner {
        name: "notes",
        steps: &[Step::Sql(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)",
        )],
    };
    /// Longer than any wait below should take; reached only when the
    /// pool serialises what it must not.
    const PATIENCE: Duration = Duration::from_secs(10);

    /// A meeting point for `n` threads that gives up after [`PATIENCE`].
    struct Meeting {
        arrived: StdMutex<usize>,
        all: Condvar,
        n: usize,
    }

    impl Meeting {
        fn new(n: usize) -> Arc<Self> {
            Arc::new(Self {
                arrived: StdMutex::new(0),
                all: Condvar::new(),
                n,
            })
        }

        /// Arrive; true once all `n` have (false: gave up waiting).
        fn meet(&self) -> bool {
            let mut a = self.arrived.lock().unwrap();
            *a += 1;
            self.all.notify_all();
            let (a, timeout) = self
                .all
                .wait_timeout_while(a, PATIENCE, |a| *a < self.n)
                .unwrap();
            *a >= self.n && !timeout.timed_out()
        }
    }

    fn count(c: &Connection) -> rusqlite::Result<i64> {
        c.query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
    }

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::new(dir.path().join("cowork.db"), &[NOTES]);
        (dir, db)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_read_transaction_does_not_delay_a_write() {
        let (_dir, db) = db();
        db.write(|c| c.execute("INSERT INTO notes (text) VALUES ('one')", []))
            .await
            .unwrap();
        let (reading, written) = (Meeting::new(2), Meeting::new(2));
        let reader = tokio::spawn({
            let (db, reading, written) = (db.clone(), reading.clone(), written.clone());
            async move {
                db.read(move |c| {
                    // Every read runs in one transaction: its snapshot
                    // starts at the first statement.
                    let before = count(c)?;
                    assert!(reading.meet(), "the writer never started");
                    // Held open until the write below has committed.
                    let write_done = written.meet();
                    let after = count(c)?;
                    Ok((before, after, write_done))
                })
                .await
            }
        });
        let r = reading.clone();
        assert!(tokio::task::spawn_blocking(move || r.meet()).await.unwrap());
        // The reader is inside its transaction now; the write must not wait.
        db.write(|c| c.execute("INSERT INTO notes (text) VALUES ('two')", []))
            .await
            .unwrap();
        let w = written.clone();
        assert!(tokio::task::spawn_blocking(move || w.meet()).await.unwrap());
        let (before, after, write_done) = reader.await.unwrap().unwrap();
        assert!(write_done, "the write waited for the reader");
        assert_eq!((before, after), (1, 1), "the reader kept its snapshot");
        assert_eq!(
            db.read(count).await.unwrap(),
            2,
            "a new read sees the write"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_slow_reads_run_at_the_same_time() {
        let (_dir, db) = db();
        db.open().await.unwrap();
        let both = Meeting::new(2);
        let read = |db: Db, both: Arc<Meeting>| async move {
            db.read(move |c| {
                let n = count(c)?;
                // Each waits inside its read for the other to be inside too.
                Ok((n, both.meet()))
            })
            .await
        };
        let (a, b) = tokio::join!(read(db.clone(), both.clone()), read(db.clone(), both));
        assert!(
            a.unwrap().1 && b.unwrap().1,
            "the reads ran one after the other"
        );
    }

    #[tokio::test]
    async fn a_reader_cannot_write_and_a_newer_file_is_refused() {
        let (dir, db) = db();
        let e = db
            .read(|c| c.execute("INSERT INTO notes (text) VALUES ('x')", []))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("readonly"), "{e}");
        drop(db);
        Connection::open(dir.path().join("cowork.db"))
            .unwrap()
            .execute(
                "INSERT INTO agents_schema_migrations VALUES ('notes', 2, 0)",
                [],
            )
            .unwrap();
        let db = Db::new(dir.path().join("cowork.db"), &[NOTES]);
        let e = db.read(count).await.unwrap_err();
        assert!(
            e.to_string()
                .contains("notes schema version 2, newer than this build's 1"),
            "{e}"
        );
    }
}
