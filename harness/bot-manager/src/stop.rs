//! The stop algorithm of `DELETE /bots/...`, the container stops it leads to, and the
//! finalizing that the fixes add.

use std::time::Duration;

use chrono::Utc;
use protocol::{BotCommand, CompletionReason, MeetingStatus};
use serde_json::json;

use crate::app::AppState;
use crate::bus::Wire;
use crate::containers::StopOutcome;
use crate::db::{self, Meeting};
use crate::error::ApiError;
use crate::profile::RouteLeave;
use crate::transitions::{Applied, TransitionDetails};

fn stopped(source: &'static str) -> TransitionDetails {
    TransitionDetails {
        source,
        completion_reason: Some(CompletionReason::Stopped),
        ..Default::default()
    }
}

/// Stops the meeting a `DELETE` names: its latest row (legacy), or every live row
/// (`stop_all_rows`). Answers the 202 message of the latest row.
pub async fn request_stop(state: &AppState, latest: Meeting) -> Result<String, ApiError> {
    if state.fixes.stop_all_rows {
        let platform = latest
            .platform()
            .ok_or_else(|| ApiError::internal("read the platform of the meeting"))?;
        for row in db::live_rows(&state.pool, latest.user_id, platform, latest.native_id()).await? {
            if row.id != latest.id {
                stop_row(state, row).await?;
            }
        }
    }
    stop_row(state, latest).await
}

/// Legacy, step by step as protocol.md section 4 gives it, with each fix where it applies.
async fn stop_row(state: &AppState, meeting: Meeting) -> Result<String, ApiError> {
    let fixes = state.fixes;
    let status = meeting.known_status();
    // 2. Terminal: nothing to do.
    if let Some(s) = status.filter(|s| s.is_terminal()) {
        return Ok(format!("Meeting already {s}."));
    }
    // A repeated DELETE does not stop twice once the stop is on record.
    if fixes.persist_stopping && meeting.stop_requested() {
        return Ok("Stop already in progress.".into());
    }
    // 3. No container: completed at once. A row in `error` fails here, forever.
    let Some(container_id) = meeting.bot_container_id.clone() else {
        if let Some(ended) = finalize(state, &meeting, stopped("stop_request")).await? {
            return Ok(format!("Meeting already {ended}."));
        }
        return Ok("Meeting had no running container; marked completed.".into());
    };
    // 4. Pre-active fast path.
    let age = Utc::now() - meeting.created_at;
    let window = chrono::Duration::from_std(state.config.timers.pre_active_window())
        .unwrap_or(chrono::Duration::MAX);
    if status.is_some_and(MeetingStatus::is_pre_active) && age < window {
        if fixes.persist_stopping {
            if let Some(answer) = claim_stop(state, &meeting, None).await? {
                return Ok(answer);
            }
        } else {
            db::set_data_flag(&state.pool, meeting.id, "stop_requested", json!(true)).await?;
        }
        schedule_container_stop(
            state,
            meeting.id,
            container_id,
            Duration::ZERO,
            "pre-active stop",
        )
        .await?;
        if fixes.finalize_after_forced_stop {
            // Teardown confirmed before the row is completed: the finalizer completes it.
            return Ok("Stop request accepted; the bot is being stopped (pre-active).".into());
        }
        if let Some(ended) = finalize(state, &meeting, stopped("stop_request")).await? {
            return Ok(format!("Meeting already {ended}."));
        }
        return Ok("Stop request accepted; meeting finalized immediately (pre-active).".into());
    }
    // Fix: the stop is on record (and `stopping` stored once the bot reached the meeting)
    // before anything else happens, claimed once however many DELETEs race.
    let mut published_stopping = false;
    if fixes.persist_stopping {
        let deadline = Utc::now()
            + chrono::Duration::from_std(state.config.timers.delayed_stop()).unwrap_or_default();
        if let Some(answer) = claim_stop(state, &meeting, Some(deadline)).await? {
            return Ok(answer);
        }
        if status == Some(MeetingStatus::Active) {
            let details = TransitionDetails {
                source: "stop_request",
                ..Default::default()
            };
            match state
                .transition(meeting.id, MeetingStatus::Stopping, details)
                .await?
            {
                Applied::Changed(_) => published_stopping = true,
                // It ended while this request ran: nothing is left to stop or announce.
                Applied::Rejected(row)
                    if row.known_status().is_some_and(MeetingStatus::is_terminal) =>
                {
                    return Ok(format!("Meeting already {}.", row.status));
                }
                Applied::Rejected(_) | Applied::Missing => {}
            }
        }
    }
    let delayed_stop = |container_id| {
        schedule_container_stop(
            state,
            meeting.id,
            container_id,
            state.config.timers.delayed_stop(),
            "delayed stop",
        )
    };
    // A durable stop goes on record before the leave (the outbox first): a crash between
    // the two cannot lose it, and its write does not come between the leave and the
    // `stopping` announcement, where a fast bot's end could overtake it.
    if fixes.durable_stop {
        delayed_stop(container_id.clone()).await?;
    }
    // 5. The leave; errors only logged, receivers ignored.
    send_leave(state, &meeting).await?;
    // 6. The delayed stop (legacy: a task of this process, scheduled at once).
    if !fixes.durable_stop {
        delayed_stop(container_id).await?;
    }
    // 7-8. Legacy leaves the row as it is and only publishes `stopping`.
    if let Some(platform) = meeting.platform().filter(|_| !published_stopping) {
        state
            .publish_status(
                meeting.id,
                meeting.user_id,
                platform,
                meeting.native_id(),
                MeetingStatus::Stopping,
            )
            .await;
    }
    Ok("Stop request accepted and is being processed.".into())
}

