//! Streaming chat: one OpenAI-compatible client (`/chat/completions`,
//! server-sent events) for local engines and cloud providers alike, and
//! Ollama's `/api/chat` (NDJSON). A dead engine ends the stream with an error at once; a caller
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

/// How a [`ChatTarget`] is reached.
#[derive(Clone)]
pub enum Transport {
    /// A local or LAN engine over plain HTTP/1.1, the resolved address
    /// checked against the SSRF rule.
    Local,
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
            Transport::Local => "Local",
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
enum Body {
    /// The body and the connection it arrives on (closed when dropped).
    Local(
        hyper::body::Incoming,
        #[allow(dead_code)] crate::probe::Connection,
    ),
    Cloud(reqwest::Response),
}

impl Body {
    async fn next(&mut self) -> Option<Result<bytes::Bytes, String>> {
        match self {
            Body::Local(b, _) => loop {
                match b.frame().await? {
                    Err(e) => return Some(Err(e.to_string())),
                    Ok(f) => {
                        if let Ok(d) = f.into_data() {
                            return Some(Ok(d));
                        }
                    }
                }
            },
            Body::Cloud(r) => r.chunk().await.map_err(|e| e.to_string()).transpose(),
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

async fn send(target: &ChatTarget, url: &str, body: String) -> Result<(u16, Body), String> {
    let base = &target.base_url;
    match &target.transport {
        Transport::Local => {
            let (mut send, uri, conn) = crate::probe::connect_local(url).await?;
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
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .map_err(|e| e.to_string())?;
            let resp = send
                .send_request(req)
                .await
                .map_err(|e| format!("engine at {base} failed: {e}"))?;
            Ok((resp.status().as_u16(), Body::Local(resp.into_body(), conn)))
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
            Ok((resp.status().as_u16(), Body::Cloud(resp)))
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
        Transport::Local => "engine",
        Transport::Cloud { .. } => "provider",
    };
    let (status, mut body) = send(target, &url, body).await?;
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
