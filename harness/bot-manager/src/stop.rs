//! The stop algorithm of `DELETE /bots/...` and the container stops it schedules.

use std::time::Duration;

use chrono::Utc;
use protocol::{BotCommand, CompletionReason, MeetingStatus};
use serde_json::json;

use crate::app::AppState;
use crate::db::{self, Meeting};
use crate::error::ApiError;
use crate::transitions::{Applied, TransitionDetails, update_meeting_status};

/// Legacy, step by step as protocol.md section 4 gives it. Answers the 202 message.
pub async fn request_stop(state: &AppState, meeting: Meeting) -> Result<String, ApiError> {
    let status = meeting.known_status();
    // 2. Terminal: nothing to do.
    if let Some(s) = status.filter(|s| s.is_terminal()) {
        return Ok(format!("Meeting already {s}."));
    }
    let stopped = TransitionDetails {
        source: "stop_request",
        completion_reason: Some(CompletionReason::Stopped),
        ..Default::default()
    };
    // 3. No container: completed at once. A row in `error` fails here, forever.
    let Some(container_id) = meeting.bot_container_id.clone() else {
        finalize(state, &meeting, stopped).await?;
        return Ok("Meeting had no running container; marked completed.".into());
    };
    // 4. Pre-active fast path.
    let age = Utc::now() - meeting.created_at;
    let window = chrono::Duration::from_std(state.config.timers.pre_active_window())
        .unwrap_or(chrono::Duration::MAX);
    if status.is_some_and(MeetingStatus::is_pre_active) && age < window {
        db::set_data_flag(&state.pool, meeting.id, "stop_requested", json!(true)).await?;
        schedule_container_stop(state, container_id, Duration::ZERO, "pre-active stop");
        finalize(state, &meeting, stopped).await?;
        return Ok("Stop request accepted; meeting finalized immediately (pre-active).".into());
    }
    // 5. Leave to the earliest session uid; errors only logged, receivers ignored.
    match db::earliest_session_uid(&state.pool, meeting.id).await? {
        Some(uid) => {
            let channel = protocol::bot_commands_channel(&uid);
            match state
                .bus
                .publish_command(&channel, &BotCommand::leave())
                .await
            {
                Ok(receivers) => {
                    tracing::info!(meeting_id = meeting.id, %channel, receivers, "leave published")
                }
                Err(err) => {
                    tracing::error!(meeting_id = meeting.id, %channel, error = %err, "failed to publish leave")
                }
            }
        }
        None => tracing::warn!(meeting_id = meeting.id, "no session found; leave not sent"),
    }
    // 6. Delayed stop, in process memory only: it never writes the database and is
    // lost if the service restarts.
    schedule_container_stop(
        state,
        container_id,
        state.config.timers.delayed_stop(),
        "delayed stop",
    );
    // 7-8. The row stays as it is; `stopping` is only published.
    if let Some(platform) = meeting.platform() {
        state
            .publish_status(
                meeting.user_id,
                platform,
                meeting.native_id(),
                MeetingStatus::Stopping,
            )
            .await;
    }
    Ok("Stop request accepted and is being processed.".into())
}

/// Applies a `completed` transition and publishes it; an illegal one is a 500, as the
/// production service answers when its update fails.
async fn finalize(
    state: &AppState,
    meeting: &Meeting,
    details: TransitionDetails,
) -> Result<(), ApiError> {
    match update_meeting_status(&state.pool, meeting.id, MeetingStatus::Completed, details).await? {
        Applied::Changed(updated) => {
            state.publish_applied(&updated).await;
            Ok(())
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

/// Stops a container after `delay` in a task of this process (`docker stop -t grace`).
pub fn schedule_container_stop(
    state: &AppState,
    container: String,
    delay: Duration,
    why: &'static str,
) {
    let runtime = state.runtime.clone();
    let grace = state.config.timers.stop_grace_s;
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        match runtime.stop(&container, grace).await {
            Ok(outcome) => tracing::info!(%container, ?outcome, why, "container stop done"),
            Err(err) => tracing::error!(%container, error = %err, why, "container stop failed"),
        }
    });
}

/// The fire-and-forget write of the connectionId session row: errors are only logged,
/// and with `session_record_delay` it lags in the background, as it may in production.
pub async fn record_session(state: &AppState, meeting_id: i32, connection_id: String) {
    let pool = state.pool.clone();
    let delay = state.config.timers.session_record_delay();
    let write = async move {
        tokio::time::sleep(delay).await;
        if let Err(err) = db::insert_session(&pool, meeting_id, &connection_id, None).await {
            tracing::error!(meeting_id, %connection_id, error = %err, "failed to record the bot's session");
        }
    };
    if delay.is_zero() {
        write.await;
    } else {
        tokio::spawn(write);
    }
}
