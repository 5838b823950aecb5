//! `/containers/...` handlers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::Utc;
use nix::sys::signal::Signal;
use serde::Deserialize;
use serde_json::{Value, json};

use super::filters::ContainerFilter;
use super::views;
use crate::admission::{Refusal, check_no_override};
use crate::containers::{CreateSpec, Scope};
use crate::http::{ApiError, Body, Params, Reference, parse_json};
use crate::process::parse_signal;
use crate::supervisor::{Outcome, Supervisor, WaitCondition};

type AppState = State<Arc<Supervisor>>;
type QueryParams = Result<Query<HashMap<String, String>>, QueryRejection>;

/// Docker's default stop grace.
const DEFAULT_STOP_SECONDS: i64 = 10;

fn params(query: QueryParams) -> Result<Params, ApiError> {
    Ok(Params(query?.0))
}

/// The parts of Docker's create body the runtime uses or refuses; everything else is
/// ignored (none of it changes what runs).
#[derive(Debug, Deserialize)]
struct CreateRequest {
    #[serde(rename = "Image")]
    image: Option<String>,
    #[serde(rename = "Env")]
    env: Option<Vec<String>>,
    #[serde(rename = "Labels")]
    labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "HostConfig")]
    host_config: Option<HostConfigRequest>,
    /// What would override the image's program, arguments, directory or user: refused
    /// unless absent or empty. Kept as JSON so that any type is refused by name.
    #[serde(rename = "Cmd")]
    cmd: Option<Value>,
    #[serde(rename = "Entrypoint")]
    entrypoint: Option<Value>,
    #[serde(rename = "WorkingDir")]
    working_dir: Option<Value>,
    #[serde(rename = "User")]
    user: Option<Value>,
}

impl CreateRequest {
    fn refuse_overrides(&self) -> Result<(), Refusal> {
        check_no_override("Cmd", self.cmd.as_ref())?;
        check_no_override("Entrypoint", self.entrypoint.as_ref())?;
        check_no_override("WorkingDir", self.working_dir.as_ref())?;
        check_no_override("User", self.user.as_ref())
    }
}

#[derive(Debug, Deserialize)]
struct HostConfigRequest {
    #[serde(rename = "AutoRemove")]
    auto_remove: Option<bool>,
    #[serde(rename = "NetworkMode")]
    network_mode: Option<String>,
    #[serde(rename = "Binds")]
    binds: Option<Vec<String>>,
}

pub(super) async fn create(
    State(supervisor): AppState,
    query: QueryParams,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let params = params(query)?;
    let request: CreateRequest = parse_json(&body, "the create request body")?;
    request.refuse_overrides()?;
    let image = request
        .image
        .filter(|image| !image.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("the create request body has no Image"))?;
    let host = request.host_config;
    let spec = CreateSpec {
        name: params.get("name").map(str::to_owned),
        image,
        env: request.env.unwrap_or_default(),
        labels: request.labels.unwrap_or_default(),
        auto_remove: host.as_ref().and_then(|h| h.auto_remove).unwrap_or(false),
        network_mode: host.as_ref().and_then(|h| h.network_mode.clone()),
        binds: host.and_then(|h| h.binds),
    };
    let id = supervisor.create(spec)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "Id": id, "Warnings": [] })),
    ))
}

pub(super) async fn list(
    State(supervisor): AppState,
    query: QueryParams,
) -> Result<Json<Vec<Value>>, ApiError> {
    let params = params(query)?;
    let filter = ContainerFilter::parse(params.get("filters"), params.flag("all"))?;
    let limit = params
        .int("limit")?
        .filter(|limit| *limit > 0)
        .map_or(usize::MAX, |limit| {
            usize::try_from(limit).unwrap_or(usize::MAX)
        });
    let now = Utc::now();
    let table = supervisor.table();
    let containers = table
        .iter()
        .rev()
        .filter(|c| c.is_visible() && filter.matches(c))
        .take(limit)
        .map(|c| views::summary(c, now))
        .collect();
    Ok(Json(containers))
}

pub(super) async fn inspect(
    State(supervisor): AppState,
    Reference(reference): Reference,
) -> Result<Json<Value>, ApiError> {
    let table = supervisor.table();
    let c = table.resolve(&reference, Scope::Visible)?;
    Ok(Json(views::inspect(c, supervisor.log_path(c))))
}

fn no_content_or_not_modified(outcome: Outcome) -> StatusCode {
    match outcome {
        Outcome::Done => StatusCode::NO_CONTENT,
        Outcome::NotModified => StatusCode::NOT_MODIFIED,
    }
}

pub(super) async fn start(
    State(supervisor): AppState,
    Reference(reference): Reference,
) -> Result<StatusCode, ApiError> {
    Ok(no_content_or_not_modified(
        supervisor.start(&reference).await?,
    ))
}

pub(super) async fn stop(
    State(supervisor): AppState,
    Reference(reference): Reference,
    query: QueryParams,
) -> Result<StatusCode, ApiError> {
    let params = params(query)?;
    let seconds = params.int("t")?.unwrap_or(DEFAULT_STOP_SECONDS);
    // Docker: a negative timeout waits for the process however long it takes.
    let grace = u64::try_from(seconds).ok().map(Duration::from_secs);
    let signal = match params.get("signal") {
        Some(text) => parse_signal(text).map_err(ApiError::bad_request)?,
        None => Signal::SIGTERM,
    };
    // Detached, so a client that gives up mid-grace still gets its container stopped.
    let outcome = tokio::spawn(async move { supervisor.stop(&reference, grace, signal).await })
        .await
        .map_err(|err| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the stop task failed: {err}"),
            )
        })??;
    Ok(no_content_or_not_modified(outcome))
}

pub(super) async fn kill(
    State(supervisor): AppState,
    Reference(reference): Reference,
    query: QueryParams,
) -> Result<StatusCode, ApiError> {
    let params = params(query)?;
    let signal = match params.get("signal") {
        Some(text) => parse_signal(text).map_err(ApiError::bad_request)?,
        None => Signal::SIGKILL,
    };
    supervisor.kill(&reference, signal, Scope::Visible)?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn wait(
    State(supervisor): AppState,
    Reference(reference): Reference,
    query: QueryParams,
) -> Result<Json<Value>, ApiError> {
    let params = params(query)?;
    let condition = match params.get("condition") {
        None | Some("not-running") => WaitCondition::NotRunning,
        Some("next-exit") => WaitCondition::NextExit,
        Some("removed") => WaitCondition::Removed,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid condition {other:?}: expected not-running, next-exit or removed"
            )));
        }
    };
    let code = supervisor.wait(&reference, condition).await?;
    Ok(Json(json!({ "StatusCode": code, "Error": null })))
}

pub(super) async fn remove(
    State(supervisor): AppState,
    Reference(reference): Reference,
    query: QueryParams,
) -> Result<StatusCode, ApiError> {
    let params = params(query)?;
    let force = params.flag("force");
    tokio::spawn(async move { supervisor.remove(&reference, force).await })
        .await
        .map_err(|err| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the remove task failed: {err}"),
            )
        })??;
    Ok(StatusCode::NO_CONTENT)
}
