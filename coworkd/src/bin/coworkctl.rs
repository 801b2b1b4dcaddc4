//! coworkctl: the command-line client of the Cowork daemon suite.

use anyhow::Result;
use clap::{Parser, Subcommand};
use cowork_proto::paths::CoworkPaths;
use cowork_proto::pb::system::{system_client::SystemClient, *};
use cowork_proto::pb::worker::{worker_client::WorkerClient, PingRequest};
use coworkd::ctl;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// Exit status when coworkd cannot be reached.
const EXIT_UNREACHABLE: u8 = 3;
/// How long one call may take before coworkd counts as not answering.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Exit 0 on success, 1 otherwise.
fn exit_code(success: bool) -> ExitCode {
    if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A request with coworkctl's deadline, so a hung coworkd cannot hang us.
fn call<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(CALL_TIMEOUT);
    r
}

/// Control the Cowork daemon suite.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Cowork home directory (default: $COWORK_HOME, else the platform data dir).
    #[arg(long, value_name = "DIR", global = true)]
    home: Option<PathBuf>,
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Each worker's state, pid, uptime, restarts, memory, CPU and reason.
    Status,
    /// Restart a worker from scratch (after it failed, or any time).
    Retry {
        /// capture, agents or browser.
        worker: String,
    },
    /// Print every worker state change as it happens (Ctrl-C to stop).
    Watch,
    /// Stop every worker and coworkd.
    Shutdown,
    /// Capture streams: status, consent, recent records.
    Capture {
        #[command(subcommand)]
        command: CaptureCmd,
    },
    /// Local model engines: each instance, its health and its models.
    Engines,
    /// Chat: `chat "<message>"` prints the answer as it streams;
    /// `chat threads` lists threads; `chat show ID` prints one; `chat usage`
    /// shows the usage ledger against the plan's quota and caps; `chat key
    /// PROVIDER` stores the API key read from stdin in the OS credential
    /// store (empty input deletes it).
    Chat {
        /// The message (or `threads`, `show ID`, `usage`).
        #[arg(required = true)]
        words: Vec<String>,
        /// Continue this thread.
        #[arg(long, value_name = "ID")]
        thread: Option<String>,
        /// Prefer the local brain.
        #[arg(long, conflicts_with = "cloud")]
        local: bool,
        /// Prefer the cloud.
        #[arg(long)]
        cloud: bool,
        /// Retry this assistant message with the next tier ("try harder").
        #[arg(long, value_name = "MESSAGE_ID")]
        retry_smarter: Option<String>,
        /// Run as a background job: it goes to the local engine's cron
        /// companion when one is up (main/cron isolation).
        #[arg(long)]
        background: bool,
    },
    /// Agent operations: the model works on a task with the MCP tools.
    Agent {
        #[command(subcommand)]
        command: AgentCmd,
    },
    /// Tool calls waiting for your approval.
    Approvals {
        #[command(subcommand)]
        command: ApprovalsCmd,
    },
    /// MCP servers and their tools.
    Mcp {
        #[command(subcommand)]
        command: McpCmd,
    },
    /// Model files: verified, resumable downloads into the home's models/
    /// directory, and fit checks.
    Models {
        #[command(subcommand)]
        command: ModelsCmd,
    },
    /// The machine: memory, CPU load, GPUs and VRAM (the numbers `models
    /// fit` uses).
    System,
    /// The local OpenAI-compatible API on 127.0.0.1 (off by default).
    Gateway {
        #[command(subcommand)]
        command: GatewayCmd,
    },
    /// Round trips to a worker through coworkd.
    Ping {
        /// capture, agents or browser.
        worker: String,
        /// How many round trips.
        #[arg(long, default_value_t = 5)]
        count: u32,
    },
}

#[derive(Debug, Subcommand)]
enum CaptureCmd {
    /// Each stream: enabled, source, events in the last minute, last event.
    Status,
    /// Turn a stream on (window, focus, keystrokes or clipboard).
    Enable {
        /// window, focus, keystrokes or clipboard.
        stream: String,
    },
    /// Turn a stream off: it is no longer even read from its source.
    Disable {
        /// window, focus, keystrokes or clipboard.
        stream: String,
    },
    /// Recent records, newest first.
    Recent {
        /// Only this stream (repeatable).
        #[arg(long = "stream", value_name = "STREAM")]
        streams: Vec<String>,
        /// At most this many records.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only records from this long ago on (e.g. 90s, 10m, 2h, 7d).
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
        /// Only records before this long ago (e.g. 5m).
        #[arg(long, value_name = "DURATION")]
        until: Option<String>,
    },
    /// The window that has focus now.
    Window,
}

