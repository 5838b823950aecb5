//! The Redis subscription to `bot_commands:{uid}` and, unless `MOCK_BOT_MEETING_CHANNEL=0`,
//! `bot_commands:meeting:{meeting_id}`: at-most-once, like the real bot's.
//!
//! A task owns the one pub/sub connection carrying both channels, forwards every message,
//! follows the current uid (a restart under a new uid moves the uid channel only) and, when
//! the stream ends (connection reset), resubscribes both with bounded backoff as node-redis
//! does. Whatever is published while it is not subscribed is lost.
//!
//! Both channels share each attempt's fate: one connect and subscribe within
//! `MOCK_BOT_SUBSCRIBE_TIMEOUT_MS`, then one `subscribed` (or `subscribe_failed`,
//! `subscription_lost`) event per channel, the meeting channel's first, so that the last
//! `subscribed` names the uid channel, as it did when that was the only one.

use std::time::Duration;

use futures::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use crate::behaviour::{SubscribeBehaviour, SubscribeMode};
use crate::events::EventLog;

/// Resubscription backoff: doubling from the first delay up to the cap, for at most
/// `RESUBSCRIBE_ATTEMPTS` attempts.
const RESUBSCRIBE_FIRST_DELAY: Duration = Duration::from_millis(50);
const RESUBSCRIBE_MAX_DELAY: Duration = Duration::from_secs(2);
const RESUBSCRIBE_ATTEMPTS: u32 = 30;
/// Commands not yet handled by the lifecycle; more are dropped, as a stuck bot would.
const QUEUE: usize = 64;

/// One message as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub channel: String,
    pub payload: String,
}

pub struct Subscription {
    /// Messages in arrival order; closed once the task gives up for good.
    pub messages: mpsc::Receiver<Received>,
    /// Fires when the first subscription attempt has settled, either way (`late`: at once).
    pub settled: oneshot::Receiver<()>,
}

/// Starts the subscription task for the bot of meeting `meeting_id`.
pub fn spawn(
    redis_url: String,
    behaviour: SubscribeBehaviour,
    meeting_id: i64,
    uid: watch::Receiver<String>,
    events: EventLog,
) -> Subscription {
    let (tx, messages) = mpsc::channel(QUEUE);
    let (settled_tx, settled) = oneshot::channel();
    let meeting_channel = behaviour
        .meeting_channel
        .then(|| protocol::meeting_commands_channel(meeting_id));
    let subscriber = Subscriber {
        redis_url,
        behaviour,
        meeting_channel,
        uid,
        events,
        tx,
    };
    tokio::spawn(subscriber.run(settled_tx));
    Subscription { messages, settled }
}

struct Subscriber {
    redis_url: String,
    behaviour: SubscribeBehaviour,
    /// `bot_commands:meeting:{meeting_id}`, unless `MOCK_BOT_MEETING_CHANNEL=0`.
    meeting_channel: Option<String>,
    uid: watch::Receiver<String>,
    events: EventLog,
    tx: mpsc::Sender<Received>,
}

#[derive(Debug, thiserror::Error)]
enum SubscribeError {
    #[error("connect to Redis at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("subscribe to {channel}: {source}")]
    Subscribe {
        channel: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("connect and subscribe within {} ms (MOCK_BOT_SUBSCRIBE_TIMEOUT_MS)", .0.as_millis())]
    Timeout(Duration),
}

impl Subscriber {
    /// Every channel for the current uid.
    fn channels(&self) -> Vec<String> {
        self.channels_with(protocol::bot_commands_channel(&self.uid.borrow()))
    }

    /// The meeting channel (if any), then `uid_channel`: the subscription order.
    fn channels_with(&self, uid_channel: String) -> Vec<String> {
        self.meeting_channel
            .iter()
            .cloned()
            .chain([uid_channel])
            .collect()
    }

    /// One event per channel, each with its `channel` and the shared `fields`.
    fn emit_per_channel(&self, event: &str, channels: &[String], fields: &Value) {
        for channel in channels {
            let mut line = json!({ "channel": channel });
            merge(&mut line, fields);
            self.events.emit(event, line);
        }
    }

    async fn run(mut self, settled: oneshot::Sender<()>) {
        let connection = match self.behaviour.mode {
            SubscribeMode::Fail => {
                self.emit_per_channel(
                    "subscribe_failed",
                    &self.channels(),
                    &json!({"error": "scripted by MOCK_BOT_SUBSCRIBE=fail"}),
                );
                let _ = settled.send(());
                return;
            }
            SubscribeMode::Late => {
                // The lifecycle goes on while the subscription is still missing.
                let _ = settled.send(());
                tokio::time::sleep(self.behaviour.delay).await;
                self.subscribe_or_log(None).await
            }
            SubscribeMode::Ok => {
                let connection = self.subscribe_or_log(None).await;
                let _ = settled.send(());
                connection
            }
        };
        if let Some(connection) = connection {
            self.follow(connection).await;
        }
    }

