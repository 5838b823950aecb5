//! Cleaning up after crashed earlier runs.
//!
//! Servers die with the process that started them, but their temp dirs (and, on an
//! external Postgres, their test databases) outlive a killed process. Each records its
//! owner; a later run removes those whose owner is dead. Owners on another machine or pid
//! namespace are left alone: their pids mean nothing here.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::InfraError;
use crate::owner::{Liveness, Owner, pid_liveness};
use crate::postgres::{DB_PREFIX, PostgresServer, drop_database, redact};
use crate::process::wait_until_gone;
use crate::tempdir::{OWNER_FILE, PREFIX};
use crate::{postgres, procfs, tempdir};

/// How long to wait for a SIGKILLed stray server to go.
const KILL_DEADLINE: Duration = Duration::from_secs(10);

/// Removes leftovers of crashed earlier runs from [`std::env::temp_dir`] and the system's
/// temp dirs (where a throwaway Postgres goes when the `postgres` user cannot enter the
/// first): dirs named `stopflow-<kind>-<pid>-*` whose owner is dead, after killing every
/// process still working in one and releasing a killed Postgres's shared memory. Returns
/// the dirs removed. Runs automatically once per process on the first throwaway server or
/// test database; databases are swept by [`sweep_databases`].
pub fn sweep_leftovers() -> Vec<PathBuf> {
    tempdir::roots()
        .iter()
        .flat_map(|root| sweep_temp_dirs_in(root))
        .collect()
}

/// [`sweep_leftovers`] in another directory.
pub fn sweep_temp_dirs_in(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .filter_map(|entry| {
            let pid = leftover_pid(entry.file_name().to_str()?)?;
            let dir = entry.path();
            (abandoned(&dir, pid) && remove(&dir)).then_some(dir)
        })
        .collect()
}

/// A short tag (8 hex digits) of this machine's boot and pid namespace, for names that
/// carry their creator's pid but have no room for an owner record (proxies on a shared
/// Toxiproxy, say): a pid in a name means something here only if the name carries this tag.
pub fn host_tag() -> String {
    format!("{:08x}", fnv1a(Owner::current().host().as_bytes()))
}

/// Whether no live process has this pid here (a zombie has exited: it counts as gone).
/// Judge only pids of this host ([`host_tag`]).
pub fn pid_is_gone(pid: u32) -> bool {
    pid_liveness(pid) == Liveness::Dead
}

/// 32-bit FNV-1a: stable across builds and Rust versions, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

pub(crate) fn sweep_leftovers_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for dir in sweep_leftovers() {
            tracing::info!("removed {} left by a crashed run", dir.display());
        }
    });
}

/// Drops databases named `stopflow_t_<pid>_*` on `server` whose creating process is dead
/// (judged by the owner recorded in the database's comment). Returns the names dropped.
pub async fn sweep_databases(server: &PostgresServer) -> Result<Vec<String>, InfraError> {
    let url = server.admin_url();
    let mut conn = postgres::database_connect(url).await?;
    let query = format!(
        "SELECT datname::text, shobj_description(oid, 'pg_database') FROM pg_database \
         WHERE datname LIKE '{}%'",
        DB_PREFIX.replace('_', "\\_")
    );
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(query))
        .fetch_all(&mut conn)
        .await
        .map_err(|source| InfraError::Sql {
            action: "list test databases".to_owned(),
            server: redact(url),
            source,
        })?;
    drop(conn);
    let mut dropped = Vec::new();
    for (name, comment) in rows {
        let owner = comment.as_deref().and_then(Owner::parse);
        // Without an owner record (a crash right after CREATE) there is no telling whose it is.
        if owner.is_none_or(|owner| owner.liveness() != Liveness::Dead) {
            continue;
        }
        match drop_database(url, &name).await {
            Ok(()) => dropped.push(name),
            Err(err) => tracing::warn!("failed to {}", crate::error::chain(&err)),
        }
    }
    Ok(dropped)
}

/// The pid in `stopflow-<kind>-<pid>-<rand>`.
fn leftover_pid(name: &str) -> Option<u32> {
    let (kind, rest) = name.strip_prefix(PREFIX)?.split_once('-')?;
    if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    rest.split_once('-')?.0.parse().ok()
}

