//! Spawning container processes, signalling them, and observing their exits.
//!
//! Every process leads its own process group, so a SIGKILL reaches whatever it forked too,
//! and carries `PR_SET_PDEATHSIG(SIGKILL)`, so it never outlives the runtime. The kernel
//! fires that signal when the *thread* that forked the child exits, so every spawn happens
//! on one dedicated thread that lives exactly as long as the runtime.
//!
//! An exit is observed without reaping (pidfd, or `waitid(WNOWAIT)`): until the process is
//! reaped its pid, and so its process group id, cannot be recycled, so the supervisor can
//! still signal the group and record the exit before the pid is released.

use std::ffi::OsString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;

/// Docker's `PATH` for an image that sets none; used when the runtime itself has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to run for one incarnation of a container.
#[derive(Debug, Clone)]
pub(crate) struct ProcessSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The process's whole environment, in order: a later entry wins.
    pub env: Vec<(OsString, OsString)>,
    /// stdout and stderr are also written here (appended) when set, else to the
    /// runtime's stderr; the runtime reads them from pipes ([`crate::logs`]).
    pub log_file: Option<PathBuf>,
}

/// The `PATH` a container gets before its image and request add their own variables: the
/// runtime's, as nothing else of the runtime's environment is passed on.
pub(crate) fn base_path() -> OsString {
    std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into())
}

struct SpawnJob {
    command: Command,
    reply: oneshot::Sender<io::Result<Child>>,
}

/// The one thread that forks container processes (see the module comment for why).
pub(crate) struct Spawner {
    jobs: mpsc::Sender<SpawnJob>,
}

impl Spawner {
    pub(crate) fn start() -> io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<SpawnJob>();
        thread::Builder::new()
            .name("runtime-spawner".into())
            .spawn(move || {
                // Ends when the last sender goes, i.e. with the runtime; its children then
                // receive their death signal.
                while let Ok(mut job) = queue.recv() {
                    let _ = job.reply.send(job.command.spawn());
                }
            })?;
        Ok(Spawner { jobs })
    }

    pub(crate) async fn spawn(&self, spec: &ProcessSpec) -> io::Result<ContainerProcess> {
        let command = build_command(spec)?;
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(SpawnJob { command, reply })
            .map_err(|_| io::Error::other("the spawner thread has stopped"))?;
        let mut child = answer
            .await
            .map_err(|_| io::Error::other("the spawner thread has stopped"))??;
        let output =
            (child.stdout.take().map(OwnedFd::from)).zip(child.stderr.take().map(OwnedFd::from));
        Ok(ContainerProcess {
            pid: child.id(),
            child: Some(child),
            output,
        })
    }
}

/// A spawned container process. Only [`ContainerProcess::reap`] (or dropping it) reaps
/// it, so until then its pid stays reserved even after it has exited.
pub(crate) struct ContainerProcess {
    pid: u32,
    child: Option<Child>,
    /// The read ends of its stdout and stderr pipes, until taken.
    output: Option<(OwnedFd, OwnedFd)>,
}

impl ContainerProcess {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The read ends of the process's stdout and stderr, once.
    pub(crate) fn take_output(&mut self) -> Option<(OwnedFd, OwnedFd)> {
        self.output.take()
    }

    /// Resolves with the exit status once the process has exited, leaving it unreaped.
    pub(crate) async fn exited(&self) -> io::Result<ExitStatus> {
        match self.exited_by_pidfd().await {
            Ok(status) => Ok(status),
            // Kernels or sandboxes without pidfd_open: a thread blocks in waitid instead.
            Err(_) => self.exited_by_thread().await,
        }
    }

    async fn exited_by_pidfd(&self) -> io::Result<ExitStatus> {
        // SAFETY: the AsyncFd owns the descriptor, so it stays open as long as the AsyncFd.
        let fd =
            unsafe { AsyncFd::register_with_interest(pidfd_open(self.pid)?, Interest::READABLE) }?;
        loop {
            let mut ready = fd.readable().await?;
            // Readiness is only a hint: the exit is confirmed before it is reported.
            if let Some(status) = unreaped_exit(self.pid, false)? {
                return Ok(status);
            }
            ready.clear_ready();
        }
    }

