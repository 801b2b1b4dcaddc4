//! Agent operations on a cloud model, whose replies the test sets: the
//! router's budget check before every model call (under the plan's caps it
//! runs and its cost is recorded against the operation; over them it
//! pauses with the reason and nothing is sent), and the task-chain
//! guardrails end to end with the real `mcp-server-time` (the same call 3
//! times → pause; most calls failing → abort; over $1.00 in 10 minutes →
//! pause). The cloud provider is a named stand-in
//! (tests/python/cloud_standin.py): no real provider can be reached here,
//! and only a stand-in repeats a call on demand.

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

fn guarded_config(cloud_port: u16) -> String {
    format!(
        "[agents]\nprobe_ports = false\nplan = \"boost\"\n\
         [agents.caps]\nper_interaction = 100.0\ndaily = 100.0\nweekly = 100.0\nmonthly = 100.0\n\
         [agents.approval]\nauto_run = [\"time\"]\n\
         [agents.providers.openrouter]\nbase_url = \"http://127.0.0.1:{cloud_port}/v1\"\n"
    )
}

/// The stand-in's next replies: one tool call, and the usage it reports.
fn reply_with_call(file: &std::path::Path, tool: &str, args: &str, prompt_tokens: u64) {
    let reply = serde_json::json!({
        "message": {"role": "assistant", "content": null, "tool_calls": [{
            "id": "c1", "type": "function",
            "function": {"name": format!("time__{tool}"), "arguments": args}}]},
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 10},
    });
    std::fs::write(file, reply.to_string()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardrails_pause_a_repeating_chain_abort_a_failing_one_and_pause_on_spend() {
    let dir = tempfile::tempdir().unwrap();
    let (log, reply) = (dir.path().join("log"), dir.path().join("reply.json"));
    reply_with_call(&reply, "get_current_time", r#"{"timezone":"UTC"}"#, 100);
    let cloud = cloud_standin_with(&log, Some(&reply));
    let s = Suite::start_with_env(
        Suite::temp_home(),
        &guarded_config(cloud.port),
        vec![
            ("OPENROUTER_API_KEY".into(), Some("or-test-key".into())),
            ("GEMINI_API_KEY".into(), None),
        ],
    );
    s.wait_state("agents", "running", Duration::from_secs(30))
        .await;
    let added = add_time_server(&s);
    assert_eq!(added["status"], "running", "{added}");
    // The operation as `agent run --json` prints it (exit 1 when it failed).
    let run = |task: &str| -> Value {
        let o = s.ctl(&["--json", "agent", "run", "--max-steps", "8", task]);
        let op: Value = serde_json::from_slice(&o.stdout).expect("operation JSON");
        assert_eq!(o.status.success(), op["status"] != "error", "{op}");
        op
    };

    // The model asks for the same call again and again: after the third
    // (each one ran: the server is trusted), the operation pauses.
    let op = run("what time is it");
    assert_eq!(op["status"], "paused", "{op}");
    assert!(
        op["reason"]
            .as_str()
            .unwrap()
            .contains("called 3 times with the same input"),
        "{op}"
    );
    let calls = op["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 3, "{op}");
    assert!(calls.iter().all(|c| c["outcome"] == "ran"), "{op}");

    // Every call fails (an unknown timezone): more than half failed →
    // the operation aborts with the errors.
    reply_with_call(
        &reply,
        "get_current_time",
        r#"{"timezone":"Mars/Olympus_Mons"}"#,
        100,
    );
    let op = run("what time is it on Mars");
    assert_eq!(op["status"], "error", "{op}");
    let reason = op["reason"].as_str().unwrap();
    assert!(reason.contains("of 2 tool calls failed"), "{op}");

    // One step reports 2.1 M prompt tokens ($1.05 at the boost tier's
    // list price): before the next step, the spend guardrail pauses.
    reply_with_call(
        &reply,
        "get_current_time",
        r#"{"timezone":"Europe/Paris"}"#,
        2_100_000,
    );
    let op = run("what time is it in Paris");
    assert_eq!(op["status"], "paused", "{op}");
    assert!(
        op["reason"]
            .as_str()
            .unwrap()
            .contains("in the last 10 minutes"),
        "{op}"
    );
    assert!(op["cost_usd"].as_f64().unwrap() > 1.0, "{op}");
    assert_eq!(op["tool_calls"].as_array().unwrap().len(), 1, "{op}");
}
