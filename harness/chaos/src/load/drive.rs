//! One load run: a stack as a scenario run gets it (real runtime, bot-manager, mock bots,
//! Postgres, Redis, every link through a fault proxy of its own), N meetings started at
//! once, each stopped at its moment, watched until every row ended and every bot is
//! gone or the observation window is over, then the final state, the resources and the
//! history.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::Method;
use serde_json::{Value, json};

use super::figures::{self, Bound, Figures, MeetingOutcome};
use super::procfs::{self, Pids, Sampler, Usage};
use super::spec::{Planned, StopMix};
use crate::history::{EventKind, History, MeetingLabel, Recorder};
use crate::run::client::Client;
use crate::scenario::ServiceSettings;
use crate::stack::{START_DEADLINE, Stack, StackConfig, StackExtras};

const DEV_TOKEN: &str = "stopflow-dev-token";
/// How often the run looks whether every row ended and every bot is gone.
const POLL: Duration = Duration::from_millis(500);
/// How long the recording may lag the database at the end.
const RECORDING_CATCH_UP: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error("start the run's fault proxy: {0}")]
    Proxy(#[source] infra::InfraError),
    #[error("start the stack: {0}")]
    Stack(#[from] crate::stack::StackError),
    #[error("start recording: {0}")]
    Recorder(#[from] crate::history::RecorderError),
    #[error("set the bots' behaviours and links as a runtime rule: answered {status}: {body}")]
    Rule { status: u16, body: Value },
    #[error("read the run's database: {0}")]
    Database(#[source] sqlx::Error),
    #[error("write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One run to make.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub profile: String,
    pub seed: u64,
    pub plan: Vec<Planned>,
    pub mix: StopMix,
    /// `MOCK_BOT_*` for every bot.
    pub bot_env: Vec<(String, String)>,
    pub timers: ServiceSettings,
    pub bound: Bound,
    /// How long past its bound the last stop is watched before what has not ended is
    /// judged stuck.
    pub window: Duration,
    /// Each request's own bound.
    pub request_timeout: Duration,
    /// Flags for the bot-manager beyond the timers (its bounds).
    pub manager_args: Vec<String>,
    /// The run's folder: `history.jsonl`, `meetings.json`, `logs/`.
    pub dir: PathBuf,
}

/// Where a run stands, for the progress line.
#[derive(Debug, Default)]
pub struct Counters {
    pub started: AtomicUsize,
    pub stopped: AtomicUsize,
    pub ended: AtomicUsize,
}

/// How the watching ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// Every row terminal and no bot running.
    Settled,
    /// The observation window ran out first.
    Window,
}

pub struct RunResult {
    pub figures: Figures,
    pub outcomes: Vec<MeetingOutcome>,
    pub usage: Vec<Usage>,
    pub ended: Ended,
    /// From the first POST to the end of watching.
    pub duration: Duration,
    pub history: History,
}

fn write(path: &Path, text: &str) -> Result<(), DriveError> {
    std::fs::write(path, text).map_err(|source| DriveError::Write {
        path: path.to_owned(),
        source,
    })
}

fn create_dir(path: &Path) -> Result<(), DriveError> {
    std::fs::create_dir_all(path).map_err(|source| DriveError::Write {
        path: path.to_owned(),
        source,
    })
}

/// A `fault-proxy` process of the run's own (its CPU and memory are then its own);
/// answers its guard and its API's URL.
async fn start_proxy(
    seed: u64,
    logs: &Path,
) -> Result<(infra::process::ChildGuard, String), DriveError> {
    let bin = infra::bins::workspace_bin("fault-proxy").map_err(DriveError::Proxy)?;
    let log = logs.join("fault-proxy.log");
    let stderr = std::fs::File::create(&log).map_err(|source| DriveError::Write {
        path: log.clone(),
        source,
    })?;
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args([
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--seed",
        &seed.to_string(),
    ])
    .env("RUST_LOG", "warn")
    .stderr(stderr);
    let (guard, line) = infra::process::spawn_until_line(
        cmd,
        |l| l.starts_with("fault-proxy listening on "),
        START_DEADLINE,
    )
    .await
    .map_err(DriveError::Proxy)?;
    let addr = line.trim_start_matches("fault-proxy listening on ").trim();
    Ok((guard, format!("http://{addr}")))
}

pub async fn run(spec: &RunSpec, counters: Arc<Counters>) -> Result<RunResult, DriveError> {
    let logs = spec.dir.join("logs");
    create_dir(&logs)?;
    let (proxy, proxy_url) = start_proxy(spec.seed, &logs).await?;
    let stack = Stack::start_with(
        StackConfig {
            profile: spec.profile.clone(),
            service: spec.timers.clone(),
            bot_env: Vec::new(),
            log_dir: logs.clone(),
            links: Some(spec.seed),
        },
        Arc::new(crate::sut::Sut::reference()),
        None,
        StackExtras {
            manager_args: spec.manager_args.clone(),
            links_at: Some(proxy_url),
        },
    )
    .await?;

    let recorder = Recorder::new(Utc::now());
    recorder
        .attach_postgres(&stack.pool, stack.database_url())
        .await?;
    recorder.attach_redis(stack.redis_url()).await?;
    recorder.attach_runtime(&stack.runtime_url).await?;
    recorder.record(EventKind::RunStarted {
        scenario: format!("load-{}", spec.plan.len()),
        profile: spec.profile.clone(),
        seed: spec.seed,
        meetings: spec
            .plan
            .iter()
            .map(|p| MeetingLabel {
                label: p.label.clone(),
                platform: "google_meet".into(),
                native_meeting_id: p.native_meeting_id.clone(),
            })
            .collect(),
        wire: Box::new(stack.wire().clone()),
    });
    // One pair of links for every bot (their Redis, their callbacks): a thousand pairs
    // would be a thousand listeners to no purpose, as no fault is injected.
    let mut env: serde_json::Map<String, Value> = spec
        .bot_env
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    for (k, v) in stack.bot_links("bots").await? {
        env.insert(k, json!(v));
    }
    let (status, body) = stack
        .runtime_call(
            Method::POST,
            "/_runtime/rules",
            Some(&json!({"match": {}, "env": env})),
        )
        .await?;
    if status != 201 {
        return Err(DriveError::Rule { status, body });
    }

    let postgres = infra::postgres::shared_server().ok().and_then(|s| s.pid());
    let sampler = Sampler::start(Pids {
        bot_manager: stack.manager_pid().await,
        runtime: Some(stack.runtime_pid()),
        fault_proxy: Some(proxy.id()),
        postgres,
        redis: stack.redis_pid(),
        harness: Some(std::process::id()),
    });

    let began = Instant::now();
    fire(spec, &stack, &recorder, &counters).await;
    let ended = watch(spec, &stack, &recorder, &counters).await?;
    let duration = began.elapsed();

    let final_state = stack.final_state().await?;
    recorder.record(EventKind::Final(final_state));
    let usage = sampler.finish(postgres.is_none());
    record_bot_logs(&recorder, &stack.bot_log_dir);
    let history = recorder.finish();
    drop(stack);
    drop(proxy);

    write(&spec.dir.join("history.jsonl"), &history.to_jsonl())?;
    let (figures, outcomes) =
        figures::figures(&history, &spec.plan, &spec.mix, spec.bound.total_ms());
    write(
        &spec.dir.join("meetings.json"),
        &serde_json::to_string_pretty(&outcomes).expect("outcomes serialise"),
    )?;
    Ok(RunResult {
        figures,
        outcomes,
        usage,
        ended,
        duration,
        history,
    })
}

/// Starts every meeting at once, and stops each at its moment after its start was
/// answered. Every request is bounded by the client's timeout, so this ends.
async fn fire(spec: &RunSpec, stack: &Stack, recorder: &Recorder, counters: &Arc<Counters>) {
    let client = Arc::new(Client::new(
        stack.base_url.clone(),
        recorder.clone(),
        spec.request_timeout,
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for planned in spec.plan.clone() {
        let (client, counters) = (client.clone(), counters.clone());
        tasks.spawn(async move {
            let body =
                json!({"platform": "google_meet", "native_meeting_id": planned.native_meeting_id});
            let created = client
                .call(
                    Method::POST,
                    "/bots",
                    Some(DEV_TOKEN),
                    Some(&body),
                    Some(&planned.label),
                )
                .await;
            if created.map(|(status, _)| status) != Some(201) {
                return;
            }
            counters.started.fetch_add(1, Ordering::Relaxed);
            // The client's own timing: the same after the same answer under every profile.
            tokio::time::sleep(planned.stop_after).await;
            let path = format!("/bots/google_meet/{}", planned.native_meeting_id);
            client
                .call(
                    Method::DELETE,
                    &path,
                    Some(DEV_TOKEN),
                    None,
                    Some(&planned.label),
                )
                .await;
            counters.stopped.fetch_add(1, Ordering::Relaxed);
        });
    }
    while let Some(done) = tasks.join_next().await {
        if let Err(err) = done
            && err.is_panic()
        {
            std::panic::resume_unwind(err.into_panic());
        }
    }
}

/// Waits until every row is terminal and no bot runs, or until the last stop's bound and
/// the window are past; then until the recording has every terminal change the database
/// has (bounded).
async fn watch(
    spec: &RunSpec,
    stack: &Stack,
    recorder: &Recorder,
    counters: &Counters,
) -> Result<Ended, DriveError> {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(spec.bound.total_ms()) + spec.window;
    let ended = loop {
        let (live, terminal) = row_counts(stack).await?;
        counters
            .ended
            .store(usize::try_from(terminal).unwrap_or(0), Ordering::Relaxed);
        let running = stack
            .runtime_containers()
            .await
            .map(|all| {
                all.iter()
                    .filter(|c| c["state"].as_str().is_some_and(figures::is_running))
                    .count()
            })
            .unwrap_or(usize::MAX);
        if live == 0 && running == 0 {
            break Ended::Settled;
        }
        if tokio::time::Instant::now() >= deadline {
            break Ended::Window;
        }
        tokio::time::sleep(POLL).await;
    };
    let (_, terminal) = row_counts(stack).await?;
    let caught_up = tokio::time::Instant::now() + RECORDING_CATCH_UP;
    loop {
        let (events, _) = recorder.since(0);
        let recorded = events
            .iter()
            .filter(|e| {
                matches!(&e.kind, EventKind::StatusStored { to, .. }
                    if to == "completed" || to == "failed")
            })
            .count();
        if recorded as i64 >= terminal || tokio::time::Instant::now() >= caught_up {
            break;
        }
        recorder.changed(POLL).await;
    }
    Ok(ended)
}

/// Rows not terminal, rows terminal.
async fn row_counts(stack: &Stack) -> Result<(i64, i64), DriveError> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status NOT IN ('completed', 'failed')), \
                count(*) FILTER (WHERE status IN ('completed', 'failed')) FROM meetings",
    )
    .fetch_one(&stack.pool)
    .await
    .map_err(DriveError::Database)
}

/// The bots' own event logs, read once at the end (a thousand files tailed while the
/// run goes would cost more than the run): one `bot` event per line, at its own time.
fn record_bot_logs(recorder: &Recorder, dir: &Path) {
    // A log not read is said in the history: the mechanisms would lack its lines.
    let gap = |what: &Path, err: std::io::Error| {
        recorder.record(EventKind::RecorderGap {
            source: "bot logs".into(),
            detail: format!("read {}: {err}", what.display()),
        });
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            gap(dir, err);
            return;
        }
    };
    for entry in entries.flatten() {
        let text = match std::fs::read_to_string(entry.path()) {
            Ok(text) => text,
            Err(err) => {
                gap(&entry.path(), err);
                continue;
            }
        };
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(line) {
                recorder.record_bot_line(v);
            }
        }
    }
}

/// The machine as the run found it.
pub fn machine_note() -> String {
    let load = procfs::load_average()
        .map(|[a, b, c]| format!("load average {a:.2} {b:.2} {c:.2}"))
        .unwrap_or_else(|| "load average unknown".into());
    let memory = procfs::available_memory()
        .map(|m| format!("{} MiB available", m >> 20))
        .unwrap_or_else(|| "memory unknown".into());
    format!("{load}, {memory}")
}
