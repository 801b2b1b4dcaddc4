//! MCP through the suite vs the official Python MCP SDK client, in the
//! same run, against the same stdio servers: `mcp-server-time` (Python)
//! and the reference "everything" server's `echo` (Node):
//! - tool-call round trip: a gRPC `CallTool` through coworkd →
//!   agents-agent → rmcp → the server, vs the SDK's `call_tool` straight to
//!   the server (target: ours ≤ 0.5× its latency);
//! - spawn-to-ready: process start to initialize + tools/list done
//!   (ours: `AddServer`, which also records the server in cowork.db).

use cowork_e2e::*;
use cowork_proto::pb::mcp::{mcp_client::McpClient, AddServerRequest, CallToolRequest, ServerRef};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const CALLS: usize = 300;
const SPAWNS: usize = 5;

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

struct Figures {
    spawn_ms: f64,
    p50_us: f64,
    p99_us: f64,
}

async fn ours(
    mcp: &mut McpClient<Channel>,
    name: &str,
    argv: &[String],
    tool: &str,
    args: &str,
) -> Figures {
    let mut spawn = Vec::new();
    for i in 0..SPAWNS {
        let n = format!("{name}{i}");
        let t = Instant::now();
        let s = mcp
            .add_server(AddServerRequest {
                name: n.clone(),
                command: argv.to_vec(),
                ..Default::default()
            })
            .await
            .expect("add")
            .into_inner();
        spawn.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(s.status, "running", "{s:?}");
        if i > 0 {
            mcp.remove_server(ServerRef { name: n })
                .await
                .expect("remove");
        }
    }
    let call = || CallToolRequest {
        server: format!("{name}0"),
        tool: tool.into(),
        arguments_json: args.into(),
        ..Default::default()
    };
    for _ in 0..20 {
        mcp.call_tool(call()).await.expect("call");
    }
    let mut rt = Vec::new();
    for _ in 0..CALLS {
        let t = Instant::now();
        let r = mcp.call_tool(call()).await.expect("call").into_inner();
        rt.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(!r.is_error, "{r:?}");
    }
    Figures {
        spawn_ms: percentile(&mut spawn, 0.5),
        p50_us: percentile(&mut rt.clone(), 0.5),
        p99_us: percentile(&mut rt, 0.99),
    }
}

/// Send one JSON-RPC message; for a request (`id` set), read lines until
/// its response (servers may interleave notifications).
fn raw_send(
    stdin: &mut impl std::io::Write,
    stdout: &mut impl std::io::BufRead,
    id: Option<u64>,
    method: &str,
    params: serde_json::Value,
) {
    let mut msg = serde_json::json!({"jsonrpc": "2.0", "method": method, "params": params});
    if let Some(id) = id {
        msg["id"] = id.into();
    }
    writeln!(stdin, "{msg}").expect("write");
    stdin.flush().expect("flush");
    let Some(id) = id else { return };
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stdout.read_line(&mut line).expect("read") > 0,
            "server closed"
        );
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON-RPC line");
        if v["id"] == id {
            assert!(v.get("error").is_none(), "{v}");
            return;
        }
    }
}