/// Puts the stop on record (`stop_requested`, and the stop deadline when given) unless
/// one is already, in one conditional write: of concurrent DELETEs (each read the row
/// before any of them wrote it) exactly one goes on. `None`: this call claimed the stop;
/// otherwise the answer for a DELETE that finds the stop, or the end, already there.
async fn claim_stop(
    state: &AppState,
    meeting: &Meeting,
    deadline: Option<chrono::DateTime<Utc>>,
) -> Result<Option<String>, ApiError> {
    let deadline = deadline.map(db::rfc3339);
    if db::claim_stop(&state.pool, meeting.id, deadline.as_deref()).await? {
        return Ok(None);
    }
    let now = db::current_status(&state.pool, meeting.id).await?;
    Ok(Some(
        match now.as_deref().and_then(|s| s.parse::<MeetingStatus>().ok()) {
            Some(s) if s.is_terminal() => format!("Meeting already {s}."),
            _ => "Stop already in progress.".to_owned(),
        },
    ))
}

async fn send_leave(state: &AppState, meeting: &Meeting) -> Result<(), ApiError> {
    // The later wire has one command channel per meeting, whatever the profile's routing.
    let route = match state.config.wire {
        Wire::Incident => state.fixes.route_leave,
        Wire::Later => RouteLeave::MeetingChannel,
    };
    let (channel, command) = match route {
        RouteLeave::Earliest => match db::earliest_session_uid(&state.pool, meeting.id).await? {
            Some(uid) => (protocol::bot_commands_channel(&uid), BotCommand::leave()),
            None => {
                tracing::warn!(meeting_id = meeting.id, "no session found; leave not sent");
                return Ok(());
            }
        },
        RouteLeave::CurrentUid => {
            let current = match meeting.platform() {
                Some(p) => state.bus.current_uid(p, meeting.native_id()).await.unwrap_or_else(|err| {
                    tracing::warn!(meeting_id = meeting.id, error = %err, "current_uid unavailable; using the latest session");
                    None
                }),
                None => None,
            };
            let uid = match current {
                Some(uid) => Some(uid),
                None => db::latest_session_uid(&state.pool, meeting.id).await?,
            };
            match uid {
                Some(uid) => (protocol::bot_commands_channel(&uid), BotCommand::leave()),
                None => {
                    tracing::warn!(
                        meeting_id = meeting.id,
                        "no current uid or session; leave not sent"
                    );
                    return Ok(());
                }
            }
        }
        RouteLeave::MeetingChannel => (
            protocol::meeting_commands_channel(meeting.id.into()),
            BotCommand::Leave {
                meeting_id: Some(meeting.id.into()),
            },
        ),
    };
    match state.bus.publish_command(&channel, &command).await {
        Ok(receivers) => {
            tracing::info!(meeting_id = meeting.id, %channel, receivers, "leave published")
        }
        Err(err) => {
            tracing::error!(meeting_id = meeting.id, %channel, error = %err, "failed to publish leave")
        }
    }
    Ok(())
}

/// Applies a `completed` transition; an illegal one is a 500, as the production service
/// answers when its update fails.
/// Completes the row; `Some(status)` when (with `persist_stopping`, which makes a
/// repeated DELETE harmless) a concurrent request ended it first. Legacy answers 500.
async fn finalize(
    state: &AppState,
    meeting: &Meeting,
    details: TransitionDetails,
) -> Result<Option<MeetingStatus>, ApiError> {
    match state
        .transition(meeting.id, MeetingStatus::Completed, details)
        .await?
    {
        Applied::Changed(_) => Ok(None),
        Applied::Rejected(row)
            if state.fixes.persist_stopping
                && row.known_status().is_some_and(MeetingStatus::is_terminal) =>
        {
            Ok(row.known_status())
        }
        Applied::Rejected(row) => Err(ApiError::internal(format!(
            "finalize meeting {}: status {:?} cannot become completed",
            row.id, row.status
        ))),
        Applied::Missing => Err(ApiError::internal(format!(
            "finalize meeting {}: the row is gone",
            meeting.id
        ))),
    }
}

