//! API errors: Toxiproxy's status codes and message prefixes, with the detail appended,
//! answered as `{"error": "...", "status": N}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::model::ErrorBody;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: String) -> Self {
        Self { status, message }
    }

    pub fn bad_request_body(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("bad request body: {detail}"),
        )
    }

    pub fn missing_field(field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("missing required field: {field}"),
        )
    }

    pub fn proxy_not_found(name: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("proxy not found: {name}"))
    }

    pub fn proxy_already_exists(name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            format!("proxy already exists: {name}"),
        )
    }

    pub fn invalid_stream(stream: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("stream was invalid, can be either upstream or downstream: got `{stream}`"),
        )
    }

    pub fn invalid_toxic_type(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("invalid toxic type: {detail}"),
        )
    }

    pub fn toxic_already_exists(name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            format!("toxic already exists: {name}"),
        )
    }

    pub fn toxic_not_found(name: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("toxic not found: {name}"))
    }

    /// Toxiproxy answers 500 when a proxy cannot listen.
    pub fn listen_failed(proxy: &str, listen: &str, err: &std::io::Error) -> Self {
        let listen = if listen.is_empty() {
            "127.0.0.1:0"
        } else {
            listen
        };
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("proxy {proxy} cannot listen on {listen}: {err}"),
        )
    }

    pub fn not_found_route(path: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("no such endpoint: {path}"))
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.message.clone(),
            status: self.status.as_u16(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}
