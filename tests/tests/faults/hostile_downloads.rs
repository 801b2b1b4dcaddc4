//! Hostile input 3: a download server that would fill the disk.

use super::{said, T};
use cowork_e2e::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// A tmpfs of `mib` MiB mounted (as root) at a new directory, unmounted
/// on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(mib: u32) -> Self {
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

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn free_mib(&self) -> u64 {
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

fn leftovers(models: &Path) -> Vec<String> {
    std::fs::read_dir(models)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_and_oversized_bodies_stop_at_the_known_size_and_leave_nothing() {
    let zeros = hostile("zeros", &[]);
    let s = Suite::start("");
    s.wait_state("agents", "running", T).await;
    let models = s.paths.models_dir();
    // A huge Content-Length is refused before a byte is written.
    let t = Instant::now();
    let huge = s.ctl(&[
        "models",
        "pull",
        &format!("http://127.0.0.1:{}/huge", zeros.port),
        "--size",
        "1048576",
        "--name",
        "huge.bin",
    ]);
    let out = said(&huge);
    assert!(!huge.status.success(), "{out}");
    assert!(
        out.contains("announces") && out.contains("1048576"),
        "{out}"
    );
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    // An endless body stops just past the known size.
    let endless = s.ctl(&[
        "models",
        "pull",
        &format!("http://127.0.0.1:{}/endless", zeros.port),
        "--size",
        "1048576",
        "--name",
        "endless.bin",
    ]);
    let out = said(&endless);
    assert!(!endless.status.success(), "{out}");
    assert!(out.contains("more than the 1048576 bytes"), "{out}");
    assert!(leftovers(&models).is_empty(), "{:?}", leftovers(&models));
    record_fault(
        "downloads: a server announces 1 TiB / streams without end for a 1 MiB file",
        2,
        "nothing (refused at once / stopped past 1 MiB; no partial file kept)",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_on_a_small_disk_keeps_the_floor_free_and_a_full_disk_keeps_no_partial() {
    let disk = SmallDisk::new(64);
    let zeros = hostile("zeros", &[]);
    let home = tempfile::Builder::new()
        .prefix("home-")
        .tempdir_in(disk.path())
        .expect("home on the small disk");
    let s = Suite::start_in(home, "");
    s.wait_state("agents", "running", T).await;
    let models = s.paths.models_dir();
    let url = format!("http://127.0.0.1:{}/endless", zeros.port);
    let before = disk.free_mib();
    // No size known: the default floor (5 % of 64 MiB) stops it.
    let o = s.ctl(&["models", "pull", &url, "--name", "floor.bin"]);
    let out = said(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("not enough disk space") && out.contains("free_space_floor_mib"),
        "{out}"
    );
    assert!(out.contains("deleted"), "{out}");
    assert!(leftovers(&models).is_empty(), "{:?}", leftovers(&models));
    assert!(
        disk.free_mib() + 2 >= before,
        "{} MiB free of {before}",
        disk.free_mib()
    );
    // With no floor, it stops when what it holds would not fit (or when a
    // write fails with ENOSPC, had something else filled the disk first),
    // and the partial goes too.
    s.write_config(&format!(
        "[agents]\nprobe_ports = false\nfree_space_floor_mib = 0\n[[agents.engines]]\n\
         id = \"standin\"\nbase_url = \"http://127.0.0.1:{}/v1\"\n",
        model_list_standin()
    ));
    let o = s.ctl(&["models", "pull", &url, "--name", "full.bin"]);
    let out = said(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        (out.contains("No space left") || out.contains("not enough disk space"))
            && out.contains("deleted"),
        "{out}"
    );
    assert!(leftovers(&models).is_empty(), "{:?}", leftovers(&models));
    assert!(
        disk.free_mib() + 2 >= before,
        "{} MiB free of {before}",
        disk.free_mib()
    );
    // agents-agent goes on.
    ok(&s.ctl(&["models", "list"]));
    record_fault(
        "downloads: a body without end on a 64 MiB filesystem (floor on, floor off)",
        2,
        "nothing (stopped at the floor / before the disk filled; the partial deleted, the space back)",
    );
}
