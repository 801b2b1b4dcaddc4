//! `coworkctl mcp`: MCP servers (added by command, URL or a bundled
//! definition), their tools, and calls to them (`cowork.mcp.v1`).

use crate::context::{call, long, Ctx, EXIT_USAGE};
use anyhow::Result;
use clap::Subcommand;
use cowork_proto::pb::mcp::{self as pb, mcp_client::McpClient};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::process::ExitCode;

/// `coworkctl mcp`.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Add a server: `mcp add NAME -- COMMAND [ARGS...]` (stdio), `mcp add
    /// NAME --url URL` (streamable HTTP) or `mcp add NAME --from ID
    /// [--config KEY=VALUE...]` (bundled, see `mcp catalog`), and connect
    /// to it.
    Add {
        /// Its name.
        name: String,
        /// Streamable HTTP endpoint.
        #[arg(long, conflicts_with = "command")]
        url: Option<String>,
        /// A bundled server's id (`mcp catalog`).
        #[arg(long = "from", value_name = "ID", conflicts_with_all = ["command", "url"])]
        from: Option<String>,
        /// A bundled server's setting, KEY=VALUE (repeatable); KEY alone
        /// reads a secret from stdin.
        #[arg(long = "config", value_name = "KEY[=VALUE]", requires = "from")]
        config: Vec<String>,
        /// Extra header for an HTTP server, NAME:VALUE (repeatable; not for
        /// secrets).
        #[arg(long = "header", value_name = "NAME:VALUE", requires = "url")]
        header: Vec<String>,
        /// A secret header for an HTTP server (e.g. Authorization):
        /// NAME=VALUE, or NAME alone to read the value from stdin. Kept in
        /// the OS credential store, never in cowork.db.
        #[arg(long = "secret-header", value_name = "NAME[=VALUE]", requires = "url")]
        secret_header: Vec<String>,
        /// Extra environment for a stdio server, KEY=VALUE (repeatable; not
        /// for secrets).
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// A secret for a stdio server (API key, token): KEY=VALUE, or KEY
        /// alone to take the value from this shell's $KEY (repeatable). It
        /// is kept in the OS credential store, never in cowork.db.
        #[arg(long = "secret-env", value_name = "KEY[=VALUE]")]
        secret_env: Vec<String>,
        /// default, auto or manual.
        #[arg(long, default_value = "default")]
        approval_policy: String,
        /// The program and its arguments (after --).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Every server with its status.
    List,
    /// The bundled servers you can add with `--from`, and their settings.
    Catalog,
    /// Give a bundled server its settings and connect it (after
    /// CONFIG_REQUIRED, or to change them).
    Configure {
        /// The server.
        name: String,
        /// KEY=VALUE (repeatable); KEY alone reads a secret from stdin.
        #[arg(long = "config", value_name = "KEY[=VALUE]", required = true)]
        config: Vec<String>,
    },
    /// Reconnect a server (and turn it on).
    Connect {
        /// The server.
        name: String,
    },
    /// Stop a server (and turn it off).
    Disconnect {
        /// The server.
        name: String,
    },
    /// Disconnect and forget a server.
    Remove {
        /// The server.
        name: String,
    },
    /// A server's tools.
    Tools {
        /// The server.
        name: String,
    },
    /// Call a tool and print its result (exit 1 when the tool fails).
    Call {
        /// The server.
        name: String,
        /// The tool.
        tool: String,
        /// Arguments, a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
        /// Give up after this many milliseconds (default 60000).
        #[arg(long, value_name = "MS")]
        timeout_ms: Option<u32>,
        /// An id for `mcp abort`.
        #[arg(long, value_name = "ID")]
        call_id: Option<String>,
    },
    /// Abort a call in flight.
    Abort {
        /// Its call id.
        call_id: String,
    },
}

/// Parse each of `items` into a pair (flags like `--env K=V`).
fn pairs(
    items: &[String],
    mut parse: impl FnMut(&str) -> Result<(String, String), String>,
) -> Result<std::collections::HashMap<String, String>> {
    items
        .iter()
        .map(|i| parse(i))
        .collect::<Result<_, _>>()
        .map_err(anyhow::Error::msg)
}

