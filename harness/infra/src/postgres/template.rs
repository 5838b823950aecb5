//! A freshly initialized data dir, made once per machine and copied for every later
//! throwaway server: `initdb` takes most of a second of CPU, a copy of its 40 MB a few
//! tens of milliseconds, and a test suite starts a server in every test process.
//!
//! The copy is `stopflow_pgdata_<key>` beside the servers' temp dirs (in memory when
//! they are), where `<key>` names the `initdb` binary, its modification time and the
//! user the server runs as: a new PostgreSQL version or another user gets a new copy. It
//! is made in a temp dir of its own (swept if its maker dies) and renamed into place
//! whole, so a reader never sees half of one; it is kept (it is a cache, not a leftover),
//! and `rm -rf /dev/shm/stopflow_pgdata_*` is always safe.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid, chown};

use crate::InfraError;
use crate::tempdir;

/// The cache's name starts so; not [`tempdir::PREFIX`], so the sweep leaves it alone.
pub(crate) const CACHE_PREFIX: &str = "stopflow_pgdata_";

/// The cached data dir in `root` for `key`, when there is a complete one.
pub(crate) fn cached(root: &Path, key: &str) -> Option<PathBuf> {
    let dir = root.join(format!("{CACHE_PREFIX}{key}"));
    // Renamed into place only once complete: these two mark a whole data dir.
    (dir.join("PG_VERSION").is_file() && dir.join("global/pg_control").is_file()).then_some(dir)
}

/// Keeps `data` (a complete data dir) as the cache for `key` in `root`, by copying it
/// into a temp dir and renaming that into place; another process that got there first
/// wins and ours is dropped. Failing to keep it only costs the next server an `initdb`.
pub(crate) fn keep(root: &Path, key: &str, data: &Path) {
    let Ok(staging) = tempdir::create_in("pgdata", root) else {
        return;
    };
    let copy = staging.path().join("data");
    if copy_tree(data, &copy, None).is_err() {
        return;
    }
    let target = root.join(format!("{CACHE_PREFIX}{key}"));
    // Fails when another process kept one first: then theirs serves.
    let _ = fs::rename(&copy, &target);
}

/// Copies the data dir `from` to `to` (which must not exist), keeping every mode and
/// handing each entry to `owner` (the server's user) when given.
pub(crate) fn copy_tree(
    from: &Path,
    to: &Path,
    owner: Option<(Uid, Gid)>,
) -> Result<(), InfraError> {
    let io = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source: std::io::Error| InfraError::Io {
            action,
            path,
            source,
        }
    };
    let meta = fs::metadata(from).map_err(io("read", from))?;
    fs::create_dir(to).map_err(io("create", to))?;
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(io("set the mode of", to))?;
    give(to, owner)?;
    for entry in fs::read_dir(from).map_err(io("read", from))? {
        let entry = entry.map_err(io("read", from))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().map_err(io("read", &source))?;
        if kind.is_dir() {
            copy_tree(&source, &target, owner)?;
        } else if kind.is_file() {
            // fs::copy keeps the mode.
            fs::copy(&source, &target).map_err(io("copy", &source))?;
            give(&target, owner)?;
        } else if kind.is_symlink() {
            let link = fs::read_link(&source).map_err(io("read", &source))?;
            std::os::unix::fs::symlink(link, &target).map_err(io("create", &target))?;
        }
    }
    Ok(())
}

fn give(path: &Path, owner: Option<(Uid, Gid)>) -> Result<(), InfraError> {
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    chown(path, Some(uid), Some(gid)).map_err(|errno| InfraError::Io {
        action: "hand to the postgres user",
        path: path.to_owned(),
        source: errno.into(),
    })
}

/// The cache key: the `initdb` binary (path and modification time) and the user.
pub(crate) fn key(initdb: &Path, uid: u32) -> String {
    let mtime = fs::metadata(initdb).map(|m| m.mtime()).unwrap_or(0);
    let text = format!("{}\0{mtime}\0{uid}", initdb.display());
    // FNV-1a: stable across builds, unlike the std hasher.
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_keeps_every_file_dir_link_and_mode() {
        let root = tempfile::tempdir().unwrap();
        let from = root.path().join("from");
        fs::create_dir(&from).unwrap();
        fs::set_permissions(&from, fs::Permissions::from_mode(0o700)).unwrap();
        fs::create_dir(from.join("global")).unwrap();
        fs::write(from.join("global/pg_control"), b"control").unwrap();
        fs::write(from.join("PG_VERSION"), b"15\n").unwrap();
        fs::set_permissions(from.join("PG_VERSION"), fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink("global", from.join("link")).unwrap();
        let to = root.path().join("to");
        copy_tree(&from, &to, None).unwrap();
        assert_eq!(fs::read(to.join("global/pg_control")).unwrap(), b"control");
        assert_eq!(fs::read_link(to.join("link")).unwrap(), Path::new("global"));
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&to), 0o700);
        assert_eq!(mode(&to.join("PG_VERSION")), 0o600);
    }

    #[test]
    fn only_a_complete_data_dir_serves_as_the_cache() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(cached(root.path(), "k"), None);
        let dir = root.path().join(format!("{CACHE_PREFIX}k"));
        fs::create_dir_all(dir.join("global")).unwrap();
        fs::write(dir.join("PG_VERSION"), b"15\n").unwrap();
        assert_eq!(cached(root.path(), "k"), None, "no pg_control yet");
        fs::write(dir.join("global/pg_control"), b"c").unwrap();
        assert_eq!(cached(root.path(), "k"), Some(dir));
    }

    #[test]
    fn keeping_a_cache_twice_leaves_the_first_and_no_staging_dir() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        fs::create_dir_all(data.join("global")).unwrap();
        fs::write(data.join("PG_VERSION"), b"first").unwrap();
        fs::write(data.join("global/pg_control"), b"c").unwrap();
        keep(root.path(), "k", &data);
        fs::write(data.join("PG_VERSION"), b"second").unwrap();
        keep(root.path(), "k", &data);
        let cache = cached(root.path(), "k").unwrap();
        assert_eq!(fs::read(cache.join("PG_VERSION")).unwrap(), b"first");
        let left: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(tempdir::PREFIX))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn the_key_changes_with_the_binary_and_the_user() {
        let a = key(Path::new("/usr/lib/postgresql/15/bin/initdb"), 100);
        assert_eq!(a, key(Path::new("/usr/lib/postgresql/15/bin/initdb"), 100));
        assert_ne!(a, key(Path::new("/usr/lib/postgresql/16/bin/initdb"), 100));
        assert_ne!(a, key(Path::new("/usr/lib/postgresql/15/bin/initdb"), 101));
    }
}
