//! Automations end to end: flows of real MCP calls (`mcp-server-time` from
//! PyPI, `@modelcontextprotocol/server-everything` from npm) with variables,
//! branches and notifications; durability across kill -9 of agents-agent
//! (a delay keeps its deadline, a call in flight is never re-run on a
//! guess); a step that needs approval pauses the run until `approvals
//! approve`; a schedule runs each occurrence once.

use cowork_e2e::*;
use serde_json::Value;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn write_flow(suite: &Suite, name: &str, json: &str) -> String {
    let p = suite.home.path().join(name);
    std::fs::write(&p, json).unwrap();
    p.display().to_string()
}

fn add(suite: &Suite, name: &str, json: &str) -> String {
    let f = write_flow(suite, name, json);
    let v = suite.ctl_json(&["automations", "add", &f]);
    v["id"].as_str().unwrap().to_owned()
}

fn run_of(suite: &Suite, id: &str) -> Value {
    suite.ctl_json(&["automations", "runs", id])
}

fn wait_run(suite: &Suite, id: &str, status: &str, t: Duration) -> Value {
    wait_for(t, &format!("run {id} {status}"), || {
        let r = run_of(suite, id);
        (r["status"] == status).then_some(r)
    })
}

#[tokio::test]
async fn a_flow_calls_tools_with_variables_and_branches() {
    let suite = Suite::start("");
    suite.agents_serving().await;
    add_time_server(&suite);
    let id = add(
        &suite,
        "time.json",
        r#"{"name": "Time check", "inputs": [{"name": "tz", "default": "UTC"}],
            "steps": [
              {"id": "now", "type": "mcpToolCall", "server": "time", "tool": "get_current_time",
               "arguments": {"timezone": "${tz}"}},
              {"id": "same", "type": "condition",
               "if": {"left": "${now.data.timezone}", "op": "eq", "right": "${tz}"},
               "then": "say", "else": "end"},
              {"id": "never", "type": "delay", "seconds": 600},
              {"id": "say", "type": "mcpToolCall", "server": "time", "tool": "convert_time",
               "arguments": {"source_timezone": "${now.data.timezone}", "time": "12:00",
                             "target_timezone": "Asia/Tokyo"},
               "directOutput": true},
              {"id": "after", "type": "delay", "seconds": 600}
            ]}"#,
    );
    let run = suite.ctl_json(&["automations", "run", &id, "--var", "tz=Europe/Paris"]);
    assert_eq!(run["status"], "done", "{run}");
    let steps: Vec<&str> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    // The condition skipped "never"; directOutput stopped before "after".
    assert_eq!(steps, ["now", "same", "say"], "{run}");
    assert_eq!(
        run["steps"][0]["output"]["data"]["timezone"], "Europe/Paris",
        "{run}"
    );
    assert_eq!(run["steps"][1]["output"]["result"], true, "{run}");
    assert_eq!(
        run["output"]["data"]["target"]["timezone"], "Asia/Tokyo",
        "{run}"
    );
    // The variables map holds every step's output.
    assert_eq!(run["vars"]["tz"], "Europe/Paris");
    assert!(run["vars"]["now"]["data"]["datetime"].is_string(), "{run}");

    // A failing tool fails the run fast, saying which step.
    let bad = add(
        &suite,
        "bad.json",
        r#"{"name": "Bad zone", "steps": [
              {"id": "now", "type": "mcpToolCall", "server": "time", "tool": "get_current_time",
               "arguments": {"timezone": "Mars/Olympus"}},
              {"id": "next", "type": "delay", "seconds": 1}]}"#,
    );
    let out = suite.ctl(&["--json", "automations", "run", &bad]);
    assert_eq!(out.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["status"], "failed", "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("step \"now\" failed"),
        "{r}"
    );
    assert_eq!(r["steps"].as_array().unwrap().len(), 1, "{r}");

    // A required input that is missing is refused before anything runs.
    let need = add(
        &suite,
        "need.json",
        r#"{"name": "Needs", "inputs": [{"name": "who"}], "steps": [{"id": "a", "type": "delay", "seconds": 0}]}"#,
    );
    let o = suite.ctl(&["automations", "run", &need]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("needs the input \"who\""),
        "{o:?}"
    );
    // list, disable, rm.
    let list = suite.ctl_json(&["automations", "list"]);
    assert_eq!(list["flows"].as_array().unwrap().len(), 3, "{list}");
    assert_eq!(
        suite.ctl_json(&["automations", "disable", &need])["enabled"],
        false
    );
    ok(&suite.ctl(&["automations", "rm", &need]));
    assert_eq!(
        suite.ctl_json(&["automations", "list"])["flows"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn kill_9_mid_run_resumes_from_the_last_committed_step() {
    let suite = Suite::start("");
    suite.agents_serving().await;
    let js =
        std::path::PathBuf::from(std::env::var_os("COWORK_TEST_NPM").expect("COWORK_TEST_NPM"))
            .join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    ok(&suite.ctl(&[
        "mcp",
        "add",
        "ev",
        "--",
        "node",
        &js.display().to_string(),
        "stdio",
    ]));
    let delay = add(
        &suite,
        "delay.json",
        r#"{"name": "Wait", "steps": [
              {"id": "echo", "type": "mcpToolCall", "server": "ev", "tool": "echo", "arguments": {"message": "before"}},
              {"id": "wait", "type": "delay", "seconds": 8},
              {"id": "after", "type": "mcpToolCall", "server": "ev", "tool": "echo", "arguments": {"message": "${echo.text} and after"}}]}"#,
    );
    let slow = add(
        &suite,
        "slow.json",
        r#"{"name": "Slow", "on_interrupted": "retry", "steps": [
              {"id": "long", "type": "mcpToolCall", "server": "ev", "tool": "trigger-long-running-operation",
               "arguments": {"duration": 30, "steps": 30}}]}"#,
    );
    let r1 = suite.ctl_json(&["automations", "run", &delay, "--no-wait"]);
    let r2 = suite.ctl_json(&["automations", "run", &slow, "--no-wait"]);
    let (r1, r2) = (
        r1["id"].as_str().unwrap().to_owned(),
        r2["id"].as_str().unwrap().to_owned(),
    );
    let waiting = wait_run(&suite, &r1, "waiting", T);
    let deadline = waiting["resume_at_ms"].as_i64().unwrap();
    // The long call is in flight.
    wait_for(T, "the long call in flight", || {
        let r = run_of(&suite, &r2);
        (r["steps"][0]["status"] == "running").then_some(())
    });
    let agents = suite.worker("agents").await.pid;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agents as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    suite
        .wait_worker("agents", "restarted", T, |w| {
            w.pid != 0 && w.pid != agents && state(w) == "running"
        })
        .await;
    // The call in flight is not re-run on a guess (it is not idempotent):
    // the run is interrupted and says why.
    let r = wait_run(&suite, &r2, "interrupted", T);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("not marked idempotent"),
        "{r}"
    );
    assert_eq!(r["steps"][0]["status"], "interrupted", "{r}");
    assert_eq!(r["steps"].as_array().unwrap().len(), 1, "{r}");
    // The delay keeps its first deadline, and the steps before it did not run again.
    let r = wait_run(&suite, &r1, "done", T);
    let steps = r["steps"].as_array().unwrap();
    let ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["echo", "wait", "after"], "{r}");
    let finished = steps[1]["finished_ms"].as_i64().unwrap();
    assert!(
        finished >= deadline && finished < deadline + 6000,
        "deadline {deadline}, finished {finished}"
    );
    assert_eq!(
        steps[2]["output"]["text"], "Echo: Echo: before and after",
        "{r}"
    );
}

