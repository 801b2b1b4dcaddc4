//! What a source reports: timestamped desktop events, and the streams they
//! feed. Plain data, shared by every source and the pipeline.

use std::fmt;
use std::str::FromStr;

/// One capture stream: the unit of consent. Each is switched on and off on
/// its own and writes its own self-contained rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// Window & app activity: one row per (app, title, URL) interval.
    Window,
    /// Focus sessions (continuous focus on one app) and idle/AFK periods.
    Focus,
    /// Keystroke chunks, each carrying its app context.
    Keystrokes,
    /// Clipboard copy/cut/paste events with the source app.
    Clipboard,
    /// Microphone audio, as voice-activity-gated segment files (off until
    /// the person turns it on).
    Audio,
}

impl Stream {
    /// Every stream, in display order.
    pub const ALL: [Stream; 5] = [
        Stream::Window,
        Stream::Focus,
        Stream::Keystrokes,
        Stream::Clipboard,
        Stream::Audio,
    ];

    /// The name used in config, CLI, the API and the database.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Window => "window",
            Stream::Focus => "focus",
            Stream::Keystrokes => "keystrokes",
            Stream::Clipboard => "clipboard",
            Stream::Audio => "audio",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A stream name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown capture stream {0:?} (expected window, focus, keystrokes, clipboard or audio)")]
pub struct UnknownStream(pub String);

impl FromStr for Stream {
    type Err = UnknownStream;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "window" => Ok(Stream::Window),
            "focus" => Ok(Stream::Focus),
            "keystrokes" | "keys" => Ok(Stream::Keystrokes),
            "clipboard" => Ok(Stream::Clipboard),
            "audio" => Ok(Stream::Audio),
            other => Err(UnknownStream(other.to_owned())),
        }
    }
}

/// Which streams are enabled. By default the four desktop streams are
/// (seed "Context stream defaults") and `audio` is not: a microphone is
/// recorded only once the person turns it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSet([bool; 5]);

impl Default for StreamSet {
    fn default() -> Self {
        Self([true, true, true, true, false])
    }
}

impl StreamSet {
    /// No stream enabled.
    pub fn none() -> Self {
        Self([false; 5])
    }
    /// Is `s` enabled?
    pub fn get(&self, s: Stream) -> bool {
        self.0[s.index()]
    }
    /// Enable or disable `s`.
    pub fn set(&mut self, s: Stream, on: bool) {
        self.0[s.index()] = on;
    }
    /// What a source must read to serve these streams (see [`Wants`]).
    pub fn wants(&self) -> Wants {
        // Audio needs no window: it is the recorder's, not the source's.
        let any = self.0[..4].iter().any(|b| *b);
        Wants {
            window: any,
            idle: self.get(Stream::Window) || self.get(Stream::Focus),
            keys: self.get(Stream::Keystrokes),
            clipboard: self.get(Stream::Clipboard),
        }
    }
}

/// What a source is asked to read. A stream that is off is not read at all:
/// no key hook without `keys` or `clipboard`, no clipboard read without
/// `clipboard`. The active window is read while any stream is on, because
/// every stream's rows carry the app context and the app denylist needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Wants {
    /// The active window (app, class, title, URL).
    pub window: bool,
    /// Idle/AFK and sleep detection.
    pub idle: bool,
    /// Typed characters and special keys.
    pub keys: bool,
    /// Copy/cut/paste hotkeys and the clipboard's text. Without `keys`, a
    /// source that detects hotkeys in the key stream keeps only them.
    pub clipboard: bool,
}

impl Wants {
    /// Does the source need a key hook at all?
    pub fn key_hook(&self) -> bool {
        self.keys || self.clipboard
    }
}

/// The active window as a source sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WindowInfo {
    /// Human app name, e.g. "Firefox".
    pub app: String,
    /// Stable app id: X11 `WM_CLASS` class, macOS bundle id.
    pub app_id: String,
    /// Window title.
    pub title: String,
    /// Browser URL, when the source knows it.
    pub url: Option<String>,
}

/// A key that is not a typed character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialKey {
    /// Enter / Return: flushes the open chunk.
    Enter,
    /// Tab: flushes the open chunk.
    Tab,
    /// Escape: flushes the open chunk.
    Escape,
    /// Backspace: removes the chunk's last character.
    Backspace,
}

