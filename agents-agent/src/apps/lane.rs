//! The read lane (seed 003 "App Read Lane"): what `window.cowork.*` may
//! ask, checked (pure: [`parse`]), and answered from cowork.db by
//! deterministic queries ([`Apps::read`]) — no model reasoning, no tools, no
//! secrets, no other app's data. The caller's identity is never read from
//! the request: the server passes the app its origin names.

use super::Apps;
use crate::chat::store as chat_store;
use crate::context::store as context_store;
use crate::memory::item::{Kind, Stream};
use crate::memory::recall::{Mode, Query};
use crate::memory::store as memory_store;
use serde_json::{json, Map, Value};

/// The largest request body (bytes).
pub const MAX_BODY: usize = 16 << 10;
/// The most items one call returns.
pub const MAX_LIMIT: u64 = 200;
/// The longest search query (characters).
pub const MAX_QUERY: usize = 1000;
/// Every method the lane has, as `namespace.method`.
pub const METHODS: &[&str] = &[
    "context.activeWindow",
    "context.recentActivity",
    "context.currentTime",
    "user.preferences",
    "user.profile",
    "data.conversations",
    "data.search",
];
/// The profile keys `user.preferences()` returns (the rest is `profile()`).
const PREFERENCE_KEYS: &[&str] = &["preferences", "communication_style"];

/// One read, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// The focused app and window.
    ActiveWindow,
    /// Windows of the last `minutes`, newest first.
    RecentActivity {
        /// How far back.
        minutes: u64,
        /// At most.
        limit: u64,
    },
    /// The local time.
    CurrentTime,
    /// The person's stated preferences.
    Preferences,
    /// The person's profile.
    Profile,
    /// This app's conversations, newest first.
    Conversations {
        /// Threads, at most.
        limit: u64,
        /// Messages per thread, the newest, at most.
        messages: u64,
    },
    /// Search over activity (window titles and URLs).
    Search {
        /// What to look for.
        query: String,
        /// Hits, at most.
        limit: u64,
    },
}

impl Read {
    /// `namespace.method`.
    pub fn method(&self) -> &'static str {
        match self {
            Read::ActiveWindow => "context.activeWindow",
            Read::RecentActivity { .. } => "context.recentActivity",
            Read::CurrentTime => "context.currentTime",
            Read::Preferences => "user.preferences",
            Read::Profile => "user.profile",
            Read::Conversations { .. } => "data.conversations",
            Read::Search { .. } => "data.search",
        }
    }
}

/// Why a read was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not a read the lane has, or malformed.
    #[error("{0}")]
    Invalid(String),
    /// It asked for another app's data.
    #[error("{0}")]
    Forbidden(String),
}

fn number(args: &Map<String, Value>, key: &str, default: u64, max: u64) -> Result<u64, Refused> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(Refused::Invalid(format!(
                "{key} must be a whole number from 1 to {max}"
            ))),
        },
    }
}

/// Check a request body `{"ns", "method", "args"}` from the app `caller`.
/// An `appId` in the arguments that is not the caller's is refused (an
/// app reads only its own data); the caller is never taken from it.
pub fn parse(body: &[u8], caller: &str) -> Result<Read, Refused> {
    if body.len() > MAX_BODY {
        return Err(Refused::Invalid(format!(
            "a read is at most {MAX_BODY} bytes"
        )));
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|e| Refused::Invalid(format!("not JSON: {e}")))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    let method = format!("{}.{}", s("ns"), s("method"));
    let empty = Map::new();
    let args = match v.get("args") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(Refused::Invalid("args must be an object".into())),
    };
    for key in ["appId", "app_id", "app"] {
        if let Some(other) = args.get(key) {
            if other.as_str() != Some(caller) {
                return Err(Refused::Forbidden(format!(
                    "an app reads only its own data: {key} {other} is not this app ({caller})"
                )));
            }
        }
    }
    Ok(match method.as_str() {
        "context.activeWindow" => Read::ActiveWindow,
        "context.recentActivity" => Read::RecentActivity {
            minutes: number(args, "minutes", 60, 7 * 24 * 60)?,
            limit: number(args, "limit", 20, MAX_LIMIT)?,
        },
        "context.currentTime" => Read::CurrentTime,
        "user.preferences" => Read::Preferences,
        "user.profile" => Read::Profile,
        "data.conversations" => Read::Conversations {
            limit: number(args, "limit", 50, MAX_LIMIT)?,
            messages: number(args, "messages", 20, MAX_LIMIT)?,
        },
        "data.search" => {
            let query = args
                .get("query")
                .and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or("");
            if query.is_empty() || query.chars().count() > MAX_QUERY {
                return Err(Refused::Invalid(format!(
                    "search(query) needs a query of 1 to {MAX_QUERY} characters"
                )));
            }
            Read::Search {
                query: query.to_owned(),
                limit: number(args, "limit", 10, 50)?,
            }
        }
        other => {
            return Err(Refused::Invalid(format!(
                "the read lane has no {other}: it has {}",
                METHODS.join(", ")
            )))
        }
    })
}

