//! Chat against a REAL local engine: llama.cpp's own llama-server, started
//! by hand, with the Gemma 3 270M model from PyPI (scripts/test.sh builds
//! and installs both), found by detection, streamed through coworkd to `coworkctl chat`;
//! and the same server standing in for a cloud provider's OpenAI-compatible
//! endpoint, guarded by an API key.

use cowork_e2e::*;
use cowork_proto::pb::chat::{chat_client::ChatClient, SendMessageRequest};
use serde_json::Value;
use std::time::Duration;

fn config(port: u16) -> String {
    format!(
        "{FAST}\n[agents]\nprobe_ports = false\nmax_output_tokens = 120\n\
         [[agents.engines]]\nid = \"llamacpp\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\napi = \"openai\"\n"
    )
}

#[tokio::test]
async fn a_real_llama_cpp_engine_answers_through_the_suite_and_dies_cleanly() {
    let mut engine = start_llama(&[]);
    let suite = Suite::start(&config(engine.port));
    suite
        .wait_state("agents", "running", Duration::from_secs(20))
        .await;

    // Detection finds it by probing, with its model.
    let out = suite.ctl(&["--json", "engines"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &v["engines"][0];
    assert_eq!(e["health"], "up", "{v}");
    assert_eq!(e["models"], serde_json::json!(["gemma3-270m"]));

    // A real answer, streamed to coworkctl.
    let out = suite.ctl(&[
        "--json",
        "chat",
        "--local",
        "Say hello in one short sentence.",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let chunks: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(chunks[0]["route"]["model"], "llamacpp/gemma3-270m");
    let text: String = chunks.iter().filter_map(|c| c["delta"].as_str()).collect();
    let deltas = chunks.iter().filter(|c| c["delta"].is_string()).count();
    eprintln!(
        "gemma3-270m said ({deltas} deltas): {:?}",
        text.chars().take(120).collect::<String>()
    );
    assert!(!text.trim().is_empty(), "{chunks:?}");
    assert!(deltas > 1, "streamed, not in one piece");
    assert!(chunks.last().unwrap()["finish"].is_string(), "{chunks:?}");

    // Kill the engine mid-answer: an error chunk within a second. (The
    // sampled model sometimes stops at once with no text; ask again.)
    let mut chat = ChatClient::new(suite.channel());
    let mut killed = None;
    for _ in 0..5 {
        let mut stream = chat
            .send_message(SendMessageRequest {
                text: "Write a very long story about a lighthouse keeper, at least 500 words."
                    .into(),
                preference: "local".into(),
                ..Default::default()
            })
            .await
            .expect("send")
            .into_inner();
        killed = error_after_kill(&mut stream, || {
            let _ = engine.child.kill();
        })
        .await;
        if killed.is_some() {
            break;
        }
    }
    let (msg, after) = killed.expect("one of 5 answers had text");
    eprintln!("error chunk {after:?} after killing llama.cpp: {msg}");
    assert!(after < Duration::from_secs(1), "{after:?}");
}

fn chunks(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn a_cloud_provider_gets_its_key_and_its_usage_is_recorded() {
    const KEY: &str = "cloud-test-key-6c1f";
    let engine = start_llama(&["--api-key", KEY]);
    let cfg = |key: &str| {
        format!(
            "{FAST}\n[agents]\nprobe_ports = false\nmax_output_tokens = 60\n\
             [agents.providers.gemini]\nbase_url = \"http://127.0.0.1:{}/v1\"\n{key}",
            engine.port
        )
    };
    let suite = Suite::start_with_env(
        Suite::temp_home(),
        &cfg(""),
        vec![("GEMINI_API_KEY".into(), Some(KEY.into()))],
    );
    // No local engine, but a provider with a key: agents can answer.
    suite
        .wait_state("agents", "running", Duration::from_secs(20))
        .await;
    let out = suite.ctl(&["--json", "chat", "Say hello in one short sentence."]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = chunks(&out);
    let route = &c[0]["route"];
    assert_eq!(route["model"], "gemini/gemini-2.5-flash", "{c:?}");
    assert_eq!(route["engine"], "gemini");
    assert!(route["reason"]
        .as_str()
        .unwrap()
        .contains("no local engine"));
    let text: String = c.iter().filter_map(|c| c["delta"].as_str()).collect();
    assert!(!text.trim().is_empty(), "{c:?}");
    assert!(c.last().unwrap()["finish"].is_string(), "{c:?}");
    // The free tier's tokens count against the monthly quota (the
    // provider's count when it sends one, else an estimate); no dollars.
    let counted = c.iter().find(|c| c["usage"].is_object()).map(|c| {
        c["usage"]["prompt_tokens"].as_u64().unwrap()
            + c["usage"]["completion_tokens"].as_u64().unwrap()
    });
    let usage: Value =
        serde_json::from_slice(&suite.ctl(&["--json", "chat", "usage"]).stdout).unwrap();
    let recorded = usage["free_tokens_this_month"].as_u64().unwrap();
    assert!(recorded > 0, "{usage}");
    if let Some(n) = counted {
        assert_eq!(recorded, n, "{usage}");
    }
    assert_eq!(usage["spent_this_month_usd"], 0.0);
    assert_eq!(usage["cloud_providers"], serde_json::json!(["gemini"]));

    // A wrong key (config wins over the environment): the provider's 401
    // ends the answer with an error chunk.
    suite.write_config(&cfg("api_key = \"wrong\"\n"));
    let out = suite.ctl(&["--json", "chat", "--cloud", "hi"]);
    assert_eq!(out.status.code(), Some(1));
    let c = chunks(&out);
    let err = c.last().unwrap()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(err.contains("HTTP 401"), "{c:?}");
    assert!(!err.contains("wrong"), "the key is never echoed: {err}");

    // The credential store wins over config and environment: store the
    // right key (read from stdin), answers come back; delete it, 401 again.
    let key_cmd = |input: &str| {
        use std::io::Write;
        let mut c = std::process::Command::new(bin("coworkctl"))
            .arg("--home")
            .arg(suite.home.path())
            .args(["chat", "key", "gemini"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(key_cmd(&format!("{KEY}\n")).contains("stored"));
    let out = suite.ctl(&["--json", "chat", "--cloud", "Say hi."]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Nowhere on disk under the home.
    let leaked = files_containing(suite.home.path(), KEY.as_bytes());
    assert!(leaked.is_empty(), "the key is in {leaked:?}");
    assert!(key_cmd("").contains("deleted"));
    let out = suite.ctl(&["--json", "chat", "--cloud", "hi"]);
    assert_eq!(out.status.code(), Some(1));
}
