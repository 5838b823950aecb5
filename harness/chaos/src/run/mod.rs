//! Running one scenario under one profile: start the stack, record everything, fire the
//! steps on their triggers, heal the faults, wait for quiet, snapshot the final state,
//! and judge the history.

mod actions;
pub(crate) mod client;
pub mod steps;
mod world;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::check::{self, CheckResult};
use crate::history::{EventKind, History, MeetingLabel, Recorder};
use crate::scenario::{Scenario, Step};
use crate::stack::{Stack, StackConfig, StackError};
use crate::verdict::{self, Expectation, Verdict};

pub use actions::Ctx;
use client::Client;
pub use steps::StepReport;
use world::Labels;

/// A run that goes on this long past its fault phase is cut short.
const HARD_CAP: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("start the stack: {0}")]
    Stack(#[from] StackError),
    #[error("start recording: {0}")]
    Recorder(#[from] crate::history::RecorderError),
    #[error("end the run: {0}")]
    Final(#[source] StackError),
    #[error("write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("run the scenario: interrupted")]
    Interrupted,
    #[error(
        "finish within the run's deadline of {} s (see --run-timeout): still waiting for {waiting}",
        deadline.as_secs()
    )]
    Deadline { deadline: Duration, waiting: String },
}

/// One scenario, one profile, one repetition.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub scenario: Arc<Scenario>,
    pub profile: String,
    pub seed: u64,
    pub repetition: u32,
    /// The record's folder: `history.jsonl`, `logs/`.
    pub dir: PathBuf,
    /// The whole run, stack start to final state, must end by then: past it the run is a
    /// harness error naming what it was waiting for.
    pub deadline: Duration,
    /// The service under test (`reference` unless `--sut` says otherwise).
    pub sut: Arc<crate::sut::Sut>,
    /// The user's checkout of it, for adapters that run from one (`--sut-dir`).
    pub sut_dir: Option<PathBuf>,
    /// What the run is judged against: a pending one (stated, or the engine's for a
    /// column the scenario says nothing of) is not run.
    pub expectation: Expectation,
}

pub struct RunOutcome {
    pub history: Option<History>,
    pub checks: Vec<CheckResult>,
    pub verdict: Verdict,
    pub duration: Duration,
    /// What became of each of the scenario's steps.
    pub steps: Vec<StepReport>,
    /// What about the run itself leaves its verdict unproven ([`steps::problems`]).
    pub problems: Vec<String>,
}

impl RunOutcome {
    /// A run that ended (or never began) without a history: only its verdict is known.
    pub fn without_history(verdict: Verdict, duration: Duration) -> RunOutcome {
        RunOutcome {
            history: None,
            checks: Vec::new(),
            verdict,
            duration,
            steps: Vec::new(),
            problems: Vec::new(),
        }
    }
}

/// Runs and judges; never fails: a harness or infra failure is `Verdict::Error`.
pub async fn run(spec: &RunSpec, interrupted: tokio::sync::watch::Receiver<bool>) -> RunOutcome {
    let started = Instant::now();
    if let Some(reason) = spec.sut.not_applicable(&spec.scenario) {
        return RunOutcome::without_history(Verdict::NotApplicable { reason }, started.elapsed());
    }
    if let Expectation::Pending { reason } = &spec.expectation {
        return RunOutcome::without_history(
            Verdict::Pending {
                reason: reason.clone(),
            },
            started.elapsed(),
        );
    }
    let progress = Progress::new(&spec.scenario);
    let result = execute(spec, interrupted, &progress).await;
    let planned = steps::planned(&spec.scenario);
    let (history, checks, verdict, steps, problems) = match result {
        Ok(history) => {
            let checks = check::check_all(&history, &spec.scenario.check_config());
            let steps = steps::reports(&planned, &history);
            let problems = steps::problems(&steps, &history);
            let verdict = verdict::with_step_problems(
                verdict::verdict(&checks, &spec.scenario.focus),
                &problems,
            );
            (Some(history), checks, verdict, steps, problems)
        }
        Err(err) => (
            None,
            Vec::new(),
            Verdict::Error {
                reason: format!("failed to {err}"),
            },
            Vec::new(),
            Vec::new(),
        ),
    };
    RunOutcome {
        history,
        checks,
        verdict,
        duration: started.elapsed(),
        steps,
        problems,
    }
}

