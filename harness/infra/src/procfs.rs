//! The few facts about other processes this crate reads from /proc.

use std::fs;
use std::path::PathBuf;

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

/// The working directory of a process, if it is alive and visible to us.
pub(crate) fn cwd(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/cwd")).ok()
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
