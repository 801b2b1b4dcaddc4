//! The capture benchmark: the figures issue 3 names, each next to a
//! baseline measured in the same run, printed as a Markdown table.
//!
//! 1. Sustained ingestion: capture-agent replays a script at full speed
//!    (sim_speed = 0); events/s and CPU, against bare rusqlite inserting
//!    the same rows the same way (batched transactions, WAL,
//!    synchronous=NORMAL) in this process.
//! 2. Realistic load: 10 keys/s and one window switch per second at real
//!    speed for 60 s (15 s with COWORK_BENCH_QUICK=1); CPU and RSS, against
//!    an idle capture-agent (an empty script) measured over the same window.
//!
//! Run with `scripts/bench.sh` (release binaries). Not a pass/fail test.

use cowork_e2e::*;
use cowork_proto::pb::capture::{
    capture_client::CaptureClient, GetStatusRequest, ListRecentRequest,
};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FAST_EVENTS: u32 = 400_000;

fn hz() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64
}

fn spawn_capture(home: &Path) -> Child {
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

fn write_home(script: &str, speed: f64) -> tempfile::TempDir {
    let home = Suite::temp_home();
    std::fs::write(home.path().join("script.jsonl"), script).expect("script");
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            "[capture]\nsource = \"sim\"\nsim_script = \"script.jsonl\"\nsim_speed = {speed}\n"
        ),
    )
    .expect("config");
    home
}

async fn client(home: &Path) -> CaptureClient<tonic::transport::Channel> {
    let sock =
        cowork_proto::paths::CoworkPaths::for_home(home.to_path_buf()).worker_socket("capture");
    wait_until(Duration::from_secs(10), "capture socket", || sock.exists());
    CaptureClient::new(cowork_proto::uds::channel(&sock))
}

