//! cowork.db across versions, end to end: a file a newer agents-agent
//! migrated makes agents-agent `degraded`, naming the owner and both
//! versions, with nothing written to the file, while capture (which owns
//! other tables in the same file) keeps recording.

use cowork_e2e::*;
use rusqlite::Connection;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_newer_agents_schema_degrades_agents_only_and_nothing_is_written() {
    let home = Suite::temp_home();
    let db = home.path().join("cowork.db");
    {
        let c = Connection::open(&db).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.execute_batch(
            "CREATE TABLE agents_schema_migrations (owner TEXT NOT NULL, version INTEGER NOT NULL,
                applied_ms INTEGER NOT NULL, PRIMARY KEY (owner, version));
             INSERT INTO agents_schema_migrations VALUES ('chat', 99, 0);",
        )
        .unwrap();
    }
    std::fs::write(
        home.path().join("script.jsonl"),
        "{\"t_ms\":0,\"kind\":\"window\",\"app\":\"Code\",\"title\":\"main.rs\"}\n\
         {\"t_ms\":10,\"kind\":\"keys\",\"text\":\"hello\"}\n",
    )
    .unwrap();
    let suite = Suite::start_in(
        home,
        &format!(
            "{FAST}\n[capture]\nsource = \"sim\"\nsim_script = \"script.jsonl\"\nsim_speed = 0\n"
        ),
    );
    let agents = suite.wait_state("agents", "degraded", T).await;
    assert!(
        agents
            .reason
            .contains("chat schema version 99, newer than this build's "),
        "the reason names the owner and both versions: {}",
        agents.reason
    );
    // A request says the same, and writes nothing either.
    let out = suite.ctl(&["chat", "threads"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("chat schema version 99"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Capture records into the same file all the while.
    suite.wait_state("capture", "running", T).await;
    let c = Connection::open(&db).unwrap();
    let deadline = Instant::now() + T;
    loop {
        let rows: i64 = c
            .query_row("SELECT count(*) FROM capture_activities", [], |r| r.get(0))
            .unwrap_or(0);
        if rows > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "capture wrote no activity");
        std::thread::sleep(Duration::from_millis(50));
    }
    let agents_tables: Vec<String> = c
        .prepare(
            // (sqlite_sequence is SQLite's own, made for capture's
            // AUTOINCREMENT audio segments; traces_* are coworkd's spans.)
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'capture_%'
                AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'traces_%'",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        agents_tables,
        ["agents_schema_migrations"],
        "agents-agent created no table"
    );
    let recorded: i64 = c
        .query_row("SELECT count(*) FROM agents_schema_migrations", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(recorded, 1, "and recorded no version");
}
