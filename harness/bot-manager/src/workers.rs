//! Background work the fixes add: the durable stop worker (`durable_stop`), the
//! reconcile sweep (`reconcile`) and the runtime's exit evidence
//! (`runtime_exit_evidence`). Legacy runs none of them.

use std::time::Duration;

use futures::StreamExt;
use protocol::MeetingStatus;
use tokio::task::JoinSet;

use crate::app::AppState;
use crate::containers::StopOutcome;
use crate::db::{self, STOP_JOB_ATTEMPTS};
use crate::stop::{finalize_if_live, force_stop};

/// The advisory lock that makes the sweep single-flight across service instances (taken
/// at transaction level: see [`sweep`]).
const RECONCILE_LOCK: i64 = 0x5707_f10e;

pub fn spawn(state: &AppState) -> JoinSet<()> {
    let mut set = JoinSet::new();
    if state.fixes.durable_stop {
        set.spawn(stop_worker(state.clone()));
    }
    if state.fixes.reconcile {
        set.spawn(reconcile_loop(state.clone()));
    }
    if state.fixes.runtime_exit_evidence {
        set.spawn(exit_evidence(state.clone()));
    }
    set
}

async fn stop_worker(state: AppState) {
    let t = &state.config.timers;
    // Long enough for a stop with its whole grace and the finalizer after it.
    let lease = Duration::from_secs(u64::from(t.stop_grace_s))
        + t.dependency_timeout()
        + t.finalizer_grace()
        + Duration::from_secs(5);
    let batch = state.config.work.stop_job_batch;
    loop {
        // A stop due now wakes the worker; the others wait for the poll.
        tokio::select! {
            () = tokio::time::sleep(t.stop_job_poll()) => {}
            () = state.stop_jobs_due.notified() => {}
        }
        // A full batch may have left more due: claim again at once. (Sixteen a poll, a
        // thousand stops due at once took sixteen seconds just to be claimed.)
        let mut full = true;
        while full {
            let jobs = match db::claim_stop_jobs(&state.pool, lease, batch).await {
                Ok(jobs) => jobs,
                Err(err) => {
                    tracing::warn!(error = %err, "failed to claim due stops; retrying");
                    break;
                }
            };
            full = jobs.len() >= batch as usize;
            perform_stop_jobs(&state, jobs);
        }
    }
}

/// Each claimed stop in a task of its own: the stops wait out their graces side by side.
fn perform_stop_jobs(state: &AppState, jobs: Vec<db::StopJob>) {
    for job in jobs {
        let state = state.clone();
        tokio::spawn(async move {
            let result = force_stop(&state, job.meeting_id, &job.container, "durable stop").await;
            let recorded = match result {
                Ok(_) => db::finish_stop_job(&state.pool, job.id, None).await,
                Err(err) if job.attempts >= STOP_JOB_ATTEMPTS => {
                    tracing::error!(job = job.id, error = %err, "durable stop gave up");
                    let message = format!("gave up after {} attempts: {err}", job.attempts);
                    db::finish_stop_job(&state.pool, job.id, Some(&message)).await
                }
                Err(err) => {
                    tracing::warn!(job = job.id, attempt = job.attempts, error = %err, "durable stop failed; will retry");
                    db::fail_stop_job(&state.pool, job.id, &err.to_string()).await
                }
            };
            if let Err(err) = recorded {
                tracing::error!(job = job.id, error = %err, "failed to record the outcome of a durable stop");
            }
        });
    }
}

