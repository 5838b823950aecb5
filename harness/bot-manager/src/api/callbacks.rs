//! Internal callbacks from bots (protocol.md section 5). No auth in legacy; with
//! `callback_auth`, each must carry its bot's secret ([`CallbackAuth`]), checked before
//! the callback changes anything.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use protocol::{
    CallbackStatus, CompletionReason, ExitedPayload, ExitedResponse, FailureStage, MeetingStatus,
    SessionStartPayload, StatusChangePayload,
};
use serde_json::{Value, json};

use super::auth::CallbackAuth;
use super::extract::ApiJson;
use crate::app::AppState;
use crate::db::{self, Meeting};
use crate::error::ApiError;
use crate::profile::RouteLeave;
use crate::stop::schedule_container_stop;
use crate::transitions::{Applied, TransitionDetails};

fn session_not_found(connection_id: &str) -> Json<Value> {
    tracing::warn!(%connection_id, "callback for an unknown session");
    Json(
        json!({"status": "error", "detail": format!("Meeting session not found for connection_id {connection_id}")}),
    )
}

/// The longest session uid the service stores (a bot's uid is a 36-character uuid). A
/// Postgres btree entry holds about 2.7 kB, so a much longer uid would fail the insert
/// with a 500: it is refused as pydantic refuses a too-long string.
const MAX_SESSION_UID_CHARS: usize = 255;

fn session_uid_too_long(field: &str, uid: &str) -> Option<ApiError> {
    ApiError::too_long(&["body", field], uid, MAX_SESSION_UID_CHARS)
}

fn update_failed() -> Json<Value> {
    Json(json!({"status": "error", "detail": "Failed to update meeting status"}))
}

/// The meeting a callback is about: through its session row, or (with `current_uid`
/// routing) a bot that restarted under a new uid, recognised by its container's name,
/// whose new uid becomes a session and the meeting's `current_uid`. The callback's
/// secret is checked against the meeting found before the new uid is adopted.
async fn callback_meeting(
    state: &AppState,
    auth: &CallbackAuth,
    connection_id: &str,
    container: Option<&str>,
) -> Result<Option<Meeting>, ApiError> {
    if let Some(meeting) = db::meeting_by_session_uid(&state.pool, connection_id).await? {
        auth.check(Some(&meeting), container)?;
        return Ok(Some(meeting));
    }
    let by_container = restarted_bot_meeting(state, container).await?;
    auth.check(by_container.as_ref(), container)?;
    let Some(meeting) = by_container else {
        return Ok(None);
    };
    let id = meeting.id;
    if let Some(err) = session_uid_too_long("connection_id", connection_id) {
        return Err(err);
    }
    db::insert_session(&state.pool, id, connection_id, None).await?;
    if let Some(platform) = meeting.platform() {
        let ttl = state.config.timers.current_uid_ttl_s;
        if let Err(err) = state
            .bus
            .set_current_uid(platform, meeting.native_id(), connection_id, ttl)
            .await
        {
            tracing::error!(meeting_id = id, error = %err, "failed to move current_uid to the restarted bot");
        }
    }
    tracing::info!(meeting_id = id, %connection_id, "adopted the new uid of a restarted bot");
    Ok(Some(meeting))
}

/// With `current_uid` routing, the meeting whose container a callback from an unknown
/// uid names; reads only.
async fn restarted_bot_meeting(
    state: &AppState,
    container: Option<&str>,
) -> Result<Option<Meeting>, ApiError> {
    if state.fixes.route_leave != RouteLeave::CurrentUid {
        return Ok(None);
    }
    let Some(id) = container
        .and_then(crate::containers::meeting_id_from_name)
        .and_then(|id| id.parse::<i32>().ok())
    else {
        return Ok(None);
    };
    let mut conn = state.pool.acquire().await.map_err(db::DbError::from)?;
    Ok(db::meeting_by_id(&mut conn, id, false).await?)
}

/// With `idempotent_callbacks`: a repeated terminal changes nothing (answered as
/// applied), a conflicting late one is refused. `None`: go on.
fn settled_terminal(
    state: &AppState,
    meeting: &Meeting,
    to: MeetingStatus,
) -> Option<Result<Json<Value>, ApiError>> {
    if !state.fixes.idempotent_callbacks || !to.is_terminal() {
        return None;
    }
    let current = meeting.known_status().filter(|s| s.is_terminal())?;
    if current == to || meeting.stop_requested() {
        return Some(Ok(Json(
            json!({"status": current, "meeting_id": meeting.id}),
        )));
    }
    Some(Err(ApiError::new(
        StatusCode::CONFLICT,
        format!(
            "Meeting {} is already {current}; a late {to} is refused.",
            meeting.id
        ),
    )))
}

/// With `idempotent_callbacks`, stop dominates: once a stop was requested, any terminal
/// outcome is recorded as completed with reason `stopped` (what the bot said is kept in
/// the audit entry's `reason`, the fix's note).
fn stop_dominates(
    state: &AppState,
    meeting: &Meeting,
    to: MeetingStatus,
    details: &mut TransitionDetails,
) -> MeetingStatus {
    if !(state.fixes.idempotent_callbacks && meeting.stop_requested() && to.is_terminal()) {
        return to;
    }
    let reported = match (to, details.completion_reason) {
        (MeetingStatus::Completed, Some(reason)) => format!("completed ({reason})"),
        (other, _) => other.to_string(),
    };
    details.note = Some(format!("bot reported {reported}"));
    details.completion_reason = Some(CompletionReason::Stopped);
    details.failure_stage = None;
    MeetingStatus::Completed
}

