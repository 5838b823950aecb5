//! A started runtime: its listeners, its HTTP servers and its shutdown.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use chrono::{DateTime, Utc};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{ListenAddr, RuntimeConfig};
use crate::events::EventSubscription;
use crate::http;
use crate::process::Spawner;
use crate::supervisor::{Settings, Supervisor};

/// How long shutdown waits for killed processes to be reaped and servers to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("start the runtime: give at least one unix socket or TCP address to serve on")]
    NoListener,
    #[error(
        "serve on {0}: it is not a loopback address, and whoever reaches this API can run \
         processes as the runtime's user (as with a Docker socket); serve on loopback or a \
         unix socket, or allow it explicitly (--allow-non-loopback-listen)"
    )]
    NotLoopback(SocketAddr),
    #[error("use socket path {}: it exists and is not a socket", .0.display())]
    NotASocket(PathBuf),
    #[error("use socket path {}: another process is serving on it", .0.display())]
    SocketInUse(PathBuf),
    #[error("bind unix socket {}: {source}", path.display())]
    BindUnix { path: PathBuf, source: io::Error },
    #[error("bind TCP address {addr}: {source}")]
    BindTcp { addr: SocketAddr, source: io::Error },
    #[error("create log directory {}: {source}", path.display())]
    LogDir { path: PathBuf, source: io::Error },
    #[error("start the process spawner thread: {0}")]
    Spawner(io::Error),
}

/// A running runtime. Dropping it kills every container process; [`Runtime::shutdown`]
/// also waits for them and for the servers.
pub struct Runtime {
    supervisor: Arc<Supervisor>,
    addresses: Vec<ListenAddr>,
    stop_serving: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    socket_files: Vec<PathBuf>,
    finished: bool,
}

/// Socket files created so far; removed again unless startup completes.
struct SocketFiles(Vec<PathBuf>);

impl Drop for SocketFiles {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Runtime {
    /// Binds every listener, then serves. Must be called inside a tokio runtime, which
    /// then also reaps the container processes. On error nothing is left behind.
    pub async fn start(config: RuntimeConfig) -> Result<Runtime, StartError> {
        if config.sockets.is_empty() && config.listen.is_empty() {
            return Err(StartError::NoListener);
        }
        if !config.allow_non_loopback
            && let Some(addr) = config.listen.iter().find(|addr| !is_loopback(addr))
        {
            return Err(StartError::NotLoopback(*addr));
        }
        if let Some(dir) = &config.log_dir {
            std::fs::create_dir_all(dir).map_err(|source| StartError::LogDir {
                path: dir.clone(),
                source,
            })?;
        }
        let mut socket_files = SocketFiles(Vec::new());
        let mut unix = Vec::new();
        for path in &config.sockets {
            prepare_socket_path(path)?;
            let listener = UnixListener::bind(path).map_err(|source| StartError::BindUnix {
                path: path.clone(),
                source,
            })?;
            socket_files.0.push(path.clone());
            unix.push((path.clone(), listener));
        }
        let mut tcp = Vec::new();
        for addr in &config.listen {
            let bind_error = |source| StartError::BindTcp {
                addr: *addr,
                source,
            };
            let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
            let local = listener.local_addr().map_err(bind_error)?;
            tcp.push((local, listener));
        }

        let spawner = Spawner::start().map_err(StartError::Spawner)?;
        let settings = Settings {
            env: config.env,
            host_aliases: config.host_aliases,
            log_dir: config.log_dir,
        };
        let supervisor = Supervisor::new(config.images, settings, spawner);
        let app = tower::ServiceExt::map_request(
            http::router(Arc::clone(&supervisor)),
            http::strip_version as fn(Request) -> Request,
        );
        let (stop_serving, serving) = watch::channel(false);
        let stopped = move || {
            let mut serving = serving.clone();
            async move {
                let _ = serving.wait_for(|stop| *stop).await;
            }
        };

        let mut addresses = Vec::new();
        let mut servers = Vec::new();
        for (path, listener) in unix {
            let server = axum::serve(
                listener,
                axum::ServiceExt::<Request>::into_make_service(app.clone()),
            )
            .with_graceful_shutdown(stopped());
            let label = path.display().to_string();
            servers.push(tokio::spawn(async move {
                if let Err(err) = server.await {
                    tracing::error!("failed to serve on {label}: {err}");
                }
            }));
            addresses.push(ListenAddr::Unix(path));
        }
        for (addr, listener) in tcp {
            let server = axum::serve(
                listener,
                axum::ServiceExt::<Request>::into_make_service(app.clone()),
            )
            .with_graceful_shutdown(stopped());
            servers.push(tokio::spawn(async move {
                if let Err(err) = server.await {
                    tracing::error!("failed to serve on {addr}: {err}");
                }
            }));
            addresses.push(ListenAddr::Tcp(addr));
        }
        Ok(Runtime {
            supervisor,
            addresses,
            stop_serving,
            servers,
            socket_files: std::mem::take(&mut socket_files.0),
            finished: false,
        })
    }