async fn execute(
    spec: &RunSpec,
    mut interrupted: tokio::sync::watch::Receiver<bool>,
    progress: &Progress,
) -> Result<History, RunError> {
    let deadline = tokio::time::Instant::now() + spec.deadline;
    let cut_short = |progress: &Progress| RunError::Deadline {
        deadline: spec.deadline,
        waiting: progress.describe(),
    };
    std::fs::create_dir_all(&spec.dir).map_err(|source| RunError::Write {
        path: spec.dir.clone(),
        source,
    })?;
    progress.set_phase("the stack to start");
    let start = Stack::start_sut(
        StackConfig {
            profile: spec.profile.clone(),
            service: spec.scenario.service.clone(),
            bot_env: Vec::new(),
            log_dir: spec.dir.join("logs"),
            links: Some(spec.seed),
        },
        spec.sut.clone(),
        spec.sut_dir.clone(),
    );
    let stack = tokio::select! {
        started = tokio::time::timeout_at(deadline, start) => started.map_err(|_| cut_short(progress))??,
        _ = interrupted.wait_for(|i| *i) => return Err(RunError::Interrupted),
    };
    // The stack goes down inside `drive`, however it ends (dropping it on the deadline
    // kills every process, and its links leave a shared proxy as they drop).
    tokio::time::timeout_at(deadline, drive(spec, stack, interrupted, progress))
        .await
        .unwrap_or_else(|_| Err(cut_short(progress)))
}

/// The phase in which a run waits on its steps: past the deadline, the error names them.
const STEPS_PHASE: &str = "the steps";

/// What a run is waiting for, for the error of a run past its deadline.
struct Progress {
    phase: std::sync::Mutex<&'static str>,
    /// Steps not done yet, with their triggers.
    waiting: std::sync::Mutex<Vec<(String, String)>>,
}

impl Progress {
    fn new(scenario: &Scenario) -> Self {
        Progress {
            phase: std::sync::Mutex::new("the stack to start"),
            waiting: std::sync::Mutex::new(
                scenario
                    .steps
                    .iter()
                    .map(|s| (s.name.clone(), s.when.to_string()))
                    .collect(),
            ),
        }
    }

    fn set_phase(&self, phase: &'static str) {
        *self.phase.lock().expect("progress lock") = phase;
    }

    fn step_done(&self, name: &str) {
        self.waiting
            .lock()
            .expect("progress lock")
            .retain(|(n, _)| n != name);
    }

    fn describe(&self) -> String {
        let phase = *self.phase.lock().expect("progress lock");
        let waiting = self.waiting.lock().expect("progress lock");
        if phase == STEPS_PHASE && !waiting.is_empty() {
            let steps: Vec<String> = waiting
                .iter()
                .map(|(name, when)| format!("step {name:?} ({when})"))
                .collect();
            steps.join(", ")
        } else {
            phase.to_owned()
        }
    }
}

