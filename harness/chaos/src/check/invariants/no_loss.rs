//! INV-NO-LOSS: no meeting row, session row or transition record disappears; every
//! terminal row has its reason.
//!
//! (a) no `RowDeleted`, and every inserted meeting row is in the final state;
//! (b) the audit list never loses an entry: at each `StatusStored`/`MeetingUpdated` of a
//!     meeting, its `audit_len` is at least the number of the meeting's stored changes so
//!     far, and the final row's `data.status_transition` is at least as long (a shorter
//!     list lost a record, as when two interleaved callbacks overwrite each other's data).
//!     Changes to or from a value outside the status machine (the `error` a failed start
//!     writes) are not counted: the service records machine transitions, and
//!     INV-TRANSITIONS already reports those writes;
//! (c) a completed final row has `data.completion_reason`, a failed one `data.failure_stage`;
//! (d) every session row ever stored is in the final state.
//! The precondition is that a meeting row existed; without a final state the checks of
//! the end cannot be made, and a run that broke none of the others is unknown.

use std::collections::HashMap;

use protocol::MeetingStatus;
use serde_json::Value;

use super::Findings;
use crate::check::timeline::{Timeline, ms};
use crate::check::{CheckConfig, CheckResult, Invariant};
use crate::history::{Event, EventKind, FinalMeeting, History};

pub fn no_loss(history: &History, _config: &CheckConfig) -> CheckResult {
    let tl = Timeline::new(history);
    let mut findings = Findings::new(Invariant::NoLoss);
    let rows_existed =
        !tl.meetings.is_empty() || tl.final_state.is_some_and(|f| !f.meetings.is_empty());
    if rows_existed {
        findings.occurred();
    }
    check_deletions(history, &mut findings);
    let counts = check_audit_lengths(history, &mut findings);
    match tl.final_state {
        Some(_) => {
            check_final_rows(&tl, &counts, &mut findings);
            check_final_sessions(&tl, history, &mut findings);
        }
        None if rows_existed => findings.unknown(format!(
            "No final state was recorded (run ended at {}): rows, audit lists and sessions at the end could not be checked.",
            ms(tl.end_us)
        )),
        None => {}
    }
    findings.finish("no meeting row was inserted", |n| {
        format!("No row, session or audit record was lost, and every terminal row has its reason ({n} checks).")
    })
}

fn is_machine(status: &str) -> bool {
    status.parse::<MeetingStatus>().is_ok()
}

fn check_deletions(history: &History, findings: &mut Findings) {
    for e in &history.events {
        if let EventKind::RowDeleted {
            table, meeting_id, ..
        } = &e.kind
        {
            findings.violated(
                format!(
                    "A row of {table} (meeting {meeting_id}) was deleted at {}.",
                    ms(e.at_us)
                ),
                [e],
            );
        }
    }
}

