//! INV-STATUS-AGREES: the last published status equals the stored one once quiet.
//!
//! A status event is a message on one of the service's status channels (its wire, from
//! the history) carrying a status where its wire says: legacy's
//! `bm:meeting:{user_id}:{platform}:{native}:status`, shared by every row of the meeting
//! key, or later versions' `bm:meeting:{id}:status` (protocol.md sections 6 and 11).
//!
//! Each event is credited to the row whose stored change it announces, events taken in
//! history order:
//! 1. a row the event names (the channel's meeting id, or a meeting id in the payload);
//! 2. else, among the key's rows, the stored change to the published status, at or
//!    before the event and not yet credited to an earlier event, that is still its row's
//!    status at the event (the service publishes right after it stores); the latest such
//!    change when several are, so a change whose own event was lost (Redis down) never
//!    takes a later row's event;
//! 3. else the latest such change no longer current (two quick changes of one row,
//!    published after both were stored);
//! 4. else a row whose status at the event is the published one (a repeat of it);
//! 5. else (a status never stored, such as legacy's `stopping`) the row a request at that
//!    moment addresses: the latest row of the key inserted at or before the event (the
//!    earliest row when none was yet).
//!
//! For each row credited with a status event, the last one must equal the row's status in
//! the final state, read once the run was quiet. Without a final state: unknown.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::Findings;
use crate::check::timeline::{StatusAt, Timeline, json_payload, ms};
use crate::check::{CheckConfig, CheckResult, Invariant};
use crate::history::{Event, EventKind, History};

pub fn status_agrees(history: &History, _config: &CheckConfig) -> CheckResult {
    let tl = Timeline::new(history);
    let mut findings = Findings::new(Invariant::StatusAgrees);
    let mut credit = Credit::new(&tl);
    let mut last_published: BTreeMap<i64, (&Event, String)> = BTreeMap::new();
    for e in &history.events {
        let Some(publish) = status_event(&tl.wire, e) else {
            continue;
        };
        match credit.row_of(&publish) {
            Some(id) => {
                last_published.insert(id, (e, publish.status));
            }
            None => findings.unknown(format!(
                "Status {} published at {} on {}, for a meeting with no row in the history.",
                publish.status,
                ms(e.at_us),
                publish.channel
            )),
        }
    }
    for (id, (publish, status)) in &last_published {
        findings.occurred();
        check_meeting(&tl, *id, publish, status, &mut findings);
    }
    findings.finish("no status was published for a meeting", |n| {
        format!("For all {n} meeting(s) with published statuses, the last one equals the stored status at the end.")
    })
}

/// A status event, and what names its meeting.
#[derive(Debug)]
struct StatusPublish<'h> {
    event: &'h Event,
    channel: &'h str,
    status: String,
    /// The row the channel or the payload names by id.
    row: Option<i64>,
    /// The meeting key (platform, native id), from the channel or the payload.
    key: Option<(String, String)>,
}

fn status_event<'h>(wire: &protocol::Wire, e: &'h Event) -> Option<StatusPublish<'h>> {
    let EventKind::Published { channel, payload } = &e.kind else {
        return None;
    };
    let protocol::Published::Status { status, names } = wire.read(channel, payload) else {
        return None;
    };
    let payload = json_payload(payload);
    let (channel_row, channel_key) = (names.meeting_id, names.key());
    let meeting = payload.get("meeting");
    let as_id = |v: Option<&Value>| {
        v.and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
    };
    let payload_row = as_id(meeting.and_then(|m| m.get("id")))
        .or_else(|| as_id(meeting.and_then(|m| m.get("meeting_id"))))
        .or_else(|| as_id(payload.get("meeting_id")));
    let payload_key = meeting.and_then(|m| {
        let platform = m.get("platform")?.as_str()?;
        let native = m.get("native_id")?.as_str()?;
        Some((platform.to_owned(), native.to_owned()))
    });
    Some(StatusPublish {
        event: e,
        channel,
        status,
        row: channel_row.or(payload_row),
        key: channel_key.or(payload_key),
    })
}

