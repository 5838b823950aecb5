//! A small builder of hand-written histories for the checkers' tests.
//!
//! Times are milliseconds since the run started; meeting `n` has the container
//! `c{n}` named `vexa-bot-{n}-0000abcd`, and its bot logs under that name.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::check::CheckConfig;
use crate::history::{
    Event, EventKind, FaultPhase, FinalContainer, FinalMeeting, FinalSession, FinalState, History,
    HttpPhase, MeetingLabel,
};

pub const PLATFORM: &str = "google_meet";

/// Grace 1 s, deadline 5 s.
pub fn config() -> CheckConfig {
    CheckConfig {
        grace_us: 1_000_000,
        deadline_us: 5_000_000,
    }
}

pub fn container_name(meeting: i64) -> String {
    format!("vexa-bot-{meeting}-0000abcd")
}

#[derive(Default)]
pub struct H {
    now_us: i64,
    labels: Vec<MeetingLabel>,
    events: Vec<Event>,
    op: u64,
    /// Machine status changes stored so far, per meeting.
    stored: HashMap<i64, usize>,
    final_state: Option<FinalState>,
    /// How the service speaks on Redis (the reference's unless [`H::wire`] says).
    wire: protocol::Wire,
}

/// A later production version's wire (protocol.md section 11): meeting-scoped command
/// and status channels, `meeting_id` in commands, no current-uid key.
pub fn later_wire() -> protocol::Wire {
    serde_json::from_value(serde_json::json!({
        "command_channels": ["bot_commands:meeting:{meeting_id}"],
        "command_meeting_field": "meeting_id",
        "status_channels": ["bm:meeting:{meeting_id}:status"],
    }))
    .expect("a valid wire")
}

impl H {
    pub fn new() -> Self {
        H::default()
    }

    pub fn at(mut self, ms: i64) -> Self {
        self.now_us = ms * 1000;
        self
    }

    pub fn push(mut self, kind: EventKind) -> Self {
        self.events.push(Event {
            seq: self.events.len() as u64 + 1,
            at_us: self.now_us,
            kind,
        });
        self
    }

    /// A scenario meeting label on the platform [`PLATFORM`].
    pub fn label(mut self, label: &str, native: &str) -> Self {
        self.labels.push(MeetingLabel {
            label: label.into(),
            platform: PLATFORM.into(),
            native_meeting_id: native.into(),
        });
        self
    }

    pub fn insert(self, id: i64, native: &str, status: &str) -> Self {
        self.push(EventKind::MeetingInserted {
            meeting_id: id,
            platform: PLATFORM.into(),
            native_meeting_id: native.into(),
            status: status.into(),
        })
    }

    /// A stored change with a consistent audit length and the reason a terminal row
    /// carries.
    pub fn status(mut self, id: i64, from: &str, to: &str) -> Self {
        let machine = from.parse::<protocol::MeetingStatus>().is_ok()
            && to.parse::<protocol::MeetingStatus>().is_ok();
        let count = self.stored.entry(id).or_default();
        if machine {
            *count += 1;
        }
        let audit_len = *count;
        self.status_audit(id, from, to, audit_len)
    }

    /// A stored change reporting `audit_len` entries in the audit list.
    pub fn status_audit(self, id: i64, from: &str, to: &str, audit_len: usize) -> Self {
        self.push(EventKind::StatusStored {
            meeting_id: id,
            from: from.into(),
            to: to.into(),
            audit_len,
            completion_reason: (to == "completed").then(|| "stopped".into()),
            failure_stage: (to == "failed").then(|| "active".into()),
            stop_requested: false,
            bot_container_id: None,
        })
    }

    pub fn updated(self, id: i64, status: &str, audit_len: usize) -> Self {
        self.push(EventKind::MeetingUpdated {
            meeting_id: id,
            status: status.into(),
            audit_len,
            stop_requested: false,
            bot_container_id: None,
        })
    }

    pub fn session(self, id: i64, uid: &str) -> Self {
        self.push(EventKind::SessionStored {
            meeting_id: id,
            session_uid: uid.into(),
            session_start_time: "2024-01-01T00:00:00.000Z".into(),
        })
    }

    pub fn row_deleted(self, id: i64) -> Self {
        self.push(EventKind::RowDeleted {
            table: "meetings".into(),
            meeting_id: id,
            detail: Value::Null,
        })
    }

    /// `DELETE /bots/...` about `label`, invoked and answered `status` at this instant.
    pub fn delete(self, label: &str, status: u16) -> Self {
        self.request("DELETE", label, status)
    }

