//! One Chromium process: started in its own process group with the
//! parent-death signal (a killed browser-agent takes it along), a lockfile
//! in `run/locks/` (coworkd's boot sweep ends one that outlived us), the
//! DevTools websocket address read from its stderr, its last stderr lines
//! kept for the error a person sees, always reaped, and killed by group.

use cowork_proto::lockfile::{LockRecord, Lockfile};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;

/// Lines of Chromium's stderr kept for an error message.
pub const TAIL_LINES: usize = 12;
/// Grace between SIGTERM and SIGKILL when Chromium is closed.
pub const STOP_GRACE: Duration = Duration::from_secs(2);
/// The lockfile's name in `run/locks/`.
pub const LOCK_NAME: &str = "browser-chromium";

/// How to start Chromium.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// The program.
    pub executable: String,
    /// The persistent profile.
    pub profile: PathBuf,
    /// No window.
    pub headless: bool,
    /// Where the lockfile goes.
    pub locks_dir: PathBuf,
}

/// Why Chromium could not be started.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LaunchError {
    /// The program could not be run.
    #[error(
        "cannot run {program}: {error} (install Debian's chromium, or set [browser] executable)"
    )]
    Spawn {
        /// The program.
        program: String,
        /// The OS's reason.
        error: String,
    },
    /// It exited or said nothing usable before its DevTools address.
    #[error("Chromium did not start ({status}){}", tail_suffix(.tail))]
    Exited {
        /// Its exit status, or "still running" when it timed out.
        status: String,
        /// Its last stderr lines.
        tail: String,
    },
    /// The profile is locked by a live Chromium, or its lock is unreadable.
    #[error("{0}")]
    Profile(String),
}

fn tail_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; its last output:\n{tail}")
    }
}

/// How Chromium ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// "exit status: 0", "signal: 9 (SIGKILL)".
    pub status: String,
    /// Its last stderr lines.
    pub tail: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Chromium exited ({}){}",
            self.status,
            tail_suffix(&self.tail)
        )
    }
}

/// The argv for `spec` (the program first).
pub fn argv(spec: &LaunchSpec, root: bool) -> Vec<String> {
    let mut a = vec![
        spec.executable.clone(),
        format!("--user-data-dir={}", spec.profile.display()),
        // DevTools on fds 3 and 4, never on a port another process could
        // reach (crate::devtools).
        "--remote-debugging-pipe".into(),
        "--no-first-run".into(),
        "--no-default-browser-check".into(),
        // This machine's network is closed: no background connections.
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-quic".into(),
        "--disable-default-apps".into(),
        "--disable-breakpad".into(),
        "--disable-dev-shm-usage".into(),
        "--password-store=basic".into(),
        "--use-mock-keychain".into(),
        "--disable-features=Translate,MediaRouter,OptimizationHints".into(),
        "--window-size=1280,800".into(),
    ];
    if spec.headless {
        a.push("--headless=new".into());
        a.push("--disable-gpu".into());
    }
    if root {
        // Chromium's sandbox cannot run as root.
        a.push("--no-sandbox".into());
    }
    a.push("about:blank".into());
    a
}

/// A running Chromium. Dropping it kills the whole group.
#[derive(Debug)]
pub struct Chromium {
    /// The group leader's pid.
    pub pid: u32,
    /// The private websocket in front of its DevTools pipe.
    pub ws_url: String,
    exited: watch::Receiver<Option<Exit>>,
    tail: Arc<Mutex<VecDeque<String>>>,
    lock: Option<Lockfile>,
    /// Killed and reaped (or stopped) already: nothing left to signal.
    ended: bool,
    /// The private websocket in front of its DevTools pipe.
    bridge: Option<crate::devtools::Bridge>,
}

impl Chromium {
    /// How it ended, once it has.
    pub fn exit(&self) -> Option<Exit> {
        self.exited.borrow().clone()
    }

    /// Its last stderr lines.
    pub fn tail_text(&self) -> String {
        tail_text(&self.tail)
    }

    /// Kill the group at once (a hung page, a lost socket) and reap it.
    pub async fn kill(mut self) -> Exit {
        signal_group(self.pid, nix::sys::signal::Signal::SIGKILL);
        let exit = wait_exit(self.exited.clone()).await;
        self.ended = true;
        if let Some(l) = self.lock.take() {
            l.remove();
        }
        exit
    }

    /// Wait up to `limit` for it to exit by itself (after Browser.close:
    /// its network service flushes cookies first, so the group must not be
    /// signalled before).
    pub async fn exited_within(&self, limit: Duration) -> Option<Exit> {
        tokio::time::timeout(limit, wait_exit(self.exited.clone()))
            .await
            .ok()
    }

    /// Close it: SIGTERM to the group, [`STOP_GRACE`], SIGKILL; reaped.
    pub async fn stop(mut self) -> Exit {
        signal_group(self.pid, nix::sys::signal::Signal::SIGTERM);
        let exit = match tokio::time::timeout(STOP_GRACE, wait_exit(self.exited.clone())).await {
            Ok(e) => e,
            Err(_) => {
                signal_group(self.pid, nix::sys::signal::Signal::SIGKILL);
                wait_exit(self.exited.clone()).await
            }
        };
        signal_group(self.pid, nix::sys::signal::Signal::SIGKILL);
        self.ended = true;
        if let Some(l) = self.lock.take() {
            l.remove();
        }
        exit
    }
}

