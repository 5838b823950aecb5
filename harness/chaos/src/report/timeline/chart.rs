//! What the sequence chart draws: the lanes, and for every event one glyph, an arrow from
//! its sender's lane to its receiver's where the history proves who talked to whom, else
//! a labelled point on its own lane.
//!
//! Who sends what (protocol.md section 1; the harness itself writes nothing to Postgres or
//! Redis and never calls the Docker API, only the runtime's control API):
//! - HTTP exchanges of the harness's client: request client -> service, answer back;
//! - every publish is the service's (service -> Redis); a bot's `command_received` is the
//!   delivery (Redis -> bot), labelled with the publish it matches on that channel;
//! - every stored change is the service's (service -> Postgres);
//! - `create` and `start` of a container are the service's Docker calls (service ->
//!   runtime), except the start inside a runtime `restart` (the harness's control API);
//!   a `stop` event ends a `docker stop`, so the first signal of that stop (since the
//!   container last started) is drawn service -> runtime -> container and the `stop`
//!   itself as the answer; any other signal, a pause and a removal are runtime ->
//!   container, an exit container -> runtime;
//! - a bot's terminal callback (`callback_attempt`) goes bot -> service and an answered
//!   `callback_result` comes back; `status_sent` and `session_started` are logged when
//!   their answer arrives, so they are drawn as that answer, service -> bot;
//! - whatever else (a runtime restart, the bot's own steps, the harness's steps, faults)
//!   is a point: faults on tracks of their own, the service's own restart or stop on the
//!   service lane, where its down period is drawn.
//!
//! The order is the history's, except that a bot's receipt of a message or a signal,
//! logged a fraction before the recorder saw it sent (two clocks), is moved just after
//! the send, with what the bot logged next.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde_json::Value;

use crate::history::{Event, EventKind, FaultPhase, FinalState, HttpPhase};

use super::super::truncate;

pub(super) const HARNESS: usize = 0;
pub(super) const SERVICE: usize = 1;
pub(super) const POSTGRES: usize = 2;
pub(super) const REDIS: usize = 3;
pub(super) const RUNTIME: usize = 4;
/// Bots' lanes follow, one per container, in order of appearance.
pub(super) const FIRST_BOT: usize = 5;

/// The longest label drawn (the whole event is in its tooltip and the event table).
const MAX_LABEL: usize = 100;

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Lane {
    /// Stable key for the markup (`data-from`, `data-to`): `service`, `bot:<container>`.
    pub key: String,
    pub title: String,
    pub subtitle: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    /// A request or message: solid, filled head.
    Call,
    /// An answer: dashed, open head.
    Reply,
    /// Certainly not delivered (refused before sending): ends in a cross short of its
    /// receiver.
    Lost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// From one lane to another, through `via` when the message is relayed (docker stop:
    /// service -> runtime -> container).
    Arrow {
        from: usize,
        via: Option<usize>,
        to: usize,
        style: Style,
    },
    Point {
        lane: usize,
    },
    /// An end of a fault period, on the period's track.
    Fault {
        period: usize,
    },
}

#[derive(Debug, Clone)]
pub(super) struct Glyph<'a> {
    pub event: &'a Event,
    pub shape: Shape,
    pub label: String,
    /// Colour class: `http`, `redis`, `db`, `docker`, `bot`, `fault`, `harness`, `gap`.
    pub kind: &'static str,
    /// Where the event goes in the chart's order: its own time, or just after the event
    /// that caused it when its log says a fraction earlier (separate clocks, log flushes).
    order: (i64, usize, u8, usize),
}

impl Glyph<'_> {
    pub fn order_us(&self) -> i64 {
        self.order.0
    }
}

/// A fault between its `applied` and `healed` events; `lane` is set when it takes a lane
/// itself down (the service's restart or stop), and then it is drawn there.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Period {
    pub name: String,
    pub target: String,
    pub from_seq: u64,
    pub to_seq: Option<u64>,
    pub lane: Option<usize>,
}

/// What a bot's container is doing between two events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Life {
    /// Created, not running (before its start, after its exit).
    Idle,
    Running,
    Paused,
}

/// A piece of a bot's lifeline: from an event (or the top) to an event (or the bottom).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Segment {
    pub lane: usize,
    pub from_seq: Option<u64>,
    pub to_seq: Option<u64>,
    pub life: Life,
}

#[derive(Debug, Clone)]
pub(super) struct Chart<'a> {
    pub lanes: Vec<Lane>,
    /// In drawing order, one per event.
    pub glyphs: Vec<Glyph<'a>>,
    pub periods: Vec<Period>,
    pub segments: Vec<Segment>,
    /// Containers removed: (lane, seq of the removal), drawn as a cross ending the line.
    pub removals: Vec<(usize, u64)>,
}

