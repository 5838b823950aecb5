//! `/containers/...` handlers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use chrono::Utc;
use nix::sys::signal::Signal;
use serde::Deserialize;
use serde_json::{Value, json};

use super::filters::ContainerFilter;
use super::views;
use crate::admission::{Refusal, check_no_override, cmd_words};
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
    /// `{"6379/tcp": {}}`.
    #[serde(rename = "ExposedPorts")]
    exposed_ports: Option<BTreeMap<String, Value>>,
    /// What would override the image's program, arguments, directory or user: refused
    /// unless absent or empty, but for a `Cmd` the image map lists. Kept as JSON so
    /// that any type is refused by name.
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
    /// `{"6379/tcp": [{"HostIp": "", "HostPort": "0"}]}`.
    #[serde(rename = "PortBindings")]
    port_bindings: Option<BTreeMap<String, Option<Vec<BindingRequest>>>>,
    #[serde(rename = "PublishAllPorts")]
    publish_all_ports: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct BindingRequest {
    #[serde(rename = "HostIp")]
    host_ip: Option<String>,
    #[serde(rename = "HostPort")]
    host_port: Option<String>,
}

/// `ExposedPorts` keys, normalised.
fn exposed_ports(ports: Option<BTreeMap<String, Value>>) -> Result<Vec<String>, Refusal> {
    ports
        .unwrap_or_default()
        .into_keys()
        .map(|port| {
            crate::images::normalise_port(&port).ok_or_else(|| Refusal::Ports {
                field: "ExposedPorts",
                value: crate::admission::shown(&port),
                problem: "a port is 1 to 65535, then /tcp, /udp or /sctp",
            })
        })
        .collect()
}

/// `PortBindings`: a host port per container port, on loopback. The process runs on
/// the host, so it listens on the one host port itself: one binding per port.
fn port_bindings(
    bindings: Option<BTreeMap<String, Option<Vec<BindingRequest>>>>,
) -> Result<BTreeMap<String, Option<u16>>, Refusal> {
    let refuse = |value: &str, problem| Refusal::Ports {
        field: "PortBindings",
        value: crate::admission::shown(value),
        problem,
    };
    let mut out = BTreeMap::new();
    for (port, list) in bindings.unwrap_or_default() {
        let key = crate::images::normalise_port(&port)
            .ok_or_else(|| refuse(&port, "a port is 1 to 65535, then /tcp, /udp or /sctp"))?;
        let list = list.unwrap_or_default();
        let binding = match list.as_slice() {
            [] => None,
            [binding] => Some(binding),
            _ => {
                return Err(refuse(
                    &port,
                    "this runtime runs the process on the host, where it listens on one \
                     port: publish each container port once",
                ));
            }
        };
        let ip = binding.and_then(|b| b.host_ip.as_deref()).unwrap_or("");
        if !matches!(ip, "" | "0.0.0.0" | "::" | "localhost") && !is_loopback_ip(ip) {
            return Err(refuse(
                ip,
                "this runtime publishes ports on loopback only (127.0.0.1)",
            ));
        }
        let host_port = match binding.and_then(|b| b.host_port.as_deref()).unwrap_or("") {
            "" | "0" => None,
            text => Some(text.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                refuse(
                    text,
                    "a host port is a number from 1 to 65535 (ranges are not taken)",
                )
            })?),
        };
        out.insert(key, host_port);
    }
    Ok(out)
}

fn is_loopback_ip(ip: &str) -> bool {
    ip.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

pub(super) async fn create(
    State(supervisor): AppState,
    query: QueryParams,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let params = params(query)?;
    let request: CreateRequest = parse_json(&body, "the create request body")?;
    request.refuse_overrides()?;
    let cmd = cmd_words(request.cmd.as_ref())?;
    let exposed_ports = exposed_ports(request.exposed_ports)?;
    let image = request
        .image
        .filter(|image| !image.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("the create request body has no Image"))?;
    let mut host = request.host_config;
    let spec = CreateSpec {
        name: params.get("name").map(str::to_owned),
        image,
        env: request.env.unwrap_or_default(),
        labels: request.labels.unwrap_or_default(),
        auto_remove: host.as_ref().and_then(|h| h.auto_remove).unwrap_or(false),
        network_mode: host.as_ref().and_then(|h| h.network_mode.clone()),
        publish_all: host
            .as_ref()
            .and_then(|h| h.publish_all_ports)
            .unwrap_or(false),
        port_bindings: port_bindings(host.as_mut().and_then(|h| h.port_bindings.take()))?,
        binds: host.and_then(|h| h.binds),
        cmd,
        exposed_ports,
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

/// Answers the status and headers at once and the body at the exit, as Docker does: the
/// docker CLI's `run` waits for the headers of its `next-exit` wait before it starts the
/// container.
pub(super) async fn wait(
    State(supervisor): AppState,
    Reference(reference): Reference,
    query: QueryParams,
) -> Result<Response, ApiError> {
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
    let exit = supervisor.wait(&reference, condition)?;
    let body = futures::stream::once(async move {
        let answer = match exit.await {
            Ok(code) => json!({ "StatusCode": code, "Error": null }),
            Err(err) => json!({ "StatusCode": -1, "Error": { "Message": err.to_string() } }),
        };
        let mut bytes = answer.to_string().into_bytes();
        bytes.push(b'\n');
        Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(bytes))
    });
    Response::builder()
        .header(CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from_stream(body))
        .map_err(|err| ApiError::bad_request(format!("cannot build the wait response: {err}")))
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

pub(super) async fn pause(
    State(supervisor): AppState,
    Reference(reference): Reference,
) -> Result<StatusCode, ApiError> {
    supervisor.pause(&reference, Scope::Visible)?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn unpause(
    State(supervisor): AppState,
    Reference(reference): Reference,
) -> Result<StatusCode, ApiError> {
    supervisor.resume(&reference, Scope::Visible)?;
    Ok(StatusCode::NO_CONTENT)
}
