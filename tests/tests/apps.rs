//! Installed apps end to end: zips made by `tests/python/app_zips.py`
//! (hostile ones, and `tests/apps/notes`, a React/TSX app in the shape of a
//! Google AI Studio export) installed with `coworkctl apps install`,
//! bundled by the real esbuild from npm, and loaded in Debian's headless
//! Chromium, whose page calls `window.cowork.*` and tries what it must not
//! do, writing every outcome into the DOM (`--dump-dom`).

use cowork_e2e::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn json_of(o: &std::process::Output) -> Value {
    let text = ok(o);
    serde_json::from_str(text.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn zip(dir: &Path, mode: &str, src: Option<&Path>) -> PathBuf {
    let out = dir.join(format!(
        "{mode}-{}.zip",
        src.map(|s| s.file_name().unwrap().to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("tests/python/app_zips.py"))
        .arg(mode)
        .arg(&out);
    if let Some(s) = src {
        cmd.arg(s);
    }
    let o = cmd.output().expect("python");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn notes_dir() -> PathBuf {
    repo_root().join("tests/apps/notes")
}

/// A suite with the sim source focused on an editor, apps on `port`.
fn suite(port: u16, extra_config: &str) -> Suite {
    suite_in(Suite::temp_home(), port, extra_config)
}

fn suite_in(home: tempfile::TempDir, port: u16, extra_config: &str) -> Suite {
    std::fs::write(
        home.path().join("script.jsonl"),
        // The first Editor window ends (memory indexes finished
        // activities); the last one is in focus.
        concat!(
            r#"{"t_ms": 0, "kind": "window", "app": "Editor", "app_id": "editor", "title": "invoice-2026.md"}"#,
            "\n",
            r#"{"t_ms": 1000, "kind": "window", "app": "Browser", "app_id": "browser", "title": "Inbox", "url": "https://mail.example.com/"}"#,
            "\n",
            r#"{"t_ms": 2000, "kind": "window", "app": "Editor", "app_id": "editor", "title": "invoice-2026.md"}"#,
            "\n"
        ),
    )
    .unwrap();
    let config = format!(
        "[capture]\nsource = \"sim\"\nsim_script = \"script.jsonl\"\nsim_speed = 0\n\
         [memory]\npoll_ms = 100\n\
         [apps]\nport = {port}\nruntime_dir = \"{}\"\n{extra_config}",
        apps_runtime_dir()
    );
    Suite::start_in(home, &config)
}

fn install(s: &Suite, zip: &Path) -> Value {
    json_of(&s.ctl(&["--json", "apps", "install", zip.to_str().unwrap(), "--yes"]))
}

/// The page at `url` after its scripts ran, from Debian's headless
/// Chromium with a fresh profile: the JSON in `<pre id="out">`.
fn page_out(url: &str) -> Value {
    let profile = tempfile::tempdir().unwrap();
    let o = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=15000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("chromium (scripts/peers.sh installs it)");
    let dom = String::from_utf8_lossy(&o.stdout);
    let json = dom
        .split("<pre id=\"out\">")
        .nth(1)
        .and_then(|r| r.split("</pre>").next())
        .unwrap_or_else(|| {
            panic!(
                "no output in the page: {dom}\n{}",
                String::from_utf8_lossy(&o.stderr)
            )
        });
    let json = json
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// One raw HTTP/1.1 request to the apps' port with `headers` (whole
/// lines): (status, head, body).
fn raw(
    port: u16,
    method: &str,
    host: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_owned();
    (status, head, response_body(&text))
}

/// Header lines: an Origin and a Cookie, when given.
fn hdrs(origin: Option<&str>, cookie: Option<&str>) -> String {
    let mut h = String::new();
    if let Some(o) = origin {
        h.push_str(&format!("Origin: {o}\r\n"));
    }
    if let Some(c) = cookie {
        h.push_str(&format!("Cookie: {c}\r\n"));
    }
    h
}

fn host(app: &str, port: u16) -> String {
    format!("{app}.apps.localhost:{port}")
}

/// A launch link for app `id` (`apps open --print`).
fn launch(s: &Suite, id: &str) -> String {
    let o = json_of(&s.ctl(&["--json", "apps", "open", id, "--print"]));
    o["url"].as_str().unwrap().to_owned()
}

/// Trade a launch link for the app's cookie, as a browser does:
/// `cowork_app=…`.
fn admit(port: u16, id: &str, url: &str) -> String {
    let path = url.split_once(&format!(":{port}")).unwrap().1;
    let (st, head, _) = raw(port, "GET", &host(id, port), path, "", "");
    assert_eq!(st, 303, "{head}");
    let line = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Strict"),
        "{line}"
    );
    line["set-cookie:".len()..]
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_owned()
}

/// A read-lane call to `app`'s host from `origin_app`'s origin.
fn read_as(
    port: u16,
    app: &str,
    origin_app: &str,
    cookie: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let origin = format!("http://{origin_app}.apps.localhost:{port}");
    let (status, _, text) = raw(
        port,
        "POST",
        &host(app, port),
        "/__cowork/read",
        &hdrs(Some(&origin), cookie),
        body,
    );
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_zips_and_broken_apps_are_refused_and_leave_nothing() {
    let work = tempfile::tempdir().unwrap();
    // An install a killed agents-agent left half-way (no record): gone at
    // the next start.
    let home = Suite::temp_home();
    let halfway = home.path().join("apps/notes-0a0b0c/src");
    std::fs::create_dir_all(&halfway).unwrap();
    std::fs::write(halfway.join("index.html"), "<p>half</p>").unwrap();
    let s = suite_in(home, free_port(), "");
    s.agents_serving().await;
    wait_until(T, "the half-way install swept", || !halfway.exists());
    for (mode, why) in [
        ("traversal", "climbs out with '..'"),
        ("absolute", "is an absolute path"),
        ("symlink", "is a symbolic link"),
        ("device", "is a device, pipe or socket"),
        ("bomb", "(a zip bomb)"),
    ] {
        let z = zip(work.path(), mode, None);
        let o = s.ctl(&["apps", "install", z.to_str().unwrap(), "--yes"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(why), "{mode}: {err}");
        assert!(err.contains("nothing was installed"), "{err}");
    }
    assert!(!Path::new("/tmp/escaped-absolute.txt").exists());
    assert!(!s.home.path().join("escaped-by-traversal.txt").exists());
    assert!(!s.home.path().join("apps/escaped-by-traversal.txt").exists());
    assert!(!s
        .home
        .path()
        .parent()
        .unwrap()
        .join("escaped-by-traversal.txt")
        .exists());
    let apps_dir = s.home.path().join("apps");
    let left: Vec<_> = std::fs::read_dir(&apps_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing unpacked stays: {left:?}");

    // An import no package provides: esbuild's own words, the rules, and
    // nothing installed.
    let broken = work.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("index.tsx"),
        "import pad from 'left-pad-not-here';\nconsole.log(pad('x', 3));\n",
    )
    .unwrap();
    let z = zip(work.path(), "dir", Some(&broken));
    let o = s.ctl(&["apps", "install", z.to_str().unwrap(), "--yes"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("Could not resolve \"left-pad-not-here\""),
        "{err}"
    );
    assert!(err.contains("docs/apps.md#compatibility"), "{err}");

    // An import of a file outside the app (its JSON would be served in
    // the bundle): refused after esbuild, nothing installed.
    let secret = work.path().join("secret.json");
    std::fs::write(&secret, r#"{"token": "not-for-apps"}"#).unwrap();
    let greedy = work.path().join("greedy");
    std::fs::create_dir_all(&greedy).unwrap();
    std::fs::write(
        greedy.join("index.tsx"),
        format!(
            "import s from {:?};\nconsole.log(s);\n",
            secret.display().to_string()
        ),
    )
    .unwrap();
    let z = zip(work.path(), "dir", Some(&greedy));
    let o = s.ctl(&["apps", "install", z.to_str().unwrap(), "--yes"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("outside its own files"),
        "{err}"
    );
    assert!(err.contains("secret.json"), "{err}");

    // No --yes and no terminal: the disclosure is printed, nothing installed.
    let z = zip(work.path(), "dir", Some(&notes_dir()));
    let o = s.ctl(&["apps", "install", z.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("pass --yes"), "{err}");
    assert!(
        err.contains("will be able to read") && err.contains("generativelanguage.googleapis.com"),
        "{err}"
    );
    assert_eq!(
        json_of(&s.ctl(&["--json", "apps", "list"]))["apps"],
        Value::Array(vec![])
    );
    let left: Vec<_> = std::fs::read_dir(&apps_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "an inspected app leaves nothing: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_reads_its_lane_in_chromium_and_nothing_else() {
    let work = tempfile::tempdir().unwrap();
    let (port, gw) = (free_port(), free_port());
    // A named stand-in for Ollama answers chat, so A's conversation has
    // an answer and memory indexes it.
    let engine = ollama_standin(&["standin-model"], 0, None);
    let s = suite(
        port,
        &format!(
            "[agents]\nprobe_ports = false\n[[agents.engines]]\nid = \"ollama\"\n\
             base_url = \"http://127.0.0.1:{}\"\napi = \"ollama\"\n",
            engine.port
        ),
    );
    s.agents_serving().await;
    ok(&s.ctl(&["gateway", "enable", "--port", &gw.to_string()]));
    ok(&s.ctl(&["memory", "profile", "set", "name", "Ada"]));
    ok(&s.ctl(&["memory", "profile", "set", "preferences", "short answers"]));
    let z = zip(work.path(), "dir", Some(&notes_dir()));
    let a = install(&s, &z);
    let b = install(&s, &z);
    let (ida, idb) = (
        a["id"].as_str().unwrap().to_owned(),
        b["id"].as_str().unwrap().to_owned(),
    );
    assert_ne!(ida, idb, "two installs are two apps at two origins");
    assert_eq!(a["name"], "Notes");
    assert_eq!(a["url"], format!("http://{ida}.apps.localhost:{port}/"));
    assert!(
        a["bundle_bytes"].as_u64().unwrap() > 100_000,
        "react was bundled: {a}"
    );
    let site = s.home.path().join("apps").join(&ida).join("site");
    assert!(site.join("app.js").is_file() && site.join("app.css").is_file());
    assert!(
        !site.join(".env.local").exists() && !site.join("App.tsx").exists(),
        "sources are not served"
    );

    // A conversation of A's.
    ok(&s.ctl(&["chat", "--app", &ida, "remember the invoice for ACME"]));
    let threads = ok(&s.ctl(&["--json", "chat", "threads"]));
    assert!(
        threads.contains(&format!("\"app_id\":\"{ida}\"")),
        "{threads}"
    );

    let (cookie_a, cookie_b) = (
        admit(port, &ida, &launch(&s, &ida)),
        admit(port, &idb, &launch(&s, &idb)),
    );
    assert_ne!(cookie_a, cookie_b);
    // A launch link works once.
    let used = launch(&s, &ida);
    admit(port, &ida, &used);
    let path = used.split_once(&format!(":{port}")).unwrap().1;
    let (st, _, body) = raw(port, "GET", &host(&ida, port), path, "", "");
    assert!(
        st == 403 && body.contains("used or has expired"),
        "{st} {body}"
    );

    // The sim's Editor window is indexed before the page searches it.
    let mut last = (0, Value::Null);
    let started = std::time::Instant::now();
    while !(last.0 == 200 && last.1["result"].to_string().contains("invoice-2026.md")) {
        assert!(
            started.elapsed() < T,
            "the activity was not indexed: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
        last = read_as(
            port,
            &ida,
            &ida,
            Some(&cookie_a),
            r#"{"ns":"data","method":"search","args":{"query":"invoice"}}"#,
        );
    }
    // The gateway is up (a page could reach it but for the app's CSP).
    let (st, _) = post_json(gw, "wrong-key", "/v1/chat/completions", "{}");
    assert_eq!(st, 401, "the gateway answers on {gw}");

    let other_origin = format!("http://{idb}.apps.localhost:{port}");
    let out = page_out(&format!(
        "{}#gw={gw}&other={idb}&other_origin={other_origin}",
        launch(&s, &ida)
    ));
    assert_eq!(
        out["genai"], true,
        "@google/genai bundled offline, the export's key defined: {out}"
    );
    let w = &out["activeWindow"]["value"];
    assert_eq!(
        (w["app"].as_str(), w["title"].as_str()),
        (Some("Editor"), Some("invoice-2026.md")),
        "{out}"
    );
    let recent = out["recent"]["value"].as_array().unwrap();
    assert!(
        recent
            .iter()
            .any(|r| r["url"] == "https://mail.example.com/"),
        "{out}"
    );
    assert!(out["time"]["value"]["epochMs"].as_i64().unwrap() > 0);
    assert_eq!(out["profile"]["value"]["name"], "Ada", "{out}");
    assert_eq!(
        out["preferences"]["value"]["preferences"], "short answers",
        "{out}"
    );
    assert!(out["profile"]["value"].get("preferences").is_none());
    let convs = out["conversations"]["value"].as_array().unwrap();
    assert_eq!(convs.len(), 1, "{out}");
    assert!(convs[0]
        .to_string()
        .contains("remember the invoice for ACME"));
    assert!(
        out["search"]["value"]
            .to_string()
            .contains("invoice-2026.md"),
        "{out}"
    );
    // What it must not do.
    assert_eq!(out["forgedAppId"]["ok"], false);
    assert!(out["forgedAppId"]["error"]
        .as_str()
        .unwrap()
        .contains("reads only its own data"));
    assert_eq!(
        out["overwrite"]["ok"], false,
        "window.cowork is read-only: {out}"
    );
    assert_eq!(
        out["otherOrigin"]["ok"], false,
        "another app's origin is blocked: {out}"
    );
    assert_eq!(out["gateway"]["ok"], false, "the gateway is blocked: {out}");
    assert_eq!(
        out["ownModels"]["value"][0], 405,
        "no model endpoint on the apps' port: {out}"
    );
    assert_eq!(
        out["grpc"]["value"][0], 405,
        "no gRPC on the apps' port: {out}"
    );
    assert_eq!(out["toolCall"]["value"][0], 400);
    assert!(out["toolCall"]["value"][1]
        .as_str()
        .unwrap()
        .contains("no mcp.callTool"));
    assert_eq!(out["storage"], format!("{ida}.apps.localhost:{port}"));

    // B's page: its own conversations only (none), and A's id refused.
    let out_b = page_out(&format!("{}#other={ida}", launch(&s, &idb)));
    assert_eq!(out_b["forgedAppId"]["ok"], false, "{out_b}");
    assert!(out_b["forgedAppId"]["error"]
        .as_str()
        .unwrap()
        .contains(&ida));
    assert_eq!(
        out_b["conversations"]["value"],
        Value::Array(vec![]),
        "{out_b}"
    );
    assert_eq!(out_b["activeWindow"]["value"]["app"], "Editor");

    // Forged requests: another app's origin, no origin, no cookie or the
    // other app's cookie, another Host, a path out of the site.
    let conv = r#"{"ns":"data","method":"conversations"}"#;
    let (st, v) = read_as(port, &ida, &idb, Some(&cookie_a), conv);
    assert_eq!(st, 403, "{v}");
    let (st, _, _) = raw(
        port,
        "POST",
        &host(&ida, port),
        "/__cowork/read",
        &hdrs(None, Some(&cookie_a)),
        conv,
    );
    assert_eq!(st, 403);
    let (st, v) = read_as(port, &ida, &ida, None, conv);
    assert_eq!(st, 401, "no cookie: {v}");
    let (st, v) = read_as(port, &ida, &ida, Some(&cookie_b), conv);
    assert_eq!(st, 401, "B's cookie is not A's: {v}");
    let (st, _, body) = raw(port, "GET", &host(&ida, port), "/app.js", "", "");
    assert_eq!(st, 401, "the app's files need its cookie too: {body}");
    let (st, v) = read_as(
        port,
        &idb,
        &idb,
        Some(&cookie_b),
        &format!(r#"{{"ns":"data","method":"conversations","args":{{"appId":"{ida}"}}}}"#),
    );
    assert_eq!(st, 403, "{v}");
    let (st, v) = read_as(port, &idb, &idb, Some(&cookie_b), conv);
    assert_eq!(
        (st, &v["result"]),
        (200, &Value::Array(vec![])),
        "B sees none of A's"
    );
    for h in [
        format!("127.0.0.1:{port}"),
        format!("evil.example:{port}"),
        format!("nosuch-000000.apps.localhost:{port}"),
    ] {
        let (st, _, _) = raw(port, "GET", &h, "/", &hdrs(None, Some(&cookie_a)), "");
        assert_eq!(st, 403, "{h}");
    }
    let (st, _, _) = raw(
        port,
        "GET",
        &host(&ida, port),
        "/%2e%2e/%2e%2e/config.toml",
        &hdrs(None, Some(&cookie_a)),
        "",
    );
    assert_eq!(st, 400);

    // Every call audited, per app.
    let audit = json_of(&s.ctl(&["--json", "apps", "audit", &ida, "--limit", "200"]));
    let entries = audit["entries"].as_array().unwrap();
    for m in [
        "context.activeWindow",
        "context.recentActivity",
        "user.profile",
        "data.search",
    ] {
        assert!(
            entries
                .iter()
                .any(|e| e["method"] == m && e["outcome"] == "ok"),
            "{m}: {audit}"
        );
    }
    assert!(entries
        .iter()
        .any(|e| e["method"] == "data.conversations" && e["outcome"] == "refused"));
    // B's audit holds B's calls only: its page searched once; A's page
    // and the indexing wait above searched as A.
    let searches = |a: &Value| {
        a["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["method"] == "data.search")
            .count()
    };
    let audit_b = json_of(&s.ctl(&["--json", "apps", "audit", &idb, "--limit", "200"]));
    assert_eq!(searches(&audit_b), 1, "{audit_b}");
    assert!(searches(&audit) >= 2, "{audit}");

    // Memory indexed A's conversation; removing A forgets it too.
    let acme = || {
        ok(&s.ctl(&[
            "--json",
            "memory",
            "search",
            "ACME",
            "--type",
            "conversation",
        ]))
    };
    wait_until(T, "A's conversation indexed", || acme().contains("[ACME]"));

    // Remove: files, record, conversations gone; the origin refused.
    let removed = json_of(&s.ctl(&["--json", "apps", "remove", &ida]));
    assert!(
        removed["files_deleted"].as_u64().unwrap() >= 10,
        "{removed}"
    );
    assert_eq!(removed["conversations_deleted"], 1);
    assert!(removed["messages_deleted"].as_u64().unwrap() >= 1);
    assert!(!s.home.path().join("apps").join(&ida).exists());
    let o = s.ctl(&["apps", "show", &ida]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no installed app"));
    assert!(!ok(&s.ctl(&["--json", "chat", "threads"])).contains(&ida));
    let after: Value = serde_json::from_str(acme().trim()).unwrap();
    assert_eq!(
        after["hits"],
        Value::Array(vec![]),
        "memory forgot A's conversation: {after}"
    );
    let (st, _, _) = raw(
        port,
        "GET",
        &host(&ida, port),
        "/",
        &hdrs(None, Some(&cookie_a)),
        "",
    );
    assert_eq!(st, 403);
    let (st, _, _) = raw(
        port,
        "GET",
        &host(&idb, port),
        "/",
        &hdrs(None, Some(&cookie_b)),
        "",
    );
    assert_eq!(st, 200, "the other app stays");
    let list = json_of(&s.ctl(&["--json", "apps", "list"]));
    assert_eq!(list["apps"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_starts_an_app_window_with_its_own_profile() {
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = suite(port, "");
    s.agents_serving().await;
    let z = zip(work.path(), "dir", Some(&notes_dir()));
    let id = install(&s, &z)["id"].as_str().unwrap().to_owned();
    let profile = s.home.path().join("apps").join(&id).join("profile");

    let printed = json_of(&s.ctl(&["--json", "apps", "open", &id, "--print"]));
    let argv: Vec<String> = serde_json::from_value(printed["command"].clone()).unwrap();
    let app_url = format!("--app=http://{id}.apps.localhost:{port}/?cowork_launch=");
    assert!(argv.iter().any(|a| a.starts_with(&app_url)), "{argv:?}");
    assert!(
        argv.contains(&format!("--user-data-dir={}", profile.display())),
        "{argv:?}"
    );

    // No display: the reason, and where the app is.
    let o = s.ctl_env(
        &["apps", "open", &id],
        &[("DISPLAY", None), ("WAYLAND_DISPLAY", None)],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("no display") && err.contains(&id),
        "{err}"
    );

    // A real window under Xvfb: its page reads through the lane.
    let x = Xvfb::start();
    let on_x = [("DISPLAY", Some(x.display.as_str()))];
    let opened = json_of(&s.ctl_env(&["--json", "apps", "open", &id], &on_x));
    let pid = opened["pid"].as_u64().unwrap() as i32;
    wait_until(T, "the app window's page read the lane", || {
        let a = json_of(&s.ctl(&["--json", "apps", "audit", &id]));
        a["entries"].as_array().is_some_and(|e| {
            e.iter()
                .any(|e| e["method"] == "context.activeWindow" && e["outcome"] == "ok")
        })
    });
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default();
    assert!(
        cmdline.contains("--app=http://") && cmdline.contains(&profile.display().to_string()),
        "{cmdline}"
    );
    assert!(
        profile.join("Default").is_dir() || profile.join("Local State").exists(),
        "Chromium's profile is the app's own"
    );
    let shown = json_of(&s.ctl(&["--json", "apps", "show", &id]));
    assert!(shown["last_opened_unix_ms"].as_i64().unwrap() > 0);
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );

    // A Chromium that fails at once: its exit status and last lines.
    std::fs::write(s.home.path().join("config.toml"), {
        let c = std::fs::read_to_string(s.home.path().join("config.toml")).unwrap();
        format!("{c}\n[browser]\nexecutable = \"/bin/false\"\n")
    })
    .unwrap();
    let o = s.ctl_env(&["apps", "open", &id], &on_x);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("/bin/false exited"),
        "{err}"
    );
}
