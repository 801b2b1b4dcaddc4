//! The suite and the machine: `status`, `retry`, `watch`, `shutdown`
//! (`cowork.system.v1`, coworkd's own service), `ping` (the worker
//! contract, through coworkd) and `system` (memory, CPU, GPUs, from
//! agents-agent's `cowork.models.v1`).

use crate::context::{call, human_bytes, human_duration, rfc3339_ms, Ctx};
use anyhow::Result;
use clap::Subcommand;
use cowork_proto::pb::models::{self as models_pb, models_client::ModelsClient};
use cowork_proto::pb::system::{self as pb, system_client::SystemClient};
use cowork_proto::pb::worker::{worker_client::WorkerClient, PingRequest};
use cowork_proto::status::state_name;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Instant;

/// The suite's own commands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
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
    /// Round trips to a worker through coworkd.
    Ping {
        /// capture, agents or browser.
        worker: String,
        /// How many round trips.
        #[arg(long, default_value_t = 5)]
        count: u32,
    },
}

/// Run one of the suite's commands.
pub async fn run(cmd: Cmd, ctx: &mut Ctx) -> Result<ExitCode> {
    let mut system = SystemClient::new(ctx.channel.clone());
    match cmd {
        Cmd::Status => {
            let s = system
                .status(call(pb::StatusRequest {}))
                .await?
                .into_inner();
            ctx.show_block(|| status_json(&s), || status_table(&s))?;
        }
        Cmd::Retry { worker } => {
            let r = system
                .retry(call(pb::RetryRequest { worker }))
                .await?
                .into_inner();
            let Some(w) = r.status else {
                anyhow::bail!("coworkd answered without a status");
            };
            ctx.show(
                || worker_json(&w),
                || format!("{}: {} (pid {})", w.name, state_name(w.state), w.pid),
            )?;
        }
        Cmd::Watch => {
            let mut stream = system
                .watch_health(pb::WatchHealthRequest {
                    include_current: true,
                })
                .await?
                .into_inner();
            while let Some(e) = stream.message().await? {
                ctx.show(|| event_json(&e), || event_line(&e))?;
                ctx.out.flush()?;
            }
            eprintln!("coworkctl: coworkd closed the stream (shutting down)");
        }
        Cmd::Shutdown => {
            system.shutdown(call(pb::ShutdownRequest {})).await?;
            ctx.show(
                || json!({"shutdown": true}),
                || "coworkd is shutting down".into(),
            )?;
        }
        Cmd::Ping { worker, count } => {
            let mut client = WorkerClient::new(ctx.channel.clone());
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
            ctx.show(
                || json!({"worker": worker, "pid": pid, "round_trip_us": times}),
                || {
                    let list: Vec<String> = times.iter().map(|t| format!("{t} µs")).collect();
                    format!("{worker} (pid {pid}): {}", list.join(", "))
                },
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `coworkctl system <command>`.
#[derive(Debug, Subcommand)]
pub enum SystemCmd {
    /// Bring local AI back after it was paused because the machine was
    /// getting hot (sessions reload, embedding goes on).
    RestoreLocal,
    /// What local AI is doing about the machine's heat.
    Heat,
}

/// Run a `system` subcommand.
pub async fn system_cmd(cmd: SystemCmd, ctx: &mut Ctx) -> Result<ExitCode> {
    use cowork_proto::pb::thermal::{
        thermal_client::ThermalClient, GetRequest, RestoreLocalRequest,
    };
    let mut c = ThermalClient::new(ctx.channel.clone());
    let s = match cmd {
        SystemCmd::RestoreLocal => c.restore_local(call(RestoreLocalRequest {})).await?,
        SystemCmd::Heat => c.get(call(GetRequest {})).await?,
    }
    .into_inner();
    ctx.show(
        || {
            json!({"level": s.level, "mode": s.mode, "source": s.source, "since_ms": s.since_ms,
                  "cloud_allowed": s.cloud_allowed, "detail": s.detail})
        },
        || {
            format!(
                "local AI: {} (machine {}; {}) {}",
                s.mode, s.level, s.source, s.detail
            )
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `coworkctl system`: memory, CPU load, GPUs and VRAM (the numbers
/// `models fit` uses).
pub async fn system(ctx: &mut Ctx) -> Result<ExitCode> {
    let s = ModelsClient::new(ctx.channel.clone())
        .get_system(call(models_pb::GetSystemRequest {}))
        .await?
        .into_inner();
    ctx.show_block(|| system_json(&s), || system_text(&s))?;
    Ok(ExitCode::SUCCESS)
}

/// `system --json`.
pub fn system_json(s: &models_pb::SystemInfo) -> Value {
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
pub fn system_text(s: &models_pb::SystemInfo) -> String {
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

/// `status --json`: `{"workers":[{"name","state","pid","restarts",
/// "uptime_s","rss_bytes","cpu_percent","reason", ...}], "coworkd": {...}}`.
pub fn status_json(s: &pb::StatusResponse) -> Value {
    let workers: Vec<Value> = s.workers.iter().map(worker_json).collect();
    json!({
        "workers": workers,
        "coworkd": {
            "pid": s.coworkd_pid,
            "uptime_s": s.coworkd_uptime_ms as f64 / 1000.0,
            "rss_bytes": s.coworkd_rss_bytes,
            "home": s.home,
            "socket": s.socket_path,
            "notifications": s.notifications,
            "thermal": s.thermal,
        }
    })
}

/// One worker in the `--json` shape.
pub fn worker_json(w: &pb::WorkerStatus) -> Value {
    json!({
        "name": w.name,
        "state": state_name(w.state),
        "pid": if w.pid == 0 { Value::Null } else { json!(w.pid) },
        "restarts": w.restarts,
        "attempt": w.attempt,
        "max_restarts": w.max_restarts,
        "uptime_s": w.uptime_ms as f64 / 1000.0,
        "rss_bytes": w.rss_bytes,
        "cpu_percent": (w.cpu_percent * 10.0).round() / 10.0,
        "reason": w.reason,
        "last_exit_code": w.last_exit_code,
        "last_signal": w.last_signal,
        "last_log_lines": w.last_log_lines,
        "next_retry_in_ms": w.next_retry_in_ms,
        "log": w.log_path,
    })
}

/// `status` as a table, plus each crashed worker's last log lines.
pub fn status_table(s: &pb::StatusResponse) -> String {
    let header = [
        "WORKER", "STATE", "PID", "UPTIME", "RESTARTS", "RSS", "CPU%", "REASON",
    ];
    let rows: Vec<[String; 8]> = s
        .workers
        .iter()
        .map(|w| {
            [
                w.name.clone(),
                state_name(w.state).to_owned(),
                if w.pid == 0 {
                    "-".into()
                } else {
                    w.pid.to_string()
                },
                if w.uptime_ms == 0 {
                    "-".into()
                } else {
                    human_duration(w.uptime_ms / 1000)
                },
                if w.max_restarts > 0 && w.attempt > 0 {
                    format!("{} ({}/{})", w.restarts, w.attempt, w.max_restarts)
                } else {
                    w.restarts.to_string()
                },
                if w.rss_bytes == 0 {
                    "-".into()
                } else {
                    human_bytes(w.rss_bytes)
                },
                format!("{:.1}", w.cpu_percent),
                w.reason.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate().take(7) {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == cells.len() - 1 {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = line(&header.map(String::from)) + "\n";
    for r in &rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    if !s.notifications.is_empty() {
        out.push_str(&format!("notifications: {}\n", s.notifications));
    }
    if !s.thermal.is_empty() {
        out.push_str(&format!("heat: {}\n", s.thermal));
    }
    for w in &s.workers {
        if !w.last_log_lines.is_empty() && state_name(w.state) != "running" {
            out.push_str(&format!("\n{} last log lines ({}):\n", w.name, w.log_path));
            for l in &w.last_log_lines {
                out.push_str(&format!("  {l}\n"));
            }
        }
    }
    out.push_str(&format!(
        "\ncoworkd pid {} up {} rss {} — home {}\n",
        s.coworkd_pid,
        human_duration(s.coworkd_uptime_ms / 1000),
        human_bytes(s.coworkd_rss_bytes),
        s.home
    ));
    out
}

/// One health event as a `watch` line.
pub fn event_line(e: &pb::HealthEvent) -> String {
    let mut out = format!(
        "{} {:<8} {} → {}",
        rfc3339_ms(e.unix_ms),
        e.worker,
        state_name(e.previous),
        state_name(e.state)
    );
    if e.pid != 0 {
        out.push_str(&format!(" pid {}", e.pid));
    }
    if !e.reason.is_empty() {
        out.push_str(&format!(" ({})", e.reason));
    }
    out
}

/// One health event as a `watch --json` object.
pub fn event_json(e: &pb::HealthEvent) -> Value {
    json!({
        "worker": e.worker,
        "state": state_name(e.state),
        "previous": state_name(e.previous),
        "reason": e.reason,
        "seq": e.seq,
        "unix_ms": e.unix_ms,
        "pid": if e.pid == 0 { Value::Null } else { json!(e.pid) },
        "attempt": e.attempt,
        "restarts": e.restarts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cowork_proto::status::STATUS_JSON_FIELDS;

    fn sample() -> pb::StatusResponse {
        pb::StatusResponse {
            workers: vec![
                pb::WorkerStatus {
                    name: "capture".into(),
                    state: pb::WorkerState::Running as i32,
                    pid: 42,
                    restarts: 1,
                    uptime_ms: 65_000,
                    rss_bytes: 5 << 20,
                    cpu_percent: 0.04,
                    ..Default::default()
                },
                pb::WorkerStatus {
                    name: "agents".into(),
                    state: pb::WorkerState::Failed as i32,
                    reason: "exited with code 3".into(),
                    last_exit_code: Some(3),
                    last_log_lines: vec!["boom".into()],
                    ..Default::default()
                },
            ],
            coworkd_pid: 7,
            ..Default::default()
        }
    }

    #[test]
    fn json_has_the_contract_fields() {
        let v = status_json(&sample());
        let w = &v["workers"][0];
        for key in STATUS_JSON_FIELDS {
            assert!(w.get(key).is_some(), "missing {key}");
        }
        assert_eq!(w["state"], "running");
        assert_eq!(w["uptime_s"], 65.0);
        assert_eq!(v["workers"][1]["pid"], Value::Null);
        assert_eq!(v["workers"][1]["last_exit_code"], 3);
    }

    #[test]
    fn table_shows_rows_and_crash_logs() {
        let t = status_table(&sample());
        assert!(t.starts_with("WORKER"), "{t}");
        assert!(t.contains("capture  running"), "{t}");
        assert!(t.contains("1m05s"), "{t}");
        assert!(t.contains("5.0 MiB"), "{t}");
        assert!(t.contains("agents last log lines"), "{t}");
        assert!(t.contains("  boom"), "{t}");
    }
}
