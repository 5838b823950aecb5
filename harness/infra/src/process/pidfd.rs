//! Waiting for a process to exit as an event (pidfd), with a /proc polling fallback for
//! kernels or sandboxes without `pidfd_open`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::unistd::Pid;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::POLL_INTERVAL;
use crate::procfs;

/// A file descriptor that becomes readable when its process exits.
pub(crate) struct PidFd(OwnedFd);

impl PidFd {
    pub(crate) fn open(pid: Pid) -> io::Result<Self> {
        // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = i32::try_from(fd).map_err(io::Error::other)?;
        // SAFETY: the kernel just returned this descriptor; nothing else owns it.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Blocks until the process has exited or `timeout` has passed; true if it exited.
    pub(crate) fn wait_blocking(&self, timeout: Duration) -> io::Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let millis = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
            let mut pfd = libc::pollfd {
                fd: self.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, and its count.
            match unsafe { libc::poll(&mut pfd, 1, millis) } {
                n if n > 0 => return Ok(true),
                0 => return Ok(false),
                _ => {
                    let err = io::Error::last_os_error();
                    if err.kind() != io::ErrorKind::Interrupted {
                        return Err(err);
                    }
                }
            }
        }
    }

    /// Resolves when the process has exited.
    pub(crate) async fn exited(&self) -> io::Result<()> {
        // SAFETY: the borrowed descriptor stays open for the whole (local) life of `fd`.
        let fd = unsafe { AsyncFd::register_with_interest(self.0.as_fd(), Interest::READABLE) }?;
        let _ready = fd.readable().await?;
        Ok(())
    }
}

/// Blocks until the process `pid` (not necessarily our child) has exited, for at most
/// `deadline`. True if it is gone (or a zombie); false if it still runs at the deadline.
pub fn wait_until_gone(pid: u32, deadline: Duration) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return true;
    };
    match PidFd::open(Pid::from_raw(raw)) {
        Ok(fd) => match fd.wait_blocking(deadline) {
            Ok(exited) => exited,
            Err(_) => poll_until_gone(pid, deadline),
        },
        Err(err) if err.raw_os_error() == Some(libc::ESRCH) => true,
        Err(_) => poll_until_gone(pid, deadline),
    }
}

fn poll_until_gone(pid: u32, deadline: Duration) -> bool {
    let until = Instant::now() + deadline;
    loop {
        if procfs::stat(pid).is_none_or(|s| s.is_dead()) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
