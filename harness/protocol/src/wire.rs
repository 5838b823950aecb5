//! How one version of the service speaks on Redis: where it publishes a leave and a
//! status, with which payload, and which key holds the meeting's current bot uid
//! (protocol.md sections 6 and 11). The incident's service and its later versions differ
//! here, so whoever judges "what was published" takes these from a [`Wire`], never from
//! constants: one catalogue then judges every version.
//!
//! Channels and keys are templates: literal text and placeholders `{uid}` (a bot's
//! connection id), `{meeting_id}` and `{user_id}` (digits), `{platform}` (a platform's
//! name) and `{native_id}` (the meeting's id on its platform). A placeholder never spans a
//! `:`, so `bot_commands:{uid}` does not read `bot_commands:meeting:7` as a uid.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Platform;

/// One version's Redis vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wire {
    /// Every channel a command (a leave) may be published on.
    pub command_channels: Vec<Template>,
    /// The fields every leave payload has, with their values (`{"action": "leave"}`).
    #[serde(default = "leave_fields")]
    pub leave: serde_json::Map<String, Value>,
    /// The payload field naming the meeting a command is for, when the service sends one
    /// (a bot ignores a command for another meeting).
    #[serde(default)]
    pub command_meeting_field: Option<String>,
    /// The `action`s of the other commands it sends on those channels; any other payload
    /// there is undeclared (a `leave` description that does not fit must not pass).
    #[serde(default = "other_commands")]
    pub other_commands: Vec<String>,
    /// Every channel a status may be published on.
    pub status_channels: Vec<Template>,
    /// Where the status sits in a status payload (a JSON pointer).
    #[serde(default = "status_pointer")]
    pub status_pointer: String,
    /// The key holding the meeting's current bot uid; none when the service writes none.
    #[serde(default)]
    pub current_uid_key: Option<Template>,
}

fn leave_fields() -> serde_json::Map<String, Value> {
    let mut fields = serde_json::Map::new();
    fields.insert("action".into(), Value::String("leave".into()));
    fields
}

fn other_commands() -> Vec<String> {
    vec!["reconfigure".into()]
}

fn status_pointer() -> String {
    "/payload/status".into()
}

impl Default for Wire {
    fn default() -> Self {
        Wire::reference()
    }
}

/// What a published message is, read through a [`Wire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// A leave, and what its channel and payload name.
    Leave(Captures),
    /// Another command on a command channel (a reconfigure).
    Command(Captures),
    /// A status, and what its channel names.
    Status { status: String, names: Captures },
    /// Nothing this version publishes.
    Undeclared,
}

impl Wire {
    /// The reference bot-manager: the incident's channels, plus the meeting channel its
    /// leave-routing fix uses (with `meeting_id` in the payload).
    pub fn reference() -> Wire {
        Wire {
            command_channels: vec![
                Template::parse("bot_commands:{uid}").expect("valid"),
                Template::parse("bot_commands:meeting:{meeting_id}").expect("valid"),
            ],
            leave: leave_fields(),
            command_meeting_field: Some("meeting_id".into()),
            other_commands: other_commands(),
            status_channels: vec![
                Template::parse("bm:meeting:{user_id}:{platform}:{native_id}:status")
                    .expect("valid"),
            ],
            status_pointer: status_pointer(),
            current_uid_key: Some(
                Template::parse("bm:meeting:{platform}:{native_id}:current_uid").expect("valid"),
            ),
        }
    }

    /// Checks what serde cannot: each channel names what it addresses, the pointer is one.
    pub fn validate(&self) -> Result<(), WireError> {
        if self.command_channels.is_empty() {
            return Err(WireError::Missing("command_channels"));
        }
        if self.status_channels.is_empty() {
            return Err(WireError::Missing("status_channels"));
        }
        for t in &self.command_channels {
            if !(t.has(Slot::Uid) || t.has(Slot::MeetingId)) {
                return Err(WireError::Unaddressed {
                    template: t.to_string(),
                    needs: "{uid} or {meeting_id}",
                });
            }
        }
        let names_meeting = |t: &Template| {
            t.has(Slot::MeetingId) || (t.has(Slot::Platform) && t.has(Slot::NativeId))
        };
        for t in self.status_channels.iter().chain(&self.current_uid_key) {
            if !names_meeting(t) {
                return Err(WireError::Unaddressed {
                    template: t.to_string(),
                    needs: "{meeting_id}, or {platform} and {native_id}",
                });
            }
        }
        // The harness fills the key's placeholders from the meeting row alone.
        if let Some(t) = &self.current_uid_key
            && (t.has(Slot::Uid) || t.has(Slot::UserId))
        {
            return Err(WireError::Unaddressed {
                template: t.to_string(),
                needs: "only {meeting_id}, {platform} and {native_id}",
            });
        }
        for t in &self.status_channels {
            if self.command_channels.contains(t) {
                return Err(WireError::Overlap(t.to_string()));
            }
        }
        if !self.status_pointer.is_empty() && !self.status_pointer.starts_with('/') {
            return Err(WireError::Pointer(self.status_pointer.clone()));
        }
        if self.leave.is_empty() {
            return Err(WireError::Missing("leave"));
        }
        Ok(())
    }

