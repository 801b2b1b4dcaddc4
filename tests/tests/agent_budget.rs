//! An agent operation on a cloud model goes through the router's budget
//! check before every model call: under the plan's caps it runs (and its
//! cost is recorded against the operation), over them it pauses with the
//! reason and nothing is sent. The cloud provider is a named stand-in
//! (tests/python/cloud_standin.py): no real provider can be reached here.

use cowork_e2e::*;
use serde_json::Value;
use std::time::Duration;

fn config(cloud_port: u16, per_interaction: f64) -> String {
    format!(
        "[agents]\nprobe_ports = false\nplan = \"boost\"\n\
         [agents.caps]\nper_interaction = {per_interaction}\n\
         [agents.providers.openrouter]\nbase_url = \"http://127.0.0.1:{cloud_port}/v1\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_model_calls_of_an_operation_respect_the_spend_caps() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let cloud = cloud_standin(log.path());
    let s = Suite::start_with_env(
        Suite::temp_home(),
        &config(cloud.port, 5.0),
        vec![
            ("OPENROUTER_API_KEY".into(), Some("or-test-key".into())),
            ("GEMINI_API_KEY".into(), None),
        ],
    );
    s.wait_state("agents", "running", Duration::from_secs(30))
        .await;
    let requests = || {
        std::fs::read_to_string(log.path())
            .unwrap_or_default()
            .lines()
            .count()
    };

    // Under the cap: the boost tier's model answers, the cost is counted.
    let op: Value =
        serde_json::from_str(&ok(&s.ctl(&["agent", "run", "say hi", "--json"]))).unwrap();
    assert_eq!(op["status"], "done", "{op}");
    assert_eq!(op["result"], "from the cloud stand-in");
    assert!(op["cost_usd"].as_f64().unwrap() > 0.0, "{op}");
    assert_eq!(requests(), 1);
    let sent: Value = serde_json::from_str(
        std::fs::read_to_string(log.path())
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(sent["body"]["model"], "google/gemini-3-flash");
    assert_eq!(sent["authorization"], "Bearer or-test-key");

    // A per-interaction cap below one call's estimate: paused, with the
    // router's words, and the provider never hears of it.
    // (agents-agent reads config.toml afresh for every operation step.)
    s.write_config(&config(cloud.port, 0.000001));
    let op: Value =
        serde_json::from_str(&ok(&s.ctl(&["agent", "run", "say hi again", "--json"]))).unwrap();
    assert_eq!(op["status"], "paused", "{op}");
    let reason = op["reason"].as_str().unwrap();
    assert!(reason.contains("per-interaction cap"), "{op}");
    assert!(reason.contains("agent resume"), "{op}");
    assert_eq!(op["step"], 0, "{op}");
    assert_eq!(requests(), 1);
}
