//! `/bots`: start a bot, stop it, reconfigure it, list running containers.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use protocol::{
    AutomaticLeave, BotCommand, BotConfig, ConfigUpdateRequest, CreateBotRequest, MeetingStatus,
    MessageResponse, RunningBot, RunningBotsResponse,
};
use serde_json::{Map, Value, json};

use super::auth::AuthUser;
use super::extract::{ApiJson, MeetingPath};
use crate::app::AppState;
use crate::bus::Wire;
use crate::containers;
use crate::db;
use crate::error::ApiError;
use crate::stop;

/// The longest bot name, passcode and language a create takes (in characters).
const MAX_BOT_NAME_CHARS: usize = 255;
const MAX_PASSCODE_CHARS: usize = 255;
const MAX_LANGUAGE_CHARS: usize = 32;

/// `POST /bots`, in production's order of effects: row, `requested` event, container
/// create and start, the fire-and-forget session row, `current_uid`, container id; 201
/// still `requested`. With `session_before_start` the session row is written, and waited
/// for, between create and start instead; with `callback_auth` the bot's `BOT_CONFIG`
/// carries a secret of its own, whose digest is bound to the meeting and the container
/// between create and start.
pub async fn create_bot(
    State(state): State<AppState>,
    AuthUser(user, api_key): AuthUser,
    ApiJson(req): ApiJson<CreateBotRequest>,
) -> Result<Response, ApiError> {
    req.platform
        .validate_native_id(&req.native_meeting_id)
        .map_err(|err| {
            ApiError::validation(
                &["body", "native_meeting_id"],
                "value_error",
                format!("Value error, {err}"),
                Some(json!({"error": {}})),
            )
        })?;
    let native_id = req.native_meeting_id.as_str();
    // Each of these reaches the bot's BOT_CONFIG, which must fit in one variable of the
    // container's environment (64 KiB at the runtime): a 64 KiB bot name was a 500
    // carrying the runtime's refusal, after the row was written.
    for (field, value, max) in [
        ("bot_name", req.bot_name.as_deref(), MAX_BOT_NAME_CHARS),
        ("passcode", req.passcode.as_deref(), MAX_PASSCODE_CHARS),
        ("language", req.language.as_deref(), MAX_LANGUAGE_CHARS),
    ] {
        if let Some(err) = value.and_then(|v| ApiError::too_long(&["body", field], v, max)) {
            return Err(err);
        }
    }

    // Legacy quirk: only `requested` and `active` block a new bot; with `stop_all_rows`
    // any live row does.
    let blocking = if state.fixes.stop_all_rows {
        db::live_rows(&state.pool, user.id, req.platform, native_id)
            .await?
            .into_iter()
            .next()
    } else {
        db::latest_meeting(&state.pool, user.id, req.platform, native_id)
            .await?
            .filter(|m| {
                matches!(
                    m.known_status(),
                    Some(MeetingStatus::Requested | MeetingStatus::Active)
                )
            })
    };
    if let Some(existing) = blocking {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "An active or requested meeting already exists for this platform and meeting ID (meeting {}, status {})",
                existing.id, existing.status
            ),
        ));
    }
    if db::running_count(&state.pool, user.id).await? >= i64::from(user.max_concurrent_bots) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "User has reached the maximum concurrent bot limit ({}).",
                user.max_concurrent_bots
            ),
        ));
    }

    let mut data = Map::new();
    if let Some(passcode) = &req.passcode {
        data.insert("passcode".into(), json!(passcode));
    }
    let meeting = db::insert_meeting(
        &state.pool,
        user.id,
        req.platform,
        native_id,
        &Value::Object(data),
    )
    .await?;
    state
        .publish_status(
            meeting.id,
            user.id,
            req.platform,
            native_id,
            MeetingStatus::Requested,
        )
        .await;

    let connection_id = uuid::Uuid::new_v4().to_string();
    let name = containers::container_name(meeting.id);
    // The fix: a secret of this bot's own, which only its callbacks can carry.
    let callback_secret = state
        .fixes
        .callback_auth
        .then(crate::callback_auth::new_secret);
    let timers = &state.config.timers;
    let bot_config = BotConfig {
        meeting_id: meeting.id.into(),
        platform: req.platform,
        meeting_url: Some(req.platform.meeting_url(native_id, req.passcode.as_deref())),
        bot_name: req.bot_name.clone().unwrap_or_else(default_bot_name),
        token: api_key,
        native_meeting_id: native_id.to_owned(),
        connection_id: connection_id.clone(),
        language: req.language.clone(),
        task: req.task.map(|t| t.as_str().to_owned()),
        redis_url: state.config.bot_redis_url().to_owned(),
        container_name: name.clone(),
        automatic_leave: AutomaticLeave {
            waiting_room_timeout: timers.waiting_room_timeout_ms,
            no_one_joined_timeout: timers.no_one_joined_timeout_ms,
            everyone_left_timeout: timers.everyone_left_timeout_ms,
        },
        bot_manager_callback_url: state.config.callback_url.clone(),
        callback_secret: callback_secret.clone(),
    };
    let spec = containers::BotSpec {
        image: &state.config.bot_image_name,
        bot_config: &bot_config,
        whisper_live_url: &state.config.whisper_live_url,
        log_level: &state.config.bot_log_level,
        user_id: user.id,
        network: &state.config.docker_network,
        mount: &state.config.bot_bind_mount,
    };
    let runtime = &state.runtime;
    let started = async {
        let id = runtime.create_bot(&name, spec.create_body()).await?;
        if let Some(secret) = &callback_secret {
            // Bound to this meeting and the container just made, before the bot can call.
            let binding = crate::callback_auth::Binding::new(secret, &name, &id);
            db::set_data_flag(
                &state.pool,
                meeting.id,
                crate::callback_auth::DATA_KEY,
                binding.to_value(),
            )
            .await
            .map_err(StartError::Binding)?;
        }
        if state.fixes.session_before_start {
            // The fix: the bot's command address and callback key exist before the bot
            // does; a start without them would leave every callback unanswered.
            stop::record_session_now(&state, meeting.id, &connection_id)
                .await
                .map_err(StartError::Session)?;
        }
        runtime.start(&id).await?;
        Ok::<_, StartError>(id)
    };
    let container_id = match started.await {
        Ok(id) => id,
        Err(err) => {
            if state.fixes.start_failure_fails {
                let details = crate::transitions::TransitionDetails {
                    source: "container_start",
                    // The row is an answer too (GET /meetings): no database text in it.
                    reason: Some(match &err {
                        StartError::Runtime(_) => format!("the container did not start: {err}"),
                        StartError::Session(_) => "the container was not started: its \
                            session could not be recorded (a database error; the service \
                            log has it)"
                            .to_owned(),
                        StartError::Binding(_) => "the container was not started: its \
                            callback secret could not be recorded (a database error; the \
                            service log has it)"
                            .to_owned(),
                    }),
                    failure_stage: Some(protocol::FailureStage::Requested),
                    ..Default::default()
                };
                if let Err(db_err) = state
                    .transition(meeting.id, MeetingStatus::Failed, details)
                    .await
                {
                    tracing::error!(meeting_id = meeting.id, error = %db_err, "failed to fail the meeting");
                }
            } else if let Err(db_err) = db::set_raw_status(&state.pool, meeting.id, "error").await {
                // Production leaves the row in `error`, outside the status machine: no
                // later status update of it can succeed.
                tracing::error!(meeting_id = meeting.id, error = %db_err, "failed to mark the meeting as error");
            } else if let Err(err) = state
                .bus
                .publish_status_text(meeting.id, user.id, req.platform, native_id, "error")
                .await
            {
                // Production announces the `error` once stored (protocol.md section 11).
                tracing::warn!(meeting_id = meeting.id, error = %err, "failed to publish the error status");
            }
            return Err(match &err {
                StartError::Session(db) => {
                    ApiError::hidden("record the bot's session before its start", db)
                }
                StartError::Binding(db) => {
                    ApiError::hidden("record the bot's callback secret before its start", db)
                }
                StartError::Runtime(_) => ApiError::internal(err),
            });
        }
    };
    if !state.fixes.session_before_start {
        // Production: a background task scheduled after the start, errors only logged. A
        // bot that calls back before it commits is answered "session not found".
        stop::record_session(&state, meeting.id, connection_id.clone());
    }

    if let Err(err) = state
        .bus
        .set_current_uid(
            req.platform,
            native_id,
            &connection_id,
            timers.current_uid_ttl_s,
        )
        .await
    {
        tracing::error!(meeting_id = meeting.id, error = %err, "failed to set current_uid");
    }
    let meeting = db::set_container_id(&state.pool, meeting.id, &container_id).await?;
    tracing::info!(meeting_id = meeting.id, %connection_id, container = %name, "bot requested");
    Ok((StatusCode::CREATED, Json(meeting.to_json())).into_response())
}

