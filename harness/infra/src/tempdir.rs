//! Temp dirs named `stopflow-<kind>-<pid>-<rand>` with an owner record, so a later run
//! can sweep them up if this process crashes.

use std::fs;
use std::path::Path;

use tempfile::TempDir;

use crate::InfraError;
use crate::owner::Owner;

pub(crate) const PREFIX: &str = "stopflow-";
/// Holds the [`Owner`] record of the process that created the dir.
pub(crate) const OWNER_FILE: &str = "owner";
/// Holds the pid of the server running in the dir, for the sweep to kill a stray one.
pub(crate) const SERVER_PID_FILE: &str = "server.pid";

/// A temp dir of its own for `kind`, swept by a later run if this process crashes.
pub fn create(kind: &str) -> Result<TempDir, InfraError> {
    let root = std::env::temp_dir();
    let dir = tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{kind}-{}-", std::process::id()))
        .rand_bytes(8)
        .tempdir_in(&root)
        .map_err(|source| InfraError::Io {
            action: "create a temp dir in",
            path: root,
            source,
        })?;
    write(&dir.path().join(OWNER_FILE), &Owner::current().to_string())?;
    Ok(dir)
}

pub(crate) fn write(path: &Path, contents: &str) -> Result<(), InfraError> {
    fs::write(path, contents).map_err(|source| InfraError::Io {
        action: "write",
        path: path.to_owned(),
        source,
    })
}
