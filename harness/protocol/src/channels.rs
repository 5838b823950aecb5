//! Redis channel and key names, and the status event (protocol.md section 6).

use serde::{Deserialize, Serialize};

use crate::{MeetingStatus, Platform};

/// The legacy command channel of one bot session.
pub fn bot_commands_channel(connection_id: &str) -> String {
    format!("bot_commands:{connection_id}")
}

/// The meeting-scoped command channel of later versions.
pub fn meeting_commands_channel(meeting_id: i64) -> String {
    format!("bot_commands:meeting:{meeting_id}")
}

/// Where the service publishes a meeting's status changes.
pub fn status_channel(user_id: i64, platform: Platform, native_meeting_id: &str) -> String {
    format!("bm:meeting:{user_id}:{platform}:{native_meeting_id}:status")
}

/// Where later versions publish a meeting's status changes: the meeting row's id.
pub fn meeting_status_channel(meeting_id: i64) -> String {
    format!("bm:meeting:{meeting_id}:status")
}

/// The key holding the connectionId of the meeting's current bot session.
pub fn current_uid_key(platform: Platform, native_meeting_id: &str) -> String {
    format!("bm:meeting:{platform}:{native_meeting_id}:current_uid")
}

/// `{"type":"meeting.status","meeting":{"platform","native_id"},"payload":{"status"},"ts"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEvent {
    #[serde(rename = "type")]
    pub kind: String,
    pub meeting: StatusEventMeeting,
    pub payload: StatusEventPayload,
    pub ts: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEventMeeting {
    pub platform: Platform,
    pub native_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEventPayload {
    pub status: MeetingStatus,
}

impl StatusEvent {
    pub const KIND: &'static str = "meeting.status";

    pub fn new(platform: Platform, native_id: &str, status: MeetingStatus, ts: String) -> Self {
        StatusEvent {
            kind: Self::KIND.to_owned(),
            meeting: StatusEventMeeting {
                platform,
                native_id: native_id.to_owned(),
            },
            payload: StatusEventPayload { status },
            ts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_production() {
        assert_eq!(bot_commands_channel("u-1"), "bot_commands:u-1");
        assert_eq!(meeting_commands_channel(7), "bot_commands:meeting:7");
        assert_eq!(
            status_channel(3, Platform::GoogleMeet, "abc-defg-hij"),
            "bm:meeting:3:google_meet:abc-defg-hij:status"
        );
        assert_eq!(
            current_uid_key(Platform::Teams, "1234567890"),
            "bm:meeting:teams:1234567890:current_uid"
        );
    }

    #[test]
    fn later_status_channel_is_named_by_the_meeting_row() {
        assert_eq!(meeting_status_channel(42), "bm:meeting:42:status");
    }

    #[test]
    fn status_event_has_production_shape() {
        let ev = StatusEvent::new(
            Platform::Zoom,
            "123456789",
            MeetingStatus::Stopping,
            "t".into(),
        );
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"meeting.status","meeting":{"platform":"zoom","native_id":"123456789"},"payload":{"status":"stopping"},"ts":"t"})
        );
    }
}
