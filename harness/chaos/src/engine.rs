//! Running many scenarios: the run folder, parallel jobs, progress, Ctrl-C, and the
//! reports at the end.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::check::{CheckConfig, Invariant};
use crate::history::History;
use crate::results::{RunRecord, RunReport};
use crate::run::{self, RunSpec};
use crate::scenario::Scenario;
use crate::verdict::{self, Expectation, Verdict};

/// What `chaos run` was asked to do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub scenarios: Vec<(PathBuf, Arc<Scenario>)>,
    /// `None`: every profile each scenario names in `[expect]`. Given: each of them, for
    /// every scenario that expects something of it (stated, or legacy's for a single fix).
    pub profiles: Option<Vec<String>>,
    /// Leave out a combination (`a+b`) a scenario states nothing for, instead of
    /// reporting it pending (the matrix runs combinations only where they are named).
    pub skip_unstated_combinations: bool,
    pub seed: u64,
    pub repeat: u32,
    pub jobs: usize,
    pub out: PathBuf,
    pub progress: bool,
    /// Every run's overall deadline; `None`: derived from its scenario
    /// ([`Scenario::run_deadline`]).
    pub run_timeout: Option<std::time::Duration>,
    /// How a failing run is rerun: the command that was actually run (binary path), up to
    /// the scenario path.
    pub rerun_prefix: String,
    /// The service under test, and the user's checkout of it.
    pub sut: Arc<crate::sut::Sut>,
    pub sut_dir: Option<PathBuf>,
}

/// Beside each record's history: what the checkers need to judge it again
/// (`chaos report`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordMeta {
    pub check: CheckConfig,
    pub focus: Vec<Invariant>,
    pub expectation: Expectation,
    /// The scenario's steps, so a re-judged run is inconclusive for the same reasons.
    #[serde(default)]
    pub steps: Vec<crate::run::steps::PlannedStep>,
}

struct Job {
    spec: RunSpec,
    expectation: Expectation,
    rerun: String,
}

pub fn run_id() -> String {
    format!(
        "{}-{:04x}",
        Utc::now().format("%Y%m%dT%H%M%SZ"),
        rand::random::<u16>()
    )
}

/// Runs the plan; answers the report (already written to `<out>/<run-id>/`) and its folder.
pub async fn execute(plan: Plan) -> Result<(RunReport, PathBuf), crate::report::ReportError> {
    execute_shard(plan, None).await
}

