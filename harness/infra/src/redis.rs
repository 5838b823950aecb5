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
        })
    }

    /// A server someone else runs. The URL is not checked here.
    pub fn external(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            dir: None,
            pid: None,
            throwaway: None,
        }
    }

    /// `$REDIS_URL` if set (and not empty), else [`Self::start_throwaway`].
    pub fn from_env() -> Result<Self, InfraError> {
        match std::env::var("REDIS_URL") {
            Ok(url) if !url.trim().is_empty() => Ok(Self::external(url.trim())),
            _ => Self::start_throwaway(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn is_throwaway(&self) -> bool {
        self.throwaway.is_some()
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
/// ids: pub/sub channels are global across Redis dbs), else a fresh throwaway server per
/// call (about 40 ms). Dropping it stops a throwaway server.
pub fn test_redis() -> Result<RedisServer, InfraError> {
    RedisServer::from_env()
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
