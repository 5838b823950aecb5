//! One direction of a connection: read from one socket, pass each chunk through the
//! direction's toxics, write the pieces to the other socket when they are due.
//!
//! The loop waits on the toxic set as well as on the sockets and timers, so a toxic added,
//! updated or removed applies at once, even to an idle or blocked connection.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::model::Stream;
use crate::rng::Rng;
use crate::toxics::{Chain, Key, Piece, ToxicSet, later};

/// Bytes asked for per read.
const READ_SIZE: usize = 32 * 1024;
/// Read no further while this much is held back (toxics delaying it): backpressure.
const MAX_QUEUED: usize = 1 << 20;

/// How a direction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PipeEnd {
    /// The source closed or failed; its data and its close were passed on.
    Eof,
    /// The connection must close: a toxic closed it, or a socket failed.
    Close,
    /// The connection must be reset (`reset_peer`).
    Reset,
}

pub(crate) struct PipeCtx {
    pub direction: Stream,
    pub toxics: watch::Receiver<Arc<ToxicSet>>,
    /// Toxicity rolls.
    pub rolls: Rng,
    /// Jitter and slice sizes.
    pub data: Rng,
}

pub(crate) async fn run<R, W>(mut src: R, mut dst: W, ctx: PipeCtx) -> PipeEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let PipeCtx {
        direction,
        mut toxics,
        rolls,
        data,
    } = ctx;
    let mut chain = Chain::new(direction, rolls, data);
    let initial = toxics.borrow_and_update().clone();
    chain.sync(&initial, Instant::now());

    let mut queue: VecDeque<Piece> = VecDeque::new();
    let mut queued = 0usize;
    let mut head_written = 0usize;
    let mut buf = BytesMut::new();
    let mut src_done = false;
    // When the source's close reached the end of the queue (slow_close counts from it).
    let mut drained_at: Option<Instant> = None;
    // `limit_data` was reached: close once what it let through is out.
    let mut close_when_drained = false;
    let sleep = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(sleep);

    loop {
        let now = Instant::now();
        let block = chain.blocking();
        if block.reset_at.is_some_and(|at| at <= now) {
            return PipeEnd::Reset;
        }
        if block.close_at.is_some_and(|at| at <= now) {
            return PipeEnd::Close;
        }
        if block.drop_data {
            if src_done {
                // As Toxiproxy's timeout toxic: the source's close ends the stalled link.
                return PipeEnd::Close;
            }
            queue.clear();
            queued = 0;
            head_written = 0;
        }
        let frozen = block.frozen();
        let mut wake = earliest(block.reset_at, block.close_at);
        if !frozen && queue.is_empty() {
            if close_when_drained {
                return PipeEnd::Close;
            }
            if src_done {
                let close_at = later(*drained_at.get_or_insert(now), chain.close_delay());
                if close_at <= now {
                    let _ = dst.shutdown().await;
                    return PipeEnd::Eof;
                }
                wake = earliest(wake, Some(close_at));
            }
        }
        let head_at = if frozen {
            None
        } else {
            queue.front().map(|p| p.at)
        };
        let can_write = head_at.is_some_and(|at| at <= now);
        if let Some(at) = head_at.filter(|at| *at > now) {
            wake = earliest(wake, Some(at));
        }
        let can_read =
            !src_done && !close_when_drained && block.reset_at.is_none() && queued < MAX_QUEUED;
        if can_read && buf.capacity() - buf.len() < READ_SIZE / 4 {
            buf.reserve(READ_SIZE);
        }
        if let Some(at) = wake {
            sleep.as_mut().reset(at);
        }
        let head: &[u8] = match queue.front() {
            Some(piece) if can_write => &piece.data[head_written..],
            _ => &[],
        };

        tokio::select! {
            biased;
            changed = toxics.changed() => {
                if changed.is_err() {
                    // The proxy is gone.
                    return PipeEnd::Close;
                }
                let set = toxics.borrow_and_update().clone();
                let now = Instant::now();
                let synced = chain.sync(&set, now);
                if synced.close {
                    return PipeEnd::Close;
                }
                release(&mut queue, &synced.gone, now);
            }
            written = dst.write(head), if can_write => match written {
                Ok(0) | Err(_) => return PipeEnd::Close,
                Ok(n) => {
                    head_written += n;
                    if queue.front().is_some_and(|p| head_written == p.data.len()) {
                        if let Some(piece) = queue.pop_front() {
                            queued -= piece.data.len();
                        }
                        head_written = 0;
                    }
                }
            },
            read = src.read_buf(&mut buf), if can_read => match read {
                // As Toxiproxy: a source that fails (a reset) ends like one that closes;
                // what the toxics hold back still goes out, then the close.
                Err(_) | Ok(0) => src_done = true,
                Ok(_) => {
                    let chunk = buf.split().freeze();
                    if !block.drop_data {
                        let applied = chain.apply(chunk, Instant::now());
                        close_when_drained |= applied.close_after;
                        for mut piece in applied.pieces {
                            // Pieces leave in order: none before the one ahead of it.
                            if let Some(last) = queue.back() {
                                piece.at = piece.at.max(last.at);
                            }
                            queued += piece.data.len();
                            queue.push_back(piece);
                        }
                    }
                }
            },
            () = &mut sleep, if wake.is_some() => {}
        }
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Data held back by a toxic no longer in force goes out now, as Toxiproxy flushes an
/// interrupted toxic's data instead of dropping it.
fn release(queue: &mut VecDeque<Piece>, gone: &[Key], now: Instant) {
    if gone.is_empty() {
        return;
    }
    for piece in queue.iter_mut() {
        if piece.delayed_by.iter().any(|key| gone.contains(key)) {
            piece.at = piece.at.min(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;
    use crate::model::{Toxic, ToxicKind};
    use crate::rng::Purpose;
    use crate::toxics::Installed;

    fn latency_set(latency: u64, jitter: u64) -> ToxicSet {
        ToxicSet {
            toxics: vec![Installed {
                id: 1,
                revision: 1,
                toxic: Toxic {
                    name: "latency_downstream".into(),
                    stream: Stream::Downstream,
                    toxicity: 1.0,
                    kind: ToxicKind::Latency { latency, jitter },
                },
            }],
        }
    }

    struct Rig {
        input: DuplexStream,
        output: DuplexStream,
        /// Held: dropping the sender ends the pipe (the proxy is gone).
        _toxics: watch::Sender<Arc<ToxicSet>>,
    }

    /// A downstream pipe between two in-memory streams, its randomness from `seed`.
    fn rig(seed: u64, set: ToxicSet) -> Rig {
        let (toxics, rx) = watch::channel(Arc::new(set));
        let (input, src) = tokio::io::duplex(64 * 1024);
        let (dst, output) = tokio::io::duplex(64 * 1024);
        let ctx = PipeCtx {
            direction: Stream::Downstream,
            toxics: rx,
            rolls: Rng::for_connection(seed, "p", 0, Stream::Downstream, Purpose::Toxicity),
            data: Rng::for_connection(seed, "p", 0, Stream::Downstream, Purpose::Data),
        };
        tokio::spawn(run(src, dst, ctx));
        Rig {
            input,
            output,
            _toxics: toxics,
        }
    }

    /// The delay of each of `n` one-byte round trips, on the paused (virtual) clock: with no
    /// real I/O, a delay is exactly what the latency toxic drew.
    async fn delays(seed: u64, n: usize) -> Vec<Duration> {
        let mut rig = rig(seed, latency_set(100, 50));
        let mut out = Vec::new();
        for _ in 0..n {
            let start = Instant::now();
            rig.input.write_all(b"x").await.unwrap();
            let mut byte = [0u8; 1];
            rig.output.read_exact(&mut byte).await.unwrap();
            out.push(start.elapsed());
        }
        out
    }

    /// Yields its data once, then fails as a connection reset by its peer does.
    struct ThenReset(Option<&'static [u8]>);

    impl AsyncRead for ThenReset {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(match self.0.take() {
                Some(data) => {
                    buf.put_slice(data);
                    Ok(())
                }
                None => Err(std::io::ErrorKind::ConnectionReset.into()),
            })
        }
    }

    // Regression: a client killed with its request held by a latency toxic lost the
    // request when its death reached the proxy as a reset rather than a close, so the
    // outcome of a run depended on how the kernel closed the socket.
    #[tokio::test(start_paused = true)]
    async fn data_held_by_a_toxic_goes_out_after_its_source_resets() {
        let (toxics, rx) = watch::channel(Arc::new(latency_set(6000, 0)));
        let (dst, mut output) = tokio::io::duplex(1024);
        let ctx = PipeCtx {
            direction: Stream::Downstream,
            toxics: rx,
            rolls: Rng::for_connection(1, "p", 0, Stream::Downstream, Purpose::Toxicity),
            data: Rng::for_connection(1, "p", 0, Stream::Downstream, Purpose::Data),
        };
        let start = Instant::now();
        let pipe = tokio::spawn(run(ThenReset(Some(b"callback")), dst, ctx));
        let mut got = Vec::new();
        output.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"callback");
        assert!(start.elapsed() >= Duration::from_millis(6000));
        assert_eq!(pipe.await.unwrap(), PipeEnd::Eof);
        drop(toxics);
    }

    #[tokio::test(start_paused = true)]
    async fn the_same_seed_gives_the_same_jitter_sequence() {
        let first = delays(42, 20).await;
        let again = delays(42, 20).await;
        let other = delays(43, 20).await;
        assert_eq!(first, again);
        assert_ne!(first, other);
        let window = Duration::from_millis(50)..Duration::from_millis(150);
        assert!(first.iter().all(|d| window.contains(d)), "{first:?}");
        assert!(
            first.iter().any(|d| *d != first[0]),
            "jitter varies: {first:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_sources_close_passes_after_its_data() {
        let mut rig = rig(1, latency_set(10, 0));
        rig.input.write_all(b"last words").await.unwrap();
        rig.input.shutdown().await.unwrap();
        let mut got = Vec::new();
        rig.output.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"last words");
    }
}