    /// Reads one published message (its payload as JSON, or as text holding JSON).
    pub fn read(&self, channel: &str, payload: &Value) -> Published {
        let parsed;
        let payload = match payload {
            Value::String(text) => {
                parsed = serde_json::from_str(text).unwrap_or(Value::Null);
                &parsed
            }
            other => other,
        };
        if let Some(mut names) = self
            .command_channels
            .iter()
            .find_map(|t| t.capture(channel))
        {
            if let Some(field) = &self.command_meeting_field
                && let Some(id) = as_id(payload.get(field))
            {
                // The payload's meeting is the one the bot checks; the channel's, if it
                // names one too, must agree for the command to reach that bot.
                names.payload_meeting_id = Some(id);
            }
            let is_leave = self
                .leave
                .iter()
                .all(|(k, v)| payload.get(k).is_some_and(|got| got == v));
            let action = payload.get("action").and_then(Value::as_str);
            return if is_leave {
                Published::Leave(names)
            } else if action.is_some_and(|a| self.other_commands.iter().any(|c| c == a)) {
                Published::Command(names)
            } else {
                Published::Undeclared
            };
        }
        if let Some(names) = self.status_channels.iter().find_map(|t| t.capture(channel)) {
            return match payload
                .pointer(&self.status_pointer)
                .and_then(Value::as_str)
            {
                Some(status) => Published::Status {
                    status: status.to_owned(),
                    names,
                },
                None => Published::Undeclared,
            };
        }
        Published::Undeclared
    }

    /// The current-uid key of a meeting, if this version writes one.
    pub fn current_uid_key(
        &self,
        meeting_id: i64,
        platform: Platform,
        native_id: &str,
    ) -> Option<String> {
        let template = self.current_uid_key.as_ref()?;
        Some(template.render(&Captures {
            meeting_id: Some(meeting_id),
            platform: Some(platform.to_string()),
            native_id: Some(native_id.to_owned()),
            ..Captures::default()
        }))
    }
}

fn as_id(v: Option<&Value>) -> Option<i64> {
    v.and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
}

/// What a channel's placeholders held (and a command payload's meeting field).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captures {
    pub uid: Option<String>,
    pub meeting_id: Option<i64>,
    pub user_id: Option<i64>,
    pub platform: Option<String>,
    pub native_id: Option<String>,
    /// The meeting a command's payload names (`command_meeting_field`).
    pub payload_meeting_id: Option<i64>,
}

impl Captures {
    /// The meeting key (platform, native id), when the channel names it.
    pub fn key(&self) -> Option<(String, String)> {
        Some((self.platform.clone()?, self.native_id.clone()?))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Uid,
    MeetingId,
    UserId,
    Platform,
    NativeId,
}

impl Slot {
    const ALL: [Slot; 5] = [
        Slot::Uid,
        Slot::MeetingId,
        Slot::UserId,
        Slot::Platform,
        Slot::NativeId,
    ];

    fn name(self) -> &'static str {
        match self {
            Slot::Uid => "uid",
            Slot::MeetingId => "meeting_id",
            Slot::UserId => "user_id",
            Slot::Platform => "platform",
            Slot::NativeId => "native_id",
        }
    }