#[tokio::test]
async fn a_step_that_needs_approval_waits_for_a_person() {
    let config = format!(
        "[agents]\nprobe_ports = false\n[[agents.engines]]\nid = \"standin\"\nbase_url = \"http://127.0.0.1:{}/v1\"\n\
         [agents.approval]\nalways_ask = [\"time/convert_time\"]\n",
        model_list_standin()
    );
    // No session bus: the notification that asks is undelivered, with why.
    let suite = Suite::start_with_env(
        Suite::temp_home(),
        &config,
        vec![("DBUS_SESSION_BUS_ADDRESS".into(), None)],
    );
    suite.agents_serving().await;
    add_time_server(&suite);
    let id = add(
        &suite,
        "ask.json",
        r#"{"name": "Ask first", "steps": [
              {"id": "now", "type": "mcpToolCall", "server": "time", "tool": "get_current_time", "arguments": {"timezone": "UTC"}},
              {"id": "convert", "type": "mcpToolCall", "server": "time", "tool": "convert_time",
               "arguments": {"source_timezone": "UTC", "time": "09:30", "target_timezone": "Asia/Kolkata"}}]}"#,
    );
    let run = suite.ctl_json(&["automations", "run", &id]);
    assert_eq!(run["status"], "waiting_for_human", "{run}");
    let call = run["waiting_call"].as_str().unwrap().to_owned();
    assert!(
        run["waiting_reason"]
            .as_str()
            .unwrap()
            .contains("always require approval"),
        "{run}"
    );
    // The routine step ran unattended (phase 3); the gated one did not run.
    assert_eq!(run["steps"][0]["status"], "done");
    assert_eq!(run["steps"][1]["status"], "waiting_for_human");
    // It is in `approvals list`, beside operations' calls; approving runs it.
    let pending = suite.ctl_json(&["approvals", "list"]);
    assert!(
        pending
            .to_string()
            .contains(&run["id"].as_str().unwrap().to_string()),
        "{pending}"
    );
    ok(&suite.ctl(&["approvals", "approve", &call]));
    let r = wait_run(&suite, run["id"].as_str().unwrap(), "done", T);
    assert_eq!(
        r["steps"][1]["output"]["data"]["target"]["datetime"]
            .as_str()
            .map(|t| t.contains("15:00")),
        Some(true),
        "{r}"
    );
    // A raised urgent notification asked for it (no desktop here: undelivered, with why).
    let n = suite.ctl_json(&["notifications", "list"]);
    let asked = n["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["trigger_type"] == "approval")
        .cloned();
    let asked = asked.unwrap_or_else(|| panic!("no approval notification: {n}"));
    assert_eq!(asked["tier"], "urgent");
    assert_eq!(asked["state"], "undelivered", "{asked}");
    assert!(
        asked["note"].as_str().unwrap().contains("session bus"),
        "{asked}"
    );
}

