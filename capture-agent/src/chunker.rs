//! The keystroke chunker (seed: "Keystroke chunker"): typed characters
//! collect into a chunk that closes after a pause (debounce), on a special
//! key (Enter, Tab, Escape), at the 1000-character cap (which closes only
//! the chunk, never the activity), or when its activity ends.

use crate::record::{AppContext, ChunkRow};

/// Characters in one chunk at most; reaching it closes the chunk only.
pub const CHUNK_CAP: usize = 1000;

/// The chunk being typed.
#[derive(Debug, Clone)]
struct OpenChunk {
    id: i64,
    text: String,
    chars: usize,
    keys: u32,
    context: AppContext,
    started_ms: i64,
    last_ms: i64,
    dirty: bool,
}

impl OpenChunk {
    fn row(&self, flush_reason: Option<&'static str>) -> ChunkRow {
        ChunkRow {
            id: self.id,
            text: self.text.clone(),
            key_count: self.keys,
            context: self.context.clone(),
            started_ms: self.started_ms,
            ended_ms: self.last_ms,
            flush_reason,
        }
    }
}

/// Debounced keystroke chunking. Pure: time comes in with every call.
#[derive(Debug, Clone)]
pub struct Chunker {
    debounce_ms: i64,
    cap: usize,
    next_id: i64,
    open: Option<OpenChunk>,
}

impl Chunker {
    /// A chunker closing chunks after `debounce_ms` without keys; row ids
    /// start at `next_id`.
    pub fn new(debounce_ms: i64, next_id: i64) -> Self {
        Self::with_cap(debounce_ms, CHUNK_CAP, next_id)
    }

    /// Same, with another character cap (for tests).
    pub fn with_cap(debounce_ms: i64, cap: usize, next_id: i64) -> Self {
        Self {
            debounce_ms,
            cap: cap.max(1),
            next_id,
            open: None,
        }
    }

    /// When the open chunk closes by debounce, if nothing else is typed.
    pub fn deadline(&self) -> Option<i64> {
        self.open.as_ref().map(|c| c.last_ms + self.debounce_ms)
    }

    /// Is a chunk open?
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    fn open_chunk(&mut self, at_ms: i64, context: &AppContext) -> &mut OpenChunk {
        if self.open.is_none() {
            let id = self.next_id;
            self.next_id += 1;
            self.open = Some(OpenChunk {
                id,
                text: String::new(),
                chars: 0,
                keys: 0,
                context: context.clone(),
                started_ms: at_ms,
                last_ms: at_ms,
                dirty: true,
            });
        }
        self.open.as_mut().expect("just opened")
    }

    /// Typed characters at `at_ms` in `context`. Closed chunks (debounce
    /// expiry before these keys, or the cap) are appended to `out`.
    pub fn type_text(
        &mut self,
        at_ms: i64,
        text: &str,
        context: &AppContext,
        out: &mut Vec<ChunkRow>,
    ) {
        self.advance(at_ms, out);
        let cap = self.cap;
        for ch in text.chars() {
            let chunk = self.open_chunk(at_ms, context);
            chunk.text.push(ch);
            chunk.chars += 1;
            chunk.keys += 1;
            chunk.last_ms = at_ms;
            chunk.dirty = true;
            if chunk.chars >= cap {
                self.close(Some("cap"), out);
            }
        }
    }

    /// A special key at `at_ms`: Backspace edits the chunk, Enter/Tab/Escape
    /// close it.
    pub fn special_key(
        &mut self,
        at_ms: i64,
        key: crate::event::SpecialKey,
        context: &AppContext,
        out: &mut Vec<ChunkRow>,
    ) {
        self.advance(at_ms, out);
        if key.flushes() {
            if let Some(c) = self.open.as_mut() {
                c.keys += 1;
                c.last_ms = at_ms;
                self.close(Some(key.name()), out);
            }
            return;
        }
        let chunk = self.open_chunk(at_ms, context);
        if chunk.text.pop().is_some() {
            chunk.chars -= 1;
        }
        chunk.keys += 1;
        chunk.last_ms = at_ms;
        chunk.dirty = true;
    }

