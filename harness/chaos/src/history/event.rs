//! The run's history: one ordered, timestamped log of everything observed. Saved as JSON
//! lines (`history.jsonl`), one [`Event`] per line, ordered by `at_us` then `seq`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One observation. `at_us` is microseconds since the run started, on the machine's
/// wall clock (every source, including Postgres' `clock_timestamp()` and the bots' own
/// event logs, reads the same clock).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub at_us: i64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Who an event belongs to: the lanes of the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    Harness,
    Client,
    Service,
    Redis,
    Database,
    Container,
    Bot,
    Fault,
}

/// How an HTTP exchange ended, as Jepsen classifies operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpPhase {
    /// The request is about to be sent.
    Invoke,
    /// An answer arrived (any status code).
    Ok,
    /// It certainly did not happen (connection refused before sending).
    Fail,
    /// Unknown: timed out or broke after sending; it may or may not have happened.
    Info,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultPhase {
    Applied,
    Healed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The run started: what ran, under which profile and seed.
    RunStarted {
        scenario: String,
        profile: String,
        seed: u64,
        /// Scenario meeting label -> native meeting id used in this run.
        meetings: Vec<MeetingLabel>,
        /// How the service under test speaks on Redis (its adapter's `[protocol]`): the
        /// checkers read what was published through it. Histories from before it was
        /// recorded were all the reference's.
        #[serde(default, skip_serializing_if = "is_reference_wire")]
        wire: Box<protocol::Wire>,
    },
    /// A scenario step fired (or could not: `outcome` says).
    Step {
        name: String,
        action: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        meeting: Option<String>,
        outcome: String,
    },
    /// One HTTP exchange with the service, in two events: `invoke`, then `ok`, `fail` or
    /// `info`, sharing `op`.
    Http {
        op: u64,
        phase: HttpPhase,
        method: String,
        path: String,
        /// The scenario meeting label this request is about, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        meeting: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Who sent it, when not the meeting's own user: `bot` (the harness speaking as
        /// the meeting's own bot, with its credentials), `attacker` (no credentials) or
        /// `bot:<label>` (another meeting's bot, with that bot's credentials).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// A message seen on Redis (the recorder PSUBSCRIBEs to everything).
    Published {
        channel: String,
        /// Parsed JSON when the payload is JSON, else the text.
        payload: Value,
    },
    /// The recorder's own subscription broke: messages may be missing from here on.
    RecorderGap { source: String, detail: String },
    /// A `meetings` row was inserted (trigger + NOTIFY).
    MeetingInserted {
        meeting_id: i64,
        platform: String,
        native_meeting_id: String,
        status: String,
    },
    /// A `meetings` row changed status (trigger + NOTIFY): every stored status change.
    StatusStored {
        meeting_id: i64,
        from: String,
        to: String,
        /// Length of `data.status_transition` after the change.
        audit_len: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        completion_reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure_stage: Option<String>,
        stop_requested: bool,
        /// The row's container after the change (recorded since the attacker scenarios).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bot_container_id: Option<String>,
    },
    /// A `meetings` row changed without a status change (data, container id, ...).
    MeetingUpdated {
        meeting_id: i64,
        status: String,
        audit_len: usize,
        stop_requested: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bot_container_id: Option<String>,
    },
    /// A row disappeared from `meetings` or `meeting_sessions`.
    RowDeleted {
        table: String,
        meeting_id: i64,
        detail: Value,
    },
    /// A `meeting_sessions` row was inserted.
    SessionStored {
        meeting_id: i64,
        session_uid: String,
        session_start_time: String,
    },
    /// A container event from the runtime (Docker `/events`).
    Container {
        action: String,
        container_id: String,
        name: String,
        /// The meeting id encoded in the container name (`vexa-bot-{id}-{hex}`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        meeting_id: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i64>,
    },
    /// A line of a bot's own event log.
    Bot {
        container: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        meeting_id: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<String>,
        event: String,
        #[serde(default)]
        fields: Value,
    },
    /// A fault applied or healed.
    Fault {
        name: String,
        phase: FaultPhase,
        target: String,
        #[serde(default)]
        detail: Value,
    },
    /// The state at the end of the run, read once everything was quiet.
    Final(FinalState),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingLabel {
    pub label: String,
    pub platform: String,
    pub native_meeting_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalState {
    pub meetings: Vec<FinalMeeting>,
    pub sessions: Vec<FinalSession>,
    pub containers: Vec<FinalContainer>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalMeeting {
    pub id: i64,
    pub platform: String,
    pub native_meeting_id: String,
    pub status: String,
    pub bot_container_id: Option<String>,
    pub data: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalSession {
    pub meeting_id: i64,
    pub session_uid: String,
}

/// A container as the runtime's control API lists it at the end (forgotten ones too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalContainer {
    pub id: String,
    pub name: String,
    pub meeting_id: Option<i64>,
    /// `running`, `paused`, `exited`, `created`, ...
    pub state: String,
    pub exit_code: Option<i64>,
    pub forgotten: bool,
}

impl EventKind {
    pub fn actor(&self) -> Actor {
        match self {
            EventKind::RunStarted { .. } | EventKind::Step { .. } | EventKind::Final(_) => {
                Actor::Harness
            }
            EventKind::Http { .. } => Actor::Client,
            // Seen on Redis; which publishes are the service's commands is its wire's to say.
            EventKind::Published { .. } | EventKind::RecorderGap { .. } => Actor::Redis,
            EventKind::MeetingInserted { .. }
            | EventKind::StatusStored { .. }
            | EventKind::MeetingUpdated { .. }
            | EventKind::RowDeleted { .. }
            | EventKind::SessionStored { .. } => Actor::Database,
            EventKind::Container { .. } => Actor::Container,
            EventKind::Bot { .. } => Actor::Bot,
            EventKind::Fault { .. } => Actor::Fault,
        }
    }

    /// The `type` tag as serialised.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::RunStarted { .. } => "run_started",
            EventKind::Step { .. } => "step",
            EventKind::Http { .. } => "http",
            EventKind::Published { .. } => "published",
            EventKind::RecorderGap { .. } => "recorder_gap",
            EventKind::MeetingInserted { .. } => "meeting_inserted",
            EventKind::StatusStored { .. } => "status_stored",
            EventKind::MeetingUpdated { .. } => "meeting_updated",
            EventKind::RowDeleted { .. } => "row_deleted",
            EventKind::SessionStored { .. } => "session_stored",
            EventKind::Container { .. } => "container",
            EventKind::Bot { .. } => "bot",
            EventKind::Fault { .. } => "fault",
            EventKind::Final(_) => "final",
        }
    }
}

/// A whole history, ordered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub events: Vec<Event>,
}

impl History {
    pub fn new(mut events: Vec<Event>) -> Self {
        events.sort_by_key(|e| (e.at_us, e.seq));
        History { events }
    }

    pub fn final_state(&self) -> Option<&FinalState> {
        self.events.iter().rev().find_map(|e| match &e.kind {
            EventKind::Final(state) => Some(state),
            _ => None,
        })
    }

    /// When the run ended: the last event's time.
    pub fn end_us(&self) -> i64 {
        self.events.last().map_or(0, |e| e.at_us)
    }

    /// How the service under test spoke on Redis (the reference's when not recorded).
    pub fn wire(&self) -> protocol::Wire {
        wire_of(&self.events)
    }

    pub fn meeting_labels(&self) -> Vec<MeetingLabel> {
        self.events
            .iter()
            .find_map(|e| match &e.kind {
                EventKind::RunStarted { meetings, .. } => Some(meetings.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// Parses `history.jsonl`; a bad line is an error naming its number.
    pub fn from_jsonl(text: &str) -> Result<Self, HistoryError> {
        let mut events = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let event = serde_json::from_str(line).map_err(|source| HistoryError::Line {
                line: n + 1,
                source,
            })?;
            events.push(event);
        }
        Ok(History::new(events))
    }

    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for e in &self.events {
            out.push_str(&serde_json::to_string(e).expect("events serialise"));
            out.push('\n');
        }
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("parse history line {line}: {source}")]
    Line {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// `vexa-bot-{meeting_id}-{hex8}` -> meeting id.
pub fn meeting_id_from_container_name(name: &str) -> Option<i64> {
    let rest = name.trim_start_matches('/').strip_prefix("vexa-bot-")?;
    let (id, _) = rest.rsplit_once('-')?;
    id.parse().ok()
}

/// The wire `events` were recorded under: their `run_started`'s (the reference's when
/// none says).
pub fn wire_of(events: &[Event]) -> protocol::Wire {
    events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::RunStarted { wire, .. } => Some((**wire).clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn is_reference_wire(wire: &protocol::Wire) -> bool {
    *wire == protocol::Wire::reference()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_round_trip_through_jsonl() {
        let history = History::new(vec![
            Event {
                seq: 1,
                at_us: 20,
                kind: EventKind::StatusStored {
                    meeting_id: 1,
                    from: "active".into(),
                    to: "completed".into(),
                    audit_len: 4,
                    completion_reason: Some("stopped".into()),
                    failure_stage: None,
                    stop_requested: false,
                    bot_container_id: None,
                },
            },
            Event {
                seq: 0,
                at_us: 10,
                kind: EventKind::Published {
                    channel: "bot_commands:x".into(),
                    payload: json!({"action": "leave"}),
                },
            },
        ]);
        assert_eq!(history.events[0].seq, 0, "ordered by time");
        let parsed = History::from_jsonl(&history.to_jsonl()).unwrap();
        assert_eq!(parsed, history);
        assert!(history.to_jsonl().contains("\"type\":\"status_stored\""));
    }

    #[test]
    fn bad_history_line_is_named() {
        let err = History::from_jsonl("\n{\"seq\":1}\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn container_names_carry_meeting_ids() {
        assert_eq!(
            meeting_id_from_container_name("/vexa-bot-12-deadbeef"),
            Some(12)
        );
        assert_eq!(meeting_id_from_container_name("other"), None);
    }
}
