//! Invariant checkers: pure functions over a run's history and final state.
//!
//! Written from protocol.md, independently of the bot-manager's code: no checker calls
//! into the service to decide a verdict. Each reports holds / violated / unknown, a
//! minimal witness (the few events that prove a violation), and whether the dangerous
//! precondition happened at all.

pub mod convergence;
pub(crate) mod invariants;
mod timeline;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::history::{Event, History};

/// The stable invariant ids of architecture.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Invariant {
    #[serde(rename = "INV-TERMINAL")]
    Terminal,
    #[serde(rename = "INV-NO-ACTIVE-WITHOUT-CONTAINER")]
    NoActiveWithoutContainer,
    #[serde(rename = "INV-NO-ORPHAN-CONTAINER")]
    NoOrphanContainer,
    #[serde(rename = "INV-TRANSITIONS")]
    Transitions,
    #[serde(rename = "INV-TERMINAL-FINAL")]
    TerminalFinal,
    #[serde(rename = "INV-LEAVE-ROUTED")]
    LeaveRouted,
    #[serde(rename = "INV-STATUS-AGREES")]
    StatusAgrees,
    #[serde(rename = "INV-NO-LOSS")]
    NoLoss,
    #[serde(rename = "INV-OWN-CHANGES")]
    OwnChanges,
}

impl Invariant {
    pub const ALL: [Invariant; 9] = [
        Invariant::Terminal,
        Invariant::NoActiveWithoutContainer,
        Invariant::NoOrphanContainer,
        Invariant::Transitions,
        Invariant::TerminalFinal,
        Invariant::LeaveRouted,
        Invariant::StatusAgrees,
        Invariant::NoLoss,
        Invariant::OwnChanges,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Invariant::Terminal => "INV-TERMINAL",
            Invariant::NoActiveWithoutContainer => "INV-NO-ACTIVE-WITHOUT-CONTAINER",
            Invariant::NoOrphanContainer => "INV-NO-ORPHAN-CONTAINER",
            Invariant::Transitions => "INV-TRANSITIONS",
            Invariant::TerminalFinal => "INV-TERMINAL-FINAL",
            Invariant::LeaveRouted => "INV-LEAVE-ROUTED",
            Invariant::StatusAgrees => "INV-STATUS-AGREES",
            Invariant::NoLoss => "INV-NO-LOSS",
            Invariant::OwnChanges => "INV-OWN-CHANGES",
        }
    }

    /// What it promises, in a sentence, and the incident report's acceptance criterion
    /// it maps to.
    pub fn statement(self) -> &'static str {
        match self {
            Invariant::Terminal => {
                "every accepted stop reaches completed/failed within the deadline (AC: stop reliably reaches a terminal status)"
            }
            Invariant::NoActiveWithoutContainer => {
                "no meeting is non-terminal while its container has been gone longer than the grace (AC: no meeting active once its container is no longer running)"
            }
            Invariant::NoOrphanContainer => {
                "no container runs for a terminal meeting beyond the grace (fix direction: teardown confirmed before completion)"
            }
            Invariant::Transitions => "every stored status change is allowed by the status machine",
            Invariant::TerminalFinal => "nothing leaves completed/failed",
            Invariant::LeaveRouted => {
                "a leave reaches the channel the live bot listens on (H2, H3)"
            }
            Invariant::StatusAgrees => {
                "the last published status equals the stored one once quiet (H4)"
            }
            Invariant::NoLoss => {
                "no meeting row, session row or transition record disappears; every terminal row has its reason"
            }
            Invariant::OwnChanges => {
                "a meeting's status, container and sessions change only by its own bot or its own user (beyond the incident: a forged callback changes nothing)"
            }
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "parse invariant {0:?}: not one of INV-TERMINAL, INV-NO-ACTIVE-WITHOUT-CONTAINER, INV-NO-ORPHAN-CONTAINER, INV-TRANSITIONS, INV-TERMINAL-FINAL, INV-LEAVE-ROUTED, INV-STATUS-AGREES, INV-NO-LOSS, INV-OWN-CHANGES"
)]
pub struct UnknownInvariant(pub String);

impl FromStr for Invariant {
    type Err = UnknownInvariant;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Invariant::ALL
            .into_iter()
            .find(|i| i.id() == s.trim())
            .ok_or_else(|| UnknownInvariant(s.trim().to_owned()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Holds,
    Violated,
    /// The history cannot decide: the dangerous precondition never happened, or the run
    /// ended before the invariant's window closed.
    Unknown,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Holds => "holds",
            Outcome::Violated => "violated",
            Outcome::Unknown => "unknown",
        })
    }
}

/// One checker's finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub invariant: Invariant,
    pub outcome: Outcome,
    /// Whether the situation the invariant guards against happened at all (an accepted
    /// stop, a container that died, a leave published, ...).
    pub precondition_met: bool,
    /// One or two sentences: what was found.
    pub summary: String,
    /// The few events that prove a violation (empty otherwise): the first violation's,
    /// when there are several.
    pub witness: Vec<Event>,
    /// Every violation found, each with its own text and witness (the first is the one
    /// `summary` and `witness` describe). Empty unless violated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
}

/// One violated case of an invariant: what was found, and the events that prove it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub text: String,
    pub witness: Vec<Event>,
}

/// Windows the checkers use, from the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckConfig {
    /// How long a container may be gone while its meeting is non-terminal, and how long a
    /// container may run for a terminal meeting (microseconds).
    pub grace_us: i64,
    /// How long after an accepted stop (or after the last fault healed, whichever is
    /// later) the meeting must be terminal (microseconds).
    pub deadline_us: i64,
}

/// Runs every checker.
pub fn check_all(history: &History, config: &CheckConfig) -> Vec<CheckResult> {
    Invariant::ALL
        .into_iter()
        .map(|inv| check(inv, history, config))
        .collect()
}

pub fn check(invariant: Invariant, history: &History, config: &CheckConfig) -> CheckResult {
    match invariant {
        Invariant::Terminal => invariants::terminal(history, config),
        Invariant::NoActiveWithoutContainer => {
            invariants::no_active_without_container(history, config)
        }
        Invariant::NoOrphanContainer => invariants::no_orphan_container(history, config),
        Invariant::Transitions => invariants::transitions(history, config),
        Invariant::TerminalFinal => invariants::terminal_final(history, config),
        Invariant::LeaveRouted => invariants::leave_routed(history, config),
        Invariant::StatusAgrees => invariants::status_agrees(history, config),
        Invariant::NoLoss => invariants::no_loss(history, config),
        Invariant::OwnChanges => invariants::own_changes(history, config),
    }
}

#[cfg(test)]
mod tests {
    use super::invariants::testkit::{H, config};
    use super::*;

    #[test]
    fn check_all_judges_every_invariant_once_in_the_stable_order() {
        // An empty or partial list of results folds into no violation: every invariant
        // must be judged, each by its own checker.
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "requested")
            .at(100)
            .status(1, "requested", "active")
            .at(5000)
            .end();
        let all = check_all(&h, &config());
        let judged: Vec<Invariant> = all.iter().map(|r| r.invariant).collect();
        assert_eq!(judged, Invariant::ALL);
        // Each result is its own checker's: only INV-TRANSITIONS sees requested -> active.
        let transitions = all
            .iter()
            .find(|r| r.invariant == Invariant::Transitions)
            .unwrap();
        assert_eq!(transitions.outcome, Outcome::Violated, "{transitions:?}");
    }
}
