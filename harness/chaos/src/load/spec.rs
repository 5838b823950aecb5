//! What a load run is asked: how many meetings at once, when each is stopped, how its
//! bots behave; read from the command line with errors that name what is wrong, and
//! turned into one schedule per meeting count, the same for every profile.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The most meetings one run may start: the `dev` user's `max_concurrent_bots`
/// (`fixtures/migrations/0002_seed_users.sql`); a POST past it is refused with 403.
pub const MAX_MEETINGS: usize = 1000;
/// The latest a stop may be scheduled after its meeting's start.
const MAX_STOP_AFTER: Duration = Duration::from_secs(3600);

/// `--meetings 100,300,1000`: each count a run of its own, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingCounts(pub Vec<usize>);

impl FromStr for MeetingCounts {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut counts = Vec::new();
        for item in text.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(format!(
                    "{text:?} has an empty item: give counts such as 100,300,1000"
                ));
            }
            let n: usize = item
                .parse()
                .map_err(|_| format!("{item:?} is not a whole number of meetings"))?;
            if n == 0 || n > MAX_MEETINGS {
                return Err(format!(
                    "{n} meetings: a run starts 1 to {MAX_MEETINGS} (the dev user's max_concurrent_bots)"
                ));
            }
            if counts.contains(&n) {
                return Err(format!("{n} is given twice"));
            }
            counts.push(n);
        }
        Ok(MeetingCounts(counts))
    }
}

/// One part of the stop mix: a share of the meetings, each stopped at a moment drawn
/// evenly from `from..=to` after its own `POST /bots` was answered 201.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopAt {
    #[serde(with = "millis")]
    pub from: Duration,
    #[serde(with = "millis")]
    pub to: Duration,
    /// Percent of the meetings.
    pub share: u32,
}

impl fmt::Display for StopAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |d: Duration| humantime::format_duration(d).to_string();
        if self.from == self.to {
            write!(f, "{} ({}%)", d(self.from), self.share)
        } else {
            write!(f, "{}-{} ({}%)", d(self.from), d(self.to), self.share)
        }
    }
}

mod millis {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        <u64 as serde::Deserialize>::deserialize(d).map(Duration::from_millis)
    }
}

/// `--stop-at 0-1s=50%,15s-20s=50%`: when the meetings are stopped, after each one's
/// start. Shares are all given and add up to 100, or none is (equal parts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopMix(pub Vec<StopAt>);

fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let d = humantime::parse_duration(text)
        .map_err(|err| format!("{text:?} is not a duration such as 0, 500ms or 15s: {err}"))?;
    if d > MAX_STOP_AFTER {
        return Err(format!(
            "{text:?} is later than {} after the start",
            humantime::format_duration(MAX_STOP_AFTER)
        ));
    }
    Ok(d)
}

impl FromStr for StopMix {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut shares = Vec::new();
        for item in text.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(format!(
                    "{text:?} has an empty item: give moments such as 0-1s=50%,15s=50%"
                ));
            }
            let (when, share) = match item.split_once('=') {
                Some((when, share)) => {
                    let pct = share
                        .trim()
                        .strip_suffix('%')
                        .and_then(|p| p.trim().parse::<u32>().ok())
                        .filter(|p| (1..=100).contains(p))
                        .ok_or_else(|| {
                            format!(
                                "{item:?}: the share {share:?} is not a percentage from 1% to 100%"
                            )
                        })?;
                    (when, Some(pct))
                }
                None => (item, None),
            };
            let (from, to) = match when.split_once('-') {
                Some((from, to)) => (duration(from)?, duration(to)?),
                None => {
                    let at = duration(when)?;
                    (at, at)
                }
            };
            if from > to {
                return Err(format!("{item:?}: the range runs backwards"));
            }
            parts.push(StopAt { from, to, share: 0 });
            shares.push(share);
        }
        match (
            shares.iter().all(Option::is_some),
            shares.iter().all(Option::is_none),
        ) {
            (true, _) => {
                let total: u32 = shares.iter().flatten().sum();
                if total != 100 {
                    return Err(format!("{text:?}: the shares add up to {total}%, not 100%"));
                }
                for (part, share) in parts.iter_mut().zip(shares) {
                    part.share = share.unwrap_or_default();
                }
            }
            (false, true) => {
                let n = parts.len() as u32;
                for (i, part) in parts.iter_mut().enumerate() {
                    // The first parts take the remainder: 3 parts are 34%, 33%, 33%.
                    part.share = 100 / n + u32::from((i as u32) < 100 % n);
                }
            }
            (false, false) => {
                return Err(format!(
                    "{text:?}: give every part a share (=50%) or none (equal parts)"
                ));
            }
        }
        Ok(StopMix(parts))
    }
}