    async fn exited_by_thread(&self) -> io::Result<ExitStatus> {
        let pid = self.pid;
        let (tx, rx) = oneshot::channel();
        thread::Builder::new()
            .name("runtime-exit-watch".into())
            .spawn(move || {
                let _ = tx.send(unreaped_exit(pid, true));
            })?;
        rx.await
            .map_err(|_| io::Error::other("the exit watcher thread stopped"))??
            .ok_or_else(|| io::Error::other("waitid answered before the process exited"))
    }

    /// Reaps the process, releasing its pid; blocks until it has exited.
    pub(crate) fn reap(mut self) -> io::Result<ExitStatus> {
        match self.child.take() {
            Some(mut child) => child.wait(),
            None => Err(io::Error::other("the process was already reaped")),
        }
    }
}

impl Drop for ContainerProcess {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Dropped unreaped (the runtime's tasks are going away): reap it later rather than
        // leave a zombie. It dies with the spawner thread, so the wait ends.
        if let Ok(None) = child.try_wait() {
            let _ = thread::Builder::new()
                .name("runtime-reaper".into())
                .spawn(move || child.wait());
        }
    }
}

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let raw = pid_t(pid)?;
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(io::Error::other)?;
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The exit status of the child `pid` without reaping it (`WNOWAIT`); `None` while it runs
/// (only when `block` is false).
fn unreaped_exit(pid: u32, block: bool) -> io::Result<Option<ExitStatus>> {
    let mut flags = libc::WEXITED | libc::WNOWAIT;
    if !block {
        flags |= libc::WNOHANG;
    }
    loop {
        // SAFETY: an all-zero siginfo_t is valid; waitid only writes into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: a valid id type, id and siginfo pointer.
        if unsafe { libc::waitid(libc::P_PID, pid, &mut info, flags) } == -1 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        // SAFETY: waitid filled in a SIGCHLD siginfo, or left si_pid 0 under WNOHANG.
        let (si_pid, si_status) = unsafe { (info.si_pid(), info.si_status()) };
        if si_pid == 0 {
            return Ok(None);
        }
        // Re-encoded as the wait status waitpid would have answered.
        let raw = match info.si_code {
            libc::CLD_EXITED => (si_status & 0xff) << 8,
            libc::CLD_DUMPED => si_status | 0x80,
            _ => si_status,
        };
        return Ok(Some(ExitStatus::from_raw(raw)));
    }
}

fn build_command(spec: &ProcessSpec) -> io::Result<Command> {
    let mut command = Command::new(&spec.program);
    // Like Docker, nothing of the runtime's own environment leaks in: the spec is all of it.
    command
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)));
    // Read by the runtime, which keeps them for the logs endpoint and writes them on to
    // the log file or its own stderr (never its stdout: that carries the "listening" lines).
    command
        .args(&spec.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.process_group(0);
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // system calls (prctl, getppid); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) == -1
            {
                return Err(io::Error::last_os_error());
            }
            // The runtime may have died before prctl took effect: then nothing would
            // ever kill this child, so do not exec at all.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    Ok(command)
}

/// A loopback port for a container to listen on: `asked` if it is free, else any free
/// one. Released at once for the process to bind; as with any port picked this way,
/// another program may take it first.
pub(crate) fn reserve_port(asked: Option<u16>) -> io::Result<u16> {
    let listener =
        std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, asked.unwrap_or(0)))?;
    Ok(listener.local_addr()?.port())
}

fn pid_t(pid: u32) -> io::Result<i32> {
    i32::try_from(pid).map_err(|_| io::Error::other(format!("pid {pid} is out of range")))
}

/// Sends `signal` to the process group led by `pid`. A group that is already gone is not
/// an error: the caller learns about the exit from the process's watcher.
pub(crate) fn signal_group(pid: u32, signal: Signal) -> io::Result<()> {
    match killpg(Pid::from_raw(pid_t(pid)?), signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(errno) => Err(io::Error::from(errno)),
    }
}

