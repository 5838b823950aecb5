//! Errors as the API answers them: FastAPI's `{"detail": ...}` with the production codes.
//! A 422 is pydantic's list, `{"detail": [{"loc": [...], "msg", "type", "ctx"?}]}`, which
//! clients read as `detail[0].loc` (protocol.md section 11); anything else carries a text.
//! Postgres's error text never reaches an answer: it is logged, and the 500 says what
//! failed in the service's own words, with an id to find the log line.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::bus::BusError;
use crate::containers::RuntimeError;
use crate::db::DbError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// A text, or (422) pydantic's list of errors.
    pub detail: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: Value::String(detail.into()),
        }
    }

    /// A 422 as pydantic reports one invalid input: where it is (`["body", "platform"]`,
    /// `["path", "platform"]`, `["body", 12]`), pydantic's error type and message, and
    /// its context when the type has one.
    pub fn validation<L: Into<Value> + Clone>(
        loc: &[L],
        kind: &str,
        msg: impl Into<String>,
        ctx: Option<Value>,
    ) -> Self {
        let mut error = Map::new();
        error.insert("type".into(), json!(kind));
        error.insert(
            "loc".into(),
            Value::Array(loc.iter().cloned().map(Into::into).collect()),
        );
        error.insert("msg".into(), Value::String(msg.into()));
        if let Some(ctx) = ctx {
            error.insert("ctx".into(), ctx);
        }
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: Value::Array(vec![Value::Object(error)]),
        }
    }

    /// A string longer than `max` characters, refused as pydantic refuses one; `None`
    /// when it fits.
    pub fn too_long(loc: &[&str], value: &str, max: usize) -> Option<Self> {
        (value.chars().count() > max).then(|| {
            ApiError::validation(
                loc,
                "string_too_long",
                format!("String should have at most {max} characters"),
                Some(json!({"max_length": max})),
            )
        })
    }

    /// A 500 that says `failed to <detail>`: for a state the service cannot handle, and
    /// for the runtime's and Redis's errors (whose texts the harness's recorded histories
    /// keep). Never for a database error (see [`ApiError::hidden`]).
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to {detail}"),
        )
    }

    /// A 500 for an error the database reported: the answer names only what failed, in
    /// the service's words, and an error id; the database's own text (a query, a
    /// constraint, an index, an echo of the input) stays in the log, under that id.
    pub fn hidden(what: &'static str, err: &(dyn std::error::Error + 'static)) -> Self {
        let error_id = uuid::Uuid::new_v4();
        tracing::error!(%error_id, error = %ErrorChain(err), "request failed: failed to {what}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "Internal Server Error: failed to {what} (error id {error_id}; the service log has the details)"
            ),
        )
    }
}

/// An error and its sources, `a: b: c`, for the log (each level once: a level whose text
/// already ends with its source's is not repeated).
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = self.0.to_string();
        let mut source = self.0.source();
        while let Some(err) = source {
            let next = err.to_string();
            if !text.ends_with(&next) {
                text.push_str(": ");
                text.push_str(&next);
            }
            source = err.source();
        }
        f.write_str(&text)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "detail": self.detail }))).into_response()
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        ApiError::hidden("query the database", &err)
    }
}

impl From<BusError> for ApiError {
    fn from(err: BusError) -> Self {
        ApiError::internal(err)
    }
}

impl From<RuntimeError> for ApiError {
    fn from(err: RuntimeError) -> Self {
        ApiError::internal(err)
    }
}
