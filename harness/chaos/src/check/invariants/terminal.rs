//! INV-TERMINAL: every accepted stop reaches completed/failed within the deadline.
//!
//! An accepted stop is an `Http` exchange answered (`ok`) with 202 to a `DELETE` about a
//! scenario meeting. It applies to the meeting as its user sees it: every row of that
//! meeting's key inserted at or before the answer (legacy stops only the latest one,
//! which is how two live rows orphan a bot). Each must hold a terminal status by
//! `max(answer time, last fault healed) + deadline` (a row already terminal at the stop
//! trivially does). Not terminal when the run ended before that moment: unknown.

use std::collections::BTreeSet;

use super::Findings;
use crate::check::timeline::{Gone, Timeline, ms};
use crate::check::{CheckConfig, CheckResult, Invariant};
use crate::history::{Event, EventKind, History, HttpPhase};

pub fn terminal(history: &History, config: &CheckConfig) -> CheckResult {
    let tl = Timeline::new(history);
    let mut findings = Findings::new(Invariant::Terminal);
    let mut stops = 0usize;
    let mut rows = BTreeSet::new();
    for (stop, label) in history.events.iter().filter_map(accepted_stop) {
        findings.occurred();
        stops += 1;
        rows.extend(check_stop(&tl, config, stop, label, &mut findings));
    }
    findings.finish("no stop was accepted (no DELETE answered 202)", |_| {
        held_summary(stops, rows.len())
    })
}

