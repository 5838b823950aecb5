//! The one error type of this crate. Messages read after "failed to".

use std::io;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InfraError {
    #[error("find {program}: {hint}")]
    ProgramNotFound { program: String, hint: String },

    #[error("spawn {program}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },

    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("pick a free port on 127.0.0.1")]
    FreePort(#[source] io::Error),

    #[error(
        "look up the `postgres` user (postgres refuses to run as root, so throwaway servers run as it): {reason}"
    )]
    PostgresUser { reason: String },

    #[error(
        "find a folder for the throwaway postgres that the `postgres` user can enter (postgres refuses to run as root, so it runs as that user): {refused}; set TMPDIR to a folder it can enter, or set DATABASE_URL"
    )]
    PostgresDir { refused: String },

    #[error("start throwaway postgres: initdb exited with {status}: {output}")]
    Initdb { status: String, output: String },

    #[error(
        "start throwaway {server}: it exited with {status} before accepting connections; log:\n{log}"
    )]
    ServerExited {
        server: &'static str,
        status: String,
        log: String,
    },

    #[error("start throwaway {server}: not ready within {deadline:?}; log:\n{log}")]
    ServerNotReady {
        server: &'static str,
        deadline: Duration,
        log: String,
    },

    #[error("start the shared test postgres (first attempt in this process): {0}")]
    SharedServer(String),

    #[error("use {url:?} as a database URL: {reason}")]
    InvalidUrl { url: String, reason: String },

    #[error("{action} on {server}")]
    Sql {
        action: String,
        server: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("{action} on {server}: no answer within {deadline:?}")]
    SqlTimeout {
        action: String,
        server: String,
        deadline: Duration,
    },

    #[error("signal {program} (pid {pid}) with {signal}")]
    Signal {
        program: String,
        pid: i32,
        signal: nix::sys::signal::Signal,
        #[source]
        source: nix::Error,
    },

    #[error("check whether {program} (pid {pid}) has exited")]
    Wait {
        program: String,
        pid: i32,
        #[source]
        source: io::Error,
    },

    #[error("see {program} (pid {pid}) exit within {deadline:?}")]
    ExitTimeout {
        program: String,
        pid: i32,
        deadline: Duration,
    },

    #[error("see a matching line from {program} within {deadline:?}; last lines:\n{tail}")]
    LineTimeout {
        program: String,
        deadline: Duration,
        tail: String,
    },

    #[error(
        "see a matching line from {program}: its stdout closed first (exit: {status}); last lines:\n{tail}"
    )]
    LineMissing {
        program: String,
        status: String,
        tail: String,
    },

    #[error("read the stdout of {program}")]
    ReadOutput {
        program: String,
        #[source]
        source: io::Error,
    },

    #[error(
        "find workspace binary `{name}`: {} does not exist (build it with `cargo build --workspace`)",
        path.display()
    )]
    MissingBinary { name: String, path: PathBuf },

    #[error("choose where the servers come from: {reason}")]
    Provider { reason: String },

    #[error("{action}: {reason}")]
    Container { action: String, reason: String },

    #[error(
        "use {what}: --infra env takes every server from the environment, and {var} is not set"
    )]
    NotInEnvironment {
        what: &'static str,
        var: &'static str,
    },
}

/// Renders an error with its chain of causes on one line, for logs and cached errors.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
