//! Postgres for tests and runs: an external server or a throwaway one, and a database of
//! its own per test or run.

mod binaries;
mod database;
pub mod image;
mod server;
mod shared;
mod template;

pub use database::TestDatabase;
pub use server::PostgresServer;
pub use shared::{shared_server, test_database};

pub(crate) use database::{DB_PREFIX, connect as database_connect, drop_database, redact};