/// Runs the shard `partition` of the plan (all of it with `None`): the runs whose
/// position in the plan it takes ([`crate::shard::Partition`]), each as the whole plan
/// would run it (same seed, same folder); `results.json` records the plan and the shard
/// for `chaos merge`.
pub async fn execute_shard(
    plan: Plan,
    partition: Option<crate::shard::Partition>,
) -> Result<(RunReport, PathBuf), crate::report::ReportError> {
    infra::sweep::sweep_leftovers();
    crate::links::sweep_leftover_links().await;
    let run_id = run_id();
    let run_dir = plan.out.join(&run_id);
    std::fs::create_dir_all(&run_dir).map_err(|source| crate::report::ReportError::CreateDir {
        path: run_dir.clone(),
        source,
    })?;
    let started_at = Utc::now();

    // What a rerun needs besides scenario, profile and seed.
    let mut rerun_options = plan
        .run_timeout
        .map(|t| format!(" --run-timeout {}", t.as_secs()))
        .unwrap_or_default();
    if plan.sut.name != crate::sut::REFERENCE {
        rerun_options.push_str(&format!(" --sut {}", plan.sut.spec));
        if let Some(dir) = &plan.sut_dir {
            rerun_options.push_str(&format!(" --sut-dir {}", dir.display()));
        }
    }
    let mut jobs: Vec<Arc<Job>> = Vec::new();
    for (path, scenario) in &plan.scenarios {
        let cells: Vec<(String, Expectation)> = if let Some(column) = plan.sut.only_column() {
            // A service without profiles is one column: the one its adapter names.
            let column = column.to_owned();
            let expectation =
                scenario
                    .expectation_for(&column)
                    .unwrap_or_else(|| Expectation::Pending {
                        reason: format!("the scenario states no expectation for {column}"),
                    });
            vec![(column, expectation)]
        } else {
            match &plan.profiles {
                Some(profiles) => profiles
                    .iter()
                    .filter(|p| {
                        !(plan.skip_unstated_combinations
                            && p.contains('+')
                            && !scenario.expect.contains_key(*p))
                    })
                    .map(|p| {
                        let expectation = scenario
                            .expectation_for(plan.sut.column(p))
                            .unwrap_or_else(|| Expectation::Pending {
                                reason: format!(
                                    "the scenario states no expectation for profile {p}"
                                ),
                            });
                        (p.clone(), expectation)
                    })
                    .collect(),
                None => scenario
                    .expect
                    .iter()
                    .map(|(p, e)| (p.clone(), e.clone()))
                    .collect(),
            }
        };
        // As the service runs it (its fixed timers); unchanged if it cannot, and the run
        // reports why.
        let prepared = plan
            .sut
            .prepare(scenario)
            .map(Arc::new)
            .unwrap_or_else(|_| scenario.clone());
        for (profile, expectation) in cells {
            for repetition in 1..=plan.repeat {
                let dir = run_dir
                    .join(&scenario.name)
                    .join(format!("{profile}-{repetition}"));
                let seed = plan.seed.wrapping_add(u64::from(repetition - 1));
                jobs.push(Arc::new(Job {
                    rerun: format!(
                        "{} {} --profile {profile} --seed {seed}{rerun_options}",
                        plan.rerun_prefix,
                        path.display()
                    ),
                    spec: RunSpec {
                        scenario: prepared.clone(),
                        profile: profile.clone(),
                        seed,
                        repetition,
                        dir,
                        deadline: plan.run_timeout.unwrap_or_else(|| prepared.run_deadline()),
                        sut: plan.sut.clone(),
                        sut_dir: plan.sut_dir.clone(),
                        expectation: expectation.clone(),
                    },
                    expectation: expectation.clone(),
                }));
            }
        }
    }

    let planned = jobs.len();
    let plan_info = crate::shard::PlanInfo {
        seed: plan.seed,
        sut: plan.sut.name.clone(),
        planned,
        fingerprint: crate::shard::fingerprint(jobs.iter().map(|j| {
            format!(
                "{}\t{}\t{}\t{}",
                j.spec.scenario.name, j.spec.profile, j.spec.repetition, j.expectation
            )
        })),
        partition,
        // Only the matrix leaves out unstated combinations; its profiles are its columns.
        matrix_columns: plan
            .skip_unstated_combinations
            .then(|| plan.profiles.clone())
            .flatten(),
    };
    let jobs = crate::shard::split(jobs, partition);
    if let Some(partition) = partition {
        eprintln!(
            "chaos: shard {partition}: {} of the plan's {planned} runs",
            jobs.len()
        );
    }

    let bar = ProgressBar::new(jobs.len() as u64);
    if plan.progress {
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .expect("a valid template"),
        );
    } else {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }

    let (interrupt_tx, interrupt_rx) = tokio::sync::watch::channel(false);
    let signals = tokio::spawn(interrupts(interrupt_tx));

    let semaphore = Arc::new(tokio::sync::Semaphore::new(plan.jobs.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for index in longest_first(&jobs) {
        let job = jobs[index].clone();
        let mut interrupted = interrupt_rx.clone();
        // Permits are taken here, in order, so runs start longest first; a queued run
        // never starts once the user asked to stop.
        let permit = tokio::select! {
            permit = semaphore.clone().acquire_owned() => Some(permit.expect("semaphore open")),
            _ = interrupted.wait_for(|i| *i) => None,
        };
        let bar = bar.clone();
        let run_dir = run_dir.clone();
        let quiet_lines = !plan.progress;
        let spec = job.spec.clone();
        tasks.spawn(async move {
            let outcome = match permit {
                Some(_permit) if !*interrupted.borrow() => {
                    bar.set_message(format!("{} ({})", spec.scenario.name, spec.profile));
                    caught(async move { run::run(&spec, interrupted).await }).await
                }
                _ => not_started(),
            };
            let record = record(&job, &outcome, &run_dir);
            if outcome.history.is_some() {
                write_meta(&job);
            }
            let line = format!(
                "{} {} [{}] {} ({} ms)",
                outcome_word(&record),
                record.scenario,
                record.profile,
                record.verdict,
                record.duration_ms
            );
            if quiet_lines {
                println!("{line}");
            } else {
                bar.println(line);
            }
            bar.inc(1);
            (index, record, outcome.history)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(done) => results.push(done),
            // Only the bookkeeping around a run can get here; the run is still reported.
            Err(err) => eprintln!("chaos: a run's bookkeeping failed: {err}"),
        }
    }
    // Every planned run ends in the report, even one whose task left no record.
    let reported: std::collections::BTreeSet<usize> = results.iter().map(|(i, _, _)| *i).collect();
    for (index, job) in jobs.iter().enumerate() {
        if !reported.contains(&index) {
            let outcome = run::RunOutcome::without_history(
                Verdict::Error {
                    reason: "failed to report the run: its task ended without a record".into(),
                },
                std::time::Duration::ZERO,
            );
            results.push((index, record(job, &outcome, &run_dir), None));
        }
    }
    signals.abort();
    bar.finish_and_clear();
    results.sort_by_key(|(i, _, _)| *i);
    debug_assert_eq!(results.len(), jobs.len());

    let histories: Vec<(RunRecord, Option<History>)> =
        results.into_iter().map(|(_, r, h)| (r, h)).collect();
    let report = RunReport {
        run_id,
        started_at: started_at.to_rfc3339(),
        finished_at: Utc::now().to_rfc3339(),
        commit: git_commit(),
        records: histories.iter().map(|(r, _)| r.clone()).collect(),
        plan: Some(plan_info),
    };
    let lookup = |record: &RunRecord| {
        histories
            .iter()
            .find(|(r, _)| {
                r.dir == record.dir && r.scenario == record.scenario && r.profile == record.profile
            })
            .and_then(|(_, h)| h.clone())
    };
    crate::report::write_all(&run_dir, &report, &lookup)?;
    Ok((report, run_dir))
}

/// The order runs start in: the longest expected first (ties in plan order), so that with
/// N at once the last to finish is a short one; reports keep the plan's order. A run not
/// carried out (pending, not applicable) takes no time.
fn longest_first(jobs: &[Arc<Job>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| {
        let spec = &jobs[i].spec;
        let skipped = matches!(spec.expectation, Expectation::Pending { .. })
            || spec.sut.not_applicable(&spec.scenario).is_some();
        std::cmp::Reverse(if skipped {
            0
        } else {
            spec.scenario.expected_ms()
        })
    });
    order
}

fn record(job: &Job, outcome: &run::RunOutcome, run_dir: &Path) -> RunRecord {
    let spec = &job.spec;
    let dir = outcome.history.as_ref().map(|_| {
        spec.dir
            .strip_prefix(run_dir)
            .unwrap_or(&spec.dir)
            .to_string_lossy()
            .into_owned()
    });
    RunRecord {
        scenario: spec.scenario.name.clone(),
        description: spec.scenario.description.clone(),
        covers: spec.scenario.covers.clone(),
        profile: spec.profile.clone(),
        seed: spec.seed,
        repetition: spec.repetition,
        expectation: job.expectation.clone(),
        verdict: outcome.verdict.clone(),
        as_expected: verdict::as_expected(&job.expectation, &outcome.verdict),
        steps: outcome.steps.clone(),
        problems: outcome.problems.clone(),
        focus: spec.scenario.focus.clone(),
        checks: outcome.checks.clone(),
        duration_ms: outcome.duration.as_millis() as u64,
        dir,
        rerun: job.rerun.clone(),
        convergence: outcome
            .history
            .as_ref()
            .map(crate::check::convergence::convergence),
        convergence_bound_ms: spec.scenario.convergence_bound_ms(),
    }
}

/// The word a finished run's line starts with.
fn outcome_word(record: &RunRecord) -> &'static str {
    match &record.verdict {
        Verdict::Error { .. } => "ERROR",
        Verdict::Inconclusive { .. } => "INCONCLUSIVE",
        // Not run: never a pass.
        Verdict::Pending { .. } => "PENDING",
        Verdict::NotApplicable { .. } => "NOT APPLICABLE",
        _ if record.as_expected => "PASS",
        _ => "FAIL",
    }
}

/// Runs `run` as a task of its own, so that a panic inside it (an overflow, a broken
/// assumption) becomes a harness error of that run instead of a run that vanishes.
pub async fn caught(
    run: impl std::future::Future<Output = run::RunOutcome> + Send + 'static,
) -> run::RunOutcome {
    match tokio::spawn(run).await {
        Ok(outcome) => outcome,
        Err(err) => crashed(err),
    }
}

/// A run whose task panicked: a harness error with the panic's message.
fn crashed(err: tokio::task::JoinError) -> run::RunOutcome {
    let reason = if err.is_panic() {
        let payload = err.into_panic();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        format!("failed to finish the run: the harness crashed ({message})")
    } else {
        "failed to finish the run: its task was cancelled".into()
    };
    run::RunOutcome::without_history(Verdict::Error { reason }, std::time::Duration::ZERO)
}

/// A queued run the user's interrupt kept from starting.
fn not_started() -> run::RunOutcome {
    run::RunOutcome::without_history(
        Verdict::Error {
            reason: "failed to start the run: interrupted before it began".into(),
        },
        std::time::Duration::ZERO,
    )
}

/// SIGINT or SIGTERM (how CI systems cancel a job): the first stops every run and lets
/// them clean up; a second exits at once (children die with us by their parent-death
/// signal, and the next start sweeps what is left).
/// Set once the user asked to stop: a caller that runs one plan after another (`chaos
/// explore`) must not start the next.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the user asked this process to stop (SIGINT or SIGTERM).
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

async fn interrupts(interrupt: tokio::sync::watch::Sender<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        eprintln!("chaos: warning: cannot listen for SIGINT/SIGTERM");
        return;
    };
    let name = tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    };
    eprintln!("chaos: {name}: stopping every run and cleaning up (again to quit at once)");
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = interrupt.send(true);
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    eprintln!("chaos: second signal: quitting now; the next start sweeps what is left");
    std::process::exit(2);
}