/// Wait for the replay to finish, then flush (ListRecent commits first).
async fn wait_replayed(c: &mut CaptureClient<tonic::transport::Channel>) {
    loop {
        if let Ok(s) = c.get_status(GetStatusRequest {}).await {
            if s.into_inner().source_detail.starts_with("replayed") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    c.list_recent(ListRecentRequest {
        limit: 1,
        ..Default::default()
    })
    .await
    .expect("flush");
}

fn stop(mut child: Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    wait_child(&mut child, Duration::from_secs(10));
}

/// A script of `n` events at full speed: mostly typed characters, Enter
/// every 40 keys, a window switch every 25 events, a copy every 100.
fn fast_script(n: u32) -> String {
    let mut s = String::with_capacity(n as usize * 60);
    for i in 0..n {
        let t = i / 10;
        if i % 25 == 0 {
            let _ = writeln!(
                s,
                "{{\"t_ms\":{t},\"kind\":\"window\",\"app\":\"App{}\",\"title\":\"doc {i}\"}}",
                i % 5
            );
        } else if i % 100 == 1 {
            let _ = writeln!(
                s,
                "{{\"t_ms\":{t},\"kind\":\"clipboard\",\"op\":\"copy\",\"text\":\"clip {i}\"}}"
            );
        } else if i % 40 == 2 {
            let _ = writeln!(s, "{{\"t_ms\":{t},\"kind\":\"key\",\"key\":\"Enter\"}}");
        } else {
            let _ = writeln!(s, "{{\"t_ms\":{t},\"kind\":\"keys\",\"text\":\"k\"}}");
        }
    }
    s
}

/// The same number of rows the run wrote, inserted by bare rusqlite in
/// 8,192-row transactions with the same pragmas. Rows per second.
fn raw_sqlite_rows_per_s(rows: i64) -> f64 {
    let dir = Suite::temp_home();
    let c = rusqlite::Connection::open(dir.path().join("raw.db")).expect("open");
    c.pragma_update(None, "journal_mode", "WAL").expect("wal");
    c.pragma_update(None, "synchronous", "NORMAL")
        .expect("sync");
    c.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, app TEXT NOT NULL, title TEXT NOT NULL,
            text TEXT, started_ms INTEGER NOT NULL, ended_ms INTEGER, reason TEXT)",
    )
    .expect("table");
    let t = Instant::now();
    let mut id = 0i64;
    while id < rows {
        let tx = c.unchecked_transaction().expect("tx");
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO t (id, app, title, text, started_ms, ended_ms, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT(id) DO UPDATE SET ended_ms = excluded.ended_ms",
                )
                .expect("stmt");
            for _ in 0..8192 {
                if id >= rows {
                    break;
                }
                id += 1;
                stmt.execute(rusqlite::params![
                    id,
                    "App1",
                    format!("doc {id}"),
                    "kkkkkkkkkk",
                    id,
                    id + 1,
                    "switch"
                ])
                .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    rows as f64 / t.elapsed().as_secs_f64()
}

fn db_rows(home: &Path) -> i64 {
    let c = rusqlite::Connection::open(home.join("cowork.db")).expect("db");
    [
        "capture_activities",
        "capture_focus_sessions",
        "capture_keystroke_chunks",
        "capture_clipboard_events",
        "capture_idle_periods",
    ]
    .iter()
    .map(|t| {
        c.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .expect("count")
    })
    .sum()
}

/// 10 keys/s (Enter every 20), one window switch per second, for `secs`.
fn realistic_script(secs: u32) -> String {
    let mut s = String::new();
    for i in 0..secs * 10 {
        let t = i * 100;
        if i % 10 == 0 {
            let app = if (i / 10) % 2 == 0 { "Code" } else { "Firefox" };
            let _ = writeln!(
                s,
                "{{\"t_ms\":{t},\"kind\":\"window\",\"app\":\"{app}\",\"title\":\"w{i}\"}}"
            );
        }
        if i % 20 == 19 {
            let _ = writeln!(s, "{{\"t_ms\":{t},\"kind\":\"key\",\"key\":\"Enter\"}}");
        } else {
            let _ = writeln!(s, "{{\"t_ms\":{t},\"kind\":\"keys\",\"text\":\"a\"}}");
        }
    }
    s
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let quick = std::env::var_os("COWORK_BENCH_QUICK").is_some();
    let mut rows: Vec<[String; 4]> = Vec::new();

    // 1. Sustained ingestion at full speed.
    let home = write_home(&fast_script(FAST_EVENTS), 0.0);
    let t = Instant::now();
    let child = spawn_capture(home.path());
    let pid = child.id();
    let mut c = client(home.path()).await;
    wait_replayed(&mut c).await;
    let wall = t.elapsed().as_secs_f64();
    let ticks = proc_cpu_ticks(pid);
    let peak = proc_peak_rss_bytes(pid);
    stop(child);
    let written = db_rows(home.path());
    let events_s = FAST_EVENTS as f64 / wall;
    let cpu_cores = ticks as f64 / hz() / wall;
    let raw = raw_sqlite_rows_per_s(written);
    let rows_s = written as f64 / wall;
    rows.push([
        format!("sustained ingestion, sim at full speed ({FAST_EVENTS} events → {written} rows)"),
        format!("{events_s:.0} events/s ({rows_s:.0} rows/s), {:.2} cores", cpu_cores),
        format!(
            "bare rusqlite writes the same {written} rows at {raw:.0} rows/s ({:.0} ms)",
            written as f64 / raw * 1000.0
        ),
        format!(
            "run {:.0} ms, of which bare writes would be {:.0} %; target ≥ 50,000 events/s ({:.1}×)",
            wall * 1000.0,
            written as f64 / raw / wall * 100.0,
            events_s / 50_000.0
        ),
    ]);
    rows.push([
        "peak RSS during full-speed ingestion (MiB)".into(),
        format!("{:.1}", peak as f64 / 1048576.0),
        "-".into(),
        "bounded queue (16 Ki events) and batches (8 Ki rows)".into(),
    ]);

    // 2. Realistic load vs idle, measured over the same window.
    let secs = if quick { 15 } else { 60 };
    let busy_home = write_home(&realistic_script(secs + 5), 1.0);
    let idle_home = write_home("", 1.0);
    let busy = spawn_capture(busy_home.path());
    let idle = spawn_capture(idle_home.path());
    let (bp, ip) = (busy.id(), idle.id());
    client(busy_home.path()).await;
    client(idle_home.path()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (b0, i0, t0) = (proc_cpu_ticks(bp), proc_cpu_ticks(ip), Instant::now());
    tokio::time::sleep(Duration::from_secs(u64::from(secs))).await;
    let (b1, i1, el) = (
        proc_cpu_ticks(bp),
        proc_cpu_ticks(ip),
        t0.elapsed().as_secs_f64(),
    );
    let (b_rss, i_rss) = (proc_rss_bytes(bp), proc_rss_bytes(ip));
    let (b_peak, i_peak) = (proc_peak_rss_bytes(bp), proc_peak_rss_bytes(ip));
    stop(busy);
    stop(idle);
    let pct = |ticks: u64| ticks as f64 / hz() / el * 100.0;
    rows.push([
        format!("CPU at 10 keys/s + 1 window switch/s over {secs} s (% of one core)"),
        format!("{:.2} ({} ticks)", pct(b1 - b0), b1 - b0),
        format!("{:.2} idle capture-agent ({} ticks)", pct(i1 - i0), i1 - i0),
        "target ≤ 1 %".into(),
    ]);
    rows.push([
        format!("RSS at that load after {secs} s (MiB): now / peak"),
        format!(
            "{:.1} / {:.1}",
            b_rss as f64 / 1048576.0,
            b_peak as f64 / 1048576.0
        ),
        format!(
            "{:.1} / {:.1} idle capture-agent",
            i_rss as f64 / 1048576.0,
            i_peak as f64 / 1048576.0
        ),
        "target ≤ 20 MB".into(),
    ]);

    println!("| measure | capture-agent | baseline (same run) | ratio / target |");
    println!("|---|---|---|---|");
    for r in rows {
        println!("| {} | {} | {} | {} |", r[0], r[1], r[2], r[3]);
    }
}