/// The floor any client could reach: hand-written JSON-RPC lines over the
/// server's pipes, no framework, no relay — the server's own time plus two
/// pipe hops.
fn raw_floor(argv: &[String], tool: &str, args: &str) -> Figures {
    let mut child = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the server");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let init = serde_json::json!({"protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "floor", "version": "0"}});
    raw_send(&mut stdin, &mut stdout, Some(0), "initialize", init);
    let none = serde_json::json!({});
    raw_send(
        &mut stdin,
        &mut stdout,
        None,
        "notifications/initialized",
        none,
    );
    let args: serde_json::Value = serde_json::from_str(args).expect("args JSON");
    let call = serde_json::json!({"name": tool, "arguments": args});
    let mut rt = Vec::new();
    for i in 0..(CALLS + 20) as u64 {
        let t = Instant::now();
        raw_send(
            &mut stdin,
            &mut stdout,
            Some(i + 1),
            "tools/call",
            call.clone(),
        );
        if i >= 20 {
            rt.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    Figures {
        spawn_ms: f64::NAN,
        p50_us: percentile(&mut rt.clone(), 0.5),
        p99_us: percentile(&mut rt, 0.99),
    }
}

/// rmcp (the client library agents-agent uses) in this process, no gRPC:
/// separates the library's cost from the relay's.
async fn rmcp_in_process(argv: &[String], tool: &str, args: &str) -> Figures {
    use rmcp::ServiceExt;
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    let proc = rmcp::transport::TokioChildProcess::new(cmd).expect("spawn the server");
    let service = ().serve(proc).await.expect("initialize");
    let args = match serde_json::from_str(args).expect("args JSON") {
        serde_json::Value::Object(m) => m,
        other => panic!("args must be an object: {other}"),
    };
    let mut rt = Vec::new();
    for i in 0..CALLS + 20 {
        let params =
            rmcp::model::CallToolRequestParams::new(tool.to_owned()).with_arguments(args.clone());
        let t = Instant::now();
        let r = service.call_tool(params).await.expect("call");
        if i >= 20 {
            rt.push(t.elapsed().as_secs_f64() * 1e6);
        }
        assert!(!r.is_error.unwrap_or(false), "{r:?}");
    }
    let _ = service.cancel().await;
    Figures {
        spawn_ms: f64::NAN,
        p50_us: percentile(&mut rt.clone(), 0.5),
        p99_us: percentile(&mut rt, 0.99),
    }
}

fn python_sdk(argv: &[String], tool: &str, args: &str) -> Figures {
    let out = std::process::Command::new(python())
        .arg(repo_root().join("tests/python/mcp_bench_client.py"))
        .args([
            SPAWNS.to_string(),
            (CALLS + 20).to_string(),
            tool.into(),
            args.into(),
        ])
        .args(argv)
        .output()
        .expect("python baseline");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("baseline JSON");
    let mut spawn: Vec<f64> = v["spawn_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    Figures {
        spawn_ms: percentile(&mut spawn, 0.5),
        p50_us: v["call_p50_us"].as_f64().unwrap(),
        p99_us: v["call_p99_us"].as_f64().unwrap(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let suite = Suite::start(FAST);
    suite
        .wait_state("agents", "running", Duration::from_secs(30))
        .await;
    let mut mcp = McpClient::new(suite.channel());
    let time = vec![
        python().display().to_string(),
        "-m".into(),
        "mcp_server_time".into(),
        "--local-timezone".into(),
        "UTC".into(),
    ];
    let npm = std::env::var("COWORK_TEST_NPM").expect("COWORK_TEST_NPM (scripts/bench.sh sets it)");
    let everything = vec![
        "node".to_string(),
        format!("{npm}/node_modules/@modelcontextprotocol/server-everything/dist/index.js"),
        "stdio".into(),
    ];
    let cases = [
        (
            "mcp-server-time get_current_time",
            "time",
            &time,
            "get_current_time",
            r#"{"timezone":"UTC"}"#,
        ),
        (
            "server-everything echo",
            "ev",
            &everything,
            "echo",
            r#"{"message":"hi"}"#,
        ),
    ];
    println!(
        "| server, measure | through the suite | Python MCP SDK (same run) | ratio / target |"
    );
    println!("|---|---|---|---|");
    for (label, name, argv, tool, args) in cases {
        let o = ours(&mut mcp, name, argv, tool, args).await;
        let p = python_sdk(argv, tool, args);
        // Where our time goes: the same calls straight to agents-agent's
        // socket, without the coworkd hop.
        let mut direct = McpClient::new(cowork_proto::uds::channel(
            &suite.paths.worker_socket("agents"),
        ));
        let d = ours(&mut direct, &format!("{name}d"), argv, tool, args).await;
        println!(
            "| {label}: round trip p50 ({CALLS} calls) | {:.0} µs | {:.0} µs | {:.2}× (target ≤ 0.5×) |",
            o.p50_us, p.p50_us, o.p50_us / p.p50_us
        );
        println!(
            "| {label}: round trip p99 | {:.0} µs | {:.0} µs | {:.2}× |",
            o.p99_us,
            p.p99_us,
            o.p99_us / p.p99_us
        );
        println!(
            "| {label}: round trip p50 straight to agents-agent (no coworkd hop) | {:.0} µs | {:.0} µs | {:.2}× |",
            d.p50_us,
            p.p50_us,
            d.p50_us / p.p50_us
        );
        let r = rmcp_in_process(argv, tool, args).await;
        println!(
            "| {label}: round trip p50, rmcp client in the bench process (no gRPC) | {:.0} µs | {:.0} µs | {:.2}× |",
            r.p50_us,
            p.p50_us,
            r.p50_us / p.p50_us
        );
        let f = raw_floor(argv, tool, args);
        println!(
            "| {label}: round trip p50, floor: raw JSON-RPC lines on the server's pipes, no client library | {:.0} µs | {:.0} µs | {:.2}× (the best any client could do) |",
            f.p50_us,
            p.p50_us,
            f.p50_us / p.p50_us
        );
        println!(
            "| {label}: spawn to ready, median of {SPAWNS} | {:.0} ms | {:.0} ms | {:.2}× |",
            o.spawn_ms,
            p.spawn_ms,
            o.spawn_ms / p.spawn_ms
        );
    }
}