/// Schedules a container stop after `delay`: a task of this process (legacy, lost if the
/// process ends), or a row of `stop_jobs` any instance performs (`durable_stop`).
pub async fn schedule_container_stop(
    state: &AppState,
    meeting_id: i32,
    container: String,
    delay: Duration,
    why: &'static str,
) -> Result<(), ApiError> {
    if state.fixes.durable_stop {
        db::insert_stop_job(&state.pool, meeting_id, &container, delay).await?;
        if delay.is_zero() {
            // Due now (the pre-active stop): the worker claims it at once, not at its
            // next poll.
            state.stop_jobs_due.notify_one();
        }
        return Ok(());
    }
    let state = state.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        if let Err(err) = force_stop(&state, meeting_id, &container, why).await {
            tracing::error!(%container, error = %err, why, "container stop failed");
        }
    });
    Ok(())
}

/// What a forced stop did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Teardown {
    pub outcome: StopOutcome,
    /// Its finalizer (`finalize_after_forced_stop`) ended the row.
    pub finalized: bool,
}

/// `docker stop -t grace`, then (with `finalize_after_forced_stop`) the finalizer: only a
/// confirmed stop counts, and a late callback gets a short grace to land first.
pub async fn force_stop(
    state: &AppState,
    meeting_id: i32,
    container: &str,
    why: &'static str,
) -> Result<Teardown, crate::containers::RuntimeError> {
    let outcome = state
        .runtime
        .stop(container, state.config.timers.stop_grace_s)
        .await?;
    tracing::info!(%container, ?outcome, why, "container stop done");
    let mut finalized = false;
    if state.fixes.finalize_after_forced_stop {
        match outcome {
            StopOutcome::Stopped => {
                tokio::time::sleep(state.config.timers.finalizer_grace()).await;
                match finalize_if_live(state, meeting_id, "finalizer", None).await {
                    Ok(changed) => finalized = changed,
                    Err(err) => {
                        tracing::error!(meeting_id, error = %err, "failed to finalize after the forced stop")
                    }
                }
            }
            // A 404 is not proof the bot is gone (a runtime that lost track answers it too).
            StopOutcome::NotFound => {
                tracing::warn!(meeting_id, %container, "stop answered 404: not proof of death; not finalizing")
            }
        }
    }
    Ok(Teardown { outcome, finalized })
}

/// Finalizes a row that is still live, from evidence that its bot is gone: completed
/// (`stopped`) when a stop was requested, failed otherwise (the bot died unasked).
/// Answers whether this call ended the row (false: it was terminal already).
pub async fn finalize_if_live(
    state: &AppState,
    meeting_id: i32,
    source: &'static str,
    exit_code: Option<i64>,
) -> Result<bool, crate::db::DbError> {
    // Decided from the row under its lock, so a stop recorded meanwhile still dominates.
    let decide = |meeting: &Meeting| {
        let status = meeting.known_status().filter(|s| !s.is_terminal())?;
        if meeting.stop_requested() || status == MeetingStatus::Stopping {
            return Some((MeetingStatus::Completed, stopped(source)));
        }
        let stage = match status {
            MeetingStatus::Requested => protocol::FailureStage::Requested,
            MeetingStatus::Joining => protocol::FailureStage::Joining,
            MeetingStatus::AwaitingAdmission => protocol::FailureStage::AwaitingAdmission,
            _ => protocol::FailureStage::Active,
        };
        Some((
            MeetingStatus::Failed,
            TransitionDetails {
                source,
                reason: Some("the container exited without a callback".into()),
                failure_stage: Some(stage),
                exit_code: exit_code.and_then(|c| i32::try_from(c).ok()),
                ..Default::default()
            },
        ))
    };
    let applied = state.transition_with(meeting_id, decide).await?;
    Ok(matches!(applied, Applied::Changed(_)))
}

/// The fire-and-forget write of the connectionId session row, as production schedules it
/// after the container start: a background task, errors only logged, lagging by
/// `session_record_delay` when that knob is set. Nothing waits for it, so a bot that
/// calls back first is answered "session not found".
pub fn record_session(state: &AppState, meeting_id: i32, connection_id: String) {
    let pool = state.pool.clone();
    let delay = state.config.timers.session_record_delay();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        if let Err(err) = db::insert_session(&pool, meeting_id, &connection_id, None).await {
            tracing::error!(meeting_id, %connection_id, error = %err, "failed to record the bot's session");
        }
    });
}

/// The `session_before_start` fix: the connectionId session row, written (after its lag,
/// if any) before the container starts, and waited for.
pub async fn record_session_now(
    state: &AppState,
    meeting_id: i32,
    connection_id: &str,
) -> Result<(), db::DbError> {
    tokio::time::sleep(state.config.timers.session_record_delay()).await;
    db::insert_session(&state.pool, meeting_id, connection_id, None).await?;
    Ok(())
}
