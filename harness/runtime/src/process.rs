//! Spawning container processes and signalling their process groups.
//!
//! Every process leads its own process group, so a signal reaches whatever it forked too,
//! and carries `PR_SET_PDEATHSIG(SIGKILL)`, so it never outlives the runtime. The kernel
//! fires that signal when the *thread* that forked the child exits, so every spawn happens
//! on one dedicated thread that lives exactly as long as the runtime.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// What to run for one incarnation of a container.
#[derive(Debug, Clone)]
pub(crate) struct ProcessSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Applied in order over the runtime's own environment: a later entry wins.
    pub env: Vec<(OsString, OsString)>,
    /// stdout and stderr go here (appended) when set, else to the runtime's stderr.
    pub log_file: Option<PathBuf>,
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
    /// Starts the spawner thread; children are registered with `runtime` for reaping.
    pub(crate) fn start(runtime: tokio::runtime::Handle) -> io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<SpawnJob>();
        thread::Builder::new()
            .name("runtime-spawner".into())
            .spawn(move || {
                let _entered = runtime.enter();
                // Ends when the last sender goes, i.e. with the runtime; its children then
                // receive their death signal.
                while let Ok(mut job) = queue.recv() {
                    let _ = job.reply.send(job.command.spawn());
                }
            })?;
        Ok(Spawner { jobs })
    }

    pub(crate) async fn spawn(&self, spec: &ProcessSpec) -> io::Result<Child> {
        let command = build_command(spec)?;
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(SpawnJob { command, reply })
            .map_err(|_| io::Error::other("the spawner thread has stopped"))?;
        answer
            .await
            .map_err(|_| io::Error::other("the spawner thread has stopped"))?
    }
}

fn build_command(spec: &ProcessSpec) -> io::Result<Command> {
    let mut command = Command::new(&spec.program);
    command.args(&spec.args).stdin(Stdio::null());
    for (key, value) in &spec.env {
        command.env(key, value);
    }
    let (stdout, stderr) = match &spec.log_file {
        Some(path) => {
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            (Stdio::from(file.try_clone()?), Stdio::from(file))
        }
        None => {
            // stdout too: the runtime's own stdout carries the "listening" lines.
            let fd = io::stderr().as_fd().try_clone_to_owned()?;
            (Stdio::from(fd.try_clone()?), Stdio::from(fd))
        }
    };
    command.stdout(stdout).stderr(stderr);
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

/// Sends `signal` to the process group led by `pid`. A group that is already gone is not
/// an error: the caller learns about the exit from the process's watcher.
pub(crate) fn signal_group(pid: u32, signal: Signal) -> io::Result<()> {
    let Ok(raw) = i32::try_from(pid) else {
        return Err(io::Error::other(format!("pid {pid} is out of range")));
    };
    match killpg(Pid::from_raw(raw), signal) {
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
    use super::*;

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
