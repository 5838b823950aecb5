//! Time to converge: how long a run's meeting rows took to reach a terminal status once
//! they had to. Not an invariant (the checkers judge); a figure the matrix and the
//! sign-off report against the scenario's bound.
//!
//! A row has to end from the first of: a stop accepted for its meeting (DELETE answered
//! 202), its container gone for good. It can end only once the faults are healed, so
//! the clock starts at the later of that obligation and the last fault healed before the
//! row turned terminal. A row already terminal when it had to end took 0 ms.

use serde::{Deserialize, Serialize};

use super::timeline::{Gone, Timeline};
use crate::history::{EventKind, FaultPhase, History, HttpPhase};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Convergence {
    /// The slowest row that ended, in ms; `None` when none had to.
    pub worst_ms: Option<f64>,
    /// Rows that had to end.
    pub rows: usize,
    /// Of those, rows never terminal in the run.
    pub unconverged: usize,
}

pub fn convergence(history: &History) -> Convergence {
    let tl = Timeline::new(history);
    let heals: Vec<i64> = history
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::Fault {
                    phase: FaultPhase::Healed,
                    ..
                }
            )
        })
        .map(|e| e.at_us)
        .collect();
    let stops: Vec<(i64, &str)> = history
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Http {
                phase: HttpPhase::Ok,
                method,
                status: Some(202),
                meeting: Some(label),
                ..
            } if method.eq_ignore_ascii_case("DELETE") => Some((e.at_us, label.as_str())),
            _ => None,
        })
        .collect();
    let mut figure = Convergence {
        worst_ms: None,
        rows: 0,
        unconverged: 0,
    };
    for (&id, line) in &tl.meetings {
        let stopped = stops
            .iter()
            .filter(|(at, label)| tl.rows_for_label(label, *at).contains(&id))
            .map(|(at, _)| *at);
        let gone = tl
            .containers
            .iter()
            .filter(|c| c.meeting_id == Some(id))
            .filter_map(|c| match c.gone() {
                Gone::At { at_us, .. } => Some(at_us),
                Gone::Never | Gone::Sometime { .. } => None,
            });
        let Some(obliged) = stopped.chain(gone).min() else {
            continue;
        };
        figure.rows += 1;
        let Some(terminal) = line.first_terminal() else {
            figure.unconverged += 1;
            continue;
        };
        let healed = heals.iter().copied().filter(|h| *h <= terminal.at_us).max();
        let from = healed.map_or(obliged, |h| h.max(obliged));
        let ms = (terminal.at_us - from).max(0) as f64 / 1000.0;
        figure.worst_ms = Some(figure.worst_ms.map_or(ms, |w: f64| w.max(ms)));
    }
    figure
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::invariants::testkit::H;

    fn active_meeting() -> H {
        H::new()
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "requested")
            .at(300)
            .status(1, "requested", "active")
    }

    #[test]
    fn row_ended_by_a_stop_converges_from_the_accepted_delete() {
        let h = active_meeting()
            .at(1000)
            .delete_accepted("m1")
            .at(2250)
            .status(1, "active", "completed")
            .at(3000)
            .end();
        let c = convergence(&h);
        assert_eq!(c.worst_ms, Some(1250.0));
        assert_eq!((c.rows, c.unconverged), (1, 0));
    }

    #[test]
    fn clock_starts_when_the_last_fault_before_the_end_healed() {
        let h = active_meeting()
            .at(1000)
            .delete_accepted("m1")
            .at(1800)
            .healed("net")
            .at(2000)
            .status(1, "active", "completed")
            .at(3000)
            .end();
        assert_eq!(convergence(&h).worst_ms, Some(200.0));
    }

    #[test]
    fn container_gone_obliges_the_row_to_end() {
        let h = active_meeting()
            .at(500)
            .start(1)
            .at(1000)
            .die(1)
            .at(1400)
            .status(1, "active", "failed")
            .at(3000)
            .end();
        let c = convergence(&h);
        assert_eq!(c.worst_ms, Some(400.0));
        assert_eq!(c.rows, 1);
    }

    #[test]
    fn row_never_terminal_after_a_stop_is_unconverged() {
        let h = active_meeting()
            .at(1000)
            .delete_accepted("m1")
            .at(9000)
            .end();
        let c = convergence(&h);
        assert_eq!(c.worst_ms, None);
        assert_eq!((c.rows, c.unconverged), (1, 1));
    }

    #[test]
    fn row_nobody_asked_to_end_is_not_counted() {
        let h = active_meeting().at(3000).end();
        assert_eq!(convergence(&h).rows, 0);
    }

    #[test]
    fn a_request_other_than_delete_answered_202_obliges_no_row() {
        let h = active_meeting()
            .at(1000)
            .request("POST", "m1", 202)
            .at(3000)
            .end();
        let c = convergence(&h);
        assert_eq!((c.rows, c.unconverged, c.worst_ms), (0, 0, None));
    }
}
