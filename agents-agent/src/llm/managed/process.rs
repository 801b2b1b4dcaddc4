//! One `llama-server` process: started in its own process group with the
//! parent-death signal, a cleared environment that carries its API key
//! (never its argv), and a lockfile in `run/locks/` naming it; its output
//! read into a [`Tail`]; ready when `/health` answers 200, failed with its
//! exit status and last lines; stopped by group (SIGTERM, a grace,
//! SIGKILL) and always reaped.

use super::args::{self, Spec};
use super::output::{read_line, Said, Tail};
use cowork_proto::lockfile::{LockRecord, Lockfile};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::watch;

/// How long a stopping server gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// The longest output line kept (the rest of the line is dropped).
const MAX_LINE: usize = 64 << 10;

/// Lockfile names of sessions start with this (agents-agent's sweep
/// reaps `llama-*` locks; coworkd's sweeps every lock).
pub const LOCK_PREFIX: &str = "llama-";

/// Why a server could not be started or made ready.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StartError {
    /// The settings do not make an argv.
    #[error(transparent)]
    Args(#[from] args::ArgsError),
    /// The program could not be run at all.
    #[error("cannot run {server}: {error} (install llama.cpp's llama-server, or set [agents.llama] server to its path)")]
    Spawn {
        /// The program.
        server: String,
        /// The OS's reason.
        error: String,
    },
    /// The lockfile could not be written.
    #[error("cannot write the session's lockfile: {0}")]
    Lock(String),
    /// The server exited before it was ready.
    #[error("llama-server exited before it was ready ({status}){}", tail_text(.tail))]
    Exited {
        /// Its exit status.
        status: String,
        /// Its last output lines.
        tail: String,
    },
    /// The server did not become ready in time (it was stopped).
    #[error("llama-server was not ready within {}s and was stopped{}", .after.as_secs(), tail_text(.tail))]
    Timeout {
        /// The time allowed.
        after: Duration,
        /// Its last output lines.
        tail: String,
    },
}

fn tail_text(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; its last output:\n{tail}")
    }
}

/// How a server ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Its exit status ("exit status: 1", "signal: 9 (SIGKILL)").
    pub status: String,
    /// Its last output lines.
    pub tail: String,
}

/// A started server. Dropping it kills the whole group.
#[derive(Debug)]
pub struct Running {
    /// The group leader's pid.
    pub pid: u32,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The key it requires (`Authorization: Bearer`).
    pub key: String,
    /// When it was started.
    pub started: Instant,
    exited: watch::Receiver<Option<Exit>>,
    tail: Arc<Mutex<Tail>>,
    lock: Option<Lockfile>,
}

impl Running {
    /// How it ended, once it has.
    pub fn exit(&self) -> Option<Exit> {
        self.exited.borrow().clone()
    }

    /// Wait until it ends.
    pub async fn exited(&self) -> Exit {
        wait_exit(self.exit_watch()).await
    }

    /// Where its end is announced (for a supervisor that does not hold
    /// it).
    pub fn exit_watch(&self) -> watch::Receiver<Option<Exit>> {
        self.exited.clone()
    }

    /// Its last output lines.
    pub fn tail_text(&self) -> String {
        self.tail.lock().map(|t| t.text()).unwrap_or_default()
    }

    /// Stop it: SIGTERM to the group, [`STOP_GRACE`], SIGKILL; then remove
    /// its lock.
    pub async fn stop(mut self) -> Exit {
        signal_group(self.pid, nix::sys::signal::Signal::SIGTERM);
        let exit = match tokio::time::timeout(STOP_GRACE, self.exited()).await {
            Ok(e) => e,
            Err(_) => {
                signal_group(self.pid, nix::sys::signal::Signal::SIGKILL);
                self.exited().await
            }
        };
        // Whatever else is left of the group.
        signal_group(self.pid, nix::sys::signal::Signal::SIGKILL);
        if let Some(l) = self.lock.take() {
            l.remove();
        }
        exit
    }

