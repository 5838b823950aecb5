//! What every endpoint shares: the app (version prefix, fallback), errors as Docker
//! writes them, and request parsing that names what is wrong.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::OpError;
use crate::supervisor::Supervisor;
use crate::{control, docker_api};

/// The full application: the Docker API subset, the control API, and a JSON 404 for
/// anything else. Serve it through [`strip_version`].
pub(crate) fn router(supervisor: Arc<Supervisor>) -> Router {
    docker_api::routes()
        .merge(control::routes())
        .fallback(unsupported)
        .method_not_allowed_fallback(unsupported)
        .with_state(supervisor)
}

/// The path as the client sent it, before the version prefix was stripped.
#[derive(Debug, Clone)]
struct OriginalPath(String);

/// `/v1.47/containers/json` -> `/containers/json`; paths without a prefix pass unchanged.
pub(crate) fn strip_version(mut request: Request) -> Request {
    let path = request.uri().path().to_owned();
    if let Some(rest) = without_version(&path) {
        let rebuilt = match request.uri().query() {
            Some(query) => format!("{rest}?{query}"),
            None => rest.to_owned(),
        };
        if let Ok(uri) = rebuilt.parse::<Uri>() {
            *request.uri_mut() = uri;
        }
    }
    request.extensions_mut().insert(OriginalPath(path));
    request
}

fn without_version(path: &str) -> Option<&str> {
    let after_v = path.strip_prefix("/v")?;
    let (version, rest) = after_v.split_at(after_v.find('/')?);
    let (major, minor) = version.split_once('.')?;
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (numeric(major) && numeric(minor)).then_some(rest)
}

async fn unsupported(request: Request) -> ApiError {
    let path = request.extensions().get::<OriginalPath>().map_or_else(
        || request.uri().path().to_owned(),
        |original| original.0.clone(),
    );
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "page not found: {} {path} is not supported by this runtime",
            request.method()
        ),
    )
}

/// An error answer: Docker's status code and `{"message": "..."}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    #[cfg(test)]
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

impl From<OpError> for ApiError {
    fn from(err: OpError) -> Self {
        let status = match &err {
            OpError::NoSuchContainer(_) | OpError::NoSuchImage(_) => StatusCode::NOT_FOUND,
            OpError::AmbiguousPrefix(_)
            | OpError::InvalidName(_)
            | OpError::InvalidRequest(_)
            | OpError::Refused(_) => StatusCode::BAD_REQUEST,
            OpError::NameConflict { .. }
            | OpError::NotRunning(_)
            | OpError::AlreadyPaused(_)
            | OpError::NotPaused(_)
            | OpError::RemoveRunning(_) => StatusCode::CONFLICT,
            OpError::Spawn { .. }
            | OpError::Publish { .. }
            | OpError::Signal { .. }
            | OpError::InjectedFault { .. }
            | OpError::KillTimeout(_) => StatusCode::INTERNAL_SERVER_ERROR,
            OpError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, err.to_string())
    }
}

impl From<crate::admission::Refusal> for ApiError {
    fn from(refusal: crate::admission::Refusal) -> Self {
        OpError::from(refusal).into()
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request(format!("invalid query string: {}", rejection.body_text()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, "{}", self.message);
        }
        (self.status, Json(json!({ "message": self.message }))).into_response()
    }
}

/// The `{id}` of a container path. A path that cannot be decoded is answered as every
/// other error is, JSON with Docker's `message`, rather than axum's plain text.
pub(crate) struct Reference(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Reference {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(reference)) => Ok(Reference(reference)),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                format!(
                    "failed to read the container reference in the path: {}",
                    rejection.body_text()
                ),
            )),
        }
    }
}

/// A request body, or a JSON error (413 past axum's 2 MB limit) rather than plain text.
pub(crate) struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(Body(bytes)),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                format!("failed to read the request body: {}", rejection.body_text()),
            )),
        }
    }
}

/// Parses a JSON body; `what` names it in the error ("the create request body").
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|err| ApiError::bad_request(format!("invalid JSON in {what}: {err}")))
}

/// As [`parse_json`], but an empty body means the default.
pub(crate) fn parse_json_or_default<T: DeserializeOwned + Default>(
    body: &[u8],
    what: &str,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_json(body, what)
    }
}

/// Query parameters with Docker's parsing rules.
pub(crate) struct Params(pub HashMap<String, String>);

impl Params {
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Docker's `BoolValue`: absent, "", "0", "no", "false" and "none" are false.
    pub(crate) fn flag(&self, key: &str) -> bool {
        self.0.get(key).is_some_and(|value| {
            let value = value.trim().to_ascii_lowercase();
            !matches!(value.as_str(), "" | "0" | "no" | "false" | "none")
        })
    }

    pub(crate) fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .map(|value| {
                value.trim().parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "invalid query parameter {key}={value:?}: expected an integer"
                    ))
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefix_is_recognised_only_in_docker_form() {
        assert_eq!(
            without_version("/v1.47/containers/json"),
            Some("/containers/json")
        );
        assert_eq!(without_version("/v1.24/_ping"), Some("/_ping"));
        assert_eq!(without_version("/version"), None);
        assert_eq!(without_version("/v1/containers/json"), None);
        assert_eq!(without_version("/vx.y/containers/json"), None);
        assert_eq!(without_version("/v1.47"), None);
    }
}
