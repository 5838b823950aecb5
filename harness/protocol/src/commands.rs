//! Commands the service publishes to a bot on `bot_commands:*` (protocol.md section 6).

use serde::{Deserialize, Serialize};

/// A command payload. Legacy sends `{"action":"leave"}` on `bot_commands:{uid}`; the
/// meeting-scoped channel carries `meeting_id` so a bot can ignore another meeting's command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum BotCommand {
    Leave {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        meeting_id: Option<i64>,
    },
    Reconfigure {
        uid: String,
        #[serde(default)]
        language: Option<String>,
        #[serde(default)]
        task: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        meeting_id: Option<i64>,
    },
}

impl BotCommand {
    pub fn leave() -> Self {
        BotCommand::Leave { meeting_id: None }
    }

    pub fn meeting_id(&self) -> Option<i64> {
        match self {
            BotCommand::Leave { meeting_id } | BotCommand::Reconfigure { meeting_id, .. } => {
                *meeting_id
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leave_serialises_as_production_payload() {
        assert_eq!(
            serde_json::to_string(&BotCommand::leave()).unwrap(),
            r#"{"action":"leave"}"#
        );
    }

    #[test]
    fn reconfigure_carries_uid_language_and_task() {
        let cmd: BotCommand = serde_json::from_str(
            r#"{"action":"reconfigure","uid":"u1","language":"de","task":"translate"}"#,
        )
        .unwrap();
        assert_eq!(
            cmd,
            BotCommand::Reconfigure {
                uid: "u1".into(),
                language: Some("de".into()),
                task: Some("translate".into()),
                meeting_id: None
            }
        );
    }
}
