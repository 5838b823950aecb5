//! How many runs go at once when `--jobs` is not given: as many as the machine holds.
//!
//! A run is mostly waiting (its scripted delays, the checkers' windows), so the bound is
//! not one run per core. Each limit below is a measured cost per run with headroom; the
//! smallest wins, and the line printed names them all so a user can see which one bound.

use std::fmt;

/// Runs per core. Measured on 2 cores: the catalogue under both profiles (73 runs) at 24
/// at once kept 1.3 cores busy on average (Postgres included), with every verdict as
/// expected over 10 passes in a row; at 32 the startup bursts saturate both cores.
pub const RUNS_PER_CORE: usize = 12;
/// Memory per run: its processes took about 46 MB each at 24 at once (reference
/// service, mock bots, runtime, Redis, a database); a Python service takes more.
pub const MEMORY_PER_RUN: u64 = 192 << 20;
/// Open files per run in the harness's own process: about 33 at 24 at once (database
/// and Redis connections, proxies, logs).
pub const FILES_PER_RUN: u64 = 64;
/// Postgres connections per run at its peak (about 6 measured: the service's pool, the
/// recorder's listener, the harness's pool, the database's creation).
pub const CONNECTIONS_PER_RUN: u64 = 8;
/// The throwaway server's `max_connections` (`infra::postgres`).
const THROWAWAY_CONNECTIONS: u64 = 300;
/// Connections the harness leaves to others on a shared server.
const CONNECTIONS_SPARE: u64 = 10;

/// The number of runs at once and what bound it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    pub jobs: usize,
    /// Each limit considered: what it is and how many runs it allows.
    pub limits: Vec<(String, usize)>,
    /// Set when something other than the machine decides (a shared Redis).
    pub reason: Option<String>,
}

impl fmt::Display for Capacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} runs at once", self.jobs)?;
        if let Some(reason) = &self.reason {
            return write!(f, " ({reason}; --jobs to choose)");
        }
        let limits: Vec<String> = self
            .limits
            .iter()
            .map(|(what, n)| format!("{what}: {n}"))
            .collect();
        write!(f, " ({}; --jobs to choose)", limits.join(", "))
    }
}

/// What the machine offers, read by [`Machine::read`]; `None` where it cannot be read.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub cores: usize,
    pub available_memory: Option<u64>,
    pub open_files: Option<u64>,
    /// Connections a new client may still open on the Postgres server the runs use.
    pub postgres_connections: Option<u64>,
    /// `REDIS_URL` is set: every run shares one Redis.
    pub shared_redis: bool,
}

impl Machine {
    /// Reads this machine; asks the `DATABASE_URL` server how many connections it has
    /// left (a throwaway server has [`THROWAWAY_CONNECTIONS`]).
    pub async fn read() -> Machine {
        raise_open_files_limit();
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            available_memory: available_memory(),
            open_files: nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                .ok()
                .map(|(soft, _)| soft),
            postgres_connections: postgres_connections().await,
            shared_redis: std::env::var("REDIS_URL").is_ok_and(|u| !u.trim().is_empty()),
        }
    }
}

/// The runs `machine` holds at once.
pub fn capacity(machine: &Machine) -> Capacity {
    let mut limits = vec![(
        format!("{RUNS_PER_CORE} per core on {}", machine.cores),
        RUNS_PER_CORE * machine.cores.max(1),
    )];
    if let Some(memory) = machine.available_memory {
        limits.push((
            format!("memory {} MiB free", memory >> 20),
            (memory / MEMORY_PER_RUN) as usize,
        ));
    }
    if let Some(files) = machine.open_files {
        limits.push((
            format!("open files {files}"),
            (files / FILES_PER_RUN) as usize,
        ));
    }
    if let Some(connections) = machine.postgres_connections {
        limits.push((
            format!("Postgres connections {connections} left"),
            (connections.saturating_sub(CONNECTIONS_SPARE) / CONNECTIONS_PER_RUN) as usize,
        ));
    }
    let jobs = limits.iter().map(|(_, n)| *n).min().unwrap_or(1).max(1);
    if machine.shared_redis {
        return Capacity {
            jobs: 1,
            limits,
            reason: Some(
                "REDIS_URL is shared by every run, and runs at once would cross on channels keyed by a database id alone"
                    .into(),
            ),
        };
    }
    Capacity {
        jobs,
        limits,
        reason: None,
    }
}

/// `--jobs` when given; else the machine's capacity, printed with what bound it.
pub async fn resolve(jobs: Option<usize>) -> usize {
    if let Some(jobs) = jobs {
        return jobs.max(1);
    }
    let capacity = capacity(&Machine::read().await);
    eprintln!("chaos: {capacity}");
    capacity.jobs
}

/// Raises the soft limit on open files to the hard one, as a test runner does: a
/// default soft limit of 1024 would hold few runs and the hard one is the real bound.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Connections left on the `DATABASE_URL` server; the throwaway server's when none is
/// given; `None` when the server cannot be asked (the runs then report why).
async fn postgres_connections() -> Option<u64> {
    use sqlx::Connection;
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => return Some(THROWAWAY_CONNECTIONS),
    };
    let ask = async {
        let mut conn = sqlx::PgConnection::connect(url.trim()).await.ok()?;
        let left: i64 = sqlx::query_scalar(
            "SELECT current_setting('max_connections')::int
                  - current_setting('superuser_reserved_connections')::int
                  - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')",
        )
        .fetch_one(&mut conn)
        .await
        .ok()?;
        let _ = conn.close().await;
        u64::try_from(left).ok()
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), ask)
        .await
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(cores: usize) -> Machine {
        Machine {
            cores,
            ..Machine::default()
        }
    }

    #[test]
    fn the_cores_bound_when_nothing_else_is_short() {
        let c = capacity(&Machine {
            available_memory: Some(24 << 30),
            open_files: Some(20_000),
            postgres_connections: Some(300),
            ..machine(2)
        });
        assert_eq!(c.jobs, 2 * RUNS_PER_CORE);
        assert!(c.to_string().contains("per core on 2"), "{c}");
    }

    #[test]
    fn the_smallest_limit_wins_and_is_named() {
        let c = capacity(&Machine {
            postgres_connections: Some(100),
            ..machine(8)
        });
        assert_eq!(
            c.jobs,
            ((100 - CONNECTIONS_SPARE) / CONNECTIONS_PER_RUN) as usize
        );
        assert!(
            c.to_string().contains("Postgres connections 100 left"),
            "{c}"
        );
        let c = capacity(&Machine {
            open_files: Some(1024),
            ..machine(8)
        });
        assert_eq!(c.jobs, (1024 / FILES_PER_RUN) as usize);
    }

    #[test]
    fn a_machine_with_nothing_to_spare_still_runs_one_at_a_time() {
        let c = capacity(&Machine {
            available_memory: Some(10 << 20),
            postgres_connections: Some(3),
            ..machine(1)
        });
        assert_eq!(c.jobs, 1);
    }

    #[test]
    fn a_shared_redis_means_one_run_at_a_time_and_says_why() {
        let c = capacity(&Machine {
            shared_redis: true,
            ..machine(2)
        });
        assert_eq!(c.jobs, 1);
        assert!(c.to_string().contains("REDIS_URL"), "{c}");
    }
}
