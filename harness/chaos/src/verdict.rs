//! Verdicts, and the expectation a scenario states for each profile.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::check::{CheckResult, Invariant, Outcome};

/// What a scenario expects under one profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Expectation {
    /// No invariant violated, and every focus invariant decided (not unknown).
    Holds,
    /// Exactly these invariants violated.
    Violates { invariants: BTreeSet<Invariant> },
    /// Not runnable yet under this profile (the reason is reported, never a pass).
    Pending { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpectationError {
    #[error(
        "parse expectation {0:?}: expected \"holds\", \"violates INV-..., INV-...\" or \"pending: <reason>\""
    )]
    Shape(String),
    #[error("parse expectation: {0}")]
    Invariant(#[from] crate::check::UnknownInvariant),
}

impl FromStr for Expectation {
    type Err = ExpectationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "holds" {
            return Ok(Expectation::Holds);
        }
        if let Some(rest) = s.strip_prefix("pending") {
            let reason = rest.trim_start_matches(':').trim();
            return Ok(Expectation::Pending {
                reason: if reason.is_empty() {
                    "not implemented yet".into()
                } else {
                    reason.into()
                },
            });
        }
        if let Some(rest) = s.strip_prefix("violates ") {
            let invariants = rest
                .split(',')
                .map(str::parse)
                .collect::<Result<BTreeSet<Invariant>, _>>()?;
            if !invariants.is_empty() {
                return Ok(Expectation::Violates { invariants });
            }
        }
        Err(ExpectationError::Shape(s.to_owned()))
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expectation::Holds => f.write_str("holds"),
            Expectation::Violates { invariants } => write!(f, "violates {}", join(invariants)),
            Expectation::Pending { reason } => write!(f, "pending: {reason}"),
        }
    }
}

/// What a run found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Verdict {
    Holds,
    Violated {
        invariants: BTreeSet<Invariant>,
    },
    /// The run cannot support any verdict: a step did not fire or failed, an
    /// invariant's case was left undecided (the run ended before its window closed), or
    /// a focus invariant's dangerous situation never arose. Never as expected.
    #[serde(alias = "unknown")]
    Inconclusive {
        reason: String,
    },
    /// The harness or its infrastructure failed: nothing can be said about the system.
    Error {
        reason: String,
    },
    /// Not run: the scenario marks this profile pending.
    Pending {
        reason: String,
    },
    /// Not run: the scenario needs what the system under test lacks (a timer it cannot
    /// take, a link it does not have). Reported with its reason, never as a pass.
    NotApplicable {
        reason: String,
    },
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Holds => f.write_str("holds"),
            Verdict::Violated { invariants } => write!(f, "violates {}", join(invariants)),
            Verdict::Inconclusive { reason } => write!(f, "inconclusive ({reason})"),
            Verdict::Error { reason } => write!(f, "error ({reason})"),
            Verdict::Pending { reason } => write!(f, "pending ({reason})"),
            Verdict::NotApplicable { reason } => write!(f, "not applicable ({reason})"),
        }
    }
}