/// Run an `mcp` command.
pub async fn run(cmd: Cmd, ctx: &mut Ctx) -> Result<ExitCode> {
    let mut c = McpClient::new(ctx.channel.clone());
    match cmd {
        Cmd::Add {
            name,
            url,
            from,
            config,
            header,
            secret_header,
            env,
            secret_env,
            approval_policy,
            command,
        } => {
            let mut stdin = StdinOnce::default();
            let config = pairs(&config, |c| stdin.value_of(c, "--config"))?;
            let secret_headers = pairs(&secret_header, |c| stdin.value_of(c, "--secret-header"))?;
            let headers = pairs(&header, parse_header)?;
            let secret_env = pairs(&secret_env, |e| match e.split_once('=') {
                Some(_) => parse_env(e),
                None => std::env::var(e)
                    .map(|v| (e.to_owned(), v))
                    .map_err(|_| format!("--secret-env {e}: ${e} is not set in this shell")),
            })?;
            let env = pairs(&env, parse_env)?;
            let s = c
                .add_server(long(pb::AddServerRequest {
                    name,
                    command,
                    url: url.unwrap_or_default(),
                    env,
                    approval_policy,
                    secret_env,
                    headers,
                    secret_headers,
                    catalog_id: from.unwrap_or_default(),
                    config,
                }))
                .await?
                .into_inner();
            return show(&s, ctx);
        }
        Cmd::Configure { name, config } => {
            let mut stdin = StdinOnce::default();
            let config = pairs(&config, |c| stdin.value_of(c, "--config"))?;
            let s = c
                .configure_server(long(pb::ConfigureServerRequest { name, config }))
                .await?
                .into_inner();
            return show(&s, ctx);
        }
        Cmd::Catalog => {
            let r = c
                .list_catalog(call(pb::ListCatalogRequest {}))
                .await?
                .into_inner();
            ctx.show_block(|| catalog_json(&r), || catalog_text(&r))?;
        }
        Cmd::List => {
            let r = c
                .list_servers(call(pb::ListServersRequest {}))
                .await?
                .into_inner();
            ctx.show_block(
                || json!({ "servers": r.servers.iter().map(server_json).collect::<Vec<_>>() }),
                || servers_table(&r.servers),
            )?;
        }
        Cmd::Connect { name } => {
            let s = c
                .connect_server(long(pb::ServerRef { name }))
                .await?
                .into_inner();
            return show(&s, ctx);
        }
        Cmd::Disconnect { name } => {
            let s = c
                .disconnect_server(long(pb::ServerRef { name }))
                .await?
                .into_inner();
            return show(&s, ctx);
        }
        Cmd::Remove { name } => {
            c.remove_server(long(pb::ServerRef { name: name.clone() }))
                .await?;
            ctx.show(|| json!({ "removed": name }), || format!("removed {name}"))?;
        }
        Cmd::Tools { name } => {
            let r = c
                .list_tools(long(pb::ServerRef { name }))
                .await?
                .into_inner();
            ctx.show_block(
                || json!({ "tools": r.tools.iter().map(tool_json).collect::<Vec<_>>() }),
                || tools_text(&r.tools),
            )?;
        }
        Cmd::Call {
            name,
            tool,
            args,
            timeout_ms,
            call_id,
        } => {
            match serde_json::from_str::<serde_json::Value>(&args) {
                Ok(serde_json::Value::Object(_)) => {}
                Ok(_) => {
                    eprintln!("coworkctl: --args must be a JSON object, like '{{\"key\": 1}}'");
                    return Ok(ExitCode::from(EXIT_USAGE));
                }
                Err(e) => {
                    eprintln!("coworkctl: --args is not JSON: {e}");
                    return Ok(ExitCode::from(EXIT_USAGE));
                }
            }
            let r = c
                .call_tool(long(pb::CallToolRequest {
                    server: name,
                    tool,
                    arguments_json: args,
                    timeout_ms: timeout_ms.unwrap_or(0),
                    call_id: call_id.unwrap_or_default(),
                }))
                .await?
                .into_inner();
            ctx.show(|| call_json(&r), || r.text.clone())?;
            if r.is_error {
                eprintln!("coworkctl: the tool reported an error");
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Abort { call_id } => {
            let r = c
                .abort_call(call(pb::AbortCallRequest {
                    call_id: call_id.clone(),
                }))
                .await?
                .into_inner();
            ctx.show(
                || json!({ "aborted": r.aborted }),
                || match r.aborted {
                    true => format!("aborted {call_id}"),
                    false => format!("no call {call_id} in flight"),
                },
            )?;
            if !r.aborted && !ctx.json {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Print a server; exit 1 when it is in error or still needs settings.
fn show(s: &pb::Server, ctx: &mut Ctx) -> Result<ExitCode> {
    ctx.show_block(|| server_json(s), || servers_table(std::slice::from_ref(s)))?;
    Ok(
        if s.status == "error" || s.connection_state == "CONFIG_REQUIRED" {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// `mcp call --json`: the call id, whether the tool failed, its text, the
/// whole result and how long it took.
pub fn call_json(r: &pb::CallToolResponse) -> Value {
    let result: Value = serde_json::from_str(&r.result_json).unwrap_or_default();
    json!({"call_id": r.call_id, "is_error": r.is_error,
        "text": r.text, "result": result, "duration_ms": r.duration_ms})
}

/// `mcp tools`: each tool's name and the first line of its description.
pub fn tools_text(tools: &[pb::Tool]) -> String {
    let mut s = String::new();
    for t in tools {
        let first = t.description.lines().next().unwrap_or("");
        let _ = writeln!(s, "{:<28} {first}", t.name);
    }
    s
}

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

    #[test]
    fn tools_and_calls() {
        let t = tools_text(&[pb::Tool {
            name: "get_current_time".into(),
            description: "Get the time.\nMore.".into(),
            ..Default::default()
        }]);
        assert_eq!(t, format!("{:<28} Get the time.\n", "get_current_time"));
        let v = call_json(&pb::CallToolResponse {
            call_id: "c1".into(),
            result_json: "{\"content\":[]}".into(),
            text: "09:00".into(),
            ..Default::default()
        });
        assert_eq!(v["result"]["content"], json!([]));
        assert_eq!(
            (v["call_id"].as_str(), v["is_error"].as_bool()),
            (Some("c1"), Some(false))
        );
    }
}
