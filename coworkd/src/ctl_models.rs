//! How `coworkctl models`, `system` and `gateway` show things: the progress
//! bar, tables and the `--json` shapes.

use crate::ctl::{human_bytes, rfc3339_ms};
use cowork_proto::pb::models as pb;
use serde_json::{json, Value};
use std::fmt::Write as _;

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

/// `system --json`.
pub fn system_json(s: &pb::SystemInfo) -> Value {
    json!({
        "total_memory_bytes": s.total_memory_bytes,
        "used_memory_bytes": s.used_memory_bytes,
        "available_memory_bytes": s.available_memory_bytes,
        "unified_memory": s.unified_memory,
        "cpu_count": s.cpu_count,
        "load": [s.load_1, s.load_5, s.load_15],
        "cpu_percent": s.cpu_percent,
        "gpus": s.gpus.iter().map(|g| json!({
            "name": g.name, "vram_total_bytes": g.vram_total_bytes,
            "vram_used_bytes": g.vram_used_bytes, "source": g.source,
        })).collect::<Vec<_>>(),
        "os": s.os, "arch": s.arch,
    })
}

/// `system` in words.
pub fn system_text(s: &pb::SystemInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "memory: {} used of {} ({} available){}",
        human_bytes(s.used_memory_bytes),
        human_bytes(s.total_memory_bytes),
        human_bytes(s.available_memory_bytes),
        if s.unified_memory {
            ", unified with the GPU"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "cpu: {} logical, {:.0} % busy, load {:.2} {:.2} {:.2}",
        s.cpu_count, s.cpu_percent, s.load_1, s.load_5, s.load_15
    );
    if s.gpus.is_empty() {
        let _ = writeln!(out, "gpu: no discrete GPU found");
    }
    for g in &s.gpus {
        let _ = writeln!(
            out,
            "gpu: {}: {} VRAM, {} used ({})",
            g.name,
            human_bytes(g.vram_total_bytes),
            human_bytes(g.vram_used_bytes),
            g.source
        );
    }
    let _ = writeln!(out, "os: {} {}", s.os, s.arch);
    out
}

/// `gateway status --json`: at least `enabled` and `url`.
pub fn gateway_json(s: &cowork_proto::pb::gateway::GatewayStatus) -> Value {
    json!({
        "enabled": s.enabled, "url": s.url, "port": s.port, "listening": s.listening,
        "error": if s.error.is_empty() { Value::Null } else { json!(s.error) },
        "requests": s.requests,
    })
}

/// `gateway status` in words.
pub fn gateway_text(s: &cowork_proto::pb::gateway::GatewayStatus) -> String {
    match (s.enabled, s.listening) {
        (true, true) => format!(
            "on: {}/v1 (OpenAI-compatible; key: `coworkctl gateway key`), {} requests served",
            s.url, s.requests
        ),
        (true, false) => format!("on but not listening on {}: {}", s.url, s.error),
        (false, _) => format!("off (`coworkctl gateway enable` serves {}/v1)", s.url),
    }
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