fn join(invariants: &BTreeSet<Invariant>) -> String {
    invariants
        .iter()
        .map(|i| i.id())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Folds checker results into a verdict. `focus` names the invariants the scenario is
/// about: if one of them could not be decided, the run proves nothing. Any invariant
/// whose dangerous situation arose but whose case was left undecided makes the run
/// inconclusive too: "nothing violated" is only a pass when everything was decided.
pub fn verdict(results: &[CheckResult], focus: &[Invariant]) -> Verdict {
    let violated: BTreeSet<Invariant> = results
        .iter()
        .filter(|r| r.outcome == Outcome::Violated)
        .map(|r| r.invariant)
        .collect();
    if !violated.is_empty() {
        return Verdict::Violated {
            invariants: violated,
        };
    }
    let undecided: Vec<String> = results
        .iter()
        .filter(|r| {
            r.outcome == Outcome::Unknown && (r.precondition_met || focus.contains(&r.invariant))
        })
        .map(|r| format!("{} undecided: {}", r.invariant, r.summary))
        .collect();
    if results.is_empty() {
        return Verdict::Inconclusive {
            reason: "no invariant was judged".into(),
        };
    }
    if !results.iter().any(|r| r.precondition_met) {
        return Verdict::Inconclusive {
            reason: "no invariant's dangerous situation arose: the run shows nothing".into(),
        };
    }
    if undecided.is_empty() {
        Verdict::Holds
    } else {
        Verdict::Inconclusive {
            reason: undecided.join("; "),
        }
    }
}

/// A verdict, overruled by what went wrong with the run's own steps: a step that did
/// not fire or failed (unless optional) leaves the scripted situation unproven, so the
/// run is inconclusive whatever the checkers found.
pub fn with_step_problems(verdict: Verdict, problems: &[String]) -> Verdict {
    if problems.is_empty()
        || matches!(
            verdict,
            Verdict::Error { .. } | Verdict::Pending { .. } | Verdict::NotApplicable { .. }
        )
    {
        return verdict;
    }
    let found = match &verdict {
        Verdict::Holds => String::new(),
        other => format!(" (the checkers found: {other})"),
    };
    Verdict::Inconclusive {
        reason: format!("{}{found}", problems.join("; ")),
    }
}

/// Whether a verdict is what the scenario expected.
pub fn as_expected(expectation: &Expectation, verdict: &Verdict) -> bool {
    match (expectation, verdict) {
        (Expectation::Holds, Verdict::Holds) => true,
        (Expectation::Violates { invariants: want }, Verdict::Violated { invariants: got }) => {
            want == got
        }
        (Expectation::Pending { .. }, Verdict::Pending { .. }) => true,
        // Not run, and said so: neither a pass nor a failure (counted apart).
        (_, Verdict::NotApplicable { .. }) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(invariant: Invariant, outcome: Outcome) -> CheckResult {
        CheckResult {
            invariant,
            outcome,
            precondition_met: outcome != Outcome::Unknown,
            summary: String::new(),
            witness: vec![],
            violations: vec![],
        }
    }

    #[test]
    fn expectations_parse_and_print_back() {
        for text in [
            "holds",
            "violates INV-TERMINAL, INV-NO-LOSS",
            "pending: needs the fixed profile",
        ] {
            let parsed: Expectation = text.parse().unwrap();
            assert_eq!(parsed.to_string(), text);
        }
        assert!(
            "violates INV-NOPE"
                .parse::<Expectation>()
                .unwrap_err()
                .to_string()
                .contains("INV-NOPE")
        );
        assert!("passes".parse::<Expectation>().is_err());
    }

    #[test]
    fn undecided_focus_invariant_makes_the_verdict_inconclusive() {
        let mut absent = result(Invariant::Terminal, Outcome::Unknown);
        absent.precondition_met = false;
        let results = [absent, result(Invariant::Transitions, Outcome::Holds)];
        assert!(matches!(
            verdict(&results, &[Invariant::Terminal]),
            Verdict::Inconclusive { .. }
        ));
        assert_eq!(verdict(&results, &[Invariant::Transitions]), Verdict::Holds);
    }

    #[test]
    fn an_undecided_case_of_any_invariant_whose_danger_arose_is_inconclusive() {
        // A run cut short before INV-TERMINAL's deadline read "holds" when the invariant
        // was not in focus: nothing violated is not the same as everything decided.
        let mut cut_short = result(Invariant::Terminal, Outcome::Unknown);
        cut_short.precondition_met = true;
        let results = [cut_short, result(Invariant::Transitions, Outcome::Holds)];
        let got = verdict(&results, &[]);
        assert!(matches!(got, Verdict::Inconclusive { .. }), "{got}");
        assert!(!as_expected(&Expectation::Holds, &got));
    }

    #[test]
    fn a_run_no_checker_judged_is_inconclusive() {
        // With no results at all the fold answered "holds": every run would have passed
        // had the checkers been skipped (found by the mutation check).
        assert!(matches!(verdict(&[], &[]), Verdict::Inconclusive { .. }));
    }

    #[test]
    fn a_run_in_which_nothing_dangerous_arose_is_inconclusive() {
        // With no focus named, a run whose checkers all saw nothing dangerous read as
        // "holds": it shows nothing.
        let mut absent = result(Invariant::Terminal, Outcome::Unknown);
        absent.precondition_met = false;
        let mut quiet = result(Invariant::Transitions, Outcome::Holds);
        quiet.precondition_met = false;
        let got = verdict(&[absent, quiet], &[]);
        assert!(matches!(got, Verdict::Inconclusive { .. }), "{got}");
    }

    #[test]
    fn a_step_problem_makes_even_a_violation_inconclusive() {
        // A misspelled trigger left its fault step not_triggered and the run still
        // passed: the scripted situation never happened, so nothing was shown.
        let violated = verdict(&[result(Invariant::Terminal, Outcome::Violated)], &[]);
        let got = with_step_problems(
            violated,
            &["step \"kill\" never fired: its trigger did not happen".into()],
        );
        let Verdict::Inconclusive { reason } = &got else {
            panic!("{got}")
        };
        assert!(
            reason.contains("never fired") && reason.contains("INV-TERMINAL"),
            "{reason}"
        );
        assert!(!as_expected(
            &"violates INV-TERMINAL".parse().unwrap(),
            &got
        ));
        assert_eq!(with_step_problems(Verdict::Holds, &[]), Verdict::Holds);
    }

    #[test]
    fn stored_unknown_verdicts_read_back_as_inconclusive() {
        let v: Verdict = serde_json::from_str(r#"{"kind":"unknown","reason":"r"}"#).unwrap();
        assert_eq!(v, Verdict::Inconclusive { reason: "r".into() });
    }

    #[test]
    fn a_verdict_is_as_expected_only_when_it_is_the_one_the_scenario_states() {
        let holds = Expectation::Holds;
        let pending = Expectation::Pending {
            reason: "later".into(),
        };
        let violates: Expectation = "violates INV-TERMINAL".parse().unwrap();
        let violated = Verdict::Violated {
            invariants: [Invariant::Terminal].into(),
        };
        let inconclusive = Verdict::Inconclusive { reason: "r".into() };
        let error = Verdict::Error { reason: "r".into() };
        let not_run = Verdict::Pending {
            reason: "other".into(),
        };
        assert!(as_expected(&holds, &Verdict::Holds));
        assert!(as_expected(&pending, &not_run));
        assert!(as_expected(&violates, &violated));
        for (expectation, verdict) in [
            (&holds, &violated),
            (&holds, &inconclusive),
            (&holds, &error),
            (&holds, &not_run),
            (&violates, &Verdict::Holds),
            (&violates, &inconclusive),
            (&pending, &Verdict::Holds),
            (&pending, &error),
        ] {
            assert!(
                !as_expected(expectation, verdict),
                "{expectation} read {verdict} as expected"
            );
        }
    }

    #[test]
    fn violation_expectation_must_match_exactly() {
        let results = [
            result(Invariant::Terminal, Outcome::Violated),
            result(Invariant::StatusAgrees, Outcome::Violated),
        ];
        let got = verdict(&results, &[]);
        let want: Expectation = "violates INV-TERMINAL".parse().unwrap();
        assert!(!as_expected(&want, &got));
        let want: Expectation = "violates INV-TERMINAL, INV-STATUS-AGREES".parse().unwrap();
        assert!(as_expected(&want, &got));
    }
}
