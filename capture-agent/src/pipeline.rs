//! Capture orchestration (seed: "Capture Orchestration"): turns timestamped
//! source events into self-contained rows, one set per stream, after the
//! consent and privacy checks. Pure: no I/O, no clock; time comes in with
//! every call, so a replayed script behaves exactly like a live desktop.
//!
//! Streams are independent peers: a keystroke chunk or clipboard event
//! carries its own app context and only a hint of the activity it happened
//! in. The one coordination rule (seed): an activity ending flushes the
//! open chunk; a chunk reaching its cap never ends an activity.

use crate::buffer::ActivityBuffer;
use crate::chunker::Chunker;
use crate::event::{AwayKind, ClipboardOp, SourceEvent, Stream, StreamSet, TimedEvent, WindowInfo};
use crate::privacy::Privacy;
use crate::record::{ActivityRow, AppContext, AwayRow, ChunkRow, ClipboardRow, FocusRow, Row};
use std::hash::{Hash, Hasher};

/// The next free row id of each table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextIds {
    /// capture_activities.
    pub activity: i64,
    /// capture_focus_sessions.
    pub focus: i64,
    /// capture_idle_periods.
    pub away: i64,
    /// capture_keystroke_chunks.
    pub chunk: i64,
    /// capture_clipboard_events.
    pub clipboard: i64,
}

impl Default for NextIds {
    fn default() -> Self {
        Self {
            activity: 1,
            focus: 1,
            away: 1,
            chunk: 1,
            clipboard: 1,
        }
    }
}

/// The active window as the pipeline knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveWindow {
    /// The window, redacted.
    pub info: WindowInfo,
    /// Focused since, Unix ms.
    pub since_ms: i64,
    /// On the app denylist: nothing about it is recorded.
    pub denied: bool,
}

#[derive(Debug)]
struct Open<T> {
    row: T,
    dirty: bool,
}

impl<T> Open<T> {
    fn new(row: T) -> Self {
        Self { row, dirty: true }
    }
}

#[derive(Debug)]
struct Away {
    kind: AwayKind,
    row: Option<Open<AwayRow>>,
}

/// The capture pipeline.
#[derive(Debug)]
pub struct Pipeline {
    streams: StreamSet,
    privacy: Privacy,
    window: Option<ActiveWindow>,
    activity: Option<Open<ActivityRow>>,
    focus: Option<Open<FocusRow>>,
    away: Option<Away>,
    chunker: Chunker,
    /// The last chunk closed at the cap, raw, kept until what is
    /// typed next is known: a secret typed across the cut is redacted with
    /// both halves in view.
    cut: Option<Cut>,
    buffer: ActivityBuffer,
    ids: NextIds,
    clock_ms: i64,
    last_event_ms: i64,
    tainted_clipboard: Option<u64>,
    out: Vec<Row>,
}

/// A chunk closed at the cap and what of it was emitted.
#[derive(Debug, Clone)]
struct Cut {
    /// The raw text of the chunk before it, when that was cut at the cap
    /// too (a secret may run into this one from there).
    before: Option<String>,
    /// The chunk, raw.
    row: ChunkRow,
    /// What was queued for it last.
    emitted: Option<String>,
}

