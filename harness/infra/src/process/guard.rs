use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::{Pid, getpgid};

use super::{POLL_INTERVAL, PidFd};
use crate::InfraError;

/// How long drop waits for a SIGKILLed child before leaving it to the system.
const REAP_DEADLINE: Duration = Duration::from_secs(5);

/// A child process that is killed (SIGKILL to its process group) and reaped on drop.
///
/// The exit is only *observed* (`waitid` with `WNOWAIT`) until drop, so while the guard
/// lives the pid and process group id cannot be reused by an unrelated process: signals and
/// the final group kill always reach the right processes.
#[derive(Debug)]
pub struct ChildGuard {
    child: Inner,
    pid: Pid,
    program: String,
    own_group: bool,
    exited: Option<ExitStatus>,
}

#[derive(Debug)]
enum Inner {
    Std(std::process::Child),
    Tokio(tokio::process::Child),
}

impl ChildGuard {
    /// Guards a child spawned with `std::process::Command`. `program` names it in errors.
    pub fn from_std(child: std::process::Child, program: impl Into<String>) -> Self {
        let pid = Pid::from_raw(child.id().cast_signed());
        Self::new(Inner::Std(child), pid, program.into())
    }

    /// Guards a child spawned with `tokio::process::Command`. `program` names it in errors.
    ///
    /// # Panics
    /// If the child was already awaited to completion (it has no pid left to guard).
    pub fn from_tokio(child: tokio::process::Child, program: impl Into<String>) -> Self {
        let pid = child
            .id()
            .expect("ChildGuard::from_tokio needs a child that has not been awaited yet");
        Self::new(
            Inner::Tokio(child),
            Pid::from_raw(pid.cast_signed()),
            program.into(),
        )
    }

    fn new(child: Inner, pid: Pid, program: String) -> Self {
        // Spawn returns after exec, so a process group set up in pre_exec is already in place.
        let own_group = getpgid(Some(pid)).is_ok_and(|group| group == pid);
        Self {
            child,
            pid,
            program,
            own_group,
            exited: None,
        }
    }

    pub fn id(&self) -> u32 {
        self.pid.as_raw().cast_unsigned()
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The name used for this child in errors and forwarded output.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// Sends `sig` to the process; a failure is logged, not returned (see [`Self::try_signal`]).
    pub fn signal(&self, sig: Signal) {
        if let Err(err) = self.try_signal(sig) {
            tracing::warn!("failed to {}", crate::error::chain(&err));
        }
    }

    /// Sends `sig` to the process. Harmless after it exited: it stays a zombie until drop.
    pub fn try_signal(&self, sig: Signal) -> Result<(), InfraError> {
        kill(self.pid, sig).map_err(|source| InfraError::Signal {
            program: self.program.clone(),
            pid: self.pid.as_raw(),
            signal: sig,
            source,
        })
    }

    /// Sends `sig` to the child's whole process group (just the child if it has none).
    pub fn signal_group(&self, sig: Signal) -> Result<(), InfraError> {
        let sent = if self.own_group {
            killpg(self.pid, sig)
        } else {
            kill(self.pid, sig)
        };
        sent.map_err(|source| InfraError::Signal {
            program: self.program.clone(),
            pid: self.pid.as_raw(),
            signal: sig,
            source,
        })
    }

    /// The exit status if the child has exited, without waiting.
    pub fn try_exit_status(&mut self) -> Result<Option<ExitStatus>, InfraError> {
        if self.exited.is_none() {
            self.exited = peek_exit(self.pid).map_err(|source| self.wait_error(source))?;
        }
        Ok(self.exited)
    }

    /// Waits for the child to exit, for at most `deadline`.
    pub async fn wait_exit(&mut self, deadline: Duration) -> Result<ExitStatus, InfraError> {
        let until = tokio::time::Instant::now() + deadline;
        let pidfd = PidFd::open(self.pid).ok();
        loop {
            if let Some(status) = self.try_exit_status()? {
                return Ok(status);
            }
            if tokio::time::Instant::now() >= until {
                return Err(self.timeout_error(deadline));
            }
            match &pidfd {
                // The pidfd turns readable at exit; the loop then reads the status.
                Some(fd) => {
                    if let Ok(Err(_)) = tokio::time::timeout_at(until, fd.exited()).await {
                        tokio::time::sleep(POLL_INTERVAL).await;
                    }
                }
                None => tokio::time::sleep(POLL_INTERVAL).await,
            }
        }
    }

    /// Like [`Self::wait_exit`], blocking the current thread (for code outside a runtime).
    pub fn wait_exit_blocking(&mut self, deadline: Duration) -> Result<ExitStatus, InfraError> {
        let until = std::time::Instant::now() + deadline;
        let pidfd = PidFd::open(self.pid).ok();
        loop {
            if let Some(status) = self.try_exit_status()? {
                return Ok(status);
            }
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(self.timeout_error(deadline));
            }
            match pidfd.as_ref().map(|fd| fd.wait_blocking(left)) {
                Some(Ok(_)) => {}
                _ => std::thread::sleep(POLL_INTERVAL.min(left)),
            }
        }
    }

    fn wait_error(&self, source: std::io::Error) -> InfraError {
        InfraError::Wait {
            program: self.program.clone(),
            pid: self.pid.as_raw(),
            source,
        }
    }

    fn timeout_error(&self, deadline: Duration) -> InfraError {
        InfraError::ExitTimeout {
            program: self.program.clone(),
            pid: self.pid.as_raw(),
            deadline,
        }
    }

    fn reap(&mut self) -> std::io::Result<Option<ExitStatus>> {
        match &mut self.child {
            Inner::Std(child) => child.try_wait(),
            Inner::Tokio(child) => child.try_wait(),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Not reaped yet, so the group id still belongs to this child's group.
        if self.own_group {
            let _ = killpg(self.pid, Signal::SIGKILL);
        }
        let _ = kill(self.pid, Signal::SIGKILL);
        if let Ok(fd) = PidFd::open(self.pid) {
            let _ = fd.wait_blocking(REAP_DEADLINE);
        }
        match self.reap() {
            Ok(Some(_)) => {}
            // Tokio hands a dropped unreaped child to its orphan reaper; a std child stays a
            // zombie, which is all that is left of it.
            Ok(None) => tracing::warn!(
                pid = self.pid.as_raw(),
                "{} did not exit within {REAP_DEADLINE:?} of SIGKILL",
                self.program
            ),
            Err(err) => tracing::warn!(
                pid = self.pid.as_raw(),
                "failed to reap {}: {err}",
                self.program
            ),
        }
    }
}

/// The exit status of an exited child, leaving it a zombie so its pid stays reserved.
fn peek_exit(pid: Pid) -> std::io::Result<Option<ExitStatus>> {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    let status = loop {
        match waitid(Id::Pid(pid), flags) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other?,
        }
    };
    Ok(match status {
        WaitStatus::Exited(_, code) => Some(ExitStatus::from_raw((code & 0xff) << 8)),
        WaitStatus::Signaled(_, sig, core) => {
            let core = if core { 0x80 } else { 0 };
            Some(ExitStatus::from_raw(sig as i32 | core))
        }
        _ => None,
    })
}
