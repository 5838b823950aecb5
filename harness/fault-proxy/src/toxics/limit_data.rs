//! `limit_data`: lets `bytes` bytes through, then the connection closes. The count
//! survives updates of the toxic (as Toxiproxy keeps its state) and restarts when it is
//! added again.

use super::Piece;

/// Truncates `pieces` to what the limit still allows; true once the limit is reached.
pub(super) fn apply(pieces: &mut Vec<Piece>, bytes: u64, sent: &mut u64) -> bool {
    let mut kept = 0;
    for piece in pieces.iter_mut() {
        let remaining = bytes.saturating_sub(*sent);
        if remaining == 0 {
            break;
        }
        if (piece.data.len() as u64) > remaining {
            piece.data.truncate(remaining as usize);
        }
        *sent += piece.data.len() as u64;
        kept += 1;
    }
    pieces.truncate(kept);
    *sent >= bytes
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use tokio::time::Instant;

    use super::*;

    fn piece(len: usize) -> Piece {
        Piece {
            at: Instant::now(),
            data: Bytes::from(vec![1u8; len]),
            delayed_by: Vec::new(),
        }
    }

    #[test]
    fn passes_exactly_the_limit_then_reports_it_reached() {
        let mut sent = 0;
        let mut first = vec![piece(6)];
        assert!(!apply(&mut first, 10, &mut sent));
        let mut second = vec![piece(3), piece(3)];
        assert!(apply(&mut second, 10, &mut sent));
        let lens: Vec<usize> = second.iter().map(|p| p.data.len()).collect();
        assert_eq!((lens, sent), (vec![3, 1], 10));
    }
}
