//! Streaming chat against an engine: OpenAI-compatible
//! (`/chat/completions`, server-sent events) or Ollama (`/api/chat`,
//! NDJSON). A dead engine ends the stream with an error at once; a caller
//! that goes away (its receiver dropped) drops the connection, which
//! cancels the engine's work.

use crate::engines::ApiFamily;
use crate::stream::{Delta, NdjsonDecoder, SseDecoder};
use http_body_util::BodyExt;
use std::time::Duration;
use tokio::sync::mpsc;

/// The longest silence tolerated from an engine mid-answer.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// One message of the conversation sent to the model.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChatMessage {
    /// system, user or assistant.
    pub role: String,
    /// Text.
    pub content: String,
}

enum Decoder {
    Sse(SseDecoder),
    Nd(NdjsonDecoder),
}

/// Stream an answer from the engine at `base_url` into `tx`. Returns when
/// the answer is complete (Ok), the receiver is gone (Ok), or the engine
/// failed (Err with a reason a person can read).
pub async fn stream_chat(
    base_url: &str,
    api: ApiFamily,
    model: &str,
    messages: &[ChatMessage],
    max_tokens: Option<u32>,
    tx: &mpsc::Sender<Delta>,
) -> Result<(), String> {
    let base = base_url.trim_end_matches('/');
    let (url, mut body) = match api {
        ApiFamily::OpenAi => (
            format!("{base}/chat/completions"),
            serde_json::json!({"model": model, "messages": messages, "stream": true,
                "stream_options": {"include_usage": true}}),
        ),
        ApiFamily::Ollama => (
            format!("{base}/api/chat"),
            serde_json::json!({"model": model, "messages": messages, "stream": true}),
        ),
    };
    if let Some(n) = max_tokens {
        match api {
            ApiFamily::OpenAi => body["max_tokens"] = n.into(),
            ApiFamily::Ollama => body["options"] = serde_json::json!({"num_predict": n}),
        }
    }
    let (mut send, uri) = crate::probe::connect_local(&url).await?;
    let req = http::Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(
            http::header::HOST,
            uri.authority().map_or("localhost", |a| a.as_str()),
        )
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(
            http::header::ACCEPT,
            "text/event-stream, application/x-ndjson",
        )
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .map_err(|e| e.to_string())?;
    let mut resp = send
        .send_request(req)
        .await
        .map_err(|e| format!("engine at {base} failed: {e}"))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let text = http_body_util::Limited::new(resp.into_body(), 64 * 1024)
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        return Err(format!("engine answered {status}: {}", text.trim()));
    }
    let mut decoder = match api {
        ApiFamily::OpenAi => Decoder::Sse(SseDecoder::default()),
        ApiFamily::Ollama => Decoder::Nd(NdjsonDecoder::default()),
    };
    let mut finished = false;
    loop {
        let frame = match tokio::time::timeout(STALL_TIMEOUT, resp.body_mut().frame()).await {
            Err(_) => return Err(format!("engine sent nothing for {STALL_TIMEOUT:?}")),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(format!("lost the engine mid-answer: {e}")),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let out = match &mut decoder {
            Decoder::Sse(d) => d.feed(&data),
            Decoder::Nd(d) => d.feed(&data),
        }
        .map_err(|e| e.to_string())?;
        for delta in out.deltas {
            finished |= delta.finish_reason.is_some();
            if tx.send(delta).await.is_err() {
                // The caller went away: dropping the response closes the
                // connection, which cancels the request at the engine.
                return Ok(());
            }
        }
        if out.done {
            finished = true;
            break;
        }
    }
    if finished {
        Ok(())
    } else {
        Err("the engine closed the stream before finishing the answer".into())
    }
}
