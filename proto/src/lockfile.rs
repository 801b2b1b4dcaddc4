//! Lockfiles for every child process that can outlive its parent, and the
//! identity-checked orphan sweep (seed: Jan's MCP lockfiles, with the child
//! pid recorded and PID reuse ruled out).
//!
//! One JSON file per child in `$COWORK_HOME/run/locks/`:
//! `{"childPid", "executablePath", "argvHash", "startTime", "ownerPid", ...}`.
//! `argvHash` is the hex SHA-256 of the argv elements joined by NUL bytes;
//! `startTime` is field 22 of `/proc/PID/stat` (clock ticks since boot).
//!
//! The sweep kills a recorded child only when its owner is gone and the live
//! process with that pid has the recorded executable, argv hash and start
//! time; otherwise it only deletes the stale lock. coworkd sweeps at boot;
//! agents-agent uses the same module for stdio MCP servers.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long [`LockRecord::for_child`] waits for a fresh child's argv to
/// appear.
pub const EXEC_SETTLE: Duration = Duration::from_millis(200);

/// Grace between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(3);

/// Errors from reading or writing lockfiles.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lockfile could not be read, written or removed.
    #[error("lockfile {path}: {source}")]
    Io {
        /// The lockfile.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The lockfile is not valid JSON of the expected shape.
    #[error("lockfile {path} is malformed: {source}")]
    Malformed {
        /// The lockfile.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The child's identity could not be read from the OS.
    #[error("cannot read the identity of pid {pid}: {source}")]
    Identity {
        /// The child pid.
        pid: u32,
        /// The underlying error.
        source: io::Error,
    },
}

/// What a lockfile records about one child process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockRecord {
    /// The child's pid.
    pub child_pid: u32,
    /// The child's executable, as the OS reports it (`/proc/PID/exe`).
    pub executable_path: String,
    /// Hex SHA-256 of the child's argv joined by NUL bytes.
    pub argv_hash: String,
    /// The child's start time (field 22 of `/proc/PID/stat`), where known.
    #[serde(default)]
    pub start_time: Option<u64>,
    /// The pid of the process that spawned and owns the child.
    pub owner_pid: u32,
    /// The owner's start time, so a reused owner pid is not taken as alive.
    #[serde(default)]
    pub owner_start_time: Option<u64>,
    /// What the child is ("worker:capture", "mcp:time", ...).
    #[serde(default)]
    pub name: String,
    /// When the lock was written, milliseconds since the Unix epoch.
    #[serde(default)]
    pub created_at_unix_ms: u64,
}