    /// Connects and subscribes to every current channel, reporting the outcome.
    async fn subscribe_or_log(&mut self, attempt: Option<u32>) -> Option<Connection> {
        // Marks the uid seen: a change from here on moves the subscription.
        let uid_channel = protocol::bot_commands_channel(&self.uid.borrow_and_update());
        let channels = self.channels_with(uid_channel.clone());
        // Past `MOCK_BOT_SUBSCRIBE_TIMEOUT_MS` the attempt counts as failed (the legacy
        // bot's client would keep trying in the background, with commands lost all the same).
        let timeout = self.behaviour.timeout;
        match tokio::time::timeout(timeout, connect(&self.redis_url, &channels)).await {
            Ok(Ok((sink, stream))) => {
                let mut fields = json!({});
                if let Some(attempt) = attempt {
                    fields["resubscribe_attempt"] = attempt.into();
                }
                self.emit_per_channel("subscribed", &channels, &fields);
                Some(Connection {
                    sink,
                    stream,
                    channel: uid_channel,
                })
            }
            Ok(Err(error)) => {
                self.report_failure(&channels, &error, attempt);
                None
            }
            Err(_) => {
                self.report_failure(&channels, &SubscribeError::Timeout(timeout), attempt);
                None
            }
        }
    }

    fn report_failure(&self, channels: &[String], error: &SubscribeError, attempt: Option<u32>) {
        match attempt {
            None => {
                tracing::warn!("failed to {error}; going on without commands");
                self.emit_per_channel(
                    "subscribe_failed",
                    channels,
                    &json!({"error": error.to_string()}),
                );
            }
            Some(attempt) => {
                tracing::warn!("failed to {error} (resubscribe attempt {attempt})");
            }
        }
    }

    /// Forwards messages until the lifecycle stops listening or the subscription is gone
    /// for good.
    async fn follow(mut self, mut connection: Connection) {
        let mut uid_followed = true;
        loop {
            tokio::select! {
                message = connection.stream.next() => match message {
                    Some(message) => {
                        let received = Received {
                            channel: message.get_channel_name().to_owned(),
                            payload: message
                                .get_payload::<String>()
                                .unwrap_or_else(|e| format!("<unreadable payload: {e}>")),
                        };
                        if self.forward(received).is_err() {
                            return;
                        }
                    }
                    None => {
                        let channels = self.channels_with(connection.channel.clone());
                        self.emit_per_channel(
                            "subscription_lost",
                            &channels,
                            &json!({"resubscribe": self.behaviour.resubscribe}),
                        );
                        if !self.behaviour.resubscribe {
                            return;
                        }
                        match self.resubscribe().await {
                            Some(fresh) => connection = fresh,
                            None => return,
                        }
                    }
                },
                changed = self.uid.changed(), if uid_followed => {
                    if changed.is_err() {
                        // The lifecycle is gone; keep the channel we have.
                        uid_followed = false;
                        continue;
                    }
                    self.move_subscription(&mut connection).await;
                }
            }
        }
    }

    fn forward(&self, received: Received) -> Result<(), ()> {
        match self.tx.try_send(received) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(dropped)) => {
                tracing::warn!(channel = %dropped.channel, "command queue full; dropping a command");
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
        }
    }

    /// Unsubscribes the old uid channel, then subscribes the new one, so that once
    /// `subscribed` is out a publish on the old channel reaches nobody. The meeting channel
    /// stays as it is.
    async fn move_subscription(&mut self, connection: &mut Connection) {
        let channel = protocol::bot_commands_channel(&self.uid.borrow_and_update());
        if channel == connection.channel {
            return;
        }
        let old = std::mem::replace(&mut connection.channel, channel.clone());
        if let Err(error) = connection.sink.unsubscribe(&old).await {
            tracing::warn!("failed to unsubscribe from {old}: {error}");
        }
        match connection.sink.subscribe(&channel).await {
            Ok(()) => self
                .events
                .emit("subscribed", json!({"channel": channel, "replaces": old})),
            // A dead connection also ends the stream, which resubscribes to `channel`.
            Err(error) => self.events.emit(
                "subscribe_failed",
                json!({"channel": channel, "error": format!("subscribe to {channel}: {error}")}),
            ),
        }
    }

    async fn resubscribe(&mut self) -> Option<Connection> {
        let mut delay = RESUBSCRIBE_FIRST_DELAY;
        for attempt in 1..=RESUBSCRIBE_ATTEMPTS {
            tokio::time::sleep(delay).await;
            if let Some(connection) = self.subscribe_or_log(Some(attempt)).await {
                return Some(connection);
            }
            delay = (delay * 2).min(RESUBSCRIBE_MAX_DELAY);
        }
        self.emit_per_channel(
            "subscribe_failed",
            &self.channels(),
            &json!({
                "error": format!("resubscribe after {RESUBSCRIBE_ATTEMPTS} attempts; going on without commands"),
            }),
        );
        None
    }
}

struct Connection {
    sink: PubSubSink,
    stream: PubSubStream,
    /// The uid channel (`bot_commands:{uid}`); the meeting channel never moves.
    channel: String,
}

/// One connection subscribed to every channel, each confirmed by the server, in order.
async fn connect(
    url: &str,
    channels: &[String],
) -> Result<(PubSubSink, PubSubStream), SubscribeError> {
    let connect_error = |source| SubscribeError::Connect {
        url: url.to_owned(),
        source,
    };
    let client = redis::Client::open(url).map_err(connect_error)?;
    let mut pubsub = client.get_async_pubsub().await.map_err(connect_error)?;
    for channel in channels {
        pubsub
            .subscribe(channel)
            .await
            .map_err(|source| SubscribeError::Subscribe {
                channel: channel.clone(),
                source,
            })?;
    }
    Ok(pubsub.split())
}

fn merge(into: &mut Value, fields: &Value) {
    if let (Value::Object(into), Value::Object(fields)) = (into, fields) {
        into.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}
