//! Real Redis and Postgres through the proxy: the link works, `reset_peer` breaks a live
//! connection, and a pub/sub subscriber behind a reset link sees its stream end.

mod common;

use std::str::FromStr;

use common::{Rig, within};
use fault_proxy::model::{NewProxy, Proxy, Stream, ToxicKind};
use futures::StreamExt;
use redis::{AsyncCommands, ConnectionAddr};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// `$REDIS_URL`, else a throwaway server (kept alive by the returned guard).
async fn redis() -> infra::redis::RedisServer {
    tokio::task::spawn_blocking(infra::redis::test_redis)
        .await
        .unwrap()
        .expect("a Redis for the test")
}

/// A proxy in front of the Redis at `url`, and a client that goes through it.
async fn redis_through(rig: &Rig, url: &str) -> (Proxy, redis::Client) {
    let direct = redis::Client::open(url).unwrap();
    let info = direct.get_connection_info().clone();
    let ConnectionAddr::Tcp(host, port) = info.addr().clone() else {
        panic!("Redis at {url} is not over TCP");
    };
    let spec = NewProxy::new("redis", "127.0.0.1:0", format!("{host}:{port}"));
    let proxy = rig.client.create_proxy(&spec).await.unwrap();
    let listen: std::net::SocketAddr = proxy.listen.parse().unwrap();
    let via = info.set_addr(ConnectionAddr::Tcp(listen.ip().to_string(), listen.port()));
    (proxy, redis::Client::open(via).unwrap())
}

#[tokio::test]
async fn redis_answers_ping_through_the_proxy() {
    let server = redis().await;
    let rig = Rig::new().await;
    let (_, via) = redis_through(&rig, server.url()).await;
    let mut conn = via.get_multiplexed_async_connection().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn reset_peer_breaks_a_live_redis_connection() {
    for stream in common::BOTH {
        let server = redis().await;
        let rig = Rig::new().await;
        let (_, via) = redis_through(&rig, server.url()).await;
        let mut conn = via.get_multiplexed_async_connection().await.unwrap();
        let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
        rig.add("redis", stream, ToxicKind::ResetPeer { timeout: 0 })
            .await;
        let broken = within(
            "the failed PING",
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await;
        let err = broken.expect_err("a PING on a reset connection fails");
        assert!(
            err.is_io_error() || err.is_connection_dropped(),
            "{stream}: {err}"
        );
    }
}

#[tokio::test]
async fn a_pubsub_subscriber_behind_a_reset_link_sees_its_stream_end() {
    let server = redis().await;
    let rig = Rig::new().await;
    let (_, via) = redis_through(&rig, server.url()).await;
    // Channels are global to a Redis: a name of this test's own.
    let channel = format!("fault-proxy-test-{}", std::process::id());
    let mut pubsub = via.get_async_pubsub().await.unwrap();
    pubsub.subscribe(&channel).await.unwrap();
    let mut messages = pubsub.into_on_message();

    let mut direct = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let receivers: i64 = direct.publish(&channel, "before").await.unwrap();
    assert_eq!(receivers, 1);
    let first = within("the first message", messages.next())
        .await
        .expect("a message");
    assert_eq!(first.get_payload::<String>().unwrap(), "before");

    rig.add(
        "redis",
        Stream::Downstream,
        ToxicKind::ResetPeer { timeout: 0 },
    )
    .await;
    assert!(
        within("the end of the stream", messages.next())
            .await
            .is_none(),
        "the stream ends"
    );
}

#[tokio::test]
async fn postgres_answers_through_the_proxy_until_reset_peer_breaks_the_connection() {
    let database = infra::postgres::test_database()
        .await
        .expect("a test database");
    let options = PgConnectOptions::from_str(database.url()).unwrap();
    let rig = Rig::new().await;
    let upstream = format!("{}:{}", options.get_host(), options.get_port());
    let proxy = rig
        .client
        .create_proxy(&NewProxy::new("pg", "127.0.0.1:0", upstream))
        .await
        .unwrap();
    let listen: std::net::SocketAddr = proxy.listen.parse().unwrap();
    let via = options.clone().host("127.0.0.1").port(listen.port());
    let mut conn = PgConnection::connect_with(&via).await.unwrap();
    let one: i32 = sqlx::query_scalar("select 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);

    rig.add(
        "pg",
        Stream::Downstream,
        ToxicKind::ResetPeer { timeout: 0 },
    )
    .await;
    let broken = within(
        "the failed query",
        sqlx::query_scalar::<_, i32>("select 1").fetch_one(&mut conn),
    )
    .await;
    let err = broken.expect_err("a query on a reset connection fails");
    assert!(matches!(err, sqlx::Error::Io(_)), "{err:?}");
    drop(conn);
    rig.client
        .remove_toxic("pg", "reset_peer_downstream")
        .await
        .unwrap();
    // A new connection works once the toxic is gone.
    let mut again = PgConnection::connect_with(&via).await.unwrap();
    let two: i32 = sqlx::query_scalar("select 2")
        .fetch_one(&mut again)
        .await
        .unwrap();
    assert_eq!(two, 2);
    let _ = again.close().await;
    drop(database);
}