async fn reconcile_loop(state: AppState) {
    // Sweeps turned away by the lock since this instance's last recorded one.
    let mut skipped = 0;
    loop {
        tokio::time::sleep(state.config.timers.reconcile_interval()).await;
        match sweep(&state, skipped).await {
            Ok(Sweep::Done) => skipped = 0,
            Ok(Sweep::Skipped) => skipped += 1,
            Err(err) => tracing::warn!(error = %err, "reconcile sweep failed"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum SweepError {
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Runtime(#[from] crate::containers::RuntimeError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sweep {
    Done,
    /// Another instance holds the lock.
    Skipped,
}

/// What one sweep did, recorded in `reconcile_sweeps`.
#[derive(Debug, Default)]
struct SweepCounts {
    rows_examined: i32,
    rows_finalized: i32,
    containers_stopped: i32,
}

/// One sweep, single-flight across service instances: it holds a transaction-level
/// advisory lock in a transaction open for the whole sweep, so a sweep that fails or is
/// dropped (the transaction rolls back) or an instance that dies (its connection closes)
/// releases it; nothing has to unlock. A completed sweep is recorded in
/// `reconcile_sweeps` in that transaction, before the commit that releases the lock.
async fn sweep(state: &AppState, skipped: i32) -> Result<Sweep, SweepError> {
    let mut tx = state.pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(RECONCILE_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        tracing::debug!("another instance is sweeping");
        return Ok(Sweep::Skipped);
    }
    // Read once the lock is held (not `now()`, the transaction's start, which can precede
    // the previous holder's commit).
    let started_at: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut *tx)
        .await?;
    let counts = sweep_locked(state).await?;
    sqlx::query(
        "INSERT INTO reconcile_sweeps (instance, started_at, finished_at, rows_examined, \
         rows_finalized, containers_stopped, attempts_skipped) \
         VALUES ($1, $2, clock_timestamp(), $3, $4, $5, $6)",
    )
    .bind(&*state.instance)
    .bind(started_at)
    .bind(counts.rows_examined)
    .bind(counts.rows_finalized)
    .bind(counts.containers_stopped)
    .bind(skipped)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::debug!(?counts, "reconcile sweep done");
    Ok(Sweep::Done)
}

async fn sweep_locked(state: &AppState) -> Result<SweepCounts, SweepError> {
    let mut counts = SweepCounts::default();
    // An unreachable runtime proves nothing: the error ends this sweep.
    let containers = state.runtime.bots().await?;
    let now = chrono::Utc::now();
    let grace =
        chrono::Duration::from_std(state.config.timers.finalizer_grace()).unwrap_or_default();
    let mut exited = Vec::new();
    let mut overdue = Vec::new();
    // Each row's containers by meeting id: a thousand rows against a thousand containers
    // are a thousand lookups, not a million comparisons every sweep.
    let mut by_meeting: std::collections::HashMap<i32, Vec<&crate::containers::BotContainer>> =
        std::collections::HashMap::new();
    for c in &containers {
        by_meeting.entry(c.meeting_id).or_default().push(c);
    }
    for row in db::non_terminal_meetings(&state.pool).await? {
        counts.rows_examined += 1;
        let mine = by_meeting
            .get(&row.id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if mine.is_empty() {
            // Not listed is not proof of death (a runtime that lost track lists nothing).
            continue;
        }
        if let Some(live) = mine.iter().find(|c| c.is_live()) {
            let is_overdue = row
                .stop_deadline
                .as_deref()
                .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
                .is_some_and(|deadline| now > deadline + grace);
            let stopping =
                row.known_status() == Some(MeetingStatus::Stopping) || row.stop_requested;
            if stopping && is_overdue {
                tracing::info!(meeting_id = row.id, container = %live.name, "reconcile: stop overdue; tearing the container down");
                overdue.push((row.id, live.id.clone()));
            }
            continue;
        }
        // Every container of the row is listed as exited: evidence, once it holds after
        // the grace (a restart lists its container exited for a moment).
        tracing::info!(
            meeting_id = row.id,
            "reconcile: container exited; confirming after the grace"
        );
        exited.push(row.id);
    }
    let limit = state.config.work.reconcile_concurrency as usize;
    // The teardowns and the confirmation of the exits wait out their graces side by
    // side, and each teardown beside the others: one after another, a sweep took a whole
    // stop grace per orphan.
    let torn_down: Vec<String> = overdue.iter().map(|(_, c)| c.clone()).collect();
    let (teardowns, confirmed) = tokio::join!(
        concurrently(limit, overdue, |(id, container)| {
            let state = state.clone();
            async move {
                let teardown = force_stop(&state, id, &container, "reconcile").await?;
                if teardown.outcome != StopOutcome::Stopped {
                    return Ok::<_, SweepError>(None);
                }
                let finalized = finalize_if_live(&state, id, "reconcile", None).await?;
                Ok(Some(teardown.finalized || finalized))
            }
        }),
        confirm_exits(state, limit, exited),
    );
    for teardown in teardowns {
        if let Some(finalized) = teardown? {
            counts.containers_stopped += 1;
            counts.rows_finalized += i32::from(finalized);
        }
    }
    counts.rows_finalized += confirmed?;
    // Containers still running for a row that is already terminal: tear them down (not
    // those this sweep stopped already, which are not orphans).
    let live: Vec<_> = containers
        .iter()
        .filter(|c| c.is_live() && !torn_down.contains(&c.id))
        .collect();
    let ids: Vec<i32> = live.iter().map(|c| c.meeting_id).collect();
    let rows = db::meetings_by_ids(&state.pool, &ids).await?;
    let orphans: Vec<_> = live
        .into_iter()
        .filter(|c| {
            rows.iter()
                .find(|r| r.id == c.meeting_id)
                .and_then(|r| r.known_status())
                .is_some_and(MeetingStatus::is_terminal)
        })
        .cloned()
        .collect();
    let stopped = concurrently(limit, orphans, |c| {
        let state = state.clone();
        async move {
            tracing::info!(meeting_id = c.meeting_id, container = %c.name, "reconcile: container outlives its terminal row; stopping it");
            state
                .runtime
                .stop(&c.id, state.config.timers.stop_grace_s)
                .await
        }
    })
    .await;
    for outcome in stopped {
        if outcome? == StopOutcome::Stopped {
            counts.containers_stopped += 1;
        }
    }
    Ok(counts)
}

/// Rows whose every container was listed exited: finalized once they still are after the
/// finalizer's grace (one wait for all of them); answers how many this ended.
async fn confirm_exits(
    state: &AppState,
    limit: usize,
    exited: Vec<i32>,
) -> Result<i32, SweepError> {
    if exited.is_empty() {
        return Ok(0);
    }
    tokio::time::sleep(state.config.timers.finalizer_grace()).await;
    let again = state.runtime.bots().await?;
    let gone: Vec<i32> = exited
        .into_iter()
        .filter(|&id| {
            let mine: Vec<_> = again.iter().filter(|c| c.meeting_id == id).collect();
            if mine.is_empty() {
                // Not listed is not proof of death (as above).
                tracing::info!(
                    meeting_id = id,
                    "reconcile: its container is no longer listed; no evidence"
                );
                return false;
            }
            if mine.iter().any(|c| c.is_live()) {
                tracing::info!(
                    meeting_id = id,
                    "reconcile: its container runs again; no evidence"
                );
                return false;
            }
            true
        })
        .collect();
    let finalized = concurrently(limit, gone, |id| {
        let state = state.clone();
        async move {
            tracing::info!(meeting_id = id, "reconcile: container exited; finalizing");
            finalize_if_live(&state, id, "reconcile", None).await
        }
    })
    .await;
    let mut count = 0;
    for ended in finalized {
        count += i32::from(ended?);
    }
    Ok(count)
}

/// `work` over every item, at most `limit` at once; the answers in any order.
async fn concurrently<T, R, Fut>(limit: usize, items: Vec<T>, work: impl FnMut(T) -> Fut) -> Vec<R>
where
    Fut: std::future::Future<Output = R>,
{
    futures::stream::iter(items)
        .map(work)
        .buffer_unordered(limit.max(1))
        .collect()
        .await
}

/// Follows the runtime's `die` events: a container that died without a callback
/// finalizes its row, after a grace for a late callback, unless it runs again (a
/// restart).
/// Tries at finalizing from one exit event: 100 ms doubling to 2 s between them, about two
/// minutes in all.
const EXIT_EVIDENCE_ATTEMPTS: u32 = 64;

async fn exit_evidence(state: AppState) {
    // A container that exited while this instance was down (restarting) is evidence too:
    // follow the runtime's events from the oldest live meeting's creation, not from now.
    let mut since = match db::oldest_live_meeting(&state.pool).await {
        Ok(Some(created)) => created.timestamp() - 1,
        Ok(None) => chrono::Utc::now().timestamp() - 1,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the oldest live meeting; following exits from now");
            chrono::Utc::now().timestamp() - 1
        }
    };
    loop {
        let mut deaths = Box::pin(state.runtime.deaths(since));
        while let Some(death) = deaths.next().await {
            let (name, exit_code) = match death {
                Ok(death) => death,
                Err(err) => {
                    tracing::warn!(error = %err, "runtime events broke off; following again");
                    break;
                }
            };
            since = chrono::Utc::now().timestamp() - 1;
            let Some(meeting_id) = crate::containers::meeting_id_from_name(&name)
                .and_then(|id| id.parse::<i32>().ok())
            else {
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                tokio::time::sleep(state.config.timers.finalizer_grace()).await;
                match state.runtime.is_running(&name).await {
                    Ok(Some(true)) => return,
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(%name, error = %err, "cannot tell whether the container runs again; not finalizing");
                        return;
                    }
                }
                // Most deaths are of bots whose rows ended already (their callback, the
                // finalizer): one plain read spares those the locked transaction.
                if let Ok(Some(status)) = db::current_status(&state.pool, meeting_id).await
                    && status
                        .parse::<MeetingStatus>()
                        .is_ok_and(MeetingStatus::is_terminal)
                {
                    return;
                }
                // The death is the only evidence there will be (an auto-removed container
                // leaves none for the sweep): a database that fails this moment must not
                // lose it, so retry until it answers, within a bound.
                let mut backoff = Duration::from_millis(100);
                for attempt in 1..=EXIT_EVIDENCE_ATTEMPTS {
                    match finalize_if_live(&state, meeting_id, "runtime_exit", exit_code).await {
                        Ok(_) => return,
                        Err(err) if attempt == EXIT_EVIDENCE_ATTEMPTS => {
                            tracing::error!(meeting_id, attempt, error = %err, "failed to finalize from the exit event; giving up");
                        }
                        Err(err) => {
                            tracing::warn!(meeting_id, attempt, error = %err, "failed to finalize from the exit event; retrying");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(2));
                        }
                    }
                }
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
