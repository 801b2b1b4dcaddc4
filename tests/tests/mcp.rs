//! MCP end to end through coworkd with REAL servers (scripts/test.sh
//! installs them): `mcp-server-time` from PyPI over stdio, and the
//! reference `@modelcontextprotocol/server-everything` from npm over stdio
//! and streamable HTTP. Listing and calling tools, timeouts, aborts, the
//! audit log, and no orphaned server after kill -9.

use cowork_e2e::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

fn everything_js() -> PathBuf {
    let dir = std::env::var_os("COWORK_TEST_NPM").unwrap_or_else(|| {
        panic!("COWORK_TEST_NPM is not set: run the suite through scripts/test.sh")
    });
    PathBuf::from(dir).join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

fn json(o: &Output) -> Value {
    serde_json::from_str(&ok(o)).expect("JSON")
}

fn time_server_argv() -> Vec<String> {
    vec![
        python().display().to_string(),
        "-m".into(),
        "mcp_server_time".into(),
        "--local-timezone".into(),
        "UTC".into(),
    ]
}

fn add_stdio(suite: &Suite, name: &str, argv: &[String]) -> Value {
    let mut args = vec!["--json", "mcp", "add", name, "--"];
    args.extend(argv.iter().map(String::as_str));
    json(&suite.ctl(&args))
}

fn audit(suite: &Suite) -> Vec<(String, String, String)> {
    let c = rusqlite::Connection::open_with_flags(
        suite.home.path().join("cowork.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut st = c
        .prepare("SELECT tool, source, outcome FROM mcp_tool_calls ORDER BY id")
        .unwrap();
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows
}

#[tokio::test]
async fn the_time_server_over_stdio() {
    let suite = Suite::start(FAST);
    suite.wait_state("agents", "running", T).await;

    let s = add_stdio(&suite, "time", &time_server_argv());
    assert_eq!(s["status"], "running", "{s}");
    assert_eq!(s["transport"], "stdio");
    assert_eq!(s["connection_state"], "CONNECTED");
    let pid = s["pid"].as_u64().expect("a pid") as u32;
    assert!(alive(pid));
    // Its own process group, so its children go with it.
    assert_eq!(
        nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid as i32)))
            .unwrap()
            .as_raw(),
        pid as i32
    );
    // Its lockfile names it.
    let locks: Vec<String> = std::fs::read_dir(suite.paths.locks_dir.clone())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .filter(|t| t.contains("mcp:time"))
        .collect();
    assert_eq!(locks.len(), 1, "{locks:?}");
    let lock: Value = serde_json::from_str(&locks[0]).unwrap();
    assert_eq!(lock["childPid"], pid, "{lock}");

    let tools = json(&suite.ctl(&["--json", "mcp", "tools", "time"]));
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"get_current_time") && names.contains(&"convert_time"),
        "{names:?}"
    );

    let out = ok(&suite.ctl(&[
        "mcp",
        "call",
        "time",
        "get_current_time",
        "--args",
        r#"{"timezone":"Europe/Paris"}"#,
    ]));
    let v: Value = serde_json::from_str(out.trim()).expect("the time server answers JSON text");
    assert_eq!(v["timezone"], "Europe/Paris", "{out}");
    assert!(v["datetime"].as_str().unwrap().starts_with("20"), "{out}");

    // A tool failure is a non-zero exit with the reason.
    let bad = suite.ctl(&[
        "mcp",
        "call",
        "time",
        "get_current_time",
        "--args",
        r#"{"timezone":"Not/AZone"}"#,
    ]);
    assert_ne!(bad.status.code(), Some(0));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&bad.stdout),
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(said.contains("Not/AZone"), "{said}");
    let not_json = suite.ctl(&["mcp", "call", "time", "get_current_time", "--args", "[1"]);
    assert_eq!(
        not_json.status.code(),
        Some(2),
        "invalid input is a usage error"
    );

    // Every call is audited, as the person's own.
    // (The log is written just after each reply.)
    let log = wait_for(Duration::from_secs(10), "2 audited calls", || {
        let l = audit(&suite);
        (l.len() == 2).then_some(l)
    });
    assert_eq!(
        log[0],
        ("get_current_time".into(), "user".into(), "ok".into())
    );
    assert_ne!(log[1].2, "ok");

    // Disconnect ends the process; connect starts a new one.
    let s = json(&suite.ctl(&["--json", "mcp", "disconnect", "time"]));
    assert_eq!(
        (s["status"].as_str(), s["enabled"].as_bool()),
        (Some("stopped"), Some(false))
    );
    wait_until(Duration::from_secs(10), "the server to exit", || {
        !alive(pid)
    });
    let off = suite.ctl(&["mcp", "tools", "time"]);
    assert!(
        String::from_utf8_lossy(&off.stderr).contains("mcp connect time"),
        "{off:?}"
    );
    let s = json(&suite.ctl(&["--json", "mcp", "connect", "time"]));
    let pid2 = s["pid"].as_u64().unwrap() as u32;
    assert_ne!(pid2, pid);
    let list = json(&suite.ctl(&["--json", "mcp", "list"]));
    assert_eq!(list["servers"][0]["tool_count"], 2, "{list}");

    // Remove: gone from the list, process and lock gone.
    ok(&suite.ctl(&["mcp", "remove", "time"]));
    wait_until(Duration::from_secs(10), "the server to exit", || {
        !alive(pid2)
    });
    assert_eq!(
        json(&suite.ctl(&["--json", "mcp", "list"]))["servers"],
        serde_json::json!([])
    );
    assert_eq!(
        std::fs::read_dir(&suite.paths.locks_dir)
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("mcp-"))
            .count(),
        0
    );
    // Hostile names and duplicates are refused with nothing started.
    let hostile = suite.ctl(&["mcp", "add", "../x", "--", "true"]);
    assert_eq!(hostile.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&hostile.stderr).contains("server name"),
        "{hostile:?}"
    );
    add_stdio(&suite, "t2", &time_server_argv());
    let dup = suite.ctl(&["mcp", "add", "t2", "--", "true"]);
    assert!(
        String::from_utf8_lossy(&dup.stderr).contains("already exists"),
        "{dup:?}"
    );
    let names: Vec<Value> = json(&suite.ctl(&["--json", "mcp", "list"]))["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, ["t2"]);
}

