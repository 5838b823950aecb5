//! Toxiproxy's REST API (v2) over the registry: the routes, the browser guard, the body
//! limits, and JSON for every error answer.

pub(crate) mod error;
mod proxies;
mod toxics;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State as Limits};
use axum::http::header::{ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
use axum::http::{HeaderValue, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::LengthLimitError;
use serde::de::DeserializeOwned;

use crate::http::ApiLimits;
use crate::registry::Registry;
use error::ApiError;

pub(crate) type State = Arc<Registry>;

pub(crate) fn router(registry: State, limits: ApiLimits) -> Router {
    Router::new()
        .route("/version", get(proxies::version))
        .route("/reset", post(proxies::reset))
        .route("/populate", post(proxies::populate))
        .route("/proxies", get(proxies::list).post(proxies::create))
        .route(
            "/proxies/{proxy}",
            get(proxies::show)
                .post(proxies::update)
                .patch(proxies::update)
                .delete(proxies::delete),
        )
        .route(
            "/proxies/{proxy}/toxics",
            get(toxics::list).post(toxics::create),
        )
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(toxics::show)
                .post(toxics::update)
                .patch(toxics::update)
                .delete(toxics::remove),
        )
        .fallback(|uri: Uri| async move { ApiError::not_found_route(uri.path()) })
        // Outermost last: JSON errors, then the browser guard, then the body, then routes.
        .layer(middleware::from_fn_with_state(limits, read_body))
        // `read_body` enforces the limit (with a JSON 413); axum's own would answer text.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn(refuse_browsers))
        .layer(middleware::from_fn(json_errors))
        .with_state(registry)
}

/// As Toxiproxy: a web page must not be able to drive the proxy through the user's browser.
async fn refuse_browsers(request: Request, next: Next) -> Response {
    let from_browser = request
        .headers()
        .get(USER_AGENT)
        .and_then(|agent| agent.to_str().ok())
        .is_some_and(|agent| agent.starts_with("Mozilla/"));
    if from_browser {
        return ApiError::browser_refused().into_response();
    }
    next.run(request).await
}

/// Reads the whole body before the handler runs: at most [`ApiLimits::max_body_bytes`]
/// (413 beyond), within [`ApiLimits::body_read_timeout`] (408 after). Either answer
/// closes the connection, whose unread rest cannot be told from a next request.
async fn read_body(Limits(limits): Limits<ApiLimits>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok())
        .and_then(|length| length.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.max_body_bytes as u64) {
        return closing(ApiError::body_too_large(limits.max_body_bytes));
    }
    let read = tokio::time::timeout(
        limits.body_read_timeout,
        axum::body::to_bytes(body, limits.max_body_bytes),
    )
    .await;
    let bytes = match read {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(err)) => {
            let err = err.into_inner();
            return closing(if err.downcast_ref::<LengthLimitError>().is_some() {
                ApiError::body_too_large(limits.max_body_bytes)
            } else {
                ApiError::bad_request_body(format!("could not read it: {err}"))
            });
        }
        Err(_) => return closing(ApiError::body_timeout(limits.body_read_timeout)),
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The net under every error answer: one that is not already `{"error", "status"}` JSON
/// (axum's rejections of a path or method, say, are plain text or empty) is rewritten to
/// that shape, keeping its status and saying what its text said.
async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|kind| kind.to_str().ok())
        .is_some_and(|kind| kind.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Our own answers: small. Whatever does not fit is left out of the message.
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|text| String::from_utf8_lossy(&text).trim().to_owned())
        .unwrap_or_default();
    let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
    let message = if text.is_empty() {
        format!("{reason}: {method} {}", error::shown(&path))
    } else {
        format!("{reason}: {text}")
    };
    let mut answer = ApiError::new(status, message).into_response();
    for name in [ALLOW, CONNECTION] {
        if let Some(value) = parts.headers.get(&name) {
            answer.headers_mut().insert(name, value.clone());
        }
    }
    answer
}

/// Reads a JSON body whatever its content type (Toxiproxy ignores it, and so do clients).
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(ApiError::bad_request_body)
}