fn container_name(name: &str) -> &str {
    name.trim_start_matches('/')
}

/// Fault names that take the service itself down (SIGTERM sent .. new service ready).
fn takes_service_down(name: &str, target: &str) -> bool {
    target == "service" || matches!(name, "restart_service" | "stop_service" | "start_service")
}

/// Pairs each `applied` with the next `healed` of the same fault name and target; the
/// service's own down periods pair by target alone (`stop_service` is healed by
/// `start_service`).
pub(super) fn fault_periods(events: &[Event]) -> Vec<Period> {
    let mut open: BTreeMap<(String, String), VecDeque<usize>> = BTreeMap::new();
    let mut periods: Vec<Period> = Vec::new();
    for event in events {
        let EventKind::Fault {
            name,
            phase,
            target,
            ..
        } = &event.kind
        else {
            continue;
        };
        let down = takes_service_down(name, target);
        let key = if down {
            ("(service down)".to_owned(), "service".to_owned())
        } else {
            (name.clone(), target.clone())
        };
        match phase {
            FaultPhase::Applied => {
                periods.push(Period {
                    name: name.clone(),
                    target: target.clone(),
                    from_seq: event.seq,
                    to_seq: None,
                    lane: down.then_some(SERVICE),
                });
                open.entry(key).or_default().push_back(periods.len() - 1);
            }
            FaultPhase::Healed => {
                if let Some(i) = open.get_mut(&key).and_then(VecDeque::pop_front) {
                    periods[i].to_seq = Some(event.seq);
                }
            }
        }
    }
    periods
}

/// Shortens what makes labels long without telling anything: a UUID to its first 8
/// characters, a 64-hex container id to its first 12, each followed by `…`.
pub(super) fn shorten_ids(text: &str) -> String {
    fn is_hex(b: u8) -> bool {
        b.is_ascii_hexdigit()
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        // A UUID: 8-4-4-4-12 hex digits.
        let uuid = bytes.len() - i >= 36
            && (0..36).all(|k| match k {
                8 | 13 | 18 | 23 => bytes[i + k] == b'-',
                _ => is_hex(bytes[i + k]),
            })
            && (i == 0 || !is_hex(bytes[i - 1]));
        if uuid {
            out.push_str(&text[i..i + 8]);
            out.push('…');
            i += 36;
            continue;
        }
        if is_hex(bytes[i]) && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            let run = bytes[i..].iter().take_while(|b| is_hex(**b)).count();
            if run >= 32 {
                out.push_str(&text[i..i + 12]);
                out.push('…');
                i += run;
                continue;
            }
        }
        let c = text[i..].chars().next().expect("in bounds");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

fn field<'v>(fields: &'v Value, key: &str) -> Option<&'v Value> {
    fields.get(key).filter(|v| !v.is_null())
}

fn field_str(fields: &Value, key: &str) -> Option<String> {
    field(fields, key).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn compact_json(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Builds the chart of a history (events in history order).
pub(super) fn chart(events: &[Event]) -> Chart<'_> {
    Builder::new(events).build()
}

struct Builder<'a> {
    events: &'a [Event],
    lanes: Vec<Lane>,
    bot_lane: HashMap<String, usize>,
    /// How the service spoke on Redis: which publishes are commands and statuses.
    wire: protocol::Wire,
}

impl<'a> Builder<'a> {
    fn new(events: &'a [Event]) -> Self {
        let lane = |key: &str, title: &str, subtitle: &str| Lane {
            key: key.to_owned(),
            title: title.to_owned(),
            subtitle: subtitle.to_owned(),
        };
        let mut lanes = vec![
            lane("harness", "client / harness", "HTTP, steps"),
            lane("service", "service", "bot-manager"),
            lane("postgres", "Postgres", "stored rows"),
            lane("redis", "Redis", "channels"),
            lane("runtime", "runtime", "containers"),
        ];
        let mut native_label: HashMap<String, String> = HashMap::new();
        let mut meeting_label = HashMap::new();
        for e in events {
            match &e.kind {
                EventKind::RunStarted { meetings, .. } => {
                    for m in meetings {
                        native_label.insert(m.native_meeting_id.clone(), m.label.clone());
                    }
                }
                EventKind::MeetingInserted {
                    meeting_id,
                    native_meeting_id,
                    ..
                } => {
                    if let Some(label) = native_label.get(native_meeting_id) {
                        meeting_label.insert(*meeting_id, label.clone());
                    }
                }
                _ => {}
            }
        }
        let mut bot_lane = HashMap::new();
        for e in events {
            let (name, meeting_id) = match &e.kind {
                EventKind::Container {
                    name, meeting_id, ..
                } => (container_name(name), *meeting_id),
                EventKind::Bot {
                    container,
                    meeting_id,
                    ..
                } => (container_name(container), *meeting_id),
                _ => continue,
            };
            if bot_lane.contains_key(name) {
                continue;
            }
            let title = match meeting_id {
                Some(id) => match meeting_label.get(&id) {
                    Some(label) => format!("bot {label} (meeting {id})"),
                    None => format!("bot (meeting {id})"),
                },
                None => "bot".to_owned(),
            };
            bot_lane.insert(name.to_owned(), lanes.len());
            lanes.push(Lane {
                key: format!("bot:{name}"),
                title,
                subtitle: name.to_owned(),
            });
        }
        let wire = crate::history::wire_of(events);
        Builder {
            events,
            lanes,
            bot_lane,
            wire,
        }
    }

