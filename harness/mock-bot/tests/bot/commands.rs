//! The command subscription: lost leaves, moved subscriptions, ignored commands, blips.

use rstest::rstest;
use serde_json::json;

use crate::support::{
    Bot, CallbackServer, MEETING_ID, SilentServer, TcpProxy, TestRedis, bot_config,
};

#[rstest]
#[case::failed(&[("MOCK_BOT_SUBSCRIBE", "fail")])]
#[case::not_yet(&[("MOCK_BOT_SUBSCRIBE", "late"), ("MOCK_BOT_SUBSCRIBE_DELAY_MS", "3600000")])]
#[tokio::test]
async fn without_a_subscription_a_published_leave_reaches_nobody(#[case] env: &[(&str, &str)]) {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &redis.url());
    let mut bot = Bot::spawn(&config, env);

    // The bot joins all the same.
    bot.wait_nth(1, "status_sent", |e| e["status"] == "active")
        .await;
    assert_eq!(redis.leave(&bot.uid).await, 0);

    assert!(bot.is_running());
    assert!(bot.events_named("subscribed").is_empty());
    assert!(bot.events_named("command_received").is_empty());
}

#[tokio::test]
async fn restart_under_a_new_uid_moves_the_subscription() {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &redis.url());
    let mut bot = Bot::spawn(&config, &[("MOCK_BOT_RESTART_NEW_UID_AFTER_MS", "0")]);

    let changed = bot.wait_event("uid_changed").await;
    let new_uid = changed["new_uid"].as_str().expect("a new uid").to_owned();
    assert_ne!(new_uid, config.connection_id);
    let new_channel = protocol::bot_commands_channel(&new_uid);
    bot.wait_nth(1, "subscribed", |e| e["channel"] == new_channel.as_str())
        .await;
    server
        .wait_until("a session under the new uid", |r| {
            r.iter().any(|r| r.body["session_uid"] == new_uid.as_str())
        })
        .await;

    assert_eq!(redis.leave(&config.connection_id).await, 0);
    assert_eq!(redis.leave(&new_uid).await, 1);
    bot.expect_exit_code(0).await;

    let terminal = server.terminal();
    assert_eq!(terminal.len(), 1);
    assert_eq!(terminal[0].body["connection_id"], new_uid.as_str());
}

#[tokio::test]
async fn commands_for_another_meeting_and_reconfigure_are_only_logged() {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &redis.url());
    let mut bot = Bot::spawn(&config, &[]);
    let channel = protocol::bot_commands_channel(&config.connection_id);
    bot.wait_ready().await;

    let other_meeting = json!({"action": "leave", "meeting_id": MEETING_ID + 1});
    let reconfigure = json!({"action": "reconfigure", "uid": config.connection_id, "language": "de", "task": "translate"});
    for (n, command) in [other_meeting, reconfigure, json!({"action": "dance"})]
        .iter()
        .enumerate()
    {
        assert_eq!(redis.publish(&channel, command).await, 1);
        let received = bot.wait_nth(n + 1, "command_received", |_| true).await;
        assert_eq!(received["accepted"], false, "{received}");
        assert_eq!(&received["payload"], command);
    }
    assert!(bot.is_running());
    assert!(bot.events_named("leave_started").is_empty());

    let own_meeting = json!({"action": "leave", "meeting_id": MEETING_ID});
    assert_eq!(redis.publish(&channel, &own_meeting).await, 1);
    bot.expect_exit_code(0).await;
    assert_eq!(server.terminal().len(), 1);
}

#[tokio::test]
async fn a_lost_connection_resubscribes_and_the_next_leave_is_honoured() {
    let redis = TestRedis::start();
    let proxy = TcpProxy::for_redis(&redis.url()).await;
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &proxy.redis_url());
    let mut bot = Bot::spawn(&config, &[]);
    bot.wait_ready().await;

    proxy.cut();
    bot.wait_event("subscription_lost").await;
    let resubscribed = bot.wait_nth(2, "subscribed", |_| true).await;
    assert!(
        resubscribed["resubscribe_attempt"].is_u64(),
        "{resubscribed}"
    );

    // The old connection may linger on the server for a moment; the new one is there.
    assert!(redis.leave(&bot.uid).await >= 1);
    bot.expect_exit_code(0).await;
    assert_eq!(server.terminal().len(), 1);
}

#[tokio::test]
async fn without_resubscribe_a_lost_connection_loses_every_later_leave() {
    let redis = TestRedis::start();
    let proxy = TcpProxy::for_redis(&redis.url()).await;
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &proxy.redis_url());
    let mut bot = Bot::spawn(&config, &[("MOCK_BOT_RESUBSCRIBE", "0")]);
    bot.wait_ready().await;

    proxy.cut();
    let lost = bot.wait_event("subscription_lost").await;
    assert_eq!(lost["resubscribe"], false);

    assert_eq!(redis.leave(&bot.uid).await, 0);
    assert!(bot.is_running());
    assert_eq!(bot.events_named("subscribed").len(), 1);
}

#[tokio::test]
async fn a_redis_that_never_answers_fails_the_subscription_at_the_subscribe_timeout_and_the_bot_joins_anyway()
 {
    // Regression: the connect/subscribe timeout was a fixed 5 s, so no scenario could
    // shorten how long a wedged Redis holds up joining.
    let redis = SilentServer::start().await;
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &redis.redis_url());
    let bot = Bot::spawn(&config, &[("MOCK_BOT_SUBSCRIBE_TIMEOUT_MS", "50")]);

    let failed = bot.wait_event("subscribe_failed").await;
    bot.wait_nth(1, "status_sent", |e| e["status"] == "active")
        .await;

    let error = failed["error"].as_str().expect("an error");
    assert!(error.contains("within 50 ms"), "{error}");
    assert!(bot.events_named("subscribed").is_empty());
    // The bot subscribes before it reports anything.
    let names: Vec<_> = bot.events().iter().map(|e| e["event"].clone()).collect();
    let failed_at = names.iter().position(|n| n == "subscribe_failed");
    let joining_at = names.iter().position(|n| n == "status_sent");
    assert!(failed_at < joining_at, "{names:?}");
}