impl fmt::Display for StopMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(", "))
    }
}

/// `--bot leave=hang`: a mock-bot behaviour for every bot (`MOCK_BOT_LEAVE=hang`), checked
/// by the mock bot's own parser so that a typo fails here, not in a thousand bots.
pub fn bot_env(items: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut env = Vec::new();
    for item in items {
        let (key, value) = item
            .split_once('=')
            .filter(|(k, v)| !k.trim().is_empty() && !v.is_empty())
            .ok_or_else(|| format!("--bot {item:?}: expected NAME=VALUE, such as leave=hang"))?;
        let key = key.trim();
        if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("--bot {item:?}: {key:?} is not a behaviour name"));
        }
        env.push((
            format!(
                "{}{}",
                mock_bot::behaviour::PREFIX,
                key.to_ascii_uppercase()
            ),
            value.to_owned(),
        ));
    }
    mock_bot::behaviour::Behaviour::from_vars(env.clone())
        .map_err(|err| format!("--bot: {err}"))?;
    Ok(env)
}

/// One meeting of a run: its label, its native id, and when it is stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planned {
    pub label: String,
    pub native_meeting_id: String,
    /// Its part of the stop mix.
    pub part: usize,
    /// After its `POST /bots` was answered 201.
    #[serde(with = "millis")]
    pub stop_after: Duration,
}

