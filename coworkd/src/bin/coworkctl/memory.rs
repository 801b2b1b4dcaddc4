//! `coworkctl memory`: search everything captured or said, the indexing
//! pipeline's state, forgetting, reindexing and importing files
//! (`cowork.memory.v1`).

use crate::context::{age, call, clip, human_bytes, long, now_unix_ms, rfc3339_ms, Ctx};
use anyhow::{Context as _, Result};
use clap::Subcommand;
use cowork_proto::pb::memory::{self as pb, memory_client::MemoryClient};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

/// Lines sent in one import request, at most.
const IMPORT_LINES: usize = 2_000;
/// Bytes sent in one import request, at most (a longer line goes alone).
const IMPORT_BYTES: usize = 2 << 20;
/// The longest line read from an import file (with the request's framing,
/// under the 4 MiB a gRPC message may have).
const MAX_LINE: usize = 3 << 20;

/// `coworkctl memory`.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Search activity, conversations, observations and imported
    /// documents: keyword (BM25) and vector hits fused. "yesterday", "last
    /// week", "last 3 days" in the query become a time filter.
    Search {
        /// What to look for.
        query: String,
        /// Only these types: activity, conversation, observation, document.
        #[arg(long = "type", value_name = "TYPE")]
        types: Vec<String>,
        /// Only from this time: a duration ago (2d, 90m) or RFC 3339.
        #[arg(long)]
        since: Option<String>,
        /// Only before this time: a duration ago (1h) or RFC 3339.
        #[arg(long)]
        until: Option<String>,
        /// Only this app (case-insensitive).
        #[arg(long)]
        app: Option<String>,
        /// Hits wanted.
        #[arg(short, default_value_t = 10)]
        k: u32,
        /// hybrid (default), vector or keyword.
        #[arg(long, default_value = "hybrid")]
        mode: String,
        /// Only items imported into this collection.
        #[arg(long)]
        collection: Option<String>,
    },
    /// The embedder, jobs by state, items and vectors per type, index lag
    /// and size on disk.
    Status,
    /// Remove sources from every index (keyword and vectors) for good:
    /// by id (as `search` shows them), or everything in a time range.
    Forget {
        /// Source ids: activity:12, keystrokes:4, a message id, an
        /// imported `_id`.
        #[arg(value_name = "SOURCE_ID", required_unless_present_any = ["since", "until", "app"])]
        sources: Vec<String>,
        /// From this time: a duration ago (2d) or RFC 3339.
        #[arg(long, conflicts_with = "sources")]
        since: Option<String>,
        /// Before this time.
        #[arg(long, conflicts_with = "sources")]
        until: Option<String>,
        /// Only this app.
        #[arg(long, conflicts_with = "sources")]
        app: Option<String>,
        /// With source ids: only in this import collection.
        #[arg(long, requires = "sources")]
        collection: Option<String>,
    },
    /// Embed again (all types, or these), in the background.
    Reindex {
        /// activity, conversation, observation or document.
        #[arg(long = "type", value_name = "TYPE")]
        types: Vec<String>,
    },
    /// Import a JSONL file: `document` lines are {"_id","title","text"}
    /// (BEIR), `conversation` lines {"_id","thread","speaker","text",
    /// "time"}. Idempotent by `_id`.
    Import {
        /// The file.
        file: PathBuf,
        /// document or conversation.
        #[arg(long = "type", value_name = "TYPE")]
        kind: String,
        /// A collection to file them under.
        #[arg(long, default_value = "")]
        collection: String,
    },
    /// Working memory: the person's profile, always in the model's
    /// context (`show` when no action is given).
    Profile {
        #[command(subcommand)]
        action: Option<ProfileCmd>,
    },
    /// Pin a source (as `search` shows its id) as an observation anchor:
    /// always first in a grounded context.
    Pin {
        /// The source's id.
        source_id: String,
    },
    /// Unpin a source.
    Unpin {
        /// The source's id.
        source_id: String,
    },
    /// The pinned sources, newest first.
    Pins,
}

