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

/// Where temp dirs of this crate may be: [`std::env::temp_dir`] first, then the system's
/// temp dirs, which take a throwaway Postgres when the `postgres` user cannot enter the
/// first (a `TMPDIR` of mode 0700, say). Without duplicates.
pub(crate) fn roots() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    for root in [
        std::env::temp_dir(),
        PathBuf::from("/tmp"),
        PathBuf::from("/var/tmp"),
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
