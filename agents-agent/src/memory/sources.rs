//! What each source row becomes as memory indexes it, and the lines of
//! an import file. Pure.

use super::chunk::{chunks, CHUNK_CHARS, OVERLAP_CHARS};
use super::item::{Kind, Source, Stream};
use super::query::parse_rfc3339;
use crate::chat::store::{ImportedMessage, IndexedMessage};
use crate::context::store::CaptureRow;

/// A capture row of `stream` as a source; None while it is open (the
/// current activity, a chunk being typed) or has no text.
pub fn from_capture(stream: Stream, row: &CaptureRow) -> Option<Source> {
    if !row.closed {
        return None;
    }
    let text = match stream {
        Stream::Window => {
            let mut t = format!("{} — {}", row.app, row.title);
            if let Some(u) = row.url.as_deref().filter(|u| !u.is_empty()) {
                t += "\n";
                t += u;
            }
            t
        }
        _ => row.text.clone(),
    };
    let text = text.trim().to_owned();
    (!text.is_empty()).then(|| Source {
        stream,
        source_id: stream.capture_source_id(row.id),
        row: Some(row.id),
        text,
        time_ms: row.time_ms,
        app: row.app.clone(),
        collection: String::new(),
        thread: String::new(),
        seq: 0,
    })
}

/// A transcript of recorded speech as a source ("Heard: …"), keyed by its
/// capture segment; None when nothing was said.
pub fn from_transcript(t: &crate::audio::store::Transcript) -> Option<Source> {
    let text = t.text.trim();
    (!text.is_empty()).then(|| Source {
        stream: Stream::Audio,
        source_id: Stream::Audio.capture_source_id(t.segment_id),
        row: Some(t.segment_id),
        text: format!("Heard (microphone): {text}"),
        time_ms: t.started_ms,
        app: String::new(),
        collection: String::new(),
        thread: String::new(),
        seq: 0,
    })
}

/// The most of the previous message a message is indexed with.
pub const CONTEXT_CHARS: usize = 400;

/// Where a message stands in its thread: its position, and the message
/// before it (speaker, text), if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Position in the thread (0 first).
    pub seq: i64,
    /// The message before it.
    pub prev: Option<(String, String)>,
}

/// A chat message (the person's own, or an imported conversation's) as
/// a source: who spoke and what was said, after the message it answers
/// (a reply such as "yes, last Tuesday" means little alone).
pub fn from_message(m: &IndexedMessage, ctx: &Context) -> Option<Source> {
    let text = m.message.content.trim();
    // A refusal is shown, never remembered.
    if text.is_empty() || m.message.finish_reason == crate::chat::store::REFUSAL {
        return None;
    }
    let imported = m.message.finish_reason == crate::chat::store::IMPORTED;
    // An imported message answers to its file's `_id`.
    let prefix = crate::chat::store::imported_message_id(&m.collection, "");
    let source_id = match m.message.id.strip_prefix(&prefix) {
        Some(id) if imported => id,
        _ => m.message.id.as_str(),
    };
    Some(Source {
        stream: if imported {
            Stream::Import
        } else {
            Stream::Chat
        },
        source_id: source_id.to_owned(),
        row: None,
        text: message_text(&m.speaker, text, ctx),
        time_ms: m.message.created_ms,
        app: String::new(),
        collection: m.collection.clone(),
        thread: m.message.thread_id.clone(),
        seq: ctx.seq,
    })
}

/// An imported conversation line as the source it becomes, the same one
/// [`from_message`] makes of the message it is stored as (so indexing it
/// again changes nothing).
pub fn imported_message(m: &ImportedMessage, collection: &str, ctx: &Context) -> Source {
    Source {
        stream: Stream::Import,
        source_id: m.id.clone(),
        row: None,
        text: message_text(&m.speaker, m.text.trim(), ctx),
        time_ms: m.time_ms,
        app: String::new(),
        collection: collection.to_owned(),
        thread: crate::chat::store::imported_thread_id(collection, &m.thread),
        seq: ctx.seq,
    }
}

/// "Ann: where did you go?\nBob: to the lake": the message after (the
/// start of) the one before it.
fn message_text(speaker: &str, text: &str, ctx: &Context) -> String {
    let mut out = String::new();
    if let Some((who, said)) = &ctx.prev {
        let said = said.trim();
        let cut = super::chunk::truncate(said, CONTEXT_CHARS);
        let more = if cut.len() < said.len() { "…" } else { "" };
        out = format!("{who}: {cut}{more}\n");
    }
    out + &format!("{speaker}: {text}")
}

/// A source's text as the chunks indexed: a long text in ~1000-character
/// chunks with a small overlap; a document's title leads every chunk.
pub fn chunks_of(text: &str, title: &str) -> Vec<String> {
    let title = title.trim();
    let room = CHUNK_CHARS
        .saturating_sub(title.chars().count() + 1)
        .max(CHUNK_CHARS / 2);
    let body = chunks(text, room, OVERLAP_CHARS);
    if title.is_empty() {
        return body;
    }
    if body.is_empty() {
        return vec![title.to_owned()];
    }
    body.into_iter().map(|c| format!("{title}\n{c}")).collect()
}

