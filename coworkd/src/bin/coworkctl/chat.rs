//! `coworkctl chat`: ask and stream the answer (`chat "<message>"`), and
//! the threads, a thread, the usage ledger and cloud keys
//! (`cowork.chat.v1`).

use crate::context::{call, exit_code, now_unix_ms, Ctx};
use anyhow::Result;
use cowork_proto::pb::chat::{self as pb, chat_chunk::Chunk, chat_client::ChatClient};
use serde_json::{json, Value};
use std::io::Write as _;
use std::process::ExitCode;

/// `coworkctl chat`: a message, or one of the subcommands.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// The message (its answer is printed as it streams).
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
    /// A grounded question: answered from memory only, refused (without
    /// a model call) when memory holds nothing relevant.
    #[arg(long)]
    grounded: bool,
    /// Start the thread as an installed app's conversation (its read
    /// lane's `data.conversations` returns it; `apps remove` deletes it).
    #[arg(long = "app", value_name = "APP_ID")]
    app_id: Option<String>,
}

/// `coworkctl chat` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Threads, newest first.
    Threads,
    /// One thread's messages.
    Show {
        /// The thread's id.
        id: String,
    },
    /// The usage ledger against the plan's free quota and spend caps.
    Usage,
    /// Store a cloud provider's API key, read from stdin, in the OS
    /// credential store (empty input deletes it).
    Key {
        /// gemini or openrouter.
        provider: String,
    },
}

/// `chat`'s options that take a value (the global `--home` too).
const VALUE_OPTIONS: [&str; 4] = ["--thread", "--retry-smarter", "--home", "--app"];

/// Keep `coworkctl chat WORDS...` a message whatever its words: only
/// `threads`, `show ID`, `usage` and `key PROVIDER`, exactly, are
/// subcommands (as before they were subcommands clap knew). Any other
/// words after `chat` are marked as the message (`--` after chat's
/// options), so `chat show me the logs` asks the model.
pub fn mark_message(argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let text: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // Find `chat`: the first word that is not an option (or its value).
    let mut i = 1;
    while i < text.len() && text[i].starts_with('-') {
        i += if text[i] == "--home" { 2 } else { 1 };
    }
    if text.get(i).map(String::as_str) != Some("chat") {
        return argv;
    }
    let (mut options, mut words) = (Vec::new(), Vec::new());
    let mut j = i + 1;
    while j < text.len() {
        let a = text[j].as_str();
        if a == "--" {
            return argv;
        }
        if a.starts_with('-') {
            options.push(j);
            if VALUE_OPTIONS.contains(&a) && j + 1 < text.len() {
                options.push(j + 1);
                j += 1;
            }
        } else {
            words.push(j);
        }
        j += 1;
    }
    let shape: Vec<&str> = words.iter().map(|&w| text[w].as_str()).collect();
    let subcommand = matches!(
        shape.as_slice(),
        ["threads"] | ["usage"] | ["show", _] | ["key", _] | ["help"] | ["help", _]
    );
    if subcommand
        || words.is_empty()
        || options
            .iter()
            .any(|&o| text[o] == "-h" || text[o] == "--help")
    {
        return argv;
    }
    let mut out: Vec<std::ffi::OsString> = argv[..=i].to_vec();
    out.extend(options.iter().map(|&o| argv[o].clone()));
    out.push("--".into());
    out.extend(words.iter().map(|&w| argv[w].clone()));
    out
}

