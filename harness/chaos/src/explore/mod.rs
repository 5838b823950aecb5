//! `chaos explore`: random plans nobody wrote, run and judged like the catalogue; every
//! violation shrunk to a minimal scenario, written as a file ready to keep as a
//! regression, with its replay rate.
//!
//! A plan is drawn ([`generate`]), written as a scenario file and run through the engine
//! exactly as `chaos run` runs a file, expecting `holds`. A run that violates an invariant
//! (with no problem of its own: a failed heal or a recording gap makes it inconclusive,
//! not a finding) is a finding. Findings of the same invariants and the same shape of plan
//! are one. Each new one is shrunk ([`shrink`]) with real runs as the oracle: a candidate
//! still fails when its first violated invariant breaks in [`REPLAY_K`] of [`REPLAY_N`]
//! replays. The shrunk plan, its steps made required, is replayed [`RATE_RUNS`] times;
//! the violated set seen most is what its file expects, and how often it came is its
//! replay rate, with a 95% Wilson interval.

pub mod generate;
pub mod plan;
pub mod report;
pub mod shrink;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::check::{Invariant, Outcome};
use crate::engine;
use crate::results::{RunRecord, RunReport};
use crate::stats::Rate;
use crate::sut::Sut;
use crate::verdict::Verdict;
use generate::{FaultKind, Generator};
use plan::PlanSpec;

/// A shrinking candidate still fails when it fails in `REPLAY_K` of `REPLAY_N` replays:
/// runs are real processes, and one lucky failure must not steer the search, nor one
/// unlucky pass stop it.
pub const REPLAY_K: u32 = 2;
pub const REPLAY_N: u32 = 3;
/// Replays of the shrunk plan that give its replay rate.
pub const RATE_RUNS: u32 = 20;
/// Oracle calls a finding's shrink may make by default.
pub const SHRINK_CALLS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    #[error("create {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("run plans: {0}")]
    Engine(#[from] crate::report::ReportError),
    #[error("draw plan {index}: it is not a valid scenario (a generator defect): {errors}")]
    Invalid { index: u64, errors: String },
    #[error("explore: interrupted (what was found so far is in {0})")]
    Interrupted(PathBuf),
    #[error("run plans: {ran} of {planned} plans were run (no expectation for this profile's column?); see {}", dir.display())]
    Missing {
        planned: usize,
        ran: usize,
        dir: PathBuf,
    },
}

/// How long an exploration goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// This many plans (shrinking and replays come on top).
    Runs(u64),
    /// Until this much time has passed (checked between batches; a shrink in progress
    /// finishes).
    Time(Duration),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    pub profile: String,
    pub budget: Budget,
    pub jobs: usize,
    pub kinds: Vec<FaultKind>,
    pub out: PathBuf,
    pub sut: Arc<Sut>,
    pub sut_dir: Option<PathBuf>,
    /// Oracle calls per finding's shrink.
    pub shrink_calls: usize,
    /// Replays of a shrunk plan for its replay rate ([`RATE_RUNS`] by default).
    pub replays: u32,
    /// This shard's plans: plan `i` belongs to shard `k` of `n` when `i % n == k - 1`.
    pub partition: Option<(u64, u64)>,
}

/// One distinct finding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    /// The invariant the shrink kept failing.
    pub invariant: Invariant,
    /// The invariants the shrunk plan's replays broke most often (its `[expect]`).
    pub violates: BTreeSet<Invariant>,
    /// `found/<invariant>-<hash>.toml`, relative to the exploration's folder.
    pub file: String,
    /// The plan that found it: its index, size and faults (fault steps and bot
    /// misbehaviours).
    pub plan_index: u64,
    pub original_size: usize,
    pub original_faults: usize,
    /// The shrunk plan's size and faults.
    pub size: usize,
    pub faults: usize,
    pub shape: String,
    /// How many plans had run, and for how long, when it was first found.
    pub found_after_runs: u64,
    pub found_after_s: f64,
    /// How many drawn plans hit it again (same invariants, same shape) afterwards.
    pub seen_again: u64,
    pub shrink_calls: usize,
    /// Replays of the shrunk plan that gave exactly `violates`.
    pub replay_hits: u32,
    pub replay_runs: u32,
    /// A failing replay's timeline, relative to the exploration's folder.
    pub timeline: Option<String>,
    /// The shrunk scenario as written.
    pub scenario: String,
    /// The shrunk plan itself, to recognise it inside later plans.
    #[serde(skip)]
    pub minimal: PlanSpec,
}

