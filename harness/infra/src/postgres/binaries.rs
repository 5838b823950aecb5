//! Where `initdb` and `postgres` live: on PATH, or where Debian keeps them.

use std::path::PathBuf;

use crate::InfraError;

pub(super) struct PgBinaries {
    pub initdb: PathBuf,
    pub postgres: PathBuf,
}

pub(super) fn find() -> Result<PgBinaries, InfraError> {
    candidate_dirs()
        .into_iter()
        .find_map(|dir| {
            let initdb = dir.join("initdb");
            let postgres = dir.join("postgres");
            (initdb.is_file() && postgres.is_file()).then_some(PgBinaries { initdb, postgres })
        })
        .ok_or_else(|| InfraError::ProgramNotFound {
            program: "initdb and postgres".to_owned(),
            hint: "not on PATH nor in /usr/lib/postgresql/<version>/bin (install postgresql, or set DATABASE_URL)".to_owned(),
        })
}

fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    // Debian and Ubuntu: /usr/lib/postgresql/<major>/bin, newest first.
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .collect();
    versioned.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
    dirs.extend(versioned.into_iter().map(|(_, dir)| dir));
    dirs.push(PathBuf::from("/usr/local/pgsql/bin"));
    dirs
}
