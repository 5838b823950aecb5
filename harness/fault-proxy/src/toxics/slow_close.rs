//! `slow_close`: when the source closes, the close (FIN) is passed on `delay` ms later,
//! after every byte before it. Removing the toxic during the wait closes at once.

use std::time::Duration;

pub(super) fn delay(delay: u64) -> Duration {
    Duration::from_millis(delay)
}
