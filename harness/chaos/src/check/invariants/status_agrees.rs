//! INV-STATUS-AGREES: the last published status equals the stored one once quiet.
//!
//! A status event is a message on `bm:meeting:{user_id}:{platform}:{native}:status`
//! carrying `payload.status`. It belongs to the latest row of (platform, native id)
//! inserted at or before the publish (the earliest row when none was yet). For each
//! meeting with a status event, the last one must equal the row's status in the final
//! state, read once the run was quiet. Without a final state: unknown.

use std::collections::BTreeMap;

use super::Findings;
use crate::check::timeline::{Timeline, json_payload, ms};
use crate::check::{CheckConfig, CheckResult, Invariant};
use crate::history::{Event, EventKind, History};

pub fn status_agrees(history: &History, _config: &CheckConfig) -> CheckResult {
    let tl = Timeline::new(history);
    let mut findings = Findings::new(Invariant::StatusAgrees);
    let mut last_published: BTreeMap<i64, (&Event, String)> = BTreeMap::new();
    for e in &history.events {
        let Some((platform, native, status)) = status_event(e) else {
            continue;
        };
        let row = tl
            .latest_row_at(Some(&platform), &native, e.at_us)
            .or_else(|| tl.first_row(Some(&platform), &native));
        match row {
            Some(id) => {
                last_published.insert(id, (e, status));
            }
            None => findings.unknown(format!(
                "Status {status} published at {} for {platform}/{native}, a meeting with no row in the history.",
                ms(e.at_us)
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

/// (platform, native id, status) of a status event.
fn status_event(e: &Event) -> Option<(String, String, String)> {
    let EventKind::Published { channel, payload } = &e.kind else {
        return None;
    };
    let key = channel
        .strip_prefix("bm:meeting:")?
        .strip_suffix(":status")?;
    let mut parts = key.splitn(3, ':');
    let (_user, platform, native) = (parts.next()?, parts.next()?, parts.next()?);
    let payload = json_payload(payload);
    let status = payload.get("payload")?.get("status")?.as_str()?;
    Some((platform.to_owned(), native.to_owned(), status.to_owned()))
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
    use super::super::testkit::{H, config};
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

    #[test]
    fn run_without_final_state_leaves_status_agrees_unknown() {
        let h = active_meeting().at(5000).end();
        let r = status_agrees(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown);
        assert!(r.precondition_met);
    }
}
