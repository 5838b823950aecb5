//! The history with everything a rerun changes taken out (times, uuids, container ids,
//! ports, pids, native meeting ids), grouped by lane so that events of independent actors
//! may interleave differently without changing it. What is left is the behaviour: it is
//! the insta snapshot of each catalogue scenario.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::{EventKind, FaultPhase, History};

static UUID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").expect("regex")
});
static CONTAINER_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[0-9a-f]{64}\b").expect("regex"));
static CONTAINER_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"vexa-bot-(\d+)-[0-9a-f]{8}").expect("regex"));
static TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}(:?\d{2})?)?")
        .expect("regex")
});
static PORT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(127\.0\.0\.1|bot-manager|localhost):\d+").expect("regex"));

/// Keys whose values differ from run to run whatever the system does (an error's text
/// names the exact syscall that noticed a reset, which races).
const VOLATILE_KEYS: [&str; 7] = [
    "pid",
    "ts",
    "created_at",
    "updated_at",
    "start_time",
    "end_time",
    "error",
];

struct Normaliser {
    uids: HashMap<String, usize>,
    natives: Vec<(String, String)>,
}

impl Normaliser {
    fn text(&mut self, s: &str) -> String {
        let mut out = s.to_owned();
        for (native, label) in &self.natives {
            out = out.replace(native.as_str(), &format!("<{label}>"));
        }
        let mut with_uids = String::new();
        let mut last = 0;
        for m in UUID.find_iter(&out) {
            let next = self.uids.len() + 1;
            let n = *self.uids.entry(m.as_str().to_owned()).or_insert(next);
            with_uids.push_str(&out[last..m.start()]);
            let _ = write!(with_uids, "<uid{n}>");
            last = m.end();
        }
        with_uids.push_str(&out[last..]);
        let out = CONTAINER_ID.replace_all(&with_uids, "<container-id>");
        let out = CONTAINER_NAME.replace_all(&out, "vexa-bot-$1-<hex>");
        let out = TIMESTAMP.replace_all(&out, "<ts>");
        PORT.replace_all(&out, "$1:<port>").into_owned()
    }

