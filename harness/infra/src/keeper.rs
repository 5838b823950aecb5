//! A server child owned by a thread of its own.
//!
//! Linux sends PR_SET_PDEATHSIG when the *thread* that spawned a child exits. A server
//! spawned from a test thread or a tokio blocking thread would die with that thread; one
//! spawned from its keeper thread lives exactly as long as its handle (or the process).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::InfraError;
use crate::process::{ChildGuard, POLL_INTERVAL, die_with_parent};
use crate::tempdir::{self, SERVER_PID_FILE};

/// Bytes of a server's log quoted in errors.
const LOG_TAIL_BYTES: u64 = 4096;

pub(crate) struct ServerSpec {
    /// Names the server in errors and the keeper thread.
    pub name: &'static str,
    pub command: Command,
    /// The server's temp dir: gets the pid file.
    pub dir: PathBuf,
    /// Receives the server's stdout and stderr.
    pub log: PathBuf,
    pub ready_deadline: Duration,
    /// Asks the server to shut down cleanly on stop...
    pub stop_signal: Signal,
    /// ...before SIGKILL after this long.
    pub stop_grace: Duration,
}

#[derive(Debug)]
pub(crate) struct KeptServer {
    pid: u32,
    /// Dropping it tells the keeper to stop the server.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl KeptServer {
    /// Spawns the server on a new keeper thread and returns once `is_ready` holds (polled
    /// until the spec's deadline); a server that exits or is not ready in time is killed.
    pub(crate) fn start(
        spec: ServerSpec,
        is_ready: impl FnMut() -> bool + Send + 'static,
    ) -> Result<Self, InfraError> {
        let (started_tx, started_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let name = spec.name;
        let thread = thread::Builder::new()
            .name(format!("infra-{name}"))
            .spawn(move || keep(spec, is_ready, &started_tx, &stop_rx))
            .map_err(|source| InfraError::Spawn {
                program: format!("a keeper thread for {name}"),
                source,
            })?;
        let started = started_rx.recv();
        match started {
            Ok(Ok(pid)) => Ok(Self {
                pid,
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            Ok(Err(err)) => {
                let _ = thread.join();
                Err(err)
            }
            Err(_) => {
                let _ = thread.join();
                Err(InfraError::Spawn {
                    program: name.to_owned(),
                    source: std::io::Error::other("its keeper thread panicked"),
                })
            }
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }
}

impl Drop for KeptServer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn keep(
    mut spec: ServerSpec,
    is_ready: impl FnMut() -> bool,
    started: &mpsc::Sender<Result<u32, InfraError>>,
    stop: &mpsc::Receiver<()>,
) {
    let mut guard = match launch(&mut spec, is_ready) {
        Ok(guard) => guard,
        Err(err) => {
            let _ = started.send(Err(err));
            return;
        }
    };
    if started.send(Ok(guard.id())).is_err() {
        return;
    }
    // Returns when the handle is dropped (or on an explicit stop message).
    let _ = stop.recv();
    guard.signal(spec.stop_signal);
    if let Err(err) = guard.wait_exit_blocking(spec.stop_grace) {
        tracing::warn!("failed to {}; killing it", crate::error::chain(&err));
    }
    // Dropping the guard SIGKILLs anything left in the server's process group and reaps it.
}

fn launch(
    spec: &mut ServerSpec,
    mut is_ready: impl FnMut() -> bool,
) -> Result<ChildGuard, InfraError> {
    let log = File::create(&spec.log).map_err(|source| InfraError::Io {
        action: "create the server log",
        path: spec.log.clone(),
        source,
    })?;
    let log_err = log.try_clone().map_err(|source| InfraError::Io {
        action: "share the server log",
        path: spec.log.clone(),
        source,
    })?;
    die_with_parent(&mut spec.command)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    let child = spec.command.spawn().map_err(|source| InfraError::Spawn {
        program: spec.command.get_program().to_string_lossy().into_owned(),
        source,
    })?;
    let mut guard = ChildGuard::from_std(child, spec.name);
    tempdir::write(&spec.dir.join(SERVER_PID_FILE), &guard.id().to_string())?;

    let until = Instant::now() + spec.ready_deadline;
    loop {
        if let Some(status) = guard.try_exit_status()? {
            return Err(InfraError::ServerExited {
                server: spec.name,
                status: status.to_string(),
                log: log_tail(&spec.log),
            });
        }
        if is_ready() {
            return Ok(guard);
        }
        if Instant::now() >= until {
            return Err(InfraError::ServerNotReady {
                server: spec.name,
                deadline: spec.ready_deadline,
                log: log_tail(&spec.log),
            });
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// The end of a log file, for error messages; never fails.
pub(crate) fn log_tail(path: &Path) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).trim_end().to_owned())
    };
    read().unwrap_or_else(|err| format!("(no log at {}: {err})", path.display()))
}

/// True if `err` is a server that exited because its port was taken meanwhile.
pub(crate) fn lost_port_race(err: &InfraError) -> bool {
    matches!(err, InfraError::ServerExited { log, .. } if log.contains("Address already in use"))
}
