//! Extractors that answer bad input as FastAPI does: 422 with a detail naming the problem.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use protocol::Platform;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body; malformed or mistyped input is 422, an oversized body 413.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_error(rejection)),
        }
    }
}

fn json_error(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large");
    }
    ApiError::unprocessable(rejection.body_text())
}

pub fn parse_platform(raw: &str) -> Result<Platform, ApiError> {
    raw.parse::<Platform>()
        .map_err(|err| ApiError::unprocessable(err.to_string()))
}
