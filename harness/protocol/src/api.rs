//! The public HTTP API of the service (protocol.md section 4).

use serde::{Deserialize, Serialize};

use crate::{MeetingStatus, Platform};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Transcribe,
    Translate,
}

impl Task {
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Transcribe => "transcribe",
            Task::Translate => "translate",
        }
    }
}

/// `POST /bots`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateBotRequest {
    pub platform: Platform,
    pub native_meeting_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Task>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passcode: Option<String>,
}

impl CreateBotRequest {
    pub fn new(platform: Platform, native_meeting_id: impl Into<String>) -> Self {
        CreateBotRequest {
            platform,
            native_meeting_id: native_meeting_id.into(),
            bot_name: None,
            language: None,
            task: None,
            passcode: None,
        }
    }
}

/// The meeting JSON the API answers with. `status` is text: a row can hold `error`, a
/// value outside the status machine (protocol.md section 4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeetingJson {
    pub id: i64,
    pub user_id: i64,
    pub platform: Platform,
    pub native_meeting_id: String,
    pub constructed_meeting_url: Option<String>,
    pub status: String,
    pub bot_container_id: Option<String>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub data: serde_json::Value,
    pub created_at: String,
    pub updated_at: String,
}

impl MeetingJson {
    /// The status, when it is one the status machine knows.
    pub fn known_status(&self) -> Option<MeetingStatus> {
        self.status.parse().ok()
    }
}

/// `GET /meetings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeetingsResponse {
    pub meetings: Vec<MeetingJson>,
}

/// `PUT /bots/{platform}/{native_meeting_id}/config`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigUpdateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Task>,
}

/// `{"message": ...}`, the body of 202 answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageResponse {
    pub message: String,
}

/// `GET /bots/status`: the user's running containers as the runtime reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningBotsResponse {
    pub running_bots: Vec<RunningBot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningBot {
    pub container_id: String,
    pub container_name: Option<String>,
    pub platform: Option<String>,
    pub native_meeting_id: Option<String>,
    /// Docker's status text.
    pub status: Option<String>,
    /// `status` reduced to its first word (`Up`, `Exited`, ...).
    pub normalized_status: Option<String>,
    pub created_at: Option<String>,
    pub labels: std::collections::HashMap<String, String>,
    pub meeting_id_from_name: Option<String>,
}

/// Docker's status text reduced to its first word, as production's `normalized_status`:
/// `Up 3 seconds` -> `Up`, `Exited (0) 2 minutes ago` -> `Exited`.
pub fn normalized_status(status: &str) -> Option<String> {
    status.split_whitespace().next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_status_is_the_first_word_of_dockers_status() {
        assert_eq!(normalized_status("Up 3 seconds").as_deref(), Some("Up"));
        assert_eq!(
            normalized_status("Exited (137) 2 minutes ago").as_deref(),
            Some("Exited")
        );
        assert_eq!(normalized_status("  "), None);
    }
}
