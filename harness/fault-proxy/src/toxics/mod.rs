//! Toxics in effect on one direction of one connection: which apply (toxicity), their
//! per-connection state, and what they do to each chunk. One file per toxic holds its
//! semantics; the I/O around them is in `pipe.rs`.

mod bandwidth;
mod latency;
mod limit_data;
mod reset_peer;
mod slicer;
mod slow_close;
mod timeout;

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::model::{Stream, Toxic, ToxicKind};
use crate::rng::Rng;

/// A toxic as a proxy holds it: `id` names it for its life, `revision` changes with each
/// update (connections re-roll its toxicity and restart its timers then).
#[derive(Debug, Clone)]
pub(crate) struct Installed {
    pub id: u64,
    pub revision: u64,
    pub toxic: Toxic,
}

/// A proxy's toxics in the order they were added: the chain order.
#[derive(Debug, Clone, Default)]
pub(crate) struct ToxicSet {
    pub toxics: Vec<Installed>,
}

impl ToxicSet {
    pub fn find(&self, name: &str) -> Option<&Installed> {
        self.toxics.iter().find(|t| t.toxic.name == name)
    }

    /// As Toxiproxy lists them: the upstream chain, then the downstream one.
    pub fn listed(&self) -> Vec<Toxic> {
        [Stream::Upstream, Stream::Downstream]
            .into_iter()
            .flat_map(|stream| {
                self.toxics
                    .iter()
                    .filter(move |t| t.toxic.stream == stream)
                    .map(|t| t.toxic.clone())
            })
            .collect()
    }
}

/// Identifies one revision of one toxic.
pub(crate) type Key = (u64, u64);

/// Data scheduled for writing at `at`; `delayed_by` lists the toxics that held it back,
/// so that removing or updating one releases it at once.
#[derive(Debug)]
pub(crate) struct Piece {
    pub at: Instant,
    pub data: Bytes,
    pub delayed_by: Vec<Key>,
}

/// One toxic as it stands on this connection.
#[derive(Debug, Clone)]
struct Entry {
    id: u64,
    revision: u64,
    kind: ToxicKind,
    /// The toxicity roll for this revision.
    applies: bool,
    /// When this revision began to apply here (timers count from it).
    since: Instant,
    /// `limit_data`: bytes let through so far.
    sent: u64,
    /// `bandwidth`: when the link is next free.
    clock: Option<Instant>,
}

/// What a change of the toxic set means for the connection.
pub(crate) struct Synced {
    /// A `timeout` that stalled this connection was removed: close it.
    pub close: bool,
    /// Revisions no longer in force: data they hold back is released.
    pub gone: Vec<Key>,
}

/// What the toxics in force do to the direction as a whole.
#[derive(Debug, Default)]
pub(crate) struct Blocking {
    /// `reset_peer`: reset then; until then, nothing is read or written.
    pub reset_at: Option<Instant>,
    /// `timeout`: data is dropped.
    pub drop_data: bool,
    /// `timeout`: close then.
    pub close_at: Option<Instant>,
}

impl Blocking {
    /// Nothing is written.
    pub fn frozen(&self) -> bool {
        self.reset_at.is_some() || self.drop_data
    }
}

/// A chunk after the toxics: its pieces, and whether the link closes after them.
pub(crate) struct Applied {
    pub pieces: Vec<Piece>,
    pub close_after: bool,
}

/// The toxics of one direction of one connection.
pub(crate) struct Chain {
    direction: Stream,
    entries: Vec<Entry>,
    rolls: Rng,
    data: Rng,
}

impl Chain {
    /// `rolls` draws toxicity, `data` jitter and slice sizes.
    pub fn new(direction: Stream, rolls: Rng, data: Rng) -> Self {
        Self {
            direction,
            entries: Vec::new(),
            rolls,
            data,
        }
    }

    /// Brings the chain to `set` (this direction's part), at `now`.
    pub fn sync(&mut self, set: &ToxicSet, now: Instant) -> Synced {
        let mut next = Vec::new();
        let mut gone = Vec::new();
        for installed in set
            .toxics
            .iter()
            .filter(|t| t.toxic.stream == self.direction)
        {
            let old = self.entries.iter().find(|e| e.id == installed.id);
            if let Some(old) = old.filter(|e| e.revision == installed.revision) {
                next.push(old.clone());
                continue;
            }
            if let Some(old) = old {
                gone.push((old.id, old.revision));
            }
            // Always draw, so the roll sequence does not depend on the toxicity values.
            let applies = self.rolls.unit() < f64::from(installed.toxic.toxicity);
            next.push(Entry {
                id: installed.id,
                revision: installed.revision,
                kind: installed.toxic.kind,
                applies,
                since: now,
                sent: old.map_or(0, |e| e.sent),
                clock: None,
            });
        }
        let mut close = false;
        for old in &self.entries {
            if !next.iter().any(|e| e.id == old.id) {
                gone.push((old.id, old.revision));
                close |= old.applies && matches!(old.kind, ToxicKind::Timeout { .. });
            }
        }
        self.entries = next;
        Synced { close, gone }
    }

    pub fn blocking(&self) -> Blocking {
        let mut blocking = Blocking::default();
        let earliest =
            |current: Option<Instant>, at: Instant| Some(current.map_or(at, |c| c.min(at)));
        for entry in self.entries.iter().filter(|e| e.applies) {
            match entry.kind {
                ToxicKind::ResetPeer { timeout } => {
                    let at = reset_peer::resets_at(entry.since, timeout);
                    blocking.reset_at = earliest(blocking.reset_at, at);
                }
                ToxicKind::Timeout { timeout } => {
                    blocking.drop_data = true;
                    if let Some(at) = timeout::closes_at(entry.since, timeout) {
                        blocking.close_at = earliest(blocking.close_at, at);
                    }
                }
                _ => {}
            }
        }
        blocking
    }