    fn bot(&self, container: &str) -> usize {
        self.bot_lane[container_name(container)]
    }

    fn build(self) -> Chart<'a> {
        let events = self.events;
        let periods = fault_periods(events);
        let period_of: HashMap<u64, usize> = periods
            .iter()
            .enumerate()
            .flat_map(|(i, p)| std::iter::once((p.from_seq, i)).chain(p.to_seq.map(|s| (s, i))))
            .collect();

        // HTTP: how each operation ended.
        let mut http_end: HashMap<u64, HttpPhase> = HashMap::new();
        for e in events {
            if let EventKind::Http { op, phase, .. } = &e.kind
                && *phase != HttpPhase::Invoke
            {
                http_end.insert(*op, *phase);
            }
        }

        let receipts = self.pair_receipts();
        let signals = self.pair_signals();
        let stop_signals = self.docker_stop_signals();
        let answered = self.answered_callbacks();

        let mut glyphs: Vec<Glyph<'a>> = Vec::with_capacity(events.len());
        for (idx, e) in events.iter().enumerate() {
            let (shape, label, kind) = match &e.kind {
                EventKind::Fault {
                    name,
                    phase,
                    target,
                    detail,
                } => {
                    let period = period_of.get(&e.seq).copied();
                    let down = takes_service_down(name, target);
                    let label = fault_label(name, *phase, target, detail, down);
                    match (period, down) {
                        (_, true) => (Shape::Point { lane: SERVICE }, label, "fault"),
                        (Some(period), false) => (Shape::Fault { period }, label, "fault"),
                        // A heal without an applied: still on the faults' side.
                        (None, false) => (Shape::Point { lane: HARNESS }, label, "fault"),
                    }
                }
                _ => self.glyph(e, idx, &http_end, &receipts, &stop_signals, &answered),
            };
            let cause = receipts
                .receipt_of
                .get(&idx)
                .or_else(|| signals.get(&idx))
                .copied();
            let order = match cause {
                Some(c) if events[c].at_us >= e.at_us => (events[c].at_us, c, 1, idx),
                _ => (e.at_us, idx, 0, idx),
            };
            glyphs.push(Glyph {
                event: e,
                shape,
                label: truncate(&label, MAX_LABEL),
                kind,
                order,
            });
        }
        // A bot's log is one sequence: what it logged after a moved receipt follows it.
        let mut last: HashMap<&str, (i64, usize, u8, usize)> = HashMap::new();
        for (idx, g) in glyphs.iter_mut().enumerate() {
            if let EventKind::Bot { container, .. } = &events[idx].kind {
                let container = container_name(container);
                if let Some(&prev) = last.get(container)
                    && prev > g.order
                {
                    g.order = (prev.0, prev.1, prev.2, idx);
                }
                last.insert(container, g.order);
            }
        }
        glyphs.sort_by_key(|g| g.order);