/// Sends `signal` to the process `pid` alone, as Docker signals only a container's PID 1.
pub(crate) fn signal_process(pid: u32, signal: Signal) -> io::Result<()> {
    match kill(Pid::from_raw(pid_t(pid)?), signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(errno) => Err(io::Error::from(errno)),
    }
}

/// The exit code as Docker reports it: the process's own code, or 128+N after signal N.
pub(crate) fn docker_exit_code(status: ExitStatus) -> i64 {
    match (status.code(), status.signal()) {
        (Some(code), _) => i64::from(code),
        (None, Some(signal)) => 128 + i64::from(signal),
        (None, None) => 255,
    }
}

/// Parses a signal the way Docker accepts it: `SIGKILL`, `KILL`, `kill` or `9`.
pub(crate) fn parse_signal(text: &str) -> Result<Signal, String> {
    let trimmed = text.trim();
    if let Ok(number) = trimmed.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| format!("invalid signal: {text}"));
    }
    let upper = trimmed.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>()
        .map_err(|_| format!("invalid signal: {text}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Bounds a failure only; the exits below come at once.
    const DEADLINE: Duration = Duration::from_secs(20);

    /// Answers the spawner too: its thread must outlive the child, whose death signal it is.
    async fn spawn_sh(script: &str) -> (Spawner, ContainerProcess) {
        let spec = ProcessSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("PATH".into(), base_path())],
            log_file: None,
        };
        let spawner = Spawner::start().expect("start the spawner");
        let child = spawner.spawn(&spec).await.expect("spawn /bin/sh");
        (spawner, child)
    }

    /// The state letter in `/proc/PID/stat`, if the pid exists.
    fn proc_state(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(") ")?.1.chars().next()
    }

    // Regression: the exit watcher reaped the process before the supervisor took its lock,
    // so in that gap a recycled pid could be signalled as the container's.
    #[tokio::test]
    async fn an_observed_exit_leaves_the_pid_reserved_until_it_is_reaped() {
        let (_spawner, child) = spawn_sh("exit 3").await;
        let status = tokio::time::timeout(DEADLINE, child.exited())
            .await
            .expect("the exit is observed")
            .expect("observe the exit");
        assert_eq!(docker_exit_code(status), 3);
        assert_eq!(proc_state(child.pid()), Some('Z'), "still unreaped");
        assert_eq!(docker_exit_code(child.reap().expect("reap")), 3);
    }

    // Regression: as above, for kernels without pidfd, where a thread blocks in waitid.
    #[tokio::test]
    async fn the_waitid_fallback_also_leaves_the_pid_reserved_and_decodes_signals() {
        let (_spawner, child) = spawn_sh("kill -KILL $$").await;
        let status = tokio::time::timeout(DEADLINE, child.exited_by_thread())
            .await
            .expect("the exit is observed")
            .expect("observe the exit");
        assert_eq!(docker_exit_code(status), 137);
        assert_eq!(proc_state(child.pid()), Some('Z'), "still unreaped");
        assert_eq!(docker_exit_code(child.reap().expect("reap")), 137);
    }

    #[test]
    fn signals_parse_by_name_short_name_and_number() {
        assert_eq!(parse_signal("SIGKILL"), Ok(Signal::SIGKILL));
        assert_eq!(parse_signal("term"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("9"), Ok(Signal::SIGKILL));
        assert!(parse_signal("SIGNOPE").unwrap_err().contains("SIGNOPE"));
        assert!(parse_signal("999").is_err());
    }

    #[test]
    fn exit_after_a_signal_reports_128_plus_the_signal() {
        assert_eq!(docker_exit_code(ExitStatus::from_raw(9)), 137);
        assert_eq!(docker_exit_code(ExitStatus::from_raw(15)), 143);
        assert_eq!(docker_exit_code(ExitStatus::from_raw(3 << 8)), 3);
    }
}
