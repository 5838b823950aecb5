//! The control API under `/_runtime/`: what a chaos engine scripts beyond Docker's API.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::containers::{Container, Scope, State as ContainerState};
use crate::faults::{Faults, FaultsPatch};
use crate::http::{ApiError, Body, Reference, parse_json, parse_json_or_default};
use crate::process::parse_signal;
use crate::rules::{Rule, RuleSpec};
use crate::supervisor::Supervisor;

type AppState = State<Arc<Supervisor>>;

pub(crate) fn routes() -> Router<Arc<Supervisor>> {
    Router::new()
        .route(
            "/_runtime/rules",
            post(add_rule).get(list_rules).delete(clear_rules),
        )
        .route("/_runtime/containers", get(list_containers))
        .route("/_runtime/containers/{id}/restart", post(restart))
        .route("/_runtime/containers/{id}/pause", post(pause))
        .route("/_runtime/containers/{id}/resume", post(resume))
        .route("/_runtime/containers/{id}/signal", post(signal))
        .route("/_runtime/faults", get(get_faults).put(put_faults))
        .route("/_runtime/forget", post(forget))
}

async fn add_rule(
    State(supervisor): AppState,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let spec: RuleSpec = parse_json(&body, "the rule body")?;
    let id = supervisor.add_rule(spec)?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

async fn list_rules(State(supervisor): AppState) -> Json<Vec<Rule>> {
    Json(supervisor.rules())
}

async fn clear_rules(State(supervisor): AppState) -> StatusCode {
    supervisor.clear_rules();
    StatusCode::NO_CONTENT
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestartRequest {
    #[serde(default)]
    new_uid: bool,
}

async fn restart(
    State(supervisor): AppState,
    Reference(reference): Reference,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let request: RestartRequest = parse_json_or_default(&body, "the restart body")?;
    // Detached, so a client that goes away cannot leave the container killed but not restarted.
    let connection_id =
        tokio::spawn(async move { supervisor.restart(&reference, request.new_uid).await })
            .await
            .map_err(|err| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the restart task failed: {err}"),
                )
            })??;
    Ok(Json(json!({ "connection_id": connection_id })))
}

async fn pause(
    State(supervisor): AppState,
    Reference(reference): Reference,
) -> Result<StatusCode, ApiError> {
    supervisor.pause(&reference, Scope::IncludingForgotten)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn resume(
    State(supervisor): AppState,
    Reference(reference): Reference,
) -> Result<StatusCode, ApiError> {
    supervisor.resume(&reference, Scope::IncludingForgotten)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalRequest {
    signal: String,
}

async fn signal(
    State(supervisor): AppState,
    Reference(reference): Reference,
    Body(body): Body,
) -> Result<StatusCode, ApiError> {
    let request: SignalRequest = parse_json(&body, "the signal body")?;
    let signal = parse_signal(&request.signal).map_err(ApiError::bad_request)?;
    supervisor.kill(&reference, signal, Scope::IncludingForgotten)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_faults(State(supervisor): AppState) -> Json<Faults> {
    Json(supervisor.faults())
}

async fn put_faults(
    State(supervisor): AppState,
    Body(body): Body,
) -> Result<Json<Faults>, ApiError> {
    let patch: FaultsPatch = parse_json_or_default(&body, "the faults body")?;
    Ok(Json(supervisor.patch_faults(patch)))
}

async fn forget(State(supervisor): AppState) -> Json<Value> {
    Json(json!({ "forgotten": supervisor.forget() }))
}

/// One entry of `GET /_runtime/containers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub image: String,
    /// Docker's state string of the last known state.
    pub state: String,
    pub pid: Option<u32>,
    pub exit_code: Option<i64>,
    pub connection_ids: Vec<String>,
    pub forgotten: bool,
    pub removed: bool,
    pub auto_remove: bool,
    pub restart_count: u64,
    pub created: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
}

impl ContainerRecord {
    fn of(c: &Container) -> Self {
        let time =
            |at: Option<DateTime<Utc>>| at.map(|at| at.to_rfc3339_opts(SecondsFormat::Nanos, true));
        ContainerRecord {
            id: c.id.clone(),
            name: c.name.clone(),
            image: c.image.clone(),
            state: c.state.as_str().to_owned(),
            pid: c.pid,
            exit_code: (c.state == ContainerState::Exited).then_some(c.exit_code),
            connection_ids: c.connection_ids.clone(),
            forgotten: c.forgotten,
            removed: c.removed,
            auto_remove: c.auto_remove,
            restart_count: c.restart_count,
            created: c.created.to_rfc3339_opts(SecondsFormat::Nanos, true),
            started_at: time(c.started_at),
            finished_at: time(c.finished_at),
            labels: c.labels.clone(),
        }
    }
}

async fn list_containers(State(supervisor): AppState) -> Json<Vec<ContainerRecord>> {
    let table = supervisor.table();
    Json(table.iter().map(ContainerRecord::of).collect())
}
