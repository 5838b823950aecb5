//! Errors as the API answers them: FastAPI's `{"detail": ...}` with the production codes.
//! A 422 is pydantic's list, `{"detail": [{"loc": [...], "msg", "type", "ctx"?}]}`, which
//! clients read as `detail[0].loc` (protocol.md section 11); anything else carries a text.

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

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to {detail}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "detail": self.detail }))).into_response()
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        ApiError::internal(err)
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
