//! Chat end to end through coworkd: `coworkctl chat` streams an answer
//! from an engine found by detection, with Layer 1 activity context,
//! threads persisted, "try harder" routed up a tier, and a dead engine
//! ending the stream with an error chunk at once. The engine here is a
//! stand-in speaking Ollama's wire format (named as one: Ollama cannot run
//! here); `chat_llama.rs` runs the same path against the real llama.cpp
//! server.

use cowork_e2e::*;
use cowork_proto::pb::chat::{chat_client::ChatClient, SendMessageRequest};
use serde_json::Value;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn standin(delay_ms: u32, log: &std::path::Path) -> OllamaStandin {
    ollama_standin(&["standin-model"], delay_ms, Some(log))
}

fn config(port: u16, home: &std::path::Path, script: &str) -> String {
    std::fs::write(home.join("script.jsonl"), script).unwrap();
    format!(
        "{FAST}\n[agents]\nprobe_ports = false\n\
         [[agents.engines]]\nid = \"ollama\"\nbase_url = \"http://127.0.0.1:{port}\"\napi = \"ollama\"\n\
         [capture]\nsource = \"sim\"\nsim_script = \"script.jsonl\"\nsim_speed = 0\n"
    )
}

fn json_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[tokio::test]
async fn chat_streams_with_activity_context_and_persists_the_thread() {
    let home = Suite::temp_home();
    let log = home.path().join("requests.jsonl");
    let engine = standin(0, &log);
    let script = "{\"t_ms\":0,\"kind\":\"window\",\"app\":\"Firefox\",\"title\":\"Rust docs\",\"url\":\"https://doc.rust-lang.org\"}\n";
    let cfg = config(engine.port, home.path(), script);
    let suite = Suite::start_in(home, &cfg);
    suite.wait_state("agents", "running", T).await;
    wait_until(T, "capture replayed", || {
        let o = suite.ctl(&["--json", "capture", "recent"]);
        String::from_utf8_lossy(&o.stdout).contains("Rust docs")
    });

    let out = suite.ctl(&["chat", "what", "am", "I", "reading?"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "You said: what am I reading?\n"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("→ ollama/standin-model via ollama (prefers local, simple"),
        "{err}"
    );

    // Layer 1: the active window went to the model as a system block.
    let sent: Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    let system = &sent["messages"][0];
    assert_eq!(system["role"], "system");
    assert!(
        system["content"]
            .as_str()
            .unwrap()
            .contains("Active window now: Firefox — Rust docs <https://doc.rust-lang.org>"),
        "{sent}"
    );

    // --json: typed chunks in order; the thread continues.
    let chunks = json_lines(&suite.ctl(&["--json", "chat", "more"]).stdout);
    let route = &chunks[0]["route"];
    let thread = route["thread_id"].as_str().unwrap().to_owned();
    assert!(chunks[1..].iter().any(|c| c["delta"].is_string()));
    assert_eq!(chunks.last().unwrap()["finish"], "stop");
    assert!(chunks.iter().any(|c| c["usage"]["prompt_tokens"] == 11));
    let again = json_lines(
        &suite
            .ctl(&["--json", "chat", "--thread", &thread, "and again"])
            .stdout,
    );
    assert_eq!(again[0]["route"]["thread_id"], thread.as_str());
    let sent: Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "user"],
        "history is sent: {sent}"
    );

    let shown = json_lines(&suite.ctl(&["--json", "chat", "show", &thread]).stdout);
    assert_eq!(shown.len(), 4);
    assert_eq!(shown[1]["content"], "You said: more");
    assert_eq!(shown[1]["model"], "ollama/standin-model");
    let threads = json_lines(&suite.ctl(&["--json", "chat", "threads"]).stdout);
    assert_eq!(threads.len(), 2);

    // Try harder: the answer is retried one tier up, in the same ask; no
    // cloud provider has a key here, which the error says (and nothing is
    // sent anywhere).
    let answer_id = shown[1]["id"].as_str().unwrap();
    let retry = suite.ctl(&["--json", "chat", "--retry-smarter", answer_id, "x"]);
    assert_eq!(retry.status.code(), Some(1));
    let r = json_lines(&retry.stdout);
    assert_eq!(r[0]["route"]["model"], "gemini/gemini-2.5-flash");
    assert_eq!(r[0]["route"]["ask_id"], shown[1]["ask_id"]);
    assert!(r[0]["route"]["reason"]
        .as_str()
        .unwrap()
        .contains("try harder"));
    assert!(r.last().unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("set GEMINI_API_KEY or [agents.providers.gemini] api_key"));

    // The ledger: each answered local call, nothing spent.
    let usage: Value =
        serde_json::from_slice(&suite.ctl(&["--json", "chat", "usage"]).stdout).unwrap();
    assert_eq!(usage["calls_this_month"], 3, "{usage}");
    assert_eq!(usage["plan"], "free");
    assert_eq!(usage["spent_this_month_usd"], 0.0);
    assert_eq!(usage["free_tokens_this_month"], 0);
    assert_eq!(usage["cloud_providers"], serde_json::json!([]));
}

