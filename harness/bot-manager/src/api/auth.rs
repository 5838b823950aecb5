//! `X-API-Key` authentication: a missing or unknown key is 403. And, with the
//! `callback_auth` fix, the internal callbacks' own: each bot's secret.

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::callback_auth::{self, Binding};
use crate::db::{self, Meeting, User};
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

/// The secret an internal callback carries (`Authorization: Bearer <secret>`), read
/// when `callback_auth` is on; with it off, nothing is read and nothing refused, as in
/// legacy. A missing or malformed header is refused here, 401, before the body is read.
/// [`CallbackAuth::check`] is the rest of the check, once the callback's meeting is
/// known.
pub struct CallbackAuth(Option<String>);

impl FromRequestParts<AppState> for CallbackAuth {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if !state.fixes.callback_auth {
            return Ok(CallbackAuth(None));
        }
        bearer_secret(parts.headers.get(AUTHORIZATION))
            .map(|secret| CallbackAuth(Some(secret)))
            .map_err(|detail| {
                (
                    StatusCode::UNAUTHORIZED,
                    [(WWW_AUTHENTICATE, "Bearer")],
                    ApiError::new(StatusCode::UNAUTHORIZED, detail),
                )
                    .into_response()
            })
    }
}

/// The secret of an `Authorization` header, or why the header is not one.
fn bearer_secret(header: Option<&HeaderValue>) -> Result<String, String> {
    const EXPECTED: &str = "expected `Authorization: Bearer <the bot's BOT_CONFIG.callbackSecret>`";
    let Some(header) = header else {
        return Err(format!(
            "Missing Authorization header: an internal callback must carry its bot's secret ({EXPECTED})"
        ));
    };
    let Ok(text) = header.to_str() else {
        return Err(format!(
            "Malformed Authorization header: it holds characters that are not visible ASCII ({EXPECTED})"
        ));
    };
    let (scheme, token) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(format!(
            "Malformed Authorization header: its scheme is not Bearer ({EXPECTED})"
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(format!(
            "Malformed Authorization header: the Bearer token is missing ({EXPECTED})"
        ));
    }
    if !callback_auth::looks_like_secret(token) {
        return Err(format!(
            "Malformed Authorization header: the Bearer token is not a callback secret ({} hex digits)",
            callback_auth::SECRET_HEX_DIGITS
        ));
    }
    Ok(token.to_owned())
}

impl CallbackAuth {
    /// With `callback_auth` on, whether this callback may act on `meeting` (the meeting it
    /// resolved to, `None` for none) naming `container` (its `container_id`, if any):
    /// only with that meeting's own secret, and only naming that meeting's container.
    /// Anything else is 403. Called before a callback changes anything.
    pub fn check(
        &self,
        meeting: Option<&Meeting>,
        container: Option<&str>,
    ) -> Result<(), ApiError> {
        let Some(secret) = &self.0 else {
            return Ok(());
        };
        let refuse = |why: &str| Err(ApiError::new(StatusCode::FORBIDDEN, why));
        // One answer until the secret is verified: which meetings exist, and which have a
        // secret, is nothing for a caller without one to learn.
        const NOT_ITS: &str = "The callback's secret is not that of the meeting it is about";
        let Some(binding) = meeting.and_then(Binding::of) else {
            return refuse(NOT_ITS);
        };
        if !binding.secret_matches(secret) {
            return refuse(NOT_ITS);
        }
        if let Some(container) = container
            && !binding.names_container(container)
        {
            return refuse(
                "The callback's container_id is not the container of the meeting it is about",
            );
        }
        Ok(())
    }

    /// Whether callbacks are checked (the `callback_auth` switch).
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every malformed header is refused with a message naming what is wrong, never read
    // as a secret; a well-formed one is taken whatever the scheme's case.
    #[test]
    fn bearer_secret_refuses_malformed_headers_naming_the_problem() {
        let secret = callback_auth::new_secret();
        let header = |text: &str| HeaderValue::from_str(text).unwrap();
        assert!(bearer_secret(None).unwrap_err().contains("Missing"));
        for (value, says) in [
            (header(""), "scheme"),
            (header("Bearer"), "missing"),
            (header("Bearer   "), "missing"),
            (header("Basic x"), "scheme"),
            (header(&format!("Basic {secret}")), "scheme"),
            (header("Bearer x"), "hex digits"),
            (
                header(&format!("Bearer {}", "x".repeat(10_000))),
                "hex digits",
            ),
            (header(&format!("Bearer {secret}0")), "hex digits"),
            (
                HeaderValue::from_bytes("Bearer é".as_bytes()).unwrap(),
                "ASCII",
            ),
        ] {
            let err = bearer_secret(Some(&value)).unwrap_err();
            assert!(err.contains(says), "{value:?}: {err}");
        }
        assert_eq!(
            bearer_secret(Some(&header(&format!("Bearer {secret}")))),
            Ok(secret.clone())
        );
        assert_eq!(
            bearer_secret(Some(&header(&format!("bearer {secret}")))),
            Ok(secret)
        );
    }
}
