//! `X-API-Key` authentication: a missing or unknown key is 403.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;

use crate::app::AppState;
use crate::db::{self, User};
use crate::error::ApiError;

/// The user a request's `X-API-Key` names, and that key (production hands it to the bot
/// as `BOT_CONFIG.token`).
pub struct AuthUser(pub User, pub String);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(key) = parts.headers.get("x-api-key") else {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "Missing API key"));
        };
        let key = key
            .to_str()
            .map_err(|_| ApiError::new(StatusCode::FORBIDDEN, "Invalid API key"))?;
        match db::user_by_token(&state.pool, key).await? {
            Some(user) => Ok(AuthUser(user, key.to_owned())),
            None => Err(ApiError::new(StatusCode::FORBIDDEN, "Invalid API key")),
        }
    }
}
