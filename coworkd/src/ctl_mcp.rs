//! How `coworkctl mcp` shows things: the server table and the `--json`
//! shapes.

use cowork_proto::pb::mcp as pb;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// One server as JSON: `{"name","transport","command","url","status",
/// "error","pid","tool_count","connection_state","approval_policy",
/// "enabled","secret_env","secret_headers","headers","catalog_id","config"}`
/// (secret names only, never their values).
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
        "secret_headers": s.secret_headers,
        "headers": s.headers,
        "catalog_id": if s.catalog_id.is_empty() { Value::Null } else { json!(s.catalog_id) },
        "config": s.config,
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
        if s.connection_state == "CONFIG_REQUIRED" {
            let _ = writeln!(out, "  CONFIG_REQUIRED: {}", s.error);
        } else if !s.error.is_empty() {
            let _ = writeln!(out, "  error: {} (at {})", s.error, s.connection_state);
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

/// Parse `NAME:VALUE` (a header).
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("expected NAME:VALUE, not {s:?}")),
    }
}

/// Values given as `KEY=VALUE`, or `KEY` alone for one secret read from
/// stdin (never argv: argv shows in `ps` and shell history).
#[derive(Debug, Default)]
pub struct StdinOnce {
    used: Option<String>,
}

impl StdinOnce {
    /// The pair `arg` names; `flag` is for the error.
    pub fn value_of(&mut self, arg: &str, flag: &str) -> Result<(String, String), String> {
        if arg.contains('=') {
            return parse_env(arg);
        }
        if let Some(first) = &self.used {
            return Err(format!(
                "{flag} {arg}: only one value can come from stdin ({first} already does); \
                 give the others as KEY=VALUE"
            ));
        }
        self.used = Some(arg.to_owned());
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("{flag} {arg}: cannot read stdin: {e}"))?;
        let value = line.trim_end_matches(['\r', '\n']).to_owned();
        if value.is_empty() {
            return Err(format!("{flag} {arg}: stdin gave no value"));
        }
        Ok((arg.to_owned(), value))
    }
}

/// `mcp catalog --json`: `{"entries":[{"id","title","description",
/// "transport","command","url","config_schema"}],"problems":[...]}`.
pub fn catalog_json(r: &pb::ListCatalogResponse) -> Value {
    let entries: Vec<Value> = r
        .entries
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "title": e.title,
                "description": e.description,
                "transport": e.transport,
                "command": e.command,
                "url": if e.url.is_empty() { Value::Null } else { json!(e.url) },
                "config_schema": serde_json::from_str::<Value>(&e.config_schema_json)
                    .unwrap_or(Value::Null),
            })
        })
        .collect();
    json!({ "entries": entries, "problems": r.problems })
}

/// `mcp catalog` as text: each server, then its settings.
pub fn catalog_text(r: &pb::ListCatalogResponse) -> String {
    let mut out = String::new();
    for e in &r.entries {
        let _ = writeln!(out, "{:<16} {} — {}", e.id, e.title, e.description);
        let schema: Value = serde_json::from_str(&e.config_schema_json).unwrap_or(Value::Null);
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        if let Some(props) = schema["properties"].as_object() {
            for (k, p) in props {
                let mut notes = Vec::new();
                if required.contains(&k.as_str()) {
                    notes.push("required".to_string());
                }
                if p["writeOnly"] == true {
                    notes.push("secret".to_string());
                }
                if let Some(d) = p["default"].as_str() {
                    notes.push(format!("default {d}"));
                }
                let title = p["title"].as_str().unwrap_or("");
                let _ = writeln!(out, "    --config {k}=…  {title} [{}]", notes.join(", "));
            }
        }
    }
    for p in &r.problems {
        let _ = writeln!(out, "warning: {p}");
    }
    if r.entries.is_empty() {
        out.push_str("no bundled MCP servers\n");
    }
    out
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
        assert_eq!(
            parse_header("Authorization: Bearer x:y").unwrap(),
            ("Authorization".into(), "Bearer x:y".into())
        );
        assert!(parse_header("novalue").is_err());
        let r = pb::ListCatalogResponse {
            entries: vec![pb::CatalogEntry {
                id: "brave".into(),
                title: "Brave".into(),
                config_schema_json: r#"{"type":"object","required":["api_key"],
                    "properties":{"api_key":{"type":"string","title":"Key","writeOnly":true}}}"#
                    .into(),
                ..Default::default()
            }],
            problems: vec!["x.json: not JSON".into()],
        };
        let t = catalog_text(&r);
        assert!(
            t.contains("--config api_key=…  Key [required, secret]"),
            "{t}"
        );
        assert!(t.contains("warning: x.json"), "{t}");
        assert_eq!(
            catalog_json(&r)["entries"][0]["config_schema"]["required"][0],
            "api_key"
        );
    }
}