fn text_hash(text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

impl Pipeline {
    /// A pipeline with these streams enabled, closing keystroke chunks after
    /// `debounce_ms` without keys, numbering rows from `ids`.
    pub fn new(streams: StreamSet, privacy: Privacy, debounce_ms: i64, ids: NextIds) -> Self {
        Self {
            streams,
            privacy,
            window: None,
            activity: None,
            focus: None,
            away: None,
            chunker: Chunker::new(debounce_ms, ids.chunk),
            buffer: ActivityBuffer::default(),
            ids,
            clock_ms: i64::MIN,
            last_event_ms: i64::MIN,
            tainted_clipboard: None,
            out: Vec::new(),
            cut: None,
        }
    }

    /// The enabled streams.
    pub fn streams(&self) -> StreamSet {
        self.streams
    }

    /// The active window, if one is known.
    pub fn active_window(&self) -> Option<&ActiveWindow> {
        self.window.as_ref()
    }

    /// Is the person away (idle or asleep)?
    pub fn away(&self) -> Option<AwayKind> {
        self.away.as_ref().map(|a| a.kind)
    }

    /// The next time something closes by itself (the chunk debounce).
    pub fn deadline(&self) -> Option<i64> {
        self.chunker.deadline()
    }

    /// Replace the denylist and redaction patterns. Applies to what is
    /// recorded from now on.
    pub fn set_privacy(&mut self, privacy: Privacy, at_ms: i64) {
        if self.privacy.same_rules(&privacy) {
            return;
        }
        self.privacy = privacy;
        if let Some(w) = self.window.clone() {
            // Re-evaluate the current window under the new rules.
            self.window = None;
            let at = self.tick(at_ms);
            self.on_window(at, Some(w.info));
        }
    }

    fn tick(&mut self, at_ms: i64) -> i64 {
        self.clock_ms = self.clock_ms.max(at_ms);
        self.clock_ms
    }

    /// Handle one event. Returns the stream that recorded it, or None when
    /// it was dropped (stream off, denylisted app, nothing changed).
    pub fn handle(&mut self, ev: TimedEvent) -> Option<Stream> {
        if let SourceEvent::AwayStart(kind) = ev.event {
            // Sources detect idle (and sleep) after the fact and date it back
            // to the last input; honour that, but never before an event
            // already handled.
            let at = ev.at_ms.max(self.last_event_ms);
            self.last_event_ms = self.last_event_ms.max(at);
            self.tick(at);
            return self.on_away_start(at, kind);
        }
        let at = self.tick(ev.at_ms);
        self.last_event_ms = at;
        self.advance(at);
        match ev.event {
            SourceEvent::Window(w) => self.on_window(at, Some(w)),
            SourceEvent::NoWindow => self.on_window(at, None),
            SourceEvent::Keys(text) => {
                if !self.streams.get(Stream::Keystrokes) {
                    return None;
                }
                self.end_away(at);
                if self.window_denied() {
                    return None;
                }
                let ctx = self.context();
                let mut closed = Vec::new();
                self.chunker.type_text(at, &text, &ctx, &mut closed);
                self.emit_chunks(closed);
                Some(Stream::Keystrokes)
            }
            SourceEvent::Key(key) => {
                if !self.streams.get(Stream::Keystrokes) {
                    return None;
                }
                self.end_away(at);
                if self.window_denied() {
                    return None;
                }
                let ctx = self.context();
                let mut closed = Vec::new();
                self.chunker.special_key(at, key, &ctx, &mut closed);
                self.emit_chunks(closed);
                Some(Stream::Keystrokes)
            }
            SourceEvent::Clipboard {
                op,
                text,
                owner_app,
                sensitive,
            } => {
                let from_denied = sensitive
                    || owner_app
                        .as_deref()
                        .is_some_and(|o| self.privacy.is_denied_name(o));
                self.on_clipboard(at, op, text, from_denied)
            }
            SourceEvent::AwayStart(kind) => self.on_away_start(at, kind),
            SourceEvent::AwayEnd => {
                let was = self.away.is_some();
                self.end_away(at);
                was.then_some(Stream::Focus)
            }
        }
    }

    /// Let time pass: closes a keystroke chunk whose debounce ran out.
    pub fn advance(&mut self, now_ms: i64) {
        let now = self.tick(now_ms);
        let mut closed = Vec::new();
        self.chunker.advance(now, &mut closed);
        self.emit_chunks(closed);
    }

    /// Turn a stream on or off at `at_ms`. Turning one off closes its open
    /// rows at once (reason "disabled").
    pub fn set_stream(&mut self, stream: Stream, on: bool, at_ms: i64) {
        let at = self.tick(at_ms);
        if self.streams.get(stream) == on {
            return;
        }
        self.streams.set(stream, on);
        match (stream, on) {
            (Stream::Window, false) => self.close_activity(at, "disabled"),
            (Stream::Focus, false) => {
                self.close_focus(at, "disabled");
                if let Some(a) = self.away.as_mut() {
                    if let Some(mut r) = a.row.take() {
                        r.row.ended_ms = Some(at);
                        self.out.push(Row::Away(r.row));
                    }
                }
            }
            (Stream::Keystrokes, false) => {
                let mut closed = Vec::new();
                self.chunker.flush("disabled", &mut closed);
                self.emit_chunks(closed);
            }
            (Stream::Clipboard, false) => self.tainted_clipboard = None,
            (Stream::Window, true) => {
                if self.away.is_none() {
                    self.open_activity(at);
                }
            }
            (Stream::Focus, true) => {
                if let Some(kind) = self.away.as_ref().map(|a| a.kind) {
                    let row = self.away_row(kind, at);
                    if let Some(a) = self.away.as_mut() {
                        a.row = row;
                    }
                } else {
                    self.open_focus(at);
                }
            }
            // The audio recorder is the engine's; the pipeline only knows
            // the stream's consent.
            (Stream::Keystrokes | Stream::Clipboard | Stream::Audio, true)
            | (Stream::Audio, false) => {}
        }
    }

    /// The process is stopping: close everything at `at_ms`.
    pub fn shutdown(&mut self, at_ms: i64) {
        let at = self.tick(at_ms);
        let mut closed = Vec::new();
        self.chunker.flush("shutdown", &mut closed);
        self.emit_chunks(closed);
        self.close_activity(at, "shutdown");
        self.close_focus(at, "shutdown");
        if let Some(a) = self.away.take() {
            if let Some(mut r) = a.row {
                r.row.ended_ms = Some(at);
                self.out.push(Row::Away(r.row));
            }
        }
        self.checkpoint();
    }

    /// Mark every open row changed, so the next checkpoint rewrites it
    /// (a heartbeat: a crash then closes it near the time it happened).
    pub fn heartbeat(&mut self) -> bool {
        let mut any = false;
        if let Some(a) = self.activity.as_mut() {
            a.dirty = true;
            any = true;
        }
        if let Some(f) = self.focus.as_mut() {
            f.dirty = true;
            any = true;
        }
        if let Some(r) = self.away.as_mut().and_then(|a| a.row.as_mut()) {
            r.dirty = true;
            any = true;
        }
        any
    }

    /// Move finished rows waiting in the activity buffer, and every open
    /// row that changed, to the output (open rows as open rows, completed
    /// later by id).
    pub fn checkpoint(&mut self) {
        for r in self.buffer.drain() {
            self.out.push(Row::Activity(r));
        }
        if let Some(a) = self.activity.as_mut().filter(|a| a.dirty) {
            a.dirty = false;
            self.out.push(Row::Activity(a.row.clone()));
        }
        if let Some(f) = self.focus.as_mut().filter(|f| f.dirty) {
            f.dirty = false;
            self.out.push(Row::Focus(f.row.clone()));
        }
        if let Some(r) = self
            .away
            .as_mut()
            .and_then(|a| a.row.as_mut())
            .filter(|r| r.dirty)
        {
            r.dirty = false;
            self.out.push(Row::Away(r.row.clone()));
        }
        if let Some(c) = self.chunker.checkpoint() {
            self.emit_chunk(c);
        }
        // A cut with nothing typed after it yet goes out alone (and is
        // written again if what follows changes its redaction).
        if let Some(cut) = self.cut.as_mut().filter(|c| c.emitted.is_none()) {
            let prev = cut.before.as_deref().unwrap_or("");
            let text = self
                .privacy
                .redact_parts(&[prev, &cut.row.text])
                .pop()
                .unwrap_or_default();
            cut.emitted = Some(text.clone());
            self.out.push(Row::Chunk(ChunkRow {
                text,
                ..cut.row.clone()
            }));
        }
    }

    /// Rows ready to be written, oldest first.
    pub fn take_rows(&mut self) -> Vec<Row> {
        std::mem::take(&mut self.out)
    }

    /// Rows waiting to be taken.
    pub fn pending(&self) -> usize {
        self.out.len()
    }

    fn window_denied(&self) -> bool {
        self.window.as_ref().is_some_and(|w| w.denied)
    }

    fn context(&self) -> AppContext {
        match &self.window {
            Some(w) if !w.denied => AppContext {
                app: w.info.app.clone(),
                app_id: w.info.app_id.clone(),
                title: w.info.title.clone(),
                activity_id: self.activity.as_ref().map(|a| a.row.id),
            },
            _ => AppContext::default(),
        }
    }

    /// Redact a closed or open chunk and queue it, with the chunk it
    /// continues when the cap cut them apart (all of them raw, so a
    /// pattern that matched one half alone still sees the other).
    fn emit_chunk(&mut self, c: ChunkRow) {
        let closed = c.flush_reason.is_some();
        let (text, before) = match self.cut.take() {
            Some(mut cut) if cut.row.id + 1 == c.id => {
                let prev = cut.before.as_deref().unwrap_or("");
                let mut parts = self
                    .privacy
                    .redact_parts(&[prev, &cut.row.text, &c.text])
                    .into_iter()
                    .skip(1);
                let cut_text = parts.next().unwrap_or_default();
                let text = parts.next().unwrap_or_default();
                if cut.emitted.as_deref() != Some(cut_text.as_str()) {
                    self.out.push(Row::Chunk(ChunkRow {
                        text: cut_text.clone(),
                        ..cut.row.clone()
                    }));
                    cut.emitted = Some(cut_text);
                }
                let before = Some(cut.row.text.clone());
                if !closed {
                    // Still being typed: keep the cut in view.
                    self.cut = Some(cut);
                }
                (text, before)
            }
            _ => (self.privacy.redact(&c.text).into_owned(), None),
        };
        if c.flush_reason == Some("cap") {
            // Held back, raw, until what follows is seen (the next
            // checkpoint at the latest).
            self.cut = Some(Cut {
                before,
                row: c,
                emitted: None,
            });
            return;
        }
        self.out.push(Row::Chunk(ChunkRow { text, ..c }));
    }

    fn emit_chunks(&mut self, closed: Vec<ChunkRow>) {
        for c in closed {
            self.emit_chunk(c);
        }
    }

    fn on_window(&mut self, at: i64, w: Option<WindowInfo>) -> Option<Stream> {
        let w = w.map(|w| self.privacy.redact_window(w));
        if self.window.as_ref().map(|c| &c.info) == w.as_ref() {
            return None;
        }
        let app_changed = match (&self.window, &w) {
            (Some(old), Some(new)) => old.info.app != new.app || old.info.app_id != new.app_id,
            _ => true,
        };
        self.close_activity(at, "switch");
        if app_changed {
            self.close_focus(at, "focus_change");
        }
        self.window = w.map(|info| ActiveWindow {
            denied: self.privacy.is_denied(&info),
            info,
            since_ms: at,
        });
        if self.away.is_none() {
            self.open_focus(at);
            self.open_activity(at);
        }
        (self.streams.get(Stream::Window) && self.window.as_ref().is_some_and(|w| !w.denied))
            .then_some(Stream::Window)
    }

    fn on_clipboard(
        &mut self,
        at: i64,
        op: ClipboardOp,
        text: Option<String>,
        from_denied: bool,
    ) -> Option<Stream> {
        if !self.streams.get(Stream::Clipboard) {
            return None;
        }
        self.end_away(at);
        let hash = text.as_deref().map(text_hash);
        if from_denied {
            // The content belongs to a denylisted app (or is marked secret).
            return None;
        }
        if self.window_denied() {
            // Remember what a denylisted app put on the clipboard, so pasting
            // it elsewhere does not record it either.
            if op != ClipboardOp::Paste {
                self.tainted_clipboard = hash;
            }
            return None;
        }
        if hash.is_some() && hash == self.tainted_clipboard {
            if op != ClipboardOp::Paste {
                self.tainted_clipboard = None;
            } else {
                return None;
            }
        } else if op != ClipboardOp::Paste {
            self.tainted_clipboard = None;
        }
        let id = self.ids.clipboard;
        self.ids.clipboard += 1;
        let row = ClipboardRow {
            id,
            op: op.name(),
            text: text.map(|t| self.privacy.redact(&t).into_owned()),
            context: self.context(),
            at_ms: at,
        };
        self.out.push(Row::Clipboard(row));
        Some(Stream::Clipboard)
    }

    fn on_away_start(&mut self, at: i64, kind: AwayKind) -> Option<Stream> {
        if let Some(a) = &self.away {
            if a.kind == kind || kind == AwayKind::Idle {
                return None;
            }
            // Idle turned into sleep: close the idle period, open a sleep one.
            self.end_away(at);
        }
        self.close_activity(at, kind.name());
        self.close_focus(at, kind.name());
        let row = self.away_row(kind, at);
        self.away = Some(Away { kind, row });
        self.streams.get(Stream::Focus).then_some(Stream::Focus)
    }

    fn away_row(&mut self, kind: AwayKind, at: i64) -> Option<Open<AwayRow>> {
        if !self.streams.get(Stream::Focus) {
            return None;
        }
        let id = self.ids.away;
        self.ids.away += 1;
        Some(Open::new(AwayRow {
            id,
            kind: kind.name(),
            started_ms: at,
            ended_ms: None,
        }))
    }

    fn end_away(&mut self, at: i64) {
        let Some(a) = self.away.take() else { return };
        if let Some(mut r) = a.row {
            r.row.ended_ms = Some(at);
            self.out.push(Row::Away(r.row));
        }
        self.open_focus(at);
        self.open_activity(at);
    }

    fn open_focus(&mut self, at: i64) {
        if self.focus.is_some() || !self.streams.get(Stream::Focus) {
            return;
        }
        let Some(w) = self.window.as_ref().filter(|w| !w.denied) else {
            return;
        };
        let id = self.ids.focus;
        self.ids.focus += 1;
        self.focus = Some(Open::new(FocusRow {
            id,
            app: w.info.app.clone(),
            app_id: w.info.app_id.clone(),
            started_ms: at,
            ended_ms: None,
            end_reason: None,
            activity_count: 0,
        }));
    }

    fn open_activity(&mut self, at: i64) {
        if self.activity.is_some() || !self.streams.get(Stream::Window) {
            return;
        }
        let Some(w) = self.window.as_ref().filter(|w| !w.denied) else {
            return;
        };
        let id = self.ids.activity;
        self.ids.activity += 1;
        let focus_session_id = self.focus.as_ref().map(|f| f.row.id);
        self.activity = Some(Open::new(ActivityRow {
            id,
            app: w.info.app.clone(),
            app_id: w.info.app_id.clone(),
            title: w.info.title.clone(),
            url: w.info.url.clone(),
            started_ms: at,
            ended_ms: None,
            end_reason: None,
            focus_session_id,
        }));
        if let Some(f) = self.focus.as_mut() {
            f.row.activity_count += 1;
            f.dirty = true;
        }
    }

    fn close_activity(&mut self, at: i64, reason: &'static str) {
        // An activity ending flushes the open chunk, whether or not the
        // window stream records activities.
        let mut closed = Vec::new();
        self.chunker.flush("activity_end", &mut closed);
        self.emit_chunks(closed);
        if let Some(a) = self.activity.take() {
            let mut row = a.row;
            row.ended_ms = Some(at);
            row.end_reason = Some(reason);
            if let Some(batch) = self.buffer.push(row) {
                self.out.extend(batch.into_iter().map(Row::Activity));
            }
        }
    }

    fn close_focus(&mut self, at: i64, reason: &'static str) {
        if let Some(f) = self.focus.take() {
            let mut row = f.row;
            row.ended_ms = Some(at);
            row.end_reason = Some(reason);
            self.out.push(Row::Focus(row));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SpecialKey;

    fn win(app: &str, title: &str) -> SourceEvent {
        SourceEvent::Window(WindowInfo {
            app: app.into(),
            app_id: app.to_lowercase(),
            title: title.into(),
            url: None,
        })
    }

    fn pipeline() -> Pipeline {
        Pipeline::new(
            StreamSet::default(),
            Privacy::default(),
            1000,
            NextIds::default(),
        )
    }

    fn feed(p: &mut Pipeline, events: Vec<(i64, SourceEvent)>) -> Vec<Row> {
        for (at_ms, event) in events {
            p.handle(TimedEvent { at_ms, event });
        }
        p.shutdown(100_000);
        // Keep the last version of every row, as the database does.
        let mut rows: Vec<Row> = Vec::new();
        for r in p.take_rows() {
            let key = key(&r);
            rows.retain(|x| key_of(x) != key);
            rows.push(r);
        }
        rows
    }

    fn key(r: &Row) -> (u8, i64) {
        key_of(r)
    }
    fn key_of(r: &Row) -> (u8, i64) {
        match r {
            Row::Activity(a) => (0, a.id),
            Row::Focus(f) => (1, f.id),
            Row::Away(a) => (2, a.id),
            Row::Chunk(c) => (3, c.id),
            Row::Clipboard(c) => (4, c.id),
            Row::Audio(_) => (5, 0),
        }
    }

    fn activities(rows: &[Row]) -> Vec<&ActivityRow> {
        rows.iter()
            .filter_map(|r| match r {
                Row::Activity(a) => Some(a),
                _ => None,
            })
            .collect()
    }
    fn chunks(rows: &[Row]) -> Vec<&ChunkRow> {
        rows.iter()
            .filter_map(|r| match r {
                Row::Chunk(c) => Some(c),
                _ => None,
            })
            .collect()
    }
    fn focus(rows: &[Row]) -> Vec<&FocusRow> {
        rows.iter()
            .filter_map(|r| match r {
                Row::Focus(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn window_changes_make_activities_and_focus_sessions() {
        let mut p = pipeline();
        let rows = feed(
            &mut p,
            vec![
                (0, win("Code", "a.rs")),
                (10, win("Code", "b.rs")),
                (20, win("Firefox", "docs")),
                (30, win("Firefox", "docs")),
            ],
        );
        let a = activities(&rows);
        assert_eq!(a.len(), 3, "the repeated window is not a new activity");
        assert_eq!(a[0].end_reason, Some("switch"));
        assert_eq!((a[1].started_ms, a[1].ended_ms), (10, Some(20)));
        assert_eq!(a[2].end_reason, Some("shutdown"));
        let f = focus(&rows);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].activity_count, 2);
        assert_eq!(f[0].end_reason, Some("focus_change"));
        assert_eq!(a[1].focus_session_id, Some(f[0].id));
    }

    #[test]
    fn chunks_carry_their_app_and_activity_end_flushes_them() {
        let mut p = pipeline();
        let rows = feed(
            &mut p,
            vec![
                (0, win("Code", "a.rs")),
                (1, SourceEvent::Keys("fn main".into())),
                (2, win("Slack", "general")),
                (3, SourceEvent::Keys("hi".into())),
                (4, SourceEvent::Key(SpecialKey::Enter)),
            ],
        );
        let c = chunks(&rows);
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].text.as_str(), c[0].context.app.as_str()),
            ("fn main", "Code")
        );
        assert_eq!(c[0].flush_reason, Some("activity_end"));
        assert_eq!(
            (c[1].text.as_str(), c[1].context.app.as_str()),
            ("hi", "Slack")
        );
        assert_eq!(c[1].flush_reason, Some("enter"));
        assert_eq!(c[1].context.activity_id, Some(activities(&rows)[1].id));
    }

    #[test]
    fn denylisted_apps_record_nothing_not_even_a_later_paste() {
        let mut p = pipeline();
        let rows = feed(
            &mut p,
            vec![
                (0, win("KeePassXC", "Passwords.kdbx")),
                (1, SourceEvent::Keys("hunter2".into())),
                (
                    2,
                    SourceEvent::Clipboard {
                        op: ClipboardOp::Copy,
                        text: Some("s3cret".into()),
                        owner_app: None,
                        sensitive: false,
                    },
                ),
                (3, win("Firefox", "login")),
                (
                    4,
                    SourceEvent::Clipboard {
                        op: ClipboardOp::Paste,
                        text: Some("s3cret".into()),
                        owner_app: None,
                        sensitive: false,
                    },
                ),
            ],
        );
        assert!(rows.iter().all(|r| match r {
            Row::Activity(a) => a.app == "Firefox",
            Row::Focus(f) => f.app == "Firefox",
            Row::Chunk(_) | Row::Clipboard(_) | Row::Audio(_) => false,
            Row::Away(_) => true,
        }));
        assert_eq!(activities(&rows).len(), 1);
    }

    #[test]
    fn idle_ends_activity_and_focus_and_return_reopens_them() {
        let mut p = pipeline();
        let rows = feed(
            &mut p,
            vec![
                (0, win("Code", "a.rs")),
                (100, SourceEvent::AwayStart(AwayKind::Idle)),
                (5000, SourceEvent::AwayEnd),
            ],
        );
        let a = activities(&rows);
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].ended_ms, a[0].end_reason), (Some(100), Some("idle")));
        assert_eq!(a[1].started_ms, 5000);
        let f = focus(&rows);
        assert_eq!(f[0].end_reason, Some("idle"));
        let away: Vec<_> = rows
            .iter()
            .filter_map(|r| match r {
                Row::Away(a) => Some(a),
                _ => None,
            })
            .collect();
        assert_eq!(away.len(), 1);
        assert_eq!((away[0].started_ms, away[0].ended_ms), (100, Some(5000)));
    }

    #[test]
    fn a_password_copied_with_a_button_is_never_recorded() {
        let mut p = pipeline();
        let clip = |owner: Option<&str>, sensitive: bool| SourceEvent::Clipboard {
            op: ClipboardOp::Paste,
            text: Some("pw".into()),
            owner_app: owner.map(String::from),
            sensitive,
        };
        let rows = feed(
            &mut p,
            vec![
                (0, win("Firefox", "login")),
                (1, clip(Some("KeePassXC"), false)),
                (2, clip(None, true)),
                (3, clip(Some("Firefox"), false)),
            ],
        );
        let clips: Vec<_> = rows
            .iter()
            .filter(|r| matches!(r, Row::Clipboard(_)))
            .collect();
        assert_eq!(clips.len(), 1, "only the paste owned by a normal app");
    }

    #[test]
    fn idle_is_dated_back_to_the_last_input_not_its_detection() {
        let mut p = pipeline();
        p.handle(TimedEvent {
            at_ms: 1_000,
            event: win("Code", "a"),
        });
        // The engine lets wall time pass...
        p.advance(400_000);
        // ...then the source reports idle since 100 s (its last input).
        p.handle(TimedEvent {
            at_ms: 100_000,
            event: SourceEvent::AwayStart(AwayKind::Idle),
        });
        let rows = p.take_rows();
        p.checkpoint();
        let all: Vec<Row> = rows.into_iter().chain(p.take_rows()).collect();
        let f = focus(&all);
        assert_eq!(f[0].ended_ms, Some(100_000));
        let away = all.iter().find_map(|r| match r {
            Row::Away(a) => Some(a.started_ms),
            _ => None,
        });
        assert_eq!(away, Some(100_000));
    }

    #[test]
    fn heartbeat_rewrites_open_rows() {
        let mut p = pipeline();
        p.handle(TimedEvent {
            at_ms: 0,
            event: win("Code", "a"),
        });
        p.checkpoint();
        assert_eq!(p.take_rows().len(), 2);
        assert!(p.heartbeat());
        p.checkpoint();
        assert_eq!(p.take_rows().len(), 2, "activity and focus session again");
    }

    #[test]
    fn typing_while_away_is_presence() {
        let mut p = pipeline();
        p.handle(TimedEvent {
            at_ms: 0,
            event: win("Code", "a"),
        });
        p.handle(TimedEvent {
            at_ms: 10,
            event: SourceEvent::AwayStart(AwayKind::Idle),
        });
        p.handle(TimedEvent {
            at_ms: 20,
            event: SourceEvent::Keys("x".into()),
        });
        assert_eq!(p.away(), None);
    }

    #[test]
    fn a_disabled_stream_writes_nothing() {
        let mut streams = StreamSet::default();
        streams.set(Stream::Keystrokes, false);
        streams.set(Stream::Window, false);
        let mut p = Pipeline::new(streams, Privacy::default(), 1000, NextIds::default());
        let rows = feed(
            &mut p,
            vec![
                (0, win("Code", "a")),
                (1, SourceEvent::Keys("secret".into())),
                (2, SourceEvent::Key(SpecialKey::Enter)),
            ],
        );
        assert!(chunks(&rows).is_empty());
        assert!(activities(&rows).is_empty());
        assert_eq!(focus(&rows).len(), 1, "focus is still on");
    }

    #[test]
    fn disabling_closes_open_rows_and_enabling_reopens() {
        let mut p = pipeline();
        p.handle(TimedEvent {
            at_ms: 0,
            event: win("Code", "a"),
        });
        p.handle(TimedEvent {
            at_ms: 1,
            event: SourceEvent::Keys("ab".into()),
        });
        p.set_stream(Stream::Keystrokes, false, 5);
        p.set_stream(Stream::Window, false, 6);
        p.set_stream(Stream::Window, true, 7);
        let rows = p.take_rows();
        let c = chunks(&rows);
        assert_eq!(c[0].flush_reason, Some("disabled"));
        p.checkpoint();
        let rows2 = p.take_rows();
        let all: Vec<Row> = rows.into_iter().chain(rows2).collect();
        let a = activities(&all);
        assert!(a.iter().any(|a| a.end_reason == Some("disabled")));
        assert!(a.iter().any(|a| a.started_ms == 7 && a.ended_ms.is_none()));
    }

    #[test]
    fn titles_urls_and_text_are_redacted_before_output() {
        let p = Privacy::new(
            Vec::new(),
            vec![r"(?i)(token=)\S+".to_string(), "Project X".to_string()],
        )
        .unwrap();
        let mut pl = Pipeline::new(StreamSet::default(), p, 1000, NextIds::default());
        let rows = feed(
            &mut pl,
            vec![
                (
                    0,
                    SourceEvent::Window(WindowInfo {
                        app: "Firefox".into(),
                        app_id: "firefox".into(),
                        title: "Project X plan".into(),
                        url: Some("https://a.test/?token=abc".into()),
                    }),
                ),
                (1, SourceEvent::Keys("token=xyz".into())),
            ],
        );
        let a = activities(&rows);
        assert_eq!(a[0].title, "[redacted] plan");
        assert_eq!(
            a[0].url.as_deref(),
            Some("https://a.test/?token=[redacted]")
        );
        assert_eq!(chunks(&rows)[0].text, "token=[redacted]");
        assert_eq!(chunks(&rows)[0].context.title, "[redacted] plan");
    }

    #[test]
    fn a_secret_typed_across_the_cap_is_redacted_in_both_chunks() {
        let card = "4111 1111 1111 1111";
        let privacy = || {
            Privacy::new(
                Vec::new(),
                vec![
                    r"\b\d{4}(?:[ -]?\d{4}){3}\b".to_string(),
                    r"sk-[A-Za-z0-9]{20,}".to_string(),
                ],
            )
            .unwrap()
        };
        let key = format!("sk-{}", "a1B2".repeat(10));
        let cases = [
            (crate::chunker::CHUNK_CAP - 10, card),
            (crate::chunker::CHUNK_CAP - 1, card),
            // Long enough to match before the cut, and running on after it.
            (crate::chunker::CHUNK_CAP - 30, key.as_str()),
        ];
        for (lead, secret) in cases {
            // Keys one by one, each batch checkpointed as a commit would,
            // so the cut is seen both before and after the next key.
            let mut p = Pipeline::new(StreamSet::default(), privacy(), 1000, NextIds::default());
            p.handle(TimedEvent {
                at_ms: 0,
                event: win("Code", "a.rs"),
            });
            let typed = format!("{} {secret} ok", "x".repeat(lead - 1));
            let mut all = Vec::new();
            for (i, ch) in typed.chars().enumerate() {
                p.handle(TimedEvent {
                    at_ms: 1 + i as i64,
                    event: SourceEvent::Keys(ch.to_string()),
                });
                p.checkpoint();
                all.extend(p.take_rows());
            }
            p.shutdown(100_000);
            all.extend(p.take_rows());
            let mut last: Vec<(i64, String)> = Vec::new();
            for r in all {
                if let Row::Chunk(c) = r {
                    last.retain(|(id, _)| *id != c.id);
                    last.push((c.id, c.text));
                }
            }
            last.sort();
            let joined: String = last.iter().map(|(_, t)| t.as_str()).collect();
            // What the database keeps (the last version of each row).
            assert!(
                joined.ends_with(" [redacted] ok"),
                "lead {lead}: {joined:?}"
            );
            assert!(
                last.iter()
                    .all(|(_, t)| !t.contains("1111") && !t.contains("a1B2")),
                "lead {lead}: {last:?}"
            );
            assert_eq!(last.len(), 2, "lead {lead}");
        }
    }

    #[test]
    fn the_activity_buffer_holds_at_most_five_finished_activities() {
        let mut p = pipeline();
        for i in 0..4 {
            p.handle(TimedEvent {
                at_ms: i,
                event: win("A", &format!("t{i}")),
            });
        }
        assert_eq!(
            p.pending(),
            0,
            "three finished activities wait in the buffer"
        );
        for i in 4..7 {
            p.handle(TimedEvent {
                at_ms: i,
                event: win("A", &format!("t{i}")),
            });
        }
        assert_eq!(p.pending(), 5, "the fifth finished one flushed the buffer");
    }

    #[test]
    fn open_rows_are_checkpointed_once_until_they_change() {
        let mut p = pipeline();
        p.handle(TimedEvent {
            at_ms: 0,
            event: win("A", "t"),
        });
        p.handle(TimedEvent {
            at_ms: 1,
            event: SourceEvent::Keys("ab".into()),
        });
        p.checkpoint();
        let first = p.take_rows();
        assert_eq!(
            first.len(),
            3,
            "activity, focus session and chunk, all open"
        );
        assert!(first.iter().all(Row::is_open));
        p.checkpoint();
        assert!(p.take_rows().is_empty());
        p.handle(TimedEvent {
            at_ms: 2,
            event: SourceEvent::Keys("c".into()),
        });
        p.checkpoint();
        assert_eq!(p.take_rows().len(), 1);
    }
}
