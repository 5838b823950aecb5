//! The Redis subscription to `bot_commands:{uid}`: at-most-once, like the real bot's.
//!
//! A task owns the pub/sub connection, forwards every message, follows the current uid (a
//! restart under a new uid moves the subscription) and, when the stream ends (connection
//! reset), resubscribes with bounded backoff as node-redis does. Whatever is published while
//! it is not subscribed is lost.

use std::time::Duration;

use futures::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use serde_json::json;
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

/// Starts the subscription task.
pub fn spawn(
    redis_url: String,
    behaviour: SubscribeBehaviour,
    uid: watch::Receiver<String>,
    events: EventLog,
) -> Subscription {
    let (tx, messages) = mpsc::channel(QUEUE);
    let (settled_tx, settled) = oneshot::channel();
    let subscriber = Subscriber {
        redis_url,
        behaviour,
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
    fn channel(&self) -> String {
        protocol::bot_commands_channel(&self.uid.borrow())
    }

    async fn run(mut self, settled: oneshot::Sender<()>) {
        let connection = match self.behaviour.mode {
            SubscribeMode::Fail => {
                self.events.emit(
                    "subscribe_failed",
                    json!({"channel": self.channel(), "error": "scripted by MOCK_BOT_SUBSCRIBE=fail"}),
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

    /// Connects and subscribes to the current channel, reporting the outcome.
    async fn subscribe_or_log(&mut self, attempt: Option<u32>) -> Option<Connection> {
        // Marks the uid seen: a change from here on moves the subscription.
        let channel = protocol::bot_commands_channel(&self.uid.borrow_and_update());
        // Past `MOCK_BOT_SUBSCRIBE_TIMEOUT_MS` the attempt counts as failed (the legacy
        // bot's client would keep trying in the background, with commands lost all the same).
        let timeout = self.behaviour.timeout;
        match tokio::time::timeout(timeout, connect(&self.redis_url, &channel)).await {
            Ok(Ok((sink, stream))) => {
                let mut fields = json!({ "channel": channel });
                if let Some(attempt) = attempt {
                    fields["resubscribe_attempt"] = attempt.into();
                }
                self.events.emit("subscribed", fields);
                Some(Connection {
                    sink,
                    stream,
                    channel,
                })
            }
            Ok(Err(error)) => {
                self.report_failure(&channel, &error, attempt);
                None
            }
            Err(_) => {
                self.report_failure(&channel, &SubscribeError::Timeout(timeout), attempt);
                None
            }
        }
    }

    fn report_failure(&self, channel: &str, error: &SubscribeError, attempt: Option<u32>) {
        match attempt {
            None => {
                tracing::warn!("failed to {error}; going on without commands");
                self.events.emit(
                    "subscribe_failed",
                    json!({"channel": channel, "error": error.to_string()}),
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
                        self.events.emit(
                            "subscription_lost",
                            json!({"channel": connection.channel, "resubscribe": self.behaviour.resubscribe}),
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

    /// Unsubscribes the old channel, then subscribes the new one, so that once
    /// `subscribed` is out a publish on the old channel reaches nobody.
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
        self.events.emit(
            "subscribe_failed",
            json!({
                "channel": self.channel(),
                "error": format!("resubscribe after {RESUBSCRIBE_ATTEMPTS} attempts; going on without commands"),
            }),
        );
        None
    }
}

struct Connection {
    sink: PubSubSink,
    stream: PubSubStream,
    channel: String,
}

async fn connect(url: &str, channel: &str) -> Result<(PubSubSink, PubSubStream), SubscribeError> {
    let connect_error = |source| SubscribeError::Connect {
        url: url.to_owned(),
        source,
    };
    let client = redis::Client::open(url).map_err(connect_error)?;
    let mut pubsub = client.get_async_pubsub().await.map_err(connect_error)?;
    pubsub
        .subscribe(channel)
        .await
        .map_err(|source| SubscribeError::Subscribe {
            channel: channel.to_owned(),
            source,
        })?;
    Ok(pubsub.split())
}
