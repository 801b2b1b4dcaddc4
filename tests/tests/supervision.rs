//! Supervision end to end: real coworkd, real workers, real signals.

use cowork_e2e::*;
use cowork_proto::pb::chat::{chat_client::ChatClient, GetStatusRequest};
use cowork_proto::pb::system::{HealthEvent, RetryRequest, WorkerState};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(15);

fn sig(pid: u32, s: Signal) {
    kill(Pid::from_raw(pid as i32), s).expect("signal worker");
}

/// Collect health events until `done` says so (or time runs out).
async fn collect_events(
    stream: &mut tonic::Streaming<HealthEvent>,
    timeout: Duration,
    mut done: impl FnMut(&[HealthEvent]) -> bool,
) -> Vec<HealthEvent> {
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(&events) {
        match tokio::time::timeout_at(deadline, stream.message()).await {
            Ok(Ok(Some(e))) => events.push(e),
            other => panic!("event stream ended or timed out ({other:?}); got {events:?}"),
        }
    }
    events
}

fn transitions(events: &[HealthEvent], worker: &str) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e.worker == worker)
        .map(|e| {
            (
                cowork_proto::status::state_name(e.previous).to_owned(),
                cowork_proto::status::state_name(e.state).to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn boot_runs_capture_and_agents_and_leaves_the_browser_stopped() {
    let suite = Suite::start("");
    let capture = suite.wait_state("capture", "running", T).await;
    let agents = suite.wait_state("agents", "running", T).await;
    let browser = suite.worker("browser").await;
    assert_eq!(state(&browser), "stopped");
    assert_eq!(browser.pid, 0);
    assert!(alive(capture.pid) && alive(agents.pid));
    assert_eq!((capture.restarts, agents.restarts), (0, 0));

    // Routing reaches the right process: Chat is answered by agents-agent.
    let mut chat = ChatClient::new(suite.channel());
    let got = chat
        .get_status(GetStatusRequest {})
        .await
        .expect("Chat/GetStatus")
        .into_inner();
    assert_eq!(got.pid, agents.pid);

    // `coworkctl status --json`: the contract's fields.
    let out = suite.ctl(&["status", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    let workers = v["workers"].as_array().expect("workers array");
    assert_eq!(workers.len(), 3);
    for w in workers {
        for key in cowork_proto::status::STATUS_JSON_FIELDS {
            assert!(w.get(key).is_some(), "{key} missing in {w}");
        }
    }
    let a = workers.iter().find(|w| w["name"] == "agents").unwrap();
    assert_eq!(
        (a["state"].as_str(), a["pid"].as_u64()),
        (Some("running"), Some(agents.pid as u64))
    );
    assert!(a["rss_bytes"].as_u64().unwrap() > 1 << 20, "{a}");
    let b = workers.iter().find(|w| w["name"] == "browser").unwrap();
    assert_eq!(
        (b["state"].as_str(), &b["pid"]),
        (Some("stopped"), &serde_json::Value::Null)
    );

    // Workers' stderr goes to their logs.
    let log = std::fs::read_to_string(suite.paths.log_file("capture")).unwrap();
    assert!(log.contains("ready"), "capture.log: {log}");

    // One lockfile per child, with the seed's fields.
    let lock =
        cowork_proto::lockfile::read(&suite.paths.locks_dir.join("worker-agents.json")).unwrap();
    assert_eq!(lock.child_pid, agents.pid);
    assert_eq!(lock.owner_pid, suite.coworkd_pid());
    assert!(lock.executable_path.ends_with("agents-agent"), "{lock:?}");
    assert!(lock.start_time.is_some());
    let live = cowork_proto::lockfile::ProcessIdentity::of(agents.pid)
        .unwrap()
        .unwrap();
    assert!(
        lock.matches(&live),
        "lock {lock:?} does not describe {live:?}"
    );
}

#[tokio::test]
async fn kill_9_of_a_worker_restarts_it_and_watch_sees_each_transition_in_order() {
    let suite = Suite::start(FAST);
    let before = suite.wait_state("agents", "running", T).await;
    let mut stream = suite.health_events(false).await;
    let killed_at = Instant::now();
    sig(before.pid, Signal::SIGKILL);
    let events = collect_events(&mut stream, T, |ev| {
        transitions(ev, "agents")
            .last()
            .is_some_and(|(_, to)| to == "running")
    })
    .await;
    let noticed = events
        .iter()
        .find(|e| e.worker == "agents")
        .expect("an agents event");
    assert_eq!(noticed.state, WorkerState::Restarting as i32);
    assert!(noticed.reason.contains("killed by signal 9"), "{noticed:?}");
    println!(
        "death noticed and published after {:?}",
        killed_at.elapsed()
    );
    assert_eq!(
        transitions(&events, "agents"),
        [
            ("running".to_owned(), "restarting".to_owned()),
            ("restarting".to_owned(), "starting".to_owned()),
            ("starting".to_owned(), "running".to_owned()),
        ]
    );
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seq out of order: {seqs:?}"
    );

    let after = suite.worker("agents").await;
    assert_eq!(state(&after), "running");
    assert_eq!(after.restarts, 1);
    assert_ne!(after.pid, before.pid);
    assert!(!alive(before.pid));
    assert_eq!(after.last_signal, Some(9));
}

#[tokio::test]
async fn a_crash_looping_worker_fails_then_retry_brings_it_back_once_fixed() {
    let crashing = format!(
        "{FAST}max_restarts = 3\n[workers.agents]\ncommand = [\"/bin/sh\", \"-c\", \"echo agents-boom >&2; exit 3\"]\n"
    );
    // FAST ends inside [supervisor], so max_restarts lands there.
    let suite = Suite::start(&crashing);
    let failed = suite.wait_state("agents", "failed", T).await;
    assert_eq!(failed.restarts, 3);
    assert_eq!(failed.last_exit_code, Some(3));
    assert!(failed.reason.contains("exited with code 3"), "{failed:?}");
    assert!(
        failed
            .last_log_lines
            .iter()
            .any(|l| l.contains("agents-boom")),
        "{failed:?}"
    );
    // Capture is unaffected.
    assert_eq!(state(&suite.worker("capture").await), "running");

    // A call to the failed worker fails fast with UNAVAILABLE and a reason.
    let mut chat = ChatClient::new(suite.channel());
    let _ = suite.worker("capture").await; // warm the connection
    let mut fastest = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let err = chat.get_status(GetStatusRequest {}).await.unwrap_err();
        let took = t.elapsed();
        fastest = fastest.min(took);
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
        assert!(
            err.message().contains("agents-agent failed"),
            "{}",
            err.message()
        );
        assert!(
            err.message().contains("coworkctl retry agents"),
            "{}",
            err.message()
        );
        assert!(took < Duration::from_secs(1), "UNAVAILABLE took {took:?}");
    }
    assert!(
        fastest < Duration::from_millis(100),
        "fastest UNAVAILABLE took {fastest:?}"
    );

    // Table output names the crash and shows the log lines.
    let out = suite.ctl(&["status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("failed") && table.contains("agents-boom"),
        "{table}"
    );

    // Fix the config (live reload), then retry.
    suite.write_config(FAST);
    tokio::time::sleep(Duration::from_millis(600)).await; // debounce + reload
    let out = suite.ctl(&["retry", "agents"]);
    assert!(out.status.success(), "{out:?}");
    let back = suite.wait_state("agents", "running", T).await;
    assert_eq!(back.restarts, 0, "retry starts from scratch");
    assert!(alive(back.pid));
}

#[tokio::test]
async fn a_never_ready_worker_is_degraded_at_ready_timeout_and_retried() {
    let cfg = format!(
        "{FAST}ready_timeout_ms = 400\n[workers.capture]\ncommand = [\"/bin/sh\", \"-c\", \"exec sleep 60\"]\n"
    );
    let suite = Suite::start(&cfg);
    let mut stream = suite.health_events(true).await;
    let events = collect_events(&mut stream, T, |ev| {
        transitions(ev, "capture")
            .iter()
            .filter(|(_, to)| to == "restarting")
            .count()
            >= 2
    })
    .await;
    let degraded: Vec<_> = events
        .iter()
        .filter(|e| e.worker == "capture" && e.state == WorkerState::Degraded as i32)
        .collect();
    assert!(degraded.len() >= 2, "{events:?}");
    assert!(
        degraded[0].reason.contains("no ready signal within"),
        "{:?}",
        degraded[0]
    );
    // The suite stays usable: agents answers meanwhile.
    assert_eq!(state(&suite.worker("agents").await), "running");
    let mut chat = ChatClient::new(suite.channel());
    chat.get_status(GetStatusRequest {})
        .await
        .expect("agents still serves");
}

#[tokio::test]
async fn a_sigstopped_worker_is_killed_and_restarted() {
    let suite = Suite::start(FAST);
    let before = suite.wait_state("capture", "running", T).await;
    sig(before.pid, Signal::SIGSTOP);
    let after = suite
        .wait_worker("capture", "restarted", T, |w| {
            state(w) == "running" && w.pid != before.pid && w.pid != 0
        })
        .await;
    assert_eq!(after.restarts, 1);
    wait_until(
        Duration::from_secs(5),
        "the hung process to be gone",
        || !alive(before.pid),
    );
    let log = std::fs::read_to_string(suite.home.path().join("logs/coworkd.log")).unwrap();
    assert!(log.contains("hung"), "coworkd.log does not say why: {log}");
}

#[tokio::test]
async fn retry_rejects_unknown_workers() {
    let suite = Suite::start("");
    let err = suite
        .system()
        .retry(RetryRequest {
            worker: "chrome".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("unknown worker"),
        "{}",
        err.message()
    );
    let out = suite.ctl(&["retry", "chrome"]);
    assert!(!out.status.success());
}

#[tokio::test]
async fn config_edits_apply_live_without_restarting_running_workers() {
    use std::io::BufRead;
    let suite = Suite::start(FAST);
    let before = suite.wait_state("capture", "running", T).await;

    // `coworkctl watch --json` follows along, one JSON object per line.
    let mut watch = std::process::Command::new(bin("coworkctl"))
        .arg("--home")
        .arg(suite.home.path())
        .args(["watch", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let v = serde_json::from_str(&line).expect("watch --json prints JSON lines");
            if tx.send(v).is_err() {
                break;
            }
        }
    });

    // A new command and a new restart budget, live.
    suite.write_config(&format!(
        "{FAST}max_restarts = 1\n[workers.capture]\ncommand = [\"/bin/sh\", \"-c\", \"exit 7\"]\n"
    ));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let same = suite.worker("capture").await;
    assert_eq!(
        (state(&same), same.pid),
        ("running", before.pid),
        "a config edit restarted capture"
    );

    // The next start uses the new command, and the new budget fails it fast.
    sig(before.pid, Signal::SIGKILL);
    let failed = suite.wait_state("capture", "failed", T).await;
    assert_eq!(failed.last_exit_code, Some(7));
    assert_eq!((failed.restarts, failed.max_restarts), (1, 1));

    let mut seen = Vec::new();
    let deadline = Instant::now() + T;
    while !seen
        .iter()
        .any(|v: &serde_json::Value| v["worker"] == "capture" && v["state"] == "failed")
    {
        let left = deadline.saturating_duration_since(Instant::now());
        seen.push(
            rx.recv_timeout(left)
                .unwrap_or_else(|_| panic!("watch printed {seen:?}")),
        );
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let capture: Vec<String> = seen
        .iter()
        .filter(|v| v["worker"] == "capture")
        .map(|v| v["state"].as_str().unwrap().to_owned())
        .collect();
    // The current state first, then every transition in order.
    assert_eq!(capture, ["running", "restarting", "starting", "failed"]);
}

#[tokio::test]
async fn a_shorter_backoff_applies_to_a_wait_already_under_way() {
    let slow = "[supervisor]\nbackoff_initial_ms = 20000\nbackoff_max_ms = 20000\n\
        [workers.agents]\ncommand = [\"/bin/sh\", \"-c\", \"exit 2\"]\n";
    let suite = Suite::start(slow);
    let waiting = suite.wait_state("agents", "restarting", T).await;
    assert!(waiting.next_retry_in_ms > 10_000, "{waiting:?}");
    assert_eq!(waiting.restarts, 0);
    let t = Instant::now();
    suite.write_config(
        "[supervisor]\nbackoff_initial_ms = 100\nbackoff_max_ms = 100\nmax_restarts = 2\n\
         [workers.agents]\ncommand = [\"/bin/sh\", \"-c\", \"exit 2\"]\n",
    );
    let failed = suite.wait_state("agents", "failed", T).await;
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!((failed.restarts, failed.max_restarts), (2, 2));
}

#[tokio::test]
async fn backoff_doubles_and_a_stable_run_resets_the_attempt_counter() {
    let suite = Suite::start(
        "[supervisor]\nbackoff_initial_ms = 400\nbackoff_max_ms = 3000\nstable_after_ms = 500\n\
         [workers.agents]\ncommand = [\"/bin/sh\", \"-c\", \"exit 4\"]\n",
    );
    let first = suite
        .wait_worker("agents", "restarting, attempt 1", T, |w| {
            state(w) == "restarting" && w.attempt == 1
        })
        .await;
    let second = suite
        .wait_worker("agents", "restarting, attempt 2", T, |w| {
            state(w) == "restarting" && w.attempt == 2
        })
        .await;
    assert!(first.next_retry_in_ms <= 400, "{first:?}");
    assert!(
        second.next_retry_in_ms > 400 && second.next_retry_in_ms <= 800,
        "the second delay should be 800 ms: {second:?}"
    );

    // Fix the worker; once it has run for stable_after_ms the counter resets.
    suite.write_config(
        "[supervisor]\nbackoff_initial_ms = 400\nbackoff_max_ms = 3000\nstable_after_ms = 500\n",
    );
    let running = suite.wait_state("agents", "running", T).await;
    assert!(running.attempt >= 2, "{running:?}");
    let stable = suite
        .wait_worker("agents", "attempt reset", T, |w| {
            state(w) == "running" && w.attempt == 0
        })
        .await;
    assert_eq!(stable.pid, running.pid);
    assert!(
        stable.restarts >= 2,
        "restarts are history, not reset: {stable:?}"
    );
}
