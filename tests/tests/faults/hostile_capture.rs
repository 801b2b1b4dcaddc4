//! Hostile inputs 6 and 7, and a full disk under capture.

use super::{SmallDisk, T};
use cowork_e2e::*;
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

/// A script typing without end (one key every 20 ms, Enter every ten),
/// and a config replaying it in real time, with `extra` in `[capture]`.
fn typing_config(home: &Path, extra: &str) -> String {
    let mut script = String::from(
        "{\"t_ms\":0,\"kind\":\"window\",\"app\":\"Code\",\"app_id\":\"code\",\"title\":\"notes\"}\n",
    );
    for i in 1..30_000u32 {
        if i % 10 == 0 {
            script += &format!(
                "{{\"t_ms\":{},\"kind\":\"key\",\"key\":\"Enter\"}}\n",
                i * 20
            );
        } else {
            script += &format!("{{\"t_ms\":{},\"kind\":\"keys\",\"text\":\"k\"}}\n", i * 20);
        }
    }
    std::fs::write(home.join("script.jsonl"), script).expect("write script");
    format!(
        "{FAST}\n[capture]\nsource = \"sim\"\nsim_script = \"script.jsonl\"\nsim_speed = 1.0\n\
         flush_interval_ms = 200\n{extra}\n"
    )
}

fn chunks(home: &Path) -> i64 {
    Connection::open(home.join("cowork.db"))
        .and_then(|c| {
            c.query_row("SELECT count(*) FROM capture_keystroke_chunks", [], |r| {
                r.get(0)
            })
        })
        .unwrap_or(0)
}

fn growing(home: &Path) {
    let n = chunks(home);
    wait_until(T, "capture recording", || chunks(home) > n + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_edit_that_breaks_capture_pauses_it_and_a_fix_resumes_it() {
    let home = Suite::temp_home();
    let good = typing_config(home.path(), "");
    let s = Suite::start_in(home, &good);
    s.wait_state("capture", "running", T).await;
    let home = s.home.path().to_path_buf();
    growing(&home);
    let tries = 3;
    for _ in 0..tries {
        // A typo: under the old rules the person's new redactions would be
        // ignored while recording went on.
        s.write_config(&good.replace(
            "flush_interval_ms",
            "redact_patternz = [\"k\"]\nflush_interval_ms",
        ));
        let w = s.wait_state("capture", "degraded", T).await;
        assert!(
            w.reason.contains("redact_patternz") && w.reason.contains("paused"),
            "{}",
            w.reason
        );
        std::thread::sleep(Duration::from_millis(600));
        let paused = chunks(&home);
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(chunks(&home), paused, "rows were written while paused");
        s.write_config(&good);
        s.wait_state("capture", "running", T).await;
        growing(&home);
    }
    record_fault(
        "capture: a live edit makes [capture] invalid, then a fix",
        tries,
        "nothing (paused, degraded naming the error, nothing recorded; resumed by itself)",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_number_typed_across_the_1000_character_cap_is_redacted_in_both_chunks() {
    let mut tries = 0;
    for lead in [990usize, 995, 999] {
        let home = Suite::temp_home();
        let text = format!("{} 4111 1111 1111 1111 done", "x".repeat(lead - 1));
        let script = format!(
            "{{\"t_ms\":0,\"kind\":\"window\",\"app\":\"Shop\",\"app_id\":\"shop\",\"title\":\"pay\"}}\n\
             {{\"t_ms\":10,\"kind\":\"keys\",\"text\":\"{text}\"}}\n"
        );
        std::fs::write(home.path().join("script.jsonl"), script).expect("script");
        let config = format!(
            "{FAST}\n[capture]\nsource = \"sim\"\nsim_script = \"script.jsonl\"\n\
             redact_patterns = ['\\b\\d{{4}}(?:[ -]?\\d{{4}}){{3}}\\b']\n"
        );
        let mut s = Suite::start_in(home, &config);
        s.wait_state("capture", "running", T).await;
        let db = s.home.path().join("cowork.db");
        wait_until(T, "both chunks written", || {
            Connection::open(&db)
                .and_then(|c| {
                    c.query_row("SELECT count(*) FROM capture_keystroke_chunks", [], |r| {
                        r.get::<_, i64>(0)
                    })
                })
                .unwrap_or(0)
                >= 2
        });
        let status = s.stop_with(nix::sys::signal::Signal::SIGTERM);
        assert!(status.success());
        let c = Connection::open(&db).expect("db");
        let texts: Vec<String> = c
            .prepare("SELECT text FROM capture_keystroke_chunks ORDER BY id")
            .and_then(|mut st| {
                st.query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .expect("chunks");
        assert_eq!(texts.len(), 2, "lead {lead}: {texts:?}");
        for t in &texts {
            assert!(
                !t.contains("1111") && !t.contains("4111"),
                "lead {lead}: {t:?}"
            );
        }
        assert!(
            texts.concat().ends_with(" [redacted] done"),
            "lead {lead}: {texts:?}"
        );
        tries += 1;
    }
    record_fault(
        "capture: a card number typed across the 1000-character chunk cap",
        tries,
        "nothing (redacted whole; neither chunk keeps a digit of it)",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_capture_degrades_it_and_space_coming_back_resumes_it() {
    let disk = SmallDisk::new(24);
    let home = tempfile::Builder::new()
        .prefix("home-")
        .tempdir_in(disk.path())
        .expect("home");
    let config = typing_config(home.path(), "");
    let mut s = Suite::start_in(home, &config);
    s.wait_state("capture", "running", T).await;
    let home = s.home.path().to_path_buf();
    growing(&home);
    let before = chunks(&home);
    // Fill the disk.
    let filler = disk.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).expect("filler");
        let block = vec![0u8; 1 << 16];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
    let w = s.wait_state("capture", "degraded", T).await;
    assert!(
        w.reason.contains("cannot write") && w.reason.contains("full"),
        "{}",
        w.reason
    );
    std::fs::remove_file(&filler).expect("free the space");
    s.wait_state("capture", "running", T).await;
    growing(&home);
    let status = s.stop_with(nix::sys::signal::Signal::SIGTERM);
    assert!(status.success());
    let c = Connection::open(home.join("cowork.db")).expect("db");
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(ok, "ok");
    assert!(chunks(&home) > before);
    record_fault(
        "capture: the disk fills under capture at full speed, then space returns",
        1,
        "nothing (degraded naming the reason; resumed; integrity_check ok; rows kept)",
    );
}