    fn value(&mut self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|i| self.value(i)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let v = if VOLATILE_KEYS.contains(&k.as_str()) {
                            Value::String("<volatile>".into())
                        } else {
                            self.value(v)
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// The part of an answer that says what happened: a meeting JSON (whose status races with
/// the bot's first callback) is reduced to its id; messages and callback answers stay.
fn answer_gist(body: &Value) -> Value {
    if body.get("constructed_meeting_url").is_some() {
        return serde_json::json!({"meeting": body["id"]});
    }
    if let Some(meetings) = body.get("meetings").and_then(Value::as_array) {
        return serde_json::json!({"meetings": meetings.len()});
    }
    body.clone()
}

/// Lane -> the normalised events of that lane, in order.
pub fn normalise(history: &History) -> BTreeMap<String, Vec<String>> {
    let mut n = Normaliser {
        uids: HashMap::new(),
        natives: history
            .meeting_labels()
            .into_iter()
            .map(|m| (m.native_meeting_id, m.label))
            .collect(),
    };
    let mut lanes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in &history.events {
        let (lane, line) = match &event.kind {
            EventKind::RunStarted {
                scenario, profile, ..
            } => (
                "harness".to_owned(),
                format!("run {scenario} under {profile}"),
            ),
            EventKind::Step {
                name,
                action,
                outcome,
                ..
            } => (
                format!("step {name}"),
                format!("{action}: {}", n.text(outcome)),
            ),
            EventKind::Http {
                phase,
                method,
                path,
                status,
                body,
                error,
                by,
                ..
            } => {
                let path = n.text(path);
                // A forged request is the attacker's lane, not the user's.
                let who = match by.as_deref() {
                    None => "client".to_owned(),
                    Some("bot") => "harness as the bot".to_owned(),
                    Some(by) => format!("{by} (forged)"),
                };
                let detail = match (status, body, error) {
                    (Some(s), Some(b), _) => format!("{s} {}", n.value(&answer_gist(b))),
                    (Some(s), None, _) => s.to_string(),
                    (None, _, Some(e)) => n.text(e),
                    (None, Some(b), None) => n.value(b).to_string(),
                    (None, None, None) => String::new(),
                };
                (
                    format!("{who} {method} {path}"),
                    format!("{} {detail}", format!("{phase:?}").to_lowercase()),
                )
            }
            EventKind::Published { channel, payload } => {
                let mut payload = n.value(payload);
                if let Some(obj) = payload.as_object_mut() {
                    obj.remove("ts");
                }
                (format!("redis {}", n.text(channel)), payload.to_string())
            }
            EventKind::RecorderGap { source, .. } => {
                ("harness".to_owned(), format!("recorder gap in {source}"))
            }
            EventKind::MeetingInserted {
                meeting_id, status, ..
            } => (
                format!("database meeting {meeting_id}"),
                format!("inserted {status}"),
            ),
            EventKind::StatusStored {
                meeting_id,
                from,
                to,
                audit_len,
                completion_reason,
                failure_stage,
                stop_requested,
                ..
            } => (
                format!("database meeting {meeting_id}"),
                format!(
                    "{from} -> {to} (audit {audit_len}{}{}{})",
                    completion_reason
                        .as_ref()
                        .map(|r| format!(", reason {r}"))
                        .unwrap_or_default(),
                    failure_stage
                        .as_ref()
                        .map(|r| format!(", stage {r}"))
                        .unwrap_or_default(),
                    if *stop_requested {
                        ", stop_requested"
                    } else {
                        ""
                    }
                ),
            ),
            // Whether the container id lands before or after the bot's first callback is a
            // race of the system itself: keep what changed, not the status it met.
            EventKind::MeetingUpdated {
                meeting_id,
                stop_requested,
                bot_container_id,
                ..
            } => (
                format!("database meeting {meeting_id} updates"),
                format!(
                    "updated (container {}{})",
                    if bot_container_id.is_some() {
                        "set"
                    } else {
                        "none"
                    },
                    if *stop_requested {
                        ", stop_requested"
                    } else {
                        ""
                    },
                ),
            ),
            EventKind::RowDeleted {
                table, meeting_id, ..
            } => (
                format!("database meeting {meeting_id}"),
                format!("row deleted from {table}"),
            ),
            EventKind::SessionStored {
                meeting_id,
                session_uid,
                ..
            } => (
                format!("database meeting {meeting_id} sessions"),
                format!("session {}", n.text(session_uid)),
            ),
            EventKind::Container {
                action,
                name,
                exit_code,
                ..
            } => (
                format!("container {}", n.text(name)),
                match exit_code {
                    Some(code) => format!("{action} (exit {code})"),
                    None => action.clone(),
                },
            ),
            EventKind::Bot {
                container,
                event,
                fields,
                ..
            } => (
                format!("bot {}", n.text(container)),
                format!("{event} {}", n.value(fields)),
            ),
            // One lane a fault: concurrent faults apply and heal in either order.
            EventKind::Fault {
                name,
                phase,
                target,
                ..
            } => (
                format!("fault {name} on {target}"),
                if *phase == FaultPhase::Applied {
                    "applied"
                } else {
                    "healed"
                }
                .to_owned(),
            ),
            EventKind::Final(state) => {
                let mut lines = Vec::new();
                for m in &state.meetings {
                    let data = &m.data;
                    lines.push(format!(
                        "meeting {} {} reason={} stage={} transitions={}",
                        m.id,
                        m.status,
                        data["completion_reason"].as_str().unwrap_or("-"),
                        data["failure_stage"].as_str().unwrap_or("-"),
                        data["status_transition"].as_array().map_or(0, Vec::len)
                    ));
                }
                for c in &state.containers {
                    lines.push(format!(
                        "container {} {}{}",
                        n.text(&c.name),
                        c.state,
                        if c.forgotten { " (forgotten)" } else { "" }
                    ));
                }
                lines.sort();
                lanes.entry("final".into()).or_default().extend(lines);
                continue;
            }
        };
        lanes.entry(lane).or_default().push(line);
    }
    lanes
}

/// The normalised history as one text.
pub fn render(history: &History) -> String {
    let mut out = String::new();
    for (lane, lines) in normalise(history) {
        let _ = writeln!(out, "[{lane}]");
        for line in lines {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}
