//! The readiness signal, s6 notification-fd style: the supervisor passes a
//! pipe's write end to the worker and names its descriptor number in
//! `COWORK_READY_FD`; the worker writes one line once it serves its socket
//! and closes the descriptor.

use std::io::{self, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Environment variable naming the inherited readiness descriptor.
pub const READY_FD_ENV: &str = "COWORK_READY_FD";

/// The descriptor number workers inherit the readiness pipe on.
pub const READY_FD: RawFd = 3;

/// Signal readiness to the supervisor, if one is listening. Returns whether a
/// signal was sent. Safe to call once; the descriptor is closed afterwards.
pub fn notify_ready() -> io::Result<bool> {
    let Some(raw) = std::env::var(READY_FD_ENV).ok() else {
        return Ok(false);
    };
    let fd: RawFd = raw.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{READY_FD_ENV}={raw:?} is not a file descriptor number"),
        )
    })?;
    if fd < 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{READY_FD_ENV}={fd} would clobber stdio"),
        ));
    }
    if nix::fcntl::fcntl(unsafe_borrow(fd), nix::fcntl::FcntlArg::F_GETFD).is_err() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{READY_FD_ENV}={fd} is not an open descriptor"),
        ));
    }
    // SAFETY: the descriptor is open (checked above) and was handed to this
    // process for exactly this use; we take ownership and close it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(owned);
    file.write_all(b"READY\n")?;
    Ok(true)
}

fn unsafe_borrow(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: only used for an F_GETFD probe, which is harmless on any
    // descriptor number, open or not.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// Create the readiness pipe for a child: `(read end, write end)`, both
/// close-on-exec. The spawner `dup2`s the write end onto [`READY_FD`] in the
/// child, which clears close-on-exec on the copy only.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}