    /// A request with any method about `label`, invoked and answered `status` at this
    /// instant.
    pub fn request(mut self, method: &str, label: &str, status: u16) -> Self {
        self.op += 1;
        let op = self.op;
        let http = |phase, status| EventKind::Http {
            op,
            phase,
            method: method.into(),
            path: format!("/bots/{PLATFORM}/{label}"),
            meeting: Some(label.into()),
            status,
            body: None,
            error: None,
            by: None,
        };
        self.push(http(HttpPhase::Invoke, None))
            .push(http(HttpPhase::Ok, Some(status)))
    }

    pub fn delete_accepted(self, label: &str) -> Self {
        self.delete(label, 202)
    }

    /// `DELETE` invoked now; the answer comes with [`H::answered`].
    pub fn delete_invoked(mut self, label: &str) -> Self {
        self.op += 1;
        let op = self.op;
        self.push(EventKind::Http {
            op,
            phase: HttpPhase::Invoke,
            method: "DELETE".into(),
            path: format!("/bots/{PLATFORM}/{label}"),
            meeting: Some(label.into()),
            status: None,
            body: None,
            error: None,
            by: None,
        })
    }

    pub fn answered(self, label: &str, status: u16) -> Self {
        let op = self.op;
        self.push(EventKind::Http {
            op,
            phase: HttpPhase::Ok,
            method: "DELETE".into(),
            path: format!("/bots/{PLATFORM}/{label}"),
            meeting: Some(label.into()),
            status: Some(status),
            body: None,
            error: None,
            by: None,
        })
    }

    pub fn container(self, meeting: i64, action: &str) -> Self {
        self.push(EventKind::Container {
            action: action.into(),
            container_id: format!("c{meeting}"),
            name: container_name(meeting),
            meeting_id: Some(meeting),
            exit_code: (action == "die").then_some(137),
        })
    }

    /// A container event under any id and name (a second container of one meeting, a
    /// long Docker id).
    pub fn container_as(self, meeting: i64, id: &str, name: &str, action: &str) -> Self {
        self.push(EventKind::Container {
            action: action.into(),
            container_id: id.into(),
            name: name.into(),
            meeting_id: Some(meeting),
            exit_code: (action == "die").then_some(137),
        })
    }

    pub fn start(self, meeting: i64) -> Self {
        self.container(meeting, "create")
            .container(meeting, "start")
    }

    pub fn die(self, meeting: i64) -> Self {
        self.container(meeting, "die")
    }

    pub fn bot(self, meeting: i64, uid: &str, event: &str, fields: Value) -> Self {
        self.push(EventKind::Bot {
            container: container_name(meeting),
            meeting_id: Some(meeting),
            uid: Some(uid.into()),
            event: event.into(),
            fields,
        })
    }

    /// A bot line under any container reference, with or without a meeting id.
    pub fn bot_as(
        self,
        container: &str,
        meeting: Option<i64>,
        uid: &str,
        event: &str,
        fields: Value,
    ) -> Self {
        self.push(EventKind::Bot {
            container: container.into(),
            meeting_id: meeting,
            uid: Some(uid.into()),
            event: event.into(),
            fields,
        })
    }

    pub fn subscribed(self, meeting: i64, uid: &str) -> Self {
        self.bot(
            meeting,
            uid,
            "subscribed",
            json!({ "channel": format!("bot_commands:{uid}") }),
        )
    }

    pub fn published(self, channel: &str, payload: Value) -> Self {
        self.push(EventKind::Published {
            channel: channel.into(),
            payload,
        })
    }

    pub fn leave(self, uid: &str) -> Self {
        self.published(&format!("bot_commands:{uid}"), json!({"action": "leave"}))
    }

    /// The service's status event for meeting `native` of user 1.
    pub fn status_published(self, native: &str, status: &str) -> Self {
        self.published(
            &format!("bm:meeting:1:{PLATFORM}:{native}:status"),
            json!({
                "type": "meeting.status",
                "meeting": {"platform": PLATFORM, "native_id": native},
                "payload": {"status": status},
                "ts": "2024-01-01T00:00:00.000Z",
            }),
        )
    }

    /// A fault period of the scenario: `name` on `target`, applied at `from` ms and
    /// healed at `to` ms.
    pub fn fault_period(self, name: &str, target: &str, from: i64, to: i64) -> Self {
        let fault = |phase| EventKind::Fault {
            name: name.into(),
            phase,
            target: target.into(),
            detail: Value::Null,
        };
        self.at(from)
            .push(fault(FaultPhase::Applied))
            .at(to)
            .push(fault(FaultPhase::Healed))
    }

