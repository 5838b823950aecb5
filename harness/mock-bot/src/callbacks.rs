//! The HTTP client the bot calls the service with: `status_change`, the legacy `/exited`
//! callback and the session-start path (protocol.md sections 5 and 7).

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{StatusCode, Url};
use serde_json::Value;

use crate::hosts::HostAliases;

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error(
        "put BOT_CONFIG.callbackSecret in an Authorization header: it holds a character a header cannot carry"
    )]
    Secret,
}

/// What became of one POST. The legacy bot ignores the answer's body, and so does this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Answered(StatusCode),
    Failed(String),
}

impl Delivery {
    pub fn is_success(&self) -> bool {
        matches!(self, Delivery::Answered(status) if status.is_success())
    }

    /// `{"http_status": N}` or `{"error": "..."}`, merged into the event that reports it.
    pub fn fields(&self) -> Value {
        match self {
            Delivery::Answered(status) => serde_json::json!({ "http_status": status.as_u16() }),
            Delivery::Failed(error) => serde_json::json!({ "error": error }),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Callbacks {
    client: reqwest::Client,
    pub exited_url: String,
    pub status_change_url: String,
    pub session_start_url: String,
    /// `Bearer <BOT_CONFIG.callbackSecret>`, sent on every request when the service gave
    /// a secret; no header otherwise, as the legacy bot.
    authorization: Option<HeaderValue>,
}

impl Callbacks {
    /// `session_base`: where session starts go instead of the service
    /// (`MOCK_BOT_SESSION_BASE`).
    pub fn new(
        config: &protocol::BotConfig,
        aliases: &HostAliases,
        session_base: Option<&Url>,
    ) -> Result<Self, CallbackError> {
        // Loopback only: a proxy from the environment must not see the harness's traffic.
        let builder = reqwest::Client::builder().no_proxy();
        let client = aliases
            .apply(builder)
            .build()
            .map_err(CallbackError::Client)?;
        let authorization = match &config.callback_secret {
            Some(secret) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {secret}"))
                    .map_err(|_| CallbackError::Secret)?;
                // Kept out of reqwest's debug output.
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Callbacks {
            client,
            exited_url: config.bot_manager_callback_url.clone(),
            status_change_url: config.status_change_url(),
            session_start_url: session_start_url(
                session_base.map_or(config.bot_manager_callback_url.as_str(), Url::as_str),
            ),
            authorization,
        })
    }

    /// One POST of `body`; `timeout: None` waits for ever, as the legacy bot does.
    pub async fn post(&self, url: &str, body: &Value, timeout: Option<Duration>) -> Delivery {
        let mut request = self.client.post(url).json(body);
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        match request.send().await {
            Ok(response) => Delivery::Answered(response.status()),
            Err(error) => Delivery::Failed(error_chain(&error)),
        }
    }
}

/// `<base>/bots/internal/session_start`, base being the callback URL up to `/bots/`
/// (its origin when it has no `/bots/`).
pub fn session_start_url(callback_url: &str) -> String {
    const PATH: &str = "/bots/internal/session_start";
    if let Some(at) = callback_url.find("/bots/") {
        return format!("{}{PATH}", &callback_url[..at]);
    }
    match Url::parse(callback_url) {
        Ok(url) => format!("{}{PATH}", url.origin().ascii_serialization()),
        Err(_) => format!("{}{PATH}", callback_url.trim_end_matches('/')),
    }
}

/// reqwest's top-level message hides the cause ("error sending request"); the chain
/// names it ("Connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(
        "http://bot-manager:8080/bots/internal/callback/exited",
        "http://bot-manager:8080/bots/internal/session_start"
    )]
    #[case(
        "http://127.0.0.1:9/prefix/bots/internal/callback/exited",
        "http://127.0.0.1:9/prefix/bots/internal/session_start"
    )]
    #[case(
        "http://bot-manager:8080/callback",
        "http://bot-manager:8080/bots/internal/session_start"
    )]
    fn session_start_url_keeps_the_callback_base(#[case] callback: &str, #[case] want: &str) {
        assert_eq!(session_start_url(callback), want);
    }
}
