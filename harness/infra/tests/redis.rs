use std::time::Duration;

use infra::process::wait_until_gone;
use infra::redis::{RedisServer, test_redis};

#[tokio::test]
async fn a_throwaway_redis_answers_ping_and_is_gone_after_drop() {
    let server = RedisServer::start_throwaway().unwrap();
    let dir = server.dir().unwrap().to_owned();
    let pid = server.pid().unwrap();
    assert!(server.is_throwaway());

    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
    drop(conn);
    drop(server);

    assert!(!dir.exists(), "{} is still there", dir.display());
    assert!(
        wait_until_gone(pid, Duration::ZERO),
        "redis {pid} still runs"
    );
}

#[test]
fn test_redis_uses_redis_url_or_gives_each_caller_its_own_server() {
    let first = test_redis().unwrap();
    let second = test_redis().unwrap();
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => {
            assert!(!first.is_throwaway());
            assert_eq!(first.url(), url.trim());
        }
        _ => {
            assert!(first.is_throwaway() && second.is_throwaway());
            assert_ne!(first.url(), second.url());
        }
    }
}