    pub fn healed(self, fault: &str) -> Self {
        self.push(EventKind::Fault {
            name: fault.into(),
            phase: FaultPhase::Healed,
            target: "link".into(),
            detail: Value::Null,
        })
    }

    /// Sets the final state as a faithful reading of the history so far: every row with
    /// its last status, its audit list and reasons, every session, every container.
    pub fn final_auto(mut self) -> Self {
        let history = History::new(self.events.clone());
        let mut meetings: Vec<FinalMeeting> = Vec::new();
        let mut sessions = Vec::new();
        let mut containers: Vec<FinalContainer> = Vec::new();
        for e in &history.events {
            match &e.kind {
                EventKind::MeetingInserted {
                    meeting_id,
                    platform,
                    native_meeting_id,
                    status,
                } => meetings.push(FinalMeeting {
                    id: *meeting_id,
                    platform: platform.clone(),
                    native_meeting_id: native_meeting_id.clone(),
                    status: status.clone(),
                    bot_container_id: None,
                    data: json!({}),
                }),
                EventKind::StatusStored {
                    meeting_id,
                    from,
                    to,
                    completion_reason,
                    failure_stage,
                    ..
                } => {
                    if let Some(m) = meetings.iter_mut().find(|m| m.id == *meeting_id) {
                        m.status = to.clone();
                        let data = m.data.as_object_mut().expect("object");
                        let list = data.entry("status_transition").or_insert_with(|| json!([]));
                        list.as_array_mut()
                            .expect("array")
                            .push(json!({"from": from, "to": to}));
                        if let Some(reason) = completion_reason {
                            data.insert("completion_reason".into(), json!(reason));
                        }
                        if let Some(stage) = failure_stage {
                            data.insert("failure_stage".into(), json!(stage));
                        }
                    }
                }
                EventKind::SessionStored {
                    meeting_id,
                    session_uid,
                    ..
                } => sessions.push(FinalSession {
                    meeting_id: *meeting_id,
                    session_uid: session_uid.clone(),
                }),
                EventKind::Container {
                    action,
                    container_id,
                    name,
                    meeting_id,
                    ..
                } => {
                    let state = match action.as_str() {
                        "start" => "running",
                        "die" | "destroy" => "exited",
                        _ => "created",
                    };
                    match containers.iter_mut().find(|c| c.id == *container_id) {
                        Some(c) => {
                            if action != "create" {
                                c.state = state.into();
                            }
                        }
                        None => containers.push(FinalContainer {
                            id: container_id.clone(),
                            name: name.clone(),
                            meeting_id: *meeting_id,
                            state: state.into(),
                            exit_code: None,
                            forgotten: false,
                        }),
                    }
                }
                _ => {}
            }
        }
        self.final_state = Some(FinalState {
            meetings,
            sessions,
            containers,
        });
        self
    }

    /// Adds a container to the final state (set one first to keep its rows).
    pub fn final_container(self, id: &str, name: &str, meeting: Option<i64>, state: &str) -> Self {
        let entry = FinalContainer {
            id: id.into(),
            name: name.into(),
            meeting_id: meeting,
            state: state.into(),
            exit_code: None,
            forgotten: true,
        };
        self.final_edit(|f| f.containers.push(entry))
    }

    pub fn final_edit(mut self, edit: impl FnOnce(&mut FinalState)) -> Self {
        edit(self.final_state.get_or_insert(FinalState {
            meetings: Vec::new(),
            sessions: Vec::new(),
            containers: Vec::new(),
        }));
        self
    }

    /// Ends the run now: the final state if one was set, else a plain marker event.
    /// The history of a service that speaks `wire`.
    pub fn wire(mut self, wire: protocol::Wire) -> Self {
        self.wire = wire;
        self
    }

    pub fn end(mut self) -> History {
        let last = match self.final_state.take() {
            Some(state) => EventKind::Final(state),
            None => EventKind::Step {
                name: "quiet".into(),
                action: "wait".into(),
                meeting: None,
                outcome: "ok".into(),
            },
        };
        let labels = std::mem::take(&mut self.labels);
        let mut h = self.push(last);
        h.events.insert(
            0,
            Event {
                seq: 0,
                at_us: 0,
                kind: EventKind::RunStarted {
                    scenario: "hand-written".into(),
                    profile: "legacy".into(),
                    seed: 0,
                    meetings: labels,
                    wire: Box::new(std::mem::take(&mut h.wire)),
                },
            },
        );
        History::new(h.events)
    }
}
