//! Files that are not what they should be: a corrupt or truncated WAL, a
//! cowork.db that is not a database, a config.toml of binary garbage. A
//! clear message, and nothing overwritten.

use super::T;
use cowork_e2e::*;
use rusqlite::Connection;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn rows(home: &Path) -> i64 {
    Connection::open(home.join("cowork.db"))
        .and_then(|c| c.query_row("SELECT count(*) FROM capture_activities", [], |r| r.get(0)))
        .unwrap_or(0)
}

fn windows_config(home: &Path) -> String {
    let mut script = String::new();
    for i in 0..200u32 {
        script += &format!(
            "{{\"t_ms\":{},\"kind\":\"window\",\"app\":\"A{i}\",\"app_id\":\"a{i}\",\"title\":\"t{i}\"}}\n",
            i * 5
        );
    }
    std::fs::write(home.join("script.jsonl"), script).expect("script");
    format!("{FAST}\n[capture]\nsource = \"sim\"\nsim_script = \"script.jsonl\"\nsim_speed = 1.0\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_or_truncated_wal_is_recovered_from_and_keeps_the_database() {
    let home = Suite::temp_home();
    let config = windows_config(home.path());
    let mut s = Suite::start_in(home, &config);
    s.wait_state("capture", "running", T).await;
    let h = s.home.path().to_path_buf();
    wait_until(T, "rows", || rows(&h) > 100);
    assert!(s.stop_with(nix::sys::signal::Signal::SIGTERM).success());
    let kept = rows(&h);
    // Garbage where the WAL goes.
    let mut junk = vec![0u8; 100_000];
    for (i, b) in junk.iter_mut().enumerate() {
        *b = (i * 31 % 251) as u8;
    }
    std::fs::write(h.join("cowork.db-wal"), &junk).expect("write junk WAL");
    s.spawn_coworkd();
    s.wait_state("capture", "running", T).await;
    s.wait_state("agents", "running", T).await;
    assert!(rows(&h) >= kept, "{} rows, {kept} before", rows(&h));
    // A WAL cut in the middle of its frames, after a kill -9.
    let w = s.worker("capture").await;
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(w.pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    assert!(s
        .stop_with(nix::sys::signal::Signal::SIGKILL)
        .code()
        .is_none());
    let wal = h.join("cowork.db-wal");
    if let Ok(m) = std::fs::metadata(&wal) {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&wal)
            .expect("open WAL");
        f.set_len(m.len() / 2 + 7).expect("truncate WAL");
    }
    s.spawn_coworkd();
    s.wait_state("capture", "running", T).await;
    assert!(rows(&h) >= kept, "{} rows, {kept} before", rows(&h));
    let c = Connection::open(h.join("cowork.db")).expect("db");
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(ok, "ok");
    record_fault(
        "files: cowork.db-wal is garbage / cut in half after a kill -9",
        2,
        "nothing of what was in cowork.db (the bad WAL ignored; integrity_check ok)",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cowork_db_that_is_not_a_database_is_named_and_left_as_it_is() {
    let home = Suite::temp_home();
    let junk: Vec<u8> = (0..65_536u32).map(|i| (i * 7 % 253) as u8).collect();
    let db = home.path().join("cowork.db");
    std::fs::write(&db, &junk).expect("write junk");
    let before = sha256sum(&db);
    let s = Suite::start_in(home, FAST);
    for worker in ["capture", "agents"] {
        let w = s
            .wait_worker(worker, "reporting the bad file", T, |w| {
                format!("{} {}", w.reason, w.last_log_lines.join("\n")).contains("not a database")
            })
            .await;
        let why = format!("{} {}", w.reason, w.last_log_lines.join("\n"));
        assert!(why.contains("cowork.db"), "{worker}: {why}");
    }
    assert_eq!(sha256sum(&db), before, "cowork.db was written to");
    record_fault(
        "files: cowork.db is not a database",
        1,
        "nothing (both workers name the file; it is left byte for byte)",
    );
}

#[test]
fn a_config_toml_of_binary_garbage_stops_coworkd_with_the_reason_and_is_left_as_it_is() {
    let home = Suite::temp_home();
    let config = home.path().join("config.toml");
    let junk: Vec<u8> = (0..4096u32).map(|i| (i * 13 % 256) as u8).collect();
    std::fs::write(&config, &junk).expect("write junk");
    let before = sha256sum(&config);
    let out = Command::new(bin("coworkd"))
        .arg("--home")
        .arg(home.path())
        .stdin(Stdio::null())
        .output()
        .expect("run coworkd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "coworkd ran on a garbage config.toml"
    );
    assert!(err.contains("config.toml"), "{err}");
    assert_eq!(sha256sum(&config), before, "config.toml was rewritten");
    assert!(
        !home.path().join("cowork.db").exists(),
        "something was written"
    );
    record_fault(
        "files: config.toml is binary garbage",
        1,
        "nothing (coworkd stops naming config.toml; the file is left byte for byte)",
    );
}
