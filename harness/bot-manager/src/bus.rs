//! Redis: command and status publishing, and the `current_uid` mapping, in the wire of
//! the production version the service speaks (`--wire`).

use std::time::Duration;

use protocol::{BotCommand, MeetingStatus, Platform, StatusEvent};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("connect to Redis at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("talk to Redis: {0}")]
    Command(#[from] redis::RedisError),
}

/// Which production version's Redis protocol the service speaks (protocol.md sections 6
/// and 11), independent of its profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Wire {
    /// The incident-era version's: statuses on `bm:meeting:{user}:{platform}:{native}:status`,
    /// the `current_uid` key, the leave routed as the profile says.
    Incident,
    /// A later version's: every command on `bot_commands:meeting:{id}` with `meeting_id`,
    /// statuses on `bm:meeting:{id}:status`, no `current_uid` key.
    Later,
}

#[derive(Clone)]
pub struct Bus {
    conn: ConnectionManager,
    wire: Wire,
}

impl Bus {
    pub async fn connect(url: &str, timeout: Duration, wire: Wire) -> Result<Self, BusError> {
        let connect_err = |source| BusError::Connect {
            url: url.to_owned(),
            source,
        };
        let client = redis::Client::open(url).map_err(connect_err)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(connect_err)?;
        Ok(Bus { conn, wire })
    }

    /// Publishes a command; answers how many subscribers received it (legacy ignores it).
    pub async fn publish_command(
        &self,
        channel: &str,
        command: &BotCommand,
    ) -> Result<i64, BusError> {
        let payload = serde_json::to_string(command).expect("commands serialise");
        let mut conn = self.conn.clone();
        Ok(conn.publish(channel, payload).await?)
    }

    pub async fn publish_status(
        &self,
        meeting_id: i32,
        user_id: i32,
        platform: Platform,
        native_id: &str,
        status: MeetingStatus,
    ) -> Result<i64, BusError> {
        let event = StatusEvent::new(
            platform,
            native_id,
            status,
            crate::db::rfc3339(chrono::Utc::now()),
        );
        let payload = serde_json::to_string(&event).expect("status events serialise");
        self.publish_on_status_channel(meeting_id, user_id, platform, native_id, payload)
            .await
    }

    /// Publishes a status outside the machine by its text, in the same event shape:
    /// production announces the `error` it leaves a row in after a failed start.
    pub async fn publish_status_text(
        &self,
        meeting_id: i32,
        user_id: i32,
        platform: Platform,
        native_id: &str,
        status: &str,
    ) -> Result<i64, BusError> {
        let event = StatusEvent::new(
            platform,
            native_id,
            MeetingStatus::Requested,
            crate::db::rfc3339(chrono::Utc::now()),
        );
        let mut payload = serde_json::to_value(&event).expect("status events serialise");
        payload["payload"]["status"] = serde_json::Value::String(status.to_owned());
        self.publish_on_status_channel(
            meeting_id,
            user_id,
            platform,
            native_id,
            payload.to_string(),
        )
        .await
    }

    async fn publish_on_status_channel(
        &self,
        meeting_id: i32,
        user_id: i32,
        platform: Platform,
        native_id: &str,
        payload: String,
    ) -> Result<i64, BusError> {
        let channel = match self.wire {
            Wire::Incident => protocol::status_channel(user_id.into(), platform, native_id),
            Wire::Later => protocol::meeting_status_channel(meeting_id.into()),
        };
        let mut conn = self.conn.clone();
        Ok(conn.publish(channel, payload).await?)
    }

    /// Writes the `current_uid` key; the later wire has none, and writes nothing.
    pub async fn set_current_uid(
        &self,
        platform: Platform,
        native_id: &str,
        uid: &str,
        ttl_s: u64,
    ) -> Result<(), BusError> {
        if self.wire == Wire::Later {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let _: () = conn
            .set_ex(protocol::current_uid_key(platform, native_id), uid, ttl_s)
            .await?;
        Ok(())
    }

    /// Reads the `current_uid` key; under the later wire there is none to find.
    pub async fn current_uid(
        &self,
        platform: Platform,
        native_id: &str,
    ) -> Result<Option<String>, BusError> {
        if self.wire == Wire::Later {
            return Ok(None);
        }
        let mut conn = self.conn.clone();
        Ok(conn
            .get(protocol::current_uid_key(platform, native_id))
            .await?)
    }
}
