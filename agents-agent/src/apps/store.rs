//! The apps' tables in cowork.db: `installed_apps` (seed 003's install
//! record) and `app_read_audit` (every read-lane call, per app). The only
//! SQL for them.

use super::manifest::Manifest;
use cowork_db::{Owner, Step};
use rusqlite::{params, Connection, OptionalExtension};

/// Audit rows kept per app (older ones are dropped as new ones come).
pub const AUDIT_KEPT: i64 = 5000;

/// Apps as an owner of tables (append only).
pub const OWNER: Owner = Owner {
    name: "apps",
    steps: &[Step::Sql(
        "CREATE TABLE installed_apps (
            id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL,
            category TEXT NOT NULL, data_use_description TEXT NOT NULL,
            api_hosts TEXT NOT NULL, source TEXT NOT NULL, version TEXT NOT NULL,
            entry TEXT NOT NULL, bundle_bytes INTEGER NOT NULL, files INTEGER NOT NULL,
            sha256 TEXT NOT NULL, disclosure TEXT NOT NULL,
            installed_ms INTEGER NOT NULL, last_opened_ms INTEGER NOT NULL DEFAULT 0);
         CREATE TABLE app_read_audit (
            id INTEGER PRIMARY KEY, app_id TEXT NOT NULL, at_ms INTEGER NOT NULL,
            method TEXT NOT NULL, outcome TEXT NOT NULL, items INTEGER NOT NULL,
            duration_ms INTEGER NOT NULL, error TEXT NOT NULL);
         CREATE INDEX app_read_audit_app ON app_read_audit(app_id, id);",
    )],
};

/// An install record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRow {
    /// Its id (a DNS label).
    pub id: String,
    /// What it says about itself.
    pub manifest: Manifest,
    /// The script bundled ("" for a plain page).
    pub entry: String,
    /// Bytes of the bundle.
    pub bundle_bytes: u64,
    /// Files unpacked.
    pub files: u32,
    /// SHA-256 of the zip.
    pub sha256: String,
    /// The disclosure the person accepted.
    pub disclosure: String,
    /// Unix ms.
    pub installed_ms: i64,
    /// Unix ms (0: never).
    pub last_opened_ms: i64,
}

/// One read-lane call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Unix ms.
    pub at_ms: i64,
    /// `namespace.method`.
    pub method: String,
    /// ok, refused or error.
    pub outcome: String,
    /// Items returned.
    pub items: u32,
    /// How long it took.
    pub duration_ms: u32,
    /// Why it was refused or failed.
    pub error: String,
}

/// Record an installed app.
pub fn insert(c: &Connection, a: &AppRow) -> rusqlite::Result<()> {
    let m = &a.manifest;
    c.execute(
        "INSERT INTO installed_apps (id, name, description, category, data_use_description,
            api_hosts, source, version, entry, bundle_bytes, files, sha256, disclosure,
            installed_ms, last_opened_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            a.id,
            m.name,
            m.description,
            m.category,
            m.data_use_description,
            serde_json::to_string(&m.api_hosts).unwrap_or_else(|_| "[]".into()),
            m.source,
            m.version,
            a.entry,
            a.bundle_bytes as i64,
            a.files,
            a.sha256,
            a.disclosure,
            a.installed_ms,
            a.last_opened_ms,
        ],
    )?;
    Ok(())
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AppRow> {
    let hosts: String = r.get(5)?;
    Ok(AppRow {
        id: r.get(0)?,
        manifest: Manifest {
            name: r.get(1)?,
            description: r.get(2)?,
            category: r.get(3)?,
            data_use_description: r.get(4)?,
            api_hosts: serde_json::from_str(&hosts).unwrap_or_default(),
            source: r.get(6)?,
            version: r.get(7)?,
        },
        entry: r.get(8)?,
        bundle_bytes: r.get::<_, i64>(9)?.max(0) as u64,
        files: r.get(10)?,
        sha256: r.get(11)?,
        disclosure: r.get(12)?,
        installed_ms: r.get(13)?,
        last_opened_ms: r.get(14)?,
    })
}

const COLUMNS: &str = "id, name, description, category, data_use_description, api_hosts, source,
    version, entry, bundle_bytes, files, sha256, disclosure, installed_ms, last_opened_ms";

/// Every installed app, newest first.
pub fn list(c: &Connection) -> rusqlite::Result<Vec<AppRow>> {
    let mut s = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM installed_apps ORDER BY installed_ms DESC, id"
    ))?;
    let rows = s.query_map([], row)?;
    rows.collect()
}