#[tokio::test]
async fn a_schedule_runs_each_occurrence_once() {
    let suite = Suite::start("");
    suite.agents_serving().await;
    let id = add(
        &suite,
        "every.json",
        r#"{"name": "Every minute", "trigger": {"type": "schedule", "cron": "* * * * *", "missed": "coalesce"},
            "steps": [{"id": "a", "type": "delay", "seconds": 0}]}"#,
    );
    let first = wait_for(Duration::from_secs(80), "a scheduled run", || {
        let r = suite.ctl_json(&["automations", "runs", &id]);
        r["runs"].as_array().and_then(|a| a.first().cloned())
    });
    assert_eq!(first["trigger"], "schedule", "{first}");
    let key = first["occurrence_key"].as_str().unwrap().to_owned();
    // Looked at again and again (every 5 s) within the same minute: still one run for it.
    std::thread::sleep(Duration::from_secs(11));
    let runs = suite.ctl_json(&["automations", "runs", &id]);
    let same = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["occurrence_key"] == key)
        .count();
    assert_eq!(same, 1, "{runs}");
    let flow = suite.ctl_json(&["automations", "show", &id]);
    assert!(
        flow["trigger_note"].as_str().unwrap().starts_with("ran "),
        "{flow}"
    );
}

#[tokio::test]
async fn an_agent_calls_a_flow_as_a_tool() {
    // The cloud stand-in, declared as a local engine, scripted to call
    // the flow's tool (a real model cannot be made to on demand).
    let dir = tempfile::tempdir().unwrap();
    let (log, reply) = (dir.path().join("log"), dir.path().join("reply.json"));
    let engine = cloud_standin_with(&log, Some(&reply));
    let config = format!(
        "[agents]\nprobe_ports = false\n[[agents.engines]]\nid = \"scripted\"\nbase_url = \"http://127.0.0.1:{}/v1\"\n",
        engine.port
    );
    let suite = Suite::start(&config);
    suite.agents_serving().await;
    add_time_server(&suite);
    let id = add(
        &suite,
        "tool.json",
        r#"{"name": "Time in a zone", "description": "the time in a zone",
            "inputs": [{"name": "tz", "description": "an IANA zone"}],
            "steps": [{"id": "now", "type": "mcpToolCall", "server": "time", "tool": "get_current_time",
                       "arguments": {"timezone": "${tz}"}, "directOutput": true}]}"#,
    );
    let reply_json = serde_json::json!({"message": {"role": "assistant", "content": null, "tool_calls": [{
        "id": "c1", "type": "function",
        "function": {"name": format!("flow_{id}"), "arguments": "{\"tz\": \"Asia/Tokyo\"}"}}]}});
    std::fs::write(&reply, reply_json.to_string()).unwrap();
    let o = suite.ctl(&[
        "--json",
        "agent",
        "run",
        "--max-steps",
        "2",
        "what time is it in Tokyo",
    ]);
    let op: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {o:?}"));
    let call = &op["tool_calls"][0];
    assert_eq!(call["server"], "flows", "{op}");
    assert_eq!(call["tool"], id.as_str(), "{op}");
    assert_eq!(call["outcome"], "ran", "{op}");
    assert!(
        call["result"].as_str().unwrap().contains("Asia/Tokyo"),
        "{op}"
    );
    // The model was offered the flow with its inputs as parameters.
    let sent = std::fs::read_to_string(&log).unwrap();
    let first: Value = serde_json::from_str(sent.lines().next().unwrap()).unwrap();
    let tool = first["body"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == format!("flow_{id}"))
        .cloned()
        .unwrap_or_else(|| panic!("flow not offered: {first}"));
    assert_eq!(
        tool["function"]["parameters"]["required"][0], "tz",
        "{tool}"
    );
    // The run it made is in the log, as a tool run.
    let runs = suite.ctl_json(&["automations", "runs", &id]);
    assert_eq!(runs["runs"][0]["trigger"], "tool", "{runs}");
    assert_eq!(runs["runs"][0]["status"], "done", "{runs}");

    // An agentStep: an agent operation with the substituted task; its
    // answer is the step's output.
    std::fs::write(
        &reply,
        r#"{"message": {"role": "assistant", "content": "Hello, Ada."}}"#,
    )
    .unwrap();
    let greet = add(
        &suite,
        "greet.json",
        r#"{"name": "Greet", "inputs": [{"name": "who"}],
            "steps": [{"id": "hi", "type": "agentStep", "task": "Greet ${who} in three words", "max_steps": 2}]}"#,
    );
    let r = suite.ctl_json(&["automations", "run", &greet, "--var", "who=Ada"]);
    assert_eq!(r["status"], "done", "{r}");
    assert_eq!(r["output"]["text"], "Hello, Ada.", "{r}");
    let op = r["output"]["operation"].as_str().unwrap().to_owned();
    let shown = suite.ctl_json(&["agent", "show", &op]);
    assert_eq!(shown["task"], "Greet Ada in three words", "{shown}");
    assert_eq!(shown["status"], "done", "{shown}");
}

