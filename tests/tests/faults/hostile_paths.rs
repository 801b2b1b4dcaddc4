//! Hostile input 8: a link planted where the short socket directory goes.

use cowork_e2e::*;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn a_planted_link_at_the_socket_directory_is_refused_and_its_target_untouched() {
    // A home too long for sun_path puts the sockets in /tmp/cowork-UID/…
    let base = Suite::temp_home();
    let home = base.path().join("h".repeat(120));
    std::fs::create_dir_all(&home).expect("long home");
    let paths = cowork_proto::paths::CoworkPaths::for_home(home.clone());
    assert_ne!(paths.socket_dir, paths.run_dir, "the home is long enough");
    if let Some(parent) = paths.socket_dir.parent() {
        cowork_proto::paths::create_owned_private_dir(parent).expect("parent");
    }
    let victim = tempfile::tempdir().expect("victim");
    std::fs::set_permissions(victim.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let _ = std::fs::remove_dir_all(&paths.socket_dir);
    let _ = std::fs::remove_file(&paths.socket_dir);
    std::os::unix::fs::symlink(victim.path(), &paths.socket_dir).expect("plant the link");
    let _cleanup = Remove(paths.socket_dir.clone());
    let mut child = Command::new(bin("coworkd"))
        .arg("--home")
        .arg(&home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn coworkd");
    let status = wait_child(&mut child, Duration::from_secs(15));
    let mut err = String::new();
    use std::io::Read;
    let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
    assert!(!status.success(), "coworkd started through a planted link");
    assert!(err.contains("not a directory owned by"), "{err}");
    let mode = std::fs::metadata(victim.path())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o755, "the link's target was chmod-ed");
    assert_eq!(
        std::fs::read_dir(victim.path()).unwrap().count(),
        0,
        "something was created there"
    );
    record_fault(
        "paths: another user plants a link where the short socket directory goes",
        1,
        "nothing (refused before any chmod; the target untouched)",
    );
}

struct Remove(std::path::PathBuf);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
