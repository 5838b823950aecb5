//! What a run produced: one record per scenario, profile and repetition. This is the
//! content of `results.json` and what every report is made from.

use serde::{Deserialize, Serialize};

use crate::check::{CheckResult, Invariant};
use crate::verdict::{Expectation, Verdict};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: String,
    /// RFC 3339.
    pub started_at: String,
    pub finished_at: String,
    /// `git rev-parse HEAD` of the harness, when known.
    pub commit: Option<String>,
    pub records: Vec<RunRecord>,
    /// The plan the records come from (seed, system under test, shard), for `chaos merge`;
    /// absent in reports written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<crate::shard::PlanInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub scenario: String,
    pub description: String,
    /// Hypotheses and failure modes the scenario covers.
    pub covers: Vec<String>,
    pub profile: String,
    pub seed: u64,
    /// 1-based, for `--repeat`.
    pub repetition: u32,
    pub expectation: Expectation,
    pub verdict: Verdict,
    pub as_expected: bool,
    /// What became of each scripted step (fired, not triggered, failed).
    #[serde(default)]
    pub steps: Vec<crate::run::StepReport>,
    /// Why the run cannot support a verdict, whatever its checks found: steps that did
    /// not happen (unless optional), failed heals, gaps in the recording.
    #[serde(default)]
    pub problems: Vec<String>,
    pub focus: Vec<Invariant>,
    pub checks: Vec<CheckResult>,
    pub duration_ms: u64,
    /// The record's folder, relative to the run folder (`<scenario>/<profile>-<rep>`);
    /// holds `history.jsonl` and `timeline.html`. `None` when nothing ran (pending).
    pub dir: Option<String>,
    /// The one command that reruns exactly this.
    pub rerun: String,
    /// How long the rows took to end once they had to; `None` when nothing ran.
    #[serde(default)]
    pub convergence: Option<crate::check::convergence::Convergence>,
    /// The scenario's bound on it, in ms.
    #[serde(default)]
    pub convergence_bound_ms: u64,
}

impl RunReport {
    /// 0 when every verdict is as expected and at least one run was judged, 2 when any
    /// record is a harness or infra error, else 1.
    pub fn exit_code(&self) -> i32 {
        if self
            .records
            .iter()
            .any(|r| matches!(r.verdict, Verdict::Error { .. }))
        {
            2
        } else if self.records.iter().all(|r| !r.judged()) {
            // Nothing ran (no record, or every one pending or not applicable): nothing
            // was shown.
            1
        } else if self.records.iter().all(|r| r.as_expected) {
            0
        } else {
            1
        }
    }
}

impl RunRecord {
    /// Whether the run was carried out and judged (not pending, not applicable).
    pub fn judged(&self) -> bool {
        !matches!(
            self.verdict,
            Verdict::Pending { .. } | Verdict::NotApplicable { .. }
        )
    }
}

/// The slowest row's time to converge in each record that converged, sorted, and how
/// many records left a row unconverged.
pub fn convergence_times<'r>(
    records: impl IntoIterator<Item = &'r RunRecord>,
) -> (Vec<f64>, usize) {
    let mut times = Vec::new();
    let mut never = 0;
    for r in records {
        match &r.convergence {
            Some(c) if c.unconverged > 0 => never += 1,
            Some(c) => times.extend(c.worst_ms),
            None => {}
        }
    }
    times.sort_by(f64::total_cmp);
    (times, never)
}

#[cfg(test)]
impl RunRecord {
    /// A run of `scenario` under `profile` that held as expected; tests change the rest.
    pub(crate) fn sample(scenario: &str, profile: &str) -> RunRecord {
        RunRecord {
            scenario: scenario.into(),
            description: String::new(),
            covers: vec![],
            profile: profile.into(),
            seed: 1,
            repetition: 1,
            expectation: Expectation::Holds,
            verdict: Verdict::Holds,
            as_expected: true,
            steps: vec![],
            problems: vec![],
            focus: vec![],
            checks: vec![],
            duration_ms: 1,
            dir: None,
            rerun: format!("chaos run {scenario} --profile {profile}"),
            convergence: None,
            convergence_bound_ms: 0,
        }
    }
}

#[cfg(test)]
impl RunReport {
    pub(crate) fn sample(records: Vec<RunRecord>) -> RunReport {
        RunReport {
            run_id: "r".into(),
            started_at: String::new(),
            finished_at: String::new(),
            commit: None,
            records,
            plan: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_in_which_nothing_was_judged_does_not_exit_0() {
        // Against a service that could run none of the scenarios, every record was "not
        // applicable" and the command exited 0: nothing was shown.
        let na = RunRecord {
            verdict: Verdict::NotApplicable {
                reason: "its timers are fixed".into(),
            },
            ..RunRecord::sample("s", "legacy")
        };
        assert_eq!(RunReport::sample(vec![na.clone()]).exit_code(), 1);
        let ran = RunRecord::sample("t", "legacy");
        assert_eq!(RunReport::sample(vec![na, ran]).exit_code(), 0);
    }

    #[test]
    fn a_report_without_a_run_does_not_exit_0() {
        // A shard of more shards than the plan has runs (or an empty scenario folder)
        // ran nothing and exited 0.
        assert_eq!(RunReport::sample(Vec::new()).exit_code(), 1);
    }
}
