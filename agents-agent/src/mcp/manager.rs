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

use super::store::{self, Bundled, Row};
use super::{catalog, ConnectionState, ServerSpec, Status, Transport};
use crate::db::Db;
use cowork_proto::lockfile::{LockRecord, Lockfile};
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig, Implementation};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use std::collections::{BTreeMap, HashMap};
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
    Db(#[from] crate::db::DbError),
}

/// The client side of one connection: clears the cached tool list when the
/// server says it changed.
#[derive(Debug, Clone, Default)]
struct Handler {
    tools: Arc<Mutex<Option<Vec<rmcp::model::Tool>>>>,
}

impl ClientHandler for Handler {
    fn on_tool_list_changed(
        &self,
        _: NotificationContext<RoleClient>,
    ) -> impl std::future::Future<Output = ()> + Send + '_ {
        if let Ok(mut t) = self.tools.lock() {
            *t = None;
        }
        tracing::info!("an MCP server's tool list changed; cache cleared");
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
    pid: Option<u32>,
    lock: Mutex<Option<Lockfile>>,
    last_used: Mutex<Instant>,
    /// Calls running now (a busy server is not pinged).
    in_flight: std::sync::atomic::AtomicUsize,
}

/// Signal a stdio server's whole process group (its leader's pid is the
/// group id), whether or not the leader is still alive.
fn signal_group(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// A just-spawned server's process group and lock, until the connection
/// is made: dropped on any failure (or a cancelled connect), it kills the
/// whole group and only then removes the lock.
struct Spawned {
    pid: Option<u32>,
    lock: Option<Lockfile>,
}

impl Spawned {
    /// The connection is made: hand over the lock.
    fn disarm(mut self) -> Option<Lockfile> {
        self.pid = None;
        self.lock.take()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            signal_group(pid, nix::sys::signal::Signal::SIGKILL);
        }
        if let Some(l) = self.lock.take() {
            l.remove();
        }
    }
}

impl Conn {
    /// Stop the server: close the session, then end its process group
    /// (SIGTERM, then SIGKILL after [`STOP_GRACE`]) and remove its lock.
    fn kill_group(&self) {
        if let Some(pid) = self.pid {
            signal_group(pid, nix::sys::signal::Signal::SIGTERM);
        }
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
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("locks_dir", &self.locks_dir)
            .finish()
    }
}