fn write_meta(job: &Job) {
    let meta = RecordMeta {
        check: job.spec.scenario.check_config(),
        focus: job.spec.scenario.focus.clone(),
        expectation: job.expectation.clone(),
        steps: crate::run::steps::planned(&job.spec.scenario),
    };
    let path = job.spec.dir.join("check.json");
    if let Err(err) = std::fs::write(
        &path,
        serde_json::to_string_pretty(&meta).expect("meta serialises"),
    ) {
        eprintln!("chaos: failed to write {}: {err}", path.display());
    }
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_run_that_panics_is_a_harness_error_with_the_panic_message() {
        // Timer values that overflowed crashed their runs, which then vanished from the
        // report while the command said "1/1 verdicts as expected".
        let outcome = caught(async {
            let huge: u64 = std::hint::black_box(u64::MAX);
            let _ = huge.checked_add(1).expect("attempt to add with overflow");
            unreachable!()
        })
        .await;
        let Verdict::Error { reason } = &outcome.verdict else {
            panic!("{}", outcome.verdict)
        };
        assert!(
            reason.contains("crashed") && reason.contains("overflow"),
            "{reason}"
        );
        let record = RunRecord {
            verdict: outcome.verdict.clone(),
            as_expected: verdict::as_expected(&Expectation::Holds, &outcome.verdict),
            ..RunRecord::sample("s", "legacy")
        };
        assert!(!record.as_expected);
        assert_eq!(RunReport::sample(vec![record]).exit_code(), 2);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RejudgeError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("parse {path}: {source}")]
    History {
        path: PathBuf,
        #[source]
        source: crate::history::HistoryError,
    },
    #[error("{0}")]
    Report(#[from] crate::report::ReportError),
}

fn read(path: &Path) -> Result<String, RejudgeError> {
    std::fs::read_to_string(path).map_err(|source| RejudgeError::Read {
        path: path.to_owned(),
        source,
    })
}

/// A run folder's `results.json`, read back.
pub fn read_report(run_dir: &Path) -> Result<RunReport, RejudgeError> {
    let results_path = run_dir.join("results.json");
    serde_json::from_str(&read(&results_path)?).map_err(|source| RejudgeError::Parse {
        path: results_path.clone(),
        source,
    })
}

/// `chaos report RUN_DIR`: judges every stored history again with the checkers of this
/// build (nothing is rerun) and rewrites the reports.
pub fn rejudge(run_dir: &Path) -> Result<RunReport, RejudgeError> {
    let mut report = read_report(run_dir)?;
    let mut histories = Vec::new();
    for record in &mut report.records {
        let Some(dir) = record.dir.clone() else {
            histories.push(None);
            continue;
        };
        let dir = run_dir.join(dir);
        let history_path = dir.join("history.jsonl");
        let history =
            History::from_jsonl(&read(&history_path)?).map_err(|source| RejudgeError::History {
                path: history_path.clone(),
                source,
            })?;
        let meta_path = dir.join("check.json");
        let meta: RecordMeta =
            serde_json::from_str(&read(&meta_path)?).map_err(|source| RejudgeError::Parse {
                path: meta_path.clone(),
                source,
            })?;
        record.checks = crate::check::check_all(&history, &meta.check);
        record.steps = crate::run::steps::reports(&meta.steps, &history);
        record.problems = crate::run::steps::problems(&record.steps, &history);
        record.verdict = verdict::with_step_problems(
            verdict::verdict(&record.checks, &meta.focus),
            &record.problems,
        );
        record.as_expected = verdict::as_expected(&record.expectation, &record.verdict);
        record.convergence = Some(crate::check::convergence::convergence(&history));
        histories.push(Some(history));
    }
    let lookup = |record: &RunRecord| {
        report
            .records
            .iter()
            .position(|r| {
                r.dir == record.dir && r.scenario == record.scenario && r.profile == record.profile
            })
            .and_then(|i| histories[i].clone())
    };
    crate::report::write_all(run_dir, &report, &lookup)?;
    Ok(report)
}
