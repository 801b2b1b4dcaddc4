//! How `coworkctl mcp` shows things: the server table and the `--json`
//! shapes.

use cowork_proto::pb::mcp as pb;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// One server as JSON: `{"name","transport","command","url","status",
/// "error","pid","tool_count","connection_state","approval_policy",
/// "enabled","secret_env"}` (secret names only).
pub fn server_json(s: &pb::Server) -> Value {
    json!({
        "name": s.name,
        "transport": s.transport,
        "command": s.command,
        "url": if s.url.is_empty() { Value::Null } else { json!(s.url) },
        "status": s.status,
        "error": if s.error.is_empty() { Value::Null } else { json!(s.error) },
        "pid": if s.pid == 0 { Value::Null } else { json!(s.pid) },
        "tool_count": s.tool_count,
        "connection_state": s.connection_state,
        "approval_policy": s.approval_policy,
        "enabled": s.enabled,
        "secret_env": s.secret_env,
    })
}

/// `mcp list` as a table.
pub fn servers_table(servers: &[pb::Server]) -> String {
    let mut out = String::new();
    if servers.is_empty() {
        out.push_str("no MCP servers; add one with `coworkctl mcp add NAME -- COMMAND...`\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<20} {:<6} {:<9} {:>5}  COMMAND / URL",
        "NAME", "KIND", "STATUS", "TOOLS"
    );
    for s in servers {
        let target = if s.url.is_empty() {
            s.command.join(" ")
        } else {
            s.url.clone()
        };
        let _ = writeln!(
            out,
            "{:<20} {:<6} {:<9} {:>5}  {}",
            s.name, s.transport, s.status, s.tool_count, target
        );
        if !s.error.is_empty() {
            let _ = writeln!(out, "  error: {}", s.error);
        }
    }
    out
}

/// A tool as JSON: `{"name","description","input_schema"}`.
pub fn tool_json(t: &pb::Tool) -> Value {
    json!({
        "name": t.name,
        "description": t.description,
        "input_schema": serde_json::from_str::<Value>(&t.input_schema_json).unwrap_or(Value::Null),
    })
}

/// Parse `KEY=VALUE`.
pub fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, not {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let s = pb::Server {
            name: "time".into(),
            transport: "stdio".into(),
            command: vec!["python".into(), "-m".into(), "mcp_server_time".into()],
            status: "running".into(),
            pid: 42,
            tool_count: 2,
            ..Default::default()
        };
        let v = server_json(&s);
        assert_eq!(v["pid"], 42);
        assert_eq!(v["url"], Value::Null);
        let t = servers_table(&[s]);
        assert!(t.contains("python -m mcp_server_time"), "{t}");
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert!(parse_env("=x").is_err());
    }
}
