//! kill -9 of each process under load (20 rounds each) and SIGSTOP of
//! each worker: no committed row lost, no client call hung past its
//! deadline, no orphan process, no lock naming a dead process.

use super::T;
use cowork_e2e::*;
use cowork_proto::pb::capture::{capture_client::CaptureClient, GetStatusRequest};
use cowork_proto::pb::chat::{chat_client::ChatClient, SendMessageRequest};
use cowork_proto::pb::mcp::{mcp_client::McpClient, CallToolRequest};
use cowork_proto::pb::models::{models_client::ModelsClient, PullFile, PullRequest};
use cowork_proto::pb::worker::{worker_client::WorkerClient, PingRequest};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROUNDS: u32 = 20;
/// Every client call's deadline here.
const DEADLINE: Duration = Duration::from_secs(10);

fn sig(pid: u32, s: Signal) {
    let _ = kill(Pid::from_raw(pid as i32), s);
}

/// Capture replaying keys, windows and clipboard events as fast as it
/// can take them, for longer than the test runs; the agents engine is
/// the Ollama stand-in at `engine`.
fn loaded_config(home: &Path, engine: u16) -> String {
    let mut script = String::with_capacity(8 << 20);
    for i in 0..200_000u32 {
        let t = i * 2;
        let line = match i % 50 {
            0 => format!("{{\"t_ms\":{t},\"kind\":\"window\",\"app\":\"App{}\",\"app_id\":\"a{}\",\"title\":\"w{i}\"}}", i % 7, i % 7),
            25 => format!("{{\"t_ms\":{t},\"kind\":\"clipboard\",\"op\":\"copy\",\"text\":\"c{i}\"}}"),
            10 | 30 => format!("{{\"t_ms\":{t},\"kind\":\"key\",\"key\":\"Enter\"}}"),
            _ => format!("{{\"t_ms\":{t},\"kind\":\"keys\",\"text\":\"k\"}}"),
        };
        script.push_str(&line);
        script.push('\n');
    }
    std::fs::write(home.join("script.jsonl"), script).expect("script");
    // Twenty kills in a row are not a crash loop to give up on here.
    format!(
        "{FAST}max_restarts = 1000\n\
         [capture]\nsource = \"sim\"\nsim_script = \"script.jsonl\"\nsim_speed = 1.0\n\
         flush_interval_ms = 100\n\
         [agents]\nprobe_ports = false\n[[agents.engines]]\nid = \"ollama\"\n\
         base_url = \"http://127.0.0.1:{engine}\"\napi = \"ollama\"\n"
    )
}

const TABLES: [&str; 4] = [
    "capture_activities",
    "capture_keystroke_chunks",
    "capture_clipboard_events",
    "agents_messages",
];

/// Per table: (ids committed, their sum): what a reader sees now.
fn committed(home: &Path) -> Vec<(i64, i64, i64)> {
    let c = Connection::open(home.join("cowork.db")).expect("db");
    TABLES
        .iter()
        .map(|t| {
            let sql = format!(
                "SELECT count(*), coalesce(max(rowid), 0), coalesce(sum(rowid), 0) FROM {t}"
            );
            c.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap_or((0, 0, 0))
        })
        .collect()
}

/// Rows committed before are all still there.
fn nothing_lost(home: &Path, before: &[(i64, i64, i64)]) {
    let c = Connection::open(home.join("cowork.db")).expect("db");
    for (t, (n, max, sum)) in TABLES.iter().zip(before) {
        let sql = format!("SELECT count(*), coalesce(sum(rowid), 0) FROM {t} WHERE rowid <= {max}");
        let now: (i64, i64) = c
            .query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap_or((0, 0));
        assert_eq!(now, (*n, *sum), "{t}: committed rows lost");
    }
}

