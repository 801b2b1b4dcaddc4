//! coworkctl: the command-line client of the Cowork daemon suite.
//!
//! This file parses the arguments, connects to coworkd's public socket and
//! turns errors into exit codes; each domain's commands (their clap types,
//! what they run, and their pure renderers) live in a file of their own,
//! and [`context`] decides between a table and `--json` in one place.

mod agent;
mod approvals;
mod apps;
mod audio;
mod automations;
mod browser;
mod capture;
mod chat;
mod context;
mod engines;
mod gateway;
mod mcp;
mod memory;
mod models;
mod notifications;
mod system;
mod trace;
mod ui;

use clap::{Parser, Subcommand};
use context::{Ctx, EXIT_UNREACHABLE, EXIT_USAGE};
use cowork_proto::paths::CoworkPaths;
use std::path::PathBuf;
use std::process::ExitCode;

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
    #[command(flatten)]
    Suite(system::Cmd),
    /// Capture streams: status, consent, recent records.
    Capture {
        #[command(subcommand)]
        command: capture::Cmd,
    },
    /// Local model engines: each instance, its health and its models.
    Engines,
    /// One call's spans across processes as a waterfall: `trace <ID>` (a
    /// call's `cowork-trace-id`), `trace last [--op ID]`, or `trace status`
    /// (what is stored, the settings, spans lost).
    Trace(trace::Args),
    /// Chat: `chat "<message>"` prints the answer as it streams; `chat
    /// threads`, `chat show ID`, `chat usage` and `chat key PROVIDER`.
    Chat(chat::Args),
    /// Agent operations: the model works on a task with the MCP tools.
    Agent {
        #[command(subcommand)]
        command: agent::Cmd,
    },
    /// Tool calls waiting for your approval.
    Approvals {
        #[command(subcommand)]
        command: approvals::Cmd,
    },
    /// MCP servers and their tools.
    Mcp {
        #[command(subcommand)]
        command: mcp::Cmd,
    },
    /// Model files: verified, resumable downloads into the home's models/
    /// directory, and fit checks.
    Models {
        #[command(subcommand)]
        command: models::Cmd,
    },
    /// The machine: memory, CPU load, GPUs and VRAM (the numbers `models
    /// fit` uses); `system restore-local` brings local AI back after the
    /// machine cooled down.
    System {
        #[command(subcommand)]
        command: Option<system::SystemCmd>,
    },
    /// Automations: flows that run on a schedule, a capture pattern, an MCP
    /// notification or by hand; their runs.
    Automations {
        #[command(subcommand)]
        command: automations::Cmd,
    },
    /// Proactive notifications: list, accept, dismiss, expand; the throttle.
    Notifications {
        #[command(subcommand)]
        command: notifications::Cmd,
    },
    /// The audio stream: status, enable, disable, transcripts (recorded
    /// and transcribed on this machine only).
    Audio {
        #[command(subcommand)]
        command: audio::Cmd,
    },
    /// Installed web apps: install a zip, list, show, open, audit, remove.
    Apps {
        #[command(subcommand)]
        command: apps::Cmd,
    },
    /// The local OpenAI-compatible API on 127.0.0.1 (off by default).
    Gateway {
        #[command(subcommand)]
        command: gateway::Cmd,
    },
    /// Memory: search everything captured or said; indexing status,
    /// forget, reindex, import; the profile (working memory) and pins.
    Memory {
        #[command(subcommand)]
        command: memory::Cmd,
    },
    /// The Context Card: what the agent sees right now (active window,
    /// recent activity, working memory, pins); with --query, the context
    /// a question would be given, without calling a model.
    Context(memory::ContextArgs),
    /// The web UI in a browser tab: turn it on (the first time), and open
    /// its address with a one-time sign-in code (`--no-open` prints it).
    Ui(ui::Args),
    /// The browser: open, snapshot (elements with refs), click, type,
    /// press, select, scroll, text, eval, screenshot, tabs, back, log.
    Browser {
        #[command(subcommand)]
        command: browser::Cmd,
    },
}

