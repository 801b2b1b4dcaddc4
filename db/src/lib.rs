//! cowork.db plumbing that capture-agent and agents-agent share, written
//! once: opening the file with the suite's settings (WAL, a busy timeout,
//! `synchronous=NORMAL`), read-only readers beside the one writer, the
//! versioned migration runner (an append-only list of steps per owner,
//! each applied in its own transaction, and a refusal of a file newer than
//! the binary), and registering sqlite-vec once per process.
//!
//! No table is named here: each owner brings its own steps.
#![warn(missing_docs)]

pub mod migrate;
pub mod traces;

pub use migrate::{migrate, versions, Applied, Ledger, MigrateError, Owner, Step};

use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// How long a statement waits for another process's write lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Open (creating if needed) cowork.db at `path` for writing: WAL (so
/// readers in this and other processes never wait for the writer),
/// `synchronous=NORMAL` (a crash loses at most the last transactions,
/// never the file), and [`BUSY_TIMEOUT`].
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    register_sqlite_vec();
    let c = Connection::open(path)?;
    c.busy_timeout(BUSY_TIMEOUT)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(c)
}

/// A read-only connection to cowork.db, for queries beside the writer
/// (WAL lets them run while it writes). A statement that would write
/// fails with "attempt to write a readonly database".
pub fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    register_sqlite_vec();
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(BUSY_TIMEOUT)?;
    Ok(c)
}

/// Make sqlite-vec's `vec0` tables and `vec_*` functions available on
/// every connection this process opens from now on. Idempotent; [`open`]
/// and [`open_reader`] call it, so a caller only needs it for connections
/// it opens some other way.
pub fn register_sqlite_vec() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        type Init = unsafe extern "C" fn(
            *mut rusqlite::ffi::sqlite3,
            *mut *mut std::os::raw::c_char,
            *const rusqlite::ffi::sqlite3_api_routines,
        ) -> std::os::raw::c_int;
        // SAFETY: sqlite3_vec_init is an SQLite extension entry point with
        // exactly the signature auto extensions are called with; the
        // crate declares it without arguments only for FFI convenience.
        let init: Init = unsafe {
            std::mem::transmute::<*const (), Init>(sqlite_vec::sqlite3_vec_init as *const ())
        };
        // SAFETY: registering an entry point is sound before or while
        // connections open; SQLite serialises it.
        if let Err(e) = unsafe { rusqlite::auto_extension::register_auto_extension(init) } {
            tracing::error!(error = %e, "cannot register sqlite-vec; vector search is unavailable");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_hold_and_sqlite_vec_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cowork.db");
        let c = open(&path).unwrap();
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(sync, 1, "NORMAL");
        c.execute_batch(
            "CREATE VIRTUAL TABLE v USING vec0(embedding float[2]);
             INSERT INTO v(rowid, embedding) VALUES (1, '[1, 0]'), (2, '[0, 1]');",
        )
        .unwrap();
        let r = open_reader(&path).unwrap();
        let nearest: i64 = r
            .query_row(
                "SELECT rowid FROM v WHERE embedding MATCH '[0.9, 0.1]' AND k = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(nearest, 1);
        let e = r.execute("DELETE FROM v", []).unwrap_err();
        assert!(e.to_string().contains("readonly"), "{e}");
    }
}
