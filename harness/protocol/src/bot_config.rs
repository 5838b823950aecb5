//! `BOT_CONFIG`: the JSON the service hands each bot container (protocol.md section 7).

use serde::{Deserialize, Serialize};

use crate::Platform;

/// The longest stop-flow timer anyone gives or takes, in ms: a day. The service's timers
/// become the bot's `automaticLeave`, so the service, the bot and a scenario's
/// `[service]` share this bound; a day is longer than any run and far from overflowing a
/// clock or a database timestamp whatever it is added to.
pub const MAX_TIMER_MS: u64 = 86_400_000;

/// Keys whose value is null are left out, as production removes them before
/// serialising; a missing optional key reads as `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotConfig {
    pub meeting_id: i64,
    pub platform: Platform,
    #[serde(
        rename = "meetingUrl",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub meeting_url: Option<String>,
    #[serde(rename = "botName")]
    pub bot_name: String,
    pub token: String,
    #[serde(rename = "nativeMeetingId")]
    pub native_meeting_id: String,
    #[serde(rename = "connectionId")]
    pub connection_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(rename = "redisUrl")]
    pub redis_url: String,
    pub container_name: String,
    #[serde(rename = "automaticLeave")]
    pub automatic_leave: AutomaticLeave,
    /// The `/exited` callback URL; the bot derives `status_change` from it.
    #[serde(rename = "botManagerCallbackUrl")]
    pub bot_manager_callback_url: String,
    /// The bot's own callback secret (64 hex digits), given only by a service that
    /// authenticates callbacks: the bot sends it as `Authorization: Bearer <secret>` on
    /// every callback. Absent in production's `BOT_CONFIG`.
    #[serde(
        rename = "callbackSecret",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub callback_secret: Option<String>,
}

/// Automatic-leave timeouts in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutomaticLeave {
    #[serde(rename = "waitingRoomTimeout")]
    pub waiting_room_timeout: u64,
    #[serde(rename = "noOneJoinedTimeout")]
    pub no_one_joined_timeout: u64,
    #[serde(rename = "everyoneLeftTimeout")]
    pub everyone_left_timeout: u64,
}

impl Default for AutomaticLeave {
    fn default() -> Self {
        AutomaticLeave {
            waiting_room_timeout: 300_000,
            no_one_joined_timeout: 120_000,
            everyone_left_timeout: 60_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BotConfigError {
    #[error("read BOT_CONFIG: the variable is not set")]
    Missing,
    #[error("parse BOT_CONFIG: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("validate BOT_CONFIG: {field} {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
}

impl BotConfig {
    /// Parses and validates a `BOT_CONFIG` value as the real bot does before joining.
    pub fn parse(json: &str) -> Result<Self, BotConfigError> {
        let config: BotConfig = serde_json::from_str(json)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), BotConfigError> {
        let non_empty = [
            ("connectionId", &self.connection_id),
            ("redisUrl", &self.redis_url),
            ("botManagerCallbackUrl", &self.bot_manager_callback_url),
            ("nativeMeetingId", &self.native_meeting_id),
        ];
        for (field, value) in non_empty {
            if value.trim().is_empty() {
                return Err(BotConfigError::Invalid {
                    field,
                    problem: "is empty".into(),
                });
            }
        }
        if !self.bot_manager_callback_url.starts_with("http://")
            && !self.bot_manager_callback_url.starts_with("https://")
        {
            return Err(BotConfigError::Invalid {
                field: "botManagerCallbackUrl",
                problem: format!("is not an http(s) URL: {:?}", self.bot_manager_callback_url),
            });
        }
        if !self.redis_url.starts_with("redis://") {
            return Err(BotConfigError::Invalid {
                field: "redisUrl",
                problem: format!("is not a redis:// URL: {:?}", self.redis_url),
            });
        }
        Ok(())
    }

    /// `http://host/bots/internal/callback/exited` -> `.../status_change`.
    pub fn status_change_url(&self) -> String {
        let base = self
            .bot_manager_callback_url
            .trim_end_matches('/')
            .trim_end_matches("/exited");
        format!("{base}/status_change")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BotConfig {
        BotConfig {
            meeting_id: 1,
            platform: Platform::GoogleMeet,
            meeting_url: Some("https://meet.google.com/abc-defg-hij".into()),
            bot_name: "bot".into(),
            token: "t".into(),
            native_meeting_id: "abc-defg-hij".into(),
            connection_id: "c".into(),
            language: None,
            task: None,
            redis_url: "redis://redis:6379/0".into(),
            container_name: "vexa-bot-1-deadbeef".into(),
            automatic_leave: AutomaticLeave::default(),
            bot_manager_callback_url: "http://bot-manager:8080/bots/internal/callback/exited"
                .into(),
            callback_secret: None,
        }
    }

    #[test]
    fn bot_config_uses_production_key_names() {
        let v = serde_json::to_value(sample()).unwrap();
        for key in [
            "meeting_id",
            "platform",
            "meetingUrl",
            "botName",
            "token",
            "nativeMeetingId",
            "connectionId",
            "redisUrl",
            "container_name",
            "automaticLeave",
            "botManagerCallbackUrl",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert!(v["automaticLeave"].get("waitingRoomTimeout").is_some());
    }

    #[test]
    fn null_keys_are_left_out_and_read_back_as_none() {
        let mut config = sample();
        config.meeting_url = None;
        let v = serde_json::to_value(&config).unwrap();
        for key in ["meetingUrl", "language", "task", "callbackSecret"] {
            assert!(v.get(key).is_none(), "{key} written as null: {v}");
        }
        assert_eq!(BotConfig::parse(&v.to_string()).unwrap(), config);
        config.language = Some("de".into());
        let v = serde_json::to_value(&config).unwrap();
        assert_eq!(v["language"], "de");
    }

    #[test]
    fn callback_secret_is_written_as_callback_secret_only_when_given() {
        let mut config = sample();
        config.callback_secret = Some("ab".repeat(32));
        let v = serde_json::to_value(&config).unwrap();
        assert_eq!(v["callbackSecret"], "ab".repeat(32));
        assert_eq!(BotConfig::parse(&v.to_string()).unwrap(), config);
    }

    #[test]
    fn status_change_url_is_derived_from_exit_url() {
        assert_eq!(
            sample().status_change_url(),
            "http://bot-manager:8080/bots/internal/callback/status_change"
        );
    }

    #[test]
    fn malformed_bot_config_names_the_problem() {
        let err = BotConfig::parse("{\"meeting_id\": 1}").unwrap_err();
        assert!(err.to_string().contains("platform"), "{err}");
        let mut bad = sample();
        bad.redis_url = "http://x".into();
        let err = BotConfig::parse(&serde_json::to_string(&bad).unwrap()).unwrap_err();
        assert!(err.to_string().contains("redisUrl"), "{err}");
    }
}
