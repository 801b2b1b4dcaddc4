//! The simulation source: replays a JSONL script of timestamped events at
//! real or accelerated speed, for tests, demos and headless machines.
//!
//! One JSON object per line, each with `t_ms` (offset from the start,
//! never decreasing) and `kind`:
//!
//! ```text
//! {"t_ms":0,   "kind":"window","app":"Firefox","app_id":"firefox","title":"Docs","url":"https://..."}
//! {"t_ms":100, "kind":"keys","text":"hello"}
//! {"t_ms":200, "kind":"key","key":"Enter"}            Enter, Tab, Escape, Backspace
//! {"t_ms":300, "kind":"clipboard","op":"copy","text":"..."}   copy, cut, paste
//!     (optional "owner_app": the app owning the content, "sensitive": true
//!      when the owner marked it secret; both are never recorded)
//! {"t_ms":400, "kind":"idle","seconds":60}             away for 60 s (input ends it early)
//! {"t_ms":500, "kind":"sleep","seconds":600}           the machine sleeps
//! {"t_ms":600, "kind":"nowindow"}                      nothing has focus
//! ```
//!
//! Blank lines and lines starting with `#` are skipped. A bad line is
//! reported (the worker turns degraded, naming it) and skipped; the rest
//! still plays. Events are stamped `start + t_ms`, whatever the speed, so
//! durations and debounce behave as scripted; `start` is now, moved by
//! `sim_clock_offset_s` (a script of two days ago).

use super::{now_ms, SharedWants, Sink, Source, SourceError};
use crate::event::{AwayKind, ClipboardOp, SourceEvent, SpecialKey, Wants, WindowInfo};
use serde::Deserialize;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest script line accepted.
pub const MAX_LINE: usize = 1 << 20;

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Kind {
    Window {
        app: String,
        #[serde(default)]
        app_id: Option<String>,
        #[serde(default)]
        title: String,
        #[serde(default)]
        url: Option<String>,
    },
    Nowindow,
    Keys {
        text: String,
    },
    Key {
        key: String,
    },
    Clipboard {
        op: String,
        #[serde(default)]
        text: Option<String>,
        #[serde(default)]
        owner_app: Option<String>,
        #[serde(default)]
        sensitive: bool,
    },
    Idle {
        seconds: f64,
    },
    Sleep {
        seconds: f64,
    },
}

#[derive(Debug, Deserialize)]
struct Line {
    t_ms: i64,
    #[serde(flatten)]
    kind: Kind,
}

/// One parsed script line.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptEvent {
    /// Offset from the start of the replay.
    pub t_ms: i64,
    /// The event.
    pub event: SourceEvent,
    /// For idle and sleep: how long the person is away.
    pub away_ms: Option<i64>,
}

/// Parse one script line. `Ok(None)` for blank and comment lines.
pub fn parse_line(line: &str) -> Result<Option<ScriptEvent>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let l: Line = serde_json::from_str(line).map_err(|e| e.to_string())?;
    if l.t_ms < 0 {
        return Err(format!("t_ms must not be negative (got {})", l.t_ms));
    }
    let away = |seconds: f64| -> Result<i64, String> {
        if (0.0..1e9).contains(&seconds) {
            Ok((seconds * 1000.0) as i64)
        } else {
            Err(format!("seconds must be between 0 and 1e9 (got {seconds})"))
        }
    };
    let (event, away_ms) = match l.kind {
        Kind::Window {
            app,
            app_id,
            title,
            url,
        } => (
            SourceEvent::Window(WindowInfo {
                app_id: app_id.unwrap_or_else(|| app.to_lowercase()),
                app,
                title,
                url,
            }),
            None,
        ),
        Kind::Nowindow => (SourceEvent::NoWindow, None),
        Kind::Keys { text } => (SourceEvent::Keys(text), None),
        Kind::Key { key } => (SourceEvent::Key(key.parse::<SpecialKey>()?), None),
        Kind::Clipboard {
            op,
            text,
            owner_app,
            sensitive,
        } => (
            SourceEvent::Clipboard {
                op: op.parse::<ClipboardOp>()?,
                text,
                owner_app,
                sensitive,
            },
            None,
        ),
        Kind::Idle { seconds } => (SourceEvent::AwayStart(AwayKind::Idle), Some(away(seconds)?)),
        Kind::Sleep { seconds } => (
            SourceEvent::AwayStart(AwayKind::Sleep),
            Some(away(seconds)?),
        ),
    };
    Ok(Some(ScriptEvent {
        t_ms: l.t_ms,
        event,
        away_ms,
    }))
}

