//! `/proxies/{proxy}/toxics` and `/proxies/{proxy}/toxics/{toxic}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::parse;
use crate::model::{Stream, Toxic, ToxicUpdate};
use crate::registry::ToxicRequest;

pub(super) async fn list(
    State(registry): State<super::State>,
    Path(proxy): Path<String>,
) -> Result<Json<Vec<Toxic>>, ApiError> {
    Ok(Json(registry.toxics(&proxy).await?))
}

/// Toxiproxy answers 200, not 201, to a new toxic.
pub(super) async fn create(
    State(registry): State<super::State>,
    Path(proxy): Path<String>,
    body: Bytes,
) -> Result<Json<Toxic>, ApiError> {
    registry.require(&proxy).await?;
    let request = toxic_request(&body)?;
    Ok(Json(registry.add_toxic(&proxy, request).await?))
}

pub(super) async fn show(
    State(registry): State<super::State>,
    Path((proxy, toxic)): Path<(String, String)>,
) -> Result<Json<Toxic>, ApiError> {
    Ok(Json(registry.toxic(&proxy, &toxic).await?))
}

pub(super) async fn update(
    State(registry): State<super::State>,
    Path((proxy, toxic)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Toxic>, ApiError> {
    registry.require(&proxy).await?;
    let update: ToxicUpdate = parse(&body)?;
    Ok(Json(registry.update_toxic(&proxy, &toxic, update).await?))
}

pub(super) async fn remove(
    State(registry): State<super::State>,
    Path((proxy, toxic)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    registry.remove_toxic(&proxy, &toxic).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The wrapper fields of a new toxic, checked as Toxiproxy checks them: the JSON, then the
/// stream (default `downstream`). Type and attributes are the registry's to check.
fn toxic_request(body: &Bytes) -> Result<ToxicRequest, ApiError> {
    let value: Value = parse(body)?;
    let Value::Object(mut fields) = value else {
        return Err(ApiError::bad_request_body("expected a JSON object"));
    };
    let text = |fields: &mut Map<String, Value>, key: &str| -> Result<Option<String>, ApiError> {
        match fields.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(ApiError::bad_request_body(format!(
                "`{key}` must be a string, not {other}"
            ))),
        }
    };
    let name = text(&mut fields, "name")?;
    let type_name = text(&mut fields, "type")?.unwrap_or_default();
    let stream_text = text(&mut fields, "stream")?;
    let toxicity = match fields.remove("toxicity") {
        None | Some(Value::Null) => None,
        Some(Value::Number(number)) => number.as_f64(),
        Some(other) => {
            return Err(ApiError::bad_request_body(format!(
                "`toxicity` must be a number, not {other}"
            )));
        }
    };
    let attributes = match fields.remove("attributes") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(attributes)) => attributes,
        Some(other) => {
            return Err(ApiError::bad_request_body(format!(
                "`attributes` must be an object, not {other}"
            )));
        }
    };
    let stream = match stream_text {
        None => Stream::Downstream,
        Some(text) => Stream::parse(&text).ok_or_else(|| ApiError::invalid_stream(&text))?,
    };
    Ok(ToxicRequest {
        name,
        type_name,
        stream,
        toxicity,
        attributes,
    })
}
