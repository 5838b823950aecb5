//! Faults the runtime injects into its own Docker API on request.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faults {
    /// Every stop waits this long before doing anything.
    pub stop_delay_ms: u64,
    /// Stop answers 404 and leaves the process running (a runtime that lost track).
    pub stop_answers_404: bool,
    /// Start answers 500 and leaves the container created.
    pub start_fails: bool,
    /// Every start waits this long first (a slow pull or a loaded host).
    pub start_delay_ms: u64,
}

/// The body of `PUT /_runtime/faults`: what is given is set, the rest is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsPatch {
    pub stop_delay_ms: Option<u64>,
    pub stop_answers_404: Option<bool>,
    pub start_fails: Option<bool>,
    pub start_delay_ms: Option<u64>,
}

impl Faults {
    pub fn apply(&mut self, patch: FaultsPatch) {
        if let Some(delay) = patch.stop_delay_ms {
            self.stop_delay_ms = delay;
        }
        if let Some(flag) = patch.stop_answers_404 {
            self.stop_answers_404 = flag;
        }
        if let Some(flag) = patch.start_fails {
            self.start_fails = flag;
        }
        if let Some(delay) = patch.start_delay_ms {
            self.start_delay_ms = delay;
        }
    }
}