#[tokio::test]
async fn the_everything_server_over_stdio_and_http_with_timeouts_and_aborts() {
    let suite = Suite::start(FAST);
    suite.wait_state("agents", "running", T).await;
    let js = everything_js().display().to_string();
    let s = add_stdio(&suite, "ev", &["node".into(), js.clone(), "stdio".into()]);
    assert_eq!(s["status"], "running", "{s}");
    assert!(s["tool_count"].as_u64().unwrap() >= 5, "{s}");
    let out = ok(&suite.ctl(&[
        "mcp",
        "call",
        "ev",
        "echo",
        "--args",
        r#"{"message":"héllo ✓"}"#,
    ]));
    assert_eq!(out.trim(), "Echo: héllo ✓");

    // A slow tool hits its timeout, promptly.
    let t = Instant::now();
    let slow = suite.ctl(&[
        "mcp",
        "call",
        "ev",
        "trigger-long-running-operation",
        "--args",
        r#"{"duration":30,"steps":30}"#,
        "--timeout-ms",
        "700",
    ]);
    let took = t.elapsed();
    assert_ne!(slow.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&slow.stderr).contains("timed out after 700 ms"),
        "{slow:?}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");

    // An aborted call returns at once.
    let mut long = Command::new(bin("coworkctl"))
        .arg("--home")
        .arg(suite.home.path())
        .args([
            "mcp",
            "call",
            "ev",
            "trigger-long-running-operation",
            "--args",
            r#"{"duration":30,"steps":30}"#,
            "--call-id",
            "call-abort-me",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let aborted_at = wait_for(Duration::from_secs(20), "the call to be in flight", || {
        let t = Instant::now();
        suite
            .ctl(&["mcp", "abort", "call-abort-me"])
            .status
            .success()
            .then_some(t)
    });
    let status = wait_child(&mut long, Duration::from_secs(10));
    let returned = aborted_at.elapsed();
    let mut err = String::new();
    use std::io::Read;
    long.stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success());
    assert!(err.contains("aborted"), "{err}");
    eprintln!("aborted call returned {returned:?} after the abort");
    assert!(returned < Duration::from_secs(2), "{returned:?}");
    // The server still serves after the timeout and the abort.
    assert_eq!(
        ok(&suite.ctl(&[
            "mcp",
            "call",
            "ev",
            "echo",
            "--args",
            r#"{"message":"still here"}"#
        ]))
        .trim(),
        "Echo: still here"
    );
    let outcomes: Vec<String> = wait_for(Duration::from_secs(10), "4 audited calls", || {
        let l = audit(&suite);
        (l.len() == 4).then_some(l)
    })
    .into_iter()
    .map(|a| a.2)
    .collect();
    assert_eq!(outcomes, ["ok", "timeout", "aborted", "ok"]);

    // Streamable HTTP: the same server on a loopback port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut http = Command::new("node")
        .args([&js, "streamableHttp"])
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "the HTTP server", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let url = format!("http://127.0.0.1:{port}/mcp");
    let s = json(&suite.ctl(&["--json", "mcp", "add", "evh", "--url", &url]));
    assert_eq!(
        (s["status"].as_str(), s["transport"].as_str()),
        (Some("running"), Some("http")),
        "{s}"
    );
    assert_eq!(s["pid"], Value::Null);
    let tools = json(&suite.ctl(&["--json", "mcp", "tools", "evh"]));
    assert!(tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "echo"));
    assert_eq!(
        ok(&suite.ctl(&[
            "mcp",
            "call",
            "evh",
            "echo",
            "--args",
            r#"{"message":"over http"}"#
        ]))
        .trim(),
        "Echo: over http"
    );
    let _ = http.kill();
    let _ = http.wait();
}

