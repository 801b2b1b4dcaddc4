//! Boot, shutdown, orphans and the single-instance lock, end to end.

use cowork_e2e::*;
use cowork_proto::lockfile::{LockRecord, Lockfile};
use nix::sys::signal::Signal;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(15);

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn sigterm_stops_everything_and_removes_sockets_and_locks() {
    let mut suite = Suite::start("");
    let capture = suite.wait_state("capture", "running", T).await;
    let agents = suite.wait_state("agents", "running", T).await;
    assert_eq!(mode(&suite.paths.run_dir), 0o700);
    assert_eq!(mode(&suite.paths.public_socket()), 0o600);
    assert_eq!(mode(&suite.paths.worker_socket("agents")), 0o600);

    let status = suite.stop_with(Signal::SIGTERM);
    assert!(status.success(), "coworkd exit: {status:?}");
    assert!(!alive(capture.pid) && !alive(agents.pid));
    let left: Vec<_> = std::fs::read_dir(&suite.paths.run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["locks"], "run/ still holds {left:?}");
    assert_eq!(
        std::fs::read_dir(&suite.paths.locks_dir).unwrap().count(),
        0
    );
}

#[tokio::test]
async fn coworkctl_shutdown_stops_the_suite() {
    let mut suite = Suite::start("");
    let agents = suite.wait_state("agents", "running", T).await;
    let out = suite.ctl(&["shutdown"]);
    assert!(out.status.success(), "{out:?}");
    let mut child = suite.coworkd.take().unwrap();
    let status = wait_child(&mut child, T);
    assert!(status.success());
    assert!(!alive(agents.pid));
    assert!(!suite.paths.public_socket().exists());
}

#[tokio::test]
async fn a_second_coworkd_exits_non_zero_naming_the_running_pid() {
    let suite = Suite::start("");
    let out = Command::new(bin("coworkd"))
        .arg("--home")
        .arg(suite.home.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("already running (pid {})", suite.coworkd_pid())),
        "{err}"
    );
    // The first one is untouched.
    suite.wait_state("agents", "running", T).await;
}

#[tokio::test]
async fn coworkctl_without_coworkd_fails_and_says_how_to_start_it() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(bin("coworkctl"))
        .arg("--home")
        .arg(home.path())
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("coworkd is not running") && err.contains("coworkd --home"),
        "{err}"
    );
}

#[tokio::test]
async fn after_kill_9_of_coworkd_a_restart_reaps_orphans_but_spares_strangers() {
    let mut suite = Suite::start("");
    let old_capture = suite.wait_state("capture", "running", T).await.pid;
    let old_agents = suite.wait_state("agents", "running", T).await.pid;
    let status = suite.stop_with(Signal::SIGKILL);
    assert!(!status.success());

    // A real orphan: a process whose lock names a dead owner and that still
    // matches pid, executable, argv and start time.
    let mut orphan = Command::new("sleep").arg("300").spawn().unwrap();
    let mut rec = LockRecord::for_child("mcp:orphan", orphan.id()).unwrap();
    rec.owner_pid = u32::MAX - 1; // no such process
    rec.owner_start_time = None;
    std::mem::forget(Lockfile::write(&suite.paths.locks_dir, "mcp-orphan", rec).unwrap());
    // A stranger: live, but the lock's argv hash differs (PID reuse).
    let mut stranger = Command::new("sleep").arg("301").spawn().unwrap();
    let mut rec = LockRecord::for_child("mcp:stranger", stranger.id()).unwrap();
    rec.owner_pid = u32::MAX - 1;
    rec.owner_start_time = None;
    rec.argv_hash = cowork_proto::lockfile::argv_hash(&["sleep", "999"]);
    std::mem::forget(Lockfile::write(&suite.paths.locks_dir, "mcp-stranger", rec).unwrap());

    suite.spawn_coworkd();
    let capture = suite.wait_state("capture", "running", T).await;
    let agents = suite.wait_state("agents", "running", T).await;
    assert_ne!(capture.pid, old_capture);
    assert_ne!(agents.pid, old_agents);
    wait_until(T, "old workers to be gone", || {
        !alive(old_capture) && !alive(old_agents)
    });
    let deadline = std::time::Instant::now() + T;
    let reaped = loop {
        if let Some(s) = orphan.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let log = std::fs::read_to_string(suite.paths.log_file("coworkd")).unwrap_or_default();
            let _ = orphan.kill();
            panic!(
                "orphan {} survived the sweep; coworkd.log:\n{log}",
                orphan.id()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&reaped),
        Some(15)
    );
    assert!(alive(stranger.id()), "the stranger was killed");
    assert!(!suite.paths.locks_dir.join("mcp-orphan.json").exists());
    assert!(!suite.paths.locks_dir.join("mcp-stranger.json").exists());
    stranger.kill().unwrap();
    stranger.wait().unwrap();
}

#[tokio::test]
async fn a_home_too_long_for_sun_path_still_works() {
    let base = tempfile::tempdir().unwrap();
    let deep = base.path().join("a".repeat(60)).join("b".repeat(60));
    std::fs::create_dir_all(&deep).unwrap();
    let home = tempfile::Builder::new()
        .prefix("h")
        .tempdir_in(&deep)
        .unwrap();
    let suite = Suite::start_in(home, "");
    assert!(!suite.paths.socket_dir.starts_with(suite.home.path()));
    assert_eq!(mode(&suite.paths.socket_dir), 0o700);
    suite.wait_state("agents", "running", T).await;
    let out = suite.ctl(&["status", "--json"]);
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test]
async fn a_worker_that_outlives_a_killed_coworkd_is_reaped_at_the_next_boot() {
    // This worker execs from one shell into another (so its identity at
    // spawn is not its identity when ready), signals ready, then defers
    // SIGTERM until its child ends: the parent-death signal does not end it,
    // only the boot sweep can reap it.
    let cfg = r#"
[supervisor]
probe_interval_ms = 600000
stop_grace_ms = 500
[workers.capture]
command = ["/bin/sh", "-c", "exec /bin/sh -c 'trap : TERM; echo READY >&3; exec 3>&-; sleep 300'"]
"#;
    let mut suite = Suite::start(cfg);
    let old = suite.wait_state("capture", "running", T).await;
    suite.stop_with(Signal::SIGKILL);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        alive(old.pid),
        "the stubborn worker should survive its parent"
    );
    let t = std::time::Instant::now();
    suite.spawn_coworkd();
    wait_until(T, "the orphaned worker to be reaped", || !alive(old.pid));
    println!("orphan reaped {:?} after restart", t.elapsed());
    let new = suite.wait_state("capture", "running", T).await;
    assert_ne!(new.pid, old.pid);
}
