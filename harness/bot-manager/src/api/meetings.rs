//! `GET /meetings`, health and the fallbacks.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use protocol::MeetingsResponse;
use serde_json::{Value, json};

use super::auth::AuthUser;
use crate::app::AppState;
use crate::db;
use crate::error::ApiError;

pub async fn list_meetings(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
) -> Result<Json<MeetingsResponse>, ApiError> {
    let meetings = db::meetings_of_user(&state.pool, user.id).await?;
    Ok(Json(MeetingsResponse {
        meetings: meetings.iter().map(db::Meeting::to_json).collect(),
    }))
}

pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let db_ok = sqlx::query("SELECT 1").execute(&state.pool).await.is_ok();
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(
            json!({"status": if db_ok { "ok" } else { "degraded" }, "profile": state.profile.to_string(), "database": db_ok}),
        ),
    )
}

pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("No route for {method} {}", uri.path()),
    )
}

/// A route that exists, asked with a method it does not take: FastAPI's answer (with
/// the `Allow` header axum adds), not an empty body.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}
