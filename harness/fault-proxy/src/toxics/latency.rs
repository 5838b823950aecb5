//! `latency`: each chunk waits `latency` ± `jitter` ms, counted from when it was read, so a
//! stream is delayed without its throughput being cut (as Toxiproxy does since 2.1).

use std::time::Duration;

use super::{Key, Piece};
use crate::rng::Rng;

/// `latency` plus a uniform draw from `[-jitter, jitter)`, never below zero.
pub(super) fn delay(latency: u64, jitter: u64, rng: &mut Rng) -> Duration {
    let mut millis = i128::from(latency);
    if jitter > 0 {
        millis += i128::from(rng.below(jitter.saturating_mul(2))) - i128::from(jitter);
    }
    Duration::from_millis(u64::try_from(millis.max(0)).unwrap_or(u64::MAX))
}

pub(super) fn apply(pieces: &mut [Piece], latency: u64, jitter: u64, rng: &mut Rng, key: Key) {
    for piece in pieces {
        let wait = delay(latency, jitter, rng);
        if !wait.is_zero() {
            piece.at = super::later(piece.at, wait);
            piece.delayed_by.push(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_latency_plus_or_minus_jitter() {
        let mut rng = Rng::new(3);
        let delays: Vec<u64> = (0..1000)
            .map(|_| delay(100, 20, &mut rng).as_millis() as u64)
            .collect();
        assert!(delays.iter().all(|d| (80..120).contains(d)), "{delays:?}");
        assert!(
            delays.iter().any(|d| *d != delays[0]),
            "jitter varies the delay"
        );
    }

    #[test]
    fn jitter_larger_than_latency_never_goes_negative() {
        let mut rng = Rng::new(4);
        assert!((0..1000).all(|_| delay(1, 50, &mut rng) <= Duration::from_millis(51)));
    }
}