/// One line of an import file, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A BEIR-style document `{"_id", "title", "text"}`.
    Document {
        /// `_id`.
        id: String,
        /// `title` ("" when absent).
        title: String,
        /// `text`.
        text: String,
    },
    /// A conversation turn `{"_id", "thread", "speaker", "text", "time"}`.
    Conversation(ImportedMessage),
}

fn field<'a>(v: &'a serde_json::Value, name: &str) -> Result<&'a str, String> {
    v.get(name)
        .and_then(|f| f.as_str())
        .ok_or_else(|| format!("{name:?} is missing or not a string"))
}

/// The longest `_id` accepted.
pub const MAX_ID: usize = 256;

/// Parse one line of an import of `kind` (document or conversation).
pub fn parse_line(kind: Kind, line: &str) -> Result<Line, String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    if !v.is_object() {
        return Err("not a JSON object".into());
    }
    // Ids may be numbers in some exports.
    let id = match v.get("_id") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => return Err("\"_id\" is missing".into()),
    };
    if id.trim().is_empty() || id.len() > MAX_ID || id.chars().any(char::is_control) {
        return Err(format!(
            "\"_id\" must be 1 to {MAX_ID} bytes with no control characters"
        ));
    }
    match kind {
        Kind::Document => Ok(Line::Document {
            id,
            title: v.get("title").and_then(|t| t.as_str()).unwrap_or("").into(),
            text: field(&v, "text")?.into(),
        }),
        Kind::Conversation => {
            let time = field(&v, "time")?;
            let time_ms = parse_rfc3339(time)
                .ok_or_else(|| format!("\"time\" {time:?} is not an RFC 3339 time"))?;
            let text = field(&v, "text")?;
            if text.trim().is_empty() {
                return Err("\"text\" is empty".into());
            }
            Ok(Line::Conversation(ImportedMessage {
                id,
                thread: field(&v, "thread")?.into(),
                speaker: field(&v, "speaker")?.into(),
                text: text.into(),
                time_ms,
            }))
        }
        other => Err(format!(
            "cannot import {other}: the type is document or conversation"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(closed: bool, text: &str) -> CaptureRow {
        CaptureRow {
            id: 7,
            text: text.into(),
            app: "Firefox".into(),
            title: "Docs".into(),
            url: Some("https://docs.rs/tokio".into()),
            time_ms: 5,
            closed,
            mark_ms: 6,
        }
    }

    #[test]
    fn open_rows_wait_and_closed_ones_carry_their_ids() {
        assert_eq!(from_capture(Stream::Window, &row(false, "")), None);
        let s = from_capture(Stream::Window, &row(true, "")).unwrap();
        assert_eq!(s.source_id, "activity:7");
        assert_eq!(s.text, "Firefox — Docs\nhttps://docs.rs/tokio");
        let k = from_capture(Stream::Keystrokes, &row(true, "cargo test")).unwrap();
        assert_eq!(
            (k.source_id.as_str(), k.text.as_str()),
            ("keystrokes:7", "cargo test")
        );
        assert_eq!(from_capture(Stream::Clipboard, &row(true, "  ")), None);
    }

    #[test]
    fn import_lines_are_checked_and_documents_chunked_under_their_title() {
        let d = parse_line(
            Kind::Document,
            r#"{"_id": 42, "title": "T", "text": "body"}"#,
        )
        .unwrap();
        assert_eq!(
            d,
            Line::Document {
                id: "42".into(),
                title: "T".into(),
                text: "body".into()
            }
        );
        let c = parse_line(
            Kind::Conversation,
            r#"{"_id":"s1:D1:3","thread":"s1","speaker":"Ann","text":"hi","time":"2023-05-08T13:56:00Z"}"#,
        )
        .unwrap();
        let Line::Conversation(m) = c else { panic!() };
        assert_eq!(m.time_ms, 1_683_554_160_000);
        for (kind, bad, why) in [
            (Kind::Document, "[1]", "JSON object"),
            (Kind::Document, r#"{"title":"x","text":"y"}"#, "_id"),
            (Kind::Document, r#"{"_id":"a"}"#, "text"),
            (
                Kind::Conversation,
                r#"{"_id":"a","thread":"t","speaker":"s","text":"x","time":"May 8"}"#,
                "RFC 3339",
            ),
            (
                Kind::Activity,
                r#"{"_id":"a","text":"x"}"#,
                "document or conversation",
            ),
        ] {
            let e = parse_line(kind, bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let long = "word ".repeat(500);
        let parts = chunks_of(&long, "A title");
        assert!(parts.len() >= 3, "{}", parts.len());
        assert!(parts
            .iter()
            .all(|p| p.starts_with("A title\n") && p.chars().count() <= 1000));
        assert_eq!(
            chunks_of("", "Only a title"),
            vec!["Only a title".to_owned()]
        );
    }
}