    /// Every address served, in the order given (sockets first), with real TCP ports.
    pub fn addresses(&self) -> &[ListenAddr] {
        &self.addresses
    }

    /// The first TCP address served, if any.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.addresses.iter().find_map(|addr| match addr {
            ListenAddr::Tcp(addr) => Some(*addr),
            ListenAddr::Unix(_) => None,
        })
    }

    /// The first unix socket served, if any.
    pub fn socket_path(&self) -> Option<&Path> {
        self.addresses.iter().find_map(|addr| match addr {
            ListenAddr::Unix(path) => Some(path.as_path()),
            ListenAddr::Tcp(_) => None,
        })
    }

    /// Follows container events as `/events` streams them, replaying from `since` if given.
    pub fn events(&self, since: Option<DateTime<Utc>>) -> EventSubscription {
        self.supervisor
            .subscribe(since.and_then(|at| at.timestamp_nanos_opt()))
    }

    /// Kills every container process (forgotten ones too), stops serving, and waits a
    /// bounded time for the processes to be reaped and the servers to finish.
    pub async fn shutdown(mut self) {
        self.finished = true;
        let killed = self.supervisor.kill_all();
        self.supervisor.close_events();
        self.stop_serving.send_replace(true);
        if !self.supervisor.wait_all_exited(SHUTDOWN_GRACE).await {
            tracing::warn!("some of {killed} container processes were not reaped in time");
        }
        for server in std::mem::take(&mut self.servers) {
            let abort = server.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, server).await.is_err() {
                abort.abort();
            }
        }
        self.remove_socket_files();
    }

    fn remove_socket_files(&mut self) {
        for path in self.socket_files.drain(..) {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.supervisor.kill_all();
        self.supervisor.close_events();
        self.stop_serving.send_replace(true);
        for server in &self.servers {
            server.abort();
        }
        self.remove_socket_files();
    }
}

/// 127.0.0.0/8 or ::1, also written as an IPv4-mapped IPv6 address.
fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

/// Clears a stale socket file left by a runtime that died; refuses anything else.
fn prepare_socket_path(path: &Path) -> Result<(), StartError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(StartError::NotASocket(path.to_path_buf()));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(StartError::SocketInUse(path.to_path_buf()));
    }
    std::fs::remove_file(path).map_err(|source| StartError::BindUnix {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_127_slash_8_and_ipv6_loopback_in_any_spelling() {
        for addr in [
            "127.0.0.1:1",
            "127.9.9.9:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(is_loopback(&addr.parse().unwrap()), "{addr}");
        }
        for addr in ["0.0.0.0:1", "[::]:1", "10.0.0.1:1", "[::ffff:10.0.0.1]:1"] {
            assert!(!is_loopback(&addr.parse().unwrap()), "{addr}");
        }
    }

    // Pins: an embedder's RuntimeConfig took a non-loopback address as the CLI did.
    #[tokio::test]
    async fn an_embedded_runtime_refuses_a_non_loopback_address() {
        let images = crate::Images::parse(
            "[images.x]\ncommand = [\"/bin/true\"]\n",
            Path::new("/images.toml"),
            &crate::ProgramSearch {
                dirs: vec![],
                path_var: None,
            },
        )
        .unwrap();
        let mut config = RuntimeConfig::new(images);
        config.listen.push("0.0.0.0:0".parse().unwrap());
        let err = Runtime::start(config.clone()).await.err().expect("refused");
        assert!(matches!(err, StartError::NotLoopback(_)), "{err}");
        config.listen = vec!["127.0.0.1:0".parse().unwrap()];
        config.allow_non_loopback = false;
        Runtime::start(config)
            .await
            .expect("loopback is served")
            .shutdown()
            .await;
    }
}