/// The `namespace.method` a body asks for, as the audit records it (even
/// when the read is refused); "invalid" when it names none.
pub fn requested(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let (ns, method) = (s("ns"), s("method"));
    if ns.is_empty() && method.is_empty() {
        return "invalid".into();
    }
    format!("{ns}.{method}").chars().take(64).collect()
}

fn iso(ms: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| Value::String(t.with_timezone(&chrono::Local).to_rfc3339()))
        .unwrap_or(Value::Null)
}

/// The answer to one read, and how many items it holds.
pub type Answer = (Value, u32);

impl Apps {
    /// Answer `read` for the app `app_id` (already identified by origin).
    pub async fn answer(&self, app_id: &str, read: Read) -> Result<Answer, String> {
        let db = self.inner.db.clone();
        let window_off = move |c: &rusqlite::Connection| {
            context_store::disabled_streams(c)
                .map(|d| d.iter().any(|s| s == "window"))
                .unwrap_or(true)
        };
        let out = match read {
            Read::ActiveWindow => {
                db.read(move |c| {
                    if window_off(c) {
                        return Ok((Value::Null, 0));
                    }
                    let Some(f) = context_store::focus(c) else {
                        return Ok((Value::Null, 0));
                    };
                    Ok((
                        json!({"app": f.app, "title": f.title, "url": f.url,
                               "since": iso(f.since_ms), "sinceMs": f.since_ms}),
                        1,
                    ))
                })
                .await
            }
            Read::RecentActivity { minutes, limit } => {
                let since = crate::util::now_ms() - (minutes as i64) * 60_000;
                db.read(move |c| {
                    if window_off(c) {
                        return Ok((json!([]), 0));
                    }
                    let rows = context_store::activities_since(c, since, limit as u32);
                    let n = rows.len() as u32;
                    let v: Vec<Value> = rows
                        .into_iter()
                        .map(|a| {
                            json!({"app": a.app, "title": a.title, "url": a.url,
                                   "start": iso(a.started_ms), "startMs": a.started_ms,
                                   "end": a.ended_ms.map(iso), "endMs": a.ended_ms})
                        })
                        .collect();
                    Ok((Value::Array(v), n))
                })
                .await
            }
            Read::CurrentTime => {
                let now = chrono::Local::now();
                return Ok((
                    json!({"iso": now.to_rfc3339(), "epochMs": now.timestamp_millis(),
                           "utcOffsetMinutes": now.offset().local_minus_utc() / 60,
                           "timeZone": std::env::var("TZ").unwrap_or_default()}),
                    1,
                ));
            }
            Read::Preferences | Read::Profile => {
                let prefs = matches!(read, Read::Preferences);
                db.read(move |c| {
                    let mut m = Map::new();
                    for e in memory_store::profile(c)? {
                        if PREFERENCE_KEYS.contains(&e.key.as_str()) == prefs {
                            m.insert(e.key, Value::String(e.value));
                        }
                    }
                    let n = m.len() as u32;
                    Ok((Value::Object(m), n))
                })
                .await
            }
            Read::Conversations { limit, messages } => {
                let app = app_id.to_owned();
                db.read(move |c| {
                    let threads = chat_store::app_threads(c, &app, limit as u32)?;
                    let n = threads.len() as u32;
                    let mut out = Vec::new();
                    for t in threads {
                        let all = chat_store::messages(c, &t.id)?;
                        let skip = all.len().saturating_sub(messages as usize);
                        let msgs: Vec<Value> = all
                            .into_iter()
                            .skip(skip)
                            .map(|m| {
                                json!({"role": m.role, "content": m.content,
                                            "at": iso(m.created_ms), "atMs": m.created_ms})
                            })
                            .collect();
                        out.push(json!({"id": t.id, "title": t.title,
                                        "createdMs": t.created_ms, "updatedMs": t.updated_ms,
                                        "messages": msgs}));
                    }
                    Ok((Value::Array(out), n))
                })
                .await
            }
            Read::Search { query, limit } => {
                if db.read(move |c| Ok(window_off(c))).await.unwrap_or(true) {
                    return Ok((json!([]), 0));
                }
                // Window titles and URLs only: typed text and the
                // clipboard are never an app's to read.
                let found = self
                    .inner
                    .memory
                    .search(Query {
                        text: query,
                        kinds: vec![Kind::Activity],
                        k: (limit as usize) * 4,
                        mode: Mode::Hybrid,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                let hits: Vec<Value> = found
                    .hits
                    .into_iter()
                    .filter(|h| h.item.kind == Kind::Activity && h.item.stream == Stream::Window)
                    .take(limit as usize)
                    .map(|h| {
                        json!({"text": h.item.text, "app": h.item.app,
                               "at": iso(h.item.time_ms), "atMs": h.item.time_ms,
                               "score": h.score})
                    })
                    .collect();
                let n = hits.len() as u32;
                return Ok((Value::Array(hits), n));
            }
        };
        out.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(body: &str) -> Result<Read, Refused> {
        parse(body.as_bytes(), "notes-aa11bb")
    }

    #[test]
    fn every_method_parses_with_its_defaults() {
        assert_eq!(
            p(r#"{"ns":"context","method":"activeWindow"}"#).unwrap(),
            Read::ActiveWindow
        );
        assert_eq!(
            p(r#"{"ns":"context","method":"recentActivity","args":{"minutes":5}}"#).unwrap(),
            Read::RecentActivity {
                minutes: 5,
                limit: 20
            }
        );
        assert_eq!(
            p(r#"{"ns":"data","method":"conversations","args":{"limit":3}}"#).unwrap(),
            Read::Conversations {
                limit: 3,
                messages: 20
            }
        );
        assert_eq!(
            p(r#"{"ns":"data","method":"search","args":{"query":" invoice "}}"#).unwrap(),
            Read::Search {
                query: "invoice".into(),
                limit: 10
            }
        );
        for m in METHODS {
            let (ns, method) = m.split_once('.').unwrap();
            let body = format!(r#"{{"ns":"{ns}","method":"{method}","args":{{"query":"x"}}}}"#);
            assert_eq!(p(&body).unwrap().method(), *m);
        }
    }

    #[test]
    fn tools_other_apps_and_junk_are_refused() {
        let e = p(r#"{"ns":"mcp","method":"callTool","args":{}}"#).unwrap_err();
        assert!(e.to_string().contains("no mcp.callTool"), "{e}");
        let e = p(r#"{"ns":"data","method":"conversations","args":{"appId":"other-112233"}}"#)
            .unwrap_err();
        assert!(matches!(e, Refused::Forbidden(_)), "{e}");
        // Naming itself changes nothing.
        assert!(
            p(r#"{"ns":"data","method":"conversations","args":{"appId":"notes-aa11bb"}}"#).is_ok()
        );
        for bad in [
            "not json",
            r#"{"ns":"context","method":"recentActivity","args":{"limit":0}}"#,
            r#"{"ns":"context","method":"recentActivity","args":{"limit":100000}}"#,
            r#"{"ns":"data","method":"search","args":{}}"#,
            r#"{"ns":"data","method":"search","args":[1]}"#,
        ] {
            assert!(matches!(p(bad), Err(Refused::Invalid(_))), "{bad}");
        }
        assert_eq!(
            requested(br#"{"ns":"mcp","method":"callTool"}"#),
            "mcp.callTool"
        );
        assert_eq!(requested(b"junk"), "invalid");
        let big = format!(
            r#"{{"ns":"data","method":"search","args":{{"query":"{}"}}}}"#,
            "x".repeat(MAX_BODY)
        );
        assert!(p(&big).is_err());
    }
}