async fn drive(
    spec: &RunSpec,
    stack: Stack,
    mut interrupted: tokio::sync::watch::Receiver<bool>,
    progress: &Progress,
) -> Result<History, RunError> {
    let scenario = &spec.scenario;
    // The scenario's clock starts once the system under test is up.
    let recorder = Recorder::new(Utc::now());
    recorder
        .attach_postgres(&stack.pool, stack.database_url())
        .await?;
    recorder.attach_redis(stack.redis_url()).await?;
    recorder.attach_runtime(&stack.runtime_url).await?;
    recorder.attach_bot_logs(stack.bot_log_dir.clone());

    let labels = Labels(native_ids(
        scenario,
        spec.seed,
        spec.repetition,
        &spec.profile,
    ));
    recorder.record(EventKind::RunStarted {
        scenario: scenario.name.clone(),
        profile: spec.profile.clone(),
        seed: spec.seed,
        meetings: labels.0.clone(),
        wire: Box::new(spec.sut.wire()),
    });
    let ctx = Arc::new(Ctx {
        client: Client::new(
            stack.base_url.clone(),
            recorder.clone(),
            Duration::from_secs(30),
        ),
        stack,
        recorder: recorder.clone(),
        labels,
        scenario: scenario.clone(),
        heals: tokio::sync::Mutex::new(Vec::new()),
        timed_heals: tokio::sync::Mutex::new(tokio::task::JoinSet::new()),
        restarts: tokio::sync::Mutex::new(()),
    });
    for meeting in &scenario.meetings {
        ctx.set_bot_behaviour(meeting).await?;
    }

    let phase = async {
        progress.set_phase("the meetings' POST /bots");
        for meeting in scenario.meetings.iter().filter(|m| m.start) {
            ctx.create(&meeting.label).await;
        }
        progress.set_phase(STEPS_PHASE);
        let mut tasks = tokio::task::JoinSet::new();
        for step in scenario.steps.clone() {
            let ctx = ctx.clone();
            tasks.spawn(async move {
                run_step(&ctx, &step).await;
                step.name
            });
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(name) => progress.step_done(&name),
                // A step that panicked is a harness fault, never a silent pass.
                Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                Err(_) => {}
            }
        }
        progress.set_phase("the faults' heals");
        ctx.heal_all().await;
    };
    tokio::select! {
        () = phase => {}
        _ = interrupted.wait_for(|i| *i) => return Err(RunError::Interrupted),
    }
    let fault_end = recorder.now_us();
    progress.set_phase("the system to settle (quiet, every row terminal, no container running)");
    tokio::select! {
        () = settle(&ctx, fault_end) => {}
        _ = interrupted.wait_for(|i| *i) => return Err(RunError::Interrupted),
    }
    progress.set_phase("the final state (database and runtime)");
    let final_state = ctx.stack.final_state().await.map_err(RunError::Final)?;
    recorder.record(EventKind::Final(final_state));
    let history = recorder.finish();
    write(&spec.dir.join("history.jsonl"), &history.to_jsonl())?;
    Ok(history)
}

/// Unique per run, reproducible from the seed.
fn native_ids(scenario: &Scenario, seed: u64, repetition: u32, profile: &str) -> Vec<MeetingLabel> {
    let mix = scenario
        .name
        .bytes()
        .chain(profile.bytes())
        .fold(seed ^ u64::from(repetition).rotate_left(32), |h, b| {
            h.rotate_left(5) ^ u64::from(b)
        });
    let mut rng = rand::rngs::StdRng::seed_from_u64(mix);
    scenario
        .meetings
        .iter()
        .map(|m| {
            let native = match m.platform {
                protocol::Platform::GoogleMeet => {
                    let l: String = (0..10)
                        .map(|_| rng.random_range(b'a'..=b'z') as char)
                        .collect();
                    format!("{}-{}-{}", &l[0..3], &l[3..7], &l[7..10])
                }
                protocol::Platform::Zoom => (0..10)
                    .map(|_| rng.random_range(b'0'..=b'9') as char)
                    .collect(),
                protocol::Platform::Teams => (0..13)
                    .map(|_| rng.random_range(b'0'..=b'9') as char)
                    .collect(),
            };
            MeetingLabel {
                label: m.label.clone(),
                platform: m.platform.to_string(),
                native_meeting_id: native,
            }
        })
        .collect()
}

