//! `coworkctl models`: verified, resumable downloads into the home's
//! models/ directory with a progress bar, fit checks, and the llama-server
//! sessions agents-agent runs (`load`, `unload`, `sessions`)
//! (`cowork.models.v1`).

use crate::context::{call, exit_code, human_bytes, long, rfc3339_ms, Ctx};
use anyhow::Result;
use clap::Subcommand;
use cowork_proto::pb::models::{self as pb, models_client::ModelsClient};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// `coworkctl models`.
#[derive(Debug, Subcommand)]
pub enum Cmd {
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
        /// Expected size in bytes (one URL only): a server announcing or
        /// sending more is refused at once.
        #[arg(long, value_name = "BYTES")]
        size: Option<u64>,
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
    /// Run a model: start a llama-server for it (after its fit check) and
    /// wait until it is ready. Chat, agents and the gateway then use it.
    Load {
        /// A GGUF file, a file name under models/, or a download id.
        model: String,
        /// Context in tokens (default: [agents] local_context_tokens).
        #[arg(long, value_name = "N")]
        ctx: Option<u32>,
        /// Serve embeddings (/v1/embeddings) instead of chat.
        #[arg(long)]
        embedding: bool,
        /// Layers to offload to the GPU.
        #[arg(long, value_name = "N")]
        gpu_layers: Option<u32>,
        /// Load even when the fit check says it does not fit (RED).
        #[arg(long)]
        force: bool,
    },
    /// Stop a session's llama-server.
    Unload {
        /// A session id, a model name or the model's file.
        session: String,
    },
    /// The loaded sessions: model, port, pid, mode, context, memory and
    /// idle time.
    Sessions,
}

