//! How coworkctl shows things: human tables and the `--json` shapes. Pure
//! functions of the proto messages.

use cowork_proto::pb::system as pb;
use cowork_proto::status::state_name;
#[cfg(test)]
use cowork_proto::status::STATUS_JSON_FIELDS;
use serde_json::{json, Value};

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

/// "1h02m", "3m05s", "42s".
pub fn human_duration(secs: u64) -> String {
    match secs {
        s if s >= 86_400 => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// "12.3 MiB".
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Milliseconds since the epoch as UTC `HH:MM:SS.mmm` with its date.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let ms = unix_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        tod / 3600,
        (tod % 3600) / 60,
        tod % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn dates() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
    }
}