/// Is this event read at all under `w`?
fn wanted(e: &SourceEvent, w: Wants) -> bool {
    match e {
        SourceEvent::Window(_) | SourceEvent::NoWindow => w.window,
        SourceEvent::Keys(_) | SourceEvent::Key(_) => w.keys,
        SourceEvent::Clipboard { .. } => w.clipboard,
        SourceEvent::AwayStart(_) | SourceEvent::AwayEnd => w.idle,
    }
}

/// Read one line of at most [`MAX_LINE`] bytes. `Ok(None)` at the end;
/// `Err` for a line too long (the rest of it is skipped).
fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Option<Result<(), ()>>> {
    buf.clear();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.len() > MAX_LINE && buf.last() != Some(&b'\n') {
        // Skip the rest of the long line.
        let mut sink = Vec::new();
        loop {
            sink.clear();
            let n = r.by_ref().take(64 * 1024).read_until(b'\n', &mut sink)?;
            if n == 0 || sink.last() == Some(&b'\n') {
                break;
            }
        }
        return Ok(Some(Err(())));
    }
    Ok(Some(Ok(())))
}

/// The simulation source.
#[derive(Debug)]
pub struct SimSource {
    script: Option<PathBuf>,
    speed: f64,
    offset_ms: i64,
    wants: Arc<SharedWants>,
}

impl SimSource {
    /// Replay `script` at `speed` (1 = real time, 0 = as fast as possible).
    pub fn new(script: Option<PathBuf>, speed: f64) -> Self {
        Self {
            script,
            speed,
            offset_ms: 0,
            wants: Arc::new(SharedWants::default()),
        }
    }

    /// Start the replay's clock `offset_ms` from now (negative: the past).
    pub fn with_clock_offset(mut self, offset_ms: i64) -> Self {
        self.offset_ms = offset_ms;
        self
    }
}

impl Source for SimSource {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn start(&mut self, wants: Wants, sink: Sink) -> Result<(), SourceError> {
        let Some(path) = self.script.clone() else {
            return Err(SourceError(
                "source = \"sim\" needs sim_script = PATH in [capture] of config.toml".into(),
            ));
        };
        let file = std::fs::File::open(&path)
            .map_err(|e| SourceError(format!("cannot open sim_script {}: {e}", path.display())))?;
        self.wants.set(wants);
        let shared = self.wants.clone();
        let (speed, offset_ms) = (self.speed, self.offset_ms);
        std::thread::Builder::new()
            .name("capture-sim".into())
            .spawn(move || {
                let start_ms = now_ms().saturating_add(offset_ms);
                replay(BufReader::new(file), path, speed, start_ms, &shared, &sink)
            })
            .map_err(|e| SourceError(format!("cannot start the sim thread: {e}")))?;
        Ok(())
    }

    fn set_wants(&mut self, wants: Wants) {
        self.wants.set(wants);
    }
}