fn abandoned(dir: &Path, pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    let owner = fs::read_to_string(dir.join(OWNER_FILE))
        .ok()
        .and_then(|text| Owner::parse(&text));
    let liveness = match owner {
        Some(owner) => owner.liveness(),
        // Created just now by a live process, or by one that crashed before writing it.
        None => pid_liveness(pid),
    };
    liveness == Liveness::Dead
}

/// Kills every process still working in `dir`, then removes it; false if anything is left.
fn remove(dir: &Path) -> bool {
    if !stop_strays(dir) {
        return false;
    }
    release_postgres_shared_memory(dir);
    match fs::remove_dir_all(dir) {
        Ok(()) => true,
        Err(err) if err.kind() == ErrorKind::NotFound => true,
        Err(err) => {
            tracing::warn!("failed to remove {}: {err}", dir.display());
            false
        }
    }
}

/// The programs a run starts in its folders: only these are the sweep's to kill (a
/// user's shell or `tail -f` in a leftover folder is not).
const RUN_PROGRAMS: &[&str] = &[
    "postgres",
    "initdb",
    "pg_ctl",
    "redis-server",
    "bot-manager",
    "runtime",
    "mock-bot",
    "fault-proxy",
    // `stopflow-postgres`, the runtime's postgres image, as the kernel shortens its name.
    "stopflow-postgr",
];

/// SIGKILLs every process of the harness's own programs whose working directory is
/// inside `dir` (a server and all its workers: a killed postmaster's backends outlive it
/// for a moment, attached to its shared memory) or whose command line names it, and
/// waits for them to go. False if one would not die.
fn stop_strays(dir: &Path) -> bool {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let strays: Vec<u32> = procfs::processes_in(&dir)
        .into_iter()
        .filter(|&pid| procfs::comm(pid).is_some_and(|c| RUN_PROGRAMS.contains(&c.as_str())))
        .collect();
    for &pid in &strays {
        if let Ok(raw) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
        }
    }
    let mut all_gone = true;
    for pid in strays {
        if !wait_until_gone(pid, KILL_DEADLINE) {
            tracing::warn!(
                "a process (pid {pid}) in {} survived SIGKILL",
                dir.display()
            );
            all_gone = false;
        }
    }
    all_gone
}

/// A killed postmaster leaves its small System V shared memory segment behind; remove it
/// once nothing is attached (`postmaster.pid` line 7 holds "<key> <shmid>").
fn release_postgres_shared_memory(dir: &Path) {
    let Ok(lock) = fs::read_to_string(dir.join("data").join("postmaster.pid")) else {
        return;
    };
    let Some((key, shmid)) = lock.lines().nth(6).and_then(|line| {
        let mut words = line.split_whitespace();
        Some((
            words.next()?.parse::<libc::key_t>().ok()?,
            words.next()?.parse::<libc::c_int>().ok()?,
        ))
    }) else {
        return;
    };
    // SAFETY: shmget with size 0 and no flags only looks a segment up by key.
    if unsafe { libc::shmget(key, 0, 0) } != shmid {
        return;
    }
    // SAFETY: a zeroed shmid_ds is a valid out-buffer for IPC_STAT.
    let mut stat: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: valid segment id and out-buffer.
    if unsafe { libc::shmctl(shmid, libc::IPC_STAT, &mut stat) } != 0 || stat.shm_nattch != 0 {
        return;
    }
    // SAFETY: removes a segment no process is attached to.
    unsafe { libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_names_yield_their_pid() {
        assert_eq!(leftover_pid("stopflow-pg-123-abcd"), Some(123));
        assert_eq!(leftover_pid("stopflow-redis-7-x-y"), Some(7));
    }

    #[test]
    fn other_names_are_not_leftovers() {
        assert_eq!(leftover_pid("stopflow-pg-abc-1"), None);
        assert_eq!(leftover_pid("stopflow--123-1"), None);
        assert_eq!(leftover_pid("something-pg-123-1"), None);
        assert_eq!(leftover_pid("stopflow-pg-123"), None);
    }
}