fn main() -> ExitCode {
    let args = Args::parse_from(chat::mark_message(std::env::args_os().collect()));
    let paths = match CoworkPaths::resolve(args.home.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("coworkctl: cannot find the Cowork home: {e}");
            return ExitCode::from(EXIT_USAGE);
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
        let mut ctx = Ctx::new(args.json, channel);
        match run(args.command, &mut ctx).await {
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

async fn run(cmd: Cmd, ctx: &mut Ctx) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Suite(c) => system::run(c, ctx).await,
        Cmd::Capture { command } => capture::run(command, ctx).await,
        Cmd::Engines => engines::run(ctx).await,
        Cmd::Trace(a) => trace::run(a, ctx).await,
        Cmd::Chat(a) => chat::run(a, ctx).await,
        Cmd::Agent { command } => agent::run(command, ctx).await,
        Cmd::Approvals { command } => approvals::run(command, ctx).await,
        Cmd::Mcp { command } => mcp::run(command, ctx).await,
        Cmd::Models { command } => models::run(command, ctx).await,
        Cmd::System { command: None } => system::system(ctx).await,
        Cmd::System { command: Some(c) } => system::system_cmd(c, ctx).await,
        Cmd::Automations { command } => automations::run(command, ctx).await,
        Cmd::Notifications { command } => notifications::run(command, ctx).await,
        Cmd::Apps { command } => apps::run(command, ctx).await,
        Cmd::Audio { command } => audio::run(command, ctx).await,
        Cmd::Gateway { command } => gateway::run(command, ctx).await,
        Cmd::Memory { command } => memory::run(command, ctx).await,
        Cmd::Context(a) => memory::context(a, ctx).await,
        Cmd::Browser { command } => browser::run(command, ctx).await,
        Cmd::Ui(a) => ui::run(a, ctx).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn chat_help_lists_its_subcommands() {
        let mut cli = Args::command();
        let help = cli
            .find_subcommand_mut("chat")
            .expect("a chat command")
            .render_help()
            .to_string();
        for sub in ["threads", "show", "usage", "key"] {
            assert!(
                help.lines().any(|l| l.trim_start().starts_with(sub)),
                "{sub} missing from:\n{help}"
            );
        }
    }

    #[test]
    fn the_browser_commands_keep_their_names_and_flags() {
        let cli = Args::command();
        let browser = cli
            .get_subcommands()
            .find(|c| c.get_name() == "browser")
            .expect("a browser command");
        let names: Vec<&str> = browser.get_subcommands().map(|c| c.get_name()).collect();
        for name in [
            "open",
            "snapshot",
            "click",
            "type",
            "press",
            "select",
            "scroll",
            "text",
            "eval",
            "screenshot",
            "tabs",
            "back",
            "log",
            "close",
        ] {
            assert!(names.contains(&name), "browser {name} missing: {names:?}");
        }
        let flag = |sub: &str, long: &str| {
            browser
                .get_subcommands()
                .find(|c| c.get_name() == sub)
                .is_some_and(|c| c.get_arguments().any(|a| a.get_long() == Some(long)))
        };
        assert!(flag("type", "submit"));
        assert!(flag("snapshot", "max-chars"));
        // `--json` is global: `browser snapshot --json`, `browser log --json`.
        assert!(Args::try_parse_from(["coworkctl", "browser", "snapshot", "--json"]).is_ok());
        assert!(Args::try_parse_from(["coworkctl", "browser", "log", "--json"]).is_ok());
        assert!(
            Args::try_parse_from(["coworkctl", "browser", "type", "e3", "hi", "--submit"]).is_ok()
        );
    }

    #[test]
    fn every_command_keeps_its_name() {
        let cli = Args::command();
        let names: Vec<&str> = cli.get_subcommands().map(|c| c.get_name()).collect();
        for name in [
            "status",
            "retry",
            "watch",
            "shutdown",
            "ping",
            "capture",
            "engines",
            "chat",
            "agent",
            "approvals",
            "mcp",
            "models",
            "system",
            "gateway",
            "memory",
            "browser",
            "ui",
        ] {
            assert!(names.contains(&name), "{name} missing: {names:?}");
        }
        Args::command().debug_assert();
    }
}
