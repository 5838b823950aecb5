//! INV-TERMINAL-FINAL: nothing leaves completed/failed.
//!
//! No `StatusStored` has a terminal `from`, and no status change of a meeting is stored
//! after the row first held a terminal status (its insert or a stored change).

use super::Findings;
use crate::check::timeline::{StatusAt, Timeline, is_terminal, ms};
use crate::check::{CheckConfig, CheckResult, Invariant};
use crate::history::{EventKind, History};

pub fn terminal_final(history: &History, _config: &CheckConfig) -> CheckResult {
    let tl = Timeline::new(history);
    let mut findings = Findings::new(Invariant::TerminalFinal);
    for (id, line) in &tl.meetings {
        let mut terminal_since: Option<StatusAt<'_>> = None;
        for s in &line.statuses {
            if let EventKind::StatusStored { from, to, .. } = &s.event.kind {
                let left = is_terminal(from).then_some(from.as_str());
                match (terminal_since, left) {
                    (Some(since), _) => findings.violated(
                        format!(
                            "Meeting {id} was {} from {}, then stored {from} -> {to} at {}.",
                            since.status,
                            ms(since.at_us),
                            ms(s.at_us)
                        ),
                        [since.event, s.event],
                    ),
                    (None, Some(from)) => findings.violated(
                        format!(
                            "Meeting {id}: stored {from} -> {to} at {}, leaving a terminal status.",
                            ms(s.at_us)
                        ),
                        [s.event],
                    ),
                    (None, None) => {}
                }
            }
            if terminal_since.is_none() && is_terminal(s.status) {
                terminal_since = Some(*s);
            }
        }
        if terminal_since.is_some() {
            findings.occurred();
            findings.held();
        }
    }
    findings.finish("no meeting became terminal", |n| {
        format!("All {n} terminal meeting(s) stayed terminal.")
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{H, config};
    use super::*;
    use crate::check::Outcome;

    #[test]
    fn completed_then_failed_violates_terminal_final() {
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(100)
            .status(1, "active", "completed")
            .at(200)
            .status(1, "completed", "failed")
            .end();
        let r = terminal_final(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(r.summary.contains("completed from 100 ms"), "{}", r.summary);
        assert_eq!(r.witness.len(), 2);
    }

    #[test]
    fn completed_row_left_alone_holds_terminal_final() {
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(100)
            .status(1, "active", "completed")
            .at(5000)
            .end();
        assert_eq!(terminal_final(&h, &config()).outcome, Outcome::Holds);
    }

    #[test]
    fn meeting_never_terminal_is_unknown_for_terminal_final() {
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(100)
            .status(1, "active", "stopping")
            .end();
        let r = terminal_final(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown);
        assert!(!r.precondition_met);
    }

    #[test]
    fn stored_change_from_terminal_without_seen_terminal_violates_terminal_final() {
        // The change to `failed` was missed; the stored `from` still shows the row left it.
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(100)
            .status(1, "failed", "active")
            .end();
        assert_eq!(terminal_final(&h, &config()).outcome, Outcome::Violated);
    }
}
