//! CPU and memory of each program of the stack, from /proc: read at the start and the
//! end of a run for CPU, and sampled while it runs for the memory of the programs that
//! are many processes (Postgres, the bots).
//!
//! - CPU seconds: user + system time over the run. A program's processes that ended and
//!   were reaped meanwhile are in their parent's `cutime`/`cstime`: the bots are the
//!   runtime's children and Postgres's backends the postmaster's, so a bot is counted
//!   whether it still runs at the end or not, and the runtime's own figure leaves its
//!   children out.
//! - Peak memory: for one process, its high-water mark (`VmHWM`); for many, the largest
//!   sampled sum of their private memory (`RssAnon`) plus the largest shared part
//!   (`RssFile + RssShmem`, the program's text and Postgres's shared buffers) counted once.

use std::collections::HashMap;
use std::fs;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How often the many-process programs' memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(1000);

/// The programs of one run's stack, by pid.
#[derive(Debug, Clone, Default)]
pub struct Pids {
    pub bot_manager: Option<u32>,
    pub runtime: Option<u32>,
    pub fault_proxy: Option<u32>,
    /// The postmaster (`None`: a server of `DATABASE_URL`, not this machine's to read).
    pub postgres: Option<u32>,
    pub redis: Option<u32>,
    /// This process: the client, the recorder and the proxy's API calls share the
    /// machine with the stack.
    pub harness: Option<u32>,
}

/// What one program used over the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub program: String,
    /// `None`: not measured (an external server), with why in `note`.
    pub cpu_s: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    /// Most processes seen at once (the bots, Postgres's backends).
    pub peak_processes: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One process's fields of `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    pub ppid: u32,
    /// utime + stime, clock ticks.
    pub own: u64,
    /// cutime + cstime: reaped children's, clock ticks.
    pub children: u64,
}

/// Reads `/proc/<pid>/stat` text (the command may hold spaces and parentheses).
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field k is f[k - 3].
    let num = |k: usize| f.get(k - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        ppid: u32::try_from(num(4)?).ok()?,
        own: num(14)? + num(15)?,
        children: num(16)? + num(17)?,
    })
}

fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Memory of one process from `/proc/<pid>/status`, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    pub anon: u64,
    pub shared: u64,
    pub hwm: u64,
}

pub fn parse_status(text: &str) -> Memory {
    let kib = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Memory {
        anon: kib("RssAnon:"),
        shared: kib("RssFile:") + kib("RssShmem:"),
        hwm: kib("VmHWM:"),
    }
}

fn memory(pid: u32) -> Option<Memory> {
    Some(parse_status(
        &fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
    ))
}

/// Every live process's parent, from one pass over /proc.
fn parents() -> HashMap<u32, Stat> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .collect()
}

fn children_of(all: &HashMap<u32, Stat>, parent: u32) -> Vec<(u32, Stat)> {
    all.iter()
        .filter(|(_, s)| s.ppid == parent)
        .map(|(pid, s)| (*pid, *s))
        .collect()
}

/// Clock ticks per second.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// CPU of the programs at one moment, clock ticks.
#[derive(Debug, Clone, Default)]
struct Cpu {
    single: HashMap<&'static str, u64>,
    bots: u64,
    postgres: u64,
}

