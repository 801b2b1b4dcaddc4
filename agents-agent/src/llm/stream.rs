//! Decoding engines' streamed answers, pure and transport-free: OpenAI-style
//! server-sent events (`data: {...}` … `data: [DONE]`) and Ollama's
//! newline-delimited JSON. Bytes are buffered until a whole line is in, so
//! a network chunk that splits a multi-byte UTF-8 character (or a line)
//! loses nothing — the bug CRATE-NOTES reports for ollama-rs.

/// Longest line accepted from an engine.
pub const MAX_LINE: usize = 1 << 20;

/// One piece of a streamed answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Delta {
    /// Text to append.
    pub text: String,
    /// Set on the last piece: "stop", "length", "tool_calls", ...
    pub finish_reason: Option<String>,
    /// Token counts, when the engine reports them.
    pub usage: Option<(u64, u64)>,
}

/// A stream the engine broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// A line (or one event's data) over [`MAX_LINE`] bytes.
    #[error("engine sent a line over {MAX_LINE} bytes without ending it")]
    LineTooLong,
    /// Not the JSON the API promises.
    #[error("engine sent a malformed chunk: {0}")]
    Malformed(String),
    /// The engine reported an error inside the stream.
    #[error("engine error: {0}")]
    Engine(String),
}

/// Splits bytes into complete lines (without `\n` / `\r\n`).
#[derive(Debug, Default)]
struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<String>) -> Result<(), StreamError> {
        for &b in bytes {
            if b == b'\n' {
                if self.buf.last() == Some(&b'\r') {
                    self.buf.pop();
                }
                let line = String::from_utf8(std::mem::take(&mut self.buf))
                    .map_err(|_| StreamError::Malformed("a line is not UTF-8".into()))?;
                out.push(line);
            } else {
                if self.buf.len() >= MAX_LINE {
                    return Err(StreamError::LineTooLong);
                }
                self.buf.push(b);
            }
        }
        Ok(())
    }
}

/// What a decoder produced from one network chunk.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decoded {
    /// Pieces of the answer, in order.
    pub deltas: Vec<Delta>,
    /// The stream's explicit end was seen (`[DONE]` or `"done": true`).
    pub done: bool,
}

fn engine_error(v: &serde_json::Value) -> Option<String> {
    let e = v.get("error")?;
    Some(
        e.get("message")
            .and_then(|m| m.as_str())
            .or_else(|| e.as_str())
            .unwrap_or("unknown error")
            .to_owned(),
    )
}

/// OpenAI-compatible `stream: true` chat completions (server-sent events).
#[derive(Debug, Default)]
pub struct SseDecoder {
    lines: Lines,
    data: Vec<String>,
    /// Bytes held in `data` (kept, not summed, so a flood of short lines
    /// costs linear time).
    data_len: usize,
}

impl SseDecoder {
    /// Feed one network chunk.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Decoded, StreamError> {
        let mut lines = Vec::new();
        self.lines.feed(bytes, &mut lines)?;
        let mut out = Decoded::default();
        for line in lines {
            if line.is_empty() {
                // End of one event: its data lines joined by \n.
                if self.data.is_empty() {
                    continue;
                }
                self.data_len = 0;
                let data = std::mem::take(&mut self.data).join("\n");
                if data.trim() == "[DONE]" {
                    out.done = true;
                    continue;
                }
                out.deltas.push(parse_openai_chunk(&data)?);
            } else if let Some(rest) = line.strip_prefix("data:") {
                // One event's data lines are joined: bound their sum too,
                // or an engine that never sends the blank line grows it.
                self.data_len += rest.len() + 1;
                if self.data_len > MAX_LINE {
                    return Err(StreamError::LineTooLong);
                }
                self.data
                    .push(rest.strip_prefix(' ').unwrap_or(rest).to_owned());
            }
            // Comments (":"), event:, id:, retry: carry nothing we need.
        }
        Ok(out)
    }
}

/// One OpenAI chat-completion chunk.
pub fn parse_openai_chunk(data: &str) -> Result<Delta, StreamError> {
    let v: serde_json::Value =
        serde_json::from_str(data).map_err(|e| StreamError::Malformed(e.to_string()))?;
    if let Some(e) = engine_error(&v) {
        return Err(StreamError::Engine(e));
    }
    let choice = v.get("choices").and_then(|c| c.get(0));
    let text = choice
        .and_then(|c| c.get("delta"))
        .and_then(|d| d.get("content"))
        .and_then(|t| t.as_str())
        .or_else(|| choice.and_then(|c| c.get("text")).and_then(|t| t.as_str()))
        .unwrap_or_default()
        .to_owned();
    let finish_reason = choice
        .and_then(|c| c.get("finish_reason"))
        .and_then(|f| f.as_str())
        .map(str::to_owned);
    let usage = v.get("usage").and_then(|u| {
        Some((
            u.get("prompt_tokens")?.as_u64()?,
            u.get("completion_tokens")?.as_u64()?,
        ))
    });
    Ok(Delta {
        text,
        finish_reason,
        usage,
    })
}