        let (segments, removals) = self.lifelines();
        Chart {
            lanes: self.lanes,
            glyphs,
            periods,
            segments,
            removals,
        }
    }

    fn glyph(
        &self,
        e: &Event,
        idx: usize,
        http_end: &HashMap<u64, HttpPhase>,
        receipts: &Receipts,
        stop_signals: &HashSet<usize>,
        answered: &HashSet<usize>,
    ) -> (Shape, String, &'static str) {
        let arrow = |from, to, style| Shape::Arrow {
            from,
            via: None,
            to,
            style,
        };
        match &e.kind {
            EventKind::RunStarted {
                scenario,
                profile,
                seed,
                ..
            } => (
                Shape::Point { lane: HARNESS },
                format!("run started: {scenario} [{profile}] seed {seed}"),
                "harness",
            ),
            EventKind::Step {
                name,
                action,
                meeting,
                outcome,
            } => {
                let mut label = format!("step {name}: {action}");
                if let Some(m) = meeting {
                    label.push_str(&format!(" {m}"));
                }
                if outcome != "ok" {
                    label.push_str(&format!(" → {outcome}"));
                }
                (Shape::Point { lane: HARNESS }, label, "harness")
            }
            EventKind::Final(state) => (
                Shape::Point { lane: HARNESS },
                final_label(state),
                "harness",
            ),
            EventKind::Http {
                op,
                phase,
                method,
                path,
                status,
                body,
                error,
                by,
                ..
            } => {
                // Who sent it when not the user: a forgery reads as one on the chart.
                let request = match by.as_deref() {
                    Some("bot") => format!("{method} {path} (as the bot)"),
                    Some(by) => format!("{method} {path} (forged by {by})"),
                    None => format!("{method} {path}"),
                };
                let error = error.as_deref().unwrap_or("no detail");
                match phase {
                    HttpPhase::Invoke => {
                        let style = if http_end.get(op) == Some(&HttpPhase::Fail) {
                            Style::Lost
                        } else {
                            Style::Call
                        };
                        (arrow(HARNESS, SERVICE, style), request, "http")
                    }
                    HttpPhase::Ok => {
                        let status = status.map_or("answer".to_owned(), |s| s.to_string());
                        let mut label = format!("{status} to {request}");
                        if let Some(summary) = body.as_ref().and_then(answer_summary) {
                            label.push_str(&format!(": {summary}"));
                        }
                        (arrow(SERVICE, HARNESS, Style::Reply), label, "http")
                    }
                    HttpPhase::Fail => (
                        Shape::Point { lane: HARNESS },
                        format!("✗ {request} not sent: {error}"),
                        "http",
                    ),
                    HttpPhase::Info => (
                        Shape::Point { lane: HARNESS },
                        format!("? {request} outcome unknown: {error}"),
                        "http",
                    ),
                }
            }
            EventKind::Published {
                channel: full,
                payload,
            } => {
                let channel = shorten_ids(full);
                let read = self.wire.read(full, payload);
                let mut label = match &read {
                    protocol::Published::Status { status, .. } => {
                        format!("status {status} → {channel}")
                    }
                    protocol::Published::Leave(_) => format!("leave → {channel}"),
                    protocol::Published::Command(_) => {
                        match payload.get("action").and_then(Value::as_str) {
                            Some(action) => format!("{action} → {channel}"),
                            None => format!(
                                "command {} → {channel}",
                                truncate(&compact_json(payload), 40)
                            ),
                        }
                    }
                    _ => format!("{} → {channel}", truncate(&compact_json(payload), 40)),
                };
                if matches!(
                    read,
                    protocol::Published::Leave(_) | protocol::Published::Command(_)
                ) && !receipts.received.contains(&idx)
                {
                    label.push_str(" (no bot logged receiving it)");
                }
                (arrow(SERVICE, REDIS, Style::Call), label, "redis")
            }
            EventKind::RecorderGap { source, detail } => (
                Shape::Point { lane: REDIS },
                format!("recorder gap ({source}): {detail}; messages may be missing"),
                "gap",
            ),
            EventKind::MeetingInserted {
                meeting_id,
                platform,
                native_meeting_id,
                status,
            } => (
                arrow(SERVICE, POSTGRES, Style::Call),
                format!("meeting {meeting_id} inserted: {status} ({platform}/{native_meeting_id})"),
                "db",
            ),
            EventKind::StatusStored {
                meeting_id,
                from,
                to,
                completion_reason,
                failure_stage,
                stop_requested,
                ..
            } => {
                let mut label = format!("meeting {meeting_id}: status {to} stored (was {from})");
                if let Some(r) = completion_reason {
                    label.push_str(&format!(", reason {r}"));
                }
                if let Some(s) = failure_stage {
                    label.push_str(&format!(", stage {s}"));
                }
                if *stop_requested {
                    label.push_str(", stop_requested");
                }
                (arrow(SERVICE, POSTGRES, Style::Call), label, "db")
            }
            EventKind::MeetingUpdated {
                meeting_id,
                status,
                stop_requested,
                bot_container_id,
                ..
            } => {
                let mut label = format!("meeting {meeting_id} updated (status {status}");
                if let Some(c) = bot_container_id {
                    label.push_str(&format!(", container {}", shorten_ids(c)));
                }
                if *stop_requested {
                    label.push_str(", stop_requested");
                }
                label.push(')');
                (arrow(SERVICE, POSTGRES, Style::Call), label, "db")
            }
            EventKind::RowDeleted {
                table, meeting_id, ..
            } => (
                arrow(SERVICE, POSTGRES, Style::Call),
                format!("{table} row of meeting {meeting_id} deleted"),
                "db",
            ),
            EventKind::SessionStored {
                meeting_id,
                session_uid,
                ..
            } => (
                arrow(SERVICE, POSTGRES, Style::Call),
                format!(
                    "session {} stored for meeting {meeting_id}",
                    shorten_ids(session_uid)
                ),
                "db",
            ),
            EventKind::Container {
                action,
                name,
                exit_code,
                ..
            } => {
                let bot = self.bot(name);
                let name = container_name(name);
                match action.as_str() {
                    "create" => (
                        arrow(SERVICE, RUNTIME, Style::Call),
                        format!("docker create {name}"),
                        "docker",
                    ),
                    "start" if self.next_action_of(idx, name) == Some("restart") => (
                        arrow(RUNTIME, bot, Style::Call),
                        "process started again (restart)".to_owned(),
                        "docker",
                    ),
                    "start" => (
                        arrow(SERVICE, RUNTIME, Style::Call),
                        format!("docker start {name}"),
                        "docker",
                    ),
                    "kill" if stop_signals.contains(&idx) => (
                        Shape::Arrow {
                            from: SERVICE,
                            via: Some(RUNTIME),
                            to: bot,
                            style: Style::Call,
                        },
                        format!("docker stop {name} → signal"),
                        "docker",
                    ),
                    "kill" => (
                        arrow(RUNTIME, bot, Style::Call),
                        "signal (kill)".to_owned(),
                        "docker",
                    ),
                    "die" => (
                        arrow(bot, RUNTIME, Style::Call),
                        match exit_code {
                            Some(code) => format!("{name} exited, code {code}"),
                            None => format!("{name} exited"),
                        },
                        "docker",
                    ),
                    "stop" => (
                        arrow(RUNTIME, SERVICE, Style::Reply),
                        format!("docker stop {name} done"),
                        "docker",
                    ),
                    "destroy" => (
                        arrow(RUNTIME, bot, Style::Call),
                        "removed".to_owned(),
                        "docker",
                    ),
                    "restart" => (
                        Shape::Point { lane: RUNTIME },
                        format!("{name} restarted (runtime control)"),
                        "docker",
                    ),
                    "pause" => (
                        arrow(RUNTIME, bot, Style::Call),
                        "pause (frozen)".to_owned(),
                        "docker",
                    ),
                    "unpause" | "resume" => (
                        arrow(RUNTIME, bot, Style::Call),
                        "unpause".to_owned(),
                        "docker",
                    ),
                    other => (
                        Shape::Point { lane: RUNTIME },
                        format!("{name}: {other}"),
                        "docker",
                    ),
                }
            }
            EventKind::Bot {
                container,
                uid,
                event,
                fields,
                ..
            } => self.bot_glyph(
                idx,
                container,
                uid.as_deref(),
                event,
                fields,
                receipts,
                answered,
            ),
            EventKind::Fault { .. } => unreachable!("faults are drawn by build"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn bot_glyph(
        &self,
        idx: usize,
        container: &str,
        uid: Option<&str>,
        event: &str,
        fields: &Value,
        receipts: &Receipts,
        answered: &HashSet<usize>,
    ) -> (Shape, String, &'static str) {
        let lane = self.bot(container);
        let point = |label: String| (Shape::Point { lane }, label, "bot");
        let to_service = |label: String| {
            (
                Shape::Arrow {
                    from: lane,
                    via: None,
                    to: SERVICE,
                    style: Style::Call,
                },
                label,
                "bot",
            )
        };
        let http = field_str(fields, "http_status");
        let error = field_str(fields, "error");
        match event {
            "started" => point(match uid {
                Some(uid) => format!("bot started, uid {}", shorten_ids(uid)),
                None => "bot started".to_owned(),
            }),
            "subscribed" => point(format!(
                "subscribed to {}",
                shorten_ids(&field_str(fields, "channel").unwrap_or_default())
            )),
            "subscribe_failed" => point(format!(
                "subscribe failed: {}",
                shorten_ids(&field_str(fields, "error").unwrap_or_default())
            )),
            "command_received" => {
                let channel = shorten_ids(&field_str(fields, "channel").unwrap_or_default());
                let action = field_str(fields, "action").unwrap_or_else(|| "message".to_owned());
                let mut label = format!("{action} received on {channel}");
                if let Some(why) = field_str(fields, "ignored_because") {
                    label.push_str(&format!(" (ignored: {why})"));
                }
                if !receipts.receipt_of.contains_key(&idx) {
                    label.push_str(" (its publish was not recorded)");
                }
                (
                    Shape::Arrow {
                        from: REDIS,
                        via: None,
                        to: lane,
                        style: Style::Call,
                    },
                    label,
                    "redis",
                )
            }
            "callback_attempt" => {
                let path = field_str(fields, "path").unwrap_or_else(|| "callback".to_owned());
                let mut label = format!("{path} callback");
                if let Some(status) = field_str(fields, "status") {
                    label.push_str(&format!(": {status}"));
                }
                if let Some(reason) = field_str(fields, "completion_reason") {
                    label.push_str(&format!(" ({reason})"));
                }
                if let Some(code) = field_str(fields, "exit_code") {
                    label.push_str(&format!(" exit_code {code}"));
                }
                if let Some(copy) = field(fields, "copy").and_then(Value::as_u64)
                    && copy > 0
                {
                    label.push_str(&format!(", copy {copy}"));
                }
                if let Some(attempt) = field_str(fields, "attempt") {
                    label.push_str(&format!(", attempt {attempt}"));
                }
                if !answered.contains(&idx) {
                    label.push_str(" (no answer logged)");
                }
                to_service(label)
            }
            "callback_result" => {
                let attempt = field_str(fields, "attempt").unwrap_or_else(|| "?".to_owned());
                match (http, error) {
                    (Some(status), _) => (
                        Shape::Arrow {
                            from: SERVICE,
                            via: None,
                            to: lane,
                            style: Style::Reply,
                        },
                        format!("{status} to callback attempt {attempt}"),
                        "bot",
                    ),
                    (None, error) => point(format!(
                        "callback attempt {attempt} failed: {}",
                        error.unwrap_or_else(|| "no answer".to_owned())
                    )),
                }
            }
            // Logged when the answer came back: drawn as that answer.
            "status_sent" | "session_started" => {
                let what = if event == "status_sent" {
                    format!(
                        "status {} callback",
                        field_str(fields, "status").unwrap_or_default()
                    )
                } else {
                    format!(
                        "session start {}",
                        shorten_ids(&field_str(fields, "session_uid").unwrap_or_default())
                    )
                };
                match (http, error) {
                    (Some(status), _) => (
                        Shape::Arrow {
                            from: SERVICE,
                            via: None,
                            to: lane,
                            style: Style::Reply,
                        },
                        format!("{status} to {what}"),
                        "bot",
                    ),
                    (None, error) => point(format!(
                        "{what} not delivered: {}",
                        error.unwrap_or_else(|| "no answer".to_owned())
                    )),
                }
            }
            "callback_dropped" => point("terminal callback dropped (never sent)".to_owned()),
            "leave_started" => point(format!(
                "leave started ({})",
                field_str(fields, "trigger").unwrap_or_default()
            )),
            "leave_hung" => point("leave hangs".to_owned()),
            "sigterm_received" => point(format!(
                "SIGTERM received (#{})",
                field_str(fields, "count").unwrap_or_else(|| "?".to_owned())
            )),
            "sigterm_ignored" => point("SIGTERM ignored".to_owned()),
            "grace_expired" => point(format!(
                "grace of {} ms expired",
                field_str(fields, "grace_ms").unwrap_or_else(|| "?".to_owned())
            )),
            "uid_changed" => point(format!(
                "uid changed {} → {}",
                shorten_ids(&field_str(fields, "old_uid").unwrap_or_default()),
                shorten_ids(&field_str(fields, "new_uid").unwrap_or_default())
            )),
            "crashing" => point(format!(
                "crashing ({}), exit {}",
                field_str(fields, "phase").unwrap_or_default(),
                field_str(fields, "exit_code").unwrap_or_default()
            )),
            "exiting" => point(format!(
                "exiting, code {}",
                field_str(fields, "code").unwrap_or_else(|| "?".to_owned())
            )),
            other => {
                let detail = match fields {
                    Value::Object(map) if map.is_empty() => String::new(),
                    Value::Null => String::new(),
                    other => format!(" {}", shorten_ids(&compact_json(other))),
                };
                point(format!("{other}{detail}"))
            }
        }
    }

    /// The action of the next container event of the same container, if any.
    fn next_action_of(&self, idx: usize, name: &str) -> Option<&'a str> {
        self.events[idx + 1..].iter().find_map(|e| match &e.kind {
            EventKind::Container {
                action, name: n, ..
            } if container_name(n) == name => Some(action.as_str()),
            _ => None,
        })
    }

    /// Matches each bot's `command_received` with the publish on its channel nearest in
    /// time (the bot and the recorder log the same message a fraction apart).
    fn pair_receipts(&self) -> Receipts {
        let mut publishes: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, e) in self.events.iter().enumerate() {
            if let EventKind::Published { channel, .. } = &e.kind {
                publishes.entry(channel.as_str()).or_default().push(i);
            }
        }
        let mut out = Receipts::default();
        let mut used: HashSet<(String, usize)> = HashSet::new();
        for (i, e) in self.events.iter().enumerate() {
            let EventKind::Bot {
                container,
                event,
                fields,
                ..
            } = &e.kind
            else {
                continue;
            };
            if event != "command_received" {
                continue;
            }
            let Some(channel) = fields.get("channel").and_then(Value::as_str) else {
                continue;
            };
            let best = publishes.get(channel).and_then(|candidates| {
                candidates
                    .iter()
                    .filter(|&&p| !used.contains(&(container.clone(), p)))
                    .min_by_key(|&&p| ((self.events[p].at_us - e.at_us).abs(), p))
                    .copied()
            });
            if let Some(p) = best {
                used.insert((container.clone(), p));
                out.receipt_of.insert(i, p);
                out.received.insert(p);
            }
        }
        out
    }

    /// Matches each bot's `sigterm_received` with the nearest signal the runtime sent its
    /// container.
    fn pair_signals(&self) -> HashMap<usize, usize> {
        let mut kills: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, e) in self.events.iter().enumerate() {
            if let EventKind::Container { action, name, .. } = &e.kind
                && action == "kill"
            {
                kills.entry(container_name(name)).or_default().push(i);
            }
        }
        let mut out = HashMap::new();
        for (i, e) in self.events.iter().enumerate() {
            if let EventKind::Bot {
                container, event, ..
            } = &e.kind
                && event == "sigterm_received"
                && let Some(k) = kills.get(container_name(container)).and_then(|ks| {
                    ks.iter()
                        .min_by_key(|&&k| (self.events[k].at_us - e.at_us).abs())
                })
            {
                out.insert(i, *k);
            }
        }
        out
    }

    /// The signal each `docker stop` sent first: a `stop` event ends a stop whose first
    /// `kill` of the same container, since that container last started or exited, is
    /// where the service's call took effect. Signals the harness sent itself (`kill_bot`
    /// steps, through the runtime's control API) are not counted.
    fn docker_stop_signals(&self) -> HashSet<usize> {
        let events = self.events;
        // Kills claimed by the harness: the latest kill at or before each kill_bot step.
        let mut claimed: HashSet<usize> = HashSet::new();
        for (i, e) in events.iter().enumerate() {
            if let EventKind::Step { action, .. } = &e.kind
                && action == "kill_bot"
                && let Some(k) = (0..i).rev().find(|&k| {
                    !claimed.contains(&k)
                        && matches!(&events[k].kind, EventKind::Container { action, .. } if action == "kill")
                })
            {
                claimed.insert(k);
            }
        }
        let mut by_container: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            if let EventKind::Container { name, .. } = &e.kind {
                by_container
                    .entry(container_name(name))
                    .or_default()
                    .push(i);
            }
        }
        let action = |i: usize| match &events[i].kind {
            EventKind::Container { action, .. } => action.as_str(),
            _ => "",
        };
        let mut out = HashSet::new();
        for list in by_container.values() {
            for (pos, &i) in list.iter().enumerate() {
                if action(i) != "stop" {
                    continue;
                }
                let Some(die_pos) = list[..pos].iter().rposition(|&j| action(j) == "die") else {
                    continue;
                };
                let first = list[..die_pos]
                    .iter()
                    .rev()
                    .take_while(|&&j| !matches!(action(j), "start" | "restart" | "die" | "create"))
                    .filter(|&&j| action(j) == "kill" && !claimed.contains(&j))
                    .last();
                if let Some(&k) = first {
                    out.insert(k);
                }
            }
        }
        out
    }

    /// The `callback_attempt`s whose `callback_result` was logged.
    fn answered_callbacks(&self) -> HashSet<usize> {
        let key = |e: &Event| match &e.kind {
            EventKind::Bot {
                container,
                event,
                fields,
                ..
            } => Some((
                event.clone(),
                container_name(container).to_owned(),
                field_str(fields, "path"),
                field_str(fields, "copy"),
                field_str(fields, "attempt"),
            )),
            _ => None,
        };
        let mut open: HashMap<_, VecDeque<usize>> = HashMap::new();
        let mut out = HashSet::new();
        for (i, e) in self.events.iter().enumerate() {
            let Some((event, container, path, copy, attempt)) = key(e) else {
                continue;
            };
            let k = (container, path, copy, attempt);
            match event.as_str() {
                "callback_attempt" => open.entry(k).or_default().push_back(i),
                "callback_result" => {
                    if let Some(a) = open.get_mut(&k).and_then(VecDeque::pop_front) {
                        out.insert(a);
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Each bot lane's lifeline: idle (created, not running), running or paused, from
    /// its container's events; a lane with bot events and no container events is running
    /// from its first event.
    fn lifelines(&self) -> (Vec<Segment>, Vec<(usize, u64)>) {
        let mut state: BTreeMap<usize, (Life, Option<u64>)> = BTreeMap::new();
        let mut segments = Vec::new();
        let mut removals = Vec::new();
        let mut gone: HashSet<usize> = HashSet::new();
        let set = |lane: usize,
                   life: Option<Life>,
                   seq: u64,
                   state: &mut BTreeMap<usize, (Life, Option<u64>)>,
                   segments: &mut Vec<Segment>| {
            if let Some((old, from)) = state.remove(&lane) {
                segments.push(Segment {
                    lane,
                    from_seq: from,
                    to_seq: Some(seq),
                    life: old,
                });
            }
            if let Some(life) = life {
                state.insert(lane, (life, Some(seq)));
            }
        };
        for e in self.events {
            match &e.kind {
                EventKind::Container { action, name, .. } => {
                    let lane = self.bot(name);
                    let life = match action.as_str() {
                        "create" => Some(Life::Idle),
                        "start" | "unpause" | "resume" => Some(Life::Running),
                        "pause" => Some(Life::Paused),
                        "die" => Some(Life::Idle),
                        "destroy" => None,
                        _ => continue,
                    };
                    if state.get(&lane).map(|s| s.0) == life && life.is_some() {
                        continue;
                    }
                    if life.is_none() {
                        if !state.contains_key(&lane) {
                            continue;
                        }
                        removals.push((lane, e.seq));
                        gone.insert(lane);
                    } else {
                        gone.remove(&lane);
                    }
                    set(lane, life, e.seq, &mut state, &mut segments);
                }
                EventKind::Bot { container, .. } => {
                    let lane = self.bot(container);
                    if !state.contains_key(&lane) && !gone.contains(&lane) {
                        state.insert(lane, (Life::Running, Some(e.seq)));
                    }
                }
                _ => {}
            }
        }
        for (lane, (life, from)) in state {
            segments.push(Segment {
                lane,
                from_seq: from,
                to_seq: None,
                life,
            });
        }
        (segments, removals)
    }
}

#[derive(Default)]
struct Receipts {
    /// Index of a `command_received` -> index of the publish it received.
    receipt_of: HashMap<usize, usize>,
    /// Publishes some bot logged receiving.
    received: HashSet<usize>,
}

fn fault_label(name: &str, phase: FaultPhase, target: &str, detail: &Value, down: bool) -> String {
    let outcome = field_str(detail, "outcome").filter(|o| o != "ok");
    let mut label = match (down, phase) {
        (true, FaultPhase::Applied) => format!("{name}: service goes down"),
        (true, FaultPhase::Healed) => format!("{name}: service up again"),
        (false, FaultPhase::Applied) => format!("{name} on {target} applied"),
        (false, FaultPhase::Healed) => format!("{name} on {target} healed"),
    };
    if let Some(ms) = field_str(detail, "heal_after_ms") {
        label.push_str(&format!(" (heals after {ms} ms)"));
    }
    if let Some(outcome) = outcome {
        label.push_str(&format!(" → {outcome}"));
    }
    label
}

/// The gist of an HTTP answer's body: its message, detail, or meeting status.
fn answer_summary(body: &Value) -> Option<String> {
    for key in ["message", "detail"] {
        if let Some(text) = body.get(key).and_then(Value::as_str) {
            return Some(text.to_owned());
        }
    }
    match (body.get("id"), body.get("status").and_then(Value::as_str)) {
        (Some(id), Some(status)) => Some(format!("meeting {id}, {status}")),
        (None, Some(status)) => Some(status.to_owned()),
        _ => None,
    }
}

fn final_label(state: &FinalState) -> String {
    let meetings: Vec<String> = state
        .meetings
        .iter()
        .map(|m| format!("meeting {} {}", m.id, m.status))
        .collect();
    let containers: Vec<String> = state
        .containers
        .iter()
        .map(|c| {
            let mut s = format!("{} {}", container_name(&c.name), c.state);
            if let Some(code) = c.exit_code {
                s.push_str(&format!(" {code}"));
            }
            if c.forgotten {
                s.push_str(" (forgotten)");
            }
            s
        })
        .collect();
    let mut label = format!("final state: {}", meetings.join(", "));
    if !containers.is_empty() {
        label.push_str(&format!("; {}", containers.join(", ")));
    }
    label
}

#[cfg(test)]
impl Chart<'_> {
    /// The lane with this key (`service`, `bot:<container>`).
    pub fn lane_of_key(&self, key: &str) -> Option<usize> {
        self.lanes.iter().position(|l| l.key == key)
    }
}
