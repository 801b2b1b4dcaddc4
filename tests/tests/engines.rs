//! Local engine detection end to end: `coworkctl engines` through coworkd
//! to agents-agent, which probes a stand-in speaking Ollama's wire format
//! (named as one: Ollama itself cannot run here).

use cowork_e2e::*;
use serde_json::Value;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn engines(suite: &Suite) -> Vec<Value> {
    let out = suite.ctl(&["--json", "engines"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    v["engines"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn configured_engines_are_probed_and_public_hosts_never_are() {
    let ollama = ollama_standin(&["qwen3:8b", "llama3.2:3b"], 0, None);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let config = format!(
        "{FAST}\n[agents]\nprobe_ports = false\n\
         [[agents.engines]]\nid = \"ollama\"\nbase_url = \"http://127.0.0.1:{}\"\napi = \"ollama\"\n\
         [[agents.engines]]\nid = \"llamacpp\"\nbase_url = \"http://127.0.0.1:{closed_port}/v1\"\napi = \"openai\"\n\
         [[agents.engines]]\nid = \"remote\"\nbase_url = \"http://203.0.113.7:11434\"\napi = \"ollama\"\n",
        ollama.port
    );
    let suite = Suite::start(&config);
    suite.wait_state("agents", "running", T).await;
    let list = engines(&suite);
    let by = |k: &str| {
        list.iter()
            .find(|e| e["key"] == k)
            .cloned()
            .unwrap_or_else(|| panic!("{k} in {list:?}"))
    };
    let o = by("ollama");
    assert_eq!(o["health"], "up");
    assert_eq!(o["models"], serde_json::json!(["qwen3:8b", "llama3.2:3b"]));
    assert_eq!(
        (o["role"].as_str(), o["origin"].as_str()),
        (Some("main"), Some("config"))
    );
    let l = by("llamacpp");
    assert_eq!(l["health"], "down");
    assert!(l["error"].as_str().unwrap().contains("connect"), "{l}");
    let r = by("remote");
    assert_eq!(r["health"], "unknown", "a public host is never probed");
    assert!(r["error"]
        .as_str()
        .unwrap()
        .contains("not a local or LAN host"));
    // Each main instance gets a cron companion one port up.
    let c = by(&format!("ollama-cron:{}", ollama.port + 1));
    assert_eq!(
        (c["role"].as_str(), c["origin"].as_str()),
        (Some("cron"), Some("companion"))
    );
    assert_eq!(c["health"], "down");
    assert_eq!(
        by("remote-cron:11435")["health"],
        "unknown",
        "nor is its companion"
    );
    // The table, for people.
    let t = suite.ctl(&["engines"]);
    let text = String::from_utf8_lossy(&t.stdout);
    assert!(text.contains("2 (qwen3:8b, llama3.2:3b)"), "{text}");
}

#[tokio::test]
async fn default_ports_and_overrides() {
    let ollama = ollama_standin(&["gemma3:1b"], 0, None);
    let config = format!(
        "{FAST}\n[agents]\nprobe_ports = true\n\
         engine_urls = {{ \"ollama:11434\" = \"http://127.0.0.1:{}\" }}\n",
        ollama.port
    );
    let suite = Suite::start(&config);
    suite.wait_state("agents", "running", T).await;
    let list = engines(&suite);
    for key in [
        "ollama:11434",
        "lmstudio:1234",
        "vllm:8000",
        "llamacpp:8080",
        "jan:1337",
        "koboldcpp:5001",
    ] {
        let e = list
            .iter()
            .find(|e| e["key"] == key)
            .unwrap_or_else(|| panic!("{key} in {list:?}"));
        assert_eq!(e["origin"], "port");
        assert!(e["base_url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"));
    }
    let o = list.iter().find(|e| e["key"] == "ollama:11434").unwrap();
    assert_eq!(
        o["base_url"],
        format!("http://127.0.0.1:{}", ollama.port),
        "the override replaces the default URL"
    );
    assert_eq!(o["health"], "up");
    assert_eq!(o["models"], serde_json::json!(["gemma3:1b"]));
}
