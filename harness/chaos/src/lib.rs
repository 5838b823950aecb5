//! The chaos engine: scenarios as data, a recorded history, invariant checkers, verdicts
//! and reports, for the stop flow of `shared/spec/protocol.md`.

pub mod capacity;
pub mod check;
pub mod cli;
pub mod conform;
pub mod engine;
pub mod explore;
pub mod fixtures;
pub mod history;
pub mod links;
pub mod load;
pub mod profiles;
pub mod report;
pub mod results;
pub mod run;
pub mod scenario;
pub mod shard;
pub mod signoff;
pub mod stack;
pub mod stats;
pub mod sut;
pub mod verdict;