impl Finding {
    pub fn replay_rate(&self) -> Rate {
        Rate {
            hits: self.replay_hits,
            trials: self.replay_runs,
        }
    }
}

/// What an exploration did and found (`explore.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exploration {
    pub seed: u64,
    pub profile: String,
    pub sut: String,
    pub kinds: Vec<String>,
    pub partition: Option<String>,
    pub plans_run: u64,
    /// Runs judged `holds` in which a stop and a fault happened (a fault step fired, or
    /// a bot misbehaved by its plan): what "found nothing" rests on.
    #[serde(default)]
    pub held_runs: u64,
    /// Runs judged `holds` in which no stop or no fault happened: they show nothing.
    #[serde(default)]
    pub idle_runs: u64,
    pub violating_runs: u64,
    pub inconclusive_runs: u64,
    pub error_runs: u64,
    /// Findings that did not replay in k of n before shrinking (intermittent beyond use).
    pub not_replayed: u64,
    pub elapsed_s: f64,
    /// Runs of drawn plans per minute (shrinks and replays excluded).
    pub plans_per_minute: f64,
    pub findings: Vec<Finding>,
}

impl Exploration {
    /// 0 when the exploration judged plans and found nothing, 1 when it found something
    /// (or no plan held: every one inconclusive shows nothing), 2 when any run was a
    /// harness error.
    pub fn exit_code(&self) -> i32 {
        if self.error_runs > 0 {
            2
        } else if self.findings.is_empty() && self.held_runs > 0 && self.not_replayed == 0 {
            0
        } else {
            1
        }
    }
}

