//! What the runner knows about the run so far, read from the history itself: which rows
//! and containers belong to which scenario meeting, and whether a condition happened.

use crate::history::{Event, EventKind, MeetingLabel};
use crate::scenario::Condition;

/// The scenario's meeting labels and the native ids they got in this run.
pub struct Labels(pub Vec<MeetingLabel>);

impl Labels {
    pub fn native_id(&self, label: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|m| m.label == label)
            .map(|m| m.native_meeting_id.as_str())
    }

    /// Every meeting row created for a label so far, oldest first.
    pub fn meeting_ids(&self, label: &str, events: &[Event]) -> Vec<i64> {
        let Some(native) = self.native_id(label) else {
            return Vec::new();
        };
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::MeetingInserted {
                    meeting_id,
                    native_meeting_id,
                    ..
                } if native_meeting_id == native => Some(*meeting_id),
                _ => None,
            })
            .collect()
    }

    /// The latest container started for a label's meetings.
    pub fn container(&self, label: &str, events: &[Event]) -> Option<String> {
        let ids = self.meeting_ids(label, events);
        events.iter().rev().find_map(|e| match &e.kind {
            EventKind::Container {
                name,
                meeting_id: Some(id),
                ..
            } if ids.contains(id) => Some(name.clone()),
            _ => None,
        })
    }

    /// The connection uid the label's live bot uses: the latest one its bot logged.
    pub fn bot_uid(&self, label: &str, events: &[Event]) -> Option<String> {
        let ids = self.meeting_ids(label, events);
        events.iter().rev().find_map(|e| match &e.kind {
            EventKind::Bot {
                meeting_id: Some(id),
                uid: Some(uid),
                ..
            } if ids.contains(id) => Some(uid.clone()),
            _ => None,
        })
    }

    /// Whether `condition` holds in `events` (all of the run's events so far).
    pub fn happened(&self, condition: &Condition, events: &[Event]) -> bool {
        match condition {
            Condition::AfterStep { step } => events.iter().any(|e| {
                matches!(&e.kind, EventKind::Step { name, outcome, .. } if name == step && outcome != "not_triggered")
            }),
            Condition::Status { meeting, status } => {
                let ids = self.meeting_ids(meeting, events);
                events.iter().any(|e| match &e.kind {
                    EventKind::StatusStored { meeting_id, to, .. } => ids.contains(meeting_id) && to == status,
                    EventKind::MeetingInserted {
                        meeting_id,
                        status: s,
                        ..
                    } => ids.contains(meeting_id) && s == status,
                    _ => false,
                })
            }
            Condition::Container { meeting, died } => {
                let ids = self.meeting_ids(meeting, events);
                let action = if *died { "die" } else { "start" };
                events.iter().any(|e| {
                    matches!(&e.kind, EventKind::Container { meeting_id: Some(id), action: a, .. } if ids.contains(id) && a == action)
                })
            }
            Condition::Sessions { meeting, count } => {
                let ids = self.meeting_ids(meeting, events);
                let stored = events
                    .iter()
                    .filter(|e| matches!(&e.kind, EventKind::SessionStored { meeting_id, .. } if ids.contains(meeting_id)))
                    .count();
                stored >= *count as usize
            }
            Condition::BotEvent { meeting, event } => {
                let ids = self.meeting_ids(meeting, events);
                events.iter().any(|e| {
                    matches!(&e.kind, EventKind::Bot { meeting_id: Some(id), event: ev, .. } if ids.contains(id) && ev == event)
                })
            }
            Condition::Published { meeting, what } => {
                let wire = crate::history::wire_of(events);
                let native = self.native_id(meeting).unwrap_or_default();
                let uids = self.uids(meeting, events);
                let ids = self.meeting_ids(meeting, events);
                let ours = |names: &protocol::wire::Captures| {
                    names.uid.as_ref().is_some_and(|u| uids.contains(u))
                        || names.meeting_id.is_some_and(|id| ids.contains(&id))
                        || names.native_id.as_deref() == Some(native)
                };
                events.iter().any(|e| match &e.kind {
                    EventKind::Published { channel, payload } => {
                        match wire.read(channel, payload) {
                            protocol::Published::Leave(names)
                            | protocol::Published::Command(names) => {
                                ours(&names) && payload["action"] == *what
                            }
                            protocol::Published::Status { status, names } => {
                                ours(&names) && status == *what
                            }
                            protocol::Published::Undeclared => false,
                        }
                    }
                    _ => false,
                })
            }
        }
    }

    /// Every uid seen for a label's meetings: session rows and the bots' own uids.
    fn uids(&self, label: &str, events: &[Event]) -> Vec<String> {
        let ids = self.meeting_ids(label, events);
        events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::SessionStored {
                    meeting_id,
                    session_uid,
                    ..
                } if ids.contains(meeting_id) => Some(session_uid.clone()),
                EventKind::Bot {
                    meeting_id: Some(id),
                    uid: Some(uid),
                    ..
                } if ids.contains(id) => Some(uid.clone()),
                _ => None,
            })
            .collect()
    }
}
