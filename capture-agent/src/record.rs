//! The rows capture writes: one type per stream, each self-contained (it
//! carries its own app context), keyed by an id the pipeline assigns so an
//! open row can be written early and completed later.

/// One window & app activity: an (app, title, URL) interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRow {
    /// Row id.
    pub id: i64,
    /// App name.
    pub app: String,
    /// App id / class.
    pub app_id: String,
    /// Window title (redacted).
    pub title: String,
    /// Browser URL (redacted), when known.
    pub url: Option<String>,
    /// Start, Unix ms.
    pub started_ms: i64,
    /// End, Unix ms; None while open.
    pub ended_ms: Option<i64>,
    /// Why it ended: switch, idle, sleep, shutdown, disabled, crash.
    pub end_reason: Option<&'static str>,
    /// The focus session it belongs to (a correlation hint only).
    pub focus_session_id: Option<i64>,
}

/// One focus session: continuous focus on one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FocusRow {
    /// Row id.
    pub id: i64,
    /// App name.
    pub app: String,
    /// App id / class.
    pub app_id: String,
    /// Start, Unix ms.
    pub started_ms: i64,
    /// End, Unix ms; None while open.
    pub ended_ms: Option<i64>,
    /// focus_change, idle, sleep, shutdown, disabled, crash.
    pub end_reason: Option<&'static str>,
    /// Window activities seen during the session.
    pub activity_count: u32,
}

/// One idle/AFK or sleep period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwayRow {
    /// Row id.
    pub id: i64,
    /// "idle" or "sleep".
    pub kind: &'static str,
    /// Start, Unix ms.
    pub started_ms: i64,
    /// End, Unix ms; None while away.
    pub ended_ms: Option<i64>,
}

/// The app context every keystroke chunk and clipboard event carries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppContext {
    /// App name.
    pub app: String,
    /// App id / class.
    pub app_id: String,
    /// Window title (redacted).
    pub title: String,
    /// The activity row open at the time (a correlation hint only).
    pub activity_id: Option<i64>,
}

/// One keystroke chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRow {
    /// Row id.
    pub id: i64,
    /// The typed text (redacted).
    pub text: String,
    /// Keys pressed, including backspaces and the flushing key.
    pub key_count: u32,
    /// Where it was typed.
    pub context: AppContext,
    /// First key, Unix ms.
    pub started_ms: i64,
    /// Last key, Unix ms.
    pub ended_ms: i64,
    /// Why the chunk closed (debounce, enter, tab, escape, cap,
    /// activity_end, shutdown, disabled, crash); None while open.
    pub flush_reason: Option<&'static str>,
}

/// One clipboard event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipboardRow {
    /// Row id.
    pub id: i64,
    /// "copy", "cut" or "paste".
    pub op: &'static str,
    /// The clipboard's text (redacted), when it was readable.
    pub text: Option<String>,
    /// The app the hotkey was pressed in.
    pub context: AppContext,
    /// When, Unix ms.
    pub at_ms: i64,
}

/// A row to insert or, by id, update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    /// Window activity.
    Activity(ActivityRow),
    /// Focus session.
    Focus(FocusRow),
    /// Idle or sleep period.
    Away(AwayRow),
    /// Keystroke chunk.
    Chunk(ChunkRow),
    /// Clipboard event.
    Clipboard(ClipboardRow),
    /// A recorded audio segment (its file is already written).
    Audio(crate::audio::AudioSegmentRow),
}

impl Row {
    /// Is the row still open (to be completed by a later write)?
    pub fn is_open(&self) -> bool {
        match self {
            Row::Activity(r) => r.ended_ms.is_none(),
            Row::Focus(r) => r.ended_ms.is_none(),
            Row::Away(r) => r.ended_ms.is_none(),
            Row::Chunk(r) => r.flush_reason.is_none(),
            Row::Clipboard(_) | Row::Audio(_) => false,
        }
    }
}