/// `POST /bots/internal/callback/status_change`, answered as production answers it:
/// the meeting's status after handling (the intended `"processed"` is overwritten by a
/// duplicate key), except for a rejected joining/awaiting_admission.
pub async fn status_change(
    State(state): State<AppState>,
    auth: CallbackAuth,
    ApiJson(payload): ApiJson<StatusChangePayload>,
) -> Result<Json<Value>, ApiError> {
    let Some(meeting) = callback_meeting(
        &state,
        &auth,
        &payload.connection_id,
        payload.container_id.as_deref(),
    )
    .await?
    else {
        return Ok(session_not_found(&payload.connection_id));
    };
    // Decided from the row as the transition reads it (under its lock with `row_locks`),
    // not from the lookup above: a stop claimed in between must dominate.
    let mut early = None;
    let applied = state
        .transition_with(meeting.id, |row| {
            if row.stop_requested() && !payload.status.is_terminal() {
                early = Some(Ok(Json(json!({"status": "ignored", "meeting_id": row.id}))));
                return None;
            }
            let (to, details) = status_change_details(&state, row, &payload);
            if let Some(answer) = settled_terminal(&state, row, to) {
                early = Some(answer);
                return None;
            }
            Some((to, details))
        })
        .await?;
    if let Some(answer) = early {
        return answer;
    }
    let status_after = match applied {
        Applied::Changed(updated) => updated.status,
        // Production handles `active` and the terminals apart and answers the status the
        // row keeps; every other status goes through its generic update, whose refusal is
        // answered as a failure.
        Applied::Rejected(row) => match payload.status {
            CallbackStatus::Requested
            | CallbackStatus::Joining
            | CallbackStatus::AwaitingAdmission
            | CallbackStatus::Stopping => {
                return Ok(update_failed());
            }
            CallbackStatus::Active | CallbackStatus::Completed | CallbackStatus::Failed => {
                row.status
            }
        },
        Applied::Missing => return Ok(update_failed()),
    };
    Ok(Json(
        json!({"status": status_after, "meeting_id": meeting.id}),
    ))
}

/// What a `status_change` asks of the row: its status and details, stop dominating.
fn status_change_details(
    state: &AppState,
    row: &Meeting,
    payload: &StatusChangePayload,
) -> (MeetingStatus, TransitionDetails) {
    let mut details = TransitionDetails {
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
        from_status_change: true,
        ..Default::default()
    };
    let to = stop_dominates(state, row, payload.status.as_meeting_status(), &mut details);
    (to, details)
}

/// `POST /bots/internal/callback/exited`: exit 0 completes, anything else fails and
/// stops the container a little later.
pub async fn exited(
    State(state): State<AppState>,
    auth: CallbackAuth,
    ApiJson(payload): ApiJson<ExitedPayload>,
) -> Result<Json<Value>, ApiError> {
    let Some(meeting) = callback_meeting(&state, &auth, &payload.connection_id, None).await? else {
        return Ok(session_not_found(&payload.connection_id));
    };
    let (mut to, mut details) = if payload.exit_code == 0 {
        (
            MeetingStatus::Completed,
            TransitionDetails {
                source: "exit_callback",
                reason: payload.reason.clone(),
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
                reason: payload.reason.clone(),
                failure_stage: Some(payload.failure_stage.unwrap_or(FailureStage::Active)),
                error_details: payload.error_details.clone(),
                exit_code: Some(payload.exit_code),
                ..Default::default()
            },
        )
    };
    // Decided from the row as the transition reads it, as for `status_change`.
    let mut early = None;
    let applied = state
        .transition_with(meeting.id, |row| {
            if let Some(answer) = settled_terminal(&state, row, to) {
                early = Some(answer);
                return None;
            }
            to = stop_dominates(&state, row, to, &mut details);
            Some((to, details))
        })
        .await?;
    if let Some(answer) = early {
        return answer;
    }
    match applied {
        Applied::Changed(updated) => {
            if let Some(container) = updated
                .bot_container_id
                .clone()
                .filter(|_| payload.exit_code != 0)
            {
                schedule_container_stop(
                    &state,
                    updated.id,
                    container,
                    state.config.timers.exited_failure_stop(),
                    "stop after failed exit",
                )
                .await?;
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
    auth: CallbackAuth,
    ApiJson(payload): ApiJson<SessionStartPayload>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if auth.is_on() {
        let named = match i32::try_from(payload.meeting_id) {
            Ok(id) => db::meetings_by_ids(&state.pool, &[id]).await?.pop(),
            Err(_) => None,
        };
        auth.check(named.as_ref(), None)?;
        // Callbacks find their meeting through the session uid: a bot's own secret must
        // not claim another meeting's uid, or that meeting's callbacks would come here.
        if let Some(owner) = db::meeting_by_session_uid(&state.pool, &payload.session_uid).await?
            && Some(owner.id) != named.map(|m| m.id)
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "The session uid belongs to another meeting",
            ));
        }
    }
    let start = DateTime::parse_from_rfc3339(&payload.session_start_time)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|err| {
            ApiError::validation(
                &["body", "session_start_time"],
                "datetime_from_date_parsing",
                format!("Input should be a valid datetime, {err}"),
                Some(json!({"error": err.to_string()})),
            )
        })?;
    if payload.session_uid.trim().is_empty() {
        return Err(ApiError::validation(
            &["body", "session_uid"],
            "string_too_short",
            "String should have at least 1 character",
            Some(json!({"min_length": 1})),
        ));
    }
    if let Some(err) = session_uid_too_long("session_uid", &payload.session_uid) {
        return Err(err);
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
