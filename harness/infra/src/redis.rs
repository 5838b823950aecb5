//! Redis for tests and runs: an external server or a throwaway one per caller.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::InfraError;
use crate::keeper::{self, KeptServer, ServerSpec};
use crate::process::free_port;
use crate::tempdir;

/// A hang guard; Redis answers PING within about 40 ms of starting.
const READY_DEADLINE: Duration = Duration::from_secs(20);
/// Without persistence a SIGTERM shutdown is immediate.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Bounds one PING while waiting for readiness.
const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// Tries at a free port, in case another process takes the one picked first.
const PORT_ATTEMPTS: u32 = 3;

/// A Redis server: external (`$REDIS_URL`) or a throwaway one this process started.
///
/// A throwaway server (`redis-server` on a free port of 127.0.0.1, no persistence, not
/// daemonized, in a temp dir `stopflow-redis-<pid>-<rand>`) dies with this process and is
/// stopped, and its dir removed, on drop.
#[derive(Debug)]
pub struct RedisServer {
    url: String,
    dir: Option<PathBuf>,
    pid: Option<u32>,
    throwaway: Option<Throwaway>,
    container: Option<crate::containers::ContainerHandle>,
}

#[derive(Debug)]
struct Throwaway {
    // Declaration order is drop order: stop the server before removing its dir.
    _server: KeptServer,
    _dir: TempDir,
}

impl RedisServer {
    /// Starts `redis-server` on a keeper thread and returns once it answers PING.
    pub fn start_throwaway() -> Result<Self, InfraError> {
        crate::sweep::sweep_leftovers_once();
        let dir = tempdir::create("redis")?;
        let mut attempt = 1;
        let (server, port) = loop {
            let port = free_port()?;
            let mut command = Command::new("redis-server");
            command
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(dir.path())
                .current_dir(dir.path());
            let spec = ServerSpec {
                name: "redis",
                command,
                dir: dir.path().to_owned(),
                log: dir.path().join("redis.log"),
                ready_deadline: READY_DEADLINE,
                stop_signal: Signal::SIGTERM,
                stop_grace: STOP_GRACE,
            };
            match KeptServer::start(spec, move || answers_ping(port)) {
                Ok(server) => break (server, port),
                Err(InfraError::Spawn { source, .. }) if source.kind() == ErrorKind::NotFound => {
                    return Err(InfraError::ProgramNotFound {
                        program: "redis-server".to_owned(),
                        hint: "it is not on PATH (install redis-server, or set REDIS_URL)"
                            .to_owned(),
                    });
                }
                Err(err) if attempt < PORT_ATTEMPTS && keeper::lost_port_race(&err) => attempt += 1,
                Err(err) => return Err(err),
            }
        };
        Ok(Self {
            url: format!("redis://127.0.0.1:{port}/"),
            dir: Some(dir.path().to_owned()),
            pid: Some(server.pid()),
            throwaway: Some(Throwaway {
                _server: server,
                _dir: dir,
            }),
            container: None,
        })
    }

    /// A Redis container through testcontainers (see [`crate::containers`]), removed on
    /// drop.
    pub async fn start_container() -> Result<Self, InfraError> {
        let container = crate::containers::start_redis().await?;
        Ok(Self::of_container(container))
    }

    /// [`Self::start_container`] for a caller without a runtime (blocks).
    pub fn start_container_blocking() -> Result<Self, InfraError> {
        let container = crate::containers::start_redis_blocking()?;
        Ok(Self::of_container(container))
    }

    fn of_container(container: crate::containers::ContainerHandle) -> Self {
        Self {
            url: format!("redis://{}:{}/", container.host(), container.port()),
            dir: None,
            pid: None,
            throwaway: None,
            container: Some(container),
        }
    }

