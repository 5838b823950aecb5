use std::fmt;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::{User, chown, geteuid};
use tempfile::TempDir;

use super::binaries::{self, PgBinaries};
use super::template;
use crate::InfraError;
use crate::keeper::{self, KeptServer, ServerSpec};
use crate::process::{die_with_parent, free_port};
use crate::tempdir;

/// Startup includes crash recovery after an unclean stop; generous, it is only a hang guard.
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// A fast shutdown (SIGINT) with fsync off takes well under a second.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// Tries at a free port, in case another process takes the one picked first.
const PORT_ATTEMPTS: u32 = 3;

/// A Postgres server: external (`$DATABASE_URL`) or a throwaway one this process started.
///
/// A throwaway server runs as the `postgres` user when we are root, from a temp dir
/// `stopflow-pg-<pid>-<rand>` holding its data and unix socket. It dies with this process
/// (parent-death signal) and is stopped, and its dir removed, on drop.
pub struct PostgresServer {
    admin_url: String,
    dir: Option<PathBuf>,
    pid: Option<u32>,
    /// A server of this process's own (a throwaway one or a container), not someone
    /// else's.
    own: bool,
    /// Taken on shutdown; a `Mutex` so the process-wide server can be stopped at exit.
    throwaway: Mutex<Option<Throwaway>>,
    /// Whether leftover databases of crashed runs were already swept from this server.
    pub(crate) swept: AtomicBool,
}

#[derive(Debug)]
enum Throwaway {
    Local {
        // Declaration order is drop order: stop the server before removing its dir.
        _server: KeptServer,
        _dir: TempDir,
    },
    /// Held for its drop, which removes the container.
    Container(#[allow(dead_code)] crate::containers::ContainerHandle),
}

impl PostgresServer {
    /// A server someone else runs; `url` is used as the admin URL (its database must exist).
    pub fn external(url: &str) -> Result<Self, InfraError> {
        let parsed = url::Url::parse(url).map_err(|err| InfraError::InvalidUrl {
            url: super::redact(url),
            reason: err.to_string(),
        })?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(InfraError::InvalidUrl {
                url: super::redact(url),
                reason: "the scheme is not postgres:// or postgresql://".to_owned(),
            });
        }
        Ok(Self {
            admin_url: url.to_owned(),
            dir: None,
            pid: None,
            own: false,
            throwaway: Mutex::new(None),
            swept: AtomicBool::new(false),
        })
    }

    /// `initdb --no-sync -A trust`, then `postgres` (fsync off, 127.0.0.1 on a free port,
    /// unix socket in its own dir) on a keeper thread; returns once it accepts connections.
    /// Blocks for about a second.
    pub fn start_throwaway() -> Result<Self, InfraError> {
        crate::sweep::sweep_leftovers_once();
        let Prepared {
            bins,
            user,
            dir,
            data,
            socket,
        } = Prepared::new()?;

        let mut attempt = 1;
        let (server, port) = loop {
            let port = free_port()?;
            let mut command = Command::new(&bins.postgres);
            command
                .arg("-D")
                .arg(&data)
                .arg("-k")
                .arg(&socket)
                .args(["-p", &port.to_string()])
                .args(SERVER_SETTINGS.iter().flat_map(|s| ["-c", s]))
                .current_dir(dir.path());
            user.apply(&mut command);
            let spec = ServerSpec {
                name: "postgres",
                command,
                dir: dir.path().to_owned(),
                log: dir.path().join("postgres.log"),
                ready_deadline: READY_DEADLINE,
                stop_signal: Signal::SIGINT,
                stop_grace: STOP_GRACE,
            };
            let lock_file = data.join("postmaster.pid");
            match KeptServer::start(spec, move || accepts_connections(&lock_file)) {
                Ok(server) => break (server, port),
                Err(err) if attempt < PORT_ATTEMPTS && keeper::lost_port_race(&err) => attempt += 1,
                Err(err) => return Err(err),
            }
        };
        Ok(Self {
            admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            dir: Some(dir.path().to_owned()),
            pid: Some(server.pid()),
            own: true,
            throwaway: Mutex::new(Some(Throwaway::Local {
                _server: server,
                _dir: dir,
            })),
            swept: AtomicBool::new(false),
        })
    }

