//! `/version`, `/reset`, `/populate`, `/proxies` and `/proxies/{proxy}`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;

use super::error::ApiError;
use super::parse;
use crate::model::{self, NewProxy, Populated, ProxyUpdate, Version};

pub(super) async fn version() -> Json<Version> {
    Json(Version {
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

pub(super) async fn reset(State(registry): State<super::State>) -> Result<StatusCode, ApiError> {
    registry.reset().await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn list(
    State(registry): State<super::State>,
) -> Json<BTreeMap<String, model::Proxy>> {
    Json(registry.list().await)
}

pub(super) async fn create(
    State(registry): State<super::State>,
    body: Bytes,
) -> Result<(StatusCode, Json<model::Proxy>), ApiError> {
    let spec: NewProxy = parse(&body)?;
    Ok((StatusCode::CREATED, Json(registry.create(spec).await?)))
}

/// All or nothing: on an error nothing has changed, so the answer is a plain error.
pub(super) async fn populate(
    State(registry): State<super::State>,
    body: Bytes,
) -> Result<(StatusCode, Json<Populated>), ApiError> {
    let specs: Vec<NewProxy> = parse(&body)?;
    let proxies = registry.populate(specs).await?;
    Ok((StatusCode::CREATED, Json(Populated { proxies })))
}

pub(super) async fn show(
    State(registry): State<super::State>,
    Path(proxy): Path<String>,
) -> Result<Json<model::Proxy>, ApiError> {
    Ok(Json(registry.get(&proxy).await?))
}

pub(super) async fn update(
    State(registry): State<super::State>,
    Path(proxy): Path<String>,
    body: Bytes,
) -> Result<Json<model::Proxy>, ApiError> {
    registry.require(&proxy).await?;
    let update: ProxyUpdate = parse(&body)?;
    Ok(Json(registry.update(&proxy, update).await?))
}

pub(super) async fn delete(
    State(registry): State<super::State>,
    Path(proxy): Path<String>,
) -> Result<StatusCode, ApiError> {
    registry.delete(&proxy).await?;
    Ok(StatusCode::NO_CONTENT)
}
