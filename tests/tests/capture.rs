//! capture-agent end to end, with the simulation source: rows per stream,
//! chunking rules, consent, denylist, redaction, retention, crash safety.

use cowork_e2e::*;
use rusqlite::Connection;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

/// A config replaying `script` (written to the home) at `speed`.
fn sim_config(home: &Path, script: &str, speed: f64, extra: &str) -> String {
    std::fs::write(home.join("script.jsonl"), script).expect("write script");
    format!(
        "{FAST}\n[capture]\nsource = \"sim\"\nsim_script = \"script.jsonl\"\nsim_speed = {speed}\n{extra}\n"
    )
}

fn ctl_json(suite: &Suite, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = suite.ctl(&a);
    assert!(
        out.status.success(),
        "coworkctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("coworkctl --json prints JSON")
}

/// Wait until the sim source has replayed the whole script.
fn wait_replayed(suite: &Suite) -> Value {
    let deadline = Instant::now() + T;
    loop {
        // capture-agent may still be starting (UNAVAILABLE): ask again.
        let out = suite.ctl(&["--json", "capture", "status"]);
        let s: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if s["source_detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("replayed"))
        {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "script not replayed: {s} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn db(home: &Path) -> Connection {
    Connection::open(home.join("cowork.db")).expect("open cowork.db")
}

fn line(v: Value) -> String {
    format!("{v}\n")
}

/// Stop the suite gracefully so every open row is closed and committed.
fn stop(mut suite: Suite) -> tempfile::TempDir {
    let status = suite.stop_with(nix::sys::signal::Signal::SIGTERM);
    assert!(status.success(), "coworkd exit: {status:?}");
    let home = std::mem::replace(&mut suite.home, Suite::temp_home());
    drop(suite);
    home
}

#[test]
fn a_script_of_n_events_gives_exactly_the_rows_it_describes() {
    let apps = [("Code", "code"), ("Firefox", "firefox"), ("Slack", "slack")];
    let windows = 30;
    let mut script = String::new();
    let mut t = 0;
    let mut expected_chunks = Vec::new();
    let mut events = 0;
    for i in 0..windows {
        let (app, id) = apps[i % 3];
        let url = (app == "Firefox").then(|| format!("https://docs.test/{i}"));
        script += &line(
            json!({"t_ms": t, "kind": "window", "app": app, "app_id": id,
            "title": format!("{app} window {i}"), "url": url}),
        );
        let text = format!("typed in {i} ");
        for word in text.split_inclusive(' ') {
            t += 10;
            script += &line(json!({"t_ms": t, "kind": "keys", "text": word}));
            events += 1;
        }
        t += 10;
        script += &line(json!({"t_ms": t, "kind": "key", "key": "Enter"}));
        t += 10;
        script += &line(
            json!({"t_ms": t, "kind": "clipboard", "op": "copy", "text": format!("clip {i}")}),
        );
        events += 3;
        expected_chunks.push((text, app.to_owned(), format!("{app} window {i}")));
        t += 100;
    }
    script += &line(json!({"t_ms": t, "kind": "idle", "seconds": 5}));
    events += 1;
    let home = Suite::temp_home();
    let config = sim_config(home.path(), &script, 0.0, "");
    let suite = Suite::start_in(home, &config);
    let status = wait_replayed(&suite);
    assert!(
        status["source_detail"]
            .as_str()
            .unwrap()
            .contains(&format!("({events} events, 0 bad lines)")),
        "{status}"
    );
    let home = stop(suite);
    let c = db(home.path());
    // One activity per window, plus the one reopened when the idle period
    // ended; one focus session per app change (every window changes app)
    // plus the reopened one; one idle period.
    assert_eq!(
        count(&c, "SELECT count(*) FROM capture_activities"),
        windows as i64 + 1
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM capture_focus_sessions"),
        windows as i64 + 1
    );
    assert_eq!(count(&c, "SELECT count(*) FROM capture_idle_periods"), 1);
    assert_eq!(
        count(&c, "SELECT count(*) FROM capture_clipboard_events"),
        windows as i64
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM capture_keystroke_chunks"),
        windows as i64
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM capture_activities WHERE ended_ms IS NULL"
        ),
        0,
        "SIGTERM closes every activity"
    );
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM capture_idle_periods WHERE ended_ms - started_ms = 5000"
        ),
        1
    );
    let mut stmt = c
        .prepare(
            "SELECT text, app_name, window_title, flush_reason, activity_id FROM capture_keystroke_chunks ORDER BY id",
        )
        .unwrap();
    let chunks: Vec<(String, String, String, String, i64)> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    for (got, want) in chunks.iter().zip(&expected_chunks) {
        assert_eq!((&got.0, &got.1, &got.2), (&want.0, &want.1, &want.2));
        assert_eq!(got.3, "enter");
        let title: String = c
            .query_row(
                "SELECT window_title FROM capture_activities WHERE id = ?1",
                [got.4],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            title, want.2,
            "the activity hint points at the right window"
        );
    }
    let urls = count(
        &c,
        "SELECT count(*) FROM capture_activities WHERE url LIKE 'https://docs.test/%'",
    );
    assert_eq!(urls, windows as i64 / 3);
    let clip_app: String = c
        .query_row(
            "SELECT source_app FROM capture_clipboard_events WHERE text = 'clip 4'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(clip_app, "Firefox");
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn the_cap_special_keys_and_debounce_close_chunks() {
    let mut script = line(json!({"t_ms": 0, "kind": "window", "app": "Code", "title": "a.rs"}));
    script += &line(json!({"t_ms": 10, "kind": "keys", "text": "x".repeat(2500)}));
    script += &line(json!({"t_ms": 20, "kind": "key", "key": "Tab"}));
    script += &line(json!({"t_ms": 30, "kind": "keys", "text": "0123456789"}));
    script += &line(json!({"t_ms": 40, "kind": "key", "key": "Backspace"}));
    script += &line(json!({"t_ms": 50, "kind": "key", "key": "Escape"}));
    script += &line(json!({"t_ms": 60, "kind": "keys", "text": "abc"}));
    // 2 s pause: the debounce (500 ms here) closes "abc".
    script += &line(json!({"t_ms": 2060, "kind": "keys", "text": "def"}));
    script += &line(json!({"t_ms": 2070, "kind": "window", "app": "Code", "title": "b.rs"}));
    let home = Suite::temp_home();
    let config = sim_config(home.path(), &script, 0.0, "keystroke_debounce_ms = 500");
    let suite = Suite::start_in(home, &config);
    wait_replayed(&suite);
    let recent = ctl_json(
        &suite,
        &[
            "capture",
            "recent",
            "--stream",
            "keystrokes",
            "--limit",
            "100",
        ],
    );
    let home = stop(suite);
    let c = db(home.path());
    let mut stmt = c
        .prepare("SELECT length(text), flush_reason, window_title FROM capture_keystroke_chunks ORDER BY id")
        .unwrap();
    let got: Vec<(i64, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let want: Vec<(i64, String, String)> = [
        (1000, "cap"),
        (1000, "cap"),
        (500, "tab"),
        (9, "escape"),
        (3, "debounce"),
        (3, "activity_end"),
    ]
    .iter()
    .map(|(n, r)| (*n, r.to_string(), "a.rs".to_string()))
    .collect();
    assert_eq!(got, want);
    // The cap closes only the chunk: one activity for a.rs, ended by the
    // switch to b.rs.
    let reason: String = c
        .query_row(
            "SELECT end_reason FROM capture_activities WHERE window_title = 'a.rs'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(reason, "switch");
    let recs = recent["records"].as_array().unwrap();
    assert_eq!(recs.len(), 6, "{recent}");
    assert!(recs
        .iter()
        .all(|r| r["kind"] == "keystroke_chunk" && r["app"] == "Code"));
}

#[test]
fn a_disabled_stream_writes_nothing_and_consent_persists() {
    let mut script = String::new();
    // Nothing happens for 1.5 s, so consent is changed before any event.
    for i in 0..10 {
        let t = 1500 + i * 20;
        script +=
            &line(json!({"t_ms": t, "kind": "window", "app": "Code", "title": format!("f{i}")}));
        script += &line(json!({"t_ms": t + 5, "kind": "keys", "text": "secret"}));
        script += &line(json!({"t_ms": t + 6, "kind": "key", "key": "Enter"}));
        script +=
            &line(json!({"t_ms": t + 7, "kind": "clipboard", "op": "copy", "text": "secret"}));
    }
    let home = Suite::temp_home();
    let config = sim_config(home.path(), &script, 1.0, "");
    let mut suite = Suite::start_in(home, &config);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(suite.wait_state("capture", "running", T));
    let off = ctl_json(&suite, &["capture", "disable", "keystrokes"]);
    assert_eq!(
        off,
        json!({"name": "keystrokes", "enabled": false, "source": "sim",
        "events_last_minute": 0, "last_event_unix_ms": null, "events_total": 0})
    );
    let out = suite.ctl(&["capture", "disable", "clipboard"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "clipboard: off\n");
    let bad = suite.ctl(&["capture", "disable", "screen"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("unknown capture stream \"screen\""),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let status = wait_replayed(&suite);
    let streams = status["streams"].as_array().unwrap();
    let by = |n: &str| streams.iter().find(|s| s["name"] == n).unwrap().clone();
    assert_eq!(by("keystrokes")["enabled"], false);
    assert_eq!(by("keystrokes")["events_total"], 0);
    assert_eq!(by("clipboard")["events_total"], 0);
    assert_eq!(by("window")["events_total"], 10);
    assert!(by("window")["events_last_minute"].as_u64().unwrap() >= 10);
    // Consent survives a restart of the whole suite.
    suite.stop_with(nix::sys::signal::Signal::SIGTERM);
    suite.spawn_coworkd();
    rt.block_on(suite.wait_state("capture", "running", T));
    let status = wait_replayed(&suite);
    let streams = status["streams"].as_array().unwrap();
    assert!(streams
        .iter()
        .any(|s| s["name"] == "keystrokes" && s["enabled"] == false));
    let home = stop(suite);
    let c = db(home.path());
    assert_eq!(
        count(&c, "SELECT count(*) FROM capture_keystroke_chunks"),
        0
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM capture_clipboard_events"),
        0
    );
    assert_eq!(
        count(&c, "SELECT count(*) FROM capture_activities"),
        20,
        "two replays"
    );
}

/// Every text value in every capture table, concatenated.
fn all_text(c: &Connection) -> String {
    let mut all = String::new();
    for table in [
        "capture_activities",
        "capture_focus_sessions",
        "capture_keystroke_chunks",
        "capture_clipboard_events",
    ] {
        let mut stmt = c.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            for i in 0..n {
                if let Ok(Some(s)) = r.get::<_, Option<String>>(i) {
                    let _ = write!(all, "{s}|");
                }
            }
        }
    }
    all
}

#[test]
fn denylisted_apps_write_nothing_and_redaction_applies_before_writing() {
    let mut s = line(
        json!({"t_ms": 0, "kind": "window", "app": "KeePassXC", "app_id": "keepassxc", "title": "Vault.kdbx"}),
    );
    s += &line(json!({"t_ms": 10, "kind": "keys", "text": "hunter2"}));
    s += &line(json!({"t_ms": 20, "kind": "key", "key": "Enter"}));
    s += &line(json!({"t_ms": 30, "kind": "clipboard", "op": "copy", "text": "pa55word"}));
    s += &line(json!({"t_ms": 40, "kind": "window", "app": "Signal", "title": "Chat with Bob"}));
    s += &line(json!({"t_ms": 50, "kind": "keys", "text": "private"}));
    s += &line(
        json!({"t_ms": 60, "kind": "window", "app": "Firefox", "title": "Project Falcon roadmap",
        "url": "https://app.test/cb?token=tok123&page=2"}),
    );
    s += &line(json!({"t_ms": 70, "kind": "clipboard", "op": "paste", "text": "pa55word"}));
    // Copied with the password manager's button (no hotkey seen), pasted here.
    s += &line(
        json!({"t_ms": 72, "kind": "clipboard", "op": "paste", "text": "button-copied-pw", "owner_app": "KeePassXC"}),
    );
    s += &line(
        json!({"t_ms": 74, "kind": "clipboard", "op": "paste", "text": "hinted-pw", "sensitive": true}),
    );
    s += &line(json!({"t_ms": 80, "kind": "keys", "text": "api token=abc123 and falcon"}));
    s += &line(json!({"t_ms": 90, "kind": "key", "key": "Enter"}));
    let home = Suite::temp_home();
    let config = sim_config(
        home.path(),
        &s,
        0.0,
        "denylist_extra = [\"Signal\"]\nredact_patterns = [\"(?i)project falcon\", \"(token=)\\\\S+\"]",
    );
    let suite = Suite::start_in(home, &config);
    wait_replayed(&suite);
    let w = ctl_json(&suite, &["capture", "window"]);
    assert_eq!(w["title"], "[redacted] roadmap");
    let home = stop(suite);
    let c = db(home.path());
    let text = all_text(&c);
    for secret in [
        "KeePassXC",
        "Vault",
        "hunter2",
        "pa55word",
        "Signal",
        "Bob",
        "private",
        "tok123",
        "abc123",
        "Falcon",
    ] {
        assert!(!text.contains(secret), "{secret:?} was written: {text}");
    }
    let (title, url): (String, String) = c
        .query_row(
            "SELECT window_title, url FROM capture_activities WHERE app_name = 'Firefox'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(title, "[redacted] roadmap");
    assert_eq!(url, "https://app.test/cb?token=[redacted]");
    let chunk: String = c
        .query_row("SELECT text FROM capture_keystroke_chunks", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(chunk, "api token=[redacted] and falcon");
    assert_eq!(count(&c, "SELECT count(*) FROM capture_activities"), 1);
    assert_eq!(
        count(&c, "SELECT count(*) FROM capture_clipboard_events"),
        0
    );
}

#[test]
fn retention_deletes_old_records_on_start() {
    let home = Suite::temp_home();
    let config = sim_config(home.path(), "", 0.0, "retention_days = 30");
    let suite = Suite::start_in(home, &config);
    wait_replayed(&suite);
    let home = stop(suite);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day = 86_400_000i64;
    {
        let c = db(home.path());
        for (id, age_days) in [(1, 40), (2, 31), (3, 29), (4, 1)] {
            let end = now - age_days * day;
            c.execute(
                "INSERT INTO capture_activities (id, app_name, app_id, window_title, started_ms, ended_ms, end_reason, updated_ms) VALUES (?1, 'A', 'a', 't', ?2, ?3, 'switch', ?3)",
                [id, end - 1000, end],
            )
            .unwrap();
            c.execute(
                "INSERT INTO capture_clipboard_events (id, op, source_app, source_app_id, window_title, at_ms) VALUES (?1, 'copy', 'A', 'a', 't', ?2)",
                [id, end],
            )
            .unwrap();
        }
    }
    let suite = Suite::start_in(home, &config);
    wait_replayed(&suite);
    let home = stop(suite);
    let c = db(home.path());
    let mut stmt = c
        .prepare("SELECT id FROM capture_activities ORDER BY id")
        .unwrap();
    let ids: Vec<i64> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(ids, [3, 4]);
    assert_eq!(
        count(&c, "SELECT count(*) FROM capture_clipboard_events"),
        2
    );
}

#[test]
fn auto_with_no_display_is_degraded_and_says_why() {
    let home = Suite::temp_home();
    let config = format!("{FAST}\n[capture]\nsource = \"auto\"\n");
    let suite = Suite::start_with_env(home, &config, vec![("DISPLAY".into(), None)]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let w = rt.block_on(suite.wait_state("capture", "degraded", T));
    assert!(w.reason.contains("no display"), "{}", w.reason);
    let s = ctl_json(&suite, &["capture", "status"]);
    assert_eq!(s["source_state"], "degraded");
    // Still serving everything else.
    let recent = ctl_json(&suite, &["capture", "recent"]);
    assert_eq!(recent, json!({"records": []}));
}

#[test]
fn an_invalid_capture_section_fails_closed() {
    let s = line(json!({"t_ms": 0, "kind": "window", "app": "Code", "title": "secret plan"}));
    let home = Suite::temp_home();
    // A typo: the person's redactions would silently be dropped.
    let config = sim_config(home.path(), &s, 0.0, "redact_patternz = [\"secret\"]");
    let suite = Suite::start_in(home, &config);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let w = rt.block_on(suite.wait_state("capture", "degraded", T));
    assert!(
        w.reason.contains("redact_patternz") && w.reason.contains("paused"),
        "{}",
        w.reason
    );
    let recent = ctl_json(&suite, &["capture", "recent"]);
    assert_eq!(recent, json!({"records": []}), "nothing is recorded");
}

#[test]
fn a_bad_script_line_is_reported_and_skipped() {
    let mut s = line(json!({"t_ms": 0, "kind": "window", "app": "Code", "title": "a"}));
    s += "{\"t_ms\": 5, \"kind\": \"teleport\"}\n";
    s += &line(json!({"t_ms": 10, "kind": "window", "app": "Code", "title": "b"}));
    let home = Suite::temp_home();
    let config = sim_config(home.path(), &s, 0.0, "");
    let suite = Suite::start_in(home, &config);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let w = rt.block_on(suite.wait_state("capture", "degraded", T));
    assert!(
        w.reason.contains("line 2") && w.reason.contains("teleport"),
        "{}",
        w.reason
    );
    let recent = ctl_json(&suite, &["capture", "recent", "--stream", "window"]);
    assert_eq!(recent["records"].as_array().unwrap().len(), 2);
}

/// Run capture-agent alone (no supervisor to restart it) in `home`.
fn spawn_capture(home: &Path) -> std::process::Child {
    Command::new(bin("capture-agent"))
        .arg("--home")
        .arg(home)
        .env_remove("DISPLAY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn capture-agent")
}

fn kill9(child: &mut std::process::Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.wait();
}

#[test]
fn kill_9_during_a_fast_replay_never_corrupts_and_loses_no_committed_row() {
    let mut script = String::with_capacity(20 << 20);
    for i in 0..300_000u32 {
        let t = i;
        if i % 4 == 0 {
            let _ = writeln!(
                script,
                "{{\"t_ms\":{t},\"kind\":\"window\",\"app\":\"App{}\",\"title\":\"w{i}\"}}",
                i % 7
            );
        } else {
            let _ = writeln!(
                script,
                "{{\"t_ms\":{t},\"kind\":\"clipboard\",\"op\":\"copy\",\"text\":\"c{i}\"}}"
            );
        }
    }
    let home = Suite::temp_home();
    std::fs::write(
        home.path().join("config.toml"),
        sim_config(home.path(), &script, 0.0, ""),
    )
    .unwrap();
    let mut child = spawn_capture(home.path());
    let dbp = home.path().join("cowork.db");
    wait_until(T, "rows being written", || {
        Connection::open(&dbp)
            .ok()
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM capture_clipboard_events", [], |r| {
                    r.get::<_, i64>(0)
                })
                .ok()
            })
            .is_some_and(|n| n > 5_000)
    });
    kill9(&mut child);
    {
        let c = db(home.path());
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        let (n, max): (i64, i64) = c
            .query_row(
                "SELECT count(*), max(id) FROM capture_clipboard_events",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(n, max, "committed rows form a prefix: no gaps");
        assert!(n < 225_000, "killed mid-replay ({n} rows)");
    }
    // A restart recovers: rows left open by the kill are closed as crashed.
    let mut child = spawn_capture(home.path());
    let sock = cowork_proto::paths::CoworkPaths::for_home(home.path().to_path_buf())
        .worker_socket("capture");
    wait_until(T, "capture socket", || sock.exists());
    wait_until(T, "crash recovery", || {
        Connection::open(&dbp)
            .ok()
            .and_then(|c| {
                c.query_row(
                    "SELECT count(*) FROM capture_activities WHERE end_reason = 'crash'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .ok()
            })
            .is_some_and(|n| n >= 1)
    });
    kill9(&mut child);
    let c = db(home.path());
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn kill_9_loses_at_most_one_second_of_events() {
    // Real time: a key every 10 ms and a clipboard event every 100 ms for 6 s.
    let mut script = line(json!({"t_ms": 0, "kind": "window", "app": "Code", "title": "a"}));
    for i in 1..600 {
        let t = i * 10;
        script += &line(json!({"t_ms": t, "kind": "keys", "text": "k"}));
        if i % 10 == 0 {
            script += &line(
                json!({"t_ms": t, "kind": "clipboard", "op": "copy", "text": format!("{t}")}),
            );
        }
    }
    let home = Suite::temp_home();
    std::fs::write(
        home.path().join("config.toml"),
        sim_config(home.path(), &script, 1.0, "keystroke_debounce_ms = 10000"),
    )
    .unwrap();
    let mut child = spawn_capture(home.path());
    std::thread::sleep(Duration::from_millis(3_000));
    let killed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    kill9(&mut child);
    let c = db(home.path());
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let last_key: i64 = c
        .query_row(
            "SELECT max(ended_ms) FROM capture_keystroke_chunks",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let last_clip: i64 = c
        .query_row("SELECT max(at_ms) FROM capture_clipboard_events", [], |r| {
            r.get(0)
        })
        .unwrap();
    let lost_keys = killed_at - last_key;
    let lost_clip = killed_at - last_clip;
    eprintln!("kill -9 lost the last {lost_keys} ms of keys, {lost_clip} ms of clipboard");
    assert!(lost_keys <= 1000, "lost {lost_keys} ms of keys");
    assert!(
        lost_clip <= 1000 + 100,
        "lost {lost_clip} ms of clipboard events"
    );
    // The open chunk was checkpointed: its text matches its key count.
    let (text_len, keys): (i64, i64) = c
        .query_row(
            "SELECT char_count, key_count FROM capture_keystroke_chunks",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(text_len, keys);
    assert!(text_len > 150, "{text_len} keys committed in 3 s");
    drop(c);
    // The next start closes what the kill left open near when it happened,
    // not at its start: the activity lasted about 3 s, not 0.
    let mut child = spawn_capture(home.path());
    let dbp = home.path().join("cowork.db");
    wait_until(T, "crash recovery", || {
        Connection::open(&dbp)
            .ok()
            .and_then(|c| {
                c.query_row(
                    "SELECT end_reason FROM capture_activities WHERE id = 1",
                    [],
                    |r| r.get::<_, Option<String>>(0),
                )
                .ok()
            })
            .flatten()
            .is_some()
    });
    kill9(&mut child);
    let c = db(home.path());
    let (ended, reason): (i64, String) = c
        .query_row(
            "SELECT ended_ms, end_reason FROM capture_activities WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(reason, "crash");
    assert!(
        killed_at - ended <= 1000,
        "the crashed activity ends {} ms before the kill",
        killed_at - ended
    );
}
