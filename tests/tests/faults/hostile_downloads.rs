//! Hostile input 3: a download server that would fill the disk.

use super::{said, SmallDisk, T};
use cowork_e2e::*;
use std::path::Path;
use std::time::{Duration, Instant};

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
    // `models pull` of `path`, known to be 1 MiB: it fails; what it said.
    let pull_mib = |path: &str| {
        let o = s.ctl(&[
            "models",
            "pull",
            &format!("http://127.0.0.1:{}/{path}", zeros.port),
            "--size",
            "1048576",
            "--name",
            &format!("{path}.bin"),
        ]);
        let out = said(&o);
        assert!(!o.status.success(), "{out}");
        out
    };
    // A huge Content-Length is refused before a byte is written.
    let t = Instant::now();
    let out = pull_mib("huge");
    assert!(
        out.contains("announces") && out.contains("1048576"),
        "{out}"
    );
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    // An endless body stops just past the known size.
    let out = pull_mib("endless");
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
