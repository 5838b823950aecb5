//! How often something happened over repeated runs, with a confidence interval, so that an
//! intermittent scenario reads as a rate (`17/20 (85%, 95% CI 64-95%)`) rather than as a
//! pass or a fail.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::results::{RunRecord, RunReport};
use crate::verdict::Verdict;

/// z for a two-sided 95 % interval.
pub const Z95: f64 = 1.96;

/// The Wilson score interval of a proportion `successes / trials` at `z` (1.96 for 95 %):
/// `(low, high)`, within `[0, 1]`. Unlike the normal approximation it stays inside
/// `[0, 1]` and is not empty at 0 or at `trials` successes. With no trials nothing is
/// known: `(0, 1)`. `successes` above `trials` counts as `trials`.
pub fn wilson(successes: u32, trials: u32, z: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let successes = successes.min(trials);
    let n = f64::from(trials);
    let p = f64::from(successes) / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    // At the ends the bound is exact; rounding must not put it a hair inside.
    let low = if successes == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let high = if successes == trials {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    (low, high)
}

/// `hits` of `trials`, shown with its 95 % Wilson interval: `19/20 (95%, 95% CI 76-99%)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub hits: u32,
    pub trials: u32,
}

impl Rate {
    /// `hits / trials`; 0 with no trials.
    pub fn fraction(&self) -> f64 {
        if self.trials == 0 {
            0.0
        } else {
            f64::from(self.hits.min(self.trials)) / f64::from(self.trials)
        }
    }

    /// The 95 % Wilson score interval.
    pub fn interval(&self) -> (f64, f64) {
        wilson(self.hits, self.trials, Z95)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (low, high) = self.interval();
        let pct = |x: f64| (x * 100.0).round();
        if self.trials == 0 {
            return write!(f, "0/0 (no runs)");
        }
        write!(
            f,
            "{}/{} ({}%, 95% CI {}-{}%)",
            self.hits,
            self.trials,
            pct(self.fraction()),
            pct(low),
            pct(high)
        )
    }
}

/// In `results.json`: the counts, the fraction and the interval's bounds.
impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let (low, high) = self.interval();
        let round = |x: f64| (x * 1e4).round() / 1e4;
        let mut s = serializer.serialize_struct("Rate", 5)?;
        s.serialize_field("hits", &self.hits)?;
        s.serialize_field("trials", &self.trials)?;
        s.serialize_field("rate", &round(self.fraction()))?;
        s.serialize_field("ci95_low", &round(low))?;
        s.serialize_field("ci95_high", &round(high))?;
        s.end()
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Counts {
            hits: u32,
            trials: u32,
        }
        let c = Counts::deserialize(deserializer)?;
        Ok(Rate {
            hits: c.hits,
            trials: c.trials,
        })
    }
}

/// What the repetitions of one scenario under one profile gave: of the runs judged (not
/// pending, not applicable), how many were as expected and how many violated an
/// invariant (reproduced the failure, whether that was expected or not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellRates {
    pub scenario: String,
    pub profile: String,
    pub expectation: String,
    pub as_expected: Rate,
    pub violated: Rate,
}

impl fmt::Display for CellRates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] (expects {}): as expected {}; violated {}",
            self.scenario, self.profile, self.expectation, self.as_expected, self.violated
        )
    }
}

/// The rates of every scenario and profile judged more than once, in the report's order
/// (a single run is a verdict, not a rate).
pub fn rates(report: &RunReport) -> Vec<CellRates> {
    let mut cells: Vec<(&str, &str, Vec<&RunRecord>)> = Vec::new();
    for r in report.records.iter().filter(|r| r.judged()) {
        match cells
            .iter_mut()
            .find(|(s, p, _)| *s == r.scenario && *p == r.profile)
        {
            Some((_, _, records)) => records.push(r),
            None => cells.push((&r.scenario, &r.profile, vec![r])),
        }
    }
    cells
        .into_iter()
        .filter(|(_, _, records)| records.len() > 1)
        .map(|(scenario, profile, records)| {
            let trials = records.len() as u32;
            let count =
                |f: &dyn Fn(&RunRecord) -> bool| records.iter().filter(|r| f(r)).count() as u32;
            CellRates {
                scenario: scenario.to_owned(),
                profile: profile.to_owned(),
                expectation: records[0].expectation.to_string(),
                as_expected: Rate {
                    hits: count(&|r| r.as_expected),
                    trials,
                },
                violated: Rate {
                    hits: count(&|r| matches!(r.verdict, Verdict::Violated { .. })),
                    trials,
                },
            }
        })
        .collect()
}

