//! A container runtime for the stop-flow harness: it serves the subset of the Docker
//! Engine API that the bot-manager and the docker CLI use, over a unix socket and/or TCP,
//! and runs each "container" as a supervised local process (its own process group, killed
//! with the runtime). A control API under `/_runtime/` injects faults. The contract is
//! `docs/interfaces.md` ("runtime") and `shared/spec/protocol.md` section 7.
//!
//! Embedding:
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use runtime::{Images, Runtime, RuntimeConfig};
//! let mut config = RuntimeConfig::new(Images::load("fixtures/images.toml".as_ref())?);
//! config.listen.push("127.0.0.1:0".parse()?);
//! let runtime = Runtime::start(config).await?;
//! println!("serving on {}", runtime.addresses()[0]);
//! runtime.shutdown().await; // kills every container process
//! # Ok(()) }
//! ```

mod admission;
mod bot_config;
pub mod cli;
mod config;
mod containers;
mod control;
mod docker_api;
mod error;
mod events;
mod faults;
mod http;
mod images;
mod logs;
mod process;
mod rules;
mod server;
mod supervisor;

pub use admission::{
    EnvScope, MAX_ENV_BYTES, MAX_NAME_LEN, MAX_VAR_BYTES, MAX_VARS, Refusal, steers_execution,
};
pub use config::{EnvVar, HostAlias, ListenAddr, RuntimeConfig};
pub use control::ContainerRecord;
pub use events::{Actor, Event, EventSubscription};
pub use faults::{Faults, FaultsPatch};
pub use images::{Image, Images, ImagesError, ProgramSearch};
pub use rules::{Rule, RuleMatch, RuleSpec};
pub use server::{Runtime, StartError};

/// The Docker API version this runtime answers as.
pub const API_VERSION: &str = "1.47";
/// The oldest Docker API version clients may use.
pub const MIN_API_VERSION: &str = "1.24";