/// Hex SHA-256 of argv elements joined by NUL bytes.
pub fn argv_hash<A: AsRef<[u8]>>(argv: &[A]) -> String {
    let mut h = Sha256::new();
    for (i, a) in argv.iter().enumerate() {
        if i > 0 {
            h.update([0u8]);
        }
        h.update(a.as_ref());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Who a live process is, as the OS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessIdentity {
    /// Executable path (`/proc/PID/exe`, without a " (deleted)" suffix).
    pub executable_path: String,
    /// [`argv_hash`] of `/proc/PID/cmdline`.
    pub argv_hash: String,
    /// Field 22 of `/proc/PID/stat`.
    pub start_time: Option<u64>,
    /// Whether the process is a zombie (dead, not yet reaped).
    pub zombie: bool,
    /// How many argv elements `/proc/PID/cmdline` held (0 while a fresh
    /// child is still inside `execve`).
    pub argc: usize,
}

impl ProcessIdentity {
    /// Read the identity of `pid`; `Ok(None)` when no such process exists.
    #[cfg(target_os = "linux")]
    pub fn of(pid: u32) -> io::Result<Option<Self>> {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        let stat = match std::fs::read_to_string(proc_dir.join("stat")) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let (state, start_time) = parse_stat(&stat);
        let exe = std::fs::read_link(proc_dir.join("exe"))
            .map(|p| {
                let s = p.to_string_lossy().into_owned();
                s.strip_suffix(" (deleted)").map(str::to_owned).unwrap_or(s)
            })
            .unwrap_or_default();
        let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
        let trimmed = cmdline.strip_suffix(&[0u8]).unwrap_or(&cmdline);
        let args: Vec<&[u8]> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split(|b| *b == 0).collect()
        };
        Ok(Some(Self {
            executable_path: exe,
            argv_hash: argv_hash(&args),
            start_time,
            zombie: state == Some('Z'),
            argc: args.len(),
        }))
    }

    /// Read the identity of `pid`; `Ok(None)` when no such process exists.
    /// Outside Linux only existence is known, so identity never matches and
    /// the sweep never kills (it only removes locks of dead children).
    #[cfg(not(target_os = "linux"))]
    pub fn of(pid: u32) -> io::Result<Option<Self>> {
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok();
        Ok(alive.then(|| Self {
            executable_path: String::new(),
            argv_hash: String::new(),
            start_time: None,
            zombie: false,
            argc: 0,
        }))
    }
}

/// State letter and start time (field 22) from a `/proc/PID/stat` line. The
/// command name (field 2) may contain spaces and parentheses, so fields are
/// counted after its last `)`.
pub fn parse_stat(stat: &str) -> (Option<char>, Option<u64>) {
    let Some(close) = stat.rfind(')') else {
        return (None, None);
    };
    let mut rest = stat[close + 1..].split_whitespace();
    let state = rest.next().and_then(|s| s.chars().next());
    // `rest` started at field 3; field 22 is 19 further on.
    let start = rest.nth(18).and_then(|s| s.parse().ok());
    (state, start)
}

impl LockRecord {
    /// Describe a just-spawned child, reading its identity from the OS, owned
    /// by the calling process.
    ///
    /// A spawner resumes while the child is still finishing `execve`, when
    /// `/proc/PID/cmdline` can read empty; the read is retried for up to
    /// [`EXEC_SETTLE`] so the recorded argv hash is the program's.
    pub fn for_child(name: &str, child_pid: u32) -> Result<Self, LockError> {
        let read = || {
            ProcessIdentity::of(child_pid)
                .and_then(|i| i.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound)))
                .map_err(|source| LockError::Identity {
                    pid: child_pid,
                    source,
                })
        };
        let settle_until = std::time::Instant::now() + EXEC_SETTLE;
        let mut ident = read()?;
        while ident.argc == 0 && !ident.zombie && std::time::Instant::now() < settle_until {
            std::thread::sleep(Duration::from_millis(1));
            ident = read()?;
        }
        let owner_pid = std::process::id();
        let owner_start_time = ProcessIdentity::of(owner_pid)
            .ok()
            .flatten()
            .and_then(|i| i.start_time);
        Ok(Self {
            child_pid,
            executable_path: ident.executable_path,
            argv_hash: ident.argv_hash,
            start_time: ident.start_time,
            owner_pid,
            owner_start_time,
            name: name.to_owned(),
            created_at_unix_ms: unix_ms(),
        })
    }

    /// Which identity fields of `live` differ from this record.
    pub fn differences(&self, live: &ProcessIdentity) -> Vec<&'static str> {
        let mut d = Vec::new();
        if live.executable_path != self.executable_path {
            d.push("executable");
        }
        if live.argv_hash != self.argv_hash {
            d.push("argv");
        }
        if self.start_time.is_some() && live.start_time != self.start_time {
            d.push("start time");
        }
        d
    }

    /// Whether the live process `live` is the child this record describes.
    pub fn matches(&self, live: &ProcessIdentity) -> bool {
        !live.zombie
            && !live.executable_path.is_empty()
            && live.executable_path == self.executable_path
            && live.argv_hash == self.argv_hash
            && match (self.start_time, live.start_time) {
                (Some(a), Some(b)) => a == b,
                (None, _) => true,
                (Some(_), None) => false,
            }
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A written lockfile; removing it (explicitly or on drop) marks the child
/// as cleanly gone.
#[derive(Debug)]
pub struct Lockfile {
    path: PathBuf,
    record: LockRecord,
    removed: bool,
}

impl Lockfile {
    /// Write `record` to `dir/<file_stem>.json` atomically (temp + rename).
    pub fn write(dir: &Path, file_stem: &str, record: LockRecord) -> Result<Self, LockError> {
        let path = dir.join(format!("{}.json", sanitize(file_stem)));
        write_atomically(&path, &record)?;
        Ok(Self {
            path,
            record,
            removed: false,
        })
    }

    /// Replace the record in place, e.g. after the child exec'd into the
    /// program that now runs.
    pub fn update(&mut self, record: LockRecord) -> Result<(), LockError> {
        write_atomically(&self.path, &record)?;
        self.record = record;
        Ok(())
    }

    /// The lockfile's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the lockfile records.
    pub fn record(&self) -> &LockRecord {
        &self.record
    }

    /// Delete the lockfile now.
    pub fn remove(mut self) {
        self.remove_now();
    }

    fn remove_now(&mut self) {
        if !self.removed {
            self.removed = true;
            if let Err(e) = std::fs::remove_file(&self.path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %self.path.display(), error = %e, "could not remove lockfile");
                }
            }
        }
    }
}

