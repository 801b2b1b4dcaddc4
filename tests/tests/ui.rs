//! The web UI end to end (issue 23): coworkd serves the public services
//! over gRPC-Web on 127.0.0.1 once `coworkctl ui` turned it on, and the
//! page built into coworkd drives them in Debian's headless chromium
//! (Playwright for Python): the workers it shows, a stream's consent
//! switch, an approval, a chat answer streaming from the real Gemma 3 270M
//! (llama-cpp-python's server) — and the refusals: another Origin (in the
//! browser, holding the cookie, and by hand), no cookie, a used code, a
//! rebinding Host, a GET of a method.

use cowork_e2e::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// `GET path` on 127.0.0.1:`port` with `headers`; the status code.
fn http_status(port: u16, method: &str, path: &str, headers: &str) -> Option<u16> {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: 0\r\n{headers}\r\n"
    )
    .ok()?;
    let mut s = String::new();
    c.read_to_string(&mut s).ok()?;
    s.split_whitespace().nth(1)?.parse().ok()
}

/// Where the screenshots go: `$COWORK_UI_SCREENSHOTS` (docs/ui when the
/// docs are made again), else the suite's home.
fn screenshots_dir(s: &Suite) -> std::path::PathBuf {
    std::env::var("COWORK_UI_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| s.home.path().join("shots"))
}

fn config_port(s: &Suite) -> Option<u64> {
    // The `port = N` line of the `[ui]` table.
    let text = std::fs::read_to_string(s.home.path().join("config.toml")).ok()?;
    let ui = text.split("\n[ui]\n").nth(1)?;
    let line = ui
        .lines()
        .take_while(|l| !l.starts_with('['))
        .find(|l| l.starts_with("port"))?;
    line.split('=').nth(1)?.trim().parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_runs_the_suite_in_a_real_chromium_and_refuses_other_origins() {
    let engine = start_llama_cpp_python();
    let mut s = Suite::start(&format!(
        "[agents]\nprobe_ports = false\nmax_output_tokens = 40\n\
         [[agents.engines]]\nid = \"llamacpp\"\nbase_url = \"http://127.0.0.1:{}/v1\"\napi = \"openai\"\n\
         [agents.approval]\nauto_run = [\"time\"]\ndenylist_extra = [\"get_current_time\"]\n",
        engine.port
    ));
    s.wait_state("agents", "running", T).await;
    wait_engine_up(&s);
    assert_eq!(config_port(&s), None, "off until `coworkctl ui` first runs");

    let opened = s.ctl_json(&["ui", "--no-open"]);
    assert_eq!(opened["port_written"], true, "{opened}");
    assert_eq!(opened["started"], true, "{opened}");
    let port = opened["port"].as_u64().unwrap();
    assert_eq!(config_port(&s), Some(port), "[ui] port written");
    let url = opened["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{port}/#code=")),
        "{url}"
    );

    // A call waiting for a person, and a stream the page will switch on.
    assert_eq!(add_time_server(&s)["status"], "running");
    let op = s.run_time_task("What time is it in UTC?");
    assert_eq!(op["status"], "waiting_for_human", "{op}");
    let op_id = op["id"].as_str().unwrap().to_owned();
    ok(&s.ctl(&["capture", "disable", "clipboard"]));

    let shots = screenshots_dir(&s);
    let rss_before = proc_rss_bytes(s.coworkd_pid());
    let v: Value = python_json(
        "ui_browser.py",
        &[&url, &shots.display().to_string(), "clipboard"],
    );
    let rss_after = proc_rss_bytes(s.coworkd_pid());
    eprintln!(
        "ui: {v}\ncoworkd RSS {} -> {} KiB",
        rss_before / 1024,
        rss_after / 1024
    );
    assert!(
        v["console"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| !m.as_str().unwrap().starts_with("pageerror")),
        "{v}"
    );

    // Signed in: the code left the address bar, the cookie is out of the
    // page's reach, and the workers came over WatchHealth.
    assert_eq!(v["address_bar"], format!("http://127.0.0.1:{port}/#status"));
    assert_eq!(v["document_cookie"], "", "HttpOnly");
    assert_eq!(v["cookie_flags"]["httpOnly"], true);
    assert_eq!(v["cookie_flags"]["sameSite"], "Strict");
    assert_eq!(v["conn"], "live");
    let workers: Vec<(String, String)> = serde_json::from_value(v["workers"].clone()).unwrap();
    for w in ["capture", "agents"] {
        assert!(
            workers.contains(&(w.to_owned(), "running".to_owned())),
            "{workers:?}"
        );
    }

    // The switch changed what capture-agent records.
    assert_eq!(v["stream"]["before"], false, "{v}");
    assert_eq!(v["stream"]["after"], true, "{v}");
    let status = s.ctl_json(&["capture", "status"]);
    let clipboard = status["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "clipboard")
        .unwrap();
    assert_eq!(
        clipboard["enabled"], true,
        "the page enabled it, and no forged request disabled it again: {status}"
    );

    // The approval showed the server, the tool and the arguments, and the
    // click let the operation finish.
    assert_eq!(
        v["approval"]["title"], "time \u{203a} get_current_time",
        "{v}"
    );
    assert!(
        v["approval"]["arguments"].as_str().unwrap().contains('{'),
        "{v}"
    );
    assert_eq!(v["approval"]["badge"], "1", "{v}");
    let done = wait_for(T, "the approved operation to finish", || {
        let op = s.ctl_json(&["agent", "show", &op_id]);
        (op["status"] != "waiting_for_human" && op["status"] != "running").then_some(op)
    });
    assert_eq!(done["status"], "done", "{done}");

    // The chat answer streamed in pieces from the local model, with its
    // route and reason.
    let chat = &v["chat"];
    assert_eq!(chat["model"], "llamacpp/gemma3-270m", "{chat}");
    assert!(
        chat["route"]
            .as_str()
            .unwrap()
            .contains("gemma3-270m · prefers local"),
        "{chat}"
    );
    assert!(
        !chat["answer"].as_str().unwrap().trim().is_empty(),
        "{chat}"
    );
    // An answer the model ended at once was said to be empty, not shown
    // as nothing.
    for meta in chat["empty_answers"].as_array().unwrap() {
        assert!(meta.as_str().unwrap().contains("without a word"), "{chat}");
    }
    assert!(chat["pieces"].as_u64().unwrap() >= 2, "streamed: {chat}");
    assert!(chat["meta"].as_str().unwrap().contains("trace "), "{chat}");
    assert!(
        chat["meta"]
            .as_str()
            .unwrap()
            .contains("Retry with a smarter model"),
        "{chat}"
    );
    // "Retry with a smarter model" asked the next tier up (the cloud's free
    // tier, which has no key here: the answer says so).
    let retry = v["retry"].as_array().unwrap();
    assert!(retry[0].as_str().unwrap().contains("try harder"), "{v}");
    assert!(!retry[1].as_str().unwrap().is_empty(), "{v}");
    let sections: Vec<String> = serde_json::from_value(v["context_sections"].clone()).unwrap();
    assert!(
        sections.contains(&"Active window".to_owned()),
        "{sections:?}"
    );
    assert!(v["memory_note"].as_str().unwrap().contains("hits"), "{v}");

    // Refusals.
    let refused = |k: &str, code: u64, says: &str| {
        assert_eq!(v[k][0], code, "{k}: {v}");
        assert!(v[k][1].as_str().unwrap().contains(says), "{k}: {v}");
    };
    refused("code_again", 403, "used or expired");
    refused("no_cookie", 401, "not signed in");
    refused("other_origin", 403, "may not call");
    refused("no_origin", 403, "may not call");
    assert_eq!(v["evil_saw_cookie"], true, "cookies ignore ports: {v}");
    refused("stolen_cookie", 401, "not signed in");
    refused("rebinding_host", 421, "rebound.example");
    refused("get_method", 405, "GET");
    assert_eq!(v["preflight"][0], 405, "{v}");
    assert_eq!(
        v["preflight"][1],
        serde_json::json!([]),
        "no CORS header: {v}"
    );
    let forged = &v["forged_in_browser"];
    assert!(
        forged["cors"].as_str().unwrap().starts_with("blocked"),
        "{forged}"
    );
    assert!(
        v["without_cookie_page"]
            .as_str()
            .unwrap()
            .contains("coworkctl ui"),
        "{v}"
    );
    for shot in [
        "status",
        "capture",
        "approvals",
        "chat",
        "context",
        "memory",
        "signin",
    ] {
        let png = std::fs::read(shots.join(format!("{shot}.png"))).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 5_000,
            "{shot}.png"
        );
    }

    // The UI comes back on its port with coworkd; a reset signs out.
    s.stop_with(nix::sys::signal::Signal::SIGTERM);
    s.spawn_coworkd();
    let port16 = port as u16;
    wait_until(T, "the UI back on its port", || {
        http_status(port16, "GET", "/", "") == Some(200)
    });
    let again = s.ctl_json(&["ui", "--no-open"]);
    assert_eq!(
        (again["started"].clone(), again["port_written"].clone()),
        (false.into(), false.into())
    );
    assert_eq!(again["port"], port);
    // ui-token: the cookie's value, then the page's key.
    let token = std::fs::read_to_string(s.home.path().join("ui-token")).unwrap();
    let call = |token: &str| {
        let mut lines = token.lines();
        let (cookie, key) = (lines.next().unwrap(), lines.next().unwrap());
        http_status(
            port16,
            "POST",
            "/cowork.system.v1.System/Status",
            &format!(
                "Origin: http://127.0.0.1:{port}\r\nCookie: cowork_ui_{port}={cookie}\r\n\
                 x-cowork-ui-key: {key}\r\nContent-Type: application/grpc-web+proto\r\n"
            ),
        )
    };
    let mode = std::fs::metadata(s.home.path().join("ui-token"))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    // What `coworkctl ui` opens: a private page leading to the address.
    let open_file = again["open_file"].as_str().unwrap();
    let page = std::fs::read_to_string(open_file).unwrap();
    assert!(page.contains(again["url"].as_str().unwrap()), "{page}");
    let mode = std::fs::metadata(open_file).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    assert_eq!(call(&token), Some(200), "the cookie outlives a restart");
    ok(&s.ctl(&["ui", "--no-open", "--reset"]));
    assert_eq!(call(&token), Some(401), "a reset signs the old cookie out");
    let new_token = std::fs::read_to_string(s.home.path().join("ui-token")).unwrap();
    assert_ne!(new_token, token);
    assert_eq!(call(&new_token), Some(200));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_taken_port_is_reported_with_the_key_to_change() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let s = Suite::start(&format!("[ui]\nport = {port}\n"));
    s.wait_state("capture", "running", T).await;
    let out = s.ctl(&["ui", "--no-open"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("[ui] port"),
        "{err}"
    );
    // Freed, the same port works without a restart, and nothing was
    // rewritten.
    drop(taken);
    let opened = s.ctl_json(&["ui", "--no-open"]);
    assert_eq!(opened["port"], port);
    assert_eq!(opened["port_written"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_management_screens_download_configure_run_and_retry() {
    // Capture fails at start: the page must show why, and Retry.
    let failing = "[workers.capture]\ncommand = [\"sh\", \"-c\", \"echo cannot open the display >&2; exit 3\"]\n";
    let s = Suite::start(&format!("{FAST}{failing}"));
    s.wait_state("capture", "failed", T).await;
    s.wait_state("agents", "running", T).await;
    // Fixed, but not restarted: that is the page's Retry.
    s.write_config(FAST);

    // A model file served slowly enough to watch its bar move.
    let root = tempfile::tempdir().unwrap();
    let gemma = gemma_model_path();
    let file = root.path().join("gemma.gguf");
    if std::fs::hard_link(&gemma, &file).is_err() {
        std::fs::copy(&gemma, &file).unwrap();
    }
    std::fs::write(
        root.path().join("page.html"),
        "<!doctype html><title>Cowork UI log</title>\
         <body style=\"background:#3b6ea5;color:#fff;font:48px sans-serif\"><h1>A page the agent opened</h1>",
    )
    .unwrap();
    let nginx = Nginx::start(root.path(), "40m");
    let sha = sha256sum(&file);

    // A catalog entry with a secret (the auth server checks its hash), a
    // flow to run, and one browser action for the log.
    let secret = format!("tok-ui-{}", std::process::id());
    let digest = {
        use sha2::Digest;
        sha2::Sha256::digest(secret.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let catalog = s.home.path().join("mcp/catalog.d");
    std::fs::create_dir_all(&catalog).unwrap();
    let server = repo_root().join("tests/python/auth_mcp_server.py");
    std::fs::write(
        catalog.join("demo.json"),
        serde_json::json!({
            "id": "demo", "title": "Auth demo", "description": "needs DEMO_TOKEN",
            "command": [python().display().to_string(), server.display().to_string(), "stdio", digest],
            "config": [{"key": "token", "title": "Demo token", "secret": true,
                        "required": true, "env": "DEMO_TOKEN"}]
        })
        .to_string(),
    )
    .unwrap();
    add_time_server(&s);
    let flow = s.home.path().join("flow.json");
    std::fs::write(
        &flow,
        r#"{"name": "UTC now", "steps": [{"id": "now", "type": "mcpToolCall", "server": "time",
            "tool": "get_current_time", "arguments": {"timezone": "UTC"}}]}"#,
    )
    .unwrap();
    ok(&s.ctl(&["automations", "add", &flow.display().to_string()]));
    ok(&s.ctl(&["browser", "open", &nginx.url("/page.html")]));
    let shot = s.home.path().join("shot.png");
    ok(&s.ctl(&["browser", "screenshot", &shot.display().to_string()]));

    let url = s.ctl_json(&["ui", "--no-open"])["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let shots = screenshots_dir(&s);
    let v = python_json(
        "ui_manage.py",
        &[
            &url,
            &shots.display().to_string(),
            &nginx.url("/slow/gemma.gguf"),
            &sha,
            &secret,
        ],
    );
    eprintln!("ui: {v}");
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");

    // The banner said what failed and why; Retry brought capture back.
    assert!(
        v["banner"]
            .as_str()
            .unwrap()
            .contains("Capture couldn\u{2019}t start"),
        "{v}"
    );
    assert!(
        v["banner_class"].as_str().unwrap().contains("failed"),
        "{v}"
    );
    assert!(
        v["capture_reason"]
            .as_str()
            .unwrap()
            .contains("cannot open the display"),
        "the child's last stderr line: {v}"
    );
    assert_eq!(v["capture_after_retry"], "running", "{v}");
    s.wait_state("capture", "running", T).await;

    // The bar moved before the end; the file is there, verified, and has a
    // fit verdict.
    let (done, total) = (
        v["progress_seen"][0].as_u64().unwrap(),
        v["progress_seen"][1].as_u64().unwrap(),
    );
    assert!(0 < done && done < total, "{v}");
    let fit = v["fit"].as_str().unwrap();
    assert!(
        ["GREEN", "YELLOW", "RED"]
            .iter()
            .any(|l| fit.starts_with(l)),
        "{fit}"
    );
    let list = s.ctl_json(&["models", "list"]);
    assert!(list.to_string().contains("ui-gemma.gguf"), "{list}");

    // The secret went in through a password field, connected the server
    // (the auth server checks it), and is nowhere to be read back.
    assert_eq!(v["secret_field_type"], "password");
    assert!(
        v["server_row"]
            .as_str()
            .unwrap()
            .contains("DEMO_TOKEN: ••••"),
        "{v}"
    );
    assert_eq!(v["secret_in_page"], false, "{v}");
    let servers = ok(&s.ctl(&["--json", "mcp", "list"]));
    assert!(!servers.contains(&secret), "{servers}");
    assert!(!std::fs::read_to_string(s.home.path().join("config.toml"))
        .unwrap()
        .contains(&secret));

    // The flow ran from the page; the log shows the navigation.
    let run = v["run_row"].as_str().unwrap();
    assert!(run.contains("UTC now") && run.contains("done"), "{v}");
    assert_eq!(v["run_steps"], "now (mcpToolCall): done", "{v}");
    assert!(
        v["log_rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "navigate"),
        "{v}"
    );
    // The screenshot action's image, fetched by its hash, as the page
    // showed it.
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(v["log_image"][0], "screenshot", "{v}");
    assert!(v["log_image"][1].as_u64().unwrap() > 100, "{v}");
    assert!(v["log_image"][2].as_u64().unwrap() > 100, "{v}");
    let kept = s.home.path().join("browser-screenshots");
    assert!(
        std::fs::read_dir(&kept)
            .unwrap()
            .any(|f| std::fs::read(f.unwrap().path()).unwrap() == png),
        "the PNG coworkctl saved is the one kept"
    );
}

#[test]
fn the_page_codec_reads_and_writes_what_prost_does_and_frames_survive_any_cut() {
    use cowork_proto::pb;
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let status = pb::system::StatusResponse {
        workers: vec![pb::system::WorkerStatus {
            name: "agents".into(),
            state: pb::system::WorkerState::Failed as i32,
            pid: 42,
            restarts: 5,
            uptime_ms: 1_234_567_890_123,
            cpu_percent: 1.5,
            reason: "exited with code 3 \u{2014} \u{ab}\u{fc}n\u{ef}code\u{bb} \u{1f980}".into(),
            last_exit_code: Some(-9),
            last_signal: None,
            last_log_lines: vec!["a".into(), String::new(), "c".into()],
            ..Default::default()
        }],
        coworkd_pid: 7,
        coworkd_rss_bytes: 1 << 52,
        home: "/h".into(),
        ..Default::default()
    };
    let chunk = pb::chat::ChatChunk {
        chunk: Some(pb::chat::chat_chunk::Chunk::Route(
            pb::chat::RouteDecision {
                model: "m".into(),
                cost_estimate_usd: 0.0125,
                reload_ms: Some(0),
                ..Default::default()
            },
        )),
    };
    let add = pb::mcp::AddServerRequest {
        name: "d".into(),
        command: vec!["python".into(), "-m".into()],
        env: [("A".into(), "1".into()), ("__proto__".into(), "x".into())].into(),
        config: [("token".into(), "t".into())].into(),
        ..Default::default()
    };
    let span = pb::system::TraceSpan {
        start_unix_us: -5,
        duration_us: 1_700_000_000_000_000,
        ..Default::default()
    };
    let files = [
        ("cowork.system.v1.StatusResponse", status.encode_to_vec()),
        ("cowork.chat.v1.ChatChunk", chunk.encode_to_vec()),
        ("cowork.mcp.v1.AddServerRequest", add.encode_to_vec()),
        ("cowork.system.v1.TraceSpan", span.encode_to_vec()),
    ];
    for (t, b) in &files {
        std::fs::write(dir.path().join(format!("{t}.bin")), b).unwrap();
    }
    let descriptors = dir.path().join("descriptors.pb");
    std::fs::write(&descriptors, pb::FILE_DESCRIPTOR_SET).unwrap();
    let out = std::process::Command::new("node")
        .arg(repo_root().join("tests/js/codec_check.mjs"))
        .arg(&descriptors)
        .arg(dir.path())
        .args(files.iter().map(|(t, _)| *t))
        .output()
        .expect("run node (scripts/peers.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &v["decoded"];
    let w = &d["cowork.system.v1.StatusResponse"]["workers"][0];
    assert_eq!(w["state"], "WORKER_STATE_FAILED", "{v}");
    assert_eq!(w["last_exit_code"], -9, "{v}");
    assert!(w.get("last_signal").is_none(), "absent stays absent: {v}");
    assert_eq!(w["uptime_ms"], 1_234_567_890_123u64, "{v}");
    assert_eq!(w["reason"], status.workers[0].reason, "{v}");
    assert_eq!(w["last_log_lines"], serde_json::json!(["a", "", "c"]));
    assert_eq!(
        d["cowork.system.v1.StatusResponse"]["coworkd_rss_bytes"],
        1u64 << 52
    );
    let route = &d["cowork.chat.v1.ChatChunk"];
    assert_eq!(route["route"]["reload_ms"], 0, "present though zero: {v}");
    assert_eq!(route["route"]["cost_estimate_usd"], 0.0125);
    assert!(route.get("delta").is_none(), "{v}");
    let a = &d["cowork.mcp.v1.AddServerRequest"];
    assert_eq!(
        a["env"]["__proto__"], "x",
        "a map key, not a prototype: {v}"
    );
    assert_eq!(a["config"]["token"], "t");
    assert_eq!(d["cowork.system.v1.TraceSpan"]["start_unix_us"], -5);
    assert_eq!(
        d["cowork.system.v1.TraceSpan"]["duration_us"],
        1_700_000_000_000_000u64
    );
    // What the page writes, prost reads back as the same message.
    let bytes = |t: &str| {
        let h = v["reencoded"][t].as_str().unwrap();
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
    };
    assert_eq!(
        pb::system::StatusResponse::decode(&bytes("cowork.system.v1.StatusResponse")[..]).unwrap(),
        status
    );
    assert_eq!(
        pb::chat::ChatChunk::decode(&bytes("cowork.chat.v1.ChatChunk")[..]).unwrap(),
        chunk
    );
    assert_eq!(
        pb::mcp::AddServerRequest::decode(&bytes("cowork.mcp.v1.AddServerRequest")[..]).unwrap(),
        add
    );
    assert_eq!(
        pb::system::TraceSpan::decode(&bytes("cowork.system.v1.TraceSpan")[..]).unwrap(),
        span
    );
    // Four messages and the trailer, whatever the chunking.
    assert_eq!(v["frames"]["messages"], 5, "{v}");
    assert_eq!(
        v["frames"]["cuts"].as_u64().unwrap(),
        v["frames"]["bytes"].as_u64().unwrap() + 1
    );
}