impl SpecialKey {
    /// Does this key end the open keystroke chunk?
    pub fn flushes(self) -> bool {
        !matches!(self, SpecialKey::Backspace)
    }
    /// Lower-case name, used as a chunk's flush reason.
    pub fn name(self) -> &'static str {
        match self {
            SpecialKey::Enter => "enter",
            SpecialKey::Tab => "tab",
            SpecialKey::Escape => "escape",
            SpecialKey::Backspace => "backspace",
        }
    }
}

impl FromStr for SpecialKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "enter" | "return" => Ok(SpecialKey::Enter),
            "tab" => Ok(SpecialKey::Tab),
            "escape" | "esc" => Ok(SpecialKey::Escape),
            "backspace" => Ok(SpecialKey::Backspace),
            _ => Err(format!(
                "unknown special key {s:?} (expected Enter, Tab, Escape or Backspace)"
            )),
        }
    }
}

/// A clipboard hotkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipboardOp {
    /// Ctrl/Cmd+C.
    Copy,
    /// Ctrl/Cmd+X.
    Cut,
    /// Ctrl/Cmd+V.
    Paste,
}

impl ClipboardOp {
    /// "copy", "cut" or "paste".
    pub fn name(self) -> &'static str {
        match self {
            ClipboardOp::Copy => "copy",
            ClipboardOp::Cut => "cut",
            ClipboardOp::Paste => "paste",
        }
    }
}

impl FromStr for ClipboardOp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "copy" => Ok(ClipboardOp::Copy),
            "cut" => Ok(ClipboardOp::Cut),
            "paste" => Ok(ClipboardOp::Paste),
            _ => Err(format!(
                "unknown clipboard op {s:?} (expected copy, cut or paste)"
            )),
        }
    }
}

/// Why the person is away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwayKind {
    /// No input for the idle threshold.
    Idle,
    /// The machine slept.
    Sleep,
}

impl AwayKind {
    /// "idle" or "sleep".
    pub fn name(self) -> &'static str {
        match self {
            AwayKind::Idle => "idle",
            AwayKind::Sleep => "sleep",
        }
    }
}

/// One thing that happened on the desktop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceEvent {
    /// The active window changed, or its title or URL did.
    Window(WindowInfo),
    /// No window has focus.
    NoWindow,
    /// Typed characters.
    Keys(String),
    /// A special key.
    Key(SpecialKey),
    /// A clipboard hotkey, with the clipboard's text when it could be read.
    Clipboard {
        /// Copy, cut or paste.
        op: ClipboardOp,
        /// The clipboard's text (None when unreadable or not text).
        text: Option<String>,
        /// The app that owns the clipboard's content, when the source knows
        /// (a password manager copies with a button, not a hotkey).
        owner_app: Option<String>,
        /// The owner marked the content as a secret (e.g. KDE's
        /// `x-kde-passwordManagerHint`): never recorded.
        sensitive: bool,
    },
    /// The person went away (idle or sleep) at the event's time.
    AwayStart(AwayKind),
    /// The person is back.
    AwayEnd,
}

impl SourceEvent {
    /// The stream this event feeds (window events feed context for all).
    pub fn stream(&self) -> Stream {
        match self {
            SourceEvent::Window(_) | SourceEvent::NoWindow => Stream::Window,
            SourceEvent::Keys(_) | SourceEvent::Key(_) => Stream::Keystrokes,
            SourceEvent::Clipboard { .. } => Stream::Clipboard,
            SourceEvent::AwayStart(_) | SourceEvent::AwayEnd => Stream::Focus,
        }
    }
}

/// An event with its time, in Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedEvent {
    /// When it happened.
    pub at_ms: i64,
    /// What happened.
    pub event: SourceEvent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_round_trip() {
        for s in Stream::ALL {
            assert_eq!(s.name().parse::<Stream>(), Ok(s));
        }
        assert!("screen".parse::<Stream>().is_err());
    }

    #[test]
    fn wants_follow_consent() {
        let mut s = StreamSet::default();
        assert_eq!(
            s.wants(),
            Wants {
                window: true,
                idle: true,
                keys: true,
                clipboard: true
            }
        );
        s.set(Stream::Keystrokes, false);
        assert!(!s.wants().keys);
        assert!(
            s.wants().key_hook(),
            "clipboard hotkeys still need the hook"
        );
        s.set(Stream::Clipboard, false);
        assert!(!s.wants().key_hook());
        s.set(Stream::Window, false);
        s.set(Stream::Focus, false);
        assert_eq!(s.wants(), Wants::default());
    }
}