impl Drop for Lockfile {
    fn drop(&mut self) {
        self.remove_now();
    }
}

fn write_atomically(path: &Path, record: &LockRecord) -> Result<(), LockError> {
    let io_err = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let json = serde_json::to_vec_pretty(record).map_err(|e| io_err(e.into()))?;
    std::fs::write(&tmp, json).map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(io_err)
}

fn sanitize(stem: &str) -> String {
    stem.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Read one lockfile.
pub fn read(path: &Path) -> Result<LockRecord, LockError> {
    let bytes = std::fs::read(path).map_err(|source| LockError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| LockError::Malformed {
        path: path.to_path_buf(),
        source,
    })
}

/// What the sweep decides for one lockfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepDecision {
    /// The owner is gone and the recorded child is alive and verified: kill it.
    KillOrphan,
    /// The owner still runs: the child is not an orphan; leave lock and child.
    OwnerAlive,
    /// Nothing to kill (child gone, or pid reused by another process):
    /// delete the lock only. The string says why.
    RemoveStale(String),
}

/// Decide what to do with one lock, given what the OS says now. Pure.
pub fn decide(
    record: &LockRecord,
    owner: Option<&ProcessIdentity>,
    child: Option<&ProcessIdentity>,
) -> SweepDecision {
    let owner_alive = owner.is_some_and(|o| {
        !o.zombie
            && match (record.owner_start_time, o.start_time) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    });
    if owner_alive {
        return SweepDecision::OwnerAlive;
    }
    match child {
        None => SweepDecision::RemoveStale("child is gone".into()),
        Some(c) if c.zombie => SweepDecision::RemoveStale("child is a zombie".into()),
        Some(c) if record.matches(c) => SweepDecision::KillOrphan,
        Some(c) => SweepDecision::RemoveStale(format!(
            "pid {} now belongs to another process ({}; differs in {})",
            record.child_pid,
            c.executable_path,
            record.differences(c).join(", ")
        )),
    }
}

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Orphans killed (pid, lock name).
    pub killed: Vec<(u32, String)>,
    /// Stale locks removed without killing anything.
    pub removed_stale: Vec<PathBuf>,
    /// Locks left alone because their owner still runs.
    pub left_alone: Vec<PathBuf>,
    /// Malformed lockfiles removed.
    pub malformed: Vec<PathBuf>,
}

/// Sweep every `*.json` lockfile in `dir`: kill verified orphans (SIGTERM,
/// [`KILL_GRACE`], SIGKILL, concurrently) and delete their locks and stale
/// ones. Locks whose owner still runs are left alone. Passes repeat while
/// they kill something, so the children of an orphan killed in one pass
/// (an orphaned agents-agent's MCP servers) are reaped in the next.
pub async fn sweep(dir: &Path) -> io::Result<SweepReport> {
    sweep_prefixed(dir, "").await
}

/// [`sweep`], only over lockfiles whose file name starts with `prefix`: a
/// process sweeps the locks of its own kind of children (agents-agent:
/// `mcp-`), never another supervisor's.
pub async fn sweep_prefixed(dir: &Path, prefix: &str) -> io::Result<SweepReport> {
    let mut report = SweepReport::default();
    for _ in 0..4 {
        let pass = sweep_once(dir, prefix).await?;
        let killed_any = !pass.killed.is_empty();
        report.killed.extend(pass.killed);
        report.removed_stale.extend(pass.removed_stale);
        report.malformed.extend(pass.malformed);
        report.left_alone = pass.left_alone;
        if !killed_any {
            break;
        }
    }
    Ok(report)
}