#[tokio::test]
async fn capture_patterns_and_mcp_notifications_start_flows() {
    let home = Suite::temp_home();
    // Capture replays a window switch 15 s in (the sim source, real time),
    // its clock two minutes back: Editor has been in focus for two minutes
    // when the replay starts.
    std::fs::write(
        home.path().join("script.jsonl"),
        "{\"t_ms\":0,\"kind\":\"window\",\"app\":\"Editor\",\"title\":\"notes.txt\"}\n\
         {\"t_ms\":15000,\"kind\":\"window\",\"app\":\"Mail\",\"title\":\"Invoice 42 - Inbox\"}\n",
    )
    .unwrap();
    let suite = Suite::start_in(
        home,
        "[capture]\nsource = \"sim\"\nsim_script = \"script.jsonl\"\nsim_clock_offset_s = -120\n",
    );
    suite.agents_serving().await;
    let title = add(
        &suite,
        "title.json",
        r#"{"name": "Invoices", "trigger": {"type": "capture", "title": "*invoice*"},
            "steps": [{"id": "seen", "type": "condition", "if": {"left": "${trigger.app}", "op": "eq", "right": "Mail"}}]}"#,
    );
    let focus = add(
        &suite,
        "focus.json",
        r#"{"name": "Long edit", "trigger": {"type": "capture", "app": "editor", "minutes": 1},
            "steps": [{"id": "a", "type": "delay", "seconds": 0}]}"#,
    );
    let switch = add(
        &suite,
        "switch.json",
        r#"{"name": "To mail", "trigger": {"type": "capture", "event": "context_switch", "app": "mail"},
            "steps": [{"id": "a", "type": "delay", "seconds": 0}]}"#,
    );
    let script = repo_root().join("tests/python/growing_mcp_server.py");
    ok(&suite.ctl(&[
        "mcp",
        "add",
        "grow",
        "--",
        &python().display().to_string(),
        &script.display().to_string(),
    ]));
    let grown = add(
        &suite,
        "grown.json",
        r#"{"name": "On new tools", "trigger": {"type": "mcp", "server": "grow", "method": "notifications/tools/list_changed"},
            "steps": [{"id": "x", "type": "mcpToolCall", "server": "grow", "tool": "extra"}]}"#,
    );
    // A real SDK server says its tool list changed: the flow runs and
    // calls the tool that just appeared.
    ok(&suite.ctl(&["mcp", "call", "grow", "grow"]));
    let runs = |id: &str| {
        suite.ctl_json(&["automations", "runs", id])["runs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let r = wait_for(T, "the mcp-triggered run", || {
        runs(&grown).into_iter().find(|r| r["status"] == "done")
    });
    assert_eq!(r["trigger"], "mcp", "{r}");
    let full = run_of(&suite, r["id"].as_str().unwrap());
    assert_eq!(full["steps"][0]["output"]["text"], "extra!", "{full}");
    // The switch to Mail, whose title matches: each flow runs once for it.
    let r = wait_for(Duration::from_secs(90), "the title run", || {
        runs(&title).into_iter().next()
    });
    assert_eq!(r["trigger"], "capture", "{r}");
    let full = wait_run(&suite, r["id"].as_str().unwrap(), "done", T);
    assert_eq!(full["steps"][0]["output"]["result"], true, "{full}");
    let s = wait_for(T, "the switch run", || runs(&switch).into_iter().next());
    assert_eq!(s["trigger"], "capture", "{s}");
    // Editor had been in focus for over a minute: that session ran once.
    let f = runs(&focus);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["trigger"], "capture");
    std::thread::sleep(Duration::from_secs(11));
    assert_eq!(runs(&focus).len(), 1);
    assert_eq!(runs(&title).len(), 1);
    assert_eq!(runs(&switch).len(), 1);
}
