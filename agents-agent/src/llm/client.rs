//! Streaming chat: one OpenAI-compatible client (`/chat/completions`,
//! server-sent events) for local engines and cloud providers alike, and
//! Ollama's `/api/chat` (NDJSON). A dead engine ends the stream with an error at once; a caller
//! that goes away (its receiver dropped) drops the connection, which
//! cancels the engine's work.

use super::engines::ApiFamily;
use super::stream::{Delta, NdjsonDecoder, SseDecoder};
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

/// Where an answer is asked for: a local engine, or a cloud provider over
/// TLS with its key.
#[derive(Debug, Clone)]
pub struct ChatTarget {
    /// Who answers: the engine instance's key or the cloud provider's id.
    pub name: String,
    /// API base (`http://127.0.0.1:8080/v1`, `https://openrouter.ai/api/v1`).
    pub base_url: String,
    /// Wire format.
    pub api: ApiFamily,
    /// The engine's or provider's own model name.
    pub model: String,
    /// How to reach it.
    pub transport: Transport,
}

impl ChatTarget {
    /// How long this request waited for its session's server to start
    /// (it had been unloaded for idleness, or crashed); None otherwise.
    pub fn reloaded(&self) -> Option<std::time::Duration> {
        match &self.transport {
            Transport::Local { session: Some(l) } => l.reloaded,
            _ => None,
        }
    }
}

/// How a [`ChatTarget`] is reached.
#[derive(Clone)]
pub enum Transport {
    /// A local or LAN engine over plain HTTP/1.1, the resolved address
    /// checked against the SSRF rule. A session we run ourselves comes
    /// with its lease: its key is sent as `Authorization: Bearer`, and it
    /// is not unloaded for idleness while the request holds it.
    Local {
        /// The managed session's lease (None: an engine someone else runs).
        session: Option<std::sync::Arc<super::managed::sessions::Lease>>,
    },
    /// A cloud provider: `Authorization: Bearer <key>` through a shared
    /// TLS client (redirects off, so the key goes nowhere else).
    Cloud {
        /// The shared client.
        client: reqwest::Client,
        /// The API key.
        api_key: String,
    },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Local { session: None } => "Local",
            Transport::Local { session: Some(_) } => "Local { session: <lease> }",
            Transport::Cloud { .. } => "Cloud { api_key: <hidden> }",
        })
    }
}

/// The TLS client cloud calls share.
pub fn cloud_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("cowork/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the TLS client: {e}"))
}

/// A response body of either transport, read chunk by chunk.
pub enum ReplyBody {
    /// The body and the connection it arrives on (closed when dropped).
    Local(
        hyper::body::Incoming,
        #[allow(dead_code)] super::probe::Connection,
    ),
    /// A cloud provider's body.
    Cloud(reqwest::Response),
}

impl ReplyBody {
    /// The next chunk, `None` at the end.
    pub async fn next(&mut self) -> Option<Result<bytes::Bytes, String>> {
        match self {
            ReplyBody::Local(b, _) => loop {
                match b.frame().await? {
                    Err(e) => return Some(Err(e.to_string())),
                    Ok(f) => {
                        if let Ok(d) = f.into_data() {
                            return Some(Ok(d));
                        }
                    }
                }
            },
            ReplyBody::Cloud(r) => r.chunk().await.map_err(|e| e.to_string()).transpose(),
        }
    }

    /// The first 64 KiB of an error body, as text.
    async fn error_text(mut self) -> String {
        let mut text = Vec::new();
        while text.len() < 64 * 1024 {
            match self.next().await {
                Some(Ok(b)) => text.extend_from_slice(&b),
                _ => break,
            }
        }
        text.truncate(64 * 1024);
        String::from_utf8_lossy(&text).trim().to_owned()
    }
}

/// An engine's or provider's answer to one POST, before its body is read.
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// `Content-Type`, when sent.
    pub content_type: Option<String>,
    /// `Location`, when sent (a redirect, which is never followed).
    pub location: Option<String>,
    /// The body.
    pub body: ReplyBody,
}

