//! Seeded randomness: jitter, toxicity rolls and slice sizes replay from the server's seed.
//!
//! Each connection direction draws from streams of its own, derived from (seed, proxy
//! name, connection number, direction, purpose). So the n-th connection of a proxy sees
//! the same sequence in every run with that seed, however other connections interleave.

use crate::model::Stream;

/// SplitMix64: small, fast, and stable across versions (unlike `rand`'s `StdRng`).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

/// What a stream is drawn for, so that rolls do not shift the jitter sequence.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Purpose {
    /// Whether each toxic applies to the connection (toxicity).
    Toxicity,
    /// Per-chunk values: jitter, slice sizes.
    Data,
}

impl Rng {
    #[cfg(test)]
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The stream for one purpose of one direction of one connection of a proxy.
    pub(crate) fn for_connection(
        seed: u64,
        proxy: &str,
        connection: u64,
        direction: Stream,
        purpose: Purpose,
    ) -> Self {
        // FNV-1a over the identifying parts, then mixed with the seed.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for byte in bytes {
                hash ^= u64::from(*byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        };
        eat(proxy.as_bytes());
        eat(&connection.to_le_bytes());
        eat(direction.as_str().as_bytes());
        eat(&[purpose as u8]);
        let mut mixer = Rng(seed ^ hash);
        Rng(mixer.next_u64())
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0); the modulo bias is negligible for the small n used here.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        self.next_u64() % n
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(mut rng: Rng) -> Vec<u64> {
        (0..8).map(|_| rng.below(1000)).collect()
    }

    #[test]
    fn the_same_identity_gives_the_same_stream_and_another_differs() {
        let a = Rng::for_connection(7, "redis", 0, Stream::Downstream, Purpose::Data);
        let b = Rng::for_connection(7, "redis", 0, Stream::Downstream, Purpose::Data);
        assert_eq!(draws(a), draws(b));
        for other in [
            Rng::for_connection(8, "redis", 0, Stream::Downstream, Purpose::Data),
            Rng::for_connection(7, "pg", 0, Stream::Downstream, Purpose::Data),
            Rng::for_connection(7, "redis", 1, Stream::Downstream, Purpose::Data),
            Rng::for_connection(7, "redis", 0, Stream::Upstream, Purpose::Data),
            Rng::for_connection(7, "redis", 0, Stream::Downstream, Purpose::Toxicity),
        ] {
            let same = Rng::for_connection(7, "redis", 0, Stream::Downstream, Purpose::Data);
            assert_ne!(draws(other), draws(same));
        }
    }

    #[test]
    fn unit_stays_in_the_half_open_interval() {
        let mut rng = Rng::new(1);
        assert!(
            (0..10_000)
                .map(|_| rng.unit())
                .all(|x| (0.0..1.0).contains(&x))
        );
    }
}
