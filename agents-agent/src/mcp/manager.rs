//! Connections to MCP servers and the calls made through them.
//!
//! - One connection per server, made on first use; concurrent first uses
//!   wait on the same connect (one spawn). A connection idle for
//!   [`PING_AFTER_IDLE`] is checked (tools/list within [`PING_TIMEOUT`])
//!   before reuse, and replaced if it does not answer.
//! - A stdio server runs in its own process group with a lockfile naming
//!   its leader, so if agents-agent is killed the sweep at the next start
//!   (agents-agent's, or coworkd's boot) verifies the leader and ends the
//!   whole group, grandchildren included.
//! - The tool list is cached until the server sends tools/list_changed.
//! - Every call has a timeout and a call id that aborts it; every call is
//!   audited in `mcp_tool_calls`.
//!
//! This file holds the shared state (servers' slots, live connections) and
//! the views of it; the rest is split by concern: [`registry`] (adding,
//! configuring, enabling, removing servers), [`connect`] (opening and
//! reusing connections, the tool cache), [`process`] (stdio servers'
//! process groups, locks and the orphan sweep), [`call`] (tool calls,
//! their timeouts, aborts and audit), [`limits`] (what a server may make
//! us hold, and the environment it gets).

mod call;
mod connect;
pub mod limits;
mod process;
mod registry;

use super::store::{self, Row};
use super::{ConnectionState, Status};
use crate::db::{Db, DbError};
use cowork_proto::lockfile::Lockfile;
use rmcp::model::{ClientConfig, Implementation};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::{ClientHandler, RoleClient};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Default per-call timeout.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest per-call timeout accepted.
pub const MAX_CALL_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long a server may take to start and answer `initialize`
/// (npx and uvx may download on first start).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);
/// A reused connection idle this long is checked first (the seed pings on
/// every reuse; a connection that answered within the last second has
/// just shown it is alive, and pinging it again would double the latency
/// of back-to-back calls).
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(1);
/// How long that check may take.
pub const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// Grace between SIGTERM and SIGKILL for a stdio server's process group.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// Why an MCP operation failed.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// No server by that name.
    #[error("no MCP server named {0:?} (see `coworkctl mcp list`)")]
    NoServer(String),
    /// The server is turned off.
    #[error("MCP server {0:?} is disconnected; run `coworkctl mcp connect {0}`")]
    Disabled(String),
    /// A server by that name exists.
    #[error("an MCP server named {0:?} already exists; remove it first")]
    Exists(String),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// Connecting failed.
    #[error("cannot connect to MCP server {server:?}: {reason}")]
    Connect {
        /// The server.
        server: String,
        /// Why.
        reason: String,
    },
    /// The call failed at the protocol or transport level.
    #[error("{server}/{tool} failed: {reason}")]
    Call {
        /// The server.
        server: String,
        /// The tool.
        tool: String,
        /// Why.
        reason: String,
    },
    /// The call took longer than its timeout.
    #[error("{server}/{tool} timed out after {ms} ms")]
    Timeout {
        /// The server.
        server: String,
        /// The tool.
        tool: String,
        /// The timeout.
        ms: u64,
    },
    /// A bundled server still needs settings (CONFIG_REQUIRED).
    #[error("MCP server {server:?} {detail}")]
    ConfigRequired {
        /// The server.
        server: String,
        /// What is missing and how to give it.
        detail: String,
    },
    /// The call was aborted by its call id.
    #[error("call {0} was aborted")]
    Aborted(String),
    /// cowork.db failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The client side of one connection: clears the cached tool list when the
/// server says it changed.
#[derive(Debug, Clone)]
struct Handler {
    tools: Arc<Mutex<Option<Vec<rmcp::model::Tool>>>>,
    /// The server's name, for the notifications it sends.
    server: String,
    /// Where its notifications go (automations' triggers listen).
    events: tokio::sync::broadcast::Sender<ServerNotification>,
}

/// A notification an MCP server sent: (server, method).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerNotification {
    /// The server's name.
    pub server: String,
    /// The JSON-RPC method (`notifications/tools/list_changed`, ...).
    pub method: String,
}

impl Handler {
    fn tell(&self, method: &str) {
        // Nobody listening is fine.
        let _ = self.events.send(ServerNotification {
            server: self.server.clone(),
            method: method.to_owned(),
        });
    }
}

impl ClientHandler for Handler {
    fn on_tool_list_changed(
        &self,
        _: NotificationContext<RoleClient>,
    ) -> impl std::future::Future<Output = ()> + Send + '_ {
        if let Ok(mut t) = self.tools.lock() {
            *t = None;
        }
        tracing::info!(server = %self.server, "an MCP server's tool list changed; cache cleared");
        self.tell("notifications/tools/list_changed");
        std::future::ready(())
    }

    fn on_resource_updated(
        &self,
        _: rmcp::model::ResourceUpdatedNotificationParam,
        _: NotificationContext<RoleClient>,
    ) -> impl std::future::Future<Output = ()> + Send + '_ {
        self.tell("notifications/resources/updated");
        std::future::ready(())
    }

    fn on_resource_list_changed(
        &self,
        _: NotificationContext<RoleClient>,
    ) -> impl std::future::Future<Output = ()> + Send + '_ {
        self.tell("notifications/resources/list_changed");
        std::future::ready(())
    }

    fn get_info(&self) -> ClientConfig {
        let mut info = ClientConfig::default();
        info.client_info = Implementation::new("cowork", env!("CARGO_PKG_VERSION"));
        info
    }
}