fn text_of(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.as_str()))
        .collect::<Vec<_>>()
        .join("\n")
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
        }
    }

    /// Reap stdio servers a previous agents-agent left behind (their owner
    /// is gone; identity-checked, so an unrelated process is never killed).
    /// Servers start only once it is done; call it before serving.
    pub fn sweep_orphans(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let guard = self.swept.clone().try_write_owned();
        let dir = self.locks_dir.clone();
        async move {
            sweep(&dir).await;
            drop(guard);
        }
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
            .run(move |c| store::get(c, &n))
            .await?
            .ok_or_else(|| McpError::NoServer(name.to_owned()))
    }

    /// Register a server and connect to it; `secrets` (values of its secret
    /// variables or headers) go to the OS credential store first. The row
    /// is kept when the connection fails (its error shown by `list`), so
    /// `connect` retries.
    pub async fn add(
        &self,
        spec: ServerSpec,
        secrets: BTreeMap<String, String>,
    ) -> Result<ServerView, McpError> {
        self.register(spec, Bundled::default(), secrets, Vec::new(), true)
            .await
    }

    /// The bundled definitions and the person's own (with the problems of
    /// any definition file that could not be read).
    pub async fn catalog(&self) -> (Vec<catalog::Definition>, Vec<String>) {
        let dir = self.catalog_dir.clone();
        tokio::task::spawn_blocking(move || catalog::load(&dir))
            .await
            .unwrap_or_default()
    }

    async fn definition(&self, id: &str) -> Result<catalog::Definition, McpError> {
        let (defs, problems) = self.catalog().await;
        defs.into_iter().find(|d| d.id == id).ok_or_else(|| {
            McpError::Invalid(format!(
                "no bundled MCP server {id:?} (see `coworkctl mcp catalog`){}",
                if problems.is_empty() {
                    String::new()
                } else {
                    format!("; unreadable definitions: {}", problems.join("; "))
                }
            ))
        })
    }

    /// Connect a bundled server (the seed's connection flow): SELECT_SERVICE,
    /// then CONFIG_REQUIRED while a required setting is missing (the server
    /// is kept, waiting for `configure`), AUTHENTICATING (secrets to the
    /// credential store), STARTING_SERVER, SAVING_CONFIG, CONNECTED.
    pub async fn add_bundled(
        &self,
        name: &str,
        catalog_id: &str,
        values: BTreeMap<String, String>,
        approval_policy: &str,
    ) -> Result<ServerView, McpError> {
        let def = self.definition(catalog_id).await?;
        let r =
            catalog::resolve(&def, name, &values, approval_policy).map_err(McpError::Invalid)?;
        let bundled = Bundled {
            catalog_id: def.id.clone(),
            config: r.config,
        };
        self.register(r.spec, bundled, r.secrets, r.missing, true)
            .await
    }

    /// Give a bundled server settings (new values replace old ones; secrets
    /// already stored are kept unless given again) and carry its connection
    /// flow on from there.
    pub async fn configure(
        &self,
        name: &str,
        values: BTreeMap<String, String>,
    ) -> Result<ServerView, McpError> {
        let row = self.row(name).await?;
        if row.bundled.catalog_id.is_empty() {
            return Err(McpError::Invalid(format!(
                "{name} was added by command or URL, not from the catalog; remove it and add \
                 it again to change it"
            )));
        }
        let def = self.definition(&row.bundled.catalog_id).await?;
        let mut merged = row.bundled.config.clone();
        for f in def.config.iter().filter(|f| f.secret) {
            if values.contains_key(&f.key) {
                continue;
            }
            let target = f.env.as_ref().or(f.header.as_ref());
            if let Some(t) = target {
                if let Ok(Some(v)) = crate::secrets::get(&super::secret_name(name, t)) {
                    // Stored with its prefix; resolve adds it again.
                    let bare = v.strip_prefix(&f.value_prefix).unwrap_or(&v).to_owned();
                    merged.insert(f.key.clone(), bare);
                }
            }
        }
        merged.extend(values);
        let r = catalog::resolve(&def, name, &merged, row.spec.approval_policy.name())
            .map_err(McpError::Invalid)?;
        let bundled = Bundled {
            catalog_id: def.id.clone(),
            config: r.config,
        };
        self.close_slot(name).await;
        self.register(r.spec, bundled, r.secrets, r.missing, false)
            .await
    }

    /// The connection flow shared by `add`, `add_bundled` and `configure`.
    async fn register(
        &self,
        spec: ServerSpec,
        bundled: Bundled,
        secrets: BTreeMap<String, String>,
        missing: Vec<catalog::Field>,
        new: bool,
    ) -> Result<ServerView, McpError> {
        let name = spec.name.clone();
        let (n, s, b) = (name.clone(), spec.clone(), bundled.clone());
        let written = self
            .db
            .run(move |c| {
                if new == store::get(c, &n)?.is_some() {
                    return Ok(false);
                }
                store::put(c, &s, &b, ConnectionState::SelectService, "")?;
                Ok(true)
            })
            .await?;
        if !written {
            return Err(if new {
                McpError::Exists(name)
            } else {
                McpError::NoServer(name)
            });
        }
        if !missing.is_empty() {
            let detail = catalog::missing_text(&name, &missing);
            self.state(&name, ConnectionState::ConfigRequired, &detail)
                .await?;
            self.set_status(&name, Status::Stopped, &detail);
            return self.view(&name).await;
        }
        self.state(&name, ConnectionState::Authenticating, "")
            .await?;
        for (var, value) in &secrets {
            if let Err(e) = crate::secrets::put(&super::secret_name(&name, var), value) {
                let reason = format!("cannot keep {var} in the credential store: {e}");
                self.state(&name, ConnectionState::Authenticating, &reason)
                    .await?;
                self.set_status(&name, Status::Error, &reason);
                return Err(McpError::Invalid(reason));
            }
        }
        let _ = self.connect(&name).await;
        self.view(&name).await
    }

    async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), McpError> {
        let n = name.to_owned();
        match self
            .db
            .run(move |c| store::set_enabled(c, &n, enabled))
            .await?
        {
            true => Ok(()),
            false => Err(McpError::NoServer(name.to_owned())),
        }
    }

    /// Close `name`'s connection, if any.
    async fn close_slot(&self, name: &str) {
        let old = self.slot(name).conn.lock().await.take();
        if let Some(old) = old {
            self.close(old).await;
        }
    }

    /// (Re)connect a server and mark it enabled.
    pub async fn connect(&self, name: &str) -> Result<ServerView, McpError> {
        self.set_enabled(name, true).await?;
        let slot = self.slot(name);
        let mut guard = slot.conn.lock().await;
        if let Some(old) = guard.take() {
            self.close(old).await;
        }
        match self.open(name).await {
            Ok(c) => {
                *guard = Some(c);
                drop(guard);
                self.view(name).await
            }
            Err(e) => Err(e),
        }
    }

    /// Close a server's connection and mark it disabled.
    pub async fn disconnect(&self, name: &str) -> Result<ServerView, McpError> {
        self.set_enabled(name, false).await?;
        self.close_slot(name).await;
        self.set_status(name, Status::Stopped, "");
        self.view(name).await
    }

    /// Disconnect and forget a server.
    pub async fn remove(&self, name: &str) -> Result<(), McpError> {
        let row = self.row(name).await?;
        // Off first, so no call reconnects it while it goes.
        self.set_enabled(name, false).await?;
        for var in row.spec.secret_names() {
            if let Err(e) = crate::secrets::delete(&super::secret_name(name, var)) {
                tracing::warn!(error = %e, server = name, "could not delete a secret");
            }
        }
        self.close_slot(name).await;
        if let Ok(mut slots) = self.slots.lock() {
            slots.remove(name);
        }
        let n = name.to_owned();
        self.db.run(move |c| store::remove(c, &n)).await?;
        Ok(())
    }

    /// Close every connection (agents-agent is stopping): SIGTERM each
    /// stdio server's process group without waiting, and leave its lock, so
    /// the next sweep ends whatever did not stop.
    pub fn close_all_now(&self) {
        let slots: Vec<Arc<Slot>> = self
            .slots
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        for slot in slots {
            if let Ok(mut g) = slot.conn.try_lock() {
                if let Some(c) = g.take() {
                    c.kill_group();
                    if let Some(l) = c.lock.lock().ok().and_then(|mut l| l.take()) {
                        std::mem::forget(l);
                    }
                }
            }
        }
    }

    async fn close(&self, conn: Arc<Conn>) {
        conn.service.cancellation_token().cancel();
        if let Some(pid) = conn.pid {
            conn.kill_group();
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline && pid_alive(pid) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Whatever is left of the group (children that outlived the
            // leader included).
            signal_group(pid, nix::sys::signal::Signal::SIGKILL);
        }
        let lock = conn.lock.lock().ok().and_then(|mut l| l.take());
        if let Some(l) = lock {
            l.remove();
        }
    }

    async fn state(&self, name: &str, state: ConnectionState, error: &str) -> Result<(), McpError> {
        let (n, e) = (name.to_owned(), error.to_owned());
        self.db
            .run(move |c| store::set_state(c, &n, state, &e))
            .await?;
        Ok(())
    }

    /// Connect: spawn (stdio) or reach (HTTP) the server, initialize, and
    /// list its tools to check it works; the connection flow's states are
    /// recorded as it goes.
    async fn open(&self, name: &str) -> Result<Arc<Conn>, McpError> {
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
        let handler = Handler::default();
        let tools = handler.tools.clone();
        let (service, pid, spawned) = match &spec.transport {
            Transport::Stdio {
                command,
                env,
                secret_env,
            } => {
                let mut cmd = tokio::process::Command::new(&command[0]);
                for var in secret_env {
                    let name = super::secret_name(&spec.name, var);
                    match crate::secrets::get(&name) {
                        Ok(Some(v)) => {
                            cmd.env(var, v);
                        }
                        Ok(None) => {
                            return Err(format!(
                                "the secret {var} is not in the credential store; add the \
                                 server again with --secret-env {var}"
                            ))
                        }
                        Err(e) => return Err(e.to_string()),
                    }
                }
                // Its own process group, and no parent-death signal: if
                // agents-agent is killed, the group leader stays alive, so
                // the sweep can verify it and end the whole group.
                cmd.args(&command[1..]).envs(env).process_group(0);
                let (proc, _) = rmcp::transport::TokioChildProcess::builder(cmd)
                    .stderr(std::process::Stdio::inherit())
                    .spawn()
                    .map_err(|e| format!("cannot start {}: {e}", command[0]))?;
                let pid = proc.id();
                // Until the lock is written, a failure kills the group too.
                let early = Spawned { pid, lock: None };
                let lock = match pid {
                    Some(pid) => {
                        let (dir, stem, what) = (
                            self.locks_dir.clone(),
                            super::lock_stem(&spec.name),
                            format!("mcp:{}", spec.name),
                        );
                        tokio::task::spawn_blocking(move || {
                            LockRecord::for_child(&what, pid)
                                .and_then(|r| Lockfile::write(&dir, &stem, r))
                        })
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| format!("cannot write the server's lockfile: {e}"))
                        .map(Some)?
                    }
                    None => None,
                };
                let _ = early.disarm();
                let spawned = Spawned { pid, lock };
                let service = handler
                    .serve(proc)
                    .await
                    .map_err(|e| format!("initialize failed: {e}"))?;
                (service, pid, Some(spawned))
            }
            Transport::Http {
                url,
                headers,
                secret_headers,
            } => {
                let mut all = HashMap::new();
                let secret = secret_headers.iter().map(|h| {
                    match crate::secrets::get(&super::secret_name(&spec.name, h)) {
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
        let listed = service
            .list_all_tools()
            .await
            .map_err(|e| format!("tools/list failed: {e}"))?;
        if let Ok(mut t) = tools.lock() {
            *t = Some(listed);
        }
        Ok(Arc::new(Conn {
            service,
            tools,
            pid,
            lock: Mutex::new(spawned.and_then(Spawned::disarm)),
            last_used: Mutex::new(Instant::now()),
            in_flight: Default::default(),
        }))
    }

    /// The live connection to `name`, connecting (once, whoever asks
    /// first) when needed.
    async fn conn(&self, name: &str) -> Result<Arc<Conn>, McpError> {
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

    /// Every server with its live status.
    pub async fn list(&self) -> Result<Vec<ServerView>, McpError> {
        let rows = self.db.run(store::all).await?;
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

    /// A server's tools (the cached list, else listed now).
    pub async fn tools(&self, name: &str) -> Result<Vec<rmcp::model::Tool>, McpError> {
        let c = self.conn(name).await?;
        if let Some(t) = c.tools.lock().ok().and_then(|t| t.clone()) {
            return Ok(t);
        }
        let listed = c
            .service
            .list_all_tools()
            .await
            .map_err(|e| McpError::Call {
                server: name.to_owned(),
                tool: "tools/list".into(),
                reason: e.to_string(),
            })?;
        if let Ok(mut t) = c.tools.lock() {
            *t = Some(listed.clone());
        }
        Ok(listed)
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
            entry: Some(super::store::AuditEntry {
                call_id: call_id.clone(),
                server: server.to_owned(),
                tool: tool.to_owned(),
                arguments_json: serde_json::Value::Object(arguments.clone()).to_string(),
                source: source.to_owned(),
                started_ms: crate::chat_store::now_ms(),
                duration_ms: 0,
                outcome: "cancelled".into(),
                error: "the caller went away".into(),
            }),
        };
        let result = self
            .call_inner(server, tool, arguments, timeout, &call_id, &token)
            .await;
        let (outcome, error) = match &result {
            Ok(o) if o.is_error => ("tool_error", o.text.clone()),
            Ok(_) => ("ok", String::new()),
            Err(McpError::Timeout { .. }) => ("timeout", result_err(&result)),
            Err(McpError::Aborted(_)) => ("aborted", result_err(&result)),
            Err(_) => ("error", result_err(&result)),
        };
        if let Some(e) = record.entry.as_mut() {
            e.outcome = outcome.to_owned();
            e.error = error;
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
                reason: e.to_string(),
            })?;
        Ok(CallOutcome {
            call_id: call_id.to_owned(),
            is_error: r.is_error.unwrap_or(false),
            text: text_of(&r),
            result: serde_json::to_value(&r).unwrap_or_default(),
            duration: Duration::ZERO,
        })
    }
}

/// Reap orphaned MCP servers: only `mcp-*` locks (worker locks are
/// coworkd's to sweep).
async fn sweep(locks_dir: &std::path::Path) {
    match cowork_proto::lockfile::sweep_prefixed(locks_dir, "mcp-").await {
        Ok(r) if !r.killed.is_empty() => {
            tracing::warn!(killed = ?r.killed, "reaped orphaned MCP servers")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "orphan sweep failed"),
    }
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
    entry: Option<super::store::AuditEntry>,
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
            if let Err(e) = db.run(move |c| store::audit(c, &entry)).await {
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

/// Whether a connect failure says the server refused the credentials.
fn refused_credentials(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    ["401", "403", "unauthorized", "forbidden"]
        .iter()
        .any(|w| r.contains(w))
}

fn result_err<T>(r: &Result<T, McpError>) -> String {
    r.as_ref().err().map(|e| e.to_string()).unwrap_or_default()
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| cowork_proto::lockfile::parse_stat(&s).0 != Some('Z'))
        .unwrap_or(false)
}
