//! Temp dirs named `stopflow-<kind>-<pid>-<rand>` with an owner record, so a later run
//! can sweep them up if this process crashes.

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::InfraError;
use crate::owner::Owner;

pub(crate) const PREFIX: &str = "stopflow-";
/// Holds the [`Owner`] record of the process that created the dir.
pub(crate) const OWNER_FILE: &str = "owner";
/// Holds the pid of the server running in the dir, for whoever looks at a leftover (the
/// sweep kills every process working in a dir, this one included).
pub(crate) const SERVER_PID_FILE: &str = "server.pid";

/// A temp dir of its own for `kind` in [`std::env::temp_dir`], swept by a later run if
/// this process crashes.
pub fn create(kind: &str) -> Result<TempDir, InfraError> {
    create_in(kind, &std::env::temp_dir())
}

/// [`create`] in `root`, which must be one of [`roots`] for a later sweep to find it.
pub(crate) fn create_in(kind: &str, root: &Path) -> Result<TempDir, InfraError> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{kind}-{}-", std::process::id()))
        .rand_bytes(8)
        .tempdir_in(root)
        .map_err(|source| InfraError::Io {
            action: "create a temp dir in",
            path: root.to_owned(),
            source,
        })?;
    write(&dir.path().join(OWNER_FILE), &Owner::current().to_string())?;
    Ok(dir)
}

/// The memory-backed folder where a throwaway Postgres keeps its files when it can.
pub(crate) const MEMORY_ROOT: &str = "/dev/shm";
/// What the memory root must have free to take a server: its WAL is bounded well below.
const MEMORY_ROOT_MIN_FREE: u64 = 2 << 30;

/// [`MEMORY_ROOT`] when it is a tmpfs with room for a throwaway server. Creating a
/// database writes a few hundred files; on a disk filesystem that churn (ext4 scans its
/// recently deleted inodes on every create) took over half of the machine's CPU with 16
/// runs at once, and on tmpfs it is nearly free.
pub(crate) fn memory_root() -> Option<PathBuf> {
    let root = PathBuf::from(MEMORY_ROOT);
    let stat = nix::sys::statfs::statfs(&root).ok()?;
    let free = stat.blocks_available() as u64 * stat.block_size() as u64;
    (stat.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC && free >= MEMORY_ROOT_MIN_FREE)
        .then_some(root)
}

/// Where temp dirs of this crate may be: [`std::env::temp_dir`] first, then the system's
/// temp dirs, which take a throwaway Postgres when the `postgres` user cannot enter the
/// first (a `TMPDIR` of mode 0700, say), and the memory root a throwaway Postgres
/// prefers. Without duplicates.
pub(crate) fn roots() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    for root in [
        std::env::temp_dir(),
        PathBuf::from("/tmp"),
        PathBuf::from("/var/tmp"),
        PathBuf::from(MEMORY_ROOT),
    ] {
        let same = |known: &PathBuf| {
            known == &root
                || (known.canonicalize().ok()).is_some_and(|k| root.canonicalize().ok() == Some(k))
        };
        if !roots.iter().any(same) {
            roots.push(root);
        }
    }
    roots
}

pub(crate) fn write(path: &Path, contents: &str) -> Result<(), InfraError> {
    fs::write(path, contents).map_err(|source| InfraError::Io {
        action: "write",
        path: path.to_owned(),
        source,
    })
}