/// Pids of live processes running `binary` for `home` (named on their
/// command line, or in their environment as workers get it).
fn procs(home: &Path, binary: &str) -> Vec<u32> {
    let home = home.display().to_string();
    let env_home = format!("{}={home}", cowork_proto::paths::HOME_ENV);
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    let argv0 = cmd.split(|b| *b == 0).next().unwrap_or_default();
                    let runs = String::from_utf8_lossy(argv0).ends_with(binary);
                    let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                    let ours = String::from_utf8_lossy(&cmd).contains(&home)
                        || env.split(|b| *b == 0).any(|v| v == env_home.as_bytes());
                    runs && ours
                        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
                            .map(|s| cowork_proto::lockfile::parse_stat(&s).0 != Some('Z'))
                            .unwrap_or(false)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Wait (10 s at most) for exactly one `binary` of `home`.
fn one_of(home: &Path, binary: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = procs(home, binary);
        if p.len() == 1 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{binary}: {} processes {p:?}",
            p.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// No lock in run/locks names a dead process.
fn no_stale_locks(s: &Suite) {
    let Ok(dir) = std::fs::read_dir(&s.paths.locks_dir) else {
        return;
    };
    for e in dir.flatten() {
        if let Ok(r) = cowork_proto::lockfile::read(&e.path()) {
            assert!(
                alive(r.child_pid) && alive(r.owner_pid),
                "{} names a dead process: {r:?}",
                e.path().display()
            );
        }
    }
}

/// Calls that keep going all through a test: capture status, a ping of
/// each worker and (when `chat`) a streamed chat, each with a deadline;
/// counts the calls that did not end within it.
fn callers(
    s: &Suite,
    download: Option<String>,
    mcp_answered: &Arc<AtomicU32>,
) -> (
    Arc<AtomicU32>,
    Arc<AtomicU32>,
    tokio_util::sync::CancellationToken,
) {
    let hung = Arc::new(AtomicU32::new(0));
    let calls = Arc::new(AtomicU32::new(0));
    let answered = mcp_answered.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let channel = s.channel();
    for n in 0..6 {
        let answered = answered.clone();
        let (hung, calls, stop, channel, download) = (
            hung.clone(),
            calls.clone(),
            stop.clone(),
            channel.clone(),
            download.clone(),
        );
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let t = Instant::now();
                match n {
                    0 => {
                        let mut r = tonic::Request::new(GetStatusRequest {});
                        r.set_timeout(DEADLINE);
                        let _ = CaptureClient::new(channel.clone()).get_status(r).await;
                    }
                    1 | 5 => {
                        let mut r = tonic::Request::new(PingRequest::default());
                        r.set_timeout(DEADLINE);
                        let worker = if n == 1 { "agents" } else { "browser" };
                        r.metadata_mut().insert(
                            cowork_proto::grpc::WORKER_HEADER,
                            worker.parse().expect("ascii"),
                        );
                        let _ = WorkerClient::new(channel.clone()).ping(r).await;
                    }
                    3 => {
                        let mut r = tonic::Request::new(CallToolRequest {
                            server: "time".into(),
                            tool: "get_current_time".into(),
                            arguments_json: r#"{"timezone":"UTC"}"#.into(),
                            ..Default::default()
                        });
                        r.set_timeout(DEADLINE);
                        if McpClient::new(channel.clone()).call_tool(r).await.is_ok() {
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    4 => {
                        let Some(url) = download.as_ref() else { return };
                        // The same task each time: a restart resumes it.
                        let mut r = tonic::Request::new(PullRequest {
                            id: "big".into(),
                            files: vec![PullFile {
                                urls: vec![url.clone()],
                                ..Default::default()
                            }],
                        });
                        r.set_timeout(DEADLINE);
                        if let Ok(st) = ModelsClient::new(channel.clone()).pull(r).await {
                            let mut st = st.into_inner();
                            while let Ok(Some(_)) = st.message().await {}
                        }
                    }
                    2 => {
                        let mut r = tonic::Request::new(SendMessageRequest {
                            text: "one two three four five six seven eight".into(),
                            ..Default::default()
                        });
                        r.set_timeout(DEADLINE);
                        if let Ok(st) = ChatClient::new(channel.clone()).send_message(r).await {
                            let mut st = st.into_inner();
                            while let Ok(Some(_)) = st.message().await {}
                        }
                    }
                    _ => return,
                }
                calls.fetch_add(1, Ordering::SeqCst);
                if t.elapsed() > DEADLINE + Duration::from_secs(2) {
                    hung.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
    (hung, calls, stop)
}

async fn kill_rounds(worker: &str) {
    let engine = ollama_standin(&["standin-model"], 30, None);
    let www = tempfile::tempdir().expect("www");
    random_file(&www.path().join("big.bin"), 24 << 20, 7);
    let sha = sha256sum(&www.path().join("big.bin"));
    let web = Nginx::start(www.path(), "2m");
    let home = Suite::temp_home();
    let config = loaded_config(home.path(), engine.port);
    let s = Suite::start_in(home, &config);
    s.wait_state("capture", "running", T).await;
    s.wait_state("agents", "running", T).await;
    add_time_server(&s);
    let home = s.home.path().to_path_buf();
    // Capture at full speed, chats streaming, MCP calls, a download and
    // pings of every worker, all the time.
    let mcp_answered = Arc::new(AtomicU32::new(0));
    let (hung, calls, stop) = callers(&s, Some(web.url("slow/big.bin")), &mcp_answered);
    let binary = format!("{worker}-agent");
    for round in 0..ROUNDS {
        let w = s.wait_state(worker, "running", T).await;
        // Let it work a little, then take what is committed.
        tokio::time::sleep(Duration::from_millis(300 + 37 * u64::from(round % 7))).await;
        let before = committed(&home);
        sig(w.pid, Signal::SIGKILL);
        s.wait_worker(worker, "restarted", T, |n| {
            n.pid != w.pid && state(n) == "running"
        })
        .await;
        nothing_lost(&home, &before);
        assert!(!alive(w.pid));
    }
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        hung.load(Ordering::SeqCst),
        0,
        "calls hung past their deadline"
    );
    assert!(calls.load(Ordering::SeqCst) > 0);
    one_of(&home, &binary);
    no_stale_locks(&s);
    let c = Connection::open(home.join("cowork.db")).expect("db");
    let integrity: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(integrity, "ok");
    // The download, killed and resumed again and again, ends whole.
    let out = ok(&s.ctl(&[
        "models",
        "pull",
        &web.url("slow/big.bin"),
        "--id",
        "big",
        "--sha256",
        &sha,
    ]));
    assert!(out.contains("SHA-256 verified"), "{out}");
    eprintln!(
        "{binary}: {} calls, {} MCP calls answered; the download: {}",
        calls.load(Ordering::SeqCst),
        mcp_answered.load(Ordering::SeqCst),
        out.lines().last().unwrap_or_default()
    );
    assert!(
        mcp_answered.load(Ordering::SeqCst) > 0,
        "no MCP call was ever answered"
    );
    record_fault(
        &format!(
            "kill -9 of {binary} under load (capture at full speed, chats streaming, MCP calls, a download)"
        ),
        ROUNDS,
        &format!(
            "nothing (no committed row lost, 0 of {} calls hung, no orphan, no stale lock)",
            calls.load(Ordering::SeqCst)
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_capture_agent_under_load_loses_nothing_committed() {
    kill_rounds("capture").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_agents_agent_under_load_loses_nothing_committed() {
    kill_rounds("agents").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_browser_agent_under_load_restarts_it_and_hangs_no_call() {
    kill_rounds("browser").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_coworkd_under_load_loses_nothing_and_leaves_no_orphan() {
    let engine = ollama_standin(&["standin-model"], 30, None);
    let home = Suite::temp_home();
    let config = loaded_config(home.path(), engine.port);
    let mut s = Suite::start_in(home, &config);
    let home = s.home.path().to_path_buf();
    for _ in 0..ROUNDS {
        s.wait_state("capture", "running", T).await;
        s.wait_state("agents", "running", T).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = committed(&home);
        let pid = s.coworkd_pid();
        sig(pid, Signal::SIGKILL);
        if let Some(mut c) = s.coworkd.take() {
            let _ = c.wait();
        }
        s.spawn_coworkd();
        s.wait_state("capture", "running", T).await;
        nothing_lost(&home, &before);
    }
    s.wait_state("agents", "running", T).await;
    for b in ["coworkd", "capture-agent", "agents-agent"] {
        one_of(&home, b);
    }
    no_stale_locks(&s);
    record_fault(
        "kill -9 of coworkd under load (capture at full speed)",
        ROUNDS,
        "nothing (no committed row lost, one of each process after, no stale lock)",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigstopped_worker_gives_callers_unavailable_and_is_restarted() {
    let s = Suite::start(FAST);
    let mut tries = 0;
    for worker in ["capture", "agents", "browser"] {
        let mut c = WorkerClient::new(s.channel());
        let ping = |c: &mut WorkerClient<tonic::transport::Channel>| {
            let mut r = tonic::Request::new(PingRequest::default());
            r.set_timeout(DEADLINE);
            r.metadata_mut().insert(
                cowork_proto::grpc::WORKER_HEADER,
                worker.parse().expect("ascii"),
            );
            let mut c = c.clone();
            async move { c.ping(r).await }
        };
        // The browser starts on demand: the first ping starts it.
        let _ = ping(&mut c).await;
        let before = s.wait_state(worker, "running", T).await;
        sig(before.pid, Signal::SIGSTOP);
        wait_until(Duration::from_secs(5), "the worker stopped", || {
            std::fs::read_to_string(format!("/proc/{}/stat", before.pid))
                .map(|s| cowork_proto::lockfile::parse_stat(&s).0 == Some('T'))
                .unwrap_or(false)
        });
        let t = Instant::now();
        let r = ping(&mut c).await;
        assert!(
            t.elapsed() <= DEADLINE + Duration::from_secs(1),
            "{worker}: the call hung"
        );
        // Frozen: the liveness probe stops it (SIGCONT with SIGTERM, so it
        // may still answer what it had queued, then SIGKILL) well within
        // the call's deadline; a call it does not answer is told
        // UNAVAILABLE.
        if let Err(e) = &r {
            assert_eq!(e.code(), tonic::Code::Unavailable, "{worker}: {e:?}");
        }
        let after = s
            .wait_worker(worker, "restarted", T, |w| {
                state(w) == "running" && w.pid != before.pid && w.pid != 0
            })
            .await;
        wait_until(Duration::from_secs(5), "the frozen process gone", || {
            !alive(before.pid)
        });
        let r = ping(&mut c).await.expect("the restarted worker answers");
        assert_eq!(r.into_inner().pid, after.pid);
        tries += 1;
    }
    record_fault(
        "SIGSTOP of each worker",
        tries,
        "nothing (killed and restarted by the liveness probe; callers got an error within their deadline)",
    );
}
