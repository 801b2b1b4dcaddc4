//! Children that must not outlive the process that started them: each in
//! a process group of its own (so it and everything it starts can be
//! signalled at once) with a parent-death signal on Linux.

use nix::sys::signal::Signal;

/// Make `cmd`'s child lead its own process group and get `death` when
/// this process dies (Linux); the spawn fails when this process died
/// before the signal was armed.
pub fn own_group_with_parent_death(cmd: &mut tokio::process::Command, death: Signal) {
    let parent = nix::unistd::getpid();
    // SAFETY: between fork and exec only async-signal-safe syscalls.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0))?;
            #[cfg(target_os = "linux")]
            {
                nix::sys::prctl::set_pdeathsig(death)?;
                // The parent may have died before prctl took effect.
                if nix::unistd::getppid() != parent {
                    return Err(std::io::Error::other("the parent exited during spawn"));
                }
            }
            #[cfg(not(target_os = "linux"))]
            let _ = (parent, death);
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_child_leads_its_own_group() {
        let mut cmd = tokio::process::Command::new("sleep");
        cmd.arg("5").kill_on_drop(true);
        own_group_with_parent_death(&mut cmd, Signal::SIGKILL);
        let child = cmd.spawn().unwrap();
        let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
        assert_eq!(nix::unistd::getpgid(Some(pid)).unwrap(), pid);
    }
}
