//! The fault suite: what a killed or frozen process, a full disk, a
//! corrupt file or a hostile engine, server, client or file does to the
//! suite, tried against the real binaries. Each test records its row of
//! docs/RELIABILITY.md (`record_fault`) only after its assertions pass:
//! the fault, how many times it was tried, and what was lost.
//!
//! - `hostile_gateway`: a redirecting engine, a flood of idle sockets,
//!   the docs without the key;
//! - `hostile_relay`: a client that never reads its streams;
//! - `hostile_downloads`: endless and oversized bodies, a small disk;
//! - `hostile_capture`: a live edit that breaks `[capture]`, a secret
//!   typed across the chunk cap, a full disk under capture;
//! - `hostile_paths`: a link planted where the socket directory goes;
//! - `hostile_mcp`: a server that reads our environment, one that writes
//!   1 GiB without a newline;
//! - `hostile_engine`: an answer whose one line never ends;
//! - `kills`: kill -9 and SIGSTOP of each process under load;
//! - `files`: a corrupt WAL, a cowork.db that is not a database, a
//!   config.toml of binary garbage.

mod files;
mod hostile_capture;
mod hostile_downloads;
mod hostile_engine;
mod hostile_gateway;
mod hostile_mcp;
mod hostile_paths;
mod hostile_relay;
mod kills;

use std::time::Duration;

/// How long a worker may take to come up.
pub const T: Duration = Duration::from_secs(30);

/// A config with one OpenAI-style engine at `port` (probing off).
pub fn engine_config(id: &str, port: u16) -> String {
    format!(
        "[agents]\nprobe_ports = false\n[[agents.engines]]\nid = \"{id}\"\n\
         base_url = \"http://127.0.0.1:{port}/v1\"\napi = \"openai\"\n"
    )
}

/// Turn the gateway on at a free port; (port, key).
pub fn gateway_on(s: &cowork_e2e::Suite) -> (u16, String) {
    let port = cowork_e2e::free_port();
    cowork_e2e::ok(&s.ctl(&["gateway", "enable", "--port", &port.to_string()]));
    let key = cowork_e2e::ok(&s.ctl(&["gateway", "key"]))
        .trim()
        .to_owned();
    cowork_e2e::wait_until(Duration::from_secs(10), "the gateway listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (port, key)
}

/// Resident memory of a process, MiB.
pub fn rss_mib(pid: u32) -> u64 {
    cowork_e2e::proc_rss_bytes(pid) >> 20
}

/// stdout and stderr of a command, together.
pub fn said(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A tmpfs of `mib` MiB mounted (as root) at a new directory, unmounted
/// on drop.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn new(mib: u32) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cowork-small-disk-")
            .tempdir()
            .expect("mount point");
        let st = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            st.success(),
            "mounting a {mib} MiB tmpfs needs root (these fault tests run as root here)"
        );
        Self { dir }
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn free_mib(&self) -> u64 {
        let s = nix::sys::statvfs::statvfs(self.path()).expect("statvfs");
        (s.blocks_available() * s.fragment_size()) >> 20
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
