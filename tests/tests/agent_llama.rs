//! Agent operations end to end with REAL parts: llama-cpp-python's server with
//! Gemma 3 270M asks for a tool call in the OpenAI tool-calling format
//! (the first call forced with tool_choice, as a model this small needs),
//! the call goes to the real `mcp-server-time` over stdio, under the
//! approval policy: auto-run, a denylisted tool waiting for `coworkctl
//! approvals approve`, a rejection, and an operation that survives
//! kill -9 of agents-agent, paused and resumable.

use cowork_e2e::*;
use serde_json::Value;
use std::process::Output;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn config(port: u16, approval: &str) -> String {
    format!(
        "{FAST}\n[agents]\nprobe_ports = false\n\
         [[agents.engines]]\nid = \"llamacpp\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\napi = \"openai\"\n\
         [agents.approval]\n{approval}\n"
    )
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

async fn with_time_server(approval: &str) -> (LlamaServer, Suite) {
    let engine = start_llama_cpp_python();
    let suite = Suite::start(&config(engine.port, approval));
    suite.wait_state("agents", "running", T).await;
    wait_engine_up(&suite);
    let s = add_time_server(&suite);
    assert_eq!(s["status"], "running", "{s}");
    (engine, suite)
}

#[tokio::test]
async fn a_trusted_server_runs_the_models_tool_call_and_the_operation_finishes() {
    let (_engine, suite) = with_time_server("auto_run = [\"time\"]").await;
    let op = suite.run_time_task("What time is it in UTC?");
    assert_eq!(op["status"], "done", "{op}");
    let calls = op["tool_calls"].as_array().unwrap();
    assert_eq!(calls[0]["tool"], "get_current_time", "{op}");
    assert_eq!(calls[0]["outcome"], "ran", "{op}");
    let result: Value = serde_json::from_str(calls[0]["result"].as_str().unwrap()).unwrap();
    assert!(
        result["datetime"].as_str().unwrap().starts_with("20"),
        "{result}"
    );
    let args: Value = serde_json::from_str(calls[0]["arguments"].as_str().unwrap()).unwrap();
    assert!(
        args["timezone"].is_string(),
        "the model filled the schema: {args}"
    );
    // Every model call (the tool call, then the answer, maybe more) is in
    // the usage ledger.
    let usage = json(&suite.ctl(&["--json", "chat", "usage"]));
    assert!(op["step"].as_u64().unwrap() >= 2, "{op}");
    assert_eq!(usage["calls_this_month"], op["step"], "{usage} {op}");
    // Persisted: `agent show` reads it back.
    let shown = json(&suite.ctl(&["--json", "agent", "show", op["id"].as_str().unwrap()]));
    assert_eq!(shown["tool_calls"], op["tool_calls"]);
}

#[tokio::test]
async fn a_denylisted_tool_waits_for_approval_and_a_rejection_is_told_to_the_model() {
    // get_current_time is trusted (phase 5) AND on the security denylist
    // (phase 1): security wins, it waits.
    let (_engine, suite) =
        with_time_server("auto_run = [\"time\"]\ndenylist_extra = [\"get_current_time\"]").await;
    let op = suite.run_time_task("What time is it in UTC?");
    assert_eq!(op["status"], "waiting_for_human", "{op}");
    let p = &op["pending"][0];
    assert_eq!(p["phase"], 1, "{op}");
    assert!(p["reason"].as_str().unwrap().contains("security denylist"));
    let listed = json(&suite.ctl(&["--json", "approvals", "list"]));
    let id = listed["pending"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(id, p["id"].as_str().unwrap());

    let done = json(&suite.ctl(&["--json", "approvals", "approve", &id]));
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["tool_calls"][0]["outcome"], "ran");
    assert!(done["tool_calls"][0]["result"]
        .as_str()
        .unwrap()
        .contains("datetime"));
    assert_eq!(
        json(&suite.ctl(&["--json", "approvals", "list"]))["pending"],
        serde_json::json!([])
    );

    // Reject: nothing runs, the model is told and answers.
    let op = suite.run_time_task("What time is it in Tokyo?");
    assert_eq!(op["status"], "waiting_for_human", "{op}");
    let id = op["pending"][0]["id"].as_str().unwrap().to_owned();
    let r = json(&suite.ctl(&["--json", "approvals", "reject", &id]));
    assert_eq!(r["status"], "done", "{r}");
    assert_eq!(r["tool_calls"][0]["outcome"], "rejected");
    // The audit log holds only the approved call, made for the agent.
    let c = rusqlite::Connection::open(suite.home.path().join("cowork.db")).unwrap();
    let rows: Vec<(String, String)> = wait_for(Duration::from_secs(10), "the audit log", || {
        let rows: Vec<(String, String)> = c
            .prepare("SELECT tool, source FROM mcp_tool_calls")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        (!rows.is_empty()).then_some(rows)
    });
    assert_eq!(
        rows,
        [("get_current_time".to_string(), "agent".to_string())]
    );
    // An unknown approval id is a clear error.
    let bad = suite.ctl(&["approvals", "approve", "op-nope/call-nope"]);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("no operation"),
        "{bad:?}"
    );
}

#[tokio::test]
async fn an_operation_running_when_agents_agent_dies_comes_back_paused_and_resumes() {
    let (_engine, suite) = with_time_server("auto_run = [\"time\"]").await;
    // Not forced to a tool, the model writes (hundreds of tokens take
    // seconds): kill agents-agent while it does.
    let op = json(&suite.ctl(&[
        "--json",
        "agent",
        "run",
        "--no-wait",
        "--max-steps",
        "2",
        "Write a long story about a lighthouse keeper.",
    ]));
    assert_eq!(op["status"], "running", "{op}");
    let id = op["id"].as_str().unwrap().to_owned();
    let pid = suite.worker("agents").await.pid;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    suite
        .wait_worker("agents", "a new agents-agent", T, |w| {
            w.pid != pid && w.pid != 0 && state(w) == "running"
        })
        .await;
    let back = json(&suite.ctl(&["--json", "agent", "show", &id]));
    assert_eq!(back["status"], "paused", "{back}");
    assert!(
        back["reason"].as_str().unwrap().contains("agent resume"),
        "{back}"
    );
    // Resume (the engine may still be busy with the answer the dead
    // agents-agent asked for: a model that cannot be reached pauses the
    // operation again, and resuming retries).
    let resumed = wait_for(
        Duration::from_secs(120),
        "the resumed operation to finish",
        || {
            let r = json(&suite.ctl(&["--json", "agent", "resume", &id]));
            match r["status"].as_str() {
                Some("paused") => {
                    std::thread::sleep(Duration::from_secs(1));
                    None
                }
                _ => Some(r),
            }
        },
    );
    assert_eq!(resumed["status"], "done", "{resumed}");
    // Not resumable twice.
    let again = suite.ctl(&["agent", "resume", &id]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not paused"),
        "{again:?}"
    );
}