/// One live connection.
struct Conn {
    service: RunningService<RoleClient, Handler>,
    tools: Arc<Mutex<Option<Vec<rmcp::model::Tool>>>>,
    /// Why the transport failed on our side (a line over the cap).
    broken: Arc<Mutex<Option<String>>>,
    pid: Option<u32>,
    lock: Mutex<Option<Lockfile>>,
    last_used: Mutex<Instant>,
    /// Calls running now (a busy server is not pinged).
    in_flight: std::sync::atomic::AtomicUsize,
}

impl Conn {
    fn broken_reason(&self) -> Option<String> {
        self.broken.lock().ok().and_then(|b| b.clone())
    }
}

/// A server's slot: its connection (one connect at a time) and status.
#[derive(Default)]
struct Slot {
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    status: Mutex<(Option<Status>, String)>,
}

/// What `list` shows of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerView {
    /// The stored row.
    pub row: Row,
    /// The live status.
    pub status: Status,
    /// Why error.
    pub error: String,
    /// The stdio server's pid.
    pub pid: Option<u32>,
    /// Tools known (cached list).
    pub tool_count: usize,
}

/// A tool call's result.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    /// The call's id.
    pub call_id: String,
    /// The tool said it failed.
    pub is_error: bool,
    /// Its text parts.
    pub text: String,
    /// The whole result.
    pub result: serde_json::Value,
    /// How long it took.
    pub duration: Duration,
}

/// The MCP connections of agents-agent (cheap to clone).
#[derive(Clone)]
pub struct Manager {
    db: Db,
    locks_dir: PathBuf,
    catalog_dir: PathBuf,
    slots: Arc<Mutex<HashMap<String, Arc<Slot>>>>,
    /// Calls in flight by call id: (serial, abort token).
    calls: Arc<Mutex<HashMap<String, (u64, CancellationToken)>>>,
    /// Held for writing until the orphan sweep is done: no server starts
    /// (and rewrites a lock the sweep has yet to read) before that.
    swept: Arc<tokio::sync::RwLock<()>>,
    /// Notifications servers send, for whoever subscribes.
    events: tokio::sync::broadcast::Sender<ServerNotification>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("locks_dir", &self.locks_dir)
            .finish()
    }
}

impl Manager {
    /// Connections recorded in `db`, stdio servers locked in `locks_dir`,
    /// the person's own definitions in `catalog_dir`.
    pub fn new(db: Db, locks_dir: PathBuf, catalog_dir: PathBuf) -> Self {
        Self {
            db,
            locks_dir,
            catalog_dir,
            slots: Default::default(),
            calls: Default::default(),
            swept: Default::default(),
            events: tokio::sync::broadcast::channel(256).0,
        }
    }

    /// Every notification a connected server sends from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ServerNotification> {
        self.events.subscribe()
    }

    fn slot(&self, name: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(name.to_owned()).or_default().clone()
    }

    fn set_status(&self, name: &str, status: Status, error: &str) {
        let slot = self.slot(name);
        let mut s = slot.status.lock().unwrap_or_else(|e| e.into_inner());
        *s = (Some(status), error.to_owned());
    }

    async fn row(&self, name: &str) -> Result<Row, McpError> {
        let n = name.to_owned();
        self.db
            .read(move |c| store::get(c, &n))
            .await?
            .ok_or_else(|| McpError::NoServer(name.to_owned()))
    }

    async fn state(&self, name: &str, state: ConnectionState, error: &str) -> Result<(), McpError> {
        let (n, e) = (name.to_owned(), error.to_owned());
        self.db
            .write(move |c| store::set_state(c, &n, state, &e))
            .await?;
        Ok(())
    }

    /// Every server with its live status.
    pub async fn list(&self) -> Result<Vec<ServerView>, McpError> {
        let rows = self.db.read(store::all).await?;
        let mut out = Vec::new();
        for r in rows {
            out.push(self.view_of(r).await);
        }
        Ok(out)
    }

    async fn view(&self, name: &str) -> Result<ServerView, McpError> {
        let row = self.row(name).await?;
        Ok(self.view_of(row).await)
    }

    async fn view_of(&self, row: Row) -> ServerView {
        let slot = self.slot(&row.spec.name);
        let (status, error) = slot
            .status
            .lock()
            .map(|s| s.clone())
            .unwrap_or((None, String::new()));
        let conn = slot.conn.try_lock().ok().and_then(|g| g.clone());
        let waiting = row.connection_state == ConnectionState::ConfigRequired.name();
        let status = match (status, row.spec.enabled) {
            (_, false) => Status::Stopped,
            _ if waiting => Status::Stopped,
            (Some(s), true) => s,
            // Enabled, not used since agents-agent started.
            (None, true) if row.last_error.is_empty() => Status::Stopped,
            (None, true) => Status::Error,
        };
        let error = if error.is_empty() && (status == Status::Error || waiting) {
            row.last_error.clone()
        } else {
            error
        };
        ServerView {
            pid: conn.as_ref().and_then(|c| c.pid),
            tool_count: conn
                .as_ref()
                .and_then(|c| c.tools.lock().ok().and_then(|t| t.as_ref().map(Vec::len)))
                .unwrap_or(0),
            row,
            status,
            error,
        }
    }
}
