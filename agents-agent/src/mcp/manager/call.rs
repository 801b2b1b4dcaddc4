//! Tool calls: each with a timeout and a call id that aborts it, counted
//! in flight on its connection (a busy server is not pinged), and audited
//! in `mcp_tool_calls` however it ends, off the reply's path.

use super::super::{call_arguments, store};
use super::limits;
use super::{CallOutcome, Conn, Manager, McpError, DEFAULT_CALL_TIMEOUT, MAX_CALL_TIMEOUT};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

impl Manager {
    /// A call the person makes (`mcp call`): arguments as JSON text,
    /// `timeout_ms` 0 for [`DEFAULT_CALL_TIMEOUT`] (at most
    /// [`MAX_CALL_TIMEOUT`]), `call_id` "" for a new one. Audited as `user`.
    pub async fn call_by_user(
        &self,
        server: &str,
        tool: &str,
        arguments_json: &str,
        timeout_ms: u32,
        call_id: String,
    ) -> Result<CallOutcome, McpError> {
        let args = call_arguments(arguments_json).map_err(McpError::Invalid)?;
        let timeout = match timeout_ms {
            0 => DEFAULT_CALL_TIMEOUT,
            ms => Duration::from_millis(ms.into()).min(MAX_CALL_TIMEOUT),
        };
        let call_id = if call_id.is_empty() {
            crate::util::new_id("call")
        } else {
            call_id
        };
        self.call(server, tool, args, timeout, call_id, "user")
            .await
    }

    /// Abort the call with this id, if it is in flight.
    pub fn abort(&self, call_id: &str) -> bool {
        match self.calls.lock().ok().and_then(|mut c| c.remove(call_id)) {
            Some((_, t)) => {
                t.cancel();
                true
            }
            None => false,
        }
    }

    /// Call a tool. `source` says who asked ("user" or "agent") for the
    /// audit log.
    pub async fn call(
        &self,
        server: &str,
        tool: &str,
        arguments: serde_json::Map<String, serde_json::Value>,
        timeout: Duration,
        call_id: String,
        source: &str,
    ) -> Result<CallOutcome, McpError> {
        let token = CancellationToken::new();
        let serial = NEXT_CALL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        {
            let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            if calls.contains_key(&call_id) {
                return Err(McpError::Invalid(format!("call id {call_id} is in flight")));
            }
            calls.insert(call_id.clone(), (serial, token.clone()));
        }
        // Audits the call and frees its id however it ends, a caller that
        // goes away included.
        let mut record = CallRecordGuard {
            manager: self.clone(),
            serial,
            started: Instant::now(),
            entry: Some(store::AuditEntry {
                call_id: call_id.clone(),
                server: server.to_owned(),
                tool: tool.to_owned(),
                arguments_json: limits::truncate_recorded(
                    &serde_json::Value::Object(arguments.clone()).to_string(),
                    limits::MAX_AUDIT_FIELD,
                ),
                source: source.to_owned(),
                started_ms: crate::util::now_ms(),
                duration_ms: 0,
                outcome: "cancelled".into(),
                error: "the caller went away".into(),
            }),
        };
        // Names, size and outcome only: never the arguments or the result.
        let span = tracing::info_span!(
            target: cowork_proto::traces::TARGET,
            "mcp.call",
            server = %server,
            tool = %tool,
            outcome = tracing::field::Empty,
            bytes = tracing::field::Empty,
        );
        let result = self
            .call_inner(server, tool, arguments, timeout, &call_id, &token)
            .instrument(span.clone())
            .await;
        let (outcome, error) = match &result {
            Ok(o) if o.is_error => ("tool_error", o.text.clone()),
            Ok(_) => ("ok", String::new()),
            Err(McpError::Timeout { .. }) => ("timeout", result_err(&result)),
            Err(McpError::Aborted(_)) => ("aborted", result_err(&result)),
            Err(_) => ("error", result_err(&result)),
        };
        span.record("outcome", outcome);
        if let Ok(o) = &result {
            span.record("bytes", o.text.len());
        }
        if let Some(e) = record.entry.as_mut() {
            e.outcome = outcome.to_owned();
            e.error = limits::truncate_recorded(&error, limits::MAX_AUDIT_FIELD);
        }
        let duration = record.started.elapsed();
        drop(record);
        result.map(|mut o| {
            o.duration = duration;
            o
        })
    }