/// Checks each reported audit length against the stored changes so far; answers the
/// number of counted changes per meeting and the last of them.
fn check_audit_lengths<'h>(
    history: &'h History,
    findings: &mut Findings,
) -> HashMap<i64, (usize, Option<&'h Event>)> {
    let mut counts: HashMap<i64, (usize, Option<&'h Event>)> = HashMap::new();
    for e in &history.events {
        let (meeting_id, audit_len) = match &e.kind {
            EventKind::StatusStored {
                meeting_id,
                from,
                to,
                audit_len,
                ..
            } => {
                if is_machine(from) && is_machine(to) {
                    let entry = counts.entry(*meeting_id).or_default();
                    let previous = entry.1;
                    entry.0 += 1;
                    entry.1 = Some(e);
                    if *audit_len < entry.0 {
                        findings.violated(
                            format!(
                                "Meeting {meeting_id}: stored {from} -> {to} at {} with {audit_len} audit record(s), after {} stored change(s): a transition record was lost.",
                                ms(e.at_us),
                                entry.0
                            ),
                            [previous, Some(e)].into_iter().flatten(),
                        );
                        continue;
                    }
                }
                (*meeting_id, *audit_len)
            }
            EventKind::MeetingUpdated {
                meeting_id,
                audit_len,
                ..
            } => (*meeting_id, *audit_len),
            _ => continue,
        };
        let (count, last) = counts.get(&meeting_id).copied().unwrap_or_default();
        if audit_len < count {
            findings.violated(
                format!(
                    "Meeting {meeting_id}: {audit_len} audit record(s) at {}, after {count} stored change(s): a transition record was lost.",
                    ms(e.at_us)
                ),
                [last, Some(e)].into_iter().flatten(),
            );
        } else if matches!(
            e.kind,
            EventKind::StatusStored { .. } | EventKind::MeetingUpdated { .. }
        ) {
            findings.held();
        }
    }
    counts
}

fn check_final_rows(
    tl: &Timeline<'_>,
    counts: &HashMap<i64, (usize, Option<&Event>)>,
    findings: &mut Findings,
) {
    let (Some(state), Some(final_event)) = (tl.final_state, tl.final_event) else {
        return;
    };
    for (id, line) in &tl.meetings {
        let Some(inserted) = line.inserted else {
            continue;
        };
        if !state.meetings.iter().any(|m| m.id == *id) {
            findings.violated(
                format!(
                    "Meeting row {id}, inserted at {}, is missing from the final state.",
                    ms(inserted.at_us)
                ),
                [inserted, final_event],
            );
        }
    }
    for row in &state.meetings {
        let (count, last) = counts.get(&row.id).copied().unwrap_or_default();
        let audit = row
            .data
            .get("status_transition")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if audit < count {
            findings.violated(
                format!(
                    "Meeting {}: its final audit list holds {audit} record(s) for {count} stored change(s): a transition record was lost.",
                    row.id
                ),
                [last, Some(final_event)].into_iter().flatten(),
            );
        } else {
            findings.held();
        }
        check_reason(tl, row, final_event, findings);
    }
}

fn check_reason(
    tl: &Timeline<'_>,
    row: &FinalMeeting,
    final_event: &Event,
    findings: &mut Findings,
) {
    let key = match row.status.as_str() {
        "completed" => "completion_reason",
        "failed" => "failure_stage",
        _ => return,
    };
    let present = row
        .data
        .get(key)
        .is_some_and(|v| !v.is_null() && v.as_str() != Some(""));
    if present {
        findings.held();
        return;
    }
    let became = tl.meeting(row.id).and_then(|l| l.first_terminal());
    let when = became.map_or_else(String::new, |s| format!(" since {}", ms(s.at_us)));
    findings.violated(
        format!(
            "Meeting {} is {}{when} without data.{key}.",
            row.id, row.status
        ),
        [became.map(|s| s.event), Some(final_event)]
            .into_iter()
            .flatten(),
    );
}

fn check_final_sessions(tl: &Timeline<'_>, history: &History, findings: &mut Findings) {
    let (Some(state), Some(final_event)) = (tl.final_state, tl.final_event) else {
        return;
    };
    for e in &history.events {
        let EventKind::SessionStored {
            meeting_id,
            session_uid,
            ..
        } = &e.kind
        else {
            continue;
        };
        let kept = state
            .sessions
            .iter()
            .any(|s| s.meeting_id == *meeting_id && s.session_uid == *session_uid);
        if kept {
            findings.held();
        } else {
            findings.violated(
                format!(
                    "Session {session_uid} of meeting {meeting_id}, stored at {}, is missing from the final state.",
                    ms(e.at_us)
                ),
                [e, final_event],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testkit::{H, config};
    use super::*;
    use crate::check::Outcome;

    fn stopped_meeting() -> H {
        H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "requested")
            .session(1, "u1")
            .at(100)
            .status(1, "requested", "joining")
            .status(1, "joining", "awaiting_admission")
            .status(1, "awaiting_admission", "active")
            .at(1000)
            .status(1, "active", "completed")
    }

    #[test]
    fn interleaved_callbacks_overwriting_the_audit_list_violate_no_loss() {
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(100)
            .status_audit(1, "active", "stopping", 1)
            .at(110)
            .status_audit(1, "stopping", "completed", 1)
            .at(5000)
            .final_auto()
            .end();
        let r = no_loss(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(
            r.summary
                .contains("at 110 ms with 1 audit record(s), after 2"),
            "{}",
            r.summary
        );
        assert_eq!(r.witness.len(), 2);
    }

    #[test]
    fn faithful_final_state_holds_no_loss() {
        let h = stopped_meeting().at(5000).final_auto().end();
        let r = no_loss(&h, &config());
        assert_eq!(r.outcome, Outcome::Holds, "{r:?}");
    }

    #[test]
    fn run_without_meeting_rows_is_unknown_for_no_loss() {
        let h = H::new().at(5000).final_auto().end();
        let r = no_loss(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown);
        assert!(!r.precondition_met);
    }

    #[test]
    fn deleted_row_violates_no_loss() {
        let h = stopped_meeting()
            .at(2000)
            .row_deleted(1)
            .at(5000)
            .final_auto()
            .end();
        let r = no_loss(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated);
        assert!(r.summary.contains("deleted at 2000 ms"), "{}", r.summary);
    }

    #[test]
    fn completed_row_without_reason_violates_no_loss() {
        let h = stopped_meeting()
            .at(5000)
            .final_auto()
            .final_edit(|f| {
                f.meetings[0]
                    .data
                    .as_object_mut()
                    .unwrap()
                    .remove("completion_reason");
            })
            .end();
        let r = no_loss(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(
            r.summary.contains("without data.completion_reason"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn session_row_missing_at_the_end_violates_no_loss() {
        let h = stopped_meeting()
            .at(5000)
            .final_auto()
            .final_edit(|f| f.sessions.clear())
            .end();
        let r = no_loss(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated);
        assert!(r.summary.contains("Session u1"), "{}", r.summary);
    }

    #[test]
    fn final_audit_list_shorter_than_stored_changes_violates_no_loss() {
        let h = stopped_meeting()
            .at(5000)
            .final_auto()
            .final_edit(|f| {
                f.meetings[0].data["status_transition"] =
                    json!([{"from": "active", "to": "completed"}])
            })
            .end();
        let r = no_loss(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated);
        assert!(
            r.summary.contains("holds 1 record(s) for 4"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn data_update_reporting_a_shorter_audit_list_violates_no_loss() {
        let h = stopped_meeting()
            .at(1500)
            .updated(1, "completed", 3)
            .at(5000)
            .final_auto()
            .end();
        let r = no_loss(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(
            r.summary.contains("3 audit record(s) at 1500 ms, after 4"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn error_write_outside_the_machine_is_not_an_audit_loss() {
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "requested")
            .at(50)
            .status(1, "requested", "error")
            .at(5000)
            .final_auto()
            .end();
        assert_eq!(no_loss(&h, &config()).outcome, Outcome::Holds);
    }

    #[test]
    fn run_without_final_state_leaves_no_loss_unknown() {
        let h = stopped_meeting().at(5000).end();
        let r = no_loss(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown);
        assert!(r.precondition_met);
    }

    #[test]
    fn failed_row_without_its_failure_stage_violates_no_loss() {
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(1000)
            .status(1, "active", "failed")
            .at(5000)
            .final_auto()
            .final_edit(|f| {
                f.meetings[0]
                    .data
                    .as_object_mut()
                    .unwrap()
                    .remove("failure_stage");
            })
            .end();
        let r = no_loss(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert_eq!(
            r.summary,
            "Meeting 1 is failed since 1000 ms without data.failure_stage."
        );
    }

    #[test]
    fn a_null_or_empty_completion_reason_is_no_reason() {
        for empty in [json!(null), json!("")] {
            let h = stopped_meeting()
                .at(5000)
                .final_auto()
                .final_edit(|f| f.meetings[0].data["completion_reason"] = empty.clone())
                .end();
            let r = no_loss(&h, &config());
            assert_eq!(r.outcome, Outcome::Violated, "{empty}: {r:?}");
            assert!(
                r.summary.contains("without data.completion_reason"),
                "{}",
                r.summary
            );
        }
    }

    #[test]
    fn a_lost_session_row_is_not_made_up_for_by_another_session_of_its_meeting() {
        let h = stopped_meeting()
            .at(5000)
            .final_auto()
            .final_edit(|f| f.sessions[0].session_uid = "u2".into())
            .end();
        let r = no_loss(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(
            r.summary.contains("Session u1 of meeting 1"),
            "{}",
            r.summary
        );
    }
}