/// The rates, one line each under a heading, for the terminal; empty when no scenario
/// ran more than once under a profile.
pub fn rates_text(report: &RunReport) -> String {
    let rates = rates(report);
    if rates.is_empty() {
        return String::new();
    }
    let mut out = String::from("rates over the repetitions (runs judged; 95% Wilson interval):\n");
    for c in rates {
        out.push_str(&format!("  {c}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: (f64, f64), expected: (f64, f64)) {
        assert!(
            (actual.0 - expected.0).abs() < 5e-4 && (actual.1 - expected.1).abs() < 5e-4,
            "{actual:?} is not {expected:?}"
        );
    }

    #[test]
    fn nineteen_of_twenty_gives_the_published_wilson_interval() {
        close(wilson(19, 20, Z95), (0.7639, 0.9911));
    }

    #[test]
    fn none_of_twenty_starts_the_interval_at_exactly_zero() {
        let (low, high) = wilson(0, 20, Z95);
        assert_eq!(low, 0.0);
        close((low, high), (0.0, 0.1611));
    }

    #[test]
    fn twenty_of_twenty_ends_the_interval_at_exactly_one() {
        let (low, high) = wilson(20, 20, Z95);
        assert_eq!(high, 1.0);
        close((low, high), (0.8389, 1.0));
    }

    #[test]
    fn half_of_ten_is_centred_on_a_half() {
        close(wilson(5, 10, Z95), (0.2366, 0.7634));
    }

    #[test]
    fn no_trials_know_nothing() {
        assert_eq!(wilson(0, 0, Z95), (0.0, 1.0));
    }

    #[test]
    fn more_hits_than_trials_count_as_every_trial() {
        assert_eq!(wilson(25, 20, Z95), wilson(20, 20, Z95));
    }

    #[test]
    fn more_trials_narrow_the_interval() {
        let (l1, h1) = wilson(19, 20, Z95);
        let (l2, h2) = wilson(190, 200, Z95);
        assert!(h2 - l2 < h1 - l1);
    }

    #[test]
    fn a_rate_reads_as_count_percentage_and_interval() {
        assert_eq!(
            Rate {
                hits: 19,
                trials: 20
            }
            .to_string(),
            "19/20 (95%, 95% CI 76-99%)"
        );
        assert_eq!(
            Rate {
                hits: 0,
                trials: 20
            }
            .to_string(),
            "0/20 (0%, 95% CI 0-16%)"
        );
        assert_eq!(
            Rate {
                hits: 20,
                trials: 20
            }
            .to_string(),
            "20/20 (100%, 95% CI 84-100%)"
        );
        assert_eq!(Rate { hits: 0, trials: 0 }.to_string(), "0/0 (no runs)");
    }

    #[test]
    fn a_rate_in_json_carries_its_interval_and_reads_back() {
        let rate = Rate {
            hits: 19,
            trials: 20,
        };
        let json = serde_json::to_value(rate).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"hits": 19, "trials": 20, "rate": 0.95, "ci95_low": 0.7639, "ci95_high": 0.9911})
        );
        assert_eq!(serde_json::from_value::<Rate>(json).unwrap(), rate);
    }

    #[test]
    fn rates_count_each_scenario_and_profile_over_its_judged_runs_only() {
        let violated = Verdict::Violated {
            invariants: [crate::check::Invariant::Terminal].into(),
        };
        let mut records = Vec::new();
        for rep in 1..=4 {
            // Three of four reproduce the violation the scenario expects.
            let verdict = if rep == 4 {
                Verdict::Holds
            } else {
                violated.clone()
            };
            records.push(RunRecord {
                repetition: rep,
                as_expected: rep != 4,
                verdict,
                ..RunRecord::sample("h1", "legacy")
            });
        }
        records.push(RunRecord::sample("h1", "fixed"));
        records.push(RunRecord::sample("happy", "legacy"));
        records.push(RunRecord::sample("happy", "legacy"));
        records.push(RunRecord {
            verdict: Verdict::NotApplicable {
                reason: "no".into(),
            },
            ..RunRecord::sample("happy", "legacy")
        });
        let rates = rates(&RunReport::sample(records));
        assert_eq!(rates.len(), 2, "{rates:?}");
        assert_eq!(
            (rates[0].scenario.as_str(), rates[0].profile.as_str()),
            ("h1", "legacy")
        );
        assert_eq!(rates[0].as_expected, Rate { hits: 3, trials: 4 });
        assert_eq!(rates[0].violated, Rate { hits: 3, trials: 4 });
        assert_eq!(rates[1].scenario, "happy");
        assert_eq!(rates[1].as_expected, Rate { hits: 2, trials: 2 });
        assert_eq!(rates[1].violated, Rate { hits: 0, trials: 2 });
    }
}