    fn accepts(self, text: &str) -> bool {
        !text.is_empty()
            && !text.contains(':')
            && match self {
                Slot::MeetingId | Slot::UserId => text.bytes().all(|b| b.is_ascii_digit()),
                Slot::Platform => text.parse::<Platform>().is_ok(),
                Slot::Uid | Slot::NativeId => true,
            }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Slot(Slot),
}

/// A channel or key name with placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("read template {template:?}: {problem}")]
    Template { template: String, problem: String },
    #[error("read the protocol: `{0}` must not be empty")]
    Missing(&'static str),
    #[error("read the protocol: {template:?} must name {needs}")]
    Unaddressed {
        template: String,
        needs: &'static str,
    },
    #[error("read the protocol: status_pointer {0:?} is not a JSON pointer (it starts with `/`)")]
    Pointer(String),
    #[error("read the protocol: {0:?} is both a command and a status channel")]
    Overlap(String),
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, WireError> {
        let bad = |problem: String| WireError::Template {
            template: text.to_owned(),
            problem,
        };
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest
                        .find('}')
                        .ok_or_else(|| bad("a `{` is never closed".into()))?;
                    let name = &rest[1..end];
                    let slot = Slot::ALL
                        .into_iter()
                        .find(|s| s.name() == name)
                        .ok_or_else(|| {
                            bad(format!(
                                "unknown placeholder {{{name}}} (known: {})",
                                Slot::ALL.map(|s| format!("{{{}}}", s.name())).join(", ")
                            ))
                        })?;
                    if matches!(parts.last(), Some(Part::Slot(_))) {
                        return Err(bad(
                            "two placeholders must be separated by literal text".into()
                        ));
                    }
                    if parts.contains(&Part::Slot(slot)) {
                        return Err(bad(format!("{{{name}}} appears twice")));
                    }
                    parts.push(Part::Slot(slot));
                    rest = &rest[end + 1..];
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    if rest[..end].contains('}') {
                        return Err(bad("a `}` without its `{`".into()));
                    }
                    parts.push(Part::Text(rest[..end].to_owned()));
                    rest = &rest[end..];
                }
            }
        }
        if parts.is_empty() {
            return Err(bad("it is empty".into()));
        }
        Ok(Template { parts })
    }

    fn has(&self, slot: Slot) -> bool {
        self.parts.contains(&Part::Slot(slot))
    }

    /// What the placeholders hold, if `name` is an instance of this template.
    pub fn capture(&self, name: &str) -> Option<Captures> {
        let mut captures = Captures::default();
        let mut rest = name;
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Part::Text(text) => rest = rest.strip_prefix(text.as_str())?,
                Part::Slot(slot) => {
                    // A slot runs to the next literal's first occurrence (slots hold no
                    // `:`, and literals between slots hold one in every template worth
                    // writing) or to the end.
                    let end = match self.parts.get(i + 1) {
                        Some(Part::Text(next)) => rest.find(next.as_str())?,
                        _ => rest.len(),
                    };
                    let value = &rest[..end];
                    if !slot.accepts(value) {
                        return None;
                    }
                    match slot {
                        Slot::Uid => captures.uid = Some(value.to_owned()),
                        Slot::MeetingId => captures.meeting_id = value.parse().ok(),
                        Slot::UserId => captures.user_id = value.parse().ok(),
                        Slot::Platform => captures.platform = Some(value.to_owned()),
                        Slot::NativeId => captures.native_id = Some(value.to_owned()),
                    }
                    rest = &rest[end..];
                }
            }
        }
        rest.is_empty().then_some(captures)
    }

    /// The name with the placeholders filled (an unknown one left as written).
    pub fn render(&self, with: &Captures) -> String {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.clone(),
                Part::Slot(slot) => {
                    let value = match slot {
                        Slot::Uid => with.uid.clone(),
                        Slot::MeetingId => with.meeting_id.map(|v| v.to_string()),
                        Slot::UserId => with.user_id.map(|v| v.to_string()),
                        Slot::Platform => with.platform.clone(),
                        Slot::NativeId => with.native_id.clone(),
                    };
                    value.unwrap_or_else(|| format!("{{{}}}", slot.name()))
                }
            })
            .collect()
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Text(text) => f.write_str(text)?,
                Part::Slot(slot) => write!(f, "{{{}}}", slot.name())?,
            }
        }
        Ok(())
    }
}

