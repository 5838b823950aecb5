//! The few facts about other processes this crate reads from /proc.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Fields of `/proc/<pid>/stat` that tell whether a pid still names the same live process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub state: char,
    /// Clock ticks since boot at which the process started; a reused pid gets a new one.
    pub start_time: u64,
}

impl ProcStat {
    pub(crate) fn is_dead(&self) -> bool {
        // A zombie has exited; only its parent's bookkeeping is left.
        matches!(self.state, 'Z' | 'X')
    }
}

/// `None` when no process has this pid (or it is not visible from here).
pub(crate) fn stat(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<ProcStat> {
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 22 overall; `rest` starts at field 3.
    let start_time = fields.nth(22 - 4)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

/// The name of a process's program (`/proc/<pid>/comm`: at most 15 bytes).
pub(crate) fn comm(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim_end().to_owned())
}

/// The working directory of a process, if it is alive and visible to us.
pub(crate) fn cwd(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

/// Live processes (other than this one) working inside `dir` (their working directory is
/// `dir` or below it) or naming it in their command line. `dir` should be canonical.
pub(crate) fn processes_in(dir: &Path) -> Vec<u32> {
    let me = std::process::id();
    let name = dir.as_os_str().as_bytes();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| stat(pid).is_some_and(|s| !s.is_dead()))
        .filter(|&pid| {
            cwd(pid).is_some_and(|cwd| cwd.starts_with(dir))
                || fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|cmdline| contains(&cmdline, name))
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_of_this_process_is_running_with_a_start_time() {
        let me = stat(std::process::id()).expect("own stat");
        assert!(!me.is_dead());
        assert_eq!(stat(std::process::id()).unwrap().start_time, me.start_time);
    }

    #[test]
    fn a_child_working_in_a_dir_is_found_there_and_only_there() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().canonicalize().unwrap();
        let other = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("1000")
            .current_dir(&dir)
            .spawn()
            .unwrap();

        let found = processes_in(&dir);
        let elsewhere = processes_in(&other.path().canonicalize().unwrap());
        child.kill().unwrap();
        child.wait().unwrap();

        assert_eq!(found, vec![child.id()]);
        assert!(!elsewhere.contains(&child.id()));
    }

    #[test]
    fn stat_parsing_survives_parentheses_and_spaces_in_the_command_name() {
        let line = "42 (a) b (c) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 777 1 1";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                state: 'S',
                start_time: 777
            })
        );
    }
}
