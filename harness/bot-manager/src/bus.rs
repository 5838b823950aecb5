//! Redis: command and status publishing, and the `current_uid` mapping.

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

#[derive(Clone)]
pub struct Bus {
    conn: ConnectionManager,
}

impl Bus {
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, BusError> {
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
        Ok(Bus { conn })
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
        let channel = protocol::status_channel(user_id.into(), platform, native_id);
        let payload = serde_json::to_string(&event).expect("status events serialise");
        let mut conn = self.conn.clone();
        Ok(conn.publish(channel, payload).await?)
    }

    pub async fn set_current_uid(
        &self,
        platform: Platform,
        native_id: &str,
        uid: &str,
        ttl_s: u64,
    ) -> Result<(), BusError> {
        let mut conn = self.conn.clone();
        let _: () = conn
            .set_ex(protocol::current_uid_key(platform, native_id), uid, ttl_s)
            .await?;
        Ok(())
    }

    pub async fn current_uid(
        &self,
        platform: Platform,
        native_id: &str,
    ) -> Result<Option<String>, BusError> {
        let mut conn = self.conn.clone();
        Ok(conn
            .get(protocol::current_uid_key(platform, native_id))
            .await?)
    }
}