/// The seed of the run with `meetings` meetings: the same for every profile, so each
/// profile meets the same client timings.
pub fn run_seed(seed: u64, meetings: usize) -> u64 {
    // SplitMix64's finaliser: nearby seeds and counts give unrelated streams.
    let mut z = seed ^ (meetings as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How many meetings each part of `mix` takes out of `n` (largest remainders), in order.
pub fn part_sizes(mix: &StopMix, n: usize) -> Vec<usize> {
    let exact: Vec<(usize, usize)> = mix
        .0
        .iter()
        .map(|p| (n * p.share as usize / 100, n * p.share as usize % 100))
        .collect();
    let mut sizes: Vec<usize> = exact.iter().map(|(q, _)| *q).collect();
    let mut left = n - sizes.iter().sum::<usize>();
    let mut by_remainder: Vec<usize> = (0..sizes.len()).collect();
    // Largest remainder first; ties to the earlier part.
    by_remainder.sort_by_key(|&i| (std::cmp::Reverse(exact[i].1), i));
    for i in by_remainder.into_iter().cycle() {
        if left == 0 {
            break;
        }
        sizes[i] += 1;
        left -= 1;
    }
    sizes
}

/// The `n` meetings of one run: unique Google Meet ids, each with its part of the mix
/// (dealt in a shuffled order, so the parts interleave) and its moment within that
/// part's range. Depends only on `(seed, n, mix)`.
pub fn schedule(seed: u64, n: usize, mix: &StopMix) -> Vec<Planned> {
    let mut rng = ChaCha8Rng::seed_from_u64(run_seed(seed, n));
    let mut parts: Vec<usize> = part_sizes(mix, n)
        .into_iter()
        .enumerate()
        .flat_map(|(part, size)| std::iter::repeat_n(part, size))
        .collect();
    // Fisher-Yates with the run's own generator (portable, unlike a crate's shuffle).
    for i in (1..parts.len()).rev() {
        let j = rng.random_range(0..=i);
        parts.swap(i, j);
    }
    let mut seen = std::collections::BTreeSet::new();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            let native = loop {
                let l: String = (0..10)
                    .map(|_| rng.random_range(b'a'..=b'z') as char)
                    .collect();
                let id = format!("{}-{}-{}", &l[0..3], &l[3..7], &l[7..10]);
                if seen.insert(id.clone()) {
                    break id;
                }
            };
            let range = &mix.0[part];
            let span = u64::try_from((range.to - range.from).as_millis()).unwrap_or(u64::MAX);
            let stop_after = range.from + Duration::from_millis(rng.random_range(0..=span));
            Planned {
                label: format!("m{}", i + 1),
                native_meeting_id: native,
                part,
                stop_after,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meeting_counts_are_read_in_order_and_bad_ones_are_named() {
        assert_eq!(
            "100, 300,1000".parse::<MeetingCounts>(),
            Ok(MeetingCounts(vec![100, 300, 1000]))
        );
        for (bad, says) in [
            ("0", "1 to 1000"),
            ("1001", "max_concurrent_bots"),
            ("10,,20", "empty item"),
            ("ten", "not a whole number"),
            ("10,10", "twice"),
        ] {
            let err = bad.parse::<MeetingCounts>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn a_stop_mix_reads_ranges_moments_and_shares() {
        let mix: StopMix = "0-1s=50%,15s-20s=50%".parse().unwrap();
        assert_eq!(
            mix.0,
            vec![
                StopAt {
                    from: Duration::ZERO,
                    to: Duration::from_secs(1),
                    share: 50
                },
                StopAt {
                    from: Duration::from_secs(15),
                    to: Duration::from_secs(20),
                    share: 50
                },
            ]
        );
        assert_eq!(mix.to_string(), "0s-1s (50%), 15s-20s (50%)");
        let equal: StopMix = "0,500ms,3s".parse().unwrap();
        let shares: Vec<u32> = equal.0.iter().map(|p| p.share).collect();
        assert_eq!(shares, vec![34, 33, 33]);
        assert_eq!(equal.0[1].from, Duration::from_millis(500));
    }

    #[test]
    fn a_bad_stop_mix_says_what_is_wrong() {
        for (bad, says) in [
            ("0-1s=50%,5s=40%", "add up to 90%"),
            ("0-1s=50%,5s", "every part a share"),
            ("2s-1s", "backwards"),
            ("soon", "not a duration"),
            ("1s=0%", "percentage"),
            ("1s=half", "percentage"),
            ("2h", "later than"),
            ("1s,,2s", "empty item"),
        ] {
            let err = bad.parse::<StopMix>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn parts_take_their_shares_by_largest_remainder() {
        let mix: StopMix = "0=50%,1s=50%".parse().unwrap();
        assert_eq!(part_sizes(&mix, 7), vec![4, 3]);
        let thirds: StopMix = "0,1s,2s".parse().unwrap();
        assert_eq!(part_sizes(&thirds, 10), vec![4, 3, 3]);
        assert_eq!(part_sizes(&thirds, 1000).iter().sum::<usize>(), 1000);
    }

    #[test]
    fn a_schedule_depends_on_seed_and_count_alone_and_keeps_each_stop_in_its_range() {
        let mix: StopMix = "0-1s=50%,15s-20s=50%".parse().unwrap();
        let a = schedule(7, 100, &mix);
        assert_eq!(a, schedule(7, 100, &mix), "the same for every profile");
        assert_ne!(a, schedule(8, 100, &mix));
        assert_eq!(a.len(), 100);
        let ids: std::collections::BTreeSet<_> = a.iter().map(|m| &m.native_meeting_id).collect();
        assert_eq!(ids.len(), 100, "unique native ids");
        for m in &a {
            let part = &mix.0[m.part];
            assert!(
                part.from <= m.stop_after && m.stop_after <= part.to,
                "{m:?}"
            );
            protocol::Platform::GoogleMeet
                .validate_native_id(&m.native_meeting_id)
                .unwrap();
        }
        assert_eq!(a.iter().filter(|m| m.part == 0).count(), 50);
        assert!(
            a[..10].iter().any(|m| m.part == 0) && a[..10].iter().any(|m| m.part == 1),
            "the parts interleave"
        );
    }

    #[test]
    fn bot_behaviours_are_checked_by_the_mock_bots_parser() {
        assert_eq!(
            bot_env(&["leave=hang".into()]).unwrap(),
            vec![("MOCK_BOT_LEAVE".into(), "hang".into())]
        );
        assert!(
            bot_env(&["leave".into()])
                .unwrap_err()
                .contains("NAME=VALUE")
        );
        assert!(bot_env(&["leave=sideways".into()]).is_err());
        assert!(bot_env(&["no_such_knob=1".into()]).is_err());
    }
}