fn replay(
    mut r: impl BufRead,
    path: PathBuf,
    speed: f64,
    start_ms: i64,
    wants: &SharedWants,
    sink: &Sink,
) {
    let start = Instant::now();
    let mut buf = Vec::new();
    let (mut lineno, mut played, mut bad) = (0u64, 0u64, 0u64);
    let mut first_bad: Option<String> = None;
    let mut last_t = 0i64;
    let mut away_end: Option<i64> = None;
    sink.healthy(format!("replaying {}", path.display()));
    let wait_for = |t_ms: i64| {
        if speed > 0.0 {
            let due = Duration::from_secs_f64(t_ms as f64 / 1000.0 / speed);
            if let Some(d) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(d);
            }
        }
    };
    let mut report_bad = |lineno: u64, msg: String, bad: &mut u64| {
        *bad += 1;
        tracing::warn!(line = lineno, error = %msg, "bad sim script line skipped");
        let first = first_bad.get_or_insert_with(|| format!("line {lineno}: {msg}"));
        sink.degraded(format!(
            "sim script {}: {} bad line(s) skipped (first: {first})",
            path.display(),
            bad
        ))
    };
    loop {
        let line = match read_line(&mut r, &mut buf) {
            Ok(None) => break,
            Ok(Some(l)) => l,
            Err(e) => {
                sink.degraded(format!("cannot read sim script {}: {e}", path.display()));
                return;
            }
        };
        lineno += 1;
        if line.is_err() {
            if !report_bad(lineno, format!("longer than {MAX_LINE} bytes"), &mut bad) {
                return;
            }
            continue;
        }
        let text = String::from_utf8_lossy(&buf);
        let ev = match parse_line(&text) {
            Ok(None) => continue,
            Ok(Some(ev)) => ev,
            Err(msg) => {
                if !report_bad(lineno, msg, &mut bad) {
                    return;
                }
                continue;
            }
        };
        if ev.t_ms < last_t {
            let msg = format!("t_ms {} goes back in time (previous {last_t})", ev.t_ms);
            if !report_bad(lineno, msg, &mut bad) {
                return;
            }
            continue;
        }
        last_t = ev.t_ms;
        if let Some(end) = away_end.filter(|end| *end <= ev.t_ms) {
            away_end = None;
            wait_for(end);
            if wants.get().idle && !sink.event(start_ms + end, SourceEvent::AwayEnd) {
                return;
            }
        }
        wait_for(ev.t_ms);
        if let Some(ms) = ev.away_ms {
            away_end = Some(ev.t_ms + ms);
        }
        if !wanted(&ev.event, wants.get()) {
            continue;
        }
        if !sink.event(start_ms + ev.t_ms, ev.event) {
            return;
        }
        played += 1;
    }
    if let Some(end) = away_end {
        wait_for(end);
        if wants.get().idle {
            sink.event(start_ms + end, SourceEvent::AwayEnd);
        }
    }
    let summary = format!(
        "replayed {} ({played} events, {bad} bad lines)",
        path.display()
    );
    tracing::info!(played, bad, "sim script finished");
    if bad == 0 {
        sink.healthy(summary);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn parses_every_kind() {
        let w = parse_line(
            r#"{"t_ms":5,"kind":"window","app":"Firefox","title":"Docs","url":"https://a"}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(w.t_ms, 5);
        assert_eq!(
            w.event,
            SourceEvent::Window(WindowInfo {
                app: "Firefox".into(),
                app_id: "firefox".into(),
                title: "Docs".into(),
                url: Some("https://a".into())
            })
        );
        assert_eq!(
            parse_line(r#"{"t_ms":1,"kind":"key","key":"Enter"}"#)
                .unwrap()
                .unwrap()
                .event,
            SourceEvent::Key(SpecialKey::Enter)
        );
        let idle = parse_line(r#"{"t_ms":1,"kind":"idle","seconds":2.5}"#)
            .unwrap()
            .unwrap();
        assert_eq!(idle.away_ms, Some(2500));
        assert_eq!(parse_line("  ").unwrap(), None);
        assert_eq!(parse_line("# comment").unwrap(), None);
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        for (line, needle) in [
            (r#"{"t_ms":1,"kind":"teleport"}"#, "teleport"),
            (r#"{"t_ms":-1,"kind":"nowindow"}"#, "negative"),
            (r#"{"t_ms":1,"kind":"key","key":"F13"}"#, "F13"),
            (r#"{"t_ms":1,"kind":"clipboard","op":"yank"}"#, "yank"),
            (r#"{"t_ms":1,"kind":"idle","seconds":-3}"#, "seconds"),
            (r#"{"kind":"keys","text":"x"}"#, "t_ms"),
            ("not json", "expected"),
        ] {
            let e = parse_line(line).unwrap_err();
            assert!(e.contains(needle), "{line}: {e}");
        }
    }

    type Replayed = (Vec<(i64, SourceEvent)>, Vec<Result<String, String>>);

    fn run(script: &str, wants: Wants) -> Replayed {
        let events = Arc::new(Mutex::new(Vec::new()));
        let health = Arc::new(Mutex::new(Vec::new()));
        let (e2, h2) = (events.clone(), health.clone());
        let sink = Sink::new(move |m| {
            match m {
                super::super::SourceMsg::Event(t) => e2.lock().unwrap().push((t.at_ms, t.event)),
                super::super::SourceMsg::Health(h) => h2.lock().unwrap().push(h),
            }
            true
        });
        let shared = SharedWants::default();
        shared.set(wants);
        replay(
            BufReader::new(script.as_bytes()),
            PathBuf::from("test.jsonl"),
            0.0,
            now_ms(),
            &shared,
            &sink,
        );
        let ev = events.lock().unwrap().clone();
        let base = ev.first().map(|e| e.0).unwrap_or(0);
        let ev = ev.into_iter().map(|(t, e)| (t - base, e)).collect();
        let h = health.lock().unwrap().clone();
        (ev, h)
    }

    fn all() -> Wants {
        crate::event::StreamSet::default().wants()
    }

    #[test]
    fn idle_ends_on_time_and_bad_lines_do_not_stop_the_replay() {
        let script = "{\"t_ms\":0,\"kind\":\"window\",\"app\":\"A\"}\n\
                      {\"t_ms\":10,\"kind\":\"idle\",\"seconds\":1}\n\
                      garbage\n\
                      {\"t_ms\":5000,\"kind\":\"keys\",\"text\":\"x\"}\n\
                      {\"t_ms\":4000,\"kind\":\"keys\",\"text\":\"back\"}\n";
        let (ev, health) = run(script, all());
        let kinds: Vec<_> = ev.iter().map(|(t, e)| (*t, e.clone())).collect();
        assert_eq!(kinds[1], (10, SourceEvent::AwayStart(AwayKind::Idle)));
        assert_eq!(kinds[2], (1010, SourceEvent::AwayEnd));
        assert_eq!(kinds[3], (5000, SourceEvent::Keys("x".into())));
        assert_eq!(kinds.len(), 4);
        let last = health.last().unwrap().as_ref().unwrap_err();
        assert!(
            last.contains("2 bad line(s)") && last.contains("line 3"),
            "{last}"
        );
    }

    #[test]
    fn a_disabled_stream_is_not_read() {
        let script = "{\"t_ms\":0,\"kind\":\"window\",\"app\":\"A\"}\n\
                      {\"t_ms\":1,\"kind\":\"keys\",\"text\":\"secret\"}\n\
                      {\"t_ms\":2,\"kind\":\"clipboard\",\"op\":\"copy\",\"text\":\"x\"}\n";
        let mut w = all();
        w.keys = false;
        w.clipboard = false;
        let (ev, _) = run(script, w);
        assert_eq!(ev.len(), 1);
    }

    #[test]
    fn an_oversized_line_is_skipped_not_loaded() {
        let long = format!(
            "{{\"t_ms\":0,\"kind\":\"keys\",\"text\":\"{}\"}}\n{{\"t_ms\":1,\"kind\":\"keys\",\"text\":\"ok\"}}\n",
            "a".repeat(MAX_LINE + 10)
        );
        let (ev, health) = run(&long, all());
        assert_eq!(ev, vec![(0, SourceEvent::Keys("ok".into()))]);
        assert!(health
            .iter()
            .any(|h| h.as_ref().err().is_some_and(|e| e.contains("longer than"))));
    }
}
