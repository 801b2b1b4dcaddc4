//! Opening and reusing connections: spawn (stdio) or reach (HTTP) a
//! server, initialize, list its tools; one connect at a time per server;
//! an idle connection is pinged before reuse; the tool cache.

use super::super::{secret_name, ConnectionState, ServerSpec, Status, Transport};
use super::limits;
use super::process::Spawned;
use super::{Conn, Handler, Manager, McpError, CONNECT_TIMEOUT, PING_AFTER_IDLE, PING_TIMEOUT};
use rmcp::ServiceExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

impl Manager {
    /// Close `name`'s connection, if any.
    pub(super) async fn close_slot(&self, name: &str) {
        let old = self.slot(name).conn.lock().await.take();
        if let Some(old) = old {
            self.close(old).await;
        }
    }

    /// Connect: spawn (stdio) or reach (HTTP) the server, initialize, and
    /// list its tools to check it works; the connection flow's states are
    /// recorded as it goes.
    pub(super) async fn open(&self, name: &str) -> Result<Arc<Conn>, McpError> {
        let row = self.row(name).await?;
        if row.connection_state == ConnectionState::ConfigRequired.name() {
            return Err(McpError::ConfigRequired {
                server: name.to_owned(),
                detail: row.last_error,
            });
        }
        self.set_status(name, Status::Starting, "");
        self.state(name, ConnectionState::StartingServer, "")
            .await?;
        let result = tokio::time::timeout(CONNECT_TIMEOUT, self.open_inner(&row.spec))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {CONNECT_TIMEOUT:?}")));
        match result {
            Ok(conn) => {
                self.state(name, ConnectionState::SavingConfig, "").await?;
                self.state(name, ConnectionState::Connected, "").await?;
                self.set_status(name, Status::Running, "");
                Ok(conn)
            }
            Err(reason) => {
                tracing::warn!(server = name, %reason, "MCP connect failed");
                // A refused credential is the AUTHENTICATING step's failure.
                let step = if refused_credentials(&reason) {
                    ConnectionState::Authenticating
                } else {
                    ConnectionState::StartingServer
                };
                self.state(name, step, &reason).await?;
                self.set_status(name, Status::Error, &reason);
                Err(McpError::Connect {
                    server: name.to_owned(),
                    reason,
                })
            }
        }
    }