    async fn call_inner(
        &self,
        server: &str,
        tool: &str,
        arguments: serde_json::Map<String, serde_json::Value>,
        timeout: Duration,
        call_id: &str,
        token: &CancellationToken,
    ) -> Result<CallOutcome, McpError> {
        let c = tokio::select! {
            c = self.conn(server) => c?,
            _ = token.cancelled() => return Err(McpError::Aborted(call_id.to_owned())),
        };
        let _busy = InFlight::new(&c);
        let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
        // Dropping the call (timeout, abort) sends notifications/cancelled.
        let r = tokio::select! {
            r = tokio::time::timeout(timeout, c.service.call_tool(params)) => r,
            _ = token.cancelled() => return Err(McpError::Aborted(call_id.to_owned())),
        };
        let r = r
            .map_err(|_| McpError::Timeout {
                server: server.to_owned(),
                tool: tool.to_owned(),
                ms: timeout.as_millis() as u64,
            })?
            .map_err(|e| McpError::Call {
                server: server.to_owned(),
                tool: tool.to_owned(),
                reason: c.broken_reason().unwrap_or_else(|| e.to_string()),
            })?;
        let text = text_of(&r);
        let result = serde_json::to_value(&r).unwrap_or_default();
        let size = result.to_string().len();
        // A result over the cap is kept as its cut text, with its size.
        let (text, result) = if size > limits::MAX_RESULT_TEXT {
            let cut = limits::truncate_recorded(&text, limits::MAX_RESULT_TEXT);
            let result = serde_json::json!({
                "content": [{"type": "text", "text": cut}],
                "isError": r.is_error.unwrap_or(false),
                "truncated": {"bytes": size},
            });
            (cut, result)
        } else {
            (text, result)
        };
        Ok(CallOutcome {
            call_id: call_id.to_owned(),
            is_error: r.is_error.unwrap_or(false),
            text,
            result,
            duration: Duration::ZERO,
        })
    }
}

fn text_of(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.as_str()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Serial numbers of calls, so a finished call never frees a newer call
/// that reused its id.
static NEXT_CALL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Frees a call's id (if still its own) and writes its audit row (off the
/// reply's path) when dropped.
struct CallRecordGuard {
    manager: Manager,
    serial: u64,
    started: Instant,
    entry: Option<store::AuditEntry>,
}

impl Drop for CallRecordGuard {
    fn drop(&mut self) {
        let Some(mut entry) = self.entry.take() else {
            return;
        };
        if let Ok(mut calls) = self.manager.calls.lock() {
            if calls
                .get(&entry.call_id)
                .is_some_and(|(s, _)| *s == self.serial)
            {
                calls.remove(&entry.call_id);
            }
        }
        entry.duration_ms = self.started.elapsed().as_millis() as i64;
        let db = self.manager.db.clone();
        tokio::spawn(async move {
            if let Err(e) = db.write(move |c| store::audit(c, &entry)).await {
                tracing::error!(error = %e, "could not write the MCP audit log");
            }
        });
    }
}

/// Counts a call in flight on a connection; marks it used when done.
struct InFlight<'a>(&'a Conn);

impl<'a> InFlight<'a> {
    fn new(c: &'a Conn) -> Self {
        c.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(c)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut t) = self.0.last_used.lock() {
            *t = Instant::now();
        }
    }
}

fn result_err<T>(r: &Result<T, McpError>) -> String {
    r.as_ref().err().map(|e| e.to_string()).unwrap_or_default()
}