fn cpu(pids: &Pids) -> Cpu {
    let all = parents();
    let mut single = HashMap::new();
    for (name, pid) in [
        ("bot-manager", pids.bot_manager),
        ("runtime", pids.runtime),
        ("fault-proxy", pids.fault_proxy),
        ("redis", pids.redis),
        ("chaos (the harness)", pids.harness),
    ] {
        if let Some(s) = pid.and_then(|p| all.get(&p)) {
            single.insert(name, s.own);
        }
    }
    let group = |parent: Option<u32>, with_parent: bool| {
        let Some(parent) = parent else { return 0 };
        let Some(p) = all.get(&parent) else { return 0 };
        let live: u64 = children_of(&all, parent)
            .iter()
            .map(|(_, s)| s.own + s.children)
            .sum();
        p.children + live + if with_parent { p.own } else { 0 }
    };
    Cpu {
        single,
        bots: group(pids.runtime, false),
        postgres: group(pids.postgres, true),
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Peaks {
    bots_bytes: u64,
    bots_processes: usize,
    postgres_bytes: u64,
    postgres_processes: usize,
    harness_bytes: u64,
}

/// The memory of a group of processes as one figure: private memory summed, the
/// largest shared part once.
fn group_memory(pids: &[u32]) -> u64 {
    let mems: Vec<Memory> = pids.iter().filter_map(|p| memory(*p)).collect();
    mems.iter().map(|m| m.anon).sum::<u64>() + mems.iter().map(|m| m.shared).max().unwrap_or(0)
}

fn sample(pids: &Pids, peaks: &mut Peaks) {
    let all = parents();
    if let Some(harness) = pids.harness {
        // Its high-water mark is its whole life's, earlier runs included: sampled instead.
        peaks.harness_bytes = peaks.harness_bytes.max(group_memory(&[harness]));
    }
    if let Some(runtime) = pids.runtime {
        let bots: Vec<u32> = children_of(&all, runtime).iter().map(|(p, _)| *p).collect();
        peaks.bots_processes = peaks.bots_processes.max(bots.len());
        peaks.bots_bytes = peaks.bots_bytes.max(group_memory(&bots));
    }
    if let Some(postmaster) = pids.postgres {
        let mut group: Vec<u32> = children_of(&all, postmaster)
            .iter()
            .map(|(p, _)| *p)
            .collect();
        group.push(postmaster);
        peaks.postgres_processes = peaks.postgres_processes.max(group.len());
        peaks.postgres_bytes = peaks.postgres_bytes.max(group_memory(&group));
    }
}

/// Follows a run's programs from [`Sampler::start`] to [`Sampler::finish`].
pub struct Sampler {
    pids: Pids,
    start: Cpu,
    peaks: Arc<Mutex<Peaks>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub fn start(pids: Pids) -> Sampler {
        let start = cpu(&pids);
        let peaks = Arc::new(Mutex::new(Peaks::default()));
        let task = {
            let (pids, peaks) = (pids.clone(), peaks.clone());
            tokio::spawn(async move {
                loop {
                    let pids = pids.clone();
                    let mut now = *peaks.lock().expect("peaks lock");
                    // /proc reads block: off the runtime's worker threads.
                    now = tokio::task::spawn_blocking(move || {
                        sample(&pids, &mut now);
                        now
                    })
                    .await
                    .unwrap_or(now);
                    *peaks.lock().expect("peaks lock") = now;
                    tokio::time::sleep(SAMPLE_EVERY).await;
                }
            })
        };
        Sampler {
            pids,
            start,
            peaks,
            task,
        }
    }

    /// The usage of each program since the start; call it while the programs still run.
    pub fn finish(self, external_postgres: bool) -> Vec<Usage> {
        self.task.abort();
        let mut peaks = *self.peaks.lock().expect("peaks lock");
        sample(&self.pids, &mut peaks);
        let end = cpu(&self.pids);
        let hz = ticks_per_second();
        let mib = |bytes: u64| (bytes as f64 / (1 << 20) as f64 * 10.0).round() / 10.0;
        let seconds = |ticks: u64| (ticks as f64 / hz * 100.0).round() / 100.0;
        let single = |name: &'static str, pid: Option<u32>| {
            let cpu = match (self.start.single.get(name), end.single.get(name)) {
                (Some(a), Some(b)) => Some(seconds(b.saturating_sub(*a))),
                _ => None,
            };
            Usage {
                program: name.to_owned(),
                cpu_s: cpu,
                peak_rss_mib: pid.and_then(memory).map(|m| mib(m.hwm)),
                peak_processes: usize::from(pid.is_some()),
                note: None,
            }
        };
        let mut usage = vec![
            single("bot-manager", self.pids.bot_manager),
            single("runtime", self.pids.runtime),
            single("fault-proxy", self.pids.fault_proxy),
        ];
        usage.push(if external_postgres || self.pids.postgres.is_none() {
            Usage {
                program: "postgres".into(),
                cpu_s: None,
                peak_rss_mib: None,
                peak_processes: 0,
                note: Some("the server of DATABASE_URL: not measured".into()),
            }
        } else {
            Usage {
                program: "postgres".into(),
                cpu_s: Some(seconds(end.postgres.saturating_sub(self.start.postgres))),
                peak_rss_mib: Some(mib(peaks.postgres_bytes)),
                peak_processes: peaks.postgres_processes,
                note: None,
            }
        });
        usage.push(match self.pids.redis {
            Some(pid) => single("redis", Some(pid)),
            None => Usage {
                program: "redis".into(),
                cpu_s: None,
                peak_rss_mib: None,
                peak_processes: 0,
                note: Some("the server of REDIS_URL: not measured".into()),
            },
        });
        usage.push(Usage {
            peak_rss_mib: Some(mib(peaks.harness_bytes)),
            peak_processes: 1,
            ..single("chaos (the harness)", None)
        });
        usage.push(Usage {
            program: "mock bots (all)".into(),
            cpu_s: Some(seconds(end.bots.saturating_sub(self.start.bots))),
            peak_rss_mib: Some(mib(peaks.bots_bytes)),
            peak_processes: peaks.bots_processes,
            note: None,
        });
        usage
    }
}

/// The machine's load averages (1, 5, 15 minutes), to tell a reader how shared it was.
pub fn load_average() -> Option<[f64; 3]> {
    let text = fs::read_to_string("/proc/loadavg").ok()?;
    let mut f = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([f.next()??, f.next()??, f.next()??])
}

/// Memory the machine has available, bytes.
pub fn available_memory() -> Option<u64> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_parent_own_and_reaped_childrens_ticks() {
        // A command name with a space and parentheses, as comm allows.
        let line = "4242 (mock (bot) x) S 17 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 50 7 3 20 0 3 0 123456 1000000 500 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                ppid: 17,
                own: 300,
                children: 10
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn a_status_file_gives_private_shared_and_peak_memory() {
        let text = "Name:\tmock-bot\nVmHWM:\t   9000 kB\nVmRSS:\t    8000 kB\n\
                    RssAnon:\t    3000 kB\nRssFile:\t    4500 kB\nRssShmem:\t     500 kB\n";
        assert_eq!(
            parse_status(text),
            Memory {
                anon: 3000 * 1024,
                shared: 5000 * 1024,
                hwm: 9000 * 1024
            }
        );
    }

    #[test]
    fn this_process_can_be_read() {
        let me = stat(std::process::id()).expect("own stat");
        assert!(me.ppid > 0);
        assert!(memory(std::process::id()).expect("own status").hwm > 0);
        assert!(load_average().is_some());
    }
}
