//! Where Cowork keeps its files, computed the same way by every process.
//!
//! ```text
//! $COWORK_HOME/
//!   config.toml   logs/   run/ (0700: sockets, locks/)   models/
//! ```
//! Sockets live in `run/` unless the resulting path would not fit in
//! `sun_path` (108 bytes on Linux, 104 on macOS); then they move to a short
//! per-user directory named after a hash of the home path.

use sha2::{Digest, Sha256};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Environment variable naming the Cowork home directory.
pub const HOME_ENV: &str = "COWORK_HOME";

/// Longest socket path we accept, leaving room for the NUL terminator on
/// the platform with the smaller `sun_path`.
#[cfg(target_os = "macos")]
pub const MAX_SOCKET_PATH: usize = 103;
/// Longest socket path we accept, leaving room for the NUL terminator.
#[cfg(not(target_os = "macos"))]
pub const MAX_SOCKET_PATH: usize = 107;

/// The longest socket file name we place in a socket directory.
const LONGEST_SOCKET_NAME: &str = "capture.sock";

/// The resolved layout of one Cowork home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoworkPaths {
    /// `$COWORK_HOME`.
    pub home: PathBuf,
    /// `$COWORK_HOME/run`, mode 0700.
    pub run_dir: PathBuf,
    /// `$COWORK_HOME/run/locks`, one JSON lockfile per child process.
    pub locks_dir: PathBuf,
    /// Where sockets live: `run_dir`, or a short per-user directory.
    pub socket_dir: PathBuf,
    /// `$COWORK_HOME/logs`, one log per process.
    pub logs_dir: PathBuf,
}

impl CoworkPaths {
    /// Resolve the home directory: `explicit` (a `--home` flag) wins, then
    /// `$COWORK_HOME`, then the platform default.
    pub fn resolve(explicit: Option<&Path>) -> io::Result<Self> {
        let home = match explicit {
            Some(p) => p.to_path_buf(),
            None => match std::env::var_os(HOME_ENV) {
                Some(v) if !v.is_empty() => PathBuf::from(v),
                _ => default_home()?,
            },
        };
        let home = if home.is_absolute() {
            home
        } else {
            std::env::current_dir()?.join(home)
        };
        Ok(Self::for_home(home))
    }

    /// The layout under a given (absolute) home directory.
    pub fn for_home(home: PathBuf) -> Self {
        let run_dir = home.join("run");
        let socket_dir = socket_dir_for(&home, &run_dir);
        Self {
            locks_dir: run_dir.join("locks"),
            logs_dir: home.join("logs"),
            run_dir,
            socket_dir,
            home,
        }
    }

    /// Create the directories with their modes (run/ and the socket
    /// directory 0700). Safe to call repeatedly.
    pub fn create_dirs(&self) -> io::Result<()> {
        std::fs::create_dir_all(&self.home)?;
        std::fs::create_dir_all(&self.logs_dir)?;
        for dir in [&self.run_dir, &self.locks_dir] {
            create_private_dir(dir)?;
        }
        if self.socket_dir != self.run_dir {
            // The short directory lives in a shared temp dir: every level we
            // create there must be a real directory that we own, or another
            // user could pre-create it and receive our connections.
            // Nothing is changed before a level is checked: a link planted
            // there is refused, never followed by a chmod.
            if let Some(parent) = self.socket_dir.parent() {
                create_owned_private_dir(parent)?;
            }
            create_owned_private_dir(&self.socket_dir)?;
        }
        Ok(())
    }

    /// `config.toml` in the home directory.
    pub fn config_file(&self) -> PathBuf {
        self.home.join("config.toml")
    }

    /// `ui-token` in the home directory (0600): the web UI's per-install
    /// token, the value of its cookie. `coworkctl ui --reset` replaces it.
    pub fn ui_token_file(&self) -> PathBuf {
        self.home.join("ui-token")
    }

    /// `mcp/catalog.d/` in the home directory: the person's own MCP server
    /// definitions (JSON), next to the bundled ones.
    pub fn mcp_catalog_dir(&self) -> PathBuf {
        self.home.join("mcp").join("catalog.d")
    }

    /// Installed apps: `apps/<id>/` each (agents-agent writes nothing of
    /// an install elsewhere).
    pub fn apps_dir(&self) -> PathBuf {
        self.home.join("apps")
    }

    /// `$COWORK_HOME/audio`: the audio stream's segment files (written by
    /// capture-agent, deleted by agents-agent once transcribed).
    pub fn audio_dir(&self) -> PathBuf {
        self.home.join("audio")
    }

    /// `models/` in the home directory: downloaded model files. Downloads
    /// never write outside it.
    pub fn models_dir(&self) -> PathBuf {
        self.home.join("models")
    }

    /// The public socket coworkd serves.
    pub fn public_socket(&self) -> PathBuf {
        self.socket_dir.join("cowork.sock")
    }

    /// The socket a worker serves, e.g. `capture.sock`.
    pub fn worker_socket(&self, worker: &str) -> PathBuf {
        self.socket_dir.join(format!("{worker}.sock"))
    }

    /// The log file of a process, e.g. `logs/capture.log`.
    pub fn log_file(&self, process: &str) -> PathBuf {
        self.logs_dir.join(format!("{process}.log"))
    }

    /// The single-instance lock of coworkd.
    pub fn instance_lock(&self) -> PathBuf {
        self.run_dir.join("coworkd.pid")
    }
}