impl Reply {
    fn header(h: &http::HeaderMap, name: http::header::HeaderName) -> Option<String> {
        h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    fn new(status: u16, headers: &http::HeaderMap, body: ReplyBody) -> Self {
        Self {
            status,
            content_type: Self::header(headers, http::header::CONTENT_TYPE),
            location: Self::header(headers, http::header::LOCATION),
            body,
        }
    }
}

/// How long connecting to an engine may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The request body for one streamed answer.
pub fn request_body(
    api: ApiFamily,
    model: &str,
    messages: &[ChatMessage],
    max_tokens: Option<u32>,
) -> serde_json::Value {
    let mut body = match api {
        ApiFamily::OpenAi => serde_json::json!({"model": model, "messages": messages,
            "stream": true, "stream_options": {"include_usage": true}}),
        ApiFamily::Ollama => {
            serde_json::json!({"model": model, "messages": messages, "stream": true})
        }
    };
    if let Some(n) = max_tokens {
        match api {
            ApiFamily::OpenAi => body["max_tokens"] = n.into(),
            ApiFamily::Ollama => body["options"] = serde_json::json!({"num_predict": n}),
        }
    }
    body
}

/// POST `body` (JSON) to `url` of `target`. A local engine is reached at
/// the address its name resolved to and was checked against the SSRF rule
/// (never resolved again); a cloud provider through its TLS client.
/// Redirects are never followed: the caller sees the 3xx and its `Location`.
pub async fn post(target: &ChatTarget, url: &str, body: String) -> Result<Reply, String> {
    let base = &target.base_url;
    match &target.transport {
        Transport::Local { session } => {
            let (mut send, uri, conn) =
                tokio::time::timeout(CONNECT_TIMEOUT, super::probe::connect_local(url))
                    .await
                    .map_err(|_| {
                        format!("engine at {base} did not accept within {CONNECT_TIMEOUT:?}")
                    })??;
            let req = http::Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
                .header(
                    http::header::HOST,
                    uri.authority().map_or("localhost", |a| a.as_str()),
                )
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(
                    http::header::ACCEPT,
                    "text/event-stream, application/x-ndjson, application/json",
                );
            let req = match session {
                Some(l) => req.header(http::header::AUTHORIZATION, format!("Bearer {}", l.api_key)),
                None => req,
            };
            let req = req
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .map_err(|e| e.to_string())?;
            let resp = send
                .send_request(req)
                .await
                .map_err(|e| format!("engine at {base} failed: {e}"))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            Ok(Reply::new(
                status,
                &headers,
                ReplyBody::Local(resp.into_body(), conn),
            ))
        }
        Transport::Cloud { client, api_key } => {
            let resp = client
                .post(url)
                .bearer_auth(api_key)
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(http::header::ACCEPT, "text/event-stream")
                .header("X-Title", "Cowork")
                .body(body)
                .send()
                .await
                .map_err(|e| format!("the provider at {base} failed: {}", error_chain(&e)))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            Ok(Reply::new(status, &headers, ReplyBody::Cloud(resp)))
        }
    }
}

/// An error with its sources, one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Stream an answer from `target` into `tx`. Returns when the answer is
/// complete (Ok), the receiver is gone (Ok), or the engine or provider
/// failed (Err with a reason a person can read).
pub async fn stream_chat(
    target: &ChatTarget,
    messages: &[ChatMessage],
    max_tokens: Option<u32>,
    tx: &mpsc::Sender<Delta>,
) -> Result<(), String> {
    let base = target.base_url.trim_end_matches('/');
    let url = match target.api {
        ApiFamily::OpenAi => format!("{base}/chat/completions"),
        ApiFamily::Ollama => format!("{base}/api/chat"),
    };
    let body = request_body(target.api, &target.model, messages, max_tokens).to_string();
    let who = match target.transport {
        Transport::Local { .. } => "engine",
        Transport::Cloud { .. } => "provider",
    };
    let Reply {
        status, mut body, ..
    } = post(target, &url, body).await?;
    if !(200..300).contains(&status) {
        let text = body.error_text().await;
        return Err(format!(
            "the {who} at {base} answered HTTP {status}: {text}"
        ));
    }
    let mut decoder = match target.api {
        ApiFamily::OpenAi => Decoder::Sse(SseDecoder::default()),
        ApiFamily::Ollama => Decoder::Nd(NdjsonDecoder::default()),
    };
    let mut finished = false;
    loop {
        let data = match tokio::time::timeout(STALL_TIMEOUT, body.next()).await {
            Err(_) => {
                return Err(format!(
                    "the {who} at {base} sent nothing for {STALL_TIMEOUT:?}"
                ))
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(format!("lost the {who} at {base} mid-answer: {e}")),
            Ok(Some(Ok(d))) => d,
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
                // connection, which cancels the request upstream.
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
        Err(format!(
            "the {who} at {base} closed the stream before finishing the answer"
        ))
    }
}

/// A whole (not streamed) reply, with any tool calls.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Completion {
    /// Its text.
    pub content: String,
    /// (call id, function name, arguments JSON text).
    pub tool_calls: Vec<(String, String, String)>,
    /// (prompt, completion) tokens, when the engine counted them.
    pub usage: Option<(u64, u64)>,
}

/// Largest reply body read.
pub const MAX_COMPLETION_BODY: usize = 4 << 20;

/// Parse a non-streamed reply of either family.
pub fn parse_completion(api: ApiFamily, body: &str) -> Result<Completion, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("the reply is not JSON: {e}"))?;
    let msg = match api {
        ApiFamily::OpenAi => &v["choices"][0]["message"],
        ApiFamily::Ollama => &v["message"],
    };
    if !msg.is_object() {
        return Err(format!("the reply has no message: {}", truncate(body, 300)));
    }
    let mut tool_calls = Vec::new();
    for (i, c) in msg["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let f = &c["function"];
        let name = f["name"].as_str().unwrap_or_default().to_owned();
        // OpenAI sends arguments as JSON text, Ollama as an object.
        let args = match &f["arguments"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "{}".into(),
            other => other.to_string(),
        };
        let id = c["id"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("call_{i}"));
        tool_calls.push((id, name, args));
    }
    let usage = match api {
        ApiFamily::OpenAi => v["usage"]["prompt_tokens"]
            .as_u64()
            .zip(v["usage"]["completion_tokens"].as_u64()),
        ApiFamily::Ollama => v["prompt_eval_count"]
            .as_u64()
            .zip(v["eval_count"].as_u64()),
    };
    Ok(Completion {
        content: msg["content"].as_str().unwrap_or_default().to_owned(),
        tool_calls,
        usage,
    })
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Ollama wants tool-call arguments as objects, not JSON text.
pub fn ollama_messages(messages: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let mut out = messages.to_vec();
    for m in &mut out {
        for c in m["tool_calls"].as_array_mut().into_iter().flatten() {
            if let Some(text) = c["function"]["arguments"].as_str() {
                let parsed = serde_json::from_str::<serde_json::Value>(text)
                    .unwrap_or_else(|_| serde_json::json!({}));
                c["function"]["arguments"] = parsed;
            }
        }
    }
    out
}

/// Ask `target` for one whole reply to `messages` (OpenAI chat format),
/// offering `tools` (OpenAI function specs), optionally forcing one.
pub async fn complete(
    target: &ChatTarget,
    messages: &[serde_json::Value],
    tools: &[serde_json::Value],
    tool_choice: Option<&str>,
    max_tokens: Option<u32>,
) -> Result<Completion, String> {
    let base = target.base_url.trim_end_matches('/');
    let (url, mut body) = match target.api {
        ApiFamily::OpenAi => (
            format!("{base}/chat/completions"),
            serde_json::json!({"model": target.model, "messages": messages, "stream": false}),
        ),
        ApiFamily::Ollama => (
            format!("{base}/api/chat"),
            serde_json::json!({"model": target.model, "messages": ollama_messages(messages),
                "stream": false}),
        ),
    };
    if !tools.is_empty() {
        body["tools"] = serde_json::Value::Array(tools.to_vec());
        if let Some(name) = tool_choice {
            body["tool_choice"] =
                serde_json::json!({"type": "function", "function": {"name": name}});
        }
    }
    if let Some(n) = max_tokens {
        match target.api {
            ApiFamily::OpenAi => body["max_tokens"] = n.into(),
            ApiFamily::Ollama => body["options"] = serde_json::json!({"num_predict": n}),
        }
    }
    let Reply {
        status,
        body: mut resp,
        ..
    } = post(target, &url, body.to_string()).await?;
    let mut text = Vec::new();
    loop {
        match tokio::time::timeout(STALL_TIMEOUT, resp.next()).await {
            Err(_) => return Err(format!("{base} sent nothing for {STALL_TIMEOUT:?}")),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(format!("lost {base} mid-reply: {e}")),
            Ok(Some(Ok(b))) => {
                if text.len() + b.len() > MAX_COMPLETION_BODY {
                    return Err(format!("the reply is over {MAX_COMPLETION_BODY} bytes"));
                }
                text.extend_from_slice(&b);
            }
        }
    }
    let text = String::from_utf8_lossy(&text);
    if !(200..300).contains(&status) {
        return Err(format!(
            "{base} answered HTTP {status}: {}",
            truncate(&text, 500)
        ));
    }
    parse_completion(target.api, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_of_both_families() {
        let openai = r#"{"choices":[{"message":{"content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"time__get_current_time","arguments":"{ \"timezone\":\"UTC\"}"}}],"role":"assistant"}}],"usage":{"prompt_tokens":16,"completion_tokens":8}}"#;
        let c = parse_completion(ApiFamily::OpenAi, openai).unwrap();
        assert_eq!(c.content, "");
        assert_eq!(
            c.tool_calls,
            vec![(
                "c1".to_string(),
                "time__get_current_time".to_string(),
                "{ \"timezone\":\"UTC\"}".to_string()
            )]
        );
        assert_eq!(c.usage, Some((16, 8)));
        let ollama = r#"{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},"prompt_eval_count":3,"eval_count":4}"#;
        let c = parse_completion(ApiFamily::Ollama, ollama).unwrap();
        assert_eq!(
            c.tool_calls[0],
            ("call_0".into(), "f".into(), "{\"a\":1}".into())
        );
        assert_eq!(c.usage, Some((3, 4)));
        assert!(parse_completion(ApiFamily::OpenAi, "{}").is_err());
        let m = ollama_messages(&[serde_json::json!({"role": "assistant", "content": "",
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{\"a\":1}"}}]})]);
        assert_eq!(m[0]["tool_calls"][0]["function"]["arguments"]["a"], 1);
        assert!(parse_completion(ApiFamily::OpenAi, "nope").is_err());
    }
}
