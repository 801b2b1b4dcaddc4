//! What memory indexes: items, their types and where they came from. Pure.

use std::fmt;
use std::str::FromStr;

/// An index type: each has its own vector index `embed_<type>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Capture's activities, keystroke chunks and clipboard events.
    Activity,
    /// Chat messages, and imported past conversations.
    Conversation,
    /// Observational memory (written by the next part of memory).
    Observation,
    /// Imported documents, chunked.
    Document,
}

impl Kind {
    /// Every type, in display order.
    pub const ALL: [Kind; 4] = [
        Kind::Activity,
        Kind::Conversation,
        Kind::Observation,
        Kind::Document,
    ];

    /// Its name, as the CLI, the proto and the tables spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Activity => "activity",
            Kind::Conversation => "conversation",
            Kind::Observation => "observation",
            Kind::Document => "document",
        }
    }

    /// The sqlite-vec table of generation `generation` of this type's
    /// vectors: `embed_<type>` for the first, `embed_<type>_<n>` after an
    /// embedder change.
    pub fn vector_table(self, generation: u32) -> String {
        if generation <= 1 {
            format!("embed_{}", self.as_str())
        } else {
            format!("embed_{}_{generation}", self.as_str())
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("unknown type {s:?}: activity, conversation, observation or document")
            })
    }
}

/// Where an item's row came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// capture_activities (app, title, URL).
    Window,
    /// capture_keystroke_chunks.
    Keystrokes,
    /// capture_clipboard_events.
    Clipboard,
    /// agents_messages (chat, and imported conversations).
    Chat,
    /// An imported document.
    Import,
    /// An observation.
    Observation,
    /// audio_transcripts (speech the microphone heard, transcribed here).
    Audio,
}

impl Stream {
    /// Its name in the tables and in hits.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Window => "window",
            Stream::Keystrokes => "keystrokes",
            Stream::Clipboard => "clipboard",
            Stream::Chat => "chat",
            Stream::Import => "import",
            Stream::Observation => "observation",
            Stream::Audio => "audio",
        }
    }

    /// Every stream.
    pub const ALL: [Stream; 7] = [
        Stream::Window,
        Stream::Keystrokes,
        Stream::Clipboard,
        Stream::Chat,
        Stream::Import,
        Stream::Observation,
        Stream::Audio,
    ];

    /// The capture streams, whose rows memory reads from capture's tables
    /// (and whose consent it follows).
    pub const CAPTURE: [Stream; 3] = [Stream::Window, Stream::Keystrokes, Stream::Clipboard];

    /// The streams whose items come from a capture row (`row`), removed
    /// when capture's retention deletes it.
    pub const FROM_CAPTURE_ROWS: [Stream; 4] = [
        Stream::Window,
        Stream::Keystrokes,
        Stream::Clipboard,
        Stream::Audio,
    ];

    /// Text the person typed, copied or said: never sent to a cloud
    /// embedder, a cloud chat model's prompt, or the Observer (audio never
    /// leaves the device, nor does its transcript).
    pub fn is_private_text(self) -> bool {
        matches!(self, Stream::Keystrokes | Stream::Clipboard | Stream::Audio)
    }

    /// The source id of capture row `row` of this stream
    /// (`activity:12`, `keystrokes:4`, `clipboard:9`).
    pub fn capture_source_id(self, row: i64) -> String {
        match self {
            Stream::Window => format!("activity:{row}"),
            other => format!("{}:{row}", other.as_str()),
        }
    }
}

impl FromStr for Stream {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Stream::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown stream {s:?}"))
    }
}

/// One source row, as memory indexes it (before chunking).
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// Its stream.
    pub stream: Stream,
    /// Its id in hits (see [`Stream::capture_source_id`]).
    pub source_id: String,
    /// A capture row's id (for noticing when retention deletes it).
    pub row: Option<i64>,
    /// The text indexed.
    pub text: String,
    /// When (Unix ms).
    pub time_ms: i64,
    /// The app ("" when none).
    pub app: String,
    /// The import's collection ("" otherwise).
    pub collection: String,
    /// A message's thread ("" for other sources).
    pub thread: String,
    /// A message's position in its thread.
    pub seq: i64,
}

/// One chunk of a source: the unit that is keyword-indexed and embedded.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Its row id (the FTS5 rowid and the vector tables' rowid).
    pub id: i64,
    /// Its source's type.
    pub kind: Kind,
    /// Its source's stream.
    pub stream: Stream,
    /// Its source id.
    pub source_id: String,
    /// Chunk number within the source.
    pub chunk: u32,
    /// Text.
    pub text: String,
    /// When (Unix ms).
    pub time_ms: i64,
    /// App.
    pub app: String,
    /// Collection.
    pub collection: String,
    /// A message's thread ("" for other sources).
    pub thread: String,
    /// A message's position in its thread.
    pub seq: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_tables_are_per_type_and_generation() {
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>().unwrap(), k);
        }
        assert!("memories".parse::<Kind>().is_err());
        for st in Stream::ALL {
            assert_eq!(st.as_str().parse::<Stream>().unwrap(), st);
        }
        assert_eq!(Kind::Activity.vector_table(1), "embed_activity");
        assert_eq!(Kind::Document.vector_table(3), "embed_document_3");
        assert_eq!(Stream::Window.capture_source_id(12), "activity:12");
        assert_eq!(Stream::Clipboard.capture_source_id(9), "clipboard:9");
        assert!(Stream::Keystrokes.is_private_text() && !Stream::Window.is_private_text());
        assert!(Stream::Audio.is_private_text());
        assert_eq!(Stream::Audio.capture_source_id(4), "audio:4");
    }
}