#[tokio::test]
async fn no_orphaned_server_after_kill_9_and_unrelated_processes_are_left_alone() {
    let mut suite = Suite::start(FAST);
    suite.wait_state("agents", "running", T).await;
    // A server whose process group holds more than the server: a shell
    // that outlives it and a grandchild that ignores stdin closing.
    let wrapped = format!(
        "sleep 300 & {} -m mcp_server_time --local-timezone UTC; wait",
        python().display()
    );
    let s = add_stdio(&suite, "wrapped", &["sh".into(), "-c".into(), wrapped]);
    assert_eq!(s["status"], "running", "{s}");
    let pid = s["pid"].as_u64().unwrap() as u32;
    let group = pid as i32;
    let members = || -> Vec<u32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|p| {
                alive(*p)
                    && nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(*p as i32)))
                        .is_ok_and(|g| g.as_raw() == group)
            })
            .collect()
    };
    assert!(
        members().len() >= 3,
        "shell, sleep and server: {:?}",
        members()
    );

    // A lockfile naming an unrelated live process (whose owner is gone):
    // the sweep must not kill it.
    let mut unrelated = Command::new("sleep").arg("120").spawn().unwrap();
    let fake = serde_json::json!({
        "childPid": unrelated.id(),
        "executablePath": "/usr/bin/python3",
        "argvHash": "0".repeat(64),
        "ownerPid": 999_999_999u32,
        "name": "mcp:impostor",
    });
    std::fs::write(
        suite.paths.locks_dir.join("mcp-impostor.json"),
        fake.to_string(),
    )
    .unwrap();

    // kill -9 agents-agent and coworkd, then start again.
    let agents = suite.worker("agents").await.pid;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agents as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    suite.stop_with(nix::sys::signal::Signal::SIGKILL);
    suite.spawn_coworkd();
    suite.wait_state("agents", "running", T).await;
    wait_until(
        Duration::from_secs(15),
        "no process left in the server's group",
        || members().is_empty(),
    );
    assert!(
        alive(unrelated.id()),
        "the unrelated process was left alone"
    );
    let _ = unrelated.kill();
    let _ = unrelated.wait();
    // The server is still registered and reconnects on use.
    let out = ok(&suite.ctl(&[
        "mcp",
        "call",
        "wrapped",
        "get_current_time",
        "--args",
        r#"{"timezone":"UTC"}"#,
    ]));
    assert!(out.contains("UTC"), "{out}");
}

