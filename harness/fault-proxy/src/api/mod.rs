//! Toxiproxy's REST API (v2) over the registry: the routes, and the browser guard.

pub(crate) mod error;
mod proxies;
mod toxics;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::header::USER_AGENT;
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::registry::Registry;
use error::ApiError;

pub(crate) type State = Arc<Registry>;

pub(crate) fn router(registry: State) -> Router {
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
        .layer(middleware::from_fn(refuse_browsers))
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
        return (StatusCode::FORBIDDEN, "User agent not allowed").into_response();
    }
    next.run(request).await
}

/// Reads a JSON body whatever its content type (Toxiproxy ignores it, and so do clients).
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(ApiError::bad_request_body)
}
