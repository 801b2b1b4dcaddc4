//! stdio servers as processes: each in its own process group with a
//! lockfile naming its leader; stopped by group (SIGTERM, a grace, then
//! SIGKILL); and the sweep that reaps what a killed agents-agent left.

use super::super::{lock_stem, secret_name, ServerSpec};
use super::limits::{self, MAX_LINE};
use super::{Conn, Manager, Slot, STOP_GRACE};
use cowork_proto::lockfile::{LockRecord, Lockfile};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Manager {
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

    /// Start a stdio server in its own process group, with a cleared
    /// environment (the allow-list, its variables and its secrets), and
    /// write its lock. The returned guard kills the group (and removes the
    /// lock) unless the connection is made.
    pub(super) async fn spawn(
        &self,
        spec: &ServerSpec,
        command: &[String],
        env: &BTreeMap<String, String>,
        secret_env: &[String],
    ) -> Result<
        (
            ServerOutput,
            tokio::process::ChildStdin,
            Option<u32>,
            Spawned,
        ),
        String,
    > {
        let mut cmd = tokio::process::Command::new(&command[0]);
        cmd.env_clear()
            .envs(limits::inherited_env(std::env::vars_os()));
        for var in secret_env {
            let name = secret_name(&spec.name, var);
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
        cmd.args(&command[1..])
            .envs(env)
            .process_group(0)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", command[0]))?;
        let pid = child.id();
        let (Some(stdout), Some(stdin)) = (child.stdout.take(), child.stdin.take()) else {
            return Err("the server's stdio could not be opened".into());
        };
        // Until the lock is written, a failure kills the group too.
        let early = Spawned { pid, lock: None };
        let lock = match pid {
            Some(pid) => {
                let (dir, stem, what) = (
                    self.locks_dir.clone(),
                    lock_stem(&spec.name),
                    format!("mcp:{}", spec.name),
                );
                tokio::task::spawn_blocking(move || {
                    LockRecord::for_child(&what, pid).and_then(|r| Lockfile::write(&dir, &stem, r))
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
        let output = ServerOutput {
            stdout,
            _child: child,
            since_newline: 0,
            broken: Default::default(),
        };
        Ok((output, stdin, pid, spawned))
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

    pub(super) async fn close(&self, conn: Arc<Conn>) {
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
}

/// A stdio server's stdout, read by the MCP session: a line over
/// [`MAX_LINE`] fails the connection (and says so in `broken`) instead of
/// growing a buffer. It owns the child, which is killed when the session
/// ends.
pub(super) struct ServerOutput {
    stdout: tokio::process::ChildStdout,
    _child: tokio::process::Child,
    since_newline: usize,
    /// Why the connection failed here, for the caller's error.
    pub(super) broken: Arc<std::sync::Mutex<Option<String>>>,
}

impl tokio::io::AsyncRead for ServerOutput {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.stdout).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = r {
            match limits::line_after(self.since_newline, &buf.filled()[before..]) {
                Some(n) => self.since_newline = n,
                None => {
                    let why = format!(
                        "the server wrote over {} MiB without a newline",
                        MAX_LINE >> 20
                    );
                    if let Ok(mut b) = self.broken.lock() {
                        *b = Some(why.clone());
                    }
                    return std::task::Poll::Ready(Err(std::io::Error::other(why)));
                }
            }
        }
        r
    }
}

/// Signal a stdio server's whole process group (its leader's pid is the
/// group id), whether or not the leader is still alive.
fn signal_group(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// A just-spawned server's process group and lock, until the connection
/// is made: dropped on any failure (or a cancelled connect), it kills the
/// whole group and only then removes the lock.
pub(super) struct Spawned {
    pid: Option<u32>,
    lock: Option<Lockfile>,
}

impl Spawned {
    /// The connection is made: hand over the lock.
    pub(super) fn disarm(mut self) -> Option<Lockfile> {
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
    pub(super) fn kill_group(&self) {
        if let Some(pid) = self.pid {
            signal_group(pid, nix::sys::signal::Signal::SIGTERM);
        }
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

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| cowork_proto::lockfile::parse_stat(&s).0 != Some('Z'))
        .unwrap_or(false)
}