/// Ollama `/api/chat` streaming (one JSON object per line).
#[derive(Debug, Default)]
pub struct NdjsonDecoder {
    lines: Lines,
}

impl NdjsonDecoder {
    /// Feed one network chunk.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Decoded, StreamError> {
        let mut lines = Vec::new();
        self.lines.feed(bytes, &mut lines)?;
        let mut out = Decoded::default();
        for line in lines.iter().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| StreamError::Malformed(e.to_string()))?;
            if let Some(e) = engine_error(&v) {
                return Err(StreamError::Engine(e));
            }
            let done = v.get("done").and_then(|d| d.as_bool()).unwrap_or(false);
            let text = v
                .get("message")
                .and_then(|m| m.get("content"))
                .or_else(|| v.get("response"))
                .and_then(|t| t.as_str())
                .unwrap_or_default()
                .to_owned();
            let usage = done
                .then(|| {
                    Some((
                        v.get("prompt_eval_count")?.as_u64()?,
                        v.get("eval_count")?.as_u64()?,
                    ))
                })
                .flatten();
            out.deltas.push(Delta {
                text,
                finish_reason: done.then(|| {
                    v.get("done_reason")
                        .and_then(|r| r.as_str())
                        .unwrap_or("stop")
                        .to_owned()
                }),
                usage,
            });
            out.done |= done;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SSE: &str = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n\
        : keep-alive\n\n\
        data: {\"choices\":[{\"delta\":{\"content\":\"Héllo \"}}]}\r\n\r\n\
        data: {\"choices\":[{\"delta\":{\"content\":\"wörld 🌍\"}}]}\n\n\
        data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\n\
        data: [DONE]\n\n";

    fn collect_sse(chunks: &[&[u8]]) -> (String, Option<String>, Option<(u64, u64)>, bool) {
        let mut d = SseDecoder::default();
        let (mut text, mut fin, mut usage, mut done) = (String::new(), None, None, false);
        for c in chunks {
            let out = d.feed(c).unwrap();
            for delta in out.deltas {
                text += &delta.text;
                fin = delta.finish_reason.or(fin);
                usage = delta.usage.or(usage);
            }
            done |= out.done;
        }
        (text, fin, usage, done)
    }

    #[test]
    fn sse_whole_and_split_at_every_byte() {
        let whole = collect_sse(&[SSE.as_bytes()]);
        assert_eq!(
            whole,
            (
                "Héllo wörld 🌍".into(),
                Some("stop".into()),
                Some((7, 3)),
                true
            )
        );
        let bytes = SSE.as_bytes();
        for cut in 1..bytes.len() {
            let split = collect_sse(&[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(split, whole, "split at byte {cut}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(collect_sse(&singles), whole);
    }

    #[test]
    fn ndjson_split_inside_a_multibyte_character() {
        let body = "{\"message\":{\"content\":\"ça \"},\"done\":false}\n\
                    {\"message\":{\"content\":\"日本\"},\"done\":false}\n\
                    {\"message\":{\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":5,\"eval_count\":2}\n";
        let bytes = body.as_bytes();
        let jp = body.find('日').unwrap() + 1; // inside the 3-byte character
        let mut d = NdjsonDecoder::default();
        let mut text = String::new();
        let mut last = Delta::default();
        let mut done = false;
        for part in [&bytes[..jp], &bytes[jp..]] {
            let out = d.feed(part).unwrap();
            for delta in out.deltas {
                text += &delta.text;
                last = delta;
            }
            done |= out.done;
        }
        assert_eq!(text, "ça 日本");
        assert!(done);
        assert_eq!(last.finish_reason.as_deref(), Some("stop"));
        assert_eq!(last.usage, Some((5, 2)));
    }

    #[test]
    fn errors_inside_streams_and_hostile_input() {
        let mut d = SseDecoder::default();
        let e = d
            .feed(b"data: {\"error\":{\"message\":\"model not loaded\"}}\n\n")
            .unwrap_err();
        assert_eq!(e, StreamError::Engine("model not loaded".into()));
        let mut d = NdjsonDecoder::default();
        assert!(matches!(
            d.feed(b"{\"error\":\"out of memory\"}\n"),
            Err(StreamError::Engine(m)) if m == "out of memory"
        ));
        let mut d = NdjsonDecoder::default();
        assert!(matches!(
            d.feed(b"not json\n"),
            Err(StreamError::Malformed(_))
        ));
        let mut d = SseDecoder::default();
        let long = vec![b'a'; MAX_LINE + 1];
        assert_eq!(d.feed(&long).unwrap_err(), StreamError::LineTooLong);
        // Short data lines that never end their event are bounded too.
        let mut d = SseDecoder::default();
        let line = format!("data: {}\n", "b".repeat(1000));
        let err = (0..2000).find_map(|_| d.feed(line.as_bytes()).err());
        assert_eq!(err, Some(StreamError::LineTooLong));
        let mut d = SseDecoder::default();
        assert!(matches!(
            d.feed(b"data: \xff\xfe\n\n"),
            Err(StreamError::Malformed(_))
        ));
    }
}
