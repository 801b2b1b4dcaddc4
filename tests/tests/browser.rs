//! browser-agent end to end with REAL parts: Debian's Chromium driven over
//! CDP, local pages served on loopback (tests/python/browser_site.py,
//! which also answers as http://localhost:PORT — another origin), coworkd
//! routing every call and starting browser-agent on demand. People's
//! actions by ref through frames, shadow roots, dialogs, downloads and
//! tabs; login state across a browser-agent restart; a hung renderer; a
//! killed browser-agent; an agent's form submit, password field, download
//! and cross-origin redirect stopped for approval (the cloud model is the
//! named stand-in, so the test sets each tool call); and the real Gemma
//! model navigating with a forced tool choice.

use cowork_e2e::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

/// The local site, its request log, and its port.
struct Site {
    peer: PythonPeer,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Site {
    fn start(fallback: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("requests.jsonl");
        let mut cmd = Command::new(python());
        cmd.arg(repo_root().join("tests/python/browser_site.py"))
            .arg(&log);
        if let Some(f) = fallback {
            cmd.env("SITE_FALLBACK", f);
        }
        let peer = PythonPeer::start(cmd, "the test site");
        Self {
            peer,
            log,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.peer.port)
    }

    /// Every request that reached the site.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// Quick restarts, and a stop grace long enough for Chromium to close
/// gracefully (its profile flushed).
fn config(site: &Site, extra: &str) -> String {
    format!(
        "[supervisor]\nbackoff_initial_ms = 100\nbackoff_max_ms = 400\nstop_grace_ms = 5000\n\
         [browser]\nallowed_origins = [\"http://127.0.0.1:{}\"]\n{extra}",
        site.peer.port
    )
}

/// `coworkctl --json browser ARGS`; while browser-agent is being
/// restarted (after a kill) the call is retried.
fn browser(s: &Suite, args: &[&str]) -> Value {
    let out = browser_out(s, args);
    let text = ok(&out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn browser_out(s: &Suite, args: &[&str]) -> Output {
    let mut a = vec!["--json", "browser"];
    a.extend_from_slice(args);
    let deadline = Instant::now() + T;
    loop {
        let out = s.ctl(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        let starting = err.contains("restarting") || err.contains("starting");
        if out.status.success() || !starting || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The ref of the snapshot line that contains `needle`.
fn ref_of(snapshot: &Value, needle: &str) -> String {
    let text = snapshot["snapshot"].as_str().unwrap();
    let line = text
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in:\n{text}"));
    let start = line
        .find("[e")
        .unwrap_or_else(|| panic!("no ref in {line}"))
        + 1;
    let end = start + line[start..].find(']').unwrap();
    line[start..end].to_owned()
}

/// Chromium processes using this suite's profile.
fn chromium_pids(home: &Path) -> Vec<u32> {
    let flag = format!("--user-data-dir={}", home.join("browser-profile").display());
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'));
        if !zombie && cmd.split(|b| *b == 0).any(|a| a == flag.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

fn status(s: &Suite) -> Value {
    browser(s, &["status"])
}

#[tokio::test]
async fn people_drive_pages_by_ref_through_frames_shadow_roots_dialogs_downloads_and_tabs() {
    let site = Site::start(None);
    let s = Suite::start(&config(&site, ""));
    let home = s.home.path();

    let r = browser(&s, &["open", &site.url("/")]);
    assert_eq!(
        (r["outcome"].as_str(), r["title"].as_str()),
        (Some("ok"), Some("Home")),
        "{r}"
    );
    let snap = browser(&s, &["snapshot"]);
    assert!(
        snap["snapshot"]
            .as_str()
            .unwrap()
            .contains("- heading \"Cowork test site\""),
        "{snap}"
    );
    let search = ref_of(&snap, "textbox \"Search\"");
    let r = browser(&s, &["type", &search, "hello world", "--submit"]);
    assert!(
        r["url"].as_str().unwrap().contains("/search?q=hello+world"),
        "{r}"
    );
    let t = browser(&s, &["text"]);
    assert!(
        t["text"]
            .as_str()
            .unwrap()
            .contains("Results for hello world"),
        "{t}"
    );
    let back = browser(&s, &["back"]);
    assert_eq!(back["url"], site.url("/"), "{back}");

    // A button inside an iframe, by ref.
    browser(&s, &["open", &site.url("/iframe")]);
    let snap = browser(&s, &["snapshot"]);
    assert!(
        snap["snapshot"]
            .as_str()
            .unwrap()
            .contains("  - button \"Inner button\""),
        "{snap}"
    );
    browser(&s, &["click", &ref_of(&snap, "Inner button")]);
    let t = browser(&s, &["text"]);
    assert!(t["text"].as_str().unwrap().contains("inner clicked"), "{t}");

    // A button in an open shadow root.
    browser(&s, &["open", &site.url("/shadow")]);
    let snap = browser(&s, &["snapshot"]);
    assert!(
        snap["snapshot"]
            .as_str()
            .unwrap()
            .contains("button \"Shadow button\""),
        "{snap}"
    );

    // A confirm() is answered (dismissed), never left hanging.
    browser(&s, &["open", &site.url("/dialog")]);
    let snap = browser(&s, &["snapshot"]);
    let r = browser(&s, &["click", &ref_of(&snap, "Delete")]);
    assert_eq!(
        r["dialogs"][0], "confirm \"Delete everything?\": dismissed",
        "{r}"
    );
    assert_eq!(browser(&s, &["eval", "document.title"])["text"], "\"no\"");

    // A ref whose element changed is refused, with what to do.
    browser(&s, &["open", &site.url("/change")]);
    let snap = browser(&s, &["snapshot"]);
    let first = ref_of(&snap, "\"First\"");
    browser(&s, &["click", &ref_of(&snap, "Rename")]);
    let stale = browser_out(&s, &["click", &first]);
    assert!(!stale.status.success());
    let err = String::from_utf8_lossy(&stale.stderr);
    assert!(
        err.contains("stale") && err.contains("new snapshot"),
        "{err}"
    );
    let unknown = browser_out(&s, &["click", "e999"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not on this page"));

    // A button under an overlay is not clicked through it.
    browser(&s, &["open", &site.url("/overlay")]);
    let snap = browser(&s, &["snapshot"]);
    let covered = browser_out(&s, &["click", &ref_of(&snap, "button \"Buy\"")]);
    let err = String::from_utf8_lossy(&covered.stderr);
    assert!(err.contains("covered by <div#banner>"), "{err}");
    assert_eq!(
        browser(&s, &["eval", "document.title"])["text"],
        "\"Overlay\""
    );

    // A download lands in browser-downloads/ and the session goes on.
    browser(&s, &["open", &site.url("/download")]);
    let snap = browser(&s, &["snapshot"]);
    let r = browser(&s, &["click", &ref_of(&snap, "Get the file")]);
    let file = home.join("browser-downloads/notes.txt");
    assert_eq!(r["downloads"][0], file.display().to_string(), "{r}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "file body\n");
    let after = browser(&s, &["open", &site.url("/article")]);
    assert_eq!(after["title"], "Article", "{after}");

    // A link that opens a tab.
    browser(&s, &["open", &site.url("/popup")]);
    let snap = browser(&s, &["snapshot"]);
    let r = browser(&s, &["click", &ref_of(&snap, "Elsewhere")]);
    assert!(
        r["new_tabs"][0]["url"]
            .as_str()
            .unwrap()
            .contains("localhost"),
        "{r}"
    );
    let tabs = browser(&s, &["tabs"]);
    assert_eq!(tabs["tabs"].as_array().unwrap().len(), 2, "{tabs}");
    let tabs = browser(&s, &["close-tab", "1"]);
    assert_eq!(tabs["tabs"].as_array().unwrap().len(), 1, "{tabs}");

    // A screenshot is a PNG, its hash logged.
    let png = home.join("shot.png");
    let shot = browser(&s, &["screenshot", png.to_str().unwrap()]);
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));

    // The log: every action, the target's name, never the typed text.
    let log = browser(&s, &["log", "--limit", "200"]);
    let rows = log["actions"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|a| a["action"] == "click" && a["target_name"] == "Inner button"),
        "{log}"
    );
    assert!(
        rows.iter()
            .any(|a| a["screenshot_sha256"] == shot["sha256"]),
        "{log}"
    );
    assert!(
        rows.iter()
            .any(|a| a["outcome"].as_str().unwrap().contains("stale")),
        "{log}"
    );
    let typed = rows.iter().find(|a| a["action"] == "type").unwrap();
    assert_eq!(typed["detail"], "11 characters, then Enter", "{typed}");
    // (Chromium's own history has it: it was in the search URL.)
    let stored: Vec<_> = files_containing(home, b"hello world")
        .into_iter()
        .filter(|f| !f.starts_with(home.join("browser-profile")))
        .collect();
    assert!(stored.is_empty(), "typed text was stored in {stored:?}");

    // Its DevTools are on a pipe: no port another process could reach.
    let chromium = status(&s)["chromium_pid"].as_u64().unwrap();
    let cmdline = std::fs::read(format!("/proc/{chromium}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline);
    assert!(cmdline.contains("--remote-debugging-pipe"), "{cmdline}");
    assert!(!cmdline.contains("--remote-debugging-port"), "{cmdline}");
    let closed = browser(&s, &["close"]);
    assert_eq!(closed["was_open"], true);
    assert!(chromium_pids(home).is_empty());
}

#[tokio::test]
async fn login_state_survives_a_browser_agent_restart() {
    let site = Site::start(None);
    let s = Suite::start(&config(&site, ""));
    browser(&s, &["open", &site.url("/setlogin")]);
    let pid = status(&s)["pid"].as_u64().unwrap() as i32;
    // SIGTERM, as coworkd's idle stop sends: Chromium closes gracefully.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    wait_until(T, "browser-agent and Chromium to stop", || {
        !alive(pid as u32) && chromium_pids(s.home.path()).is_empty()
    });
    browser(&s, &["open", &site.url("/whoami")]);
    assert_ne!(status(&s)["pid"].as_u64().unwrap() as i32, pid);
    let t = browser(&s, &["text"]);
    let text = t["text"].as_str().unwrap();
    assert!(text.contains("storage:tok-123"), "{text}");
    assert!(text.contains("cookie:session=s-456"), "{text}");
}

#[tokio::test]
async fn a_hung_renderer_is_killed_and_the_next_action_works() {
    let site = Site::start(None);
    let s = Suite::start(&config(&site, "cdp_timeout_ms = 8000\n"));
    browser(&s, &["open", &site.url("/article")]);
    let before = status(&s)["chromium_pid"].as_u64().unwrap() as u32;
    let started = Instant::now();
    let hung = browser_out(&s, &["open", &site.url("/hang")]);
    assert!(!hung.status.success());
    let err = String::from_utf8_lossy(&hung.stderr);
    assert!(
        err.contains("stopped answering") && err.contains("opens again"),
        "{err}"
    );
    let r = browser(&s, &["open", &site.url("/article")]);
    let took = started.elapsed();
    assert_eq!(r["title"], "Article", "{r}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert!(!alive(before), "the hung Chromium was left running");
    let st = status(&s);
    assert_ne!(st["chromium_pid"].as_u64().unwrap() as u32, before);
    assert_eq!(st["relaunches"], 1, "{st}");
    assert!(
        st["last_failure"].as_str().unwrap().contains("/hang"),
        "{st}"
    );
    assert_eq!(
        chromium_pids(s.home.path())
            .iter()
            .filter(|p| **p == before)
            .count(),
        0
    );
}

#[tokio::test]
async fn kill_9_of_browser_agent_leaves_no_chromium_and_the_next_call_relaunches() {
    let site = Site::start(None);
    let s = Suite::start(&config(&site, ""));
    browser(&s, &["open", &site.url("/article")]);
    let st = status(&s);
    let (agent, chromium) = (
        st["pid"].as_u64().unwrap() as i32,
        st["chromium_pid"].as_u64().unwrap() as u32,
    );
    assert!(chromium_pids(s.home.path()).contains(&chromium));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until(
        Duration::from_secs(15),
        "every Chromium process to end",
        || chromium_pids(s.home.path()).is_empty(),
    );
    // The dead Chromium's lock is left in the profile; the next launch
    // removes it (its pid is gone) and opens the same profile.
    assert!(std::fs::symlink_metadata(s.home.path().join("browser-profile/SingletonLock")).is_ok());
    let r = browser(&s, &["open", &site.url("/article")]);
    assert_eq!(r["title"], "Article", "{r}");
    let st = status(&s);
    assert_ne!(st["pid"].as_u64().unwrap() as i32, agent);
    assert_ne!(st["chromium_pid"].as_u64().unwrap() as u32, chromium);
    let log = std::fs::read_to_string(s.home.path().join("logs/browser.log")).unwrap();
    assert!(log.contains("removed a stale SingletonLock"), "{log}");
}

/// The operation waits for a person, for a reason that names `why`.
fn waits_for(op: &Value, why: &str) {
    assert_eq!(op["status"], "waiting_for_human", "{op}");
    let reason = op["pending"][0]["reason"].as_str().unwrap_or("");
    assert!(reason.contains(why), "{why:?} not in {op}");
}

/// The cloud stand-in's next reply: one browser tool call.
fn reply_call(file: &Path, tool: &str, args: Value) {
    let reply = serde_json::json!({
        "message": {"role": "assistant", "content": null, "tool_calls": [{
            "id": "c1", "type": "function",
            "function": {"name": format!("browser__{tool}"), "arguments": args.to_string()}}]},
    });
    std::fs::write(file, reply.to_string()).unwrap();
}

fn reply_text(file: &Path, text: &str) {
    let reply = serde_json::json!({"message": {"role": "assistant", "content": text}});
    std::fs::write(file, reply.to_string()).unwrap();
}

/// A suite whose model is the cloud stand-in answering from `reply`.
async fn with_scripted_model(
    site: &Site,
    reply: &Path,
    log: &Path,
    approval: &str,
) -> (CloudStandin, Suite) {
    reply_text(reply, "nothing");
    let cloud = cloud_standin_with(log, Some(reply));
    let cfg = format!(
        "{}\n[agents]\nprobe_ports = false\nplan = \"boost\"\n\
         [agents.caps]\nper_interaction = 100.0\ndaily = 100.0\nweekly = 100.0\nmonthly = 100.0\n\
         [agents.providers.openrouter]\nbase_url = \"http://127.0.0.1:{}/v1\"\n\
         [agents.approval]\n{approval}\n",
        config(site, ""),
        cloud.port
    );
    let s = Suite::start_with_env(
        Suite::temp_home(),
        &cfg,
        vec![
            ("OPENROUTER_API_KEY".into(), Some("or-test-key".into())),
            ("GEMINI_API_KEY".into(), None),
        ],
    );
    s.agents_serving().await;
    (cloud, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_approval_expires_and_the_call_never_runs() {
    let site = Site::start(None);
    let dir = tempfile::tempdir().unwrap();
    let (log, reply) = (dir.path().join("log"), dir.path().join("reply.json"));
    let (_cloud, s) = with_scripted_model(&site, &reply, &log, "timeout_s = 2").await;
    browser(&s, &["open", &site.url("/form")]);
    let snap = browser(&s, &["snapshot"]);
    reply_call(
        &reply,
        "click",
        serde_json::json!({"ref": ref_of(&snap, "button \"Send\"")}),
    );
    let op = s.ctl_json(&["agent", "run", "--max-steps", "4", "send the form"]);
    assert_eq!(op["status"], "waiting_for_human", "{op}");
    reply_text(&reply, "Nobody approved; I stopped.");
    let id = op["id"].as_str().unwrap().to_owned();
    let done = wait_for(Duration::from_secs(30), "the approval to expire", || {
        let o = s.ctl_json(&["agent", "show", &id]);
        (o["status"] != "waiting_for_human" && o["status"] != "running").then_some(o)
    });
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["tool_calls"][0]["outcome"], "expired", "{done}");
    assert!(
        !site.requests().iter().any(|r| r["method"] == "POST"),
        "the form was sent"
    );
    let sent = std::fs::read_to_string(&log).unwrap();
    assert!(
        sent.contains("No one approved this tool call within 2 s"),
        "the model was not told"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_submit_password_download_and_cross_origin_redirect_wait_for_approval() {
    let site = Site::start(None);
    let dir = tempfile::tempdir().unwrap();
    let (log, reply) = (dir.path().join("log"), dir.path().join("reply.json"));
    let (_cloud, s) = with_scripted_model(&site, &reply, &log, "").await;
    let run = |task: &str| s.ctl_json(&["agent", "run", "--max-steps", "4", task]);
    let posts = || {
        site.requests()
            .iter()
            .filter(|r| r["method"] == "POST")
            .count()
    };

    // A click that submits a form waits; nothing is sent until approved.
    browser(&s, &["open", &site.url("/form")]);
    let snap = browser(&s, &["snapshot"]);
    reply_call(
        &reply,
        "click",
        serde_json::json!({"ref": ref_of(&snap, "button \"Send\"")}),
    );
    let op = run("send the form");
    assert_eq!(op["status"], "waiting_for_human", "{op}");
    let reason = op["pending"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("submits a form (POST") && reason.contains("/submit"),
        "{op}"
    );
    assert_eq!(posts(), 0);
    reply_text(&reply, "The form was sent.");
    let done = s.ctl_json(&[
        "approvals",
        "approve",
        op["pending"][0]["id"].as_str().unwrap(),
    ]);
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["tool_calls"][0]["outcome"], "ran", "{done}");
    assert!(
        done["tool_calls"][0]["result"]
            .as_str()
            .unwrap()
            .contains("Submitted"),
        "{done}"
    );
    assert_eq!(posts(), 1);
    let op_log = browser(&s, &["log", "--operation", op["id"].as_str().unwrap()]);
    let outcomes: Vec<&str> = op_log["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "click")
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.len(), 2, "{op_log}");
    assert_eq!(outcomes[0], "ok");
    assert!(outcomes[1].starts_with("needs_approval"), "{op_log}");

    // A redirect to another origin is stopped before it is sent (and the
    // tab goes back to the page before).
    browser(&s, &["open", &site.url("/")]);
    let redirect = site.url(&format!(
        "/redirect?to=http://localhost:{}/article",
        site.peer.port
    ));
    reply_call(&reply, "navigate", serde_json::json!({"url": redirect}));
    let op = run("open the page");
    assert_eq!(op["status"], "waiting_for_human", "{op}");
    let reason = op["pending"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("localhost") && reason.contains("outside"),
        "{op}"
    );
    assert!(
        !site
            .requests()
            .iter()
            .any(|r| r["host"].as_str().unwrap_or("").starts_with("localhost")),
        "the other origin was reached"
    );
    reply_text(&reply, "I will not go there.");
    let r = s.ctl_json(&[
        "approvals",
        "reject",
        op["pending"][0]["id"].as_str().unwrap(),
    ]);
    assert_eq!(r["status"], "done", "{r}");
    let tabs = browser(&s, &["tabs"]);
    assert!(
        !tabs["tabs"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with("chrome-error"),
        "{tabs}"
    );

    // Typing into a password field waits.
    browser(&s, &["open", &site.url("/pay")]);
    let snap = browser(&s, &["snapshot"]);
    reply_call(
        &reply,
        "type",
        serde_json::json!({"ref": ref_of(&snap, "textbox \"Password\""), "text": "hunter2"}),
    );
    let op = run("log in");
    waits_for(&op, "password field");

    // So does a key typed into a focused password field.
    browser(&s, &["click", &ref_of(&snap, "textbox \"Password\"")]);
    reply_call(&reply, "press", serde_json::json!({"key": "a"}));
    let op = run("type a letter");
    waits_for(&op, "password field");

    // And a page the agent writes itself (a data: URL runs its script).
    reply_call(
        &reply,
        "navigate",
        serde_json::json!({"url": "data:text/html,<script>fetch('http://localhost/')</script>"}),
    );
    let op = run("open my page");
    waits_for(&op, "data:text/html");

    // A tab a script opens is stopped at its first load, before it is sent.
    browser(&s, &["open", &site.url("/opener")]);
    let snap = browser(&s, &["snapshot"]);
    reply_call(
        &reply,
        "click",
        serde_json::json!({"ref": ref_of(&snap, "Open it")}),
    );
    let op = run("open it");
    waits_for(&op, "localhost");
    assert!(
        !site
            .requests()
            .iter()
            .any(|r| r["host"].as_str().unwrap_or("").starts_with("localhost")),
        "the other origin was reached"
    );

    // So does a download.
    browser(&s, &["open", &site.url("/download")]);
    let snap = browser(&s, &["snapshot"]);
    reply_call(
        &reply,
        "click",
        serde_json::json!({"ref": ref_of(&snap, "Get the file")}),
    );
    let op = run("get the file");
    waits_for(&op, "downloads");
    assert!(!s.home.path().join("browser-downloads/notes.txt").exists());

    // The model was offered the browser's tools.
    let sent = std::fs::read_to_string(&log).unwrap();
    assert!(sent.contains("browser__navigate") && sent.contains("browser__click"));
}

#[tokio::test]
async fn gemma_navigates_with_a_forced_tool_choice_and_reads_the_page() {
    // Gemma 3 270M copies the origin of a URL given as JSON reliably, not
    // always its path: the site answers every path with the article. When
    // it invents another origin, the policy stops the call (asserted too).
    let site = Site::start(Some("article"));
    let engine = start_llama_cpp_python();
    let s = Suite::start(&format!(
        "{}\n[agents]\nprobe_ports = false\n[[agents.engines]]\nid = \"llamacpp\"\n\
         base_url = \"http://127.0.0.1:{}/v1\"\napi = \"openai\"\n",
        config(&site, ""),
        engine.port
    ));
    s.agents_serving().await;
    wait_engine_up(&s);
    let task = format!(
        "What is the secret code on this page? {{\"url\": \"{}\"}}",
        site.url("/article")
    );
    let local = site.url("/");
    let mut read = None;
    for _ in 0..6 {
        let op = s.ctl_json(&[
            "agent",
            "run",
            "--tool-choice",
            "browser/navigate",
            "--max-steps",
            "2",
            &task,
        ]);
        let call = op["tool_calls"].as_array().and_then(|c| c.first()).cloned();
        match call {
            Some(c) if c["outcome"] == "ran" => {
                assert_eq!(c["tool"], "navigate", "{op}");
                let args: Value = serde_json::from_str(c["arguments"].as_str().unwrap()).unwrap();
                assert!(args["url"].as_str().unwrap().starts_with(&local), "{op}");
                read = Some((
                    op["id"].as_str().unwrap().to_owned(),
                    c["result"].as_str().unwrap().to_owned(),
                ));
                break;
            }
            // Arguments that are not JSON (the small model's): refused.
            Some(c) => assert_eq!(c["outcome"], "failed", "{op}"),
            None => {
                // Another origin: stopped before anything was loaded.
                assert_eq!(op["status"], "waiting_for_human", "{op}");
                assert!(
                    op["pending"][0]["reason"]
                        .as_str()
                        .unwrap()
                        .contains("outside"),
                    "{op}"
                );
                let _ = s.ctl(&[
                    "approvals",
                    "reject",
                    op["pending"][0]["id"].as_str().unwrap(),
                ]);
            }
        }
    }
    let (op, result) = read.expect("Gemma navigated to the local site in 6 tries");
    assert!(result.contains("PURPLE-42"), "the page's text: {result}");
    assert!(result.contains("heading \"Lighthouse notes\""), "{result}");
    let log = browser(&s, &["log", "--operation", &op]);
    assert!(
        log["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "navigate" && a["outcome"] == "ok"),
        "{log}"
    );
    // The browser action is in the operation's trace: the agent's tool
    // span, coworkd's relay under it, browser-agent's request under that.
    let shown = wait_for(T, "the browser action's spans in the timeline", || {
        let o = s.ctl(&["--json", "agent", "show", &op, "--timeline"]);
        let v: Value = serde_json::from_slice(&o.stdout).ok()?;
        v["timeline"]
            .as_array()?
            .iter()
            .any(|x| x["process"] == "browser" && x["name"] == "request")
            .then_some(v)
    });
    let tl = shown["timeline"].as_array().unwrap();
    let find = |pred: &dyn Fn(&Value) -> bool| {
        tl.iter()
            .find(|x| pred(x))
            .unwrap_or_else(|| panic!("{shown}"))
    };
    let tool = find(&|x| x["name"] == "tool" && x["attributes"]["server"] == "browser");
    let action = find(&|x| x["name"] == "browser.action");
    assert_eq!(action["attributes"]["action"], "navigate", "{shown}");
    assert_eq!(action["outcome"], "ok", "{shown}");
    let relay = find(&|x| {
        x["name"] == "relay" && x["attributes"]["path"] == "/cowork.browser.v1.Browser/Navigate"
    });
    let request = find(&|x| x["process"] == "browser" && x["name"] == "request");
    assert_eq!(relay["parent_span_id"], tool["span_id"], "{shown}");
    assert_eq!(request["parent_span_id"], relay["span_id"], "{shown}");
    assert_eq!(action["parent_span_id"], request["span_id"], "{shown}");
}

#[tokio::test]
async fn a_crashed_renderer_is_replaced_and_the_next_action_works() {
    let site = Site::start(None);
    let s = Suite::start(&config(&site, ""));
    browser(&s, &["open", &site.url("/article")]);
    let chromium = status(&s)["chromium_pid"].as_u64().unwrap() as u32;
    // The renderers are Chromium's children with --type=renderer.
    let renderers: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|p| {
            // Field 5 of stat, after the command in parentheses: the group.
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let group = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(2));
            group == Some(chromium.to_string().as_str())
                && std::fs::read(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.windows(15).any(|w| w == b"--type=renderer"))
        })
        .collect();
    assert!(!renderers.is_empty(), "no renderer of {chromium}");
    for r in &renderers {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*r as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    wait_until(T, "the crash to be seen", || {
        // The next action either meets the crash (and fails saying so) or
        // finds it already seen and opens a new Chromium first.
        let out = browser_out(&s, &["open", &site.url("/article")]);
        out.status.success() && status(&s)["relaunches"] == 1
    });
    let st = status(&s);
    assert!(
        st["last_failure"]
            .as_str()
            .unwrap()
            .contains("renderer crashed"),
        "{st}"
    );
    assert_ne!(st["chromium_pid"].as_u64().unwrap() as u32, chromium);
    assert!(!alive(chromium));
    let t = browser(&s, &["text"]);
    assert!(t["text"].as_str().unwrap().contains("PURPLE-42"), "{t}");
}

#[tokio::test]
async fn a_chromium_killed_under_the_agent_is_reaped_and_the_next_action_relaunches_it() {
    let site = Site::start(None);
    let s = Suite::start(&config(&site, ""));
    browser(&s, &["open", &site.url("/article")]);
    let st = status(&s);
    let (agent, chromium) = (
        st["pid"].as_u64().unwrap(),
        st["chromium_pid"].as_u64().unwrap() as u32,
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(chromium as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Reaped by browser-agent: no zombie is left.
    wait_until(T, "Chromium to be reaped", || {
        !Path::new(&format!("/proc/{chromium}")).exists()
    });
    // The action that meets the dead Chromium may fail, saying so; the
    // next one works.
    let first = browser_out(&s, &["open", &site.url("/article")]);
    if !first.status.success() {
        let err = String::from_utf8_lossy(&first.stderr);
        assert!(
            err.contains("Chromium exited") || err.contains("connection to Chromium was lost"),
            "{err}"
        );
    }
    let r = browser(&s, &["open", &site.url("/article")]);
    assert_eq!(r["title"], "Article", "{r}");
    let st = status(&s);
    assert_eq!(
        st["pid"].as_u64().unwrap(),
        agent,
        "browser-agent itself stayed up"
    );
    assert_ne!(st["chromium_pid"].as_u64().unwrap() as u32, chromium);
    assert_eq!(st["relaunches"], 1, "{st}");
    let why = st["last_failure"].as_str().unwrap();
    assert!(
        why.contains("Chromium exited (signal: 9")
            || why.contains("connection to Chromium was lost"),
        "{st}"
    );
}

/// An automation's browser steps: they read a page, branch on its text,
/// and a step the browser stops for its facts (a load outside
/// `allowed_origins`) pauses the run until a person approves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automation_drives_the_browser_and_waits_for_approval_on_its_facts() {
    let site = Site::start(None);
    let s = Suite::start(&config(&site, ""));
    s.agents_serving().await;
    let flow = s.home.path().join("browse.json");
    let elsewhere = format!("http://localhost:{}/article", site.peer.port);
    std::fs::write(
        &flow,
        format!(
            r#"{{"name": "Read and go", "steps": [
              {{"id": "open", "type": "browser", "action": "navigate", "arguments": {{"url": "{}"}}}},
              {{"id": "read", "type": "browser", "action": "extract_text"}},
              {{"id": "check", "type": "condition", "if": {{"left": "${{read.text}}", "op": "contains", "right": "Lighthouse"}},
               "then": "away", "else": "end"}},
              {{"id": "away", "type": "browser", "action": "navigate", "arguments": {{"url": "{}"}}}}]}}"#,
            site.url("/article"),
            elsewhere,
        ),
    )
    .unwrap();
    let id = s.ctl_json(&["automations", "add", &flow.display().to_string()])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = s.ctl_json(&["automations", "run", &id]);
    assert_eq!(run["status"], "waiting_for_human", "{run}");
    assert_eq!(run["steps"][2]["output"]["result"], true, "{run}");
    assert!(
        run["waiting_reason"]
            .as_str()
            .unwrap()
            .contains("allowed_origins"),
        "{run}"
    );
    // Nothing reached the other origin yet.
    let other = |site: &Site| {
        site.requests()
            .iter()
            .filter(|r| r.to_string().contains("localhost"))
            .count()
    };
    assert_eq!(other(&site), 0);
    let call = run["waiting_call"].as_str().unwrap().to_owned();
    ok(&s.ctl(&["approvals", "approve", &call]));
    let run_id = run["id"].as_str().unwrap().to_owned();
    let done = wait_for(Duration::from_secs(60), "the run done", || {
        let r = s.ctl_json(&["automations", "runs", &run_id]);
        (r["status"] == "done").then_some(r)
    });
    assert!(
        done["output"]["text"]
            .as_str()
            .unwrap()
            .contains("localhost"),
        "{done}"
    );
    assert!(other(&site) >= 1, "{:?}", site.requests());
}