/// Run a `models` command.
pub async fn run(cmd: Cmd, ctx: &mut Ctx) -> Result<ExitCode> {
    let mut c = ModelsClient::new(ctx.channel.clone());
    match cmd {
        Cmd::Pull {
            urls,
            sha256,
            size,
            name,
            mirrors,
            id,
            detach,
        } => {
            if urls.len() > 1
                && (sha256.is_some() || size.is_some() || name.is_some() || !mirrors.is_empty())
            {
                anyhow::bail!("--sha256, --size, --name and --mirror apply to one URL; pull files one by one to give them");
            }
            let files = urls
                .iter()
                .map(|u| {
                    let mut all = vec![u.clone()];
                    all.extend(mirrors.iter().cloned());
                    pb::PullFile {
                        urls: all,
                        name: name.clone().unwrap_or_default(),
                        sha256: sha256.clone().unwrap_or_default(),
                        size: size.unwrap_or(0),
                    }
                })
                .collect();
            let stream = c
                .pull(tonic::Request::new(pb::PullRequest {
                    id: id.unwrap_or_default(),
                    files,
                }))
                .await?
                .into_inner();
            if detach {
                let mut stream = stream;
                if let Some(p) = stream.message().await? {
                    ctx.show(
                        || progress_json(&p),
                        || format!("started {} (`coworkctl models watch {}`)", p.id, p.id),
                    )?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            return follow_pull(stream, ctx).await;
        }
        Cmd::Watch { id } => {
            let stream = c
                .watch(tonic::Request::new(pb::DownloadRef { id }))
                .await?
                .into_inner();
            return follow_pull(stream, ctx).await;
        }
        Cmd::List => {
            let r = c.list(call(pb::ListRequest {})).await?.into_inner();
            ctx.show_block(|| list_json(&r), || list_table(&r))?;
        }
        Cmd::Cancel { id } => {
            let r = c
                .cancel(long(pb::DownloadRef { id: id.clone() }))
                .await?
                .into_inner();
            ctx.show(
                || json!({"id": id, "cancelled": r.cancelled}),
                || match r.cancelled {
                    true => format!("cancelled {id}; pull the same URL again to resume"),
                    false => format!("{id} is not running"),
                },
            )?;
            if !r.cancelled && !ctx.json {
                return Ok(ExitCode::FAILURE);
            }
        }
        Cmd::Rm { id } => {
            let r = c
                .remove(long(pb::DownloadRef { id: id.clone() }))
                .await?
                .into_inner();
            ctx.show(
                || json!({"id": id, "deleted": r.deleted}),
                || format!("removed {id} ({} files deleted)", r.deleted.len()),
            )?;
        }
        Cmd::Fit {
            source,
            ctx: context_tokens,
        } => {
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
                .fit(long(pb::FitRequest {
                    source,
                    ctx: context_tokens.unwrap_or(0),
                }))
                .await?
                .into_inner();
            ctx.show_block(|| fit_json(&r), || fit_text(&r))?;
        }
        Cmd::Load {
            model,
            ctx: context_tokens,
            embedding,
            gpu_layers,
            force,
        } => {
            // A local path is sent absolute: agents-agent has another cwd.
            let model = if std::path::Path::new(&model).is_file() {
                std::fs::canonicalize(&model)?.display().to_string()
            } else {
                model
            };
            let r = c
                .load(long(pb::LoadRequest {
                    model,
                    ctx: context_tokens.unwrap_or(0),
                    embedding,
                    gpu_layers,
                    force,
                }))
                .await?
                .into_inner();
            if !ctx.json {
                for w in &r.warnings {
                    eprintln!("warning: {w}");
                }
            }
            let s = r.session.clone().unwrap_or_default();
            ctx.show(
                || {
                    json!({
                        "session": session_json(&s),
                        "already_loaded": r.already_loaded,
                        "fit": {"level": r.fit_level, "explanation": r.fit_explanation},
                        "warnings": r.warnings,
                        "load_ms": r.load_ms,
                    })
                },
                || {
                    let how = if r.already_loaded {
                        "already loaded".to_owned()
                    } else {
                        format!("ready in {:.1} s", r.load_ms as f64 / 1000.0)
                    };
                    format!(
                        "{} ({}) {how}: session {}, {} on 127.0.0.1:{}, pid {}, ctx {}",
                        s.name, s.mode, s.id, s.engine, s.port, s.pid, s.ctx
                    )
                },
            )?;
        }
        Cmd::Unload { session } => {
            let r = c
                .unload(long(pb::UnloadRequest { session }))
                .await?
                .into_inner();
            let s = r.session.unwrap_or_default();
            ctx.show(
                || json!({"unloaded": session_json(&s)}),
                || format!("unloaded {} (session {})", s.name, s.id),
            )?;
        }
        Cmd::Sessions => {
            let r = c.sessions(call(pb::SessionsRequest {})).await?.into_inner();
            ctx.show_block(
                || json!({"sessions": r.sessions.iter().map(session_json).collect::<Vec<_>>()}),
                || sessions_table(&r.sessions),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A session as JSON (`models load|unload|sessions --json`).
pub fn session_json(s: &pb::Session) -> Value {
    json!({
        "id": s.id, "name": s.name, "model": s.model, "engine": s.engine,
        "port": s.port, "pid": s.pid, "mode": s.mode, "ctx": s.ctx, "state": s.state,
        "rss_bytes": s.rss_bytes, "idle_ms": s.idle_ms, "base_url": s.base_url,
        "restarts": s.restarts,
        "last_error": if s.last_error.is_empty() { Value::Null } else { json!(s.last_error) },
    })
}

/// `models sessions` as a table.
pub fn sessions_table(sessions: &[pb::Session]) -> String {
    if sessions.is_empty() {
        return "no sessions (`coworkctl models load FILE` starts one)\n".into();
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<28} {:<28} {:<9} {:>6} {:>8} {:<6} {:>10} {:>9} {:>8}",
        "ID", "MODEL", "MODE", "CTX", "PORT", "STATE", "PID", "RSS", "IDLE"
    );
    for s in sessions {
        let _ = writeln!(
            out,
            "{:<28} {:<28} {:<9} {:>6} {:>8} {:<6} {:>10} {:>9} {:>7}s",
            s.id,
            s.name,
            s.mode,
            s.ctx,
            s.port,
            s.state,
            s.pid,
            human_bytes(s.rss_bytes),
            s.idle_ms / 1000
        );
        if !s.last_error.is_empty() {
            let _ = writeln!(out, "  last error: {}", s.last_error);
        }
    }
    out
}

/// Print a task's progress until it ends: a redrawn bar on a terminal,
/// one line per event otherwise, JSON lines with `--json`.
async fn follow_pull(
    mut stream: tonic::Streaming<pb::PullProgress>,
    ctx: &mut Ctx,
) -> Result<ExitCode> {
    use std::io::IsTerminal;
    let (json, out) = (ctx.json, &mut ctx.out);
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

/// One progress event as JSON (`models pull --json` prints one per line).
pub fn progress_json(p: &pb::PullProgress) -> Value {
    json!({
        "id": p.id,
        "state": p.state,
        "downloaded": p.downloaded,
        "total": p.total,
        "error": if p.error.is_empty() { Value::Null } else { json!(p.error) },
        "files": p.files.iter().map(file_json).collect::<Vec<_>>(),
    })
}

fn file_json(f: &pb::FileProgress) -> Value {
    json!({
        "name": f.name, "state": f.state, "downloaded": f.downloaded, "total": f.total,
        "url": f.url, "resumed_from": f.resumed_from, "sha256": f.sha256,
        "error": if f.error.is_empty() { Value::Null } else { json!(f.error) },
    })
}

/// A progress line: `[#####·····]  45%  117.2 MiB / 260.0 MiB  12.5 MiB/s
/// downloading m.gguf`. `rate` is bytes per second, when known.
pub fn progress_line(p: &pb::PullProgress, rate: Option<f64>) -> String {
    const WIDTH: usize = 24;
    let mut s = String::new();
    if p.total > 0 {
        let frac = (p.downloaded as f64 / p.total as f64).clamp(0.0, 1.0);
        let filled = (frac * WIDTH as f64).round() as usize;
        let _ = write!(
            s,
            "[{}{}] {:>3.0}%  {} / {}",
            "#".repeat(filled),
            "·".repeat(WIDTH - filled),
            frac * 100.0,
            human_bytes(p.downloaded),
            human_bytes(p.total)
        );
    } else {
        let _ = write!(s, "{}", human_bytes(p.downloaded));
    }
    if let Some(r) = rate.filter(|r| *r > 0.0) {
        let _ = write!(s, "  {}/s", human_bytes(r as u64));
    }
    let _ = write!(s, "  {} {}", p.state, p.id);
    s
}

/// The closing words of a pull (after the bar).
pub fn pull_outcome(p: &pb::PullProgress) -> String {
    match p.state.as_str() {
        "done" => {
            let files: Vec<String> = p
                .files
                .iter()
                .map(|f| {
                    let how = if f.resumed_from > 0 {
                        format!(", resumed at {}", human_bytes(f.resumed_from))
                    } else {
                        String::new()
                    };
                    let check = if f.sha256.is_empty() {
                        "no SHA-256 given"
                    } else {
                        "SHA-256 verified"
                    };
                    format!("{} ({}, {check}{how})", f.name, human_bytes(f.total))
                })
                .collect();
            format!("done: {}", files.join("; "))
        }
        "cancelled" => format!(
            "cancelled: partial files are kept; pull the same URL again to resume \
             (or `coworkctl models rm {}`)",
            p.id
        ),
        "error" => format!("failed: {}", p.error),
        s => format!("{s}: the download goes on in agents-agent (`coworkctl models list`)"),
    }
}

/// `models list --json`.
pub fn list_json(r: &pb::ListResponse) -> Value {
    json!({
        "downloads": r.downloads.iter().map(|d| json!({
            "id": d.id, "state": d.state,
            "downloaded": d.files.iter().map(|f| f.downloaded).sum::<u64>(),
            "total": d.files.iter().map(|f| f.total).sum::<u64>(),
            "files": d.files.iter().map(file_json).collect::<Vec<_>>(),
            "created_at": rfc3339_ms(d.created_at_ms),
            "updated_at": rfc3339_ms(d.updated_at_ms),
            "error": if d.error.is_empty() { Value::Null } else { json!(d.error) },
        })).collect::<Vec<_>>(),
        "files": r.files.iter().map(|f| json!({
            "name": f.name, "size": f.size, "path": f.path,
        })).collect::<Vec<_>>(),
    })
}

/// `models list` as two tables: files, then downloads.
pub fn list_table(r: &pb::ListResponse) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:<48} {:>12}", "MODEL FILE", "SIZE");
    if r.files.is_empty() {
        let _ = writeln!(out, "(none yet: `coworkctl models pull URL`)");
    }
    for f in &r.files {
        let _ = writeln!(out, "{:<48} {:>12}", f.name, human_bytes(f.size));
    }
    if !r.downloads.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<32} {:<12} {:>24}  ERROR",
            "DOWNLOAD", "STATE", "PROGRESS"
        );
        for d in &r.downloads {
            let done: u64 = d.files.iter().map(|f| f.downloaded).sum();
            let total: u64 = d.files.iter().map(|f| f.total).sum();
            let progress = if total > 0 {
                format!("{} / {}", human_bytes(done), human_bytes(total))
            } else {
                human_bytes(done)
            };
            let _ = writeln!(
                out,
                "{:<32} {:<12} {:>24}  {}",
                d.id, d.state, progress, d.error
            );
        }
    }
    out
}

/// `models fit --json`.
pub fn fit_json(f: &pb::FitResponse) -> Value {
    json!({
        "level": f.level, "explanation": f.explanation, "architecture": f.architecture,
        "context": f.context, "context_max": f.context_max,
        "model_bytes": f.model_bytes, "kv_bytes": f.kv_bytes,
        "required_bytes": f.required_bytes, "usable_bytes": f.usable_bytes,
        "usable_vram_bytes": f.usable_vram_bytes, "total_ram_bytes": f.total_ram_bytes,
        "vram_bytes": f.vram_bytes, "metadata_bytes": f.metadata_bytes,
        "layers": f.layers, "kv_per_token_bytes": f.kv_per_token_bytes,
        "sliding_window": f.sliding_window,
    })
}

/// `models fit` in words.
pub fn fit_text(f: &pb::FitResponse) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", f.explanation);
    let window = f
        .sliding_window
        .map(|w| format!(", sliding window {w}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  model: {} , {} layers, {} KV bytes per token{window}, context {} of max {}",
        f.architecture, f.layers, f.kv_per_token_bytes, f.context, f.context_max
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_shows_bar_share_and_rate() {
        let p = pb::PullProgress {
            id: "m.gguf".into(),
            state: "downloading".into(),
            downloaded: 50 * 1024 * 1024,
            total: 100 * 1024 * 1024,
            ..Default::default()
        };
        let line = progress_line(&p, Some(2.0 * 1024.0 * 1024.0));
        assert!(
            line.starts_with(&format!("[{}{}]", "#".repeat(12), "·".repeat(12))),
            "{line}"
        );
        assert!(
            line.contains(" 50%  50.0 MiB / 100.0 MiB  2.0 MiB/s  downloading m.gguf"),
            "{line}"
        );
        let unknown = pb::PullProgress { total: 0, ..p };
        assert!(progress_line(&unknown, None).starts_with("50.0 MiB  downloading"));
    }
}