/// Credits status events to rows, in history order, remembering which stored changes
/// were already announced.
struct Credit<'t, 'h> {
    tl: &'t Timeline<'h>,
    /// `seq` of the stored changes already credited to an event.
    announced: HashSet<u64>,
}

impl<'t, 'h> Credit<'t, 'h> {
    fn new(tl: &'t Timeline<'h>) -> Self {
        Credit {
            tl,
            announced: HashSet::new(),
        }
    }

    /// The row `publish` is about (see the module's rules), or `None` when the history
    /// has no row for it.
    fn row_of(&mut self, publish: &StatusPublish<'_>) -> Option<i64> {
        let t = publish.event.at_us;
        let status = publish.status.as_str();
        let rows: Vec<i64> = match (publish.row, &publish.key) {
            (Some(id), _) => self.tl.meeting(id).map(|_| id).into_iter().collect(),
            (None, Some((platform, native))) => self.tl.rows_of_key(Some(platform), native),
            (None, None) => Vec::new(),
        };
        // A stored change to `status` at or before `t` not yet announced, of each row.
        let unannounced: Vec<(i64, StatusAt<'h>, bool)> = rows
            .iter()
            .filter_map(|id| self.tl.meeting(*id).map(|line| (*id, line)))
            .flat_map(|(id, line)| {
                let current = line.status_at(t).map(|s| s.event.seq);
                line.statuses
                    .iter()
                    .filter(move |s| s.status == status && s.at_us <= t)
                    .map(move |s| (id, *s, current == Some(s.event.seq)))
            })
            .filter(|(_, s, _)| !self.announced.contains(&s.event.seq))
            .collect();
        let newest = |current: bool| {
            unannounced
                .iter()
                .filter(|(_, _, c)| *c == current)
                .max_by_key(|(_, s, _)| (s.at_us, s.event.seq))
                .copied()
        };
        if let Some((id, change, _)) = newest(true).or_else(|| newest(false)) {
            self.announced.insert(change.event.seq);
            return Some(id);
        }
        // A repeat of a row's current status.
        let repeated = rows
            .iter()
            .filter_map(|id| {
                let now = self.tl.meeting(*id)?.status_at(t)?;
                (now.status == status).then_some((*id, now))
            })
            .max_by_key(|(_, s)| (s.at_us, s.event.seq))
            .map(|(id, _)| id);
        if repeated.is_some() {
            return repeated;
        }
        match (publish.row, &publish.key) {
            (Some(id), _) => Some(id),
            (None, Some((platform, native))) => self
                .tl
                .latest_row_at(Some(platform), native, t)
                .or_else(|| self.tl.first_row(Some(platform), native)),
            (None, None) => None,
        }
    }
}

fn check_meeting(
    tl: &Timeline<'_>,
    id: i64,
    publish: &Event,
    published: &str,
    findings: &mut Findings,
) {
    if tl.final_state.is_none() {
        findings.unknown(format!(
            "Meeting {id}: status {published} published at {}, but the run has no final state to compare with.",
            ms(publish.at_us)
        ));
        return;
    }
    let Some(stored) = tl.final_meeting(id) else {
        findings.unknown(format!(
            "Meeting {id}: status {published} published at {}, but the final state has no row {id}.",
            ms(publish.at_us)
        ));
        return;
    };
    if stored.status == published {
        findings.held();
        return;
    }
    let last_stored = tl
        .meeting(id)
        .and_then(|l| l.last_status())
        .map(|s| s.event);
    findings.violated(
        format!(
            "Meeting {id}: the last published status is {published} (at {}), but the stored status at the end is {}.",
            ms(publish.at_us),
            stored.status
        ),
        [Some(publish), last_stored].into_iter().flatten(),
    );
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{H, config, later_wire};
    use serde_json::json;

    use super::*;
    use crate::check::Outcome;

    fn active_meeting() -> H {
        H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "requested")
            .status_published("abc-defg-hij", "requested")
            .at(100)
            .status(1, "requested", "joining")
            .status(1, "joining", "awaiting_admission")
            .status(1, "awaiting_admission", "active")
            .status_published("abc-defg-hij", "active")
    }