/// `coworkctl memory profile` actions.
#[derive(Debug, Subcommand)]
pub enum ProfileCmd {
    /// The profile: each key's value, who wrote it (person or inferred)
    /// and when.
    Show,
    /// Set a key (name, role, preferences, goals, communication_style,
    /// projects, or your own) as you write it: no inferred value
    /// replaces it.
    Set {
        /// The key.
        key: String,
        /// The value (the words are joined).
        #[arg(required = true, num_args = 1..)]
        value: Vec<String>,
    },
    /// Remove a key.
    Unset {
        /// The key.
        key: String,
    },
    /// Remove every key.
    Clear,
}

/// `coworkctl context`: what the agent sees right now.
#[derive(Debug, clap::Args)]
pub struct ContextArgs {
    /// Also assemble the context this question would get (no model is
    /// called).
    #[arg(long)]
    query: Option<String>,
    /// With --query: apply the refusal checkpoints of a grounded question.
    #[arg(long, requires = "query")]
    grounded: bool,
    /// With --query: a follow-up in this thread (its answers' citations
    /// backfill).
    #[arg(long, requires = "query", value_name = "ID")]
    thread: Option<String>,
}

/// Run a `memory` command.
pub async fn run(cmd: Cmd, ctx: &mut Ctx) -> Result<ExitCode> {
    let mut c = MemoryClient::new(ctx.channel.clone());
    match cmd {
        Cmd::Search {
            query,
            types,
            since,
            until,
            app,
            k,
            mode,
            collection,
        } => {
            let r = c
                .search(long(pb::SearchRequest {
                    query,
                    types,
                    since: since.unwrap_or_default(),
                    until: until.unwrap_or_default(),
                    app: app.unwrap_or_default(),
                    k,
                    mode,
                    collection: collection.unwrap_or_default(),
                    ..Default::default()
                }))
                .await?
                .into_inner();
            ctx.show_block(|| search_json(&r), || search_table(&r, now_unix_ms()))?;
        }
        Cmd::Status => {
            let s = c.status(call(pb::StatusRequest {})).await?.into_inner();
            ctx.show_block(|| status_json(&s), || status_text(&s, now_unix_ms()))?;
        }
        Cmd::Forget {
            sources,
            since,
            until,
            app,
            collection,
        } => {
            let f = c
                .forget(call(pb::ForgetRequest {
                    source_ids: sources,
                    since: since.unwrap_or_default(),
                    until: until.unwrap_or_default(),
                    app: app.unwrap_or_default(),
                    collection: collection.unwrap_or_default(),
                    ..Default::default()
                }))
                .await?
                .into_inner();
            ctx.show(
                || json!({"sources": f.sources, "items": f.items}),
                || {
                    format!(
                        "forgot {} source(s), {} item(s): gone from every index",
                        f.sources, f.items
                    )
                },
            )?;
        }
        Cmd::Reindex { types } => {
            let r = c
                .reindex(call(pb::ReindexRequest { types }))
                .await?
                .into_inner();
            ctx.show(
                || json!({"items": r.items}),
                || {
                    format!(
                        "{} item(s) will be embedded again in the background \
                         (`coworkctl memory status` shows progress)",
                        r.items
                    )
                },
            )?;
        }
        Cmd::Import {
            file,
            kind,
            collection,
        } => return import(&mut c, ctx, &file, &kind, &collection).await,
        Cmd::Profile { action } => {
            let p = match action.unwrap_or(ProfileCmd::Show) {
                ProfileCmd::Show => c.get_profile(call(pb::GetProfileRequest {})).await?,
                ProfileCmd::Set { key, value } => {
                    c.set_profile(call(pb::SetProfileRequest {
                        key,
                        value: value.join(" "),
                    }))
                    .await?
                }
                ProfileCmd::Unset { key } => {
                    c.unset_profile(call(pb::UnsetProfileRequest { key }))
                        .await?
                }
                ProfileCmd::Clear => c.clear_profile(call(pb::ClearProfileRequest {})).await?,
            }
            .into_inner();
            ctx.show_block(
                || json!({"entries": profile_json(&p.entries)}),
                || profile_text(&p.entries, now_unix_ms()),
            )?;
        }
        Cmd::Pin { source_id } => {
            let p = c
                .pin(call(pb::PinRequest { source_id }))
                .await?
                .into_inner();
            ctx.show_block(|| pins_json(&p.pins), || pins_text(&p.pins, now_unix_ms()))?;
        }
        Cmd::Unpin { source_id } => {
            let p = c
                .unpin(call(pb::UnpinRequest { source_id }))
                .await?
                .into_inner();
            ctx.show_block(|| pins_json(&p.pins), || pins_text(&p.pins, now_unix_ms()))?;
        }
        Cmd::Pins => {
            let p = c
                .list_pins(call(pb::ListPinsRequest {}))
                .await?
                .into_inner();
            ctx.show_block(|| pins_json(&p.pins), || pins_text(&p.pins, now_unix_ms()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Run `coworkctl context`.
pub async fn context(a: ContextArgs, ctx: &mut Ctx) -> Result<ExitCode> {
    let mut c = MemoryClient::new(ctx.channel.clone());
    let card = c
        .get_context(long(pb::GetContextRequest {
            query: a.query.unwrap_or_default(),
            grounded: a.grounded,
            thread_id: a.thread.unwrap_or_default(),
        }))
        .await?
        .into_inner();
    ctx.show_block(|| card_json(&card), || card_text(&card, now_unix_ms()))?;
    Ok(ExitCode::SUCCESS)
}

fn profile_json(entries: &[pb::ProfileEntry]) -> Value {
    entries
        .iter()
        .map(|e| {
            json!({"key": e.key, "value": e.value, "origin": e.origin,
                   "updated_unix_ms": e.updated_unix_ms,
                   "updated": rfc3339_ms(e.updated_unix_ms)})
        })
        .collect()
}

fn profile_text(entries: &[pb::ProfileEntry], now_ms: i64) -> String {
    if entries.is_empty() {
        return "the profile is empty (`coworkctl memory profile set name Ann`)\n".into();
    }
    let width = entries.iter().map(|e| e.key.len()).max().unwrap_or(0);
    let mut out = String::new();
    for e in entries {
        let _ = writeln!(
            out,
            "{:<width$}  {}  ({}, {})",
            e.key,
            e.value.replace('\n', " / "),
            e.origin,
            age(now_ms, e.updated_unix_ms)
        );
    }
    out
}

fn pin_json(p: &pb::Pin) -> Value {
    json!({"source_id": p.source_id, "source_type": p.source_type,
           "time_unix_ms": p.time_unix_ms, "snippet": p.snippet,
           "pinned_unix_ms": p.pinned_unix_ms})
}

fn pins_json(pins: &[pb::Pin]) -> Value {
    json!({"pins": pins.iter().map(pin_json).collect::<Vec<_>>()})
}

fn pins_text(pins: &[pb::Pin], now_ms: i64) -> String {
    if pins.is_empty() {
        return "nothing is pinned (`coworkctl memory pin SOURCE_ID`)\n".into();
    }
    let mut out = String::new();
    for p in pins {
        let _ = writeln!(
            out,
            "{}  {}  pinned {}  {}",
            p.source_id,
            p.source_type,
            age(now_ms, p.pinned_unix_ms),
            clip(&p.snippet, 80)
        );
    }
    out
}

fn citation_json(c: &pb::Citation) -> Value {
    json!({"source_type": c.source_type, "source_id": c.source_id,
           "time_unix_ms": c.time_unix_ms, "time": rfc3339_ms(c.time_unix_ms),
           "snippet": c.snippet, "chunk_id": c.chunk_id, "layer": c.layer})
}

/// Citations as JSON (chat prints them too).
pub fn citations_json(cites: &[pb::Citation]) -> Value {
    cites.iter().map(citation_json).collect()
}

/// Citations as the lines a table shows under an answer.
pub fn citations_text(cites: &[pb::Citation], now_ms: i64) -> String {
    let mut out = String::new();
    for (i, c) in cites.iter().enumerate() {
        let _ = writeln!(
            out,
            "[{}] {} {} ({}, {}): {}",
            i + 1,
            c.source_type,
            c.source_id,
            c.layer,
            age(now_ms, c.time_unix_ms),
            clip(&c.snippet, 80)
        );
    }
    out
}

fn card_json(c: &pb::ContextCard) -> Value {
    let mut v = json!({
        "active_window": c.active_window,
        "recent_activity": c.recent_activity,
        "working_memory": profile_json(&c.working_memory),
        "pins": c.pins.iter().map(pin_json).collect::<Vec<_>>(),
    });
    if c.budget_tokens > 0 {
        v["layers"] = c
            .layers
            .iter()
            .map(|l| json!({"name": l.name, "tokens": l.tokens, "pieces": l.pieces}))
            .collect();
        v["citations"] = citations_json(&c.citations);
        v["source_ids"] = c.citations.iter().map(|x| x.source_id.clone()).collect();
        v["context_tokens"] = json!(c.context_tokens);
        v["budget_tokens"] = json!(c.budget_tokens);
        v["refusal"] = json!(c.refusal);
        v["refusal_reason"] = json!(c.refusal_reason);
        v["text"] = json!(c.text);
        v["note"] = json!(c.note);
        v["best_similarity"] = json!(c.best_similarity);
        v["relevance_floor"] = json!(c.relevance_floor);
        v["unknown_names"] = json!(c.unknown_names);
        v["relevant_sources"] = json!(c.relevant_sources);
    }
    v
}

fn card_text(c: &pb::ContextCard, now_ms: i64) -> String {
    let mut out = String::new();
    let or_none = |s: &str| {
        if s.is_empty() {
            "(none)".to_owned()
        } else {
            s.to_owned()
        }
    };
    let _ = writeln!(out, "Active window: {}", or_none(&c.active_window));
    if !c.recent_activity.is_empty() {
        let _ = writeln!(out, "\n{}", c.recent_activity.trim_end());
    }
    let _ = writeln!(out, "\nWorking memory:");
    out += &profile_text(&c.working_memory, now_ms);
    let _ = writeln!(out, "\nPinned:");
    out += &pins_text(&c.pins, now_ms);
    if c.budget_tokens > 0 {
        let _ = writeln!(
            out,
            "\nContext for the query: {} of {} tokens",
            c.context_tokens, c.budget_tokens
        );
        for l in &c.layers {
            let _ = writeln!(
                out,
                "  {:<15} {:>5} tokens  {} piece(s)",
                l.name, l.tokens, l.pieces
            );
        }
        if !c.note.is_empty() {
            let _ = writeln!(out, "note: {}", c.note);
        }
        if c.refusal {
            let _ = writeln!(out, "grounded: REFUSED ({})", c.refusal_reason);
        } else if c.relevant_sources > 0 {
            let _ = writeln!(out, "relevant sources: {}", c.relevant_sources);
        }
        if !c.citations.is_empty() {
            let _ = writeln!(out, "\nSources:");
            out += &citations_text(&c.citations, now_ms);
        }
    }
    out
}

/// Send `file` in batches of lines; exit 1 when a line was refused.
async fn import(
    c: &mut MemoryClient<tonic::transport::Channel>,
    ctx: &mut Ctx,
    file: &std::path::Path,
    kind: &str,
    collection: &str,
) -> Result<ExitCode> {
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut reader = std::io::BufReader::new(f);
    let total_bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let tty = !ctx.json && std::io::stderr().is_terminal();
    let mut totals = pb::ImportResponse::default();
    let mut batch = Batch::default();
    let (mut line_no, mut read_bytes) = (0u64, 0u64);
    loop {
        let mut buf = Vec::new();
        let n = std::io::Read::take(&mut reader, MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("cannot read {}", file.display()))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        read_bytes += n as u64;
        if buf.len() > MAX_LINE && !buf.ends_with(b"\n") {
            batch.send(c, kind, collection, file, &mut totals).await?;
            anyhow::bail!(
                "{}: line {line_no} is over {} MiB; nothing after line {} was imported",
                file.display(),
                MAX_LINE >> 20,
                line_no - 1
            );
        }
        let line = String::from_utf8(buf)
            .map_err(|_| anyhow::anyhow!("{}: line {line_no} is not UTF-8", file.display()))?;
        let line = line.trim_end_matches(['\n', '\r']).to_owned();
        // A request stays under the 4 MiB a gRPC message may have.
        if batch.lines.len() >= IMPORT_LINES || batch.bytes + line.len() > IMPORT_BYTES {
            batch.send(c, kind, collection, file, &mut totals).await?;
            if tty {
                let pct = (read_bytes * 100).checked_div(total_bytes).unwrap_or(100);
                eprint!(
                    "\r\x1b[2Kimporting {}: {pct:>3}% ({line_no} lines)",
                    file.display()
                );
                let _ = std::io::stderr().flush();
            }
        }
        batch.push(line_no, line);
    }
    batch.send(c, kind, collection, file, &mut totals).await?;
    if tty {
        eprintln!();
    }
    ctx.show(
        || {
            json!({"imported": totals.imported, "unchanged": totals.unchanged,
                   "chunks": totals.chunks, "errors": totals.errors})
        },
        || {
            format!(
                "imported {} line(s) as {} chunk(s); {} unchanged; {} refused",
                totals.imported,
                totals.chunks,
                totals.unchanged,
                totals.errors.len()
            )
        },
    )?;
    Ok(if totals.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The lines of one import request.
#[derive(Default)]
struct Batch {
    lines: Vec<String>,
    bytes: usize,
    first_line: u64,
}

impl Batch {
    fn push(&mut self, line_no: u64, line: String) {
        if self.lines.is_empty() {
            self.first_line = line_no;
        }
        self.bytes += line.len();
        self.lines.push(line);
    }

    /// Send the lines (if any), add what was done to `totals`, and print
    /// the refused lines.
    async fn send(
        &mut self,
        c: &mut MemoryClient<tonic::transport::Channel>,
        kind: &str,
        collection: &str,
        file: &std::path::Path,
        totals: &mut pb::ImportResponse,
    ) -> Result<()> {
        if self.lines.is_empty() {
            return Ok(());
        }
        let r = c
            .import(long(pb::ImportRequest {
                r#type: kind.to_owned(),
                collection: collection.to_owned(),
                lines: std::mem::take(&mut self.lines),
                first_line: self.first_line,
            }))
            .await?
            .into_inner();
        self.bytes = 0;
        totals.imported += r.imported;
        totals.unchanged += r.unchanged;
        totals.chunks += r.chunks;
        for e in &r.errors {
            eprintln!("coworkctl: {}: {e}", file.display());
        }
        totals.errors.extend(r.errors);
        Ok(())
    }
}

/// `memory search --json`: `{"mode","note","text","since_ms","until_ms",
/// "took_us","hits":[{"source_type","source_id","time_ms","time","app",
/// "snippet","score","keyword_score","keyword_rank","vector_score",
/// "vector_rank","stream","chunk","collection"}]}`.
pub fn search_json(r: &pb::SearchResponse) -> Value {
    json!({
        "mode": r.mode,
        "note": r.note,
        "text": r.text,
        "since_ms": r.since_ms,
        "until_ms": r.until_ms,
        "took_us": r.took_us,
        "hits": r.hits.iter().map(|h| json!({
            "source_type": h.source_type,
            "source_id": h.source_id,
            "time_ms": h.time_ms,
            "time": rfc3339_ms(h.time_ms),
            "app": h.app,
            "snippet": h.snippet,
            "score": h.score,
            "keyword_score": h.keyword_score,
            "keyword_rank": h.keyword_rank,
            "vector_score": h.vector_score,
            "vector_rank": h.vector_rank,
            "stream": h.stream,
            "chunk": h.chunk,
            "collection": h.collection,
        })).collect::<Vec<_>>(),
    })
}

/// `memory search` as a table: rank, score, type, source, age, app and
/// the snippet on one line.
pub fn search_table(r: &pb::SearchResponse, now_ms: i64) -> String {
    let mut out = String::new();
    if !r.note.is_empty() {
        let _ = writeln!(out, "note: {}", r.note);
    }
    if r.hits.is_empty() {
        let _ = writeln!(out, "no hits for {:?} ({} search)", r.text, r.mode);
        return out;
    }
    let _ = writeln!(
        out,
        "{:<3} {:<7} {:<12} {:<20} {:<9} {:<12} SNIPPET",
        "#", "SCORE", "TYPE", "SOURCE", "WHEN", "APP"
    );
    for (i, h) in r.hits.iter().enumerate() {
        let how = match (h.keyword_rank, h.vector_rank) {
            (Some(_), Some(_)) => "",
            (Some(_), None) => " (keyword)",
            (None, Some(_)) => " (vector)",
            (None, None) => "",
        };
        let _ = writeln!(
            out,
            "{:<3} {:<7.4} {:<12} {:<20} {:<9} {:<12} {}{how}",
            i + 1,
            h.score,
            h.source_type,
            clip(&h.source_id, 20),
            age(now_ms, h.time_ms),
            clip(&h.app, 12),
            clip(&h.snippet, 90)
        );
    }
    let _ = writeln!(
        out,
        "{} hit(s), {} search, {:.1} ms",
        r.hits.len(),
        r.mode,
        r.took_us as f64 / 1000.0
    );
    out
}

/// `memory status --json`: `{"embedder":{"model","dims","engine",
/// "base_url","note","cloud"},"jobs":{<status>:{"jobs","chunks_embedded",
/// "total_chunks"}},"indexes":[{"source_type","items","vectors","table",
/// "model","dims","generation","building_table","building_vectors"}],
/// "oldest_unindexed_ms","oldest_unembedded_ms","size_bytes","last_error"}`.
pub fn status_json(s: &pb::StatusResponse) -> Value {
    let e = s.embedder.clone().unwrap_or_default();
    let o = s.observer.clone().unwrap_or_default();
    json!({
        "embedder": {"model": e.model, "dims": e.dims, "engine": e.engine,
                     "base_url": e.base_url, "note": e.note, "cloud": e.cloud},
        "jobs": s.jobs.iter().map(|j| (j.status.clone(), json!({
            "jobs": j.jobs, "chunks_embedded": j.chunks_embedded, "total_chunks": j.total_chunks,
        }))).collect::<serde_json::Map<_, _>>(),
        "indexes": s.indexes.iter().map(|i| json!({
            "source_type": i.source_type, "items": i.items, "vectors": i.vectors,
            "table": i.table, "model": i.model, "dims": i.dims, "generation": i.generation,
            "building_table": i.building_table, "building_vectors": i.building_vectors,
        })).collect::<Vec<_>>(),
        "oldest_unindexed_ms": s.oldest_unindexed_ms,
        "oldest_unembedded_ms": s.oldest_unembedded_ms,
        "size_bytes": s.size_bytes,
        "last_error": s.last_error,
        "observer": {
            "observations": o.observations, "reflections": o.reflections,
            "superseded": o.superseded, "unobserved_tokens": o.unobserved_tokens,
            "observe_tokens": o.observe_tokens, "last_run_unix_ms": o.last_run_unix_ms,
            "last_error": o.last_error,
        },
    })
}

/// `memory status` for people.
pub fn status_text(s: &pb::StatusResponse, now_ms: i64) -> String {
    let mut out = String::new();
    let e = s.embedder.clone().unwrap_or_default();
    if e.model.is_empty() {
        let _ = writeln!(out, "embedder: none — {}", e.note);
    } else {
        let dims = if e.dims == 0 {
            String::new()
        } else {
            format!(", {} dims", e.dims)
        };
        let cloud = if e.cloud { " (cloud)" } else { "" };
        let _ = writeln!(
            out,
            "embedder: {} on {}{cloud}{dims} <{}>",
            e.model, e.engine, e.base_url
        );
    }
    let jobs: Vec<String> = s
        .jobs
        .iter()
        .map(|j| {
            if j.jobs == 0 {
                format!("{} 0", j.status)
            } else {
                format!(
                    "{} {} ({}/{} chunks)",
                    j.status, j.jobs, j.chunks_embedded, j.total_chunks
                )
            }
        })
        .collect();
    let _ = writeln!(out, "jobs: {}", jobs.join(", "));
    let _ = writeln!(
        out,
        "{:<13} {:>8} {:>8} {:<22} INDEX",
        "TYPE", "ITEMS", "VECTORS", "MODEL"
    );
    for i in &s.indexes {
        let mut index = i.table.clone();
        if !i.building_table.is_empty() {
            let _ = write!(
                index,
                " (building {}: {} vectors)",
                i.building_table, i.building_vectors
            );
        }
        let model = if i.model.is_empty() {
            "-".to_owned()
        } else {
            format!("{} ({})", i.model, i.dims)
        };
        let _ = writeln!(
            out,
            "{:<13} {:>8} {:>8} {:<22} {}",
            i.source_type,
            i.items,
            i.vectors,
            clip(&model, 22),
            if index.is_empty() { "-" } else { &index }
        );
    }
    let lag = |t: Option<i64>| t.map_or("none".to_owned(), |t| format!("since {}", age(now_ms, t)));
    let _ = writeln!(
        out,
        "not yet searchable: {}; not yet embedded: {}",
        lag(s.oldest_unindexed_ms),
        lag(s.oldest_unembedded_ms)
    );
    let _ = writeln!(out, "size on disk: {}", human_bytes(s.size_bytes));
    if !s.last_error.is_empty() {
        let _ = writeln!(out, "last failed job: {}", s.last_error);
    }
    let o = s.observer.clone().unwrap_or_default();
    let _ = writeln!(
        out,
        "observations: {} ({} reflections, {} superseded); not yet observed: {} of {} tokens{}",
        o.observations,
        o.reflections,
        o.superseded,
        o.unobserved_tokens,
        o.observe_tokens,
        match (o.last_run_unix_ms, o.last_error.is_empty()) {
            (Some(t), true) => format!("; last run {}", age(now_ms, t)),
            (Some(t), false) => format!("; last run {}: {}", age(now_ms, t), o.last_error),
            (None, _) => String::new(),
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_show_how_they_matched_and_status_names_what_is_missing() {
        let r = pb::SearchResponse {
            hits: vec![
                pb::Hit {
                    source_type: "activity".into(),
                    source_id: "activity:12".into(),
                    time_ms: 1_000,
                    app: "Firefox".into(),
                    snippet: "reading the [tokio]\ndocs".into(),
                    score: 0.0325,
                    keyword_rank: Some(1),
                    keyword_score: Some(7.5),
                    ..Default::default()
                },
                pb::Hit {
                    source_type: "document".into(),
                    source_id: "4983".into(),
                    vector_rank: Some(1),
                    ..Default::default()
                },
            ],
            mode: "hybrid".into(),
            text: "tokio".into(),
            took_us: 2500,
            ..Default::default()
        };
        let t = search_table(&r, 61_000);
        assert!(t.contains("activity:12") && t.contains("1m ago"), "{t}");
        assert!(t.contains("reading the [tokio] docs (keyword)"), "{t}");
        assert!(t.contains("(vector)") && t.contains("2.5 ms"), "{t}");
        let j = search_json(&r);
        assert_eq!(j["hits"][0]["keyword_rank"], 1);
        assert_eq!(j["hits"][1]["keyword_rank"], Value::Null);
        let s = pb::StatusResponse {
            embedder: Some(pb::Embedder {
                note: "no embedder: load one".into(),
                ..Default::default()
            }),
            indexes: vec![pb::IndexStatus {
                source_type: "activity".into(),
                items: 3,
                ..Default::default()
            }],
            last_error: "hung".into(),
            ..Default::default()
        };
        let text = status_text(&s, 0);
        assert!(
            text.contains("embedder: none — no embedder: load one"),
            "{text}"
        );
        assert!(text.contains("last failed job: hung"), "{text}");
        assert_eq!(status_json(&s)["indexes"][0]["items"], 3);
    }
}
