//! agents-agent's versioned migrations against real files: a cowork.db
//! written by the release before versioning (fixtures/agents-0.1.sql,
//! dumped from a database that release's own store functions filled) is
//! adopted with every row kept, and a file a newer build migrated is
//! refused without a byte written.

use agents_agent::db::Db;
use agents_agent::schema::OWNERS;
use agents_agent::{agent, chat, gateway, mcp, models, usage};
use rusqlite::Connection;
use sha2::{Digest, Sha256};
use std::path::Path;

const FIXTURE: &str = include_str!("fixtures/agents-0.1.sql");

/// The file's tables (but SQLite's and the migration ledger), by name.
fn table_names(path: &Path) -> Vec<String> {
    let c = Connection::open(path).unwrap();
    let names = c
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table'
         AND name NOT LIKE 'sqlite_%' AND name != 'agents_schema_migrations' ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    names
}

/// `table`'s rows as text, in order: the first `cols` columns of each.
fn rows(path: &Path, table: &str, cols: usize) -> Vec<String> {
    let c = Connection::open(path).unwrap();
    let rows = c
        .prepare(&format!("SELECT * FROM {table} ORDER BY rowid"))
        .unwrap()
        .query_map([], |r| {
            (0..cols)
                .map(|i| r.get_ref(i).map(|v| format!("{v:?}")))
                .collect::<Result<Vec<_>, _>>()
                .map(|v| v.join("|"))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

/// Every table the file holds, with its rows as text, in order.
fn tables(path: &Path) -> Vec<(String, Vec<String>)> {
    table_names(path)
        .into_iter()
        .map(|t| {
            let n = columns(path, &t);
            let r = rows(path, &t, n);
            (t, r)
        })
        .collect()
}

/// How many columns `table` has.
fn columns(path: &Path, table: &str) -> usize {
    let c = Connection::open(path).unwrap();
    c.query_row(
        &format!("SELECT count(*) FROM pragma_table_info('{table}')"),
        [],
        |r| r.get::<_, i64>(0),
    )
    .unwrap() as usize
}

fn fixture_db(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("cowork.db");
    let c = Connection::open(&path).unwrap();
    c.execute_batch(FIXTURE).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    path
}

#[tokio::test]
async fn a_database_from_the_release_before_versioning_is_adopted_with_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_db(dir.path());
    let before = tables(&path);
    let owned = [
        "agent_operations",
        "agents_messages",
        "agents_threads",
        "agents_usage",
        "gateway_settings",
        "mcp_servers",
        "mcp_tool_calls",
        "model_downloads",
    ];
    assert_eq!(
        before.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
        owned,
        "the fixture holds every table the release owned"
    );
    assert!(
        before.iter().all(|(_, rows)| !rows.is_empty()),
        "a row in each"
    );

    let widths: std::collections::HashMap<String, usize> = before
        .iter()
        .map(|(t, _)| (t.clone(), columns(&path, t)))
        .collect();
    let db = Db::new(path.clone(), OWNERS);
    db.open().await.unwrap();
    // Every owner is adopted at version 1 and brought to this build's
    // version; nothing the release wrote changed.
    let versions: Vec<(String, i64)> = db
        .read(|c| {
            c.prepare("SELECT owner, version FROM agents_schema_migrations ORDER BY owner")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .await
        .unwrap();
    let mut expected: Vec<(String, i64)> = OWNERS
        .iter()
        .flat_map(|o| (1..=o.version()).map(|v| (o.name.to_owned(), v)))
        .collect();
    expected.sort();
    assert_eq!(versions, expected);
    drop(db);
    // Later steps may add columns (at the end) and tables of their own.
    for (t, kept) in &before {
        assert_eq!(
            &rows(&path, t, widths[t]),
            kept,
            "{t}: every row kept, every column as it was"
        );
    }
    for t in table_names(&path) {
        assert!(
            // memory's tables, chat's citations (its step 3), and the
            // owners added since: automations, notifications, apps and
            // audio.
            widths.contains_key(&t)
                || t.starts_with("memory_")
                || t == "agents_citations"
                || t.starts_with("automation")
                || t == "notifications"
                || t == "installed_apps"
                || t == "app_read_audit"
                || t.starts_with("audio_transcript"),
            "{t}: a table no owner's later step makes"
        );
    }

    // And the stores read them back.
    let db = Db::new(path.clone(), OWNERS);
    let threads = db.read(|c| chat::store::threads(c, 10)).await.unwrap();
    assert_eq!(threads.len(), 1);
    assert_eq!(threads[0].message_count, 2);
    let usage = db
        .read(|c| usage::store::usage_at(c, 1_764_000_001_000, Some("ask-fixture-2")))
        .await
        .unwrap();
    assert!((usage.spent_this_ask - 0.0105).abs() < 1e-9, "{usage:?}");
    let ops = db.read(|c| agent::store::list(c, 10)).await.unwrap();
    assert_eq!(ops[0].0.result, "It is 09:00 in Tokyo.");
    let servers = db.read(mcp::store::all).await.unwrap();
    assert_eq!(servers[0].bundled.catalog_id, "time");
    assert_eq!(servers[0].spec.secret_names(), vec!["TOKEN"]);
    let downloads = db.read(models::store::list).await.unwrap();
    assert_eq!(downloads[0].files[0].name, "gemma.gguf");
    let gw = db.read(gateway::store::get).await.unwrap();
    assert_eq!((gw.enabled, gw.port), (true, 7444));

    // Opening again applies nothing twice.
    db.open().await.unwrap();
    let n: i64 = db
        .read(|c| {
            c.query_row("SELECT count(*) FROM agents_schema_migrations", [], |r| {
                r.get(0)
            })
        })
        .await
        .unwrap();
    assert_eq!(n, OWNERS.iter().map(|o| o.version()).sum::<i64>());
}

fn digest(path: &Path) -> Vec<(String, String)> {
    ["", "-wal"]
        .iter()
        .map(|s| {
            let p = format!("{}{s}", path.display());
            let bytes = std::fs::read(&p).unwrap_or_default();
            (p, format!("{:x}", Sha256::digest(&bytes)))
        })
        .collect()
}

#[tokio::test]
async fn a_database_a_newer_build_migrated_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture_db(dir.path());
    // A newer build recorded chat at version 1 and mcp at version 7; it
    // left the rest as the fixture has them.
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE agents_schema_migrations (owner TEXT NOT NULL, version INTEGER NOT NULL,
                applied_ms INTEGER NOT NULL, PRIMARY KEY (owner, version));
             INSERT INTO agents_schema_migrations VALUES ('chat', 1, 0), ('mcp', 7, 0);",
        )
        .unwrap();
        c.pragma_update(None, "wal_checkpoint", "TRUNCATE").unwrap();
    }
    let before = digest(&path);
    let db = Db::new(path.clone(), OWNERS);
    let e = db.open().await.unwrap_err().to_string();
    assert!(
        e.contains("mcp schema version 7, newer than this build's 1"),
        "names the owner and both versions: {e}"
    );
    assert!(e.contains("upgrade Cowork"), "{e}");
    // Reads and writes are refused the same way, and none reaches the file.
    let r = db.read(mcp::store::all).await.unwrap_err().to_string();
    assert!(r.contains("mcp schema version 7"), "{r}");
    let w = db
        .write(|c| chat::store::create_thread(c, "hello"))
        .await
        .unwrap_err()
        .to_string();
    assert!(w.contains("mcp schema version 7"), "{w}");
    drop(db);
    assert_eq!(digest(&path), before, "not a byte written");
}
