//! Who created a temp dir or test database, precisely enough for a later run to tell a
//! crashed owner from a live one, and from one on another machine or pid namespace (a
//! shared external Postgres sees databases of every host using it).

use std::fmt;
use std::fs;
use std::sync::OnceLock;

use crate::procfs;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    /// Boot id and pid namespace: pids only mean something within one of these.
    host: String,
    pid: u32,
    /// Guards against pid reuse.
    start_time: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    Alive,
    Dead,
    /// Created on another machine, boot or pid namespace: not ours to judge.
    Foreign,
}

const TAG: &str = "stopflow-owner";

impl Owner {
    pub(crate) fn current() -> &'static Owner {
        static CURRENT: OnceLock<Owner> = OnceLock::new();
        CURRENT.get_or_init(|| {
            let pid = std::process::id();
            Owner {
                host: host_id(),
                pid,
                start_time: procfs::stat(pid).map_or(0, |s| s.start_time),
            }
        })
    }

    /// Boot id and pid namespace of the owner.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    pub(crate) fn parse(text: &str) -> Option<Owner> {
        let mut words = text.split_whitespace();
        if words.next()? != TAG {
            return None;
        }
        let mut field = |key: &str| words.next()?.strip_prefix(key).map(str::to_owned);
        let host = field("host=")?;
        let pid = field("pid=")?.parse().ok()?;
        let start_time = field("start=")?.parse().ok()?;
        Some(Owner {
            host,
            pid,
            start_time,
        })
    }

    pub(crate) fn liveness(&self) -> Liveness {
        if self.host != Owner::current().host {
            return Liveness::Foreign;
        }
        match procfs::stat(self.pid) {
            Some(stat) if !stat.is_dead() && stat.start_time == self.start_time => Liveness::Alive,
            _ => Liveness::Dead,
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Owner {
            host,
            pid,
            start_time,
        } = self;
        write!(f, "{TAG} host={host} pid={pid} start={start_time}")
    }
}

/// Liveness from a bare pid, for leftovers without an owner record.
pub(crate) fn pid_liveness(pid: u32) -> Liveness {
    match procfs::stat(pid) {
        Some(stat) if !stat.is_dead() => Liveness::Alive,
        _ => Liveness::Dead,
    }
}

fn host_id() -> String {
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown-boot".to_owned());
    let pid_ns = fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|link| {
            let link = link.to_string_lossy().into_owned();
            link.strip_prefix("pid:[")?
                .strip_suffix(']')
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown-ns".to_owned());
    format!("{boot}/{pid_ns}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_record_round_trips_through_its_text() {
        let me = Owner::current();
        assert_eq!(Owner::parse(&me.to_string()).as_ref(), Some(me));
    }

    #[test]
    fn this_process_is_alive_by_its_own_record() {
        assert_eq!(Owner::current().liveness(), Liveness::Alive);
    }

    #[test]
    fn a_reused_pid_does_not_make_a_dead_owner_alive() {
        let mut other = Owner::current().clone();
        other.start_time += 1;
        assert_eq!(other.liveness(), Liveness::Dead);
    }

    #[test]
    fn an_owner_from_another_host_is_foreign() {
        let mut other = Owner::current().clone();
        other.host = "another-boot/1".to_owned();
        assert_eq!(other.liveness(), Liveness::Foreign);
    }

    #[test]
    fn text_that_is_not_an_owner_record_is_rejected() {
        assert_eq!(Owner::parse("some comment"), None);
        assert_eq!(Owner::parse("stopflow-owner host=x pid=y start=1"), None);
    }
}