    /// Close the open chunk if its debounce ran out by `now_ms`.
    pub fn advance(&mut self, now_ms: i64, out: &mut Vec<ChunkRow>) {
        if self.deadline().is_some_and(|d| now_ms >= d) {
            self.close(Some("debounce"), out);
        }
    }

    /// Close the open chunk for `reason` (activity_end, shutdown, ...).
    pub fn flush(&mut self, reason: &'static str, out: &mut Vec<ChunkRow>) {
        self.close(Some(reason), out);
    }

    fn close(&mut self, reason: Option<&'static str>, out: &mut Vec<ChunkRow>) {
        if let Some(c) = self.open.take() {
            out.push(c.row(reason));
        }
    }

    /// The open chunk as an open row, if it changed since the last call.
    pub fn checkpoint(&mut self) -> Option<ChunkRow> {
        let c = self.open.as_mut()?;
        if !c.dirty {
            return None;
        }
        c.dirty = false;
        Some(c.row(None))
    }

    /// The app context of the open chunk.
    pub fn open_context(&self) -> Option<&AppContext> {
        self.open.as_ref().map(|c| &c.context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SpecialKey;

    fn ctx(app: &str) -> AppContext {
        AppContext {
            app: app.into(),
            app_id: app.into(),
            title: "t".into(),
            activity_id: Some(1),
        }
    }

    #[test]
    fn debounce_closes_after_a_pause() {
        let mut c = Chunker::new(1000, 1);
        let mut out = Vec::new();
        c.type_text(0, "hel", &ctx("a"), &mut out);
        c.type_text(500, "lo", &ctx("a"), &mut out);
        assert!(out.is_empty());
        assert_eq!(c.deadline(), Some(1500));
        c.advance(1499, &mut out);
        assert!(out.is_empty());
        c.type_text(2600, "x", &ctx("a"), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, "hello");
        assert_eq!(out[0].flush_reason, Some("debounce"));
        assert_eq!((out[0].started_ms, out[0].ended_ms), (0, 500));
        assert!(c.is_open());
    }

    #[test]
    fn special_keys_flush_and_backspace_edits() {
        let mut c = Chunker::new(1000, 7);
        let mut out = Vec::new();
        c.type_text(0, "helo", &ctx("a"), &mut out);
        c.special_key(10, SpecialKey::Backspace, &ctx("a"), &mut out);
        c.type_text(20, "lo", &ctx("a"), &mut out);
        c.special_key(30, SpecialKey::Enter, &ctx("a"), &mut out);
        c.special_key(40, SpecialKey::Tab, &ctx("a"), &mut out);
        assert_eq!(
            out.len(),
            1,
            "a special key with no open chunk writes nothing"
        );
        assert_eq!(out[0].id, 7);
        assert_eq!(out[0].text, "hello");
        assert_eq!(out[0].key_count, 8);
        assert_eq!(out[0].flush_reason, Some("enter"));
    }

    #[test]
    fn the_cap_closes_only_the_chunk() {
        let mut c = Chunker::new(1000, 1);
        let mut out = Vec::new();
        let text = "a".repeat(2500);
        c.type_text(0, &text, &ctx("a"), &mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|r| r.text.chars().count() == CHUNK_CAP));
        assert!(out.iter().all(|r| r.flush_reason == Some("cap")));
        let open = c.checkpoint().unwrap();
        assert_eq!(open.text.len(), 500);
        assert_eq!(open.flush_reason, None);
        assert_eq!(c.checkpoint(), None, "unchanged since the last checkpoint");
    }

    #[test]
    fn the_cap_counts_characters_not_bytes() {
        let mut c = Chunker::with_cap(1000, 3, 1);
        let mut out = Vec::new();
        c.type_text(0, "éé", &ctx("a"), &mut out);
        assert!(out.is_empty());
        c.type_text(1, "€", &ctx("a"), &mut out);
        assert_eq!(out[0].text, "éé€");
    }
}
