//! INV-TRANSITIONS: every stored status change is allowed by the status machine.
//!
//! Each `StatusStored` `from -> to` must be an allowed transition of protocol.md section
//! 3 (`MeetingStatus::can_transition_to`); a value outside the machine on either side
//! (such as `error`, written when a container fails to start) is a violation.

use protocol::MeetingStatus;

use super::Findings;
use crate::check::timeline::ms;
use crate::check::{CheckConfig, CheckResult, Invariant};
use crate::history::{EventKind, History};

pub fn transitions(history: &History, _config: &CheckConfig) -> CheckResult {
    let mut findings = Findings::new(Invariant::Transitions);
    for e in &history.events {
        let EventKind::StatusStored {
            meeting_id,
            from,
            to,
            ..
        } = &e.kind
        else {
            continue;
        };
        findings.occurred();
        match verdict(from, to) {
            None => findings.held(),
            Some(why) => findings.violated(
                format!(
                    "Meeting {meeting_id}: stored {from} -> {to} at {}, {why}.",
                    ms(e.at_us)
                ),
                [e],
            ),
        }
    }
    findings.finish("no status change was stored", |n| {
        format!("All {n} stored status change(s) were allowed by the status machine.")
    })
}

/// Why a transition is not allowed, or `None` when it is.
fn verdict(from: &str, to: &str) -> Option<String> {
    match (from.parse::<MeetingStatus>(), to.parse::<MeetingStatus>()) {
        (Ok(a), Ok(b)) if a.can_transition_to(b) => None,
        (Ok(_), Ok(_)) => Some("a transition the status machine does not allow".into()),
        (Err(_), _) => Some(format!("{from:?} is not a status of the machine")),
        (_, Err(_)) => Some(format!("{to:?} is not a status of the machine")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{H, config};
    use super::*;
    use crate::check::Outcome;

    #[test]
    fn active_stored_from_requested_violates_transitions() {
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "requested")
            .at(100)
            .status(1, "requested", "active")
            .at(200)
            .status(1, "active", "completed")
            .end();
        let r = transitions(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(
            r.summary.contains("requested -> active at 100 ms"),
            "{}",
            r.summary
        );
        assert_eq!(r.witness.len(), 1);
    }

    #[test]
    fn the_machines_own_path_holds_transitions() {
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "requested")
            .at(100)
            .status(1, "requested", "joining")
            .status(1, "joining", "awaiting_admission")
            .status(1, "awaiting_admission", "active")
            .status(1, "active", "stopping")
            .status(1, "stopping", "failed")
            .end();
        assert_eq!(transitions(&h, &config()).outcome, Outcome::Holds);
    }

    #[test]
    fn no_stored_change_is_unknown_for_transitions() {
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "requested")
            .at(100)
            .end();
        let r = transitions(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown);
        assert!(!r.precondition_met);
    }

    #[test]
    fn error_status_outside_the_machine_violates_transitions() {
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "requested")
            .at(100)
            .status(1, "requested", "error")
            .end();
        let r = transitions(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated);
        assert!(
            r.summary.contains("\"error\" is not a status"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn repeated_status_violates_transitions() {
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "joining")
            .at(100)
            .status(1, "joining", "joining")
            .end();
        assert_eq!(transitions(&h, &config()).outcome, Outcome::Violated);
    }
}