    /// agents-agent is stopping: SIGTERM the group without waiting, and
    /// leave the lock, so the next sweep ends whatever did not stop.
    pub fn stop_now(mut self) {
        signal_group(self.pid, nix::sys::signal::Signal::SIGTERM);
        if let Some(l) = self.lock.take() {
            std::mem::forget(l);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(l) = self.lock.take() {
            signal_group(self.pid, nix::sys::signal::Signal::SIGKILL);
            l.remove();
        }
    }
}

/// Start `server` with `spec` (its port already chosen), waiting up to
/// `ready_timeout` for `/health` to answer 200.
pub async fn start(
    server: &str,
    spec: &Spec,
    locks_dir: &Path,
    ready_timeout: Duration,
) -> Result<Running, StartError> {
    let argv = args::build(server, spec)?;
    let key = crate::util::random_key("cowork-llama").map_err(|e| StartError::Spawn {
        server: server.into(),
        error: format!("no random key: {e}"),
    })?;
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(args::child_env(std::env::vars_os()))
        .env(args::API_KEY_ENV, &key)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    cowork_proto::child::own_group_with_parent_death(&mut cmd, nix::sys::signal::Signal::SIGTERM);
    let mut child = cmd.spawn().map_err(|e| StartError::Spawn {
        server: argv[0].clone(),
        error: e.to_string(),
    })?;
    let Some(pid) = child.id() else {
        return Err(StartError::Spawn {
            server: argv[0].clone(),
            error: "it exited at once".into(),
        });
    };
    let tail: Arc<Mutex<Tail>> = Default::default();
    let (said_tx, mut said) = tokio::sync::mpsc::unbounded_channel();
    if let Some(out) = child.stdout.take() {
        tokio::spawn(read_output(out, tail.clone(), said_tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(read_output(err, tail.clone(), said_tx));
    }
    let (exit_tx, exited) = watch::channel(None);
    let waiter_tail = tail.clone();
    tokio::spawn(async move {
        let status = match child.wait().await {
            Ok(s) => describe(s),
            Err(e) => format!("cannot wait for it: {e}"),
        };
        // Let the readers take in its last lines.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let tail = waiter_tail.lock().map(|t| t.text()).unwrap_or_default();
        let _ = exit_tx.send(Some(Exit { status, tail }));
    });
    let (dir, stem, what) = (
        locks_dir.to_path_buf(),
        format!("{LOCK_PREFIX}{}", spec.port),
        format!("llama:{}", spec.alias),
    );
    let lock = tokio::task::spawn_blocking(move || {
        LockRecord::for_child(&what, pid).and_then(|r| Lockfile::write(&dir, &stem, r))
    })
    .await
    .map_err(|e| StartError::Lock(e.to_string()))
    .and_then(|r| r.map_err(|e| StartError::Lock(e.to_string())));
    let lock = match lock {
        Ok(l) => l,
        Err(e) => {
            signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            return Err(e);
        }
    };
    let mut running = Running {
        pid,
        port: spec.port,
        key,
        started: Instant::now(),
        exited,
        tail,
        lock: Some(lock),
    };
    let deadline = tokio::time::Instant::now() + ready_timeout;
    loop {
        if let Some(e) = running.exit() {
            if let Some(l) = running.lock.take() {
                l.remove();
            }
            return Err(StartError::Exited {
                status: e.status,
                tail: e.tail,
            });
        }
        if health_ok(spec.port).await {
            return Ok(running);
        }
        if tokio::time::Instant::now() >= deadline {
            let tail = running.tail_text();
            running.stop().await;
            return Err(StartError::Timeout {
                after: ready_timeout,
                tail,
            });
        }
        // A ready line checks health at once; otherwise every 50 ms.
        let wait = tokio::time::sleep(Duration::from_millis(50));
        tokio::select! {
            _ = wait => {}
            s = said.recv() => {
                if let Some(Said::Failed(why)) = s {
                    tracing::warn!(port = spec.port, %why, "llama-server reports a failure");
                }
            }
        }
    }
}

/// Wait until the server behind `rx` ends.
pub async fn wait_exit(mut rx: watch::Receiver<Option<Exit>>) -> Exit {
    loop {
        if let Some(e) = rx.borrow_and_update().clone() {
            return e;
        }
        if rx.changed().await.is_err() {
            return Exit {
                status: "its waiter is gone".into(),
                tail: String::new(),
            };
        }
    }
}

/// Send `sig` to the group `pid` leads, whether or not the leader lives.
fn signal_group(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), sig);
}

fn describe(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => match nix::sys::signal::Signal::try_from(sig) {
            Ok(name) => format!("killed by signal {sig} ({name})"),
            Err(_) => format!("killed by signal {sig}"),
        },
        _ => s.to_string(),
    }
}

/// Read a stream of the server's output line by line (each cut at
/// [`MAX_LINE`]) into the tail, the tracing log and `said`.
async fn read_output(
    out: impl AsyncRead + Unpin,
    tail: Arc<Mutex<Tail>>,
    said: tokio::sync::mpsc::UnboundedSender<Said>,
) {
    let mut r = BufReader::new(out);
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut long = false;
        loop {
            let buf = match r.fill_buf().await {
                Ok([]) | Err(_) => return,
                Ok(b) => b,
            };
            let (take, end) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            let room = MAX_LINE.saturating_sub(line.len());
            long |= take > room;
            line.extend_from_slice(&buf[..take.min(room)]);
            r.consume(take);
            if end {
                break;
            }
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if text.is_empty() {
            continue;
        }
        tracing::debug!(target: "llama_server", line = %text, long);
        if let Ok(mut t) = tail.lock() {
            t.push(text);
        }
        let _ = said.send(read_line(text));
    }
}

/// Does `GET /health` on 127.0.0.1:`port` answer 200 (llama-server
/// answers 503 while it loads the model)?
pub async fn health_ok(port: u16) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        let mut got = 0;
        while got < head.len() {
            let n = tokio::io::AsyncReadExt::read(&mut s, &mut head[got..]).await?;
            if n == 0 {
                break;
            }
            got += n;
        }
        Ok::<_, std::io::Error>(head[..got].starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Ok(true))
    )
}

/// A free port on 127.0.0.1 (the OS's choice; the server binds it a
/// moment later, and a lost race fails that start with "couldn't bind").
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
