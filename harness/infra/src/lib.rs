//! Zero-configuration infrastructure for tests and the chaos engine: Postgres, Redis and
//! Toxiproxy (external through `DATABASE_URL` / `REDIS_URL` / `TOXIPROXY_URL`, else
//! containers through testcontainers or throwaway local servers, as [`provider`] chooses),
//! a database per test, and helpers for child processes that never outlive their owner.
//!
//! Everything started here dies with the process that started it (parent-death signal),
//! and leftovers of crashed runs are swept by the next run ([`sweep`]).

mod error;
mod keeper;
mod owner;
mod procfs;
pub mod tempdir;

pub mod bins;
pub mod containers;
pub mod postgres;
pub mod process;
pub mod provider;
pub mod redis;
pub mod sweep;

pub use error::InfraError;