async fn sweep_once(dir: &Path, prefix: &str) -> io::Result<SweepReport> {
    let mut report = SweepReport::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(e),
    };
    let mut kills = tokio::task::JoinSet::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json")
            || !path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        {
            continue;
        }
        let record = match read(&path) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "removing malformed lockfile");
                let _ = std::fs::remove_file(&path);
                report.malformed.push(path);
                continue;
            }
        };
        let owner = ProcessIdentity::of(record.owner_pid).ok().flatten();
        let child = ProcessIdentity::of(record.child_pid).ok().flatten();
        match decide(&record, owner.as_ref(), child.as_ref()) {
            SweepDecision::OwnerAlive => {
                tracing::info!(lock = %path.display(), owner = record.owner_pid, "owner alive; lock left alone");
                report.left_alone.push(path);
            }
            SweepDecision::RemoveStale(why) => {
                tracing::info!(lock = %path.display(), %why, "removing stale lock");
                let _ = std::fs::remove_file(&path);
                report.removed_stale.push(path);
            }
            SweepDecision::KillOrphan => {
                tracing::warn!(pid = record.child_pid, name = %record.name, "killing orphan");
                kills.spawn(async move {
                    terminate_verified(&record, KILL_GRACE).await;
                    let _ = std::fs::remove_file(&path);
                    (record.child_pid, record.name)
                });
            }
        }
    }
    while let Some(done) = kills.join_next().await {
        if let Ok(k) = done {
            report.killed.push(k);
        }
    }
    Ok(report)
}

/// SIGTERM (and SIGCONT, so a stopped process can act on it) to the child
/// and, when it leads one, its process group; poll every 100 ms; SIGKILL
/// after `grace`. Re-verifies the identity before every signal so a pid that
/// dies and is reused meanwhile is never hit.
pub async fn terminate_verified(record: &LockRecord, grace: Duration) {
    use nix::sys::signal::Signal;
    let still_ours = || {
        ProcessIdentity::of(record.child_pid)
            .ok()
            .flatten()
            .is_some_and(|i| record.matches(&i))
    };
    if !still_ours() {
        return;
    }
    signal_tree(record.child_pid, Signal::SIGTERM);
    signal_tree(record.child_pid, Signal::SIGCONT);
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !still_ours() {
            return;
        }
    }
    if still_ours() {
        signal_tree(record.child_pid, Signal::SIGKILL);
    }
}