/// Why a bot did not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(transparent)]
    Runtime(#[from] crate::containers::RuntimeError),
    #[error("record the bot's session before its start: {0}")]
    Session(#[source] crate::db::DbError),
    #[error("record the bot's callback secret before its start: {0}")]
    Binding(#[source] crate::db::DbError),
}

/// `VexaBot-<6 hex>`, production's name for a bot the request does not name.
fn default_bot_name() -> String {
    let suffix: u32 = rand::random();
    format!("VexaBot-{:06x}", suffix & 0x00ff_ffff)
}

/// `DELETE /bots/{platform}/{native_meeting_id}`: 202 whatever happens next.
pub async fn stop_bot(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    MeetingPath {
        platform,
        native_id,
    }: MeetingPath,
) -> Result<(StatusCode, Json<MessageResponse>), ApiError> {
    let Some(meeting) = db::latest_meeting(&state.pool, user.id, platform, &native_id).await?
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "No meeting found to stop.",
        ));
    };
    let message = stop::request_stop(&state, meeting).await?;
    Ok((StatusCode::ACCEPTED, Json(MessageResponse { message })))
}

/// `PUT /bots/{platform}/{native_meeting_id}/config`: routed to `current_uid`, else
/// the latest session (unlike stop, which takes the earliest); under the later wire, to
/// the meeting's channel.
pub async fn update_config(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    MeetingPath {
        platform,
        native_id,
    }: MeetingPath,
    ApiJson(req): ApiJson<ConfigUpdateRequest>,
) -> Result<(StatusCode, Json<MessageResponse>), ApiError> {
    let Some(meeting) = db::latest_meeting(&state.pool, user.id, platform, &native_id).await?
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "No meeting found to reconfigure.",
        ));
    };
    if meeting.known_status() != Some(MeetingStatus::Active) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "Meeting {} is {}, not active; cannot reconfigure.",
                meeting.id, meeting.status
            ),
        ));
    }
    let uid = match state.bus.current_uid(platform, &native_id).await {
        Ok(Some(uid)) => Some(uid),
        Ok(None) => db::latest_session_uid(&state.pool, meeting.id).await?,
        Err(err) => {
            tracing::warn!(meeting_id = meeting.id, error = %err, "current_uid unavailable; using the latest session");
            db::latest_session_uid(&state.pool, meeting.id).await?
        }
    };
    let Some(uid) = uid else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("No session found for meeting {}.", meeting.id),
        ));
    };
    // The later wire sends every command on the meeting's channel, naming the meeting.
    let (channel, meeting_id) = match state.config.wire {
        Wire::Incident => (protocol::bot_commands_channel(&uid), None),
        Wire::Later => (
            protocol::meeting_commands_channel(meeting.id.into()),
            Some(meeting.id.into()),
        ),
    };
    let command = BotCommand::Reconfigure {
        uid,
        language: req.language,
        task: req.task.map(|t| t.as_str().to_owned()),
        meeting_id,
    };
    state.bus.publish_command(&channel, &command).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageResponse {
            message: "Reconfiguration request accepted and sent to the bot.".into(),
        }),
    ))
}

