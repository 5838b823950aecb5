//! The acceptance sign-off (`chaos signoff`): the incident report's acceptance criteria
//! (`fixtures/acceptance.toml`), each stated by invariants and exercised by catalogue
//! scenarios, judged over many runs under one profile. A criterion holds only when each
//! of its invariants holds, decided and with its precondition met, on every run of every
//! one of its scenarios: a run that never reached the dangerous situation proves nothing.

mod render;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::check::{CheckResult, Invariant, Outcome};
use crate::results::{RunRecord, RunReport};

pub use render::{render_signoff_html, render_signoff_md};

#[derive(Debug, thiserror::Error)]
pub enum CriteriaError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("load {path}: criterion {id}: {message}")]
    Invalid {
        path: PathBuf,
        id: String,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CriteriaFile {
    criterion: Vec<CriterionSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CriterionSpec {
    id: String,
    text: String,
    invariants: Vec<String>,
    scenarios: Vec<String>,
}

/// One acceptance criterion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Criterion {
    pub id: String,
    pub text: String,
    pub invariants: Vec<Invariant>,
    pub scenarios: Vec<String>,
}

/// Reads the criteria; every scenario they name must be in `known`.
pub fn load_criteria(path: &Path, known: &[String]) -> Result<Vec<Criterion>, CriteriaError> {
    let text = std::fs::read_to_string(path).map_err(|source| CriteriaError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_criteria(path, &text, known)
}

pub fn parse_criteria(
    path: &Path,
    text: &str,
    known: &[String],
) -> Result<Vec<Criterion>, CriteriaError> {
    let file: CriteriaFile = toml::from_str(text).map_err(|e| CriteriaError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let invalid = |id: &str, message: String| CriteriaError::Invalid {
        path: path.to_owned(),
        id: id.to_owned(),
        message,
    };
    let mut ids = BTreeSet::new();
    let mut criteria = Vec::new();
    for spec in file.criterion {
        if !ids.insert(spec.id.clone()) {
            return Err(invalid(&spec.id, "the id is used twice".into()));
        }
        if spec.invariants.is_empty() || spec.scenarios.is_empty() {
            return Err(invalid(
                &spec.id,
                "names no invariant or no scenario".into(),
            ));
        }
        let invariants = spec
            .invariants
            .iter()
            .map(|i| i.parse::<Invariant>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(&spec.id, e.to_string()))?;
        if let Some(unknown) = spec.scenarios.iter().find(|s| !known.contains(s)) {
            return Err(invalid(
                &spec.id,
                format!("scenario {unknown:?} is not in the catalogue"),
            ));
        }
        criteria.push(Criterion {
            id: spec.id,
            text: spec.text,
            invariants,
            scenarios: spec.scenarios,
        });
    }
    if criteria.is_empty() {
        return Err(invalid("-", "the file states no criterion".into()));
    }
    Ok(criteria)
}

/// Every scenario the criteria name, once, in first-named order.
pub fn scenarios(criteria: &[Criterion]) -> Vec<String> {
    let mut seen = Vec::new();
    for c in criteria {
        for s in &c.scenarios {
            if !seen.contains(s) {
                seen.push(s.clone());
            }
        }
    }
    seen
}

/// Why one run does not support a criterion.
#[derive(Debug, Clone)]
pub struct Failure<'r> {
    pub record: &'r RunRecord,
    pub invariant: Invariant,
    /// The checker's result, when it ran.
    pub check: Option<&'r CheckResult>,
    pub why: String,
}

/// One scenario's runs, judged for one criterion.
#[derive(Debug, Clone)]
pub struct ScenarioEvidence<'r> {
    pub scenario: String,
    pub runs: Vec<&'r RunRecord>,
    pub failures: Vec<Failure<'r>>,
}

impl ScenarioEvidence<'_> {
    pub fn held_runs(&self) -> usize {
        self.runs
            .iter()
            .filter(|r| !self.failures.iter().any(|f| std::ptr::eq(f.record, **r)))
            .count()
    }
}

#[derive(Debug, Clone)]
pub struct CriterionEvidence<'r> {
    pub criterion: &'r Criterion,
    pub scenarios: Vec<ScenarioEvidence<'r>>,
}

impl CriterionEvidence<'_> {
    pub fn holds(&self) -> bool {
        self.scenarios
            .iter()
            .all(|s| !s.runs.is_empty() && s.failures.is_empty())
    }

    pub fn runs(&self) -> usize {
        self.scenarios.iter().map(|s| s.runs.len()).sum()
    }

    pub fn held_runs(&self) -> usize {
        self.scenarios.iter().map(ScenarioEvidence::held_runs).sum()
    }
}