    /// A Postgres container through testcontainers (see [`crate::containers`]), trusting
    /// every connection, with 300 connections; removed on drop. Blocks while it starts.
    pub fn start_container() -> Result<Self, InfraError> {
        let container = crate::containers::start_postgres_blocking()?;
        Ok(Self {
            admin_url: format!(
                "postgres://postgres@{}:{}/postgres",
                container.host(),
                container.port()
            ),
            dir: None,
            pid: None,
            own: true,
            throwaway: Mutex::new(Some(Throwaway::Container(container))),
            swept: AtomicBool::new(false),
        })
    }

    /// `$DATABASE_URL` if set (and not empty), else the provider's server
    /// ([`crate::provider`]): a container, or [`Self::start_throwaway`].
    pub fn from_env() -> Result<Self, InfraError> {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => Self::external(url.trim()),
            _ => match crate::provider::current()?.provider {
                crate::provider::Provider::Containers { .. } => Self::start_container(),
                crate::provider::Provider::Local => Self::start_throwaway(),
                crate::provider::Provider::Env => Err(InfraError::NotInEnvironment {
                    what: "Postgres",
                    var: "DATABASE_URL",
                }),
            },
        }
    }

    /// A URL to a database that always exists on the server (`postgres` on a throwaway
    /// server, the given URL on an external one), for creating and dropping databases.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// A server of this process's own (throwaway or a container), which no one else uses.
    pub fn is_throwaway(&self) -> bool {
        self.own
    }

    /// The temp dir of a throwaway server (its data and socket live below it).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The postmaster's pid on a throwaway server (for pausing it, say).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Stops a throwaway server and removes its dir; later calls do nothing.
    pub(crate) fn shutdown(&self) {
        let throwaway = self
            .throwaway
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(throwaway);
    }
}

impl fmt::Debug for PostgresServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresServer")
            .field("admin_url", &super::redact(&self.admin_url))
            .field("dir", &self.dir)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The folder the server's own temp dir goes in: the memory root when there is one. The
/// server runs as the `postgres` user when we are root, and it must be able to enter that
/// dir: else [`std::env::temp_dir`] when it can, else the first system temp dir it can (a `TMPDIR` of mode 0700 owned by root, as
/// `mktemp -d` makes, is closed to it). Fails, naming every folder tried and why, when it
/// can enter none.
fn server_root(bins: &PgBinaries, user: &RunAs) -> Result<PathBuf, InfraError> {
    // Memory first (see `tempdir::memory_root`), where the server's user can enter it.
    if let Some(memory) = tempdir::memory_root()
        && (user.0.is_none() || user.probe(&bins.postgres, &memory).is_ok())
    {
        return Ok(memory);
    }
    let roots = tempdir::roots();
    if user.0.is_none() {
        return Ok(roots[0].clone());
    }
    let mut refused = Vec::new();
    for root in roots {
        match user.probe(&bins.postgres, &root) {
            Ok(()) => {
                if let Some(first) = refused.first() {
                    tracing::info!(
                        "the throwaway postgres keeps its files in {} ({first})",
                        root.display()
                    );
                }
                return Ok(root);
            }
            Err(err) => {
                // Then the program, not the folder, is what the user cannot run.
                if let Err(source) = user.probe(&bins.postgres, Path::new("/")) {
                    return Err(InfraError::Spawn {
                        program: format!("{} as the postgres user", bins.postgres.display()),
                        source,
                    });
                }
                refused.push(format!(
                    "the postgres user cannot enter {}: {err}",
                    root.display()
                ));
            }
        }
    }
    Err(InfraError::PostgresDir {
        refused: refused.join("; "),
    })
}

/// `postmaster.pid` ends with the server's status; "ready" means it accepts connections.
pub(super) fn accepts_connections(lock_file: &Path) -> bool {
    fs::read_to_string(lock_file)
        .is_ok_and(|text| text.lines().nth(7).map(str::trim) == Some("ready"))
}

/// A fresh data dir at `data`: a copy of the machine's cached one (see [`template`]), or
/// `initdb`'s, then kept as the cache.
fn initialized(
    bins: &PgBinaries,
    user: &RunAs,
    root: &Path,
    dir: &Path,
    data: &Path,
) -> Result<(), InfraError> {
    let owner = user.0.as_ref().map(|u| (u.uid, u.gid));
    let key = template::key(
        &bins.initdb,
        owner.map_or(geteuid(), |(uid, _)| uid).as_raw(),
    );
    if let Some(cache) = template::cached(root, &key)
        && template::copy_tree(&cache, data, owner).is_ok()
    {
        return Ok(());
    }
    // A failed copy may have left part of one behind.
    let _ = fs::remove_dir_all(data);
    initdb(bins, user, dir, data)?;
    template::keep(root, &key, data);
    Ok(())
}

