//! Hostile input 9: MCP servers that read our environment or flood us.

use super::{rss_mib, said, T};
use cowork_e2e::*;
use std::time::Duration;

fn add(s: &Suite, name: &str, mode: &str) {
    let mut args = vec!["mcp", "add", name, "--"];
    let cmd = hostile_mcp(mode);
    args.extend(cmd.iter().map(String::as_str));
    ok(&s.ctl(&args));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_server_sees_no_cloud_key_and_one_that_floods_us_costs_a_bounded_amount() {
    let s = Suite::start_with_env(
        Suite::temp_home(),
        "",
        vec![
            ("GEMINI_API_KEY".into(), Some("gemini-secret-key".into())),
            ("OPENROUTER_API_KEY".into(), Some("or-secret-key".into())),
            ("LC_ALL".into(), Some("C.UTF-8".into())),
        ],
    );
    s.wait_state("agents", "running", T).await;
    add(&s, "nosy", "mcp-env");
    let env = ok(&s.ctl(&["mcp", "call", "nosy", "env"]));
    let env: serde_json::Value =
        serde_json::from_str(env.trim()).unwrap_or_else(|e| panic!("{e}: {env}"));
    let keys: Vec<&str> = env
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    for k in &keys {
        assert!(
            ["PATH", "HOME", "LANG", "TZ", "TMPDIR"].contains(k)
                || k.starts_with("LC_")
                || k.starts_with("XDG_"),
            "the server got {k}: {keys:?}"
        );
    }
    assert!(
        keys.contains(&"PATH") && keys.contains(&"LC_ALL"),
        "{keys:?}"
    );
    let text = env.to_string();
    assert!(!text.contains("gemini-secret-key") && !text.contains("or-secret-key"));

    let agents = s.worker("agents").await;
    let before = rss_mib(agents.pid);
    add(&s, "flood", "mcp-flood");
    let o = s.ctl(&["mcp", "call", "flood", "flood", "--timeout-ms", "120000"]);
    let out = said(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("without a newline"), "{out}");
    let peak = cowork_e2e::proc_peak_rss_bytes(agents.pid) >> 20;
    eprintln!("agents-agent RSS: {before} MiB before, peak {peak} MiB after a 1 GiB line");
    assert!(
        peak < before + 200,
        "peak RSS {peak} MiB (was {before} MiB)"
    );
    // Same process, still serving: the other server and the engines answer.
    assert_eq!(s.worker("agents").await.pid, agents.pid);
    ok(&s.ctl(&["mcp", "call", "nosy", "env"]));
    ok(&s.ctl(&["engines"]));
    std::thread::sleep(Duration::from_millis(100));
    record_fault(
        "mcp: a stdio server reads its environment / writes 1 GiB without a newline",
        2,
        "nothing (no cloud key reached it; the connection failed at 16 MiB, RSS bounded)",
    );
}
