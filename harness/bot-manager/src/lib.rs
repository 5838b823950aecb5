//! The reference stop-flow service: a faithful Rust bot-manager (protocol.md), bugs
//! included in its `legacy` profile.

pub mod api;
pub mod app;
pub mod bus;
pub mod callback_auth;
pub mod config;
pub mod containers;
pub mod db;
pub mod error;
pub mod profile;
pub mod server;
pub mod stop;
pub mod transitions;
pub mod workers;

pub use app::{AppState, StartupError, run};
pub use config::Config;