    /// A server someone else runs. The URL is not checked here.
    pub fn external(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            dir: None,
            pid: None,
            throwaway: None,
            container: None,
        }
    }

    /// `$REDIS_URL` if set (and not empty), else the provider's server
    /// ([`crate::provider`]): a container, or [`Self::start_throwaway`]. Blocks.
    pub fn from_env() -> Result<Self, InfraError> {
        match std::env::var("REDIS_URL") {
            Ok(url) if !url.trim().is_empty() => Ok(Self::external(url.trim())),
            _ => match crate::provider::current()?.provider {
                crate::provider::Provider::Containers { .. } => Self::start_container_blocking(),
                crate::provider::Provider::Local => Self::start_throwaway(),
                crate::provider::Provider::Env => Err(InfraError::NotInEnvironment {
                    what: "Redis",
                    var: "REDIS_URL",
                }),
            },
        }
    }

    /// [`Self::from_env`] without blocking the caller's runtime.
    pub async fn from_env_async() -> Result<Self, InfraError> {
        match std::env::var("REDIS_URL") {
            Ok(url) if !url.trim().is_empty() => Ok(Self::external(url.trim())),
            _ => match crate::provider::current()?.provider {
                crate::provider::Provider::Containers { .. } => Self::start_container().await,
                crate::provider::Provider::Local => {
                    tokio::task::spawn_blocking(Self::start_throwaway)
                        .await
                        .map_err(|err| InfraError::Spawn {
                            program: "redis-server".to_owned(),
                            source: std::io::Error::other(err.to_string()),
                        })?
                }
                crate::provider::Provider::Env => Err(InfraError::NotInEnvironment {
                    what: "Redis",
                    var: "REDIS_URL",
                }),
            },
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A server of the caller's own (throwaway or a container), which no one else uses.
    pub fn is_throwaway(&self) -> bool {
        self.throwaway.is_some() || self.container.is_some()
    }

    /// Stops (SIGSTOP) or resumes (SIGCONT) a server of the caller's own: a signal to a
    /// throwaway server, Docker's pause or unpause of a container. An external server
    /// is not ours to signal.
    pub fn signal(&self, signal: Signal) -> Result<(), InfraError> {
        if let Some(container) = &self.container {
            return match signal {
                Signal::SIGSTOP => container.pause(true),
                Signal::SIGCONT => container.pause(false),
                other => Err(InfraError::Container {
                    action: format!("send {other} to the Redis container"),
                    reason: "a container takes only SIGSTOP (pause) and SIGCONT (unpause) here"
                        .to_owned(),
                }),
            };
        }
        let Some(pid) = self.pid else {
            return Err(InfraError::Container {
                action: format!("send {signal} to Redis"),
                reason: "it is an external server (REDIS_URL)".to_owned(),
            });
        };
        let pid = i32::try_from(pid).unwrap_or(i32::MAX);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).map_err(|source| {
            InfraError::Signal {
                program: "redis-server".to_owned(),
                pid,
                signal,
                source,
            }
        })
    }

    /// The temp dir of a throwaway server.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The server's pid on a throwaway server (for pausing it, say).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }
}

/// A Redis for one test: with `$REDIS_URL` the external server (isolate by unique meeting
/// ids: pub/sub channels are global across Redis dbs), else a fresh server per call from
/// the provider (a throwaway one, about 40 ms, or a container). Dropping it stops it.
pub fn test_redis() -> Result<RedisServer, InfraError> {
    RedisServer::from_env()
}

/// [`test_redis`] without blocking the caller's runtime.
pub async fn test_redis_async() -> Result<RedisServer, InfraError> {
    RedisServer::from_env_async().await
}

fn answers_ping(port: u16) -> bool {
    let ping = || -> std::io::Result<bool> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut stream = TcpStream::connect_timeout(&addr, PING_TIMEOUT)?;
        stream.set_read_timeout(Some(PING_TIMEOUT))?;
        stream.write_all(b"PING\r\n")?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply)?;
        Ok(&reply == b"+PONG\r\n")
    };
    ping().unwrap_or(false)
}
