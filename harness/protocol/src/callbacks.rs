//! Internal callbacks from the bot to the service (protocol.md section 5).

use serde::{Deserialize, Serialize};

use crate::{CompletionReason, FailureStage, MeetingStatus};

/// The statuses a bot may report through `status_change`: every status of the machine,
/// as production's payload types it (a bot's `stopping` is stored; `requested` is an
/// illegal transition from anywhere, rejected by the status machine, not by the parser).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackStatus {
    Requested,
    Joining,
    AwaitingAdmission,
    Active,
    Stopping,
    Completed,
    Failed,
}

impl CallbackStatus {
    pub fn as_meeting_status(self) -> MeetingStatus {
        match self {
            CallbackStatus::Requested => MeetingStatus::Requested,
            CallbackStatus::Joining => MeetingStatus::Joining,
            CallbackStatus::AwaitingAdmission => MeetingStatus::AwaitingAdmission,
            CallbackStatus::Active => MeetingStatus::Active,
            CallbackStatus::Stopping => MeetingStatus::Stopping,
            CallbackStatus::Completed => MeetingStatus::Completed,
            CallbackStatus::Failed => MeetingStatus::Failed,
        }
    }

    pub fn is_terminal(self) -> bool {
        self.as_meeting_status().is_terminal()
    }
}

/// `POST /bots/internal/callback/status_change`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChangePayload {
    pub connection_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    pub status: CallbackStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_details: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_reason: Option<CompletionReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_stage: Option<FailureStage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

impl StatusChangePayload {
    pub fn new(connection_id: impl Into<String>, status: CallbackStatus) -> Self {
        StatusChangePayload {
            connection_id: connection_id.into(),
            container_id: None,
            status,
            reason: None,
            exit_code: None,
            error_details: None,
            completion_reason: None,
            failure_stage: None,
            timestamp: None,
        }
    }
}

/// `POST /bots/internal/callback/exited`: the exit callback the incident report names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitedPayload {
    pub connection_id: String,
    pub exit_code: i32,
    /// Optional, as production types it: a missing `reason` defaults to
    /// [`ExitedPayload::DEFAULT_REASON`] (an explicit `null` stays `None`).
    #[serde(
        default = "default_exit_reason",
        skip_serializing_if = "Option::is_none"
    )]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_details: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_reason: Option<CompletionReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_stage: Option<FailureStage>,
}

impl ExitedPayload {
    /// Production's default for a missing `reason`.
    pub const DEFAULT_REASON: &'static str = "self_initiated_leave";
}

fn default_exit_reason() -> Option<String> {
    Some(ExitedPayload::DEFAULT_REASON.to_owned())
}

/// The answer of `/exited` when the transition applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitedResponse {
    pub status: String,
    pub meeting_id: i64,
    pub final_status: MeetingStatus,
}

/// The session-start path, standing in for the transcription collector: one row in
/// `meeting_sessions` per transcription (re)connect, stamped with the client's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStartPayload {
    pub meeting_id: i64,
    pub session_uid: String,
    /// RFC 3339, from the bot's clock (may be earlier than the service's rows).
    pub session_start_time: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_change_accepts_every_status_of_the_machine_and_nothing_else() {
        for status in MeetingStatus::ALL {
            let p: StatusChangePayload = serde_json::from_value(
                serde_json::json!({"connection_id": "u", "status": status.as_str()}),
            )
            .unwrap();
            assert_eq!(p.status.as_meeting_status(), status);
        }
        let err = serde_json::from_str::<StatusChangePayload>(
            r#"{"connection_id":"u","status":"paused"}"#,
        );
        assert!(err.is_err());
    }

    #[test]
    fn exited_reason_defaults_as_production_when_missing() {
        let p: ExitedPayload =
            serde_json::from_str(r#"{"connection_id":"u","exit_code":0}"#).unwrap();
        assert_eq!(p.reason.as_deref(), Some("self_initiated_leave"));
        let p: ExitedPayload =
            serde_json::from_str(r#"{"connection_id":"u","exit_code":0,"reason":null}"#).unwrap();
        assert_eq!(p.reason, None);
    }

    #[test]
    fn status_change_rejects_server_unknown_completion_reason() {
        let err = serde_json::from_str::<StatusChangePayload>(
            r#"{"connection_id":"u","status":"completed","completion_reason":"removed_by_admin"}"#,
        );
        assert!(err.is_err());
    }

    #[test]
    fn status_change_minimal_payload_parses() {
        let p: StatusChangePayload =
            serde_json::from_str(r#"{"connection_id":"u","status":"active"}"#).unwrap();
        assert_eq!(p, StatusChangePayload::new("u", CallbackStatus::Active));
    }
}