/// The settings of every throwaway server, the `postgres` image's included.
pub(super) const SERVER_SETTINGS: [&str; 8] = [
    "listen_addresses=127.0.0.1",
    // A throwaway server need not survive a crash: skip the disk flushes.
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    // Dynamic shared memory as files in the data dir, not in /dev/shm: a killed server's
    // segments then go with its dir instead of staying forever.
    "dynamic_shared_memory_type=mmap",
    // Parallel tests each hold a pool of connections.
    "max_connections=300",
    // Its files may be in memory: recycle the WAL early instead of up to 1 GB.
    "max_wal_size=96MB",
    "min_wal_size=32MB",
];

/// A throwaway server's folder, ready to start a server in: its data directory
/// initialised (a copy of the cached template), a socket directory, both owned by the
/// user the server runs as. The folder goes when `dir` drops.
pub(super) struct Prepared {
    pub bins: PgBinaries,
    pub user: RunAs,
    pub dir: TempDir,
    pub data: PathBuf,
    pub socket: PathBuf,
}

impl Prepared {
    pub fn new() -> Result<Self, InfraError> {
        let bins = binaries::find()?;
        let user = RunAs::detect()?;
        let root = server_root(&bins, &user)?;
        let dir = tempdir::create_in("pg", &root)?;
        let data = dir.path().join("data");
        let socket = dir.path().join("socket");
        fs::create_dir(&socket).map_err(|source| InfraError::Io {
            action: "create the socket dir",
            path: socket.clone(),
            source,
        })?;
        user.give(dir.path())?;
        user.give(&socket)?;
        initialized(&bins, &user, &root, dir.path(), &data)?;
        Ok(Prepared {
            bins,
            user,
            dir,
            data,
            socket,
        })
    }
}

fn initdb(bins: &PgBinaries, user: &RunAs, dir: &Path, data: &Path) -> Result<(), InfraError> {
    let mut command = Command::new(&bins.initdb);
    command
        .arg("--pgdata")
        .arg(data)
        .args(["--no-sync", "--auth=trust", "--username=postgres"])
        .args(["--encoding=UTF8", "--locale=C", "--no-instructions"])
        .current_dir(dir)
        .stdin(Stdio::null());
    user.apply(&mut command);
    let output = die_with_parent(&mut command)
        .output()
        .map_err(|source| InfraError::Spawn {
            program: bins.initdb.display().to_string(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(InfraError::Initdb {
        status: output.status.to_string(),
        output: text.trim().to_owned(),
    })
}

/// The user the server runs as: `postgres` when we are root (Postgres refuses root),
/// else ourselves.
pub(super) struct RunAs(Option<User>);

impl RunAs {
    pub(super) fn detect() -> Result<Self, InfraError> {
        if !geteuid().is_root() {
            return Ok(Self(None));
        }
        match User::from_name("postgres") {
            Ok(Some(user)) => Ok(Self(Some(user))),
            Ok(None) => Err(InfraError::PostgresUser {
                reason: "no such user (install postgresql, or run as another user)".to_owned(),
            }),
            Err(errno) => Err(InfraError::PostgresUser {
                reason: errno.to_string(),
            }),
        }
    }

    pub(super) fn apply(&self, command: &mut Command) {
        if let Some(user) = &self.0 {
            command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
    }

    /// Runs `program --version` as this user in `dir`: whether that user can enter `dir`
    /// (groups, ACLs and all, exactly as the server will).
    fn probe(&self, program: &Path, dir: &Path) -> std::io::Result<()> {
        let mut command = Command::new(program);
        command
            .arg("--version")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.apply(&mut command);
        let status = die_with_parent(&mut command).status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "{} --version exited with {status}",
                program.display()
            )))
        }
    }

    pub(super) fn give(&self, path: &Path) -> Result<(), InfraError> {
        let Some(user) = &self.0 else {
            return Ok(());
        };
        chown(path, Some(user.uid), Some(user.gid)).map_err(|errno| InfraError::Io {
            action: "hand to the postgres user",
            path: path.to_owned(),
            source: errno.into(),
        })
    }
}