pub async fn explore(options: Options) -> Result<(Exploration, PathBuf), ExploreError> {
    let started = Instant::now();
    let dir = options.out.join(format!("explore-{}", engine::run_id()));
    let plans_dir = dir.join("plans");
    let found_dir = dir.join("found");
    for d in [&plans_dir, &found_dir] {
        std::fs::create_dir_all(d).map_err(|source| ExploreError::Create {
            path: d.clone(),
            source,
        })?;
    }
    let generator = Generator {
        seed: options.seed,
        kinds: options.kinds.clone(),
    };
    let column = options.sut.column(&options.profile).to_owned();
    let holds: BTreeMap<String, String> = [(column.clone(), "holds".to_owned())].into();
    let mut exploration = Exploration {
        seed: options.seed,
        profile: options.profile.clone(),
        sut: options.sut.name.clone(),
        kinds: options.kinds.iter().map(|k| k.name().to_owned()).collect(),
        partition: options.partition.map(|(k, n)| format!("{k}/{n}")),
        plans_run: 0,
        held_runs: 0,
        idle_runs: 0,
        violating_runs: 0,
        inconclusive_runs: 0,
        error_runs: 0,
        not_replayed: 0,
        elapsed_s: 0.0,
        plans_per_minute: 0.0,
        findings: Vec::new(),
    };
    // (invariants, shape) of every finding and every drawn plan that hit one.
    let mut known: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut plan_time = Duration::ZERO;
    let mut next_index = 0u64;
    let batch = options.jobs.max(1) as u64;
    loop {
        if engine::interrupted() {
            finish(&mut exploration, started, plan_time);
            report::write(&dir, &exploration)?;
            return Err(ExploreError::Interrupted(dir));
        }
        let done = match options.budget {
            Budget::Runs(n) => exploration.plans_run >= n,
            Budget::Time(t) => started.elapsed() >= t,
        };
        if done {
            break;
        }
        let size = match options.budget {
            Budget::Runs(n) => batch.min(n - exploration.plans_run),
            Budget::Time(_) => batch,
        };
        let mut drawn = Vec::new();
        while (drawn.len() as u64) < size {
            let index = next_index;
            next_index += 1;
            if let Some((k, n)) = options.partition
                && index % n != k - 1
            {
                continue;
            }
            drawn.push(generator.plan(index));
        }
        let mut scenarios = Vec::new();
        for d in &drawn {
            let name = format!("plan-{:06}", d.index);
            let path = plans_dir.join(format!("{name}.toml"));
            let text = d.plan.to_toml(
                &name,
                &format!(
                    "Plan {} of seed {}, fault kinds {}.",
                    d.index,
                    options.seed,
                    d.kinds
                        .iter()
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                &holds,
            );
            write(&path, &text)?;
            let scenario =
                crate::scenario::parse(&path, &text).map_err(|e| ExploreError::Invalid {
                    index: d.index,
                    errors: e.to_string(),
                })?;
            scenarios.push((path, Arc::new(scenario)));
        }
        let batch_started = Instant::now();
        let (report, run_dir) = engine::execute(engine_plan(
            &options,
            scenarios,
            options.seed,
            1,
            &dir.join("runs"),
        ))
        .await?;
        plan_time += batch_started.elapsed();
        if report.records.len() != drawn.len() {
            return Err(ExploreError::Missing {
                planned: drawn.len(),
                ran: report.records.len(),
                dir: run_dir,
            });
        }
        for (d, record) in drawn.iter().zip(&report.records) {
            exploration.plans_run += 1;
            match &record.verdict {
                Verdict::Holds if exercised(&d.plan, record) => exploration.held_runs += 1,
                Verdict::Holds => exploration.idle_runs += 1,
                Verdict::Error { .. } => exploration.error_runs += 1,
                Verdict::Inconclusive { .. } => exploration.inconclusive_runs += 1,
                Verdict::Violated { invariants } => {
                    exploration.violating_runs += 1;
                    let key = (ids(invariants), d.plan.shape());
                    let first = *invariants.iter().next().expect("a violation names one");
                    // The same shape, or a plan that holds a finding's whole minimal plan
                    // and breaks its invariant: the same finding, not shrunk again.
                    let again = known.get(&key).copied().or_else(|| {
                        exploration.findings.iter().position(|f| {
                            f.invariant == first
                                && invariants.is_subset(&f.violates)
                                && d.plan.holds_shape_of(&f.minimal)
                        })
                    });
                    if let Some(i) = again {
                        exploration.findings[i].seen_again += 1;
                        continue;
                    }
                    let found_after_runs = exploration.plans_run;
                    let found_after_s = started.elapsed().as_secs_f64();
                    eprintln!(
                        "chaos: plan {} violates {}: shrinking it",
                        d.index,
                        ids(invariants)
                    );
                    let finding = investigate(
                        &options,
                        &dir,
                        &column,
                        d,
                        first,
                        found_after_runs,
                        found_after_s,
                    )
                    .await?;
                    let (finding, errors) = finding;
                    exploration.error_runs += errors;
                    match finding {
                        Some(finding) => {
                            let shrunk_key = (ids(&finding.violates), finding.shape.clone());
                            if let Some(&i) = known.get(&shrunk_key) {
                                // Shrunk to one already found: the same finding.
                                known.insert(key, i);
                                exploration.findings[i].seen_again += 1;
                                continue;
                            }
                            known.insert(key, exploration.findings.len());
                            known.insert(shrunk_key, exploration.findings.len());
                            write(&dir.join(&finding.file), &finding.scenario)?;
                            eprintln!(
                                "chaos: found {}: {} fault(s), replays {}",
                                finding.file,
                                finding.faults,
                                finding.replay_rate()
                            );
                            exploration.findings.push(finding);
                        }
                        None => exploration.not_replayed += 1,
                    }
                }
                _ => {}
            }
        }
    }
    finish(&mut exploration, started, plan_time);
    report::write(&dir, &exploration)?;
    Ok((exploration, dir))
}

fn finish(exploration: &mut Exploration, started: Instant, plan_time: Duration) {
    exploration.elapsed_s = started.elapsed().as_secs_f64();
    exploration.plans_per_minute = if plan_time.is_zero() {
        0.0
    } else {
        exploration.plans_run as f64 * 60.0 / plan_time.as_secs_f64()
    };
}

fn ids(invariants: &BTreeSet<Invariant>) -> String {
    invariants
        .iter()
        .map(|i| i.id())
        .collect::<Vec<_>>()
        .join(", ")
}

fn write(path: &Path, text: &str) -> Result<(), ExploreError> {
    crate::report::write_atomic(path, text.as_bytes())
        .map(|_| ())
        .map_err(|e| ExploreError::Write {
            path: path.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })
}

fn engine_plan(
    options: &Options,
    scenarios: Vec<(PathBuf, Arc<crate::scenario::Scenario>)>,
    seed: u64,
    repeat: u32,
    out: &Path,
) -> engine::Plan {
    engine::Plan {
        scenarios,
        profiles: Some(vec![options.profile.clone()]),
        skip_unstated_combinations: true,
        seed,
        repeat,
        jobs: options.jobs,
        out: out.to_owned(),
        progress: false,
        run_timeout: None,
        rerun_prefix: "chaos run".into(),
        sut: options.sut.clone(),
        sut_dir: options.sut_dir.clone(),
    }
}

/// Whether a run that held was put to the test: a stop was sent, and a fault step fired
/// or a bot was scripted to misbehave. A run where neither happened shows nothing.
fn exercised(plan: &PlanSpec, record: &RunRecord) -> bool {
    let fired = |workload: bool| {
        record.steps.iter().any(|s| {
            s.done()
                && plan
                    .steps
                    .iter()
                    .any(|p| p.name == s.planned.name && p.is_workload() == workload)
        })
    };
    let misbehaved = plan.meetings.iter().any(|m| !m.bot.is_empty());
    fired(true) && (fired(false) || misbehaved)
}

/// Whether a run broke `invariant` (its check, whatever the verdict's other reasons).
fn broke(record: &RunRecord, invariant: Invariant) -> bool {
    record.problems.is_empty()
        && !matches!(record.verdict, Verdict::Error { .. })
        && record
            .checks
            .iter()
            .any(|c| c.invariant == invariant && c.outcome == Outcome::Violated)
}

/// Replays candidates with real runs: fails when `invariant` breaks in k of n.
struct Replays<'o> {
    options: &'o Options,
    dir: PathBuf,
    column: String,
    invariant: Invariant,
    calls: u64,
    /// Replays that were harness errors: never evidence either way, always reported.
    errors: u64,
}

