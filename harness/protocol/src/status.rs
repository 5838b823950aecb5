//! The meeting status machine (protocol.md section 3).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A meeting's status as stored in `meetings.status` (plain text in the database).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeetingStatus {
    Requested,
    Joining,
    AwaitingAdmission,
    Active,
    Stopping,
    Completed,
    Failed,
}

impl MeetingStatus {
    pub const ALL: [MeetingStatus; 7] = [
        MeetingStatus::Requested,
        MeetingStatus::Joining,
        MeetingStatus::AwaitingAdmission,
        MeetingStatus::Active,
        MeetingStatus::Stopping,
        MeetingStatus::Completed,
        MeetingStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MeetingStatus::Requested => "requested",
            MeetingStatus::Joining => "joining",
            MeetingStatus::AwaitingAdmission => "awaiting_admission",
            MeetingStatus::Active => "active",
            MeetingStatus::Stopping => "stopping",
            MeetingStatus::Completed => "completed",
            MeetingStatus::Failed => "failed",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, MeetingStatus::Completed | MeetingStatus::Failed)
    }

    /// Statuses that count against `max_concurrent_bots` (protocol.md section 4).
    pub fn counts_as_running(self) -> bool {
        matches!(
            self,
            MeetingStatus::Requested
                | MeetingStatus::Joining
                | MeetingStatus::AwaitingAdmission
                | MeetingStatus::Active
        )
    }

    /// Statuses before the bot reached the meeting (eligible for the pre-active fast path).
    pub fn is_pre_active(self) -> bool {
        matches!(
            self,
            MeetingStatus::Requested | MeetingStatus::Joining | MeetingStatus::AwaitingAdmission
        )
    }

    /// Whether the status machine allows `self -> to`. Anything else is rejected and
    /// leaves the row untouched.
    pub fn can_transition_to(self, to: MeetingStatus) -> bool {
        use MeetingStatus::*;
        match self {
            Requested => matches!(to, Joining | Failed | Completed | Stopping),
            Joining => matches!(to, AwaitingAdmission | Failed | Completed | Stopping),
            AwaitingAdmission => matches!(to, Active | Failed | Completed | Stopping),
            Active => matches!(to, Stopping | Completed | Failed),
            Stopping => matches!(to, Completed | Failed),
            Completed | Failed => false,
        }
    }
}

impl fmt::Display for MeetingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "parse meeting status {0:?}: not one of requested, joining, awaiting_admission, active, stopping, completed, failed"
)]
pub struct ParseStatusError(pub String);

impl FromStr for MeetingStatus {
    type Err = ParseStatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MeetingStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| ParseStatusError(s.to_owned()))
    }
}

/// Why a meeting completed. The server rejects anything else (for example the real
/// bot's `removed_by_admin`) with 422.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletionReason {
    Stopped,
    ValidationError,
    AwaitingAdmissionTimeout,
    AwaitingAdmissionRejected,
    LeftAlone,
    Evicted,
}

impl CompletionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CompletionReason::Stopped => "stopped",
            CompletionReason::ValidationError => "validation_error",
            CompletionReason::AwaitingAdmissionTimeout => "awaiting_admission_timeout",
            CompletionReason::AwaitingAdmissionRejected => "awaiting_admission_rejected",
            CompletionReason::LeftAlone => "left_alone",
            CompletionReason::Evicted => "evicted",
        }
    }
}

impl fmt::Display for CompletionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The phase a bot was in when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureStage {
    Requested,
    Joining,
    AwaitingAdmission,
    Active,
}

impl FailureStage {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureStage::Requested => "requested",
            FailureStage::Joining => "joining",
            FailureStage::AwaitingAdmission => "awaiting_admission",
            FailureStage::Active => "active",
        }
    }
}

impl fmt::Display for FailureStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn terminal_statuses_allow_no_transition() {
        for to in MeetingStatus::ALL {
            assert!(!MeetingStatus::Completed.can_transition_to(to));
            assert!(!MeetingStatus::Failed.can_transition_to(to));
        }
    }

    #[rstest]
    #[case(MeetingStatus::Requested, MeetingStatus::Active, false)]
    #[case(MeetingStatus::Active, MeetingStatus::Joining, false)]
    #[case(MeetingStatus::Active, MeetingStatus::Completed, true)]
    #[case(MeetingStatus::Stopping, MeetingStatus::Active, false)]
    #[case(
        MeetingStatus::AwaitingAdmission,
        MeetingStatus::AwaitingAdmission,
        false
    )]
    #[case(MeetingStatus::Requested, MeetingStatus::Stopping, true)]
    fn status_machine_matches_protocol_table(
        #[case] from: MeetingStatus,
        #[case] to: MeetingStatus,
        #[case] allowed: bool,
    ) {
        assert_eq!(from.can_transition_to(to), allowed);
    }

    #[test]
    fn status_round_trips_through_its_text() {
        for status in MeetingStatus::ALL {
            assert_eq!(status.as_str().parse::<MeetingStatus>(), Ok(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert!("error".parse::<MeetingStatus>().is_err());
    }

    #[test]
    fn unknown_completion_reason_is_rejected() {
        assert!(serde_json::from_str::<CompletionReason>("\"removed_by_admin\"").is_err());
        assert_eq!(
            serde_json::from_str::<CompletionReason>("\"left_alone\"").unwrap(),
            CompletionReason::LeftAlone
        );
    }
}
