//! `slicer`: cuts each chunk into slices of about `average_size` ± `size_variation` bytes,
//! `delay` microseconds apart, by Toxiproxy's halving algorithm (no bias towards a small
//! slice at either end).

use std::time::Duration;

use super::{Key, Piece};
use crate::rng::Rng;

/// Slice boundaries of `0..len`, first 0 and last `len`. Needs `size_variation <
/// average_size` (the server checks it), which makes every split point strictly inside.
pub(super) fn boundaries(
    len: usize,
    average_size: u64,
    size_variation: u64,
    rng: &mut Rng,
) -> Vec<usize> {
    let mut cuts = vec![0];
    split(0, len, average_size, size_variation, rng, &mut cuts);
    cuts
}

fn split(start: usize, end: usize, avg: u64, var: u64, rng: &mut Rng, cuts: &mut Vec<usize>) {
    let size = (end - start) as u64;
    if size <= avg.saturating_add(var) {
        cuts.push(end);
        return;
    }
    let offset = if var > 0 {
        rng.below(var.saturating_mul(2)) as i64 - var as i64
    } else {
        0
    };
    let mid = (start as i64 + (size / 2) as i64 + offset).clamp(start as i64 + 1, end as i64 - 1);
    split(start, mid as usize, avg, var, rng, cuts);
    split(mid as usize, end, avg, var, rng, cuts);
}

pub(super) fn apply(
    pieces: Vec<Piece>,
    average_size: u64,
    size_variation: u64,
    delay_us: u64,
    rng: &mut Rng,
    key: Key,
) -> Vec<Piece> {
    let mut out = Vec::new();
    for piece in pieces {
        let cuts = boundaries(piece.data.len(), average_size, size_variation, rng);
        for (index, window) in cuts.windows(2).enumerate() {
            let mut delayed_by = piece.delayed_by.clone();
            delayed_by.push(key);
            out.push(Piece {
                at: super::later(
                    piece.at,
                    Duration::from_micros(delay_us.saturating_mul(index as u64)),
                ),
                data: piece.data.slice(window[0]..window[1]),
                delayed_by,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_the_chunk_in_order_within_the_size_range() {
        let mut rng = Rng::new(9);
        let cuts = boundaries(1000, 100, 20, &mut rng);
        assert_eq!((cuts[0], *cuts.last().unwrap()), (0, 1000));
        assert!(cuts.windows(2).all(|w| w[0] < w[1]), "{cuts:?}");
        assert!(cuts.len() > 5, "{cuts:?}");
        assert!(
            cuts.windows(2).all(|w| w[1] - w[0] <= 120),
            "no slice above average + variation: {cuts:?}"
        );
    }

    #[test]
    fn a_chunk_no_larger_than_a_slice_stays_whole() {
        let mut rng = Rng::new(9);
        assert_eq!(boundaries(50, 100, 0, &mut rng), [0, 50]);
        assert_eq!(boundaries(0, 1, 0, &mut rng), [0, 0]);
    }
}