/// Send `sig` to `pid`, and to its process group when it leads one.
pub fn signal_tree(pid: u32, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    if nix::unistd::getpgid(Some(pid)).is_ok_and(|g| g == pid) {
        let _ = nix::sys::signal::killpg(pid, sig);
    }
    let _ = nix::sys::signal::kill(pid, sig);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(exe: &str, argv: &[&str], start: u64) -> ProcessIdentity {
        ProcessIdentity {
            executable_path: exe.into(),
            argv_hash: argv_hash(argv),
            start_time: Some(start),
            zombie: false,
            argc: argv.len(),
        }
    }

    fn record() -> LockRecord {
        LockRecord {
            child_pid: 4242,
            executable_path: "/usr/bin/sleep".into(),
            argv_hash: argv_hash(&["sleep", "100"]),
            start_time: Some(77),
            owner_pid: 1000,
            owner_start_time: Some(5),
            name: "worker:test".into(),
            created_at_unix_ms: 0,
        }
    }

    #[test]
    fn argv_hash_joins_with_nul() {
        // sha256("a\0b"), computed independently with Python's hashlib.
        assert_eq!(
            argv_hash(&["a", "b"]),
            "59b271ae1bbcb1d31d41929817f4b16fb439eb4f31520b5ad1d5ce98920a7138"
        );
        assert_ne!(argv_hash(&["ab"]), argv_hash(&["a", "b"]));
        assert_ne!(argv_hash(&["a b"]), argv_hash(&["a", "b"]));
    }

    #[test]
    fn field_names_are_the_seed_contract() {
        let json = serde_json::to_value(record()).unwrap();
        for key in [
            "childPid",
            "executablePath",
            "argvHash",
            "startTime",
            "ownerPid",
        ] {
            assert!(json.get(key).is_some(), "missing {key}: {json}");
        }
    }

    #[test]
    fn kills_only_a_verified_orphan() {
        let r = record();
        let child = ident("/usr/bin/sleep", &["sleep", "100"], 77);
        assert_eq!(decide(&r, None, Some(&child)), SweepDecision::KillOrphan);
    }

    #[test]
    fn live_owner_means_not_an_orphan() {
        let r = record();
        let owner = ident("/x/coworkd", &["coworkd"], 5);
        let child = ident("/usr/bin/sleep", &["sleep", "100"], 77);
        assert_eq!(
            decide(&r, Some(&owner), Some(&child)),
            SweepDecision::OwnerAlive
        );
    }

    #[test]
    fn reused_owner_pid_is_not_the_owner() {
        let r = record();
        let impostor = ident("/usr/bin/bash", &["bash"], 999);
        let child = ident("/usr/bin/sleep", &["sleep", "100"], 77);
        assert_eq!(
            decide(&r, Some(&impostor), Some(&child)),
            SweepDecision::KillOrphan
        );
    }

    #[test]
    fn pid_reuse_is_never_killed() {
        let r = record();
        for other in [
            ident("/usr/bin/sleep", &["sleep", "100"], 78), // other start time
            ident("/usr/bin/sleep", &["sleep", "999"], 77), // other argv
            ident("/usr/bin/python3", &["sleep", "100"], 77), // other exe
        ] {
            assert!(matches!(
                decide(&r, None, Some(&other)),
                SweepDecision::RemoveStale(_)
            ));
        }
        assert!(matches!(
            decide(&r, None, None),
            SweepDecision::RemoveStale(_)
        ));
        let mut zombie = ident("/usr/bin/sleep", &["sleep", "100"], 77);
        zombie.zombie = true;
        assert!(matches!(
            decide(&r, None, Some(&zombie)),
            SweepDecision::RemoveStale(_)
        ));
    }

    #[test]
    fn stat_parsing_survives_hostile_command_names() {
        let mut fields: Vec<String> = (3..=30).map(|i| i.to_string()).collect();
        fields[0] = "S".into();
        let line = format!("123 (evil) (name) 9 9) {}", fields.join(" "));
        assert_eq!(parse_stat(&line), (Some('S'), Some(22)));
        assert_eq!(parse_stat("garbage"), (None, None));
        assert_eq!(parse_stat("1 (x) R"), (Some('R'), None));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_own_identity() {
        let me = ProcessIdentity::of(std::process::id()).unwrap().unwrap();
        assert_eq!(
            me.executable_path,
            std::env::current_exe().unwrap().to_string_lossy()
        );
        assert!(me.start_time.is_some());
        let argv: Vec<String> = std::env::args().collect();
        assert_eq!(me.argv_hash, argv_hash(&argv));
    }

    #[tokio::test]
    async fn sweep_removes_malformed_and_stale_locks_and_keeps_live_owners() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.json"), b"{not json").unwrap();
        let mut stale = record();
        stale.child_pid = u32::MAX - 7; // no such process
        stale.owner_pid = u32::MAX - 8;
        std::mem::forget(Lockfile::write(dir.path(), "stale", stale).unwrap());
        let mut owned = record();
        owned.owner_pid = std::process::id();
        owned.owner_start_time = None;
        std::mem::forget(Lockfile::write(dir.path(), "owned", owned).unwrap());
        let report = sweep(dir.path()).await.unwrap();
        assert_eq!(report.malformed.len(), 1);
        assert_eq!(report.removed_stale.len(), 1);
        assert_eq!(report.left_alone.len(), 1);
        assert!(report.killed.is_empty());
        assert!(dir.path().join("owned.json").exists());
        assert!(!dir.path().join("stale.json").exists());
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn an_orphans_own_children_are_reaped_in_a_later_pass() {
        let dir = tempfile::tempdir().unwrap();
        // An orphaned "agents-agent" (owner dead) that owns an "MCP server".
        let mut agent = std::process::Command::new("sleep")
            .arg("301")
            .spawn()
            .unwrap();
        let mut server = std::process::Command::new("sleep")
            .arg("302")
            .spawn()
            .unwrap();
        let mut a = LockRecord::for_child("worker:agents", agent.id()).unwrap();
        a.owner_pid = u32::MAX - 3;
        a.owner_start_time = None;
        let mut m = LockRecord::for_child("mcp:time", server.id()).unwrap();
        m.owner_pid = agent.id();
        m.owner_start_time = a.start_time;
        std::mem::forget(Lockfile::write(dir.path(), "worker-agents", a).unwrap());
        std::mem::forget(Lockfile::write(dir.path(), "mcp-time", m).unwrap());
        // Reap each as it dies so it does not linger as a zombie.
        let reaper = std::thread::spawn(move || (agent.wait().unwrap(), server.wait().unwrap()));
        let report = sweep(dir.path()).await.unwrap();
        let (a_exit, s_exit) = reaper.join().unwrap();
        assert!(!a_exit.success() && !s_exit.success());
        let names: Vec<&str> = report.killed.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["worker:agents", "mcp:time"]);
        assert!(report.left_alone.is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