    /// Passes a chunk read at `now` through the toxics, in chain order.
    pub fn apply(&mut self, data: Bytes, now: Instant) -> Applied {
        let mut pieces = vec![Piece {
            at: now,
            data,
            delayed_by: Vec::new(),
        }];
        let mut close_after = false;
        let rng = &mut self.data;
        for entry in self.entries.iter_mut().filter(|e| e.applies) {
            let key = (entry.id, entry.revision);
            match entry.kind {
                ToxicKind::Latency { latency, jitter } => {
                    latency::apply(&mut pieces, latency, jitter, rng, key);
                }
                ToxicKind::Bandwidth { rate } => {
                    pieces = bandwidth::apply(pieces, rate, &mut entry.clock, key);
                }
                ToxicKind::Slicer {
                    average_size,
                    size_variation,
                    delay,
                } => {
                    pieces = slicer::apply(pieces, average_size, size_variation, delay, rng, key);
                }
                ToxicKind::LimitData { bytes } => {
                    close_after |= limit_data::apply(&mut pieces, bytes, &mut entry.sent);
                }
                ToxicKind::SlowClose { .. }
                | ToxicKind::Timeout { .. }
                | ToxicKind::ResetPeer { .. } => {}
            }
        }
        Applied {
            pieces,
            close_after,
        }
    }

    /// How long the close waits once the source has closed and its data is out.
    pub fn close_delay(&self) -> Duration {
        self.entries
            .iter()
            .filter(|e| e.applies)
            .filter_map(|e| match e.kind {
                ToxicKind::SlowClose { delay } => Some(slow_close::delay(delay)),
                _ => None,
            })
            .fold(Duration::ZERO, Duration::saturating_add)
    }
}

/// How far off a time that overflows lands: far enough to never come (tokio's own
/// "far future" is 30 years).
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `at + by`, or a time that never comes if that overflows. The API bounds every toxic's
/// times, but delays add up across toxics, pieces and slices: no sum may panic a pipe.
pub(crate) fn later(at: Instant, by: Duration) -> Instant {
    at.checked_add(by)
        .or_else(|| at.checked_add(FAR_FUTURE))
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn installed(id: u64, revision: u64, toxicity: f32, kind: ToxicKind) -> Installed {
        Installed {
            id,
            revision,
            toxic: Toxic {
                name: format!("t{id}"),
                stream: Stream::Downstream,
                toxicity,
                kind,
            },
        }
    }

    fn chain() -> Chain {
        Chain::new(Stream::Downstream, Rng::new(1), Rng::new(2))
    }

    #[test]
    fn removing_a_timeout_that_stalled_the_connection_closes_it() {
        let mut chain = chain();
        let now = Instant::now();
        let timeout = installed(1, 1, 1.0, ToxicKind::Timeout { timeout: 0 });
        let set = ToxicSet {
            toxics: vec![timeout],
        };
        assert!(!chain.sync(&set, now).close);
        assert!(chain.blocking().drop_data);
        let synced = chain.sync(&ToxicSet::default(), now);
        assert!(synced.close);
        assert_eq!(synced.gone, [(1, 1)]);
    }

    #[test]
    fn toxicity_zero_never_applies_and_one_always_does() {
        let mut chain = chain();
        let now = Instant::now();
        let set = ToxicSet {
            toxics: vec![
                installed(1, 1, 0.0, ToxicKind::Timeout { timeout: 0 }),
                installed(2, 2, 1.0, ToxicKind::ResetPeer { timeout: 5 }),
            ],
        };
        chain.sync(&set, now);
        let blocking = chain.blocking();
        assert!(!blocking.drop_data);
        assert_eq!(blocking.reset_at, Some(now + Duration::from_millis(5)));
    }

    // Regression: delays were added with `+`, which panics on overflow: each toxic's time
    // could be up to 2^64 - 1 ms, and a few hundred such toxics summed past what an
    // `Instant` holds, panicking the connection's pipe.
    #[test]
    fn delays_that_add_up_past_any_clock_never_panic() {
        let mut chain = chain();
        let now = Instant::now();
        let huge = |id, kind| installed(id, id, 1.0, kind);
        let set = ToxicSet {
            toxics: (1..=2000)
                .flat_map(|id| {
                    [
                        huge(
                            2 * id,
                            ToxicKind::Latency {
                                latency: u64::MAX,
                                jitter: u64::MAX,
                            },
                        ),
                        huge(2 * id + 1, ToxicKind::SlowClose { delay: u64::MAX }),
                    ]
                })
                .collect(),
        };
        chain.sync(&set, now);
        let applied = chain.apply(Bytes::from_static(b"late"), now);
        assert!(applied.pieces.iter().all(|piece| piece.at > now));
        assert!(chain.close_delay() > Duration::from_secs(1 << 60));
        assert!(later(now, chain.close_delay()) > now);
    }

    #[test]
    fn other_directions_toxics_do_not_apply() {
        let mut chain = Chain::new(Stream::Upstream, Rng::new(1), Rng::new(2));
        let set = ToxicSet {
            toxics: vec![installed(1, 1, 1.0, ToxicKind::Timeout { timeout: 0 })],
        };
        chain.sync(&set, Instant::now());
        assert!(!chain.blocking().drop_data);
    }
}