#[tokio::test]
async fn a_dead_engine_mid_answer_ends_the_stream_with_an_error_at_once() {
    let home = Suite::temp_home();
    let log = home.path().join("requests.jsonl");
    let mut engine = standin(300, &log);
    let cfg = config(engine.port, home.path(), "");
    let suite = Suite::start_in(home, &cfg);
    suite.wait_state("agents", "running", T).await;
    let mut chat = ChatClient::new(suite.channel());
    let mut stream = chat
        .send_message(SendMessageRequest {
            text: "one two three four five six seven eight nine ten".into(),
            ..Default::default()
        })
        .await
        .expect("send")
        .into_inner();
    let (msg, after) = error_after_kill(&mut stream, || {
        let _ = engine.child.kill();
    })
    .await
    .expect("the stand-in always answers with text");
    eprintln!("error chunk {after:?} after the kill: {msg}");
    assert!(after < Duration::from_secs(1), "{after:?}");
    assert!(msg.contains("engine"), "{msg}");
}

#[tokio::test]
async fn with_no_engine_agents_is_degraded_keeps_serving_and_recovers() {
    let home = Suite::temp_home();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let cfg = config(port, home.path(), "");
    let suite = Suite::start_in(home, &cfg);
    let w = suite.wait_state("agents", "degraded", T).await;
    assert!(
        w.reason.starts_with("no model engine reachable"),
        "{}",
        w.reason
    );
    // Everything else still serves.
    assert!(suite.ctl(&["chat", "threads"]).status.success());
    assert!(suite.ctl(&["engines"]).status.success());
    let out = suite.ctl(&["chat", "hello"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no model engine reachable"), "{err}");
    let empty = suite.ctl(&["chat", " "]);
    assert_eq!(empty.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("empty"));

    // An engine appears: the next message finds it and agents is running.
    let log = suite.home.path().join("requests.jsonl");
    let engine = standin(0, &log);
    suite.write_config(&config(engine.port, suite.home.path(), ""));
    wait_until(T, "a chat answered by the new engine", || {
        suite.ctl(&["chat", "hello"]).status.success()
    });
    suite.wait_state("agents", "running", T).await;
}

#[tokio::test]
async fn background_jobs_go_to_the_cron_instance_and_chats_never_do() {
    let home = Suite::temp_home();
    let (main_log, cron_log) = (
        home.path().join("main.jsonl"),
        home.path().join("cron.jsonl"),
    );
    let main = standin(0, &main_log);
    let cron = standin(0, &cron_log);
    let cfg = format!(
        "{FAST}\n[agents]\nprobe_ports = false\n\
         [[agents.engines]]\nid = \"ollama\"\nbase_url = \"http://127.0.0.1:{}\"\napi = \"ollama\"\n\
         [[agents.engines]]\nid = \"ollama-cron\"\nbase_url = \"http://127.0.0.1:{}\"\napi = \"ollama\"\n",
        main.port, cron.port
    );
    let suite = Suite::start_in(home, &cfg);
    suite.wait_state("agents", "running", T).await;
    let lines = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let bg = json_lines(
        &suite
            .ctl(&["--json", "chat", "--background", "nightly digest"])
            .stdout,
    );
    assert_eq!(bg[0]["route"]["engine"], "ollama-cron", "{bg:?}");
    assert_eq!(bg.last().unwrap()["finish"], "stop");
    assert_eq!((lines(&main_log), lines(&cron_log)), (0, 1));
    let fg = json_lines(&suite.ctl(&["--json", "chat", "hello"]).stdout);
    assert_eq!(fg[0]["route"]["engine"], "ollama");
    assert_eq!((lines(&main_log), lines(&cron_log)), (1, 1));
    // With no cron instance up, a background job runs on the main one.
    drop(cron);
    wait_until(T, "a background job answered by the main instance", || {
        let o = json_lines(
            &suite
                .ctl(&["--json", "chat", "--background", "again"])
                .stdout,
        );
        o.first().is_some_and(|r| r["route"]["engine"] == "ollama")
            && o.last().is_some_and(|f| f["finish"] == "stop")
    });
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_engine_request() {
    let home = Suite::temp_home();
    let log = home.path().join("requests.jsonl");
    let engine = standin(200, &log);
    let cfg = config(engine.port, home.path(), "");
    let suite = Suite::start_in(home, &cfg);
    suite.wait_state("agents", "running", T).await;
    let words = (1..=40)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut chat = ChatClient::new(suite.channel());
    let mut stream = chat
        .send_message(SendMessageRequest {
            text: words,
            ..Default::default()
        })
        .await
        .expect("send")
        .into_inner();
    use cowork_proto::pb::chat::chat_chunk::Chunk;
    while !matches!(
        stream.message().await.expect("chunk").expect("open").chunk,
        Some(Chunk::Delta(_))
    ) {}
    drop(stream);
    // The engine's connection closes long before its 42 words (8 s) are
    // out. (Wait without blocking this runtime: it carries the reset.)
    let deadline = std::time::Instant::now() + T;
    let gone = loop {
        let found = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["event"] == "client_gone");
        if let Some(g) = found {
            break g;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the engine never saw its client go"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("the engine stopped after {} of 42 words", gone["sent"]);
    assert!(gone["sent"].as_u64().unwrap() < 20, "{gone}");
}
