//! `coworkctl capture`: each stream's status, consent per stream, recent
//! records and the active window (`cowork.capture.v1`).

use crate::context::{age, call, clip, now_unix_ms, Ctx};
use anyhow::Result;
use clap::Subcommand;
use cowork_proto::pb::capture::{self as pb, capture_client::CaptureClient};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::process::ExitCode;

/// `coworkctl capture`.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Each stream: enabled, source, events in the last minute, last event.
    Status,
    /// Turn a stream on (window, focus, keystrokes, clipboard or audio).
    Enable {
        /// window, focus, keystrokes, clipboard or audio.
        stream: String,
    },
    /// Turn a stream off: it is no longer even read from its source.
    Disable {
        /// window, focus, keystrokes, clipboard or audio.
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

/// Run a `capture` command.
pub async fn run(cmd: Cmd, ctx: &mut Ctx) -> Result<ExitCode> {
    let mut client = CaptureClient::new(ctx.channel.clone());
    let now = now_unix_ms();
    match cmd {
        Cmd::Status => {
            let s = client
                .get_status(call(pb::GetStatusRequest {}))
                .await?
                .into_inner();
            ctx.show_block(|| status_json(&s), || status_table(&s, now))?;
        }
        Cmd::Enable { stream } => set_stream(&mut client, stream, true, ctx).await?,
        Cmd::Disable { stream } => set_stream(&mut client, stream, false, ctx).await?,
        Cmd::Recent {
            streams,
            limit,
            since,
            until,
        } => {
            let ago = |d: Option<String>| -> Result<i64> {
                match d {
                    None => Ok(0),
                    Some(d) => Ok(now - parse_duration_ms(&d).map_err(anyhow::Error::msg)?),
                }
            };
            let r = client
                .list_recent(call(pb::ListRecentRequest {
                    from_unix_ms: ago(since)?,
                    to_unix_ms: ago(until)?,
                    limit,
                    streams,
                }))
                .await?
                .into_inner();
            ctx.show_block(|| recent_json(&r), || recent_table(&r, now))?;
        }
        Cmd::Window => {
            let w = client
                .get_active_window(call(pb::GetActiveWindowRequest {}))
                .await?
                .into_inner();
            ctx.show(|| window_json(&w), || window_text(&w, now))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_stream(
    client: &mut CaptureClient<tonic::transport::Channel>,
    stream: String,
    enabled: bool,
    ctx: &mut Ctx,
) -> Result<()> {
    let r = client
        .set_stream_enabled(call(pb::SetStreamEnabledRequest { stream, enabled }))
        .await?
        .into_inner();
    let Some(s) = r.stream else {
        anyhow::bail!("capture-agent answered without the stream's status");
    };
    ctx.show(
        || stream_json(&s),
        || format!("{}: {}", s.name, if s.enabled { "on" } else { "off" }),
    )
}

/// `capture window --json`.
pub fn window_json(w: &pb::GetActiveWindowResponse) -> Value {
    json!({
        "known": w.known, "app": w.app, "app_id": w.app_id, "title": w.title,
        "url": w.url, "since_unix_ms": w.since_unix_ms,
        "denylisted": w.denylisted,
        "away": if w.away.is_empty() { None } else { Some(&w.away) },
    })
}

/// `capture window` in words.
pub fn window_text(w: &pb::GetActiveWindowResponse, now_ms: i64) -> String {
    if !w.known {
        "no active window known".into()
    } else if w.denylisted {
        format!("{} (denylisted: not recorded)", w.app)
    } else {
        format!(
            "{} ({}): {}{} — since {}",
            w.app,
            w.app_id,
            w.title,
            if w.url.is_empty() {
                String::new()
            } else {
                format!(" <{}>", w.url)
            },
            age(now_ms, w.since_unix_ms)
        )
    }
}

/// Parse a duration such as `90s`, `10m`, `2h`, `7d` (a bare number is
/// seconds) into milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?}: expected e.g. 90s, 10m, 2h or 7d"))?;
    let mult = match unit {
        "" | "s" => 1_000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "bad duration unit {unit:?} in {s:?}: use ms, s, m, h or d"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("duration {s:?} is too long"))
}

/// One stream in the `--json` shape.
pub fn stream_json(s: &pb::StreamStatus) -> Value {
    json!({
        "name": s.name,
        "enabled": s.enabled,
        "source": s.source,
        "events_last_minute": s.events_last_minute,
        "last_event_unix_ms": s.last_event_unix_ms,
        "events_total": s.events_total,
    })
}

/// `capture status --json`.
pub fn status_json(s: &pb::GetStatusResponse) -> Value {
    json!({
        "pid": s.pid,
        "source": s.source,
        "source_state": s.source_state,
        "source_detail": s.source_detail,
        "database_path": s.database_path,
        "rows_written": s.rows_written,
        "away": if s.away.is_empty() { Value::Null } else { json!(s.away) },
        "streams": s.streams.iter().map(stream_json).collect::<Vec<_>>(),
    })
}

/// `capture status` as a table.
pub fn status_table(s: &pb::GetStatusResponse, now_ms: i64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "source: {} ({}{})",
        s.source,
        s.source_state,
        if s.source_detail.is_empty() {
            String::new()
        } else {
            format!(": {}", s.source_detail)
        }
    );
    let _ = writeln!(
        out,
        "database: {}  rows written: {}",
        s.database_path, s.rows_written
    );
    if !s.away.is_empty() {
        let _ = writeln!(out, "away: {}", s.away);
    }
    let _ = writeln!(
        out,
        "{:<11} {:<8} {:<7} {:>9}  LAST EVENT",
        "STREAM", "ENABLED", "SOURCE", "EVENTS/MIN"
    );
    for st in &s.streams {
        let _ = writeln!(
            out,
            "{:<11} {:<8} {:<7} {:>9}  {}",
            st.name,
            if st.enabled { "on" } else { "off" },
            st.source,
            st.events_last_minute,
            st.last_event_unix_ms
                .map(|t| age(now_ms, t))
                .unwrap_or_else(|| "-".into())
        );
    }
    out
}

/// One record in the `--json` shape.
pub fn record_json(r: &pb::ActivityRecord) -> Value {
    json!({
        "stream": r.stream,
        "kind": r.kind,
        "id": r.id,
        "started_unix_ms": r.started_unix_ms,
        "ended_unix_ms": r.ended_unix_ms,
        "app": r.app,
        "app_id": r.app_id,
        "title": r.title,
        "url": r.url,
        "text": r.text,
        "detail": r.detail,
    })
}

/// `capture recent --json`.
pub fn recent_json(r: &pb::ListRecentResponse) -> Value {
    json!({ "records": r.records.iter().map(record_json).collect::<Vec<_>>() })
}

/// `capture recent` as a table, newest first.
pub fn recent_table(r: &pb::ListRecentResponse, now_ms: i64) -> String {
    let mut out = String::new();
    if r.records.is_empty() {
        out.push_str("no capture records\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<9} {:<16} {:<14} {:>7}  WHAT",
        "WHEN", "KIND", "APP", "SECONDS"
    );
    for rec in &r.records {
        let secs = rec
            .ended_unix_ms
            .map(|e| format!("{:.1}", (e - rec.started_unix_ms) as f64 / 1000.0))
            .unwrap_or_else(|| "open".into());
        let what = match rec.kind.as_str() {
            "keystroke_chunk" => format!("{:?} ({})", rec.text, rec.detail),
            "clipboard" => format!("{} {:?}", rec.detail, rec.text),
            "activity" if !rec.url.is_empty() => format!("{} — {}", rec.title, rec.url),
            "activity" => rec.title.clone(),
            _ => rec.detail.clone(),
        };
        let _ = writeln!(
            out,
            "{:<9} {:<16} {:<14} {:>7}  {}",
            age(now_ms, rec.started_unix_ms),
            rec.kind,
            clip(&rec.app, 14),
            secs,
            clip(&what, 80)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_ages() {
        assert_eq!(parse_duration_ms("90s"), Ok(90_000));
        assert_eq!(parse_duration_ms("10m"), Ok(600_000));
        assert_eq!(parse_duration_ms("2"), Ok(2_000));
        assert!(parse_duration_ms("1w").unwrap_err().contains("unit"));
        assert!(parse_duration_ms("abc").is_err());
        assert!(parse_duration_ms("99999999999999999d").is_err());
        assert_eq!(age(10_000, 7_000), "3s ago");
        assert_eq!(age(0, 7_200_000), "in 2h");
    }

    #[test]
    fn recent_table_shows_text_and_open_records() {
        let r = pb::ListRecentResponse {
            records: vec![pb::ActivityRecord {
                stream: "keystrokes".into(),
                kind: "keystroke_chunk".into(),
                id: 1,
                started_unix_ms: 0,
                ended_unix_ms: None,
                app: "XTerm".into(),
                text: "hello\nworld".into(),
                detail: "enter".into(),
                ..Default::default()
            }],
        };
        let t = recent_table(&r, 5_000);
        assert!(
            t.contains("open") && t.contains("hello\\nworld") && t.contains("XTerm"),
            "{t}"
        );
        assert_eq!(recent_json(&r)["records"][0]["ended_unix_ms"], Value::Null);
    }

    #[test]
    fn the_active_window_in_words_and_json() {
        let w = pb::GetActiveWindowResponse {
            known: true,
            app: "Firefox".into(),
            app_id: "firefox".into(),
            title: "Docs".into(),
            url: "https://d.test".into(),
            since_unix_ms: 1_000,
            ..Default::default()
        };
        assert_eq!(
            window_text(&w, 13_000),
            "Firefox (firefox): Docs <https://d.test> — since 12s ago"
        );
        assert_eq!(window_json(&w)["away"], Value::Null);
        let hidden = pb::GetActiveWindowResponse {
            denylisted: true,
            ..w.clone()
        };
        assert_eq!(
            window_text(&hidden, 0),
            "Firefox (denylisted: not recorded)"
        );
        assert_eq!(
            window_text(&pb::GetActiveWindowResponse::default(), 0),
            "no active window known"
        );
    }
}
