//! `timeout`: no data passes (what arrives is dropped, as in Toxiproxy); the connection
//! closes `timeout` ms after the toxic applied, never if 0. Removing the toxic closes the
//! connections it stalled, as Toxiproxy's cleanup does: their streams lost data.

use std::time::Duration;

use tokio::time::Instant;

/// When a connection stalled since `since` closes; None: never.
pub(super) fn closes_at(since: Instant, timeout: u64) -> Option<Instant> {
    (timeout > 0).then(|| super::later(since, Duration::from_millis(timeout)))
}
