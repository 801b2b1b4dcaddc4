//! Chromium's profile lock. A running Chromium holds `SingletonLock` in
//! its profile, a symlink to `<host>-<pid>`; one that was killed leaves it
//! behind, and the next Chromium on that profile refuses to start (or hands
//! its URL to the "running" one and exits). The lock is removed only when
//! it names this host and a pid that is dead or a zombie; a live one, or
//! another host's, is never touched.

use std::path::Path;

/// The files a Chromium profile's lock consists of.
pub const LOCK_FILES: [&str; 3] = ["SingletonLock", "SingletonSocket", "SingletonCookie"];

/// What became of a pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Running.
    Alive,
    /// Exited, not yet reaped.
    Zombie,
    /// No such process.
    Dead,
}

/// What to do with a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Remove it (why).
    Remove(String),
    /// Leave it: a Chromium that is not ours to end holds the profile.
    Held(String),
}

/// Judge the lock whose symlink target is `target`.
pub fn judge(target: &str, this_host: &str, liveness: impl Fn(u32) -> Liveness) -> Verdict {
    let Some((host, pid)) = target.rsplit_once('-') else {
        return Verdict::Held(format!(
            "its SingletonLock points to {target:?}, which is not <host>-<pid>"
        ));
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return Verdict::Held(format!(
            "its SingletonLock points to {target:?}, which is not <host>-<pid>"
        ));
    };
    if host != this_host {
        return Verdict::Held(format!(
            "Chromium on host {host:?} (pid {pid}) holds it; this host is {this_host:?}"
        ));
    }
    match liveness(pid) {
        Liveness::Alive => Verdict::Held(format!("a running Chromium (pid {pid}) holds it")),
        Liveness::Zombie => Verdict::Remove(format!("pid {pid} is a zombie")),
        Liveness::Dead => Verdict::Remove(format!("pid {pid} is gone")),
    }
}

/// This machine's host name, as Chromium writes it.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::process::Command::new("hostname")
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        })
        .unwrap_or_default()
}

/// Whether `pid` runs, is a zombie or is gone.
pub fn liveness(pid: u32) -> Liveness {
    match cowork_proto::lockfile::ProcessIdentity::of(pid) {
        Ok(Some(i)) if i.zombie => Liveness::Zombie,
        Ok(Some(_)) => Liveness::Alive,
        Ok(None) => Liveness::Dead,
        // Unreadable: assume it runs (never touch a live lock).
        Err(_) => Liveness::Alive,
    }
}

/// Before a launch: remove the profile's stale lock. `Ok(Some(why))` when
/// one was removed, `Ok(None)` when there was none, `Err` (a sentence a
/// person can act on) when a live one holds the profile.
pub fn clear_stale(profile: &Path) -> Result<Option<String>, String> {
    let lock = profile.join(LOCK_FILES[0]);
    let target = match std::fs::read_link(&lock) {
        Ok(t) => t.to_string_lossy().into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", lock.display())),
    };
    match judge(&target, &host_name(), liveness) {
        Verdict::Held(why) => Err(format!(
            "the browser profile {} is in use: {why}; close that Chromium first",
            profile.display()
        )),
        Verdict::Remove(why) => {
            for f in LOCK_FILES {
                let p = profile.join(f);
                if let Err(e) = std::fs::remove_file(&p) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(format!("cannot remove {}: {e}", p.display()));
                    }
                }
            }
            Ok(Some(format!(
                "removed a stale SingletonLock ({target}: {why})"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_hosts_dead_or_zombie_pid_is_removed() {
        let l = |pid| match pid {
            1 => Liveness::Alive,
            2 => Liveness::Zombie,
            _ => Liveness::Dead,
        };
        assert!(matches!(judge("vm-3", "vm", l), Verdict::Remove(_)));
        assert!(matches!(judge("vm-2", "vm", l), Verdict::Remove(_)));
        assert!(matches!(judge("vm-1", "vm", l), Verdict::Held(_)));
        assert!(matches!(judge("other-3", "vm", l), Verdict::Held(_)));
        // Host names may hold dashes: the pid is after the last one.
        assert!(matches!(judge("my-box-3", "my-box", l), Verdict::Remove(_)));
        assert!(matches!(judge("garbage", "vm", l), Verdict::Held(_)));
        assert!(matches!(judge("vm-x", "vm", l), Verdict::Held(_)));
    }

    #[test]
    fn a_stale_lock_goes_and_a_live_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(clear_stale(dir.path()), Ok(None));
        let host = host_name();
        // A pid far above pid_max is never alive.
        std::os::unix::fs::symlink(
            format!("{host}-999999999"),
            dir.path().join("SingletonLock"),
        )
        .unwrap();
        std::os::unix::fs::symlink("/nowhere", dir.path().join("SingletonSocket")).unwrap();
        assert!(clear_stale(dir.path()).unwrap().unwrap().contains("gone"));
        assert!(std::fs::symlink_metadata(dir.path().join("SingletonLock")).is_err());
        assert!(std::fs::symlink_metadata(dir.path().join("SingletonSocket")).is_err());
        // Our own pid is alive: untouched.
        let me = std::process::id();
        std::os::unix::fs::symlink(format!("{host}-{me}"), dir.path().join("SingletonLock"))
            .unwrap();
        assert!(clear_stale(dir.path()).unwrap_err().contains("in use"));
        assert!(std::fs::symlink_metadata(dir.path().join("SingletonLock")).is_ok());
    }
}
