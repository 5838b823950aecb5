//! `bandwidth`: at most `rate` KB/s (1 KB = 1000 bytes, as Toxiproxy counts). A chunk is
//! released once its bytes would have crossed the link; a large one goes out in pieces of
//! 100 ms worth, as Toxiproxy sends them.

use std::time::Duration;

use tokio::time::Instant;

use super::{Key, Piece, later};

/// When the bytes sent so far would have crossed a link of `rate` KB/s.
fn transmission_time(bytes: u64, rate: u64) -> Duration {
    // bytes / (rate * 1000) s = bytes * 1e6 / rate ns
    let nanos = u128::from(bytes) * 1_000_000 / u128::from(rate.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// `clock` is when the link is next free, carried from chunk to chunk.
pub(super) fn apply(
    pieces: Vec<Piece>,
    rate: u64,
    clock: &mut Option<Instant>,
    key: Key,
) -> Vec<Piece> {
    let burst = usize::try_from(rate.saturating_mul(100))
        .unwrap_or(usize::MAX)
        .max(1);
    let mut out = Vec::with_capacity(pieces.len());
    for piece in pieces {
        let start = clock.map_or(piece.at, |free| free.max(piece.at));
        let mut sent = 0usize;
        let mut rest = piece.data;
        while !rest.is_empty() {
            let part = rest.split_to(burst.min(rest.len()));
            sent += part.len();
            let mut delayed_by = piece.delayed_by.clone();
            delayed_by.push(key);
            out.push(Piece {
                at: later(start, transmission_time(sent as u64, rate)),
                data: part,
                delayed_by,
            });
        }
        *clock = Some(later(start, transmission_time(sent as u64, rate)));
    }
    out
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn a_chunk_leaves_after_its_transmission_time_in_100_ms_pieces() {
        let now = Instant::now();
        let piece = Piece {
            at: now,
            data: Bytes::from(vec![0u8; 2500]),
            delayed_by: Vec::new(),
        };
        let mut clock = None;
        // 10 KB/s: 1000 bytes per 100 ms.
        let out = apply(vec![piece], 10, &mut clock, (1, 1));
        let sizes: Vec<usize> = out.iter().map(|p| p.data.len()).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        let offsets: Vec<Duration> = out.iter().map(|p| p.at - now).collect();
        assert_eq!(
            offsets,
            [
                Duration::from_millis(100),
                Duration::from_millis(200),
                Duration::from_millis(250)
            ]
        );
        assert_eq!(clock, Some(now + Duration::from_millis(250)));
    }
}