async fn run_step(ctx: &Arc<Ctx>, step: &Step) {
    let timeout = Duration::from_millis(ctx.scenario.step_timeout_ms);
    let started = Instant::now();
    if let Some(condition) = &step.when.condition {
        loop {
            let (events, _) = ctx.recorder.since(0);
            if ctx.labels.happened(condition, &events) {
                break;
            }
            if started.elapsed() >= timeout {
                ctx.recorder.record(EventKind::Step {
                    name: step.name.clone(),
                    action: step.action.name().into(),
                    meeting: step.action.meeting().map(str::to_owned),
                    outcome: "not_triggered".into(),
                });
                return;
            }
            ctx.recorder.changed(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(step.when.after_ms)).await;
    let outcome = ctx.perform(&step.action, step.heal_after_ms).await;
    ctx.recorder.record(EventKind::Step {
        name: step.name.clone(),
        action: step.action.name().into(),
        meeting: step.action.meeting().map(str::to_owned),
        outcome,
    });
}

/// How long a settled run waits for the service to announce its last stored statuses:
/// a loaded machine delayed a publish past the quiet period, and INV-STATUS-AGREES then
/// judged a run that had not ended yet. A service that never announces one costs this.
const ANNOUNCE_GRACE: Duration = Duration::from_secs(2);

/// Waits until the system is quiet and either settled (every row terminal, no container
/// running for it, each row's last stored status announced, or [`ANNOUNCE_GRACE`] gone
/// by) or past every window the checkers need.
async fn settle(ctx: &Ctx, fault_end_us: i64) {
    let s = &ctx.scenario;
    let quiet_us = s.quiet_ms as i64 * 1000;
    let window_us = (s.deadline_ms.max(s.grace_ms) as i64) * 1000;
    let cap_us = fault_end_us + window_us + HARD_CAP.as_micros() as i64;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = ctx.recorder.now_us();
        if now >= cap_us {
            return;
        }
        if now - ctx.recorder.last_arrival_us() < quiet_us {
            continue;
        }
        if ctx.settled().await {
            let (events, _) = ctx.recorder.since(0);
            match unannounced_since(&events, ctx.stack.wire()) {
                None => return,
                Some(stored_us) if now >= stored_us + ANNOUNCE_GRACE.as_micros() as i64 => {
                    return;
                }
                Some(_) => continue,
            }
        }
        let (events, _) = ctx.recorder.since(0);
        let last_death = events
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::Container { action, .. } if action == "die"))
            .map(|e| e.at_us)
            .max()
            .unwrap_or(0);
        let grace_us = s.grace_ms as i64 * 1000;
        if now >= fault_end_us + window_us + quiet_us && now >= last_death + grace_us + quiet_us {
            return;
        }
    }
}

/// When the latest stored status not yet published (no status message with that status
/// after it) was stored; `None` when every row's last one was. Only for how long to wait:
/// a status published for another row counts too, and the checkers judge the rest.
fn unannounced_since(events: &[crate::history::Event], wire: &protocol::Wire) -> Option<i64> {
    let mut last: std::collections::BTreeMap<i64, (i64, &str)> = Default::default();
    for e in events {
        if let EventKind::StatusStored { meeting_id, to, .. } = &e.kind {
            last.insert(*meeting_id, (e.at_us, to.as_str()));
        }
    }
    last.values()
        .filter(|(at, status)| {
            !events.iter().any(|e| {
                e.at_us >= *at
                    && matches!(&e.kind, EventKind::Published { channel, payload }
                        if matches!(wire.read(channel, payload),
                            protocol::Published::Status { status: published, .. } if published == *status))
            })
        })
        .map(|(at, _)| *at)
        .max()
}

fn write(path: &Path, text: &str) -> Result<(), RunError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| RunError::Write {
            path: path.to_owned(),
            source,
        })
}

/// The JSON the runtime's rules take.
fn rule_body(native: &str, env: &[(String, String)]) -> serde_json::Value {
    let env: serde_json::Map<String, serde_json::Value> =
        env.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    json!({"match": {"native_meeting_id": native}, "env": env})
}
