//! INV-TERMINAL: every accepted stop reaches completed/failed within the deadline.
//!
//! An accepted stop is an `Http` exchange answered (`ok`) with 202 to a `DELETE` about a
//! scenario meeting. It applies to the meeting as its user sees it: every row of that
//! meeting's key inserted at or before the answer (legacy stops only the latest one,
//! which is how two live rows orphan a bot). Each must hold a terminal status by
//! `max(answer time, last fault healed) + deadline` (a row already terminal at the stop
//! trivially does). Not terminal when the run ended before that moment: unknown.

use super::Findings;
use crate::check::timeline::{Gone, Timeline, ms};
use crate::check::{CheckConfig, CheckResult, Invariant};
use crate::history::{Event, EventKind, History, HttpPhase};

pub fn terminal(history: &History, config: &CheckConfig) -> CheckResult {
    let tl = Timeline::new(history);
    let mut findings = Findings::new(Invariant::Terminal);
    for (stop, label) in history.events.iter().filter_map(accepted_stop) {
        findings.occurred();
        check_stop(&tl, config, stop, label, &mut findings);
    }
    findings.finish("no stop was accepted (no DELETE answered 202)", |n| {
        format!("All {n} accepted stop(s) reached completed/failed within the deadline.")
    })
}

/// An accepted stop and its scenario meeting label.
fn accepted_stop(e: &Event) -> Option<(&Event, &str)> {
    match &e.kind {
        EventKind::Http {
            phase: HttpPhase::Ok,
            method,
            status: Some(202),
            meeting: Some(label),
            ..
        } if method.eq_ignore_ascii_case("DELETE") => Some((e, label.as_str())),
        _ => None,
    }
}

fn check_stop(
    tl: &Timeline<'_>,
    config: &CheckConfig,
    stop: &Event,
    label: &str,
    findings: &mut Findings,
) {
    let stop_us = stop.at_us;
    let rows = tl.rows_for_label(label, stop_us);
    if rows.is_empty() {
        findings.unknown(format!(
            "The stop of {label} accepted at {} addresses no meeting row the history shows.",
            ms(stop_us)
        ));
        return;
    }
    for id in rows {
        if let Some(row) = tl.meeting(id) {
            check_row(tl, config, stop, label, id, row, findings);
        }
    }
}