impl shrink::Oracle for Replays<'_> {
    async fn fails(&mut self, plan: &PlanSpec) -> bool {
        if engine::interrupted() {
            return false;
        }
        self.calls += 1;
        let name = format!("candidate-{:04}", self.calls);
        let path = self.dir.join(format!("{name}.toml"));
        let expect: BTreeMap<String, String> = [(self.column.clone(), "holds".into())].into();
        let text = plan.to_toml(&name, "a shrinking candidate", &expect);
        let Ok(scenario) = crate::scenario::parse(&path, &text) else {
            return false;
        };
        if write(&path, &text).is_err() {
            return false;
        }
        let plan = engine_plan(
            self.options,
            vec![(path, Arc::new(scenario))],
            self.options.seed.wrapping_add(self.calls),
            REPLAY_N,
            &self.dir.join("runs"),
        );
        match engine::execute(plan).await {
            Ok((report, _)) => {
                self.errors += report
                    .records
                    .iter()
                    .filter(|r| matches!(r.verdict, Verdict::Error { .. }))
                    .count() as u64;
                report
                    .records
                    .iter()
                    .filter(|r| broke(r, self.invariant))
                    .count() as u32
                    >= REPLAY_K
            }
            Err(err) => {
                eprintln!("chaos: failed to replay a shrinking candidate: {err}");
                self.errors += 1;
                false
            }
        }
    }
}

/// Shrinks one finding and replays the result; `None` when it does not replay (or its
/// replays no longer break the invariant it was shrunk for), with the harness errors of
/// its replays.
async fn investigate(
    options: &Options,
    dir: &Path,
    column: &str,
    drawn: &generate::Drawn,
    invariant: Invariant,
    found_after_runs: u64,
    found_after_s: f64,
) -> Result<(Option<Finding>, u64), ExploreError> {
    let work = dir.join("shrink").join(format!("plan-{:06}", drawn.index));
    std::fs::create_dir_all(&work).map_err(|source| ExploreError::Create {
        path: work.clone(),
        source,
    })?;
    let mut oracle = Replays {
        options,
        dir: work.clone(),
        column: column.to_owned(),
        invariant,
        calls: 0,
        errors: 0,
    };
    let shrunk = shrink::shrink(drawn.plan.clone(), &mut oracle, options.shrink_calls).await;
    let mut errors = oracle.errors;
    let Some(shrunk) = shrunk else {
        return Ok((None, errors));
    };
    if engine::interrupted() {
        return Ok((None, errors));
    }
    let minimal = shrunk.plan.required().renamed();
    let (violates, hits, runs, timeline, replay_errors) =
        replay_rate(options, &work, column, &minimal).await?;
    errors += replay_errors;
    // A kept scenario must fail as found: its replays must break the invariant it was
    // shrunk for (with its steps now required, they may not).
    if engine::interrupted() || hits == 0 || !violates.contains(&invariant) {
        return Ok((None, errors));
    }
    let shape = minimal.shape();
    let hash = short_hash(&format!("{}|{}", ids(&violates), shape));
    let file = format!("found/{}-{hash}.toml", invariant.id().to_lowercase());
    let expect: BTreeMap<String, String> = [(
        column.to_owned(),
        if violates.is_empty() {
            "holds".to_owned()
        } else {
            format!("violates {}", ids(&violates))
        },
    )]
    .into();
    let description = describe(
        options, drawn, &minimal, invariant, &violates, hits, runs, &shrunk,
    );
    let name = format!("found-{}-{hash}", invariant.id().to_lowercase());
    let scenario = minimal.to_toml(&name, &description, &expect);
    Ok((
        Some(Finding {
            invariant,
            violates,
            file,
            plan_index: drawn.index,
            original_size: drawn.plan.size(),
            original_faults: drawn.plan.faults(),
            size: minimal.size(),
            faults: minimal.faults(),
            shape,
            found_after_runs,
            found_after_s,
            seen_again: 0,
            shrink_calls: shrunk.calls,
            replay_hits: hits,
            replay_runs: runs,
            timeline: timeline.and_then(|t| {
                t.strip_prefix(dir)
                    .ok()
                    .map(|p| p.to_string_lossy().into_owned())
            }),
            scenario,
            minimal,
        }),
        errors,
    ))
}