#[tokio::test]
async fn a_servers_secret_lives_only_in_the_credential_store() {
    let suite = Suite::start(FAST);
    suite.wait_state("agents", "running", T).await;
    let secret = format!("s3cr3t-{}", std::process::id());
    let js = everything_js().display().to_string();
    // One secret given inline, one taken from the caller's environment.
    let out = Command::new(bin("coworkctl"))
        .arg("--home")
        .arg(suite.home.path())
        .args(["--json", "mcp", "add", "ev", "--secret-env"])
        .arg(format!("API_TOKEN={secret}"))
        .args(["--secret-env", "OTHER_TOKEN", "--", "node", &js, "stdio"])
        .env("OTHER_TOKEN", format!("{secret}-2"))
        .output()
        .unwrap();
    let s = json(&out);
    assert_eq!(s["status"], "running", "{s}");
    assert_eq!(
        s["secret_env"],
        serde_json::json!(["API_TOKEN", "OTHER_TOKEN"])
    );
    // The server got them in its environment.
    let env = ok(&suite.ctl(&["mcp", "call", "ev", "get-env"]));
    assert!(
        env.contains(&format!("\"API_TOKEN\": \"{secret}\""))
            || env.contains(&format!("\"API_TOKEN\":\"{secret}\"")),
        "{env}"
    );
    assert!(env.contains(&format!("{secret}-2")));
    // Nowhere on disk under the home: database, WAL, config, logs, locks.
    // (The audit log keeps the arguments, and get-env takes none.)
    let leaked = files_containing(suite.home.path(), secret.as_bytes());
    assert!(leaked.is_empty(), "the secret is in {leaked:?}");
    // After a restart of agents-agent the server still gets its secret.
    ok(&suite.ctl(&["retry", "agents"]));
    suite.wait_state("agents", "running", T).await;
    let env = ok(&suite.ctl(&["mcp", "call", "ev", "get-env"]));
    assert!(env.contains(&secret), "{env}");
    // A secret-taking variable that is not set is a clear error.
    let unset = suite.ctl(&[
        "mcp",
        "add",
        "ev2",
        "--secret-env",
        "NOT_SET_ANYWHERE_42",
        "--",
        "node",
        &js,
    ]);
    assert!(
        String::from_utf8_lossy(&unset.stderr).contains("NOT_SET_ANYWHERE_42"),
        "{unset:?}"
    );
}

#[tokio::test]
async fn concurrent_first_calls_share_one_server_process() {
    let suite = Suite::start(FAST);
    suite.wait_state("agents", "running", T).await;
    add_stdio(&suite, "time", &time_server_argv());
    // A fresh agents-agent: the server is registered and enabled, not
    // connected; the first calls arrive together.
    ok(&suite.ctl(&["retry", "agents"]));
    let agents = suite.wait_state("agents", "running", T).await.pid;
    let calls: Vec<_> = (0..4)
        .map(|_| {
            Command::new(bin("coworkctl"))
                .arg("--home")
                .arg(suite.home.path())
                .args([
                    "mcp",
                    "call",
                    "time",
                    "get_current_time",
                    "--args",
                    r#"{"timezone":"UTC"}"#,
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in calls {
        let o = c.wait_with_output().unwrap();
        assert!(String::from_utf8_lossy(&o.stdout).contains("UTC"), "{o:?}");
    }
    let servers: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<u32>().ok());
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            ppid == Some(agents) && cmd.windows(15).any(|w| w == b"mcp_server_time")
        })
        .collect();
    assert_eq!(
        servers.len(),
        1,
        "one spawn for 4 concurrent first calls: {servers:?}"
    );
}

#[tokio::test]
async fn tools_list_changed_clears_the_cached_tool_list() {
    let suite = Suite::start(FAST);
    suite.wait_state("agents", "running", T).await;
    let script = repo_root().join("tests/python/growing_mcp_server.py");
    add_stdio(
        &suite,
        "grow",
        &[python().display().to_string(), script.display().to_string()],
    );
    let names = || -> Vec<String> {
        json(&suite.ctl(&["--json", "mcp", "tools", "grow"]))["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(), ["grow"]);
    assert_eq!(names(), ["grow"], "served from the cache");
    assert_eq!(
        ok(&suite.ctl(&["mcp", "call", "grow", "grow"])).trim(),
        "grown"
    );
    wait_until(Duration::from_secs(10), "the new tool to be listed", || {
        names().contains(&"extra".to_owned())
    });
}