impl Drop for Chromium {
    /// Dropped without [`Chromium::kill`] or [`Chromium::stop`] (an error
    /// on the way, a lockfile that could not be written): the group goes.
    fn drop(&mut self) {
        if !self.ended {
            signal_group(self.pid, nix::sys::signal::Signal::SIGKILL);
        }
        if let Some(l) = self.lock.take() {
            l.remove();
        }
    }
}

fn signal_group(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), sig);
}

async fn wait_exit(mut rx: watch::Receiver<Option<Exit>>) -> Exit {
    loop {
        if let Some(e) = rx.borrow_and_update().clone() {
            return e;
        }
        if rx.changed().await.is_err() {
            return rx.borrow().clone().unwrap_or(Exit {
                status: "unknown".into(),
                tail: String::new(),
            });
        }
    }
}

fn tail_text(tail: &Arc<Mutex<VecDeque<String>>>) -> String {
    tail.lock()
        .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

/// Whether a stderr line is noise a person gains nothing from (this
/// machine has no D-Bus; the wrapper script's shell warning).
fn noise(line: &str) -> bool {
    line.contains("dbus/") || line.contains("unexpected operator")
}

/// Start Chromium with its DevTools on a pipe served as a private
/// websocket ([`crate::devtools`]); an exit within `settle` is an error
/// with its status and last lines.
pub async fn launch(spec: &LaunchSpec, settle: Duration) -> Result<Chromium, LaunchError> {
    match crate::singleton::clear_stale(&spec.profile) {
        Ok(Some(why)) => tracing::warn!(profile = %spec.profile.display(), "{why}"),
        Ok(None) => {}
        Err(why) => return Err(LaunchError::Profile(why)),
    }
    let argv = argv(spec, nix::unistd::geteuid().is_root());
    let spawn_err = |error: String| LaunchError::Spawn {
        program: argv[0].clone(),
        error,
    };
    let (child_ends, parent_ends) =
        crate::devtools::pipes().map_err(|e| spawn_err(format!("no pipe: {e}")))?;
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    cowork_proto::child::own_group_with_parent_death(&mut cmd, nix::sys::signal::Signal::SIGKILL);
    crate::devtools::attach(&mut cmd, &child_ends);
    let spawned = cmd.spawn();
    // Only the child holds its ends now: its exit closes the pipe.
    drop(child_ends);
    let mut child = spawned.map_err(|e| spawn_err(e.to_string()))?;
    let Some(pid) = child.id() else {
        return Err(spawn_err("it exited at once".into()));
    };
    let lock = match LockRecord::for_child(LOCK_NAME, pid)
        .and_then(|r| Lockfile::write(&spec.locks_dir, LOCK_NAME, r))
    {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(error = %e, "no lockfile for Chromium");
            None
        }
    };
    let tail: Arc<Mutex<VecDeque<String>>> = Default::default();
    let (exit_tx, exit_rx) = watch::channel(None);
    let stderr = child.stderr.take();
    let tail2 = tail.clone();
    let reader = tokio::spawn(async move {
        let Some(stderr) = stderr else { return };
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if noise(&line) {
                continue;
            }
            if let Ok(mut t) = tail2.lock() {
                if t.len() == TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line.chars().take(400).collect());
            }
        }
    });
    let tail3 = tail.clone();
    tokio::spawn(async move {
        let status = match child.wait().await {
            Ok(s) => describe(s),
            Err(e) => format!("cannot wait for it: {e}"),
        };
        // Its last words come before the status.
        let _ = tokio::time::timeout(Duration::from_millis(500), reader).await;
        tracing::info!(pid, %status, "Chromium exited");
        let _ = exit_tx.send(Some(Exit {
            status,
            tail: tail_text(&tail3),
        }));
    });
    let mut running = Chromium {
        pid,
        ws_url: String::new(),
        exited: exit_rx,
        tail,
        lock,
        ended: false,
        bridge: None,
    };
    let bridge = match crate::devtools::serve(parent_ends).await {
        Ok(b) => b,
        Err(e) => {
            let _ = running.kill().await;
            return Err(spawn_err(format!("cannot serve its DevTools pipe: {e}")));
        }
    };
    running.ws_url = bridge.ws_url.clone();
    running.bridge = Some(bridge);
    if let Some(e) = running.exited_within(settle).await {
        running.ended = true;
        return Err(LaunchError::Exited {
            status: e.status,
            tail: e.tail,
        });
    }
    tracing::info!(pid, profile = %spec.profile.display(), "Chromium started");
    Ok(running)
}

fn describe(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status: {c}"),
        (None, Some(sig)) => match nix::sys::signal::Signal::try_from(sig) {
            Ok(n) => format!("signal: {sig} ({n})"),
            Err(_) => format!("signal: {sig}"),
        },
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_and_the_devtools_line() {
        let spec = LaunchSpec {
            executable: "chromium".into(),
            profile: "/h/browser-profile".into(),
            headless: true,
            locks_dir: "/h/run/locks".into(),
        };
        let a = argv(&spec, true);
        assert_eq!(a[0], "chromium");
        assert!(a.contains(&"--user-data-dir=/h/browser-profile".to_string()));
        assert!(a.contains(&"--headless=new".to_string()));
        assert!(a.contains(&"--no-sandbox".to_string()));
        assert!(a.contains(&"--disable-background-networking".to_string()));
        let windowed = argv(
            &LaunchSpec {
                headless: false,
                ..spec
            },
            false,
        );
        assert!(!windowed
            .iter()
            .any(|x| x.starts_with("--headless") || x == "--no-sandbox"));
        assert!(a.contains(&"--remote-debugging-pipe".to_string()));
        assert!(!a.iter().any(|x| x.starts_with("--remote-debugging-port")));
    }
}