fn check_row(
    tl: &Timeline<'_>,
    config: &CheckConfig,
    stop: &Event,
    label: &str,
    id: i64,
    row: &crate::check::timeline::MeetingLine<'_>,
    findings: &mut Findings,
) {
    let stop_us = stop.at_us;
    let deadline = stop_us.max(tl.last_heal_us.unwrap_or(stop_us)) + config.deadline_us;
    let terminal = row.first_terminal();
    if terminal.is_some_and(|t| t.at_us <= deadline) {
        findings.held();
        return;
    }
    if terminal.is_none() && tl.end_us < deadline {
        findings.unknown(format!(
            "Meeting {id} ({label}): stop accepted at {}, not terminal when the run ended at {}, before its deadline {}.",
            ms(stop_us),
            ms(tl.end_us),
            ms(deadline)
        ));
        return;
    }
    let at_deadline = row.status_at(deadline);
    let status = at_deadline.map_or("without a stored status", |s| s.status);
    let text = match terminal {
        Some(t) => format!(
            "Meeting {id} ({label}): stop accepted at {}, still {status} at the deadline {}; {} only at {}.",
            ms(stop_us),
            ms(deadline),
            t.status,
            ms(t.at_us)
        ),
        None => format!(
            "Meeting {id} ({label}): stop accepted at {}, still {status} at the deadline {} and at the end of the run ({}).",
            ms(stop_us),
            ms(deadline),
            ms(tl.end_us)
        ),
    };
    let die = match tl.meeting_gone(id) {
        Gone::At { event, .. } => Some(event),
        _ => None,
    };
    let witness = [Some(stop), at_deadline.map(|s| s.event), die];
    findings.violated(text, witness.into_iter().flatten());
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{H, config};
    use super::*;
    use crate::check::Outcome;

    #[test]
    fn stop_never_terminal_by_deadline_violates_terminal() {
        let h = H::new()
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "requested")
            .at(100)
            .status(1, "requested", "joining")
            .at(200)
            .status(1, "joining", "awaiting_admission")
            .at(300)
            .status(1, "awaiting_admission", "active")
            .at(1000)
            .delete_accepted("m1")
            .at(2000)
            .die(1)
            .at(20_000)
            .end();
        let r = terminal(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(r.precondition_met);
        assert!(
            r.summary.contains("Meeting 1") && r.summary.contains("active"),
            "{}",
            r.summary
        );
        let kinds: Vec<&str> = r.witness.iter().map(|e| e.kind.name()).collect();
        assert_eq!(kinds, ["status_stored", "http", "container"]);
    }

    #[test]
    fn stop_completed_within_deadline_holds_terminal() {
        let h = H::new()
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(1000)
            .delete_accepted("m1")
            .at(3000)
            .status(1, "active", "completed")
            .at(20_000)
            .end();
        let r = terminal(&h, &config());
        assert_eq!(r.outcome, Outcome::Holds, "{r:?}");
        assert!(r.witness.is_empty());
    }

    #[test]
    fn run_without_accepted_stop_is_unknown_for_terminal() {
        let h = H::new()
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(1000)
            .delete("m1", 500)
            .at(20_000)
            .end();
        let r = terminal(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown);
        assert!(!r.precondition_met);
    }

    #[test]
    fn terminal_reached_after_the_deadline_violates_terminal() {
        let h = H::new()
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(1000)
            .delete_accepted("m1")
            .at(7000)
            .status(1, "active", "completed")
            .end();
        let r = terminal(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(
            r.summary.contains("completed only at 7000 ms"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn run_ending_before_the_deadline_leaves_terminal_unknown() {
        let h = H::new()
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(1000)
            .delete_accepted("m1")
            .at(4000)
            .end();
        let r = terminal(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown);
        assert!(r.precondition_met);
    }

    #[test]
    fn deadline_counts_from_the_last_healed_fault() {
        let h = H::new()
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(1000)
            .delete_accepted("m1")
            .at(8000)
            .healed("redis-down")
            .at(12_000)
            .status(1, "active", "failed")
            .at(20_000)
            .end();
        assert_eq!(terminal(&h, &config()).outcome, Outcome::Holds);
    }

    #[test]
    fn stop_of_a_key_with_two_live_rows_needs_both_terminal() {
        // Row 1 stays active (orphaned by a service that stops only the latest row), row 2
        // is stopped: the user's stop is not kept.
        let h = H::new()
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(500)
            .insert(2, "abc-defg-hij", "joining")
            .at(1000)
            .delete_accepted("m1")
            .at(1500)
            .status(2, "joining", "completed")
            .at(20_000)
            .end();
        let r = terminal(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated);
        assert!(r.summary.contains("Meeting 1"), "{}", r.summary);

        // A row inserted after the stop is not the one it stopped.
        let h = H::new()
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(1000)
            .delete_accepted("m1")
            .at(1500)
            .insert(2, "abc-defg-hij", "requested")
            .status(2, "requested", "completed")
            .at(20_000)
            .end();
        let r = terminal(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated);
        assert!(r.summary.contains("Meeting 1"), "{}", r.summary);
    }

    #[test]
    fn stop_of_an_already_terminal_row_holds_terminal() {
        let h = H::new()
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(500)
            .status(1, "active", "completed")
            .at(1000)
            .delete_accepted("m1")
            .at(20_000)
            .end();
        assert_eq!(terminal(&h, &config()).outcome, Outcome::Holds);
    }
}