/// Run `chat`.
pub async fn run(args: Args, ctx: &mut Ctx) -> Result<ExitCode> {
    let mut client = ChatClient::new(ctx.channel.clone());
    match args.command {
        Some(Cmd::Threads) => {
            let r = client
                .list_threads(call(pb::ListThreadsRequest { limit: 50 }))
                .await?
                .into_inner();
            for t in &r.threads {
                ctx.show(|| thread_json(t), || thread_line(t))?;
            }
        }
        Some(Cmd::Show { id }) => {
            let r = client
                .get_thread(call(pb::GetThreadRequest { thread_id: id }))
                .await?
                .into_inner();
            for m in &r.messages {
                ctx.show_block(|| message_json(m), || message_text(m))?;
            }
        }
        Some(Cmd::Usage) => {
            let u = client
                .get_usage(call(pb::GetUsageRequest {}))
                .await?
                .into_inner();
            ctx.show_block(|| usage_json(&u), || usage_text(&u))?;
        }
        Some(Cmd::Key { provider }) => {
            // From stdin, never argv (argv shows in `ps` and shell history).
            let mut key = String::new();
            std::io::stdin().read_line(&mut key)?;
            let key = key.trim().to_owned();
            let r = client
                .set_provider_key(call(pb::SetProviderKeyRequest {
                    provider: provider.clone(),
                    api_key: key.clone(),
                }))
                .await?
                .into_inner();
            ctx.show(
                || json!({"cloud_providers": r.cloud_providers}),
                || match key.is_empty() {
                    true => format!("deleted the {provider} key from the credential store"),
                    false => format!("stored the {provider} key in the credential store"),
                },
            )?;
        }
        None => return ask(args, ctx, &mut client).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// Send the message and print the answer as it streams: text on stdout,
/// the route and usage on stderr (one JSON chunk a line with `--json`).
/// Exit 1 on an error chunk.
async fn ask(
    args: Args,
    ctx: &mut Ctx,
    client: &mut ChatClient<tonic::transport::Channel>,
) -> Result<ExitCode> {
    let preference = if args.local {
        "local"
    } else if args.cloud {
        "cloud"
    } else {
        ""
    };
    // No overall deadline: an answer may take a while; each chunk is shown
    // as it arrives.
    let stream = client
        .send_message(pb::SendMessageRequest {
            thread_id: args.thread.unwrap_or_default(),
            text: args.words.join(" "),
            preference: preference.into(),
            retry_of_message_id: args.retry_smarter.unwrap_or_default(),
            attachments: 0,
            tools: 0,
            background: args.background,
            grounded: args.grounded,
            app_id: args.app_id.unwrap_or_default(),
        })
        .await?;
    // The trace coworkd recorded this call under (`coworkctl trace ID`).
    let trace_id = stream
        .metadata()
        .get(cowork_proto::traces::TRACE_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut stream = stream.into_inner();
    let mut failed = false;
    let mut sources = Vec::new();
    while let Some(c) = stream.message().await? {
        let Some(c) = c.chunk else { continue };
        failed |= matches!(c, Chunk::Error(_));
        if ctx.json {
            let mut v = chunk_json(&c);
            if let (Some(id), Some(route)) = (&trace_id, v.get_mut("route")) {
                route["trace_id"] = json!(id);
            }
            writeln!(ctx.out, "{v}")?;
            ctx.out.flush()?;
            continue;
        }
        match c {
            Chunk::Route(r) => eprint!("{}", route_text(&r)),
            Chunk::Delta(d) => {
                write!(ctx.out, "{}", d.text)?;
                ctx.out.flush()?;
            }
            Chunk::Usage(u) => {
                eprintln!(
                    "\n  {} prompt + {} completion tokens",
                    u.prompt_tokens, u.completion_tokens
                )
            }
            Chunk::Citations(c) => sources = c.citations,
            Chunk::Finish(_) => {
                writeln!(ctx.out)?;
                if !sources.is_empty() {
                    write!(
                        ctx.out,
                        "\nSources:\n{}",
                        crate::memory::citations_text(&sources, now_unix_ms())
                    )?;
                }
            }
            Chunk::Error(e) => {
                writeln!(ctx.out)?;
                eprintln!("coworkctl: chat failed: {}", e.message);
            }
        }
    }
    Ok(exit_code(!failed))
}

/// One streamed chunk as `chat --json` prints it: `{"route": {...}}`,
/// `{"citations": [...]}` (the sources the answer is given, before its
/// text), `{"delta": TEXT}`, `{"usage": {...}}`, `{"finish": REASON}`
/// ("refusal" for a grounded question memory could not ground) or
/// `{"error": MESSAGE}`.
pub fn chunk_json(c: &Chunk) -> Value {
    match c {
        Chunk::Route(r) => json!({"route": {"model": r.model, "reason": r.reason,
            "notice": r.notice, "cost_estimate_usd": r.cost_estimate_usd,
            "thread_id": r.thread_id, "message_id": r.message_id, "ask_id": r.ask_id,
            "engine": r.engine, "reload_ms": r.reload_ms}}),
        Chunk::Citations(c) => json!({"citations": crate::memory::citations_json(&c.citations)}),
        Chunk::Delta(d) => json!({"delta": d.text}),
        Chunk::Usage(u) => json!({"usage": {"prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens}}),
        Chunk::Finish(f) => json!({"finish": f.reason}),
        Chunk::Error(e) => json!({"error": e.message}),
    }
}

/// The route decision as the person sees it on stderr.
pub fn route_text(r: &pb::RouteDecision) -> String {
    let mut s = if r.engine.is_empty() {
        format!("→ {} ({})\n", r.model, r.reason)
    } else {
        format!("→ {} via {} ({})\n", r.model, r.engine, r.reason)
    };
    if !r.notice.is_empty() {
        s += &format!("  {}\n", r.notice);
    }
    if let Some(ms) = r.reload_ms {
        s += &format!(
            "  {} was started again first ({:.1} s)\n",
            r.engine,
            ms as f64 / 1000.0
        );
    }
    s + &format!("  thread {}  message {}\n", r.thread_id, r.message_id)
}

/// One thread in `chat threads --json`.
pub fn thread_json(t: &pb::Thread) -> Value {
    json!({"id": t.id, "title": t.title, "messages": t.message_count,
        "updated_unix_ms": t.updated_unix_ms, "app_id": t.app_id})
}

/// One thread in `chat threads`.
pub fn thread_line(t: &pb::Thread) -> String {
    format!("{}  {:>3} msgs  {}", t.id, t.message_count, t.title)
}

/// One message in `chat show --json`.
pub fn message_json(m: &pb::Message) -> Value {
    json!({"id": m.id, "role": m.role, "content": m.content,
        "model": m.model, "ask_id": m.ask_id, "finish_reason": m.finish_reason,
        "citations": crate::memory::citations_json(&m.citations)})
}

/// One message in `chat show`: who, its id, the text, a blank line.
pub fn message_text(m: &pb::Message) -> String {
    let who = if m.role == "user" {
        "you"
    } else if m.finish_reason == "refusal" {
        "memory (refused)"
    } else {
        &m.model
    };
    let mut out = format!("[{who}] ({})\n{}\n", m.id, m.content);
    if !m.citations.is_empty() {
        out += &format!(
            "Sources:\n{}",
            crate::memory::citations_text(&m.citations, now_unix_ms())
        );
    }
    out + "\n"
}

/// `chat usage --json`.
pub fn usage_json(u: &pb::GetUsageResponse) -> Value {
    json!({"plan": u.plan,
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
}

/// `chat usage` in words.
pub fn usage_text(u: &pb::GetUsageResponse) -> String {
    let cloud = if u.cloud_providers.is_empty() {
        "none (no API key set)".to_owned()
    } else {
        u.cloud_providers.join(", ")
    };
    format!(
        "plan: {}\nfree tokens this month: {} of {}\n\
         spent: ${:.4} today (cap ${:.2}), ${:.4} this week (cap ${:.2}), \
         ${:.4} this month (cap ${:.2}); ${:.2} per interaction\n\
         model calls this month: {}\ncloud providers: {cloud}\n",
        u.plan,
        u.free_tokens_this_month,
        u.free_monthly_tokens,
        u.spent_today_usd,
        u.cap_daily_usd,
        u.spent_this_week_usd,
        u.cap_weekly_usd,
        u.spent_this_month_usd,
        u.cap_monthly_usd,
        u.cap_per_interaction_usd,
        u.calls_this_month
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        chat: Top,
    }
    #[derive(Debug, clap::Subcommand)]
    enum Top {
        Chat(Args),
    }

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        let mut all = vec!["coworkctl", "chat"];
        all.extend_from_slice(argv);
        let all = mark_message(all.into_iter().map(Into::into).collect());
        Cli::try_parse_from(all).map(|c| match c.chat {
            Top::Chat(a) => a,
        })
    }

    #[test]
    fn chat_is_found_after_global_options_only() {
        let argv = |a: &[&str]| {
            a.iter()
                .map(Into::into)
                .collect::<Vec<std::ffi::OsString>>()
        };
        let marked = mark_message(argv(&[
            "coworkctl",
            "--home",
            "/h",
            "--json",
            "chat",
            "show",
            "x",
            "y",
        ]));
        assert_eq!(
            marked,
            argv(&[
                "coworkctl",
                "--home",
                "/h",
                "--json",
                "chat",
                "--",
                "show",
                "x",
                "y"
            ])
        );
        let other = argv(&["coworkctl", "mcp", "call", "show", "me", "now"]);
        assert_eq!(mark_message(other.clone()), other, "only chat's words");
        let given = argv(&["coworkctl", "chat", "--", "threads"]);
        assert_eq!(mark_message(given.clone()), given, "already marked");
    }

    #[test]
    fn subcommands_and_a_message_share_the_command() {
        let a = parse(&["threads"]).unwrap();
        assert!(matches!(a.command, Some(Cmd::Threads)));
        let a = parse(&["show", "th-1"]).unwrap();
        assert!(matches!(a.command, Some(Cmd::Show { id }) if id == "th-1"));
        assert!(matches!(
            parse(&["usage"]).unwrap().command,
            Some(Cmd::Usage)
        ));
        let a = parse(&["key", "gemini"]).unwrap();
        assert!(matches!(a.command, Some(Cmd::Key { provider }) if provider == "gemini"));
        let a = parse(&["what", "is", "this?", "--thread", "th-1", "--local"]).unwrap();
        assert!(a.command.is_none());
        assert_eq!(a.words, ["what", "is", "this?"]);
        assert_eq!(a.thread.as_deref(), Some("th-1"));
        let a = parse(&["threads are hard"]).unwrap();
        assert_eq!(
            a.words,
            ["threads are hard"],
            "a quoted message is a message"
        );
        assert!(parse(&[]).is_err(), "a message or a subcommand is needed");
        assert!(parse(&["hi", "--local", "--cloud"]).is_err());
    }

    #[test]
    fn chunks_keep_their_json_shapes() {
        let route = Chunk::Route(pb::RouteDecision {
            model: "llamacpp/gemma".into(),
            engine: "llamacpp:8080".into(),
            ..Default::default()
        });
        let v = chunk_json(&route);
        for key in [
            "model",
            "reason",
            "notice",
            "cost_estimate_usd",
            "thread_id",
            "message_id",
            "ask_id",
            "engine",
        ] {
            assert!(v["route"].get(key).is_some(), "route.{key}");
        }
        assert_eq!(
            chunk_json(&Chunk::Delta(pb::TextDelta { text: "hi".into() })),
            json!({"delta": "hi"})
        );
        assert_eq!(
            chunk_json(&Chunk::Error(pb::ChatError {
                message: "dead".into()
            })),
            json!({"error": "dead"})
        );
        assert!(route_text(&pb::RouteDecision {
            model: "m".into(),
            engine: "e".into(),
            reason: "r".into(),
            ..Default::default()
        })
        .starts_with("→ m via e (r)\n"));
    }

    #[test]
    fn usage_and_threads_in_words() {
        let u = pb::GetUsageResponse {
            plan: "pro".into(),
            free_monthly_tokens: 625_000,
            spent_today_usd: 0.25,
            cap_daily_usd: 10.0,
            ..Default::default()
        };
        let t = usage_text(&u);
        assert!(t.contains("plan: pro\n"), "{t}");
        assert!(t.contains("free tokens this month: 0 of 625000"), "{t}");
        assert!(t.contains("$0.2500 today (cap $10.00)"), "{t}");
        assert!(
            t.ends_with("cloud providers: none (no API key set)\n"),
            "{t}"
        );
        assert_eq!(usage_json(&u)["caps_usd"]["daily"], 10.0);
        let th = pb::Thread {
            id: "th-1".into(),
            title: "hello".into(),
            message_count: 2,
            ..Default::default()
        };
        assert_eq!(thread_line(&th), "th-1    2 msgs  hello");
        let m = pb::Message {
            id: "m-1".into(),
            role: "assistant".into(),
            model: "gemini/gemini-2.5-flash".into(),
            content: "hi".into(),
            ..Default::default()
        };
        assert_eq!(message_text(&m), "[gemini/gemini-2.5-flash] (m-1)\nhi\n\n");
    }
}