/// Create `dir` (and parents) and force mode 0700 on it.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Create `dir` (one level, mode 0700) in a directory others can write
/// to, or take the one there if it is ours: opened without following a
/// link, checked to be a real directory owned by us (on the open handle,
/// so it cannot be swapped in between), and only then set to 0700.
pub fn create_owned_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let refuse = || {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a directory owned by uid {}; remove it and start again",
                dir.display(),
                nix::unistd::geteuid()
            ),
        )
    };
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW)
        .open(dir)
        .map_err(|e| match e.raw_os_error() {
            Some(nix::libc::ELOOP) | Some(nix::libc::ENOTDIR) => refuse(),
            _ => e,
        })?;
    let meta = handle.metadata()?;
    if !meta.is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(refuse());
    }
    if meta.mode() & 0o777 != 0o700 {
        handle.set_permissions(std::fs::Permissions::from_mode(0o700))?;
    }
    check_owned_dir(dir)
}

/// Refuse a directory that is a symlink, is not ours, or is open to others.
fn check_owned_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir)?;
    let uid = nix::unistd::geteuid().as_raw();
    if !meta.file_type().is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a private directory owned by uid {uid}; remove it and start again",
                dir.display()
            ),
        ));
    }
    Ok(())
}

fn socket_dir_for(home: &Path, run_dir: &Path) -> PathBuf {
    let longest = run_dir.join(LONGEST_SOCKET_NAME);
    if longest.as_os_str().len() <= MAX_SOCKET_PATH {
        return run_dir.to_path_buf();
    }
    let digest = Sha256::digest(home.as_os_str().as_encoded_bytes());
    let short: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let uid = nix::unistd::getuid();
    std::env::temp_dir()
        .join(format!("cowork-{uid}"))
        .join(short)
}

/// The platform default home: `~/Library/Application Support/cowork-ai` on
/// macOS, `$XDG_DATA_HOME/cowork` (or `~/.local/share/cowork`) elsewhere.
pub fn default_home() -> io::Result<PathBuf> {
    let user_home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "neither COWORK_HOME nor HOME is set; pass --home DIR",
            )
        })?;
    if cfg!(target_os = "macos") {
        return Ok(user_home.join("Library/Application Support/cowork-ai"));
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| user_home.join(".local/share"));
    Ok(data.join("cowork"))
}

/// An audio segment file's name in [`CoworkPaths::audio_dir`],
/// `seg-<started_ms>-<ended_ms>.wav`: capture-agent writes it (the times
/// let a file whose row a crash lost be recorded again), agents-agent reads
/// only files whose name parses. Pure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentName {
    /// Start, Unix ms.
    pub started_ms: i64,
    /// End, Unix ms.
    pub ended_ms: i64,
}

impl SegmentName {
    /// The file name.
    pub fn file_name(&self) -> String {
        format!("seg-{}-{}.wav", self.started_ms, self.ended_ms)
    }

    /// Parse a file name (None for anything else).
    pub fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("seg-")?.strip_suffix(".wav")?;
        let (a, b) = rest.split_once('-')?;
        let started_ms = a.parse::<i64>().ok()?;
        let ended_ms = b.parse::<i64>().ok()?;
        (started_ms >= 0 && ended_ms >= started_ms).then_some(Self {
            started_ms,
            ended_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_home_keeps_sockets_in_run_dir() {
        let p = CoworkPaths::for_home(PathBuf::from("/tmp/h"));
        assert_eq!(p.public_socket(), PathBuf::from("/tmp/h/run/cowork.sock"));
        assert_eq!(p.locks_dir, PathBuf::from("/tmp/h/run/locks"));
    }

    #[test]
    fn long_home_moves_sockets_to_a_short_stable_dir() {
        let long = PathBuf::from(format!("/tmp/{}", "x".repeat(150)));
        let a = CoworkPaths::for_home(long.clone());
        let b = CoworkPaths::for_home(long);
        assert_eq!(a.socket_dir, b.socket_dir, "every process must agree");
        assert!(a.worker_socket("capture").as_os_str().len() <= MAX_SOCKET_PATH);
        let other = CoworkPaths::for_home(PathBuf::from(format!("/tmp/{}", "y".repeat(150))));
        assert_ne!(a.socket_dir, other.socket_dir);
    }

    #[test]
    fn a_symlinked_or_shared_socket_dir_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(check_owned_dir(&link).is_err());
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(check_owned_dir(&real).is_err());
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(check_owned_dir(&real).is_ok());
    }

    #[test]
    fn a_link_planted_where_the_socket_dir_goes_is_refused_and_not_chmodded() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        std::fs::create_dir(&victim).unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o755)).unwrap();
        let planted = t.path().join("cowork-0");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let err = create_owned_private_dir(&planted).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        assert!(err.to_string().contains("remove it"), "{err}");
        let mode = std::fs::metadata(&victim).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o755, "the link's target was changed");
        // A file there is refused too; a fresh or own directory is fine
        // and ends up 0700.
        let file = t.path().join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(create_owned_private_dir(&file).is_err());
        let fresh = t.path().join("fresh");
        create_owned_private_dir(&fresh).unwrap();
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_owned_private_dir(&fresh).unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn segment_names_round_trip_and_nothing_else_parses() {
        let n = SegmentName {
            started_ms: 1_700_000_000_000,
            ended_ms: 1_700_000_004_500,
        };
        assert_eq!(n.file_name(), "seg-1700000000000-1700000004500.wav");
        assert_eq!(SegmentName::parse(&n.file_name()), Some(n));
        for bad in [
            "seg-1-2.wav.tmp",
            "seg-2-1.wav",
            "seg--1-2.wav",
            "seg-1.wav",
            "../seg-1-2.wav",
            "notes.wav",
            "seg-a-b.wav",
        ] {
            assert_eq!(SegmentName::parse(bad), None, "{bad}");
        }
    }
}