    #[test]
    fn stopping_published_but_never_stored_violates_status_agrees() {
        // H4: `stopping` is published, the row stays active.
        let h = active_meeting()
            .at(1000)
            .status_published("abc-defg-hij", "stopping")
            .at(5000)
            .final_auto()
            .end();
        let r = status_agrees(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(
            r.summary.contains("is stopping") && r.summary.contains("end is active"),
            "{}",
            r.summary
        );
        let kinds: Vec<&str> = r.witness.iter().map(|e| e.kind.name()).collect();
        assert_eq!(kinds, ["status_stored", "published"]);
    }

    #[test]
    fn published_and_stored_completion_holds_status_agrees() {
        let h = active_meeting()
            .at(1000)
            .status(1, "active", "completed")
            .status_published("abc-defg-hij", "completed")
            .at(5000)
            .final_auto()
            .end();
        assert_eq!(status_agrees(&h, &config()).outcome, Outcome::Holds);
    }

    #[test]
    fn nothing_published_is_unknown_for_status_agrees() {
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(5000)
            .final_auto()
            .end();
        let r = status_agrees(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown);
        assert!(!r.precondition_met);
    }

    #[test]
    fn stored_change_after_the_last_publish_violates_status_agrees() {
        let h = active_meeting()
            .at(1000)
            .status(1, "active", "failed")
            .at(5000)
            .final_auto()
            .end();
        let r = status_agrees(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(
            r.summary.contains("is active") && r.summary.contains("end is failed"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn publishes_go_to_the_latest_row_of_the_meeting() {
        // Row 1 completed quietly; row 2's statuses are published and agree.
        let h = active_meeting()
            .at(1000)
            .status(1, "active", "completed")
            .status_published("abc-defg-hij", "completed")
            .at(2000)
            .insert(2, "abc-defg-hij", "requested")
            .status_published("abc-defg-hij", "requested")
            .at(5000)
            .final_auto()
            .end();
        assert_eq!(status_agrees(&h, &config()).outcome, Outcome::Holds);
    }

    /// Two live rows of one meeting key, everything published as stored, no stop: the
    /// timings of the recorded two-live-rows run.
    fn two_live_rows() -> H {
        H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "requested")
            .status_published("abc-defg-hij", "requested")
            .at(62)
            .status(1, "requested", "joining")
            .at(69)
            .status_published("abc-defg-hij", "joining")
            .at(471)
            .insert(2, "abc-defg-hij", "requested")
            .status_published("abc-defg-hij", "requested")
            .at(500)
            .status(2, "requested", "joining")
            .status_published("abc-defg-hij", "joining")
            .at(874)
            .status(1, "joining", "awaiting_admission")
            .status_published("abc-defg-hij", "awaiting_admission")
            .at(984)
            .status(1, "awaiting_admission", "active")
            .at(992)
            .status_published("abc-defg-hij", "active")
            .at(1314)
            .status(2, "joining", "awaiting_admission")
            .status_published("abc-defg-hij", "awaiting_admission")
    }

    #[test]
    fn publishes_of_the_older_row_are_credited_to_it_after_a_newer_row_is_inserted() {
        // Pins: two live rows, no stop, all published statuses as stored, judged "violates
        // INV-STATUS-AGREES: the last published status is joining (at 69 ms)" because row
        // 1's `active` (992 ms) was credited to row 2, the newest row at the publish.
        let h = two_live_rows()
            .at(1427)
            .status(2, "awaiting_admission", "active")
            .status_published("abc-defg-hij", "active")
            .at(5000)
            .final_auto()
            .end();
        let r = status_agrees(&h, &config());
        assert_eq!(r.outcome, Outcome::Holds, "{r:?}");
        assert!(r.summary.contains("all 2 meeting(s)"), "{}", r.summary);
    }

    #[test]
    fn change_whose_publish_was_lost_does_not_take_a_later_rows_publish() {
        // Row 1's `active` publish is lost; row 2's `active` is row 2's, not row 1's.
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "joining")
            .status_published("abc-defg-hij", "joining")
            .at(100)
            .status(1, "joining", "active")
            .at(400)
            .insert(2, "abc-defg-hij", "joining")
            .status_published("abc-defg-hij", "joining")
            .at(500)
            .status(2, "joining", "active")
            .status_published("abc-defg-hij", "active")
            .at(5000)
            .final_auto()
            .end();
        let r = status_agrees(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert_eq!(r.violations.len(), 1, "{r:?}");
        assert_eq!(
            r.summary,
            "Meeting 1: the last published status is joining (at 0 ms), but the stored status at the end is active."
        );
    }

    #[test]
    fn two_changes_published_after_both_were_stored_stay_with_their_row() {
        // Row 1 stores awaiting_admission then active before either is published; the
        // first publish announces a change no longer current, still row 1's.
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "joining")
            .insert(2, "abc-defg-hij", "joining")
            .at(100)
            .status(1, "joining", "awaiting_admission")
            .status(1, "awaiting_admission", "active")
            .at(101)
            .status_published("abc-defg-hij", "awaiting_admission")
            .status_published("abc-defg-hij", "active")
            .at(200)
            .status_published("abc-defg-hij", "joining")
            .at(5000)
            .final_auto()
            .end();
        let r = status_agrees(&h, &config());
        assert_eq!(r.outcome, Outcome::Holds, "{r:?}");
    }

    #[test]
    fn stopping_never_stored_goes_to_the_row_the_stop_addresses() {
        // Legacy's DELETE publishes `stopping` for the latest row without storing it; that
        // row then completes, and the older row stays active as published.
        let h = two_live_rows()
            .at(1427)
            .status(2, "awaiting_admission", "active")
            .status_published("abc-defg-hij", "active")
            .at(2007)
            .status_published("abc-defg-hij", "stopping")
            .at(2012)
            .status(2, "active", "completed")
            .status_published("abc-defg-hij", "completed")
            .at(6000)
            .final_auto()
            .end();
        assert_eq!(status_agrees(&h, &config()).outcome, Outcome::Holds);

        // The same stop whose row never completes: the newer row disagrees, the older not.
        let h = two_live_rows()
            .at(1427)
            .status(2, "awaiting_admission", "active")
            .status_published("abc-defg-hij", "active")
            .at(2007)
            .status_published("abc-defg-hij", "stopping")
            .at(6000)
            .final_auto()
            .end();
        let r = status_agrees(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert_eq!(r.violations.len(), 1, "{r:?}");
        assert!(r.summary.starts_with("Meeting 2: "), "{}", r.summary);
    }

    #[test]
    fn each_row_whose_last_publish_disagrees_is_its_own_violation() {
        // Both rows store `active`, only their `awaiting_admission` reached the channel.
        let h = two_live_rows()
            .at(1427)
            .status(2, "awaiting_admission", "active")
            .at(1500)
            .status(1, "active", "failed")
            .at(6000)
            .final_auto()
            .end();
        let r = status_agrees(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        let texts: Vec<&str> = r.violations.iter().map(|v| v.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Meeting 1: the last published status is active (at 992 ms), but the stored status at the end is failed.",
                "Meeting 2: the last published status is awaiting_admission (at 1314 ms), but the stored status at the end is active.",
            ]
        );
        assert_eq!(r.summary, format!("{} (and 1 more violation)", texts[0]));
        assert_eq!(r.witness, r.violations[0].witness);
        let stored_in = |v: &crate::check::Violation| -> Vec<i64> {
            v.witness
                .iter()
                .filter_map(|e| match &e.kind {
                    EventKind::StatusStored { meeting_id, .. } => Some(*meeting_id),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(stored_in(&r.violations[0]), [1]);
        assert_eq!(stored_in(&r.violations[1]), [2]);
        assert_eq!(r.violations[1].witness[0].at_us, 1_314_000);
    }

    #[test]
    fn status_channel_naming_the_meeting_id_credits_that_row() {
        // Later versions publish on `bm:meeting:{id}:status`: the id names the row.
        let publish = |h: H, id: i64, status: &str| {
            h.published(
                &format!("bm:meeting:{id}:status"),
                json!({
                    "type": "meeting.status",
                    "meeting": {"platform": "google_meet", "native_id": "abc-defg-hij"},
                    "payload": {"status": status},
                    "ts": "2024-01-01T00:00:00.000Z",
                }),
            )
        };
        let h = H::new()
            .wire(later_wire())
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .insert(2, "abc-defg-hij", "active");
        let h = publish(h, 1, "active").at(100);
        let h = publish(h, 2, "stopping").at(5000).final_auto().end();
        let r = status_agrees(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert_eq!(r.violations.len(), 1, "{r:?}");
        assert!(
            r.summary
                .starts_with("Meeting 2: the last published status is stopping"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn run_without_final_state_leaves_status_agrees_unknown() {
        let h = active_meeting().at(5000).end();
        let r = status_agrees(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown);
        assert!(r.precondition_met);
    }

    #[test]
    fn a_status_channel_naming_an_older_row_credits_that_row() {
        let h = H::new()
            .wire(later_wire())
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .insert(2, "abc-defg-hij", "active")
            .at(100)
            .published(
                "bm:meeting:1:status",
                json!({
                    "meeting": {"platform": "google_meet", "native_id": "abc-defg-hij"},
                    "payload": {"status": "stopping"},
                }),
            )
            .at(5000)
            .final_auto()
            .end();
        let r = status_agrees(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(
            r.summary
                .starts_with("Meeting 1: the last published status is stopping"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn a_legacy_status_channel_names_the_meeting_key_when_the_payload_does_not() {
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(100)
            .published(
                "bm:meeting:1:google_meet:abc-defg-hij:status",
                json!({"payload": {"status": "stopping"}}),
            )
            .at(5000)
            .final_auto()
            .end();
        let r = status_agrees(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(r.summary.starts_with("Meeting 1: "), "{}", r.summary);
    }

    #[test]
    fn a_change_published_once_no_longer_current_is_not_credited_to_the_newest_row() {
        // Row 1's two changes are published after both were stored; row 2 publishes
        // nothing and must not be credited with row 1's `awaiting_admission`.
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "joining")
            .insert(2, "abc-defg-hij", "joining")
            .at(100)
            .status(1, "joining", "awaiting_admission")
            .status(1, "awaiting_admission", "active")
            .at(101)
            .status_published("abc-defg-hij", "awaiting_admission")
            .status_published("abc-defg-hij", "active")
            .at(5000)
            .final_auto()
            .end();
        let r = status_agrees(&h, &config());
        assert_eq!(r.outcome, Outcome::Holds, "{r:?}");
        assert!(r.summary.contains("all 1 meeting(s)"), "{}", r.summary);
    }

    #[test]
    fn a_repeated_status_goes_to_the_row_that_holds_it() {
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .status_published("abc-defg-hij", "active")
            .insert(2, "abc-defg-hij", "joining")
            .status_published("abc-defg-hij", "joining")
            .at(1000)
            .status_published("abc-defg-hij", "active")
            .at(5000)
            .final_auto()
            .end();
        let r = status_agrees(&h, &config());
        assert_eq!(r.outcome, Outcome::Holds, "{r:?}");
        assert!(r.summary.contains("all 2 meeting(s)"), "{}", r.summary);
    }

    #[test]
    fn a_status_published_before_its_keys_first_row_was_recorded_goes_to_that_row() {
        // The publish is recorded before the row it announces; rows of other keys (same
        // native id on another platform, another native id) were recorded earlier.
        let inserted = |h: H, id: i64, platform: &str, native: &str, status: &str| {
            h.push(EventKind::MeetingInserted {
                meeting_id: id,
                platform: platform.into(),
                native_meeting_id: native.into(),
                status: status.into(),
            })
        };
        let h = H::new()
            .at(0)
            .status_published("abc-defg-hij", "requested")
            .at(2);
        let h = inserted(h, 5, "zoom", "abc-defg-hij", "active").at(3);
        let h = inserted(h, 6, "google_meet", "other-native", "active").at(10);
        let h = inserted(h, 7, "google_meet", "abc-defg-hij", "requested").at(20);
        let h = inserted(h, 8, "google_meet", "abc-defg-hij", "joining")
            .at(5000)
            .final_auto()
            .end();
        let r = status_agrees(&h, &config());
        assert_eq!(r.outcome, Outcome::Holds, "{r:?}");
        assert!(r.summary.contains("all 1 meeting(s)"), "{}", r.summary);
    }
}
