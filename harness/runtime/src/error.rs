//! Errors of container operations. Their texts are Docker's own where Docker has one,
//! because clients match on them (`No such container: x`, `No such image: x`).

use std::io;

use crate::admission::Refusal;

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("multiple IDs found with provided prefix: {0}")]
    AmbiguousPrefix(String),
    #[error(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". \
         You have to remove (or rename) that container to be able to reuse that name."
    )]
    NameConflict { name: String, id: String },
    #[error("Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    #[error("Container {0} is not running")]
    NotRunning(String),
    #[error("Container {0} is already paused")]
    AlreadyPaused(String),
    #[error("Container {0} is not paused")]
    NotPaused(String),
    #[error(
        "cannot remove container \"/{0}\": container is running: \
         stop the container before removing or force remove"
    )]
    RemoveRunning(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("failed to {0}")]
    Refused(#[from] Refusal),
    #[error("failed to start container {name}: {source}")]
    Spawn { name: String, source: io::Error },
    #[error("failed to publish port {port} of container {name} on 127.0.0.1:{host_port}: {source}")]
    Publish {
        name: String,
        port: String,
        host_port: u16,
        source: io::Error,
    },
    #[error("failed to signal container {name}: {source}")]
    Signal { name: String, source: io::Error },
    #[error("failed to {operation} container {name}: injected fault {fault}")]
    InjectedFault {
        operation: &'static str,
        name: String,
        fault: &'static str,
    },
    #[error("container {0} did not exit after SIGKILL")]
    KillTimeout(String),
    #[error("the runtime is shutting down")]
    ShuttingDown,
}
