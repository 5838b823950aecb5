//! The bot's event log: one JSON object per line on stdout, flushed at once, so a harness
//! can follow the bot without parsing human logs (those go to stderr).
//!
//! Every line is `{"ts": RFC 3339, "bot": container_name, "uid": current connection uid,
//! "event": name, ...fields}`. Events: `started`, `config_error`, `subscribed`,
//! `subscribe_failed`, `subscription_lost`, `status_sent`, `session_started`,
//! `command_received`, `uid_changed`, `leave_started`, `leave_hung`, `callback_attempt`,
//! `callback_result`, `callback_dropped`, `sigterm_received`, `sigterm_ignored`,
//! `grace_expired`, `crashing`, `exiting`.

use std::io::Write;

/// Every event name the bot writes: the vocabulary a scenario's `bot_event` trigger is
/// checked against.
pub const EVENTS: &[&str] = &[
    "started",
    "config_error",
    "subscribed",
    "subscribe_failed",
    "subscription_lost",
    "status_sent",
    "session_started",
    "command_received",
    "uid_changed",
    "leave_started",
    "leave_hung",
    "callback_attempt",
    "callback_result",
    "callback_dropped",
    "sigterm_received",
    "sigterm_ignored",
    "grace_expired",
    "crashing",
    "exiting",
];

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use tokio::sync::watch;

/// RFC 3339 with milliseconds, UTC: the format of every timestamp the bot writes or sends.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Debug, Clone)]
pub struct EventLog {
    bot: String,
    uid: watch::Receiver<String>,
}

impl EventLog {
    /// `uid` follows the bot's current connection uid.
    pub fn new(bot: impl Into<String>, uid: watch::Receiver<String>) -> Self {
        EventLog {
            bot: bot.into(),
            uid,
        }
    }

    /// Writes one event; `fields` (a JSON object, anything else goes under `detail`)
    /// follow `ts`, `bot`, `uid` and `event`, which they cannot override.
    pub fn emit(&self, event: &str, fields: Value) {
        let uid = self.uid.borrow().clone();
        write_line(Some(&self.bot), Some(&uid), event, fields);
    }

    /// The event of a bot that could not even read its configuration.
    pub fn config_error(error: &str) {
        write_line(None, None, "config_error", json!({ "error": error }));
    }
}

fn write_line(bot: Option<&str>, uid: Option<&str>, event: &str, fields: Value) {
    let head: [(&str, Value); 4] = [
        ("ts", rfc3339(Utc::now()).into()),
        ("bot", bot.into()),
        ("uid", uid.into()),
        ("event", event.into()),
    ];
    let rest = match fields {
        Value::Object(fields) => fields,
        Value::Null => Map::new(),
        other => Map::from_iter([("detail".to_owned(), other)]),
    };
    let is_head = |key: &str| head.iter().any(|(name, _)| *name == key);
    let entries = head.iter().map(|(key, value)| (*key, value)).chain(
        rest.iter()
            .filter(|(key, _)| !is_head(key))
            .map(|(key, value)| (key.as_str(), value)),
    );
    // Written by hand so the head keys come first, whatever the map's key order.
    let mut text = String::from("{");
    for (index, (key, value)) in entries.enumerate() {
        if index > 0 {
            text.push(',');
        }
        text.push_str(&Value::from(key).to_string());
        text.push(':');
        text.push_str(&value.to_string());
    }
    text.push_str("}\n");
    // One write per line under the lock keeps lines whole; a closed stdout must not
    // stop the bot, so write errors are dropped.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_has_milliseconds_and_utc_suffix() {
        let at = DateTime::parse_from_rfc3339("2024-05-01T10:00:00.123456+02:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(rfc3339(at), "2024-05-01T08:00:00.123Z");
    }
}

#[cfg(test)]
mod vocabulary {
    use super::EVENTS;

    /// Every `"name"` that follows an emit call in the crate's source.
    fn emitted() -> Vec<String> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).expect("src readable") {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("source");
            for (i, _) in text.match_indices("emit") {
                let rest = &text[i..];
                let Some(open) = rest.find('(') else { continue };
                let args = rest[open + 1..].trim_start();
                if let Some(quoted) = args.strip_prefix('"') {
                    names.push(quoted[..quoted.find('"').unwrap()].to_owned());
                }
            }
        }
        names
    }

    #[test]
    fn every_event_the_bot_emits_is_in_the_published_vocabulary() {
        // A `bot_event` trigger naming an event the bot never writes (`session_startd`)
        // validated and then never fired: the vocabulary it is checked against must be
        // the one the bot really uses.
        let emitted = emitted();
        assert!(emitted.len() > 10, "found only {emitted:?}");
        for name in &emitted {
            assert!(
                EVENTS.contains(&name.as_str()),
                "{name} is emitted but not in EVENTS"
            );
        }
    }
}