impl Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Template::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn later() -> Wire {
        Wire {
            command_channels: vec![Template::parse("bot_commands:meeting:{meeting_id}").unwrap()],
            leave: leave_fields(),
            command_meeting_field: Some("meeting_id".into()),
            other_commands: other_commands(),
            status_channels: vec![Template::parse("bm:meeting:{meeting_id}:status").unwrap()],
            status_pointer: status_pointer(),
            current_uid_key: None,
        }
    }

    #[test]
    fn the_reference_reads_a_leave_on_a_uid_channel_as_that_uids() {
        let got = Wire::reference().read("bot_commands:6f1c-2d", &json!(r#"{"action":"leave"}"#));
        let Published::Leave(names) = got else {
            panic!("not a leave: {got:?}")
        };
        assert_eq!(names.uid.as_deref(), Some("6f1c-2d"));
        assert_eq!(names.meeting_id, None);
    }

    #[test]
    fn a_uid_placeholder_never_swallows_the_meeting_channel() {
        let got = Wire::reference().read(
            "bot_commands:meeting:7",
            &json!({"action": "leave", "meeting_id": 7}),
        );
        let Published::Leave(names) = got else {
            panic!("not a leave: {got:?}")
        };
        assert_eq!((names.uid, names.meeting_id), (None, Some(7)));
        assert_eq!(names.payload_meeting_id, Some(7));
    }

    #[test]
    fn a_reconfigure_is_a_command_but_not_a_leave() {
        let got = Wire::reference().read("bot_commands:u1", &json!({"action": "reconfigure"}));
        assert!(matches!(got, Published::Command(_)), "{got:?}");
    }

    #[test]
    fn a_command_that_is_neither_its_leave_nor_a_declared_command_is_undeclared() {
        // A description whose leave does not fit the service read every real leave as
        // "another command", and the leave checker saw nothing to judge.
        let mut wire = Wire::reference();
        wire.leave = serde_json::from_value(json!({"action": "stop"})).unwrap();
        assert_eq!(
            wire.read("bot_commands:u1", &json!({"action": "leave"})),
            Published::Undeclared
        );
        assert_eq!(
            Wire::reference().read("bot_commands:u1", &json!("not json")),
            Published::Undeclared
        );
    }

    #[test]
    fn a_channel_both_command_and_status_or_a_key_naming_a_uid_is_refused() {
        let mut wire = later();
        wire.status_channels = wire.command_channels.clone();
        assert!(
            wire.validate()
                .unwrap_err()
                .to_string()
                .contains("both a command and a status")
        );
        let mut wire = later();
        wire.current_uid_key =
            Some(Template::parse("bm:{user_id}:{platform}:{native_id}:uid").unwrap());
        assert!(
            wire.validate()
                .unwrap_err()
                .to_string()
                .contains("only {meeting_id}")
        );
    }

    #[test]
    fn an_incident_era_status_names_the_meeting_key() {
        let got = Wire::reference().read(
            "bm:meeting:3:google_meet:abc-defg-hij:status",
            &json!({"type": "meeting.status", "payload": {"status": "stopping"}}),
        );
        let Published::Status { status, names } = got else {
            panic!("not a status: {got:?}")
        };
        assert_eq!(status, "stopping");
        assert_eq!(names.user_id, Some(3));
        assert_eq!(
            names.key(),
            Some(("google_meet".into(), "abc-defg-hij".into()))
        );
    }

    #[test]
    fn a_later_version_status_names_the_row_and_the_incident_channel_is_undeclared() {
        let payload = json!({"payload": {"status": "active"}});
        let got = later().read("bm:meeting:12:status", &payload);
        assert!(
            matches!(&got, Published::Status { status, names } if status == "active" && names.meeting_id == Some(12)),
            "{got:?}"
        );
        assert_eq!(
            later().read("bm:meeting:1:google_meet:abc-defg-hij:status", &payload),
            Published::Undeclared
        );
        assert_eq!(
            later().read("bot_commands:6f1c", &json!({"action": "leave"})),
            Published::Undeclared
        );
    }

    #[test]
    fn a_status_channel_whose_payload_lacks_the_status_is_undeclared() {
        let got = Wire::reference().read(
            "bm:meeting:3:zoom:123:status",
            &json!({"payload": {"state": "active"}}),
        );
        assert_eq!(got, Published::Undeclared);
    }

    #[test]
    fn a_platform_placeholder_takes_only_a_platform() {
        let t = Template::parse("bm:meeting:{platform}:{native_id}:current_uid").unwrap();
        assert!(t.capture("bm:meeting:skype:1:current_uid").is_none());
        assert!(t.capture("bm:meeting:teams:1:current_uid").is_some());
    }

    #[test]
    fn the_current_uid_key_renders_only_where_the_version_has_one() {
        assert_eq!(
            Wire::reference()
                .current_uid_key(4, Platform::GoogleMeet, "abc-defg-hij")
                .as_deref(),
            Some("bm:meeting:google_meet:abc-defg-hij:current_uid")
        );
        assert_eq!(later().current_uid_key(4, Platform::Zoom, "1"), None);
    }

    #[test]
    fn templates_name_what_is_wrong_with_them() {
        for (text, problem) in [
            (
                "bot_commands:{connection}",
                "unknown placeholder {connection}",
            ),
            ("bot_commands:{uid", "never closed"),
            ("a:{platform}{native_id}", "separated by literal text"),
            ("{uid}:{uid}", "appears twice"),
            ("a}b", "without its `{`"),
            ("", "empty"),
        ] {
            let err = Template::parse(text).unwrap_err().to_string();
            assert!(err.contains(problem), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_wire_whose_channels_name_no_meeting_is_refused() {
        let mut wire = later();
        wire.status_channels = vec![Template::parse("bm:{user_id}:status").unwrap()];
        let err = wire.validate().unwrap_err().to_string();
        assert!(err.contains("bm:{user_id}:status"), "{err}");
        assert!(Wire::reference().validate().is_ok());
        assert!(later().validate().is_ok());
    }

    #[test]
    fn a_wire_round_trips_through_serde() {
        let text = serde_json::to_string(&later()).unwrap();
        assert_eq!(serde_json::from_str::<Wire>(&text).unwrap(), later());
    }
}
