use std::collections::VecDeque;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::ChildGuard;
use crate::InfraError;

/// Lines of output kept for error messages.
const TAIL_LINES: usize = 20;

/// Configures `cmd` so the child gets its own process group (a group kill reaches its
/// descendants, a terminal's Ctrl-C does not reach it) and SIGKILL when its parent dies.
///
/// Linux sends the parent-death signal when the *thread* that spawned the child exits, so
/// spawn long-lived children from a thread that lives as long as they should.
pub fn die_with_parent(cmd: &mut std::process::Command) -> &mut std::process::Command {
    let parent = parent_pid();
    cmd.process_group(0);
    // SAFETY: the hook only makes async-signal-safe calls (prctl, getppid) and allocates
    // nothing, as required between fork and exec.
    unsafe { cmd.pre_exec(move || set_parent_death_signal(parent)) }
}

/// SIGKILL for the child when its parent dies, as [`die_with_parent`], but in the
/// parent's own process group: for a program that runs as a container's process, whose
/// group the container runtime signals, pauses and kills as one.
pub fn die_with_parent_in_group(cmd: &mut std::process::Command) -> &mut std::process::Command {
    let parent = parent_pid();
    // SAFETY: as in `die_with_parent`.
    unsafe { cmd.pre_exec(move || set_parent_death_signal(parent)) }
}

/// [`die_with_parent`] for a `tokio::process::Command`.
pub fn die_with_parent_tokio(cmd: &mut tokio::process::Command) -> &mut tokio::process::Command {
    die_with_parent(cmd.as_std_mut());
    cmd
}

fn parent_pid() -> libc::pid_t {
    std::process::id().cast_signed()
}

fn set_parent_death_signal(parent: libc::pid_t) -> io::Result<()> {
    let sig = libc::SIGKILL as libc::c_ulong;
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag on the calling process.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig, 0, 0, 0) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // If the parent died before prctl took effect, no signal will ever come: give up now.
    // SAFETY: getppid cannot fail.
    if unsafe { libc::getppid() } != parent {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// Spawns `cmd` (as by [`die_with_parent_tokio`]) with stdout piped and waits, for at most
/// `deadline`, until it prints a line for which `pred` holds. Returns the guard and that line.
///
/// Every line (the matching one too) is logged at debug level, prefixed with the program name
/// and pid, and draining continues in a background task, so the child never blocks on a
/// full pipe. Needs a tokio runtime with IO enabled.
pub async fn spawn_until_line(
    mut cmd: tokio::process::Command,
    pred: impl Fn(&str) -> bool,
    deadline: Duration,
) -> Result<(ChildGuard, String), InfraError> {
    let program = program_name(cmd.as_std().get_program());
    die_with_parent_tokio(&mut cmd).stdout(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| InfraError::Spawn {
        program: program.clone(),
        source,
    })?;
    let stdout = child.stdout.take().expect("stdout was configured as piped");
    let mut guard = ChildGuard::from_tokio(child, program.clone());
    let prefix = format!("[{program} {}]", guard.id());
    let mut reader = BufReader::new(stdout);
    let mut tail = VecDeque::with_capacity(TAIL_LINES);

    let search = async {
        while let Some(line) = next_line(&mut reader).await? {
            tracing::debug!("{prefix} {line}");
            if pred(&line) {
                return Ok(Some(line));
            }
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        Ok(None)
    };
    match tokio::time::timeout(deadline, search).await {
        Ok(Ok(Some(line))) => {
            tokio::spawn(forward_lines(reader, prefix));
            Ok((guard, line))
        }
        Ok(Ok(None)) => {
            // Stdout closed; the child is exiting or has exited.
            let status = match guard.wait_exit(Duration::from_secs(5)).await {
                Ok(status) => status.to_string(),
                Err(_) => "still running".to_owned(),
            };
            Err(InfraError::LineMissing {
                program,
                status,
                tail: join(&tail),
            })
        }
        Ok(Err(source)) => Err(InfraError::ReadOutput { program, source }),
        Err(_elapsed) => Err(InfraError::LineTimeout {
            program,
            deadline,
            tail: join(&tail),
        }),
    }
}

async fn forward_lines<R: AsyncRead + Unpin>(mut reader: BufReader<R>, prefix: String) {
    while let Ok(Some(line)) = next_line(&mut reader).await {
        tracing::debug!("{prefix} {line}");
    }
}

/// One line without its terminator; invalid UTF-8 is replaced rather than fatal.
async fn next_line<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    if reader.read_until(b'\n', &mut buf).await? == 0 {
        return Ok(None);
    }
    let line = String::from_utf8_lossy(&buf);
    Ok(Some(line.trim_end_matches(['\n', '\r']).to_owned()))
}

fn program_name(program: &std::ffi::OsStr) -> String {
    Path::new(program)
        .file_name()
        .unwrap_or(program)
        .to_string_lossy()
        .into_owned()
}

fn join(lines: &VecDeque<String>) -> String {
    lines
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("\n")
}