fn judge<'r>(record: &'r RunRecord, invariant: Invariant) -> Option<Failure<'r>> {
    let check = record.checks.iter().find(|c| c.invariant == invariant);
    let why = match check {
        None => format!("the run has no {invariant} result ({})", record.verdict),
        Some(c) if c.outcome == Outcome::Violated => format!("{invariant} violated"),
        Some(c) if c.outcome == Outcome::Unknown => format!("{invariant} undecided"),
        Some(c) if !c.precondition_met => {
            format!("{invariant} held only because its situation never arose")
        }
        Some(_) => return None,
    };
    Some(Failure {
        record,
        invariant,
        check,
        why,
    })
}

/// Judges every criterion on the report's records.
pub fn evaluate<'r>(
    criteria: &'r [Criterion],
    report: &'r RunReport,
) -> Vec<CriterionEvidence<'r>> {
    criteria
        .iter()
        .map(|criterion| CriterionEvidence {
            criterion,
            scenarios: criterion
                .scenarios
                .iter()
                .map(|scenario| {
                    let runs: Vec<&RunRecord> = report
                        .records
                        .iter()
                        .filter(|r| &r.scenario == scenario)
                        .collect();
                    let failures = runs
                        .iter()
                        .flat_map(|r| criterion.invariants.iter().filter_map(|i| judge(r, *i)))
                        .collect();
                    ScenarioEvidence {
                        scenario: scenario.clone(),
                        runs,
                        failures,
                    }
                })
                .collect(),
        })
        .collect()
}

/// Writes `signoff.md` and `signoff.html` into the run folder; answers their paths.
pub fn write(
    run_dir: &Path,
    evidence: &[CriterionEvidence<'_>],
    report: &RunReport,
    provenance: &Provenance,
) -> Result<Vec<PathBuf>, crate::report::ReportError> {
    Ok(vec![
        crate::report::write_atomic(
            &run_dir.join("signoff.md"),
            render_signoff_md(evidence, report, provenance).as_bytes(),
        )?,
        crate::report::write_atomic(
            &run_dir.join("signoff.html"),
            render_signoff_html(evidence, report, provenance).as_bytes(),
        )?,
    ])
}

/// Where the sign-off came from, for the reports.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub profile: String,
    pub repeat: u32,
    pub seed: u64,
    pub criteria_file: String,
}

impl Provenance {
    pub fn command(&self) -> String {
        format!(
            "cargo run -q -p chaos -- signoff --criteria {} --profile {} --repeat {} --seed {}",
            self.criteria_file, self.profile, self.repeat, self.seed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[criterion]]
id = "AC1"
text = "stops end"
invariants = ["INV-TERMINAL"]
scenarios = ["a", "b"]
"#;

    fn known() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    fn record(scenario: &str, outcome: Outcome, precondition_met: bool) -> RunRecord {
        RunRecord {
            checks: vec![CheckResult {
                invariant: Invariant::Terminal,
                outcome,
                precondition_met,
                summary: "s".into(),
                witness: vec![],
                violations: vec![],
            }],
            ..RunRecord::sample(scenario, "fixed")
        }
    }

    fn report(records: Vec<RunRecord>) -> RunReport {
        RunReport::sample(records)
    }

    #[test]
    fn criterion_holds_when_every_run_of_every_scenario_holds_decided() {
        let criteria = parse_criteria(Path::new("c.toml"), FILE, &known()).unwrap();
        let r = report(vec![
            record("a", Outcome::Holds, true),
            record("b", Outcome::Holds, true),
        ]);
        let evidence = evaluate(&criteria, &r);
        assert!(evidence[0].holds());
        assert_eq!((evidence[0].held_runs(), evidence[0].runs()), (2, 2));
    }

    #[test]
    fn run_that_never_reached_the_situation_does_not_support_the_criterion() {
        let criteria = parse_criteria(Path::new("c.toml"), FILE, &known()).unwrap();
        let r = report(vec![
            record("a", Outcome::Holds, true),
            record("b", Outcome::Holds, false),
        ]);
        let evidence = evaluate(&criteria, &r);
        assert!(!evidence[0].holds());
        assert!(
            evidence[0].scenarios[1].failures[0]
                .why
                .contains("never arose")
        );
    }

    #[test]
    fn scenario_without_runs_fails_its_criterion() {
        let criteria = parse_criteria(Path::new("c.toml"), FILE, &known()).unwrap();
        let r = report(vec![record("a", Outcome::Holds, true)]);
        assert!(!evaluate(&criteria, &r)[0].holds());
    }

    #[test]
    fn unknown_scenario_or_invariant_is_named_with_its_criterion() {
        let err = parse_criteria(Path::new("c.toml"), FILE, &["a".into()]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("AC1") && text.contains("\"b\""), "{text}");
        let bad = FILE.replace("INV-TERMINAL", "INV-TERMINUS");
        let text = parse_criteria(Path::new("c.toml"), &bad, &known())
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("c.toml") && text.contains("INV-TERMINUS"),
            "{text}"
        );
    }
}