/// One app.
pub fn get(c: &Connection, id: &str) -> rusqlite::Result<Option<AppRow>> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM installed_apps WHERE id = ?1"),
        [id],
        row,
    )
    .optional()
}

/// Note that the app was opened.
pub fn opened(c: &Connection, id: &str, now_ms: i64) -> rusqlite::Result<bool> {
    Ok(c.execute(
        "UPDATE installed_apps SET last_opened_ms = ?2 WHERE id = ?1",
        params![id, now_ms],
    )? == 1)
}

/// Delete the record and the app's audit rows; returns the audit rows
/// deleted, or None when there was no such app.
pub fn delete(c: &Connection, id: &str) -> rusqlite::Result<Option<u64>> {
    let tx = rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
    if tx.execute("DELETE FROM installed_apps WHERE id = ?1", [id])? == 0 {
        return Ok(None);
    }
    let audit = tx.execute("DELETE FROM app_read_audit WHERE app_id = ?1", [id])?;
    tx.commit()?;
    Ok(Some(audit as u64))
}

/// Record one read-lane call (and drop the app's rows beyond
/// [`AUDIT_KEPT`], the oldest first).
pub fn audit(c: &Connection, app_id: &str, a: &AuditRow) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO app_read_audit (app_id, at_ms, method, outcome, items, duration_ms, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            app_id,
            a.at_ms,
            a.method,
            a.outcome,
            a.items,
            a.duration_ms,
            a.error
        ],
    )?;
    c.execute(
        "DELETE FROM app_read_audit WHERE app_id = ?1 AND id <= (
            SELECT id FROM app_read_audit WHERE app_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        params![app_id, AUDIT_KEPT],
    )?;
    Ok(())
}

/// An app's read-lane calls, newest first.
pub fn audit_rows(c: &Connection, app_id: &str, limit: u32) -> rusqlite::Result<Vec<AuditRow>> {
    let mut s = c.prepare_cached(
        "SELECT at_ms, method, outcome, items, duration_ms, error FROM app_read_audit
         WHERE app_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = s.query_map(params![app_id, limit], |r| {
        Ok(AuditRow {
            at_ms: r.get(0)?,
            method: r.get(1)?,
            outcome: r.get(2)?,
            items: r.get(3)?,
            duration_ms: r.get(4)?,
            error: r.get(5)?,
        })
    })?;
    rows.collect()
}

/// How many read-lane calls an app made.
pub fn reads(c: &Connection, app_id: &str) -> rusqlite::Result<u64> {
    c.query_row(
        "SELECT COUNT(*) FROM app_read_audit WHERE app_id = ?1",
        [app_id],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        crate::db::migrated(&[OWNER])
    }

    fn app(id: &str, at: i64) -> AppRow {
        AppRow {
            id: id.into(),
            manifest: Manifest {
                name: id.into(),
                api_hosts: vec!["api.example.com".into()],
                ..Default::default()
            },
            entry: "index.tsx".into(),
            bundle_bytes: 10,
            files: 2,
            sha256: "ab".into(),
            disclosure: "d".into(),
            installed_ms: at,
            last_opened_ms: 0,
        }
    }

    #[test]
    fn records_round_trip_and_removal_takes_the_audit() {
        let c = db();
        insert(&c, &app("a-1", 1)).unwrap();
        insert(&c, &app("b-2", 2)).unwrap();
        assert_eq!(
            list(&c)
                .unwrap()
                .iter()
                .map(|a| a.id.as_str())
                .collect::<Vec<_>>(),
            ["b-2", "a-1"]
        );
        assert_eq!(get(&c, "a-1").unwrap().unwrap(), app("a-1", 1));
        assert!(opened(&c, "a-1", 9).unwrap());
        let row = AuditRow {
            at_ms: 5,
            method: "context.activeWindow".into(),
            outcome: "ok".into(),
            items: 1,
            duration_ms: 2,
            error: String::new(),
        };
        for _ in 0..3 {
            audit(&c, "a-1", &row).unwrap();
        }
        audit(&c, "b-2", &row).unwrap();
        assert_eq!(reads(&c, "a-1").unwrap(), 3);
        assert_eq!(audit_rows(&c, "a-1", 2).unwrap(), vec![row.clone(), row]);
        assert_eq!(delete(&c, "a-1").unwrap(), Some(3));
        assert_eq!(delete(&c, "a-1").unwrap(), None);
        assert_eq!(reads(&c, "b-2").unwrap(), 1, "the other app's audit stays");
    }
}
