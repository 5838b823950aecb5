//! `reset_peer`: `timeout` ms after the toxic applies to a connection (at once if 0), both
//! of its sockets are closed with SO_LINGER 0, so each peer reads a connection reset.
//! Until then the direction is held: nothing is read or written.
//!
//! Toxiproxy arms the timer on the first data through the direction instead; arming it
//! when the toxic applies also resets idle connections (a subscriber waiting for a message).

use std::time::Duration;

use tokio::time::Instant;

pub(super) fn resets_at(since: Instant, timeout: u64) -> Instant {
    super::later(since, Duration::from_millis(timeout))
}
