//! The local OpenAI-compatible API end to end: the official `openai` Python
//! client (tests/python/gateway_client.py) against the gateway, routed to
//! two real llama.cpp servers (Gemma 3 270M for chat, all-MiniLM-L6-v2 for embeddings);
//! keys, foreign Host headers on every path, CORS, persistence across a
//! restart, and the key kept out of every file.

use cowork_e2e::*;
use serde_json::Value;
use std::time::Duration;

/// `GET /v1/models` with `key` as Bearer: the status code.
fn status_with_key(port: u16, key: &str) -> u16 {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        c,
        "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut head = String::new();
    c.read_to_string(&mut head).unwrap();
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_client_lists_chats_streams_and_embeds_through_the_gateway() {
    let chat = start_llama(&[]);
    let embed = start_llama_model(&minilm_model_path(), "all-minilm-l6-v2", &["--embedding"]);
    let cloud_log = tempfile::NamedTempFile::new().unwrap();
    let cloud = cloud_standin(cloud_log.path());
    let s = Suite::start_with_env(
        Suite::temp_home(),
        &format!(
            "[agents]\nprobe_ports = false\n\
             [[agents.engines]]\nid = \"chat\"\nbase_url = \"http://127.0.0.1:{}/v1\"\napi = \"openai\"\n\
             [[agents.engines]]\nid = \"embed\"\nbase_url = \"http://127.0.0.1:{}/v1\"\napi = \"openai\"\n\
             [agents.providers.openrouter]\nbase_url = \"http://127.0.0.1:{}/v1\"\n",
            chat.port, embed.port, cloud.port
        ),
        vec![
            ("OPENROUTER_API_KEY".into(), Some("or-test-key".into())),
            ("GEMINI_API_KEY".into(), None),
        ],
    );
    s.wait_state("agents", "running", Duration::from_secs(30))
        .await;

    // Off by default.
    let st: Value = serde_json::from_str(&ok(&s.ctl(&["gateway", "status", "--json"]))).unwrap();
    assert_eq!(st["enabled"], false, "{st}");
    assert_eq!(st["url"], "http://127.0.0.1:7339");
    // An engine's default port is refused.
    let o = s.ctl(&["gateway", "enable", "--port", "11434"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("local engine's default port"));

    let port = free_port();
    ok(&s.ctl(&["gateway", "enable", "--port", &port.to_string()]));
    let st: Value = serde_json::from_str(&ok(&s.ctl(&["gateway", "status", "--json"]))).unwrap();
    let url = format!("http://127.0.0.1:{port}");
    assert_eq!(st["enabled"], true, "{st}");
    assert_eq!(st["listening"], true, "{st}");
    assert_eq!(st["url"], url.as_str());
    let key = ok(&s.ctl(&["gateway", "key"])).trim().to_string();
    assert!(key.starts_with("cowork-") && key.len() > 40, "{key}");

    let api = format!("{url}/v1");
    let r = python_json(
        "gateway_client.py",
        &["check", &api, &key, "gemma3-270m", "all-minilm-l6-v2"],
    );
    let models: Vec<&str> = r["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(
        models.contains(&"gemma3-270m") && models.contains(&"all-minilm-l6-v2"),
        "{r}"
    );
    assert!(
        ["stop", "length"].contains(&r["chat"]["finish"].as_str().unwrap_or("")),
        "{r}"
    );
    // Greedy decoding: the stream carries the same text in pieces (the
    // engine's prompt cache may change a late token, so the start).
    let (whole, streamed) = (
        r["chat"]["content"].as_str().unwrap_or(""),
        r["stream"]["text"].as_str().unwrap_or(""),
    );
    assert!(
        !whole.is_empty() && r["stream"]["chunks"].as_u64().unwrap() >= 2,
        "{r}"
    );
    let common = whole
        .chars()
        .zip(streamed.chars())
        .take_while(|(a, b)| a == b)
        .count();
    assert!(common >= whole.chars().count().min(10), "{r}");
    assert!(r["completion"].is_string(), "{r}");
    let dims: Vec<u64> = r["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap())
        .collect();
    assert_eq!(dims, [384, 384], "all-MiniLM-L6-v2 vectors: {r}");
    assert_eq!(r["wrong_key"], 401, "{r}");
    assert_eq!(r["wrong_key_chat"], 401, "{r}");
    assert_eq!(r["x_api_key"], 200, "{r}");
    assert_eq!(r["x_api_key_wrong"], 401, "{r}");
    assert_eq!(r["unknown_model"], 404, "{r}");
    for (path, status) in r["foreign_host"].as_object().unwrap() {
        assert_eq!(status, 403, "foreign Host on {path}: {r}");
    }
    assert_eq!(r["preflight"]["status"], 204, "{r}");
    assert_eq!(r["preflight"]["allow_origin"], "*");
    assert!(r["preflight"]["allow_methods"]
        .as_str()
        .unwrap()
        .contains("POST"));
    assert!(r["preflight"]["allow_headers"]
        .as_str()
        .unwrap()
        .contains("authorization"));
    for (path, status) in r["docs_without_key"].as_object().unwrap() {
        assert_eq!(status, 401, "{path} without the key: {r}");
    }
    assert_eq!(r["openapi"]["status"], 200);
    assert_eq!(
        r["openapi"]["paths"],
        serde_json::json!([
            "/chat/completions",
            "/completions",
            "/embeddings",
            "/models"
        ])
    );

    // Cloud models (a provider with a key) are listed and routed there,
    // with the provider's key and its own model id; Gemini has no key here.
    assert!(
        models.contains(&"openrouter/anthropic/claude-sonnet-4.5"),
        "{r}"
    );
    assert!(!models.iter().any(|m| m.starts_with("gemini/")), "{r}");
    let (status, body) = post_json(
        port,
        &key,
        "/v1/chat/completions",
        r#"{"model":"openrouter/anthropic/claude-sonnet-4.5","messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("from the cloud stand-in"), "{body}");
    let sent: Value = serde_json::from_str(
        std::fs::read_to_string(cloud_log.path())
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(sent["path"], "/v1/chat/completions");
    assert_eq!(sent["authorization"], "Bearer or-test-key");
    assert_eq!(sent["body"]["model"], "anthropic/claude-sonnet-4.5");
    // A body that is not JSON, or too large, is refused with the reason.
    let (status, body) = post_json(port, &key, "/v1/chat/completions", "{not json");
    assert_eq!(status, 400, "{body}");
    let big = format!(
        r#"{{"model":"gemma3-270m","prompt":"{}"}}"#,
        "x".repeat(17 << 20)
    );
    let (status, _) = post_json(port, &key, "/v1/completions", &big);
    assert_eq!(status, 413);

    // The key lives only in the credential store.
    assert!(files_containing(s.home.path(), key.as_bytes()).is_empty());

    // On stays on across an agents-agent crash.
    let before = s.worker("agents").await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(before.pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    s.wait_worker("agents", "running again", Duration::from_secs(30), |w| {
        w.pid != before.pid && state(w) == "running"
    })
    .await;
    wait_until(Duration::from_secs(15), "the gateway back", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert_eq!(ok(&s.ctl(&["gateway", "key"])).trim(), key);
    // Rotating makes the old key fail.
    let new = ok(&s.ctl(&["gateway", "key", "--rotate"]))
        .trim()
        .to_string();
    assert_ne!(new, key);
    assert_eq!(status_with_key(port, &key), 401);
    assert_eq!(status_with_key(port, &new), 200);

    // Off: nothing listens.
    let st: Value = serde_json::from_str(&ok(&s.ctl(&["gateway", "disable", "--json"]))).unwrap();
    assert_eq!(st["enabled"], false);
    wait_until(Duration::from_secs(5), "the port closed", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    });
}
