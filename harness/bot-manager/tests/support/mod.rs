//! The whole stack for integration tests: a database and Redis of the test's own, the
//! `runtime`, and the `bot-manager`, as real processes.

#![allow(dead_code)]

pub mod stack;

pub use stack::{BotLog, Stack, StackOptions};
