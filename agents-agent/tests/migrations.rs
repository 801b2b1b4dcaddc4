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

/// Every table the fixture holds, with its rows as text, in order.
fn tables(path: &Path) -> Vec<(String, Vec<String>)> {
    let c = Connection::open(path).unwrap();
    let names: Vec<String> = c
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
        .into_iter()
        .map(|t| {
            let cols: i64 = c
                .query_row(
                    &format!("SELECT count(*) FROM pragma_table_info('{t}')"),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            let rows = c
                .prepare(&format!("SELECT * FROM {t} ORDER BY rowid"))
                .unwrap()
                .query_map([], |r| {
                    (0..cols as usize)
                        .map(|i| r.get_ref(i).map(|v| format!("{v:?}")))
                        .collect::<Result<Vec<_>, _>>()
                        .map(|v| v.join("|"))
                })
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            (t, rows)
        })
        .collect()
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

    let db = Db::new(path.clone(), OWNERS);
    db.open().await.unwrap();
    // Every owner is recorded at version 1, and nothing else changed.
    let versions: Vec<(String, i64)> = db
        .read(|c| {
            c.prepare("SELECT owner, version FROM agents_schema_migrations ORDER BY owner")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .await
        .unwrap();
    let mut expected: Vec<(String, i64)> = OWNERS.iter().map(|o| (o.name.to_owned(), 1)).collect();
    expected.sort();
    assert_eq!(versions, expected);
    drop(db);
    assert_eq!(
        tables(&path),
        before,
        "every row kept, every column as it was"
    );

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
    assert_eq!(n, OWNERS.len() as i64);
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