/// `GET /bots/status`: the runtime's view, not the database's.
pub async fn running_bots(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
) -> Result<Json<RunningBotsResponse>, ApiError> {
    let containers = state.runtime.running_for_user(user.id).await?;
    let ids: Vec<i32> = containers
        .iter()
        .filter_map(|c| first_name(c).and_then(|n| containers::meeting_id_from_name(&n)))
        .filter_map(|id| id.parse().ok())
        .collect();
    let meetings = db::meetings_by_ids(&state.pool, &ids).await?;
    let running_bots = containers
        .into_iter()
        .map(|c| {
            let name = first_name(&c);
            let meeting_id = name.as_deref().and_then(containers::meeting_id_from_name);
            let meeting = meeting_id
                .as_deref()
                .and_then(|id| id.parse::<i32>().ok())
                .and_then(|id| meetings.iter().find(|m| m.id == id));
            let labels = c.labels.clone().unwrap_or_default();
            RunningBot {
                container_id: c.id.clone().unwrap_or_default(),
                container_name: name,
                platform: meeting.map(|m| m.platform.clone()),
                native_meeting_id: meeting.map(|m| m.native_id().to_owned()),
                normalized_status: c.status.as_deref().and_then(protocol::normalized_status),
                status: c.status.clone(),
                created_at: c
                    .created
                    .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                    .map(db::rfc3339),
                labels,
                meeting_id_from_name: meeting_id,
            }
        })
        .collect();
    Ok(Json(RunningBotsResponse { running_bots }))
}

fn first_name(c: &bollard::models::ContainerSummary) -> Option<String> {
    c.names
        .as_ref()
        .and_then(|names| names.first())
        .map(|n| n.trim_start_matches('/').to_owned())
}
