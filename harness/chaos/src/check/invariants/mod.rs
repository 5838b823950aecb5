//! The checkers, one file per invariant, over the digested [`Timeline`](super::timeline).
//!
//! Each checker decides case by case (a stop, a meeting, a leave, ...): a case is held,
//! violated (with the few events proving it), or unknown (the run ended before its window
//! closed, or the history lacks what would decide it). The result is violated if any case
//! is, else unknown if the precondition never occurred or any case is undecided, else holds.

mod leave_routed;
mod no_active_without_container;
mod no_loss;
mod no_orphan_container;
mod own_changes;
mod status_agrees;
mod terminal;
mod terminal_final;
mod transitions;

#[cfg(test)]
pub(crate) mod testkit;

pub use leave_routed::leave_routed;
pub use no_active_without_container::no_active_without_container;
pub use no_loss::no_loss;
pub use no_orphan_container::no_orphan_container;
pub use own_changes::own_changes;
pub use status_agrees::status_agrees;
pub use terminal::terminal;
pub use terminal_final::terminal_final;
pub use transitions::transitions;

use super::{CheckResult, Invariant, Outcome, Violation};
use crate::history::Event;

/// What a checker found, case by case.
struct Findings {
    invariant: Invariant,
    precondition: bool,
    held: usize,
    violations: Vec<Violation>,
    unknowns: Vec<String>,
}

impl Findings {
    fn new(invariant: Invariant) -> Self {
        Findings {
            invariant,
            precondition: false,
            held: 0,
            violations: Vec::new(),
            unknowns: Vec::new(),
        }
    }

    /// A case where the dangerous situation occurred.
    fn occurred(&mut self) {
        self.precondition = true;
    }

    fn held(&mut self) {
        self.held += 1;
    }

    fn violated<'a>(&mut self, text: String, witness: impl IntoIterator<Item = &'a Event>) {
        let mut witness: Vec<Event> = witness.into_iter().cloned().collect();
        witness.sort_by_key(|e| (e.at_us, e.seq));
        witness.dedup_by_key(|e| e.seq);
        self.violations.push(Violation { text, witness });
    }

    fn unknown(&mut self, text: String) {
        self.unknowns.push(text);
    }

    /// `absent`: the summary when the precondition never occurred; `held`: the summary
    /// of a pass, given the number of cases that held.
    fn finish(mut self, absent: &str, held: impl FnOnce(usize) -> String) -> CheckResult {
        let precondition_met = self.precondition || !self.violations.is_empty();
        let violations = std::mem::take(&mut self.violations);
        let (outcome, summary, witness) = if let Some(first) = violations.first() {
            let more = violations.len() - 1;
            let summary = if more == 0 {
                first.text.clone()
            } else {
                format!("{} (and {more} more violation{})", first.text, plural(more))
            };
            (Outcome::Violated, summary, first.witness.clone())
        } else if !precondition_met {
            (
                Outcome::Unknown,
                format!("Precondition never occurred: {absent}."),
                Vec::new(),
            )
        } else if let Some(first) = self.unknowns.first() {
            let more = self.unknowns.len() - 1;
            let summary = if more == 0 {
                first.clone()
            } else {
                format!("{first} (and {more} more undecided case{})", plural(more))
            };
            (Outcome::Unknown, summary, Vec::new())
        } else {
            (Outcome::Holds, held(self.held), Vec::new())
        };
        CheckResult {
            invariant: self.invariant,
            outcome,
            precondition_met,
            summary,
            witness,
            violations,
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