/// What the user did, when every stop was kept: `stops` accepted DELETEs, over `rows`
/// meeting rows (a repeated DELETE of one row is two stops over one row; one DELETE of a
/// meeting with two live rows is one stop over two rows).
fn held_summary(stops: usize, rows: usize) -> String {
    let lead = match stops {
        1 => "The accepted stop".to_owned(),
        2 => "Both accepted stops".to_owned(),
        n => format!("All {n} accepted stops"),
    };
    let deletes = if stops == 1 { "DELETE" } else { "DELETEs" };
    let row_s = if rows == 1 { "row" } else { "rows" };
    format!(
        "{lead} ({deletes} answered 202, over {rows} meeting {row_s}) reached completed/failed within the deadline."
    )
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

/// Checks every row the stop applies to; answers those rows.
fn check_stop(
    tl: &Timeline<'_>,
    config: &CheckConfig,
    stop: &Event,
    label: &str,
    findings: &mut Findings,
) -> Vec<i64> {
    let stop_us = stop.at_us;
    let rows = tl.rows_for_label(label, stop_us);
    if rows.is_empty() {
        findings.unknown(format!(
            "The stop of {label} accepted at {} addresses no meeting row the history shows.",
            ms(stop_us)
        ));
    }
    for id in &rows {
        if let Some(row) = tl.meeting(*id) {
            check_row(tl, config, stop, label, *id, row, findings);
        }
    }
    rows
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
    fn kept_stops_are_counted_as_the_deletes_the_user_sent_over_the_rows_they_covered() {
        // Pins: the summary counted (stop, row) cases, so two DELETEs over one row and then
        // two rows read "All 3 accepted stop(s) reached completed/failed".
        let h = H::new()
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(1000)
            .delete_accepted("m1")
            .at(1500)
            .insert(2, "abc-defg-hij", "requested")
            .at(2000)
            .delete_accepted("m1")
            .at(2500)
            .status(1, "active", "completed")
            .status(2, "requested", "completed")
            .at(20_000)
            .end();
        let r = terminal(&h, &config());
        assert_eq!(r.outcome, Outcome::Holds, "{r:?}");
        assert_eq!(
            r.summary,
            "Both accepted stops (DELETEs answered 202, over 2 meeting rows) reached completed/failed within the deadline."
        );

        let one_row_twice = H::new()
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(1000)
            .delete_accepted("m1")
            .at(1300)
            .delete_accepted("m1")
            .at(2500)
            .status(1, "active", "completed")
            .at(20_000)
            .end();
        assert_eq!(
            terminal(&one_row_twice, &config()).summary,
            "Both accepted stops (DELETEs answered 202, over 1 meeting row) reached completed/failed within the deadline."
        );
    }

    #[test]
    fn one_stop_over_two_rows_and_three_stops_read_as_such() {
        let two_rows = H::new()
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .insert(2, "abc-defg-hij", "joining")
            .at(1000)
            .delete_accepted("m1")
            .at(1500)
            .status(1, "active", "completed")
            .status(2, "joining", "completed")
            .at(20_000)
            .end();
        assert_eq!(
            terminal(&two_rows, &config()).summary,
            "The accepted stop (DELETE answered 202, over 2 meeting rows) reached completed/failed within the deadline."
        );
        let thrice = H::new()
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(1000)
            .delete_accepted("m1")
            .delete_accepted("m1")
            .delete_accepted("m1")
            .at(1500)
            .status(1, "active", "completed")
            .at(20_000)
            .end();
        assert_eq!(
            terminal(&thrice, &config()).summary,
            "All 3 accepted stops (DELETEs answered 202, over 1 meeting row) reached completed/failed within the deadline."
        );
    }

    #[test]
    fn each_row_a_stop_left_live_is_its_own_violation_with_its_own_witness() {
        let h = H::new()
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(500)
            .insert(2, "abc-defg-hij", "joining")
            .at(700)
            .status(2, "joining", "active")
            .at(1000)
            .delete_accepted("m1")
            .at(20_000)
            .end();
        let r = terminal(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        let texts: Vec<&str> = r.violations.iter().map(|v| v.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Meeting 1 (m1): stop accepted at 1000 ms, still active at the deadline 6000 ms and at the end of the run (20000 ms).",
                "Meeting 2 (m1): stop accepted at 1000 ms, still active at the deadline 6000 ms and at the end of the run (20000 ms).",
            ]
        );
        assert_eq!(r.summary, format!("{} (and 1 more violation)", texts[0]));
        let rows_in = |v: &crate::check::Violation| -> Vec<i64> {
            v.witness
                .iter()
                .filter_map(|e| match &e.kind {
                    EventKind::MeetingInserted { meeting_id, .. }
                    | EventKind::StatusStored { meeting_id, .. } => Some(*meeting_id),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(rows_in(&r.violations[0]), [1]);
        assert_eq!(rows_in(&r.violations[1]), [2]);
        assert_eq!(r.witness, r.violations[0].witness);
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

    #[test]
    fn a_request_other_than_delete_answered_202_is_not_a_stop() {
        let h = H::new()
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(1000)
            .request("POST", "m1", 202)
            .at(20_000)
            .end();
        let r = terminal(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
        assert!(!r.precondition_met, "{r:?}");
    }

    #[test]
    fn a_run_ending_exactly_at_the_deadline_judges_the_stop() {
        let h = H::new()
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(1000)
            .delete_accepted("m1")
            .at(6000)
            .end();
        let r = terminal(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(
            r.summary.contains("at the deadline 6000 ms"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn several_undecided_rows_are_summarised_with_their_count() {
        // Three live rows of one key, the run cut short before the deadline.
        let h = H::new()
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .insert(2, "abc-defg-hij", "active")
            .insert(3, "abc-defg-hij", "active")
            .at(1000)
            .delete_accepted("m1")
            .at(2000)
            .end();
        let r = terminal(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
        assert_eq!(
            r.summary,
            "Meeting 1 (m1): stop accepted at 1000 ms, not terminal when the run ended at 2000 ms, before its deadline 6000 ms. (and 2 more undecided cases)"
        );
    }

    #[test]
    fn one_undecided_row_is_summarised_alone() {
        let h = H::new()
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(1000)
            .delete_accepted("m1")
            .at(2000)
            .end();
        assert_eq!(
            terminal(&h, &config()).summary,
            "Meeting 1 (m1): stop accepted at 1000 ms, not terminal when the run ended at 2000 ms, before its deadline 6000 ms."
        );
    }

    #[test]
    fn three_violated_rows_are_summarised_with_their_count() {
        let h = H::new()
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .insert(2, "abc-defg-hij", "active")
            .insert(3, "abc-defg-hij", "active")
            .at(1000)
            .delete_accepted("m1")
            .at(20_000)
            .end();
        let r = terminal(&h, &config());
        assert_eq!(r.violations.len(), 3, "{r:?}");
        assert!(
            r.summary.ends_with(" (and 2 more violations)"),
            "{}",
            r.summary
        );
    }
}