/// Replays `plan` [`RATE_RUNS`] times: the violated set seen most (ties: the larger, then
/// the first), how many replays gave exactly it, and a timeline of one of them.
async fn replay_rate(
    options: &Options,
    work: &Path,
    column: &str,
    plan: &PlanSpec,
) -> Result<(BTreeSet<Invariant>, u32, u32, Option<PathBuf>, u64), ExploreError> {
    let path = work.join("minimal.toml");
    let expect: BTreeMap<String, String> = [(column.to_owned(), "holds".into())].into();
    let text = plan.to_toml("minimal", "the shrunk plan, replayed", &expect);
    write(&path, &text)?;
    let scenario = crate::scenario::parse(&path, &text).map_err(|e| ExploreError::Invalid {
        index: 0,
        errors: e.to_string(),
    })?;
    let (report, run_dir) = engine::execute(engine_plan(
        options,
        vec![(path, Arc::new(scenario))],
        options.seed.wrapping_add(0x5EED),
        options.replays.max(1),
        &work.join("replays"),
    ))
    .await?;
    let sets = violated_sets(&report);
    let best = sets
        .iter()
        .max_by_key(|(set, n)| (**n, set.len()))
        .map(|(set, _)| set.clone())
        .unwrap_or_default();
    let hits = report
        .records
        .iter()
        .filter(|r| matches!(&r.verdict, Verdict::Violated { invariants } if *invariants == best))
        .count() as u32;
    let timeline = report
        .records
        .iter()
        .find(|r| matches!(&r.verdict, Verdict::Violated { invariants } if *invariants == best))
        .and_then(|r| r.dir.as_ref())
        .map(|d| run_dir.join(d).join("timeline.html"));
    let errors = report
        .records
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Error { .. }))
        .count() as u64;
    Ok((best, hits, report.records.len() as u32, timeline, errors))
}

fn violated_sets(report: &RunReport) -> BTreeMap<BTreeSet<Invariant>, u32> {
    let mut sets = BTreeMap::new();
    for r in &report.records {
        if let Verdict::Violated { invariants } = &r.verdict {
            *sets.entry(invariants.clone()).or_insert(0) += 1;
        }
    }
    sets
}

#[allow(clippy::too_many_arguments)]
fn describe(
    options: &Options,
    drawn: &generate::Drawn,
    minimal: &PlanSpec,
    invariant: Invariant,
    violates: &BTreeSet<Invariant>,
    hits: u32,
    runs: u32,
    shrunk: &shrink::Shrunk,
) -> String {
    let steps: Vec<String> = minimal
        .steps
        .iter()
        .map(|s| format!("{} ({})", s.action, s.name))
        .collect();
    let bots: Vec<String> = minimal
        .meetings
        .iter()
        .filter(|m| !m.bot.is_empty())
        .map(|m| {
            let b: Vec<String> = m.bot.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            format!("{}'s bot {}", m.name, b.join(", "))
        })
        .collect();
    format!(
        "Found by `chaos explore` (seed {}, plan {}, profile {}, {}) and shrunk from {} to {} \
         elements in {} oracle calls of {} replays each, while {} kept breaking. Steps: {}{}. \
         Its replays gave exactly {}: {}.",
        options.seed,
        drawn.index,
        options.profile,
        options.sut.name,
        drawn.plan.size(),
        minimal.size(),
        shrunk.calls,
        REPLAY_N,
        invariant.id(),
        steps.join(", "),
        if bots.is_empty() {
            String::new()
        } else {
            format!("; {}", bots.join("; "))
        },
        if violates.is_empty() {
            "no violation".to_owned()
        } else {
            ids(violates)
        },
        Rate { hits, trials: runs },
    )
}

/// Eight hex digits of FNV-1a: a file name that is the same for the same finding.
fn short_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("{:08x}", h as u32)
}
