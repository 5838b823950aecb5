//! API errors: Toxiproxy's status codes and message prefixes, with the detail appended,
//! answered as `{"error": "...", "status": N}`. Every error answer of the API has this
//! shape, those of the HTTP layer (413, 408, 405...) included.

use std::io::ErrorKind;
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::model::ErrorBody;
use crate::proxy::ListenError;

/// The most of a caller's value an error message repeats.
const SHOWN_CHARS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: String) -> Self {
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

    /// Two proxies of one populate batch with the same name: the batch is refused whole.
    pub fn duplicate_in_batch(name: &str, first: usize, again: usize) -> Self {
        Self::bad_request_body(format!(
            "duplicate proxy name {name} at proxy {again} (also at proxy {first})"
        ))
    }

    /// A `listen` or `upstream` that is not `host:port`.
    pub fn bad_address(field: &str, value: &str, problem: &str) -> Self {
        Self::bad_request_body(format!("{field} `{}` {problem}", shown(value)))
    }

    /// A proxy that cannot listen. Toxiproxy answers 500 whatever the cause; here the
    /// caller's part is a 4xx: an address taken by another proxy or process is a
    /// conflict (409), one that does not resolve or is not this host's is a bad request
    /// (400). Only what the server lacks itself (file descriptors, say) is a 500.
    pub fn listen_failed(proxy: &str, err: &ListenError) -> Self {
        let status = match err {
            ListenError::Resolve { .. }
            | ListenError::NoAddress { .. }
            | ListenError::NotLoopback { .. } => StatusCode::BAD_REQUEST,
            ListenError::Bind { source, .. } => match source.kind() {
                ErrorKind::AddrInUse => StatusCode::CONFLICT,
                ErrorKind::AddrNotAvailable
                | ErrorKind::PermissionDenied
                | ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        };
        Self::new(status, format!("proxy {proxy} failed to {err}"))
    }

    /// A body longer than the limit: answered without reading the rest.
    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body too large: more than {limit} bytes"),
        )
    }

    /// A body that did not arrive in time (a slow or stalled caller).
    pub fn body_timeout(timeout: Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "request body not received within {} ms",
                timeout.as_millis()
            ),
        )
    }

    /// As Toxiproxy's message, in the API's shape.
    pub fn browser_refused() -> Self {
        Self::new(StatusCode::FORBIDDEN, "User agent not allowed".to_owned())
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

/// `value`, cut to [`SHOWN_CHARS`] characters.
pub(crate) fn shown(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        Some((end, _)) => format!("{}...", &value[..end]),
        None => value.to_owned(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}