#[derive(Debug, Subcommand)]
enum AgentCmd {
    /// Start an operation and wait until it finishes, fails, pauses or
    /// waits for an approval.
    Run {
        /// The task, in words.
        #[arg(required = true)]
        task: Vec<String>,
        /// Force this tool (server/tool) on the first model call.
        #[arg(long, value_name = "SERVER/TOOL")]
        tool_choice: Option<String>,
        /// Run as an automation (routine tools run unattended).
        #[arg(long)]
        automation: bool,
        /// Step limit (default 10).
        #[arg(long, default_value_t = 0)]
        max_steps: u32,
        /// Return at once instead of waiting.
        #[arg(long)]
        no_wait: bool,
    },
    /// One operation.
    Show {
        /// Its id.
        id: String,
    },
    /// Operations, newest first.
    List,
    /// Resume a paused operation.
    Resume {
        /// Its id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum ModelsCmd {
    /// Download one or more files (in parallel, with one progress bar).
    /// Resumes a partial download of the same URL; verifies size and
    /// SHA-256. Ctrl-C leaves it running in agents-agent.
    Pull {
        /// The file's URL (several: one task with several files).
        #[arg(required = true)]
        urls: Vec<String>,
        /// Expected SHA-256 (one URL only).
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
        /// Save as this name under models/ (one URL only; default: the
        /// URL's file name).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Another URL for the same file, tried in order when the first
        /// fails (one URL only; repeatable).
        #[arg(long = "mirror", value_name = "URL")]
        mirrors: Vec<String>,
        /// Task id (default: the first file's name).
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        /// Start it and return at once.
        #[arg(long)]
        detach: bool,
    },
    /// Follow a running download.
    Watch {
        /// The task id.
        id: String,
    },
    /// Model files and download records.
    List,
    /// Stop a download; its partial files stay for a resume.
    Cancel {
        /// The task id.
        id: String,
    },
    /// Delete a download (stopping it) with its files, or a model file.
    Rm {
        /// A task id or a file name under models/.
        id: String,
    },
    /// Will this model fit this machine? Explains the verdict.
    Fit {
        /// A GGUF file, an http(s) URL (only its metadata is read) or
        /// ollama:<name>.
        source: String,
        /// Context in tokens (default: [agents] local_context_tokens).
        #[arg(long, value_name = "N")]
        ctx: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
enum GatewayCmd {
    /// Turn it on (it stays on across restarts).
    Enable {
        /// Port on 127.0.0.1 (default: the one set before, else 7339).
        #[arg(long)]
        port: Option<u16>,
    },
    /// Turn it off.
    Disable,
    /// Whether it is on, its URL, whether it is listening.
    Status,
    /// Print the API key clients send (Authorization: Bearer, or
    /// X-Api-Key).
    Key {
        /// Make a new key (the old one stops working).
        #[arg(long)]
        rotate: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ApprovalsCmd {
    /// Tool calls waiting for a person.
    List,
    /// Approve one (ID as `approvals list` shows it: OPERATION/CALL).
    Approve {
        /// OPERATION/CALL.
        id: String,
    },
    /// Reject one: the model is told and decides what next.
    Reject {
        /// OPERATION/CALL.
        id: String,
    },
}

fn operation_json(o: &cowork_proto::pb::agents::Operation) -> serde_json::Value {
    serde_json::json!({
        "id": o.id, "task": o.task, "status": o.status, "step": o.step,
        "max_steps": o.max_steps, "result": o.result, "reason": o.reason,
        "cost_usd": o.cost_usd,
        "pending": o.pending.iter().map(pending_json).collect::<Vec<_>>(),
        "tool_calls": o.tool_calls.iter().map(|c| serde_json::json!({
            "server": c.server, "tool": c.tool, "arguments": c.arguments_json,
            "outcome": c.outcome, "result": c.result})).collect::<Vec<_>>(),
    })
}

fn pending_json(p: &cowork_proto::pb::agents::PendingCall) -> serde_json::Value {
    serde_json::json!({
        "id": format!("{}/{}", p.operation_id, p.call_id),
        "operation_id": p.operation_id, "call_id": p.call_id, "server": p.server,
        "tool": p.tool, "arguments": p.arguments_json, "phase": p.phase, "reason": p.reason})
}

fn show_operation(
    o: &cowork_proto::pb::agents::Operation,
    json: bool,
    out: &mut impl Write,
) -> Result<ExitCode> {
    if json {
        writeln!(out, "{}", operation_json(o))?;
    } else {
        writeln!(
            out,
            "{}  {}  step {}/{}  {}",
            o.id, o.status, o.step, o.max_steps, o.task
        )?;
        for c in &o.tool_calls {
            writeln!(
                out,
                "  {} {}/{} {} → {}",
                c.outcome, c.server, c.tool, c.arguments_json, c.result
            )?;
        }
        for p in &o.pending {
            writeln!(
                out,
                "  waiting: {}/{} {}/{} {} ({})",
                p.operation_id, p.call_id, p.server, p.tool, p.arguments_json, p.reason
            )?;
        }
        if !o.reason.is_empty() {
            writeln!(out, "  {}", o.reason)?;
        }
        if !o.result.is_empty() {
            writeln!(out, "{}", o.result)?;
        }
    }
    Ok(exit_code(o.status != "error"))
}

async fn run_agent(
    cmd: AgentCmd,
    json: bool,
    channel: Channel,
    out: &mut impl Write,
) -> Result<ExitCode> {
    use cowork_proto::pb::agents::{agents_client::AgentsClient, *};
    let mut c = AgentsClient::new(channel);
    let op = match cmd {
        AgentCmd::Run {
            task,
            tool_choice,
            automation,
            max_steps,
            no_wait,
        } => c
            .start_operation(long(StartOperationRequest {
                task: task.join(" "),
                tool_choice: tool_choice.unwrap_or_default(),
                automation,
                max_steps,
                wait: !no_wait,
            }))
            .await?
            .into_inner(),
        AgentCmd::Show { id } => c
            .get_operation(call(OperationRef { id }))
            .await?
            .into_inner(),
        AgentCmd::Resume { id } => c
            .resume_operation(long(OperationRef { id }))
            .await?
            .into_inner(),
        AgentCmd::List => {
            let r = c
                .list_operations(call(ListOperationsRequest { limit: 50 }))
                .await?
                .into_inner();
            for o in &r.operations {
                if json {
                    writeln!(out, "{}", operation_json(o))?;
                } else {
                    writeln!(out, "{}  {:<17} {}", o.id, o.status, o.task)?;
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    show_operation(&op, json, out)
}

async fn run_approvals(
    cmd: ApprovalsCmd,
    json: bool,
    channel: Channel,
    out: &mut impl Write,
) -> Result<ExitCode> {
    use cowork_proto::pb::agents::{agents_client::AgentsClient, *};
    let mut c = AgentsClient::new(channel);
    let split = |id: &str| -> Result<ApprovalRef> {
        match id.split_once('/') {
            Some((o, c)) if !o.is_empty() && !c.is_empty() => Ok(ApprovalRef {
                operation_id: o.into(),
                call_id: c.into(),
            }),
            _ => Err(anyhow::anyhow!(
                "an approval id is OPERATION/CALL, as `coworkctl approvals list` shows it"
            )),
        }
    };
    let op = match cmd {
        ApprovalsCmd::List => {
            let r = c
                .list_approvals(call(ListApprovalsRequest {}))
                .await?
                .into_inner();
            if json {
                let v: Vec<_> = r.pending.iter().map(pending_json).collect();
                writeln!(out, "{}", serde_json::json!({ "pending": v }))?;
            } else if r.pending.is_empty() {
                writeln!(out, "nothing waits for approval")?;
            } else {
                for p in &r.pending {
                    writeln!(
                        out,
                        "{}/{}  {}/{} {}\n  {}",
                        p.operation_id, p.call_id, p.server, p.tool, p.arguments_json, p.reason
                    )?;
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        ApprovalsCmd::Approve { id } => c.approve(long(split(&id)?)).await?.into_inner(),
        ApprovalsCmd::Reject { id } => c.reject(long(split(&id)?)).await?.into_inner(),
    };
    show_operation(&op, json, out)
}

#[derive(Debug, Subcommand)]
enum McpCmd {
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

/// A request that may start an MCP server (npx, uvx): no short deadline.
fn long<T>(m: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(m);
    r.set_timeout(Duration::from_secs(300));
    r
}

async fn run_mcp(
    cmd: McpCmd,
    json: bool,
    channel: Channel,
    out: &mut impl Write,
) -> Result<ExitCode> {
    use cowork_proto::pb::mcp::{mcp_client::McpClient, *};
    use coworkd::ctl_mcp::{server_json, servers_table, tool_json};
    let mut c = McpClient::new(channel);
    let show = |s: &Server, out: &mut dyn Write| -> Result<ExitCode> {
        if json {
            writeln!(out, "{}", server_json(s))?;
        } else {
            write!(out, "{}", servers_table(std::slice::from_ref(s)))?;
        }
        Ok(
            if s.status == "error" || s.connection_state == "CONFIG_REQUIRED" {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            },
        )
    };
    match cmd {
        McpCmd::Add {
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
            use coworkd::ctl_mcp::{parse_env, parse_header, StdinOnce};
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
                .add_server(long(AddServerRequest {
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
            return show(&s, out);
        }
        McpCmd::Configure { name, config } => {
            let mut stdin = coworkd::ctl_mcp::StdinOnce::default();
            let config = pairs(&config, |c| stdin.value_of(c, "--config"))?;
            let s = c
                .configure_server(long(ConfigureServerRequest { name, config }))
                .await?
                .into_inner();
            return show(&s, out);
        }
        McpCmd::Catalog => {
            let r = c
                .list_catalog(call(ListCatalogRequest {}))
                .await?
                .into_inner();
            if json {
                writeln!(out, "{}", coworkd::ctl_mcp::catalog_json(&r))?;
            } else {
                write!(out, "{}", coworkd::ctl_mcp::catalog_text(&r))?;
            }
        }
        McpCmd::List => {
            let r = c
                .list_servers(call(ListServersRequest {}))
                .await?
                .into_inner();
            if json {
                let v: Vec<_> = r.servers.iter().map(server_json).collect();
                writeln!(out, "{}", serde_json::json!({ "servers": v }))?;
            } else {
                write!(out, "{}", servers_table(&r.servers))?;
            }
        }
        McpCmd::Connect { name } => {
            let s = c
                .connect_server(long(ServerRef { name }))
                .await?
                .into_inner();
            return show(&s, out);
        }
        McpCmd::Disconnect { name } => {
            let s = c
                .disconnect_server(long(ServerRef { name }))
                .await?
                .into_inner();
            return show(&s, out);
        }
        McpCmd::Remove { name } => {
            c.remove_server(long(ServerRef { name: name.clone() }))
                .await?;
            if json {
                writeln!(out, "{}", serde_json::json!({ "removed": name }))?;
            } else {
                writeln!(out, "removed {name}")?;
            }
        }
        McpCmd::Tools { name } => {
            let r = c.list_tools(long(ServerRef { name })).await?.into_inner();
            if json {
                let v: Vec<_> = r.tools.iter().map(tool_json).collect();
                writeln!(out, "{}", serde_json::json!({ "tools": v }))?;
            } else {
                for t in &r.tools {
                    let first = t.description.lines().next().unwrap_or("");
                    writeln!(out, "{:<28} {first}", t.name)?;
                }
            }
        }
        McpCmd::Call {
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
                    return Ok(ExitCode::from(2));
                }
                Err(e) => {
                    eprintln!("coworkctl: --args is not JSON: {e}");
                    return Ok(ExitCode::from(2));
                }
            }
            let r = c
                .call_tool(long(CallToolRequest {
                    server: name,
                    tool,
                    arguments_json: args,
                    timeout_ms: timeout_ms.unwrap_or(0),
                    call_id: call_id.unwrap_or_default(),
                }))
                .await?
                .into_inner();
            if json {
                let result: serde_json::Value =
                    serde_json::from_str(&r.result_json).unwrap_or_default();
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"call_id": r.call_id, "is_error": r.is_error,
                        "text": r.text, "result": result, "duration_ms": r.duration_ms})
                )?;
            } else {
                writeln!(out, "{}", r.text)?;
            }
            if r.is_error {
                eprintln!("coworkctl: the tool reported an error");
                return Ok(ExitCode::FAILURE);
            }
        }
        McpCmd::Abort { call_id } => {
            let r = c
                .abort_call(call(AbortCallRequest {
                    call_id: call_id.clone(),
                }))
                .await?
                .into_inner();
            if json {
                writeln!(out, "{}", serde_json::json!({ "aborted": r.aborted }))?;
            } else if r.aborted {
                writeln!(out, "aborted {call_id}")?;
            } else {
                writeln!(out, "no call {call_id} in flight")?;
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn run_capture(
    cmd: CaptureCmd,
    json: bool,
    channel: Channel,
    out: &mut impl Write,
) -> Result<ExitCode> {
    use cowork_proto::pb::capture::{capture_client::CaptureClient, *};
    use coworkd::ctl_capture as cc;
    let mut client = CaptureClient::new(channel);
    let now = now_unix_ms();
    match cmd {
        CaptureCmd::Status => {
            let s = client
                .get_status(call(GetStatusRequest {}))
                .await?
                .into_inner();
            if json {
                writeln!(out, "{}", cc::status_json(&s))?;
            } else {
                write!(out, "{}", cc::status_table(&s, now))?;
            }
        }
        CaptureCmd::Enable { stream } => set_stream(&mut client, stream, true, json, out).await?,
        CaptureCmd::Disable { stream } => set_stream(&mut client, stream, false, json, out).await?,
        CaptureCmd::Recent {
            streams,
            limit,
            since,
            until,
        } => {
            let ago = |d: Option<String>| -> Result<i64> {
                match d {
                    None => Ok(0),
                    Some(d) => Ok(now - cc::parse_duration_ms(&d).map_err(anyhow::Error::msg)?),
                }
            };
            let r = client
                .list_recent(call(ListRecentRequest {
                    from_unix_ms: ago(since)?,
                    to_unix_ms: ago(until)?,
                    limit,
                    streams,
                }))
                .await?
                .into_inner();
            if json {
                writeln!(out, "{}", cc::recent_json(&r))?;
            } else {
                write!(out, "{}", cc::recent_table(&r, now))?;
            }
        }
        CaptureCmd::Window => {
            let w = client
                .get_active_window(call(GetActiveWindowRequest {}))
                .await?
                .into_inner();
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "known": w.known, "app": w.app, "app_id": w.app_id, "title": w.title,
                        "url": w.url, "since_unix_ms": w.since_unix_ms,
                        "denylisted": w.denylisted,
                        "away": if w.away.is_empty() { None } else { Some(&w.away) },
                    })
                )?;
            } else if !w.known {
                writeln!(out, "no active window known")?;
            } else if w.denylisted {
                writeln!(out, "{} (denylisted: not recorded)", w.app)?;
            } else {
                writeln!(
                    out,
                    "{} ({}): {}{} — since {}",
                    w.app,
                    w.app_id,
                    w.title,
                    if w.url.is_empty() {
                        String::new()
                    } else {
                        format!(" <{}>", w.url)
                    },
                    cc::age(now, w.since_unix_ms)
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_stream(
    client: &mut cowork_proto::pb::capture::capture_client::CaptureClient<Channel>,
    stream: String,
    enabled: bool,
    json: bool,
    out: &mut impl Write,
) -> Result<()> {
    use cowork_proto::pb::capture::SetStreamEnabledRequest;
    let r = client
        .set_stream_enabled(call(SetStreamEnabledRequest { stream, enabled }))
        .await?
        .into_inner();
    let Some(s) = r.stream else {
        anyhow::bail!("capture-agent answered without the stream's status");
    };
    if json {
        writeln!(out, "{}", coworkd::ctl_capture::stream_json(&s))?;
    } else {
        writeln!(out, "{}: {}", s.name, if s.enabled { "on" } else { "off" })?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn run_chat(
    words: Vec<String>,
    thread: Option<String>,
    local: bool,
    cloud: bool,
    retry_smarter: Option<String>,
    background: bool,
    json: bool,
    channel: Channel,
    out: &mut impl Write,
) -> Result<ExitCode> {
    use cowork_proto::pb::chat::{chat_chunk::Chunk, chat_client::ChatClient, *};
    let mut client = ChatClient::new(channel);
    let words_ref: Vec<&str> = words.iter().map(String::as_str).collect();
    match words_ref.as_slice() {
        ["threads"] => {
            let r = client
                .list_threads(call(ListThreadsRequest { limit: 50 }))
                .await?
                .into_inner();
            for t in &r.threads {
                if json {
                    writeln!(
                        out,
                        "{}",
                        serde_json::json!({"id": t.id, "title": t.title,
                            "messages": t.message_count, "updated_unix_ms": t.updated_unix_ms})
                    )?;
                } else {
                    writeln!(out, "{}  {:>3} msgs  {}", t.id, t.message_count, t.title)?;
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        ["key", provider] => {
            // From stdin, never argv (argv shows in `ps` and shell history).
            let mut key = String::new();
            std::io::stdin().read_line(&mut key)?;
            let r = client
                .set_provider_key(call(SetProviderKeyRequest {
                    provider: provider.to_string(),
                    api_key: key.trim().to_owned(),
                }))
                .await?
                .into_inner();
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"cloud_providers": r.cloud_providers})
                )?;
            } else if key.trim().is_empty() {
                writeln!(out, "deleted the {provider} key from the credential store")?;
            } else {
                writeln!(out, "stored the {provider} key in the credential store")?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        ["usage"] => {
            let u = client
                .get_usage(call(GetUsageRequest {}))
                .await?
                .into_inner();
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"plan": u.plan,
                        "free_tokens_this_month": u.free_tokens_this_month,
                        "free_monthly_tokens": u.free_monthly_tokens,
                        "spent_today_usd": u.spent_today_usd,
                        "spent_this_week_usd": u.spent_this_week_usd,
                        "spent_this_month_usd": u.spent_this_month_usd,
                        "caps_usd": {"per_interaction": u.cap_per_interaction_usd,
                            "daily": u.cap_daily_usd, "weekly": u.cap_weekly_usd,
                            "monthly": u.cap_monthly_usd},
                        "calls_this_month": u.calls_this_month,
                        "cloud_providers": u.cloud_providers})
                )?;
            } else {
                writeln!(out, "plan: {}", u.plan)?;
                writeln!(
                    out,
                    "free tokens this month: {} of {}",
                    u.free_tokens_this_month, u.free_monthly_tokens
                )?;
                writeln!(
                    out,
                    "spent: ${:.4} today (cap ${:.2}), ${:.4} this week (cap ${:.2}), \
                     ${:.4} this month (cap ${:.2}); ${:.2} per interaction",
                    u.spent_today_usd,
                    u.cap_daily_usd,
                    u.spent_this_week_usd,
                    u.cap_weekly_usd,
                    u.spent_this_month_usd,
                    u.cap_monthly_usd,
                    u.cap_per_interaction_usd
                )?;
                writeln!(out, "model calls this month: {}", u.calls_this_month)?;
                let cloud = if u.cloud_providers.is_empty() {
                    "none (no API key set)".to_owned()
                } else {
                    u.cloud_providers.join(", ")
                };
                writeln!(out, "cloud providers: {cloud}")?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        ["show", id] => {
            let r = client
                .get_thread(call(GetThreadRequest {
                    thread_id: id.to_string(),
                }))
                .await?
                .into_inner();
            for m in &r.messages {
                if json {
                    writeln!(
                        out,
                        "{}",
                        serde_json::json!({"id": m.id, "role": m.role, "content": m.content,
                            "model": m.model, "ask_id": m.ask_id, "finish_reason": m.finish_reason})
                    )?;
                } else {
                    let who = if m.role == "user" {
                        "you".to_owned()
                    } else {
                        m.model.clone()
                    };
                    writeln!(out, "[{who}] ({})\n{}\n", m.id, m.content)?;
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let preference = if local {
        "local"
    } else if cloud {
        "cloud"
    } else {
        ""
    };
    // No overall deadline: an answer may take a while; each chunk is shown
    // as it arrives.
    let mut stream = client
        .send_message(SendMessageRequest {
            thread_id: thread.unwrap_or_default(),
            text: words.join(" "),
            preference: preference.into(),
            retry_of_message_id: retry_smarter.unwrap_or_default(),
            attachments: 0,
            tools: 0,
            background,
        })
        .await?
        .into_inner();
    let mut failed = false;
    while let Some(c) = stream.message().await? {
        let Some(c) = c.chunk else { continue };
        if json {
            let v = match &c {
                Chunk::Route(r) => {
                    serde_json::json!({"route": {"model": r.model, "reason": r.reason,
                    "notice": r.notice, "cost_estimate_usd": r.cost_estimate_usd,
                    "thread_id": r.thread_id, "message_id": r.message_id, "ask_id": r.ask_id, "engine": r.engine}})
                }
                Chunk::Delta(d) => serde_json::json!({"delta": d.text}),
                Chunk::Usage(u) => serde_json::json!({"usage": {"prompt_tokens": u.prompt_tokens,
                    "completion_tokens": u.completion_tokens}}),
                Chunk::Finish(f) => serde_json::json!({"finish": f.reason}),
                Chunk::Error(e) => serde_json::json!({"error": e.message}),
            };
            writeln!(out, "{v}")?;
            if matches!(c, Chunk::Error(_)) {
                failed = true;
            }
            out.flush()?;
            continue;
        }
        match c {
            Chunk::Route(r) => {
                if r.engine.is_empty() {
                    eprintln!("→ {} ({})", r.model, r.reason);
                } else {
                    eprintln!("→ {} via {} ({})", r.model, r.engine, r.reason);
                }
                if !r.notice.is_empty() {
                    eprintln!("  {}", r.notice);
                }
                eprintln!("  thread {}  message {}", r.thread_id, r.message_id);
            }
            Chunk::Delta(d) => {
                write!(out, "{}", d.text)?;
                out.flush()?;
            }
            Chunk::Usage(u) => {
                eprintln!(
                    "\n  {} prompt + {} completion tokens",
                    u.prompt_tokens, u.completion_tokens
                )
            }
            Chunk::Finish(_) => writeln!(out)?,
            Chunk::Error(e) => {
                writeln!(out)?;
                eprintln!("coworkctl: chat failed: {}", e.message);
                failed = true;
            }
        }
    }
    Ok(exit_code(!failed))
}

/// Print a task's progress until it ends: a redrawn bar on a terminal,
/// one line per event otherwise, JSON lines with `--json`.
async fn follow_pull(
    mut stream: tonic::Streaming<cowork_proto::pb::models::PullProgress>,
    json: bool,
    out: &mut impl Write,
) -> Result<ExitCode> {
    use coworkd::ctl_models::{progress_json, progress_line, pull_outcome};
    use std::io::IsTerminal;
    let tty = !json && std::io::stdout().is_terminal();
    let mut last = None;
    let mut window: Option<(Instant, u64)> = None;
    while let Some(p) = stream.message().await? {
        let rate = match window {
            Some((t, b)) if t.elapsed() > Duration::from_millis(200) && p.downloaded >= b => {
                Some((p.downloaded - b) as f64 / t.elapsed().as_secs_f64())
            }
            _ => None,
        };
        if window.is_none() {
            window = Some((Instant::now(), p.downloaded));
        }
        if json {
            writeln!(out, "{}", progress_json(&p))?;
        } else if tty {
            write!(out, "\r\x1b[2K{}", progress_line(&p, rate))?;
        } else {
            writeln!(out, "{}", progress_line(&p, rate))?;
        }
        out.flush()?;
        last = Some(p);
    }
    let Some(p) = last else {
        anyhow::bail!("agents-agent closed the progress stream without a word");
    };
    if !json {
        if tty {
            writeln!(out)?;
        }
        writeln!(out, "{}", pull_outcome(&p))?;
    }
    Ok(exit_code(p.state == "done"))
}

async fn run_models(
    cmd: ModelsCmd,
    json: bool,
    channel: Channel,
    out: &mut impl Write,
) -> Result<ExitCode> {
    use cowork_proto::pb::models::{models_client::ModelsClient, *};
    use coworkd::ctl_models as fmt;
    let mut c = ModelsClient::new(channel);
    match cmd {
        ModelsCmd::Pull {
            urls,
            sha256,
            name,
            mirrors,
            id,
            detach,
        } => {
            if urls.len() > 1 && (sha256.is_some() || name.is_some() || !mirrors.is_empty()) {
                anyhow::bail!("--sha256, --name and --mirror apply to one URL; pull files one by one to give them");
            }
            let files = urls
                .iter()
                .map(|u| {
                    let mut all = vec![u.clone()];
                    all.extend(mirrors.iter().cloned());
                    PullFile {
                        urls: all,
                        name: name.clone().unwrap_or_default(),
                        sha256: sha256.clone().unwrap_or_default(),
                        size: 0,
                    }
                })
                .collect();
            let stream = c
                .pull(tonic::Request::new(PullRequest {
                    id: id.unwrap_or_default(),
                    files,
                }))
                .await?
                .into_inner();
            if detach {
                let mut stream = stream;
                if let Some(p) = stream.message().await? {
                    if json {
                        writeln!(out, "{}", fmt::progress_json(&p))?;
                    } else {
                        writeln!(out, "started {} (`coworkctl models watch {}`)", p.id, p.id)?;
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            return follow_pull(stream, json, out).await;
        }
        ModelsCmd::Watch { id } => {
            let stream = c
                .watch(tonic::Request::new(DownloadRef { id }))
                .await?
                .into_inner();
            return follow_pull(stream, json, out).await;
        }
        ModelsCmd::List => {
            let r = c.list(call(ListRequest {})).await?.into_inner();
            if json {
                writeln!(out, "{}", fmt::list_json(&r))?;
            } else {
                write!(out, "{}", fmt::list_table(&r))?;
            }
        }
        ModelsCmd::Cancel { id } => {
            let r = c
                .cancel(long(DownloadRef { id: id.clone() }))
                .await?
                .into_inner();
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"id": id, "cancelled": r.cancelled})
                )?;
            } else if r.cancelled {
                writeln!(out, "cancelled {id}; pull the same URL again to resume")?;
            } else {
                writeln!(out, "{id} is not running")?;
                return Ok(ExitCode::FAILURE);
            }
        }
        ModelsCmd::Rm { id } => {
            let r = c
                .remove(long(DownloadRef { id: id.clone() }))
                .await?
                .into_inner();
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"id": id, "deleted": r.deleted})
                )?;
            } else {
                writeln!(out, "removed {id} ({} files deleted)", r.deleted.len())?;
            }
        }
        ModelsCmd::Fit { source, ctx } => {
            // A local path is sent absolute: agents-agent has another cwd.
            let lower = source.to_ascii_lowercase();
            let source = if !lower.starts_with("http://")
                && !lower.starts_with("https://")
                && !lower.starts_with("ollama:")
                && std::path::Path::new(&source).exists()
            {
                std::fs::canonicalize(&source)?.display().to_string()
            } else {
                source
            };
            let r = c
                .fit(long(FitRequest {
                    source,
                    ctx: ctx.unwrap_or(0),
                }))
                .await?
                .into_inner();
            if json {
                writeln!(out, "{}", fmt::fit_json(&r))?;
            } else {
                write!(out, "{}", fmt::fit_text(&r))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let paths = match CoworkPaths::resolve(args.home.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("coworkctl: cannot find the Cowork home: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("coworkctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let socket = paths.public_socket();
        let channel = match cowork_proto::uds::connect(&socket).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!(
                    "coworkctl: coworkd is not running: cannot connect to {} ({e}).\n\
                     Start it with `coworkd --home {}` (or `systemctl --user start coworkd`).",
                    socket.display(),
                    paths.home.display()
                );
                return ExitCode::from(EXIT_UNREACHABLE);
            }
        };
        match run(args, channel).await {
            Ok(code) => code,
            Err(e) => match e.downcast_ref::<tonic::Status>() {
                Some(s)
                    if matches!(
                        s.code(),
                        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
                    ) =>
                {
                    eprintln!(
                        "coworkctl: coworkd at {} is not answering ({}); it may be hung: \
                         check {}",
                        socket.display(),
                        s.message(),
                        paths.log_file("coworkd").display()
                    );
                    ExitCode::from(EXIT_UNREACHABLE)
                }
                Some(s) => {
                    eprintln!("coworkctl: {:?}: {}", s.code(), s.message());
                    ExitCode::FAILURE
                }
                None => {
                    eprintln!("coworkctl: {e:#}");
                    ExitCode::FAILURE
                }
            },
        }
    })
}

async fn run(args: Args, channel: Channel) -> Result<ExitCode> {
    let mut system = SystemClient::new(channel.clone());
    let mut out = std::io::stdout().lock();
    match args.command {
        Cmd::Status => {
            let s = system.status(call(StatusRequest {})).await?.into_inner();
            if args.json {
                writeln!(out, "{}", ctl::status_json(&s))?;
            } else {
                write!(out, "{}", ctl::status_table(&s))?;
            }
        }
        Cmd::Retry { worker } => {
            let r = system
                .retry(call(RetryRequest { worker }))
                .await?
                .into_inner();
            let Some(w) = r.status else {
                anyhow::bail!("coworkd answered without a status");
            };
            if args.json {
                writeln!(out, "{}", ctl::worker_json(&w))?;
            } else {
                writeln!(
                    out,
                    "{}: {} (pid {})",
                    w.name,
                    cowork_proto::status::state_name(w.state),
                    w.pid
                )?;
            }
        }
        Cmd::Watch => {
            let mut stream = system
                .watch_health(WatchHealthRequest {
                    include_current: true,
                })
                .await?
                .into_inner();
            while let Some(e) = stream.message().await? {
                if args.json {
                    writeln!(out, "{}", ctl::event_json(&e))?;
                } else {
                    writeln!(out, "{}", ctl::event_line(&e))?;
                }
                out.flush()?;
            }
            eprintln!("coworkctl: coworkd closed the stream (shutting down)");
        }
        Cmd::Shutdown => {
            system.shutdown(call(ShutdownRequest {})).await?;
            if !args.json {
                writeln!(out, "coworkd is shutting down")?;
            } else {
                writeln!(out, "{}", serde_json::json!({"shutdown": true}))?;
            }
        }
        Cmd::Chat {
            words,
            thread,
            local,
            cloud,
            retry_smarter,
            background,
        } => {
            return run_chat(
                words,
                thread,
                local,
                cloud,
                retry_smarter,
                background,
                args.json,
                channel,
                &mut out,
            )
            .await;
        }
        Cmd::Engines => {
            use cowork_proto::pb::engines::{engines_client::EnginesClient, ListEnginesRequest};
            let r = EnginesClient::new(channel)
                .list_engines(call(ListEnginesRequest {}))
                .await?
                .into_inner();
            if args.json {
                writeln!(out, "{}", coworkd::ctl_engines::engines_json(&r))?;
            } else {
                write!(out, "{}", coworkd::ctl_engines::engines_table(&r))?;
            }
        }
        Cmd::Agent { command } => {
            return run_agent(command, args.json, channel, &mut out).await;
        }
        Cmd::Approvals { command } => {
            return run_approvals(command, args.json, channel, &mut out).await;
        }
        Cmd::Mcp { command } => {
            return run_mcp(command, args.json, channel, &mut out).await;
        }
        Cmd::Capture { command } => {
            return run_capture(command, args.json, channel, &mut out).await;
        }
        Cmd::Models { command } => {
            return run_models(command, args.json, channel, &mut out).await;
        }
        Cmd::Gateway { command } => {
            use cowork_proto::pb::gateway::{gateway_client::GatewayClient, *};
            let mut c = GatewayClient::new(channel);
            let show = |s: &GatewayStatus, out: &mut dyn Write| -> Result<()> {
                if args.json {
                    writeln!(out, "{}", coworkd::ctl_models::gateway_json(s))?;
                } else {
                    writeln!(out, "{}", coworkd::ctl_models::gateway_text(s))?;
                }
                Ok(())
            };
            match command {
                GatewayCmd::Enable { port } => {
                    let s = c
                        .enable(call(EnableRequest {
                            port: port.map(u32::from).unwrap_or(0),
                        }))
                        .await?
                        .into_inner();
                    show(&s, &mut out)?;
                }
                GatewayCmd::Disable => {
                    let s = c.disable(call(DisableRequest {})).await?.into_inner();
                    show(&s, &mut out)?;
                }
                GatewayCmd::Status => {
                    let s = c.get_status(call(GetStatusRequest {})).await?.into_inner();
                    show(&s, &mut out)?;
                    if s.enabled && !s.listening {
                        return Ok(ExitCode::FAILURE);
                    }
                }
                GatewayCmd::Key { rotate } => {
                    let k = c
                        .get_key(call(GetKeyRequest { rotate }))
                        .await?
                        .into_inner();
                    if args.json {
                        writeln!(out, "{}", serde_json::json!({"key": k.key}))?;
                    } else {
                        writeln!(out, "{}", k.key)?;
                    }
                }
            }
        }
        Cmd::System => {
            use cowork_proto::pb::models::{models_client::ModelsClient, GetSystemRequest};
            let s = ModelsClient::new(channel)
                .get_system(call(GetSystemRequest {}))
                .await?
                .into_inner();
            if args.json {
                writeln!(out, "{}", coworkd::ctl_models::system_json(&s))?;
            } else {
                write!(out, "{}", coworkd::ctl_models::system_text(&s))?;
            }
        }
        Cmd::Ping { worker, count } => {
            let mut client = WorkerClient::new(channel);
            let mut times = Vec::new();
            let mut pid = 0;
            for _ in 0..count.max(1) {
                let mut req = call(PingRequest {
                    payload: b"ping".to_vec(),
                });
                req.metadata_mut().insert(
                    cowork_proto::grpc::WORKER_HEADER,
                    worker
                        .parse()
                        .map_err(|_| anyhow::anyhow!("bad worker name {worker:?}"))?,
                );
                let t = Instant::now();
                pid = client.ping(req).await?.into_inner().pid;
                times.push(t.elapsed().as_micros() as u64);
            }
            if args.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"worker": worker, "pid": pid, "round_trip_us": times})
                )?;
            } else {
                let list: Vec<String> = times.iter().map(|t| format!("{t} µs")).collect();
                writeln!(out, "{worker} (pid {pid}): {}", list.join(", "))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