    async fn open_inner(&self, spec: &ServerSpec) -> Result<Arc<Conn>, String> {
        drop(self.swept.read().await);
        let handler = Handler {
            tools: Default::default(),
            server: spec.name.clone(),
            events: self.events.clone(),
        };
        let tools = handler.tools.clone();
        let broken = Arc::new(Mutex::new(None::<String>));
        let (service, pid, spawned) = match &spec.transport {
            Transport::Stdio {
                command,
                env,
                secret_env,
            } => {
                let (mut output, input, pid, spawned) =
                    self.spawn(spec, command, env, secret_env).await?;
                output.broken = broken.clone();
                let service = handler.serve((output, input)).await.map_err(|e| {
                    let why = broken.lock().ok().and_then(|b| b.clone());
                    format!(
                        "initialize failed: {}",
                        why.unwrap_or_else(|| e.to_string())
                    )
                })?;
                (service, pid, Some(spawned))
            }
            Transport::Http {
                url,
                headers,
                secret_headers,
            } => {
                let mut all = HashMap::new();
                let secret = secret_headers.iter().map(|h| {
                    match crate::secrets::get(&secret_name(&spec.name, h)) {
                        Ok(Some(v)) => Ok((h.clone(), v)),
                        Ok(None) => Err(format!(
                            "the secret header {h} is not in the credential store; add the \
                             server again with --secret-header {h}"
                        )),
                        Err(e) => Err(e.to_string()),
                    }
                });
                for pair in headers
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.clone())))
                    .chain(secret)
                {
                    let (k, v) = pair?;
                    let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                        .map_err(|_| format!("bad header name {k:?}"))?;
                    let mut value = reqwest::header::HeaderValue::from_str(&v)
                        .map_err(|_| format!("header {k}: a value a header cannot carry"))?;
                    value.set_sensitive(secret_headers.contains(&k));
                    all.insert(name, value);
                }
                let config =
                    rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
                        url.as_str(),
                    )
                    .custom_headers(all);
                let transport = rmcp::transport::StreamableHttpClientTransport::from_config(config);
                let service = handler
                    .serve(transport)
                    .await
                    .map_err(|e| format!("initialize failed: {e}"))?;
                (service, None, None)
            }
        };
        let listed = list_tools(&service).await.map_err(|e| {
            let why = broken.lock().ok().and_then(|b| b.clone());
            format!("tools/list failed: {}", why.unwrap_or(e))
        })?;
        if let Ok(mut t) = tools.lock() {
            *t = Some(listed);
        }
        Ok(Arc::new(Conn {
            service,
            tools,
            broken,
            pid,
            lock: Mutex::new(spawned.and_then(Spawned::disarm)),
            last_used: Mutex::new(Instant::now()),
            in_flight: Default::default(),
        }))
    }

    /// The live connection to `name`, connecting (once, whoever asks
    /// first) when needed.
    pub(super) async fn conn(&self, name: &str) -> Result<Arc<Conn>, McpError> {
        let slot = self.slot(name);
        let mut guard = slot.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            let idle = c.last_used.lock().map(|t| t.elapsed()).unwrap_or_default();
            let busy = c.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0;
            let healthy = !c.service.is_closed()
                && (busy
                    || idle < PING_AFTER_IDLE
                    || tokio::time::timeout(PING_TIMEOUT, c.service.list_tools(None))
                        .await
                        .is_ok_and(|r| r.is_ok()));
            if healthy {
                return Ok(c.clone());
            }
            tracing::warn!(server = name, "MCP connection lost; reconnecting");
            if let Some(old) = guard.take() {
                self.close(old).await;
            }
        }
        // Not connected: only an enabled server is (re)connected. (A live
        // connection implies enabled: disconnect takes it away.)
        let row = match self.row(name).await {
            Ok(r) => r,
            Err(e) => {
                drop(guard);
                if let Ok(mut slots) = self.slots.lock() {
                    slots.remove(name);
                }
                return Err(e);
            }
        };
        if !row.spec.enabled {
            return Err(McpError::Disabled(name.to_owned()));
        }
        let c = self.open(name).await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// A server's tools (the cached list, else listed now).
    pub async fn tools(&self, name: &str) -> Result<Vec<rmcp::model::Tool>, McpError> {
        let c = self.conn(name).await?;
        if let Some(t) = c.tools.lock().ok().and_then(|t| t.clone()) {
            return Ok(t);
        }
        let listed = list_tools(&c.service)
            .await
            .map_err(|reason| McpError::Call {
                server: name.to_owned(),
                tool: "tools/list".into(),
                reason: c.broken_reason().unwrap_or(reason),
            })?;
        if let Ok(mut t) = c.tools.lock() {
            *t = Some(listed.clone());
        }
        Ok(listed)
    }
}

/// Every page of the server's tool list, within [`limits::MAX_TOOLS`] and
/// [`limits::MAX_TOOLS_BYTES`].
async fn list_tools(
    service: &rmcp::service::RunningService<rmcp::RoleClient, Handler>,
) -> Result<Vec<rmcp::model::Tool>, String> {
    tokio::time::timeout(limits::LIST_TIMEOUT, list_pages(service))
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "the server did not finish listing its tools within {:?}",
                limits::LIST_TIMEOUT
            ))
        })
}

async fn list_pages(
    service: &rmcp::service::RunningService<rmcp::RoleClient, Handler>,
) -> Result<Vec<rmcp::model::Tool>, String> {
    let mut all = Vec::new();
    let mut bytes = 0;
    let mut cursor: Option<String> = None;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..limits::MAX_TOOL_PAGES {
        let page = service
            .list_tools(Some(
                rmcp::model::PaginatedRequestParams::default().with_cursor(cursor),
            ))
            .await
            .map_err(|e| e.to_string())?;
        bytes += page
            .tools
            .iter()
            .map(|t| serde_json::to_string(t).map_or(0, |s| s.len()))
            .sum::<usize>();
        all.extend(page.tools);
        limits::check_tools(all.len(), bytes)?;
        match page.next_cursor {
            Some(c) if !seen.insert(c.clone()) => {
                return Err(format!("the server's tool list repeats the page {c:?}"))
            }
            Some(c) => cursor = Some(c),
            None => return Ok(all),
        }
    }
    Err(format!(
        "the server's tool list runs over {} pages",
        limits::MAX_TOOL_PAGES
    ))
}

/// Whether a connect failure says the server refused the credentials.
fn refused_credentials(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    ["401", "403", "unauthorized", "forbidden"]
        .iter()
        .any(|w| r.contains(w))
}
