//! Container events in Docker's format, and the bus that keeps and streams them.
//!
//! The bus is a bounded history with sequence numbers rather than a broadcast channel: a
//! subscriber that replays `since` and then follows live events can never miss one in
//! between, and a slow reader does not lose events until it falls a whole history behind.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// How many events are kept for `since` replays and slow readers.
const HISTORY: usize = 65_536;

/// One event, serialised exactly as Docker's `/events` does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    /// Legacy fields Docker still sends; older clients read them.
    pub status: String,
    pub id: String,
    pub from: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    /// The container's labels, then `name`, `image` and the action's own attributes
    /// (`exitCode` on die, `signal` on kill).
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

impl Event {
    pub(crate) fn container(
        action: &str,
        id: &str,
        image: &str,
        attributes: BTreeMap<String, String>,
        at: DateTime<Utc>,
    ) -> Self {
        let time_nano = at.timestamp_nanos_opt().unwrap_or(i64::MAX);
        Event {
            kind: "container".into(),
            action: action.into(),
            actor: Actor {
                id: id.into(),
                attributes,
            },
            scope: "local".into(),
            status: action.into(),
            id: id.into(),
            from: image.into(),
            time: at.timestamp(),
            time_nano,
        }
    }

    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.actor.attributes.get(key).map(String::as_str)
    }
}

struct History {
    events: VecDeque<Event>,
    /// Sequence number of `events[0]`.
    first_seq: u64,
    closed: bool,
}

impl History {
    fn next_seq(&self) -> u64 {
        self.first_seq + self.events.len() as u64
    }
}

pub(crate) struct EventBus {
    history: Mutex<History>,
    /// Carries the next sequence number; a change wakes every subscriber.
    published: watch::Sender<u64>,
}

impl EventBus {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(EventBus {
            history: Mutex::new(History {
                events: VecDeque::new(),
                first_seq: 0,
                closed: false,
            }),
            published: watch::Sender::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, History> {
        self.history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn publish(&self, event: Event) {
        let mut history = self.lock();
        if history.closed {
            return;
        }
        tracing::debug!(action = %event.action, id = %event.id, "event");
        history.events.push_back(event);
        if history.events.len() > HISTORY {
            history.events.pop_front();
            history.first_seq += 1;
        }
        self.published.send_replace(history.next_seq());
    }

    /// Ends every subscription once it has read what was published before.
    pub(crate) fn close(&self) {
        let mut history = self.lock();
        history.closed = true;
        self.published.send_modify(|_| {});
    }

    /// Follows live events; with `since_nanos`, first replays the kept events at or after it.
    pub(crate) fn subscribe(self: &Arc<Self>, since_nanos: Option<i64>) -> EventSubscription {
        let history = self.lock();
        let cursor = match since_nanos {
            None => history.next_seq(),
            Some(since) => history
                .events
                .iter()
                .position(|event| event.time_nano >= since)
                .map_or(history.next_seq(), |index| history.first_seq + index as u64),
        };
        EventSubscription {
            bus: Arc::clone(self),
            wakeups: self.published.subscribe(),
            cursor,
        }
    }
}

/// A reader of the event bus; see [`crate::Runtime::events`].
pub struct EventSubscription {
    bus: Arc<EventBus>,
    wakeups: watch::Receiver<u64>,
    cursor: u64,
}

impl EventSubscription {
    /// The next event, waiting for it; `None` once the runtime has shut down.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            // Marked seen before reading, so a publish after the read still wakes us.
            self.wakeups.borrow_and_update();
            {
                let history = self.bus.lock();
                // A reader that fell behind the kept history resumes at its oldest event.
                self.cursor = self.cursor.max(history.first_seq);
                let index = (self.cursor - history.first_seq) as usize;
                if let Some(event) = history.events.get(index) {
                    self.cursor += 1;
                    return Some(event.clone());
                }
                if history.closed {
                    return None;
                }
            }
            if self.wakeups.changed().await.is_err() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str, nanos: i64) -> Event {
        let at = DateTime::from_timestamp_nanos(nanos);
        Event::container(action, "abc", "img", BTreeMap::new(), at)
    }

    #[tokio::test]
    async fn subscription_replays_since_and_then_follows_live_events() {
        let bus = EventBus::new();
        bus.publish(event("create", 10));
        bus.publish(event("start", 20));
        let mut replay = bus.subscribe(Some(15));
        let mut live = bus.subscribe(None);
        bus.publish(event("die", 30));
        assert_eq!(replay.next().await.unwrap().action, "start");
        assert_eq!(replay.next().await.unwrap().action, "die");
        assert_eq!(live.next().await.unwrap().action, "die");
        bus.close();
        assert_eq!(live.next().await, None);
    }

    #[test]
    fn event_serialises_with_docker_field_names() {
        let json = serde_json::to_value(event("die", 1_500_000_000)).unwrap();
        for key in [
            "Type", "Action", "Actor", "scope", "status", "id", "from", "time", "timeNano",
        ] {
            assert!(json.get(key).is_some(), "missing {key} in {json}");
        }
        assert!(json["Actor"].get("ID").is_some());
        assert_eq!(json["time"], 1);
    }
}
