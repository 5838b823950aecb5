//! Internal callbacks from bots (protocol.md section 5). No auth, as in legacy.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use protocol::{
    CallbackStatus, CompletionReason, ExitedPayload, ExitedResponse, FailureStage, MeetingStatus,
    SessionStartPayload, StatusChangePayload,
};
use serde_json::{Value, json};

use super::extract::ApiJson;
use crate::app::AppState;
use crate::db;
use crate::error::ApiError;
use crate::stop::schedule_container_stop;
use crate::transitions::{Applied, TransitionDetails, update_meeting_status};

fn session_not_found(connection_id: &str) -> Json<Value> {
    tracing::warn!(%connection_id, "callback for an unknown session");
    Json(
        json!({"status": "error", "detail": format!("Meeting session not found for connection_id {connection_id}")}),
    )
}

fn update_failed() -> Json<Value> {
    Json(json!({"status": "error", "detail": "Failed to update meeting status"}))
}

/// `POST /bots/internal/callback/status_change`, answered as production answers it:
/// the meeting's status after handling (the intended `"processed"` is overwritten by a
/// duplicate key), except for a rejected joining/awaiting_admission.
pub async fn status_change(
    State(state): State<AppState>,
    ApiJson(payload): ApiJson<StatusChangePayload>,
) -> Result<Json<Value>, ApiError> {
    let Some(meeting) = db::meeting_by_session_uid(&state.pool, &payload.connection_id).await?
    else {
        return Ok(session_not_found(&payload.connection_id));
    };
    if meeting.stop_requested() && !payload.status.is_terminal() {
        return Ok(Json(json!({"status": "ignored", "meeting_id": meeting.id})));
    }
    let to = payload.status.as_meeting_status();
    let details = TransitionDetails {
        source: "bot_callback",
        reason: payload.reason.clone(),
        completion_reason: match payload.status {
            CallbackStatus::Completed => payload.completion_reason,
            _ => None,
        },
        failure_stage: match payload.status {
            CallbackStatus::Failed => Some(payload.failure_stage.unwrap_or(FailureStage::Active)),
            _ => None,
        },
        error_details: payload.error_details.clone(),
        exit_code: payload.exit_code,
        container_id: match payload.status {
            CallbackStatus::Active => payload.container_id.clone(),
            _ => None,
        },
    };
    let applied = update_meeting_status(&state.pool, meeting.id, to, details).await?;
    let status_after = match applied {
        Applied::Changed(updated) => {
            state.publish_applied(&updated).await;
            updated.status
        }
        Applied::Rejected(row) => match payload.status {
            CallbackStatus::Joining | CallbackStatus::AwaitingAdmission => {
                return Ok(update_failed());
            }
            _ => row.status,
        },
        Applied::Missing => return Ok(update_failed()),
    };
    Ok(Json(
        json!({"status": status_after, "meeting_id": meeting.id}),
    ))
}

/// `POST /bots/internal/callback/exited`: exit 0 completes, anything else fails and
/// stops the container a little later.
pub async fn exited(
    State(state): State<AppState>,
    ApiJson(payload): ApiJson<ExitedPayload>,
) -> Result<Json<Value>, ApiError> {
    let Some(meeting) = db::meeting_by_session_uid(&state.pool, &payload.connection_id).await?
    else {
        return Ok(session_not_found(&payload.connection_id));
    };
    let (to, details) = if payload.exit_code == 0 {
        (
            MeetingStatus::Completed,
            TransitionDetails {
                source: "exit_callback",
                reason: Some(payload.reason.clone()),
                completion_reason: Some(
                    payload
                        .completion_reason
                        .unwrap_or(CompletionReason::Stopped),
                ),
                exit_code: Some(0),
                ..Default::default()
            },
        )
    } else {
        (
            MeetingStatus::Failed,
            TransitionDetails {
                source: "exit_callback",
                reason: Some(payload.reason.clone()),
                failure_stage: Some(payload.failure_stage.unwrap_or(FailureStage::Active)),
                error_details: payload.error_details.clone(),
                exit_code: Some(payload.exit_code),
                ..Default::default()
            },
        )
    };
    match update_meeting_status(&state.pool, meeting.id, to, details).await? {
        Applied::Changed(updated) => {
            state.publish_applied(&updated).await;
            if let Some(container) = updated
                .bot_container_id
                .clone()
                .filter(|_| payload.exit_code != 0)
            {
                schedule_container_stop(
                    &state,
                    container,
                    state.config.timers.exited_failure_stop(),
                    "stop after failed exit",
                );
            }
            Ok(Json(json!(ExitedResponse {
                status: "callback processed".into(),
                meeting_id: updated.id.into(),
                final_status: to,
            })))
        }
        Applied::Rejected(_) | Applied::Missing => Ok(update_failed()),
    }
}

/// The session-start path standing in for the transcription collector: one
/// `meeting_sessions` row per (re)connect, stamped with the client's clock.
pub async fn session_start(
    State(state): State<AppState>,
    ApiJson(payload): ApiJson<SessionStartPayload>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let start = DateTime::parse_from_rfc3339(&payload.session_start_time)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|err| {
            ApiError::unprocessable(format!(
                "session_start_time {:?} is not RFC 3339: {err}",
                payload.session_start_time
            ))
        })?;
    if payload.session_uid.trim().is_empty() {
        return Err(ApiError::unprocessable("session_uid is empty"));
    }
    let Ok(meeting_id) = i32::try_from(payload.meeting_id) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Meeting {} not found", payload.meeting_id),
        ));
    };
    if !db::meeting_exists(&state.pool, meeting_id).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Meeting {meeting_id} not found"),
        ));
    }
    let inserted =
        db::insert_session(&state.pool, meeting_id, &payload.session_uid, Some(start)).await?;
    Ok((
        if inserted {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(
            json!({"status": if inserted { "recorded" } else { "duplicate" }, "meeting_id": meeting_id}),
        ),
    ))
}
