//! The command subscription: lost leaves, moved subscriptions, ignored commands, blips,
//! and the meeting-scoped channel beside the uid one.

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
    let own_meeting = json!({"action": "leave", "meeting_id": MEETING_ID});
    assert_eq!(redis.publish(&meeting_channel(), &own_meeting).await, 0);

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

#[rstest]
#[case::on_the_uid_channel(Channel::Uid)]
#[case::on_the_meeting_channel(Channel::Meeting)]
#[tokio::test]
async fn a_lost_connection_resubscribes_both_channels_and_the_next_leave_is_honoured(
    #[case] on: Channel,
) {
    let redis = TestRedis::start();
    let proxy = TcpProxy::for_redis(&redis.url()).await;
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &proxy.redis_url());
    let mut bot = Bot::spawn(&config, &[]);
    bot.wait_ready().await;
    let channels = [meeting_channel(), protocol::bot_commands_channel(&bot.uid)];

    proxy.cut();
    for channel in &channels {
        bot.wait_nth(1, "subscription_lost", |e| e["channel"] == channel.as_str())
            .await;
        let resubscribed = bot
            .wait_nth(1, "subscribed", |e| {
                e["channel"] == channel.as_str() && !e["resubscribe_attempt"].is_null()
            })
            .await;
        assert!(
            resubscribed["resubscribe_attempt"].is_u64(),
            "{resubscribed}"
        );
    }

    // The old connection may linger on the server for a moment; the new one is there.
    let leave = json!({"action": "leave", "meeting_id": MEETING_ID});
    assert!(redis.publish(&on.name(&bot.uid), &leave).await >= 1);
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

    let channels = [meeting_channel(), protocol::bot_commands_channel(&bot.uid)];

    proxy.cut();
    for channel in &channels {
        let lost = bot
            .wait_nth(1, "subscription_lost", |e| e["channel"] == channel.as_str())
            .await;
        assert_eq!(lost["resubscribe"], false);
    }

    let leave = json!({"action": "leave", "meeting_id": MEETING_ID});
    for channel in &channels {
        assert_eq!(redis.publish(channel, &leave).await, 0, "{channel}");
    }
    assert!(bot.is_running());
    assert_eq!(subscribed_channels(&bot), channels);
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
    let failed_channels: Vec<_> = bot
        .events_named("subscribe_failed")
        .iter()
        .map(|e| e["channel"].clone())
        .collect();
    assert_eq!(
        failed_channels,
        [
            meeting_channel(),
            protocol::bot_commands_channel(&config.connection_id)
        ]
    );
    assert!(bot.events_named("subscribed").is_empty());
    // The bot subscribes before it reports anything.
    let names: Vec<_> = bot.events().iter().map(|e| e["event"].clone()).collect();
    let failed_at = names.iter().position(|n| n == "subscribe_failed");
    let joining_at = names.iter().position(|n| n == "status_sent");
    assert!(failed_at < joining_at, "{names:?}");
}

#[tokio::test]
async fn the_bot_subscribes_to_the_meeting_channel_then_the_uid_channel_by_default() {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &redis.url());
    let bot = Bot::spawn(&config, &[]);
    bot.wait_ready().await;

    // The last `subscribed` names the uid channel, as when it was the only one.
    assert_eq!(
        subscribed_channels(&bot),
        [
            meeting_channel(),
            protocol::bot_commands_channel(&config.connection_id)
        ]
    );
}

#[tokio::test]
async fn a_leave_on_the_meeting_channel_for_its_meeting_is_honoured() {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &redis.url());
    let mut bot = Bot::spawn(&config, &[]);
    bot.wait_ready().await;

    let leave = json!({"action": "leave", "meeting_id": MEETING_ID});
    assert_eq!(redis.publish(&meeting_channel(), &leave).await, 1);
    bot.expect_exit_code(0).await;

    let received = bot.events_named("command_received");
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(received[0]["channel"], meeting_channel());
    assert_eq!(received[0]["accepted"], true);
    assert_eq!(received[0]["payload"], leave);
    let leave_started = bot.wait_event("leave_started").await;
    assert_eq!(leave_started["trigger"], "command");
    let terminal = server.terminal();
    assert_eq!(terminal.len(), 1, "{terminal:#?}");
    assert_eq!(terminal[0].body["status"], "completed");
    assert_eq!(terminal[0].body["completion_reason"], "stopped");
    assert_eq!(
        terminal[0].body["connection_id"],
        config.connection_id.as_str()
    );
}

#[tokio::test]
async fn a_leave_on_the_meeting_channel_for_another_meeting_is_ignored() {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &redis.url());
    let mut bot = Bot::spawn(&config, &[]);
    bot.wait_ready().await;

    let other_meeting = json!({"action": "leave", "meeting_id": MEETING_ID + 1});
    assert_eq!(redis.publish(&meeting_channel(), &other_meeting).await, 1);
    let ignored = bot.wait_nth(1, "command_received", |_| true).await;
    assert_eq!(ignored["channel"], meeting_channel());
    assert_eq!(ignored["accepted"], false, "{ignored}");
    assert!(
        ignored["ignored_because"]
            .as_str()
            .is_some_and(|why| why.contains(&format!("for meeting {}", MEETING_ID + 1))),
        "{ignored}"
    );
    assert!(bot.is_running());
    assert!(bot.events_named("leave_started").is_empty());

    // Still listening: its own meeting's leave, published after, is the one honoured.
    let own_meeting = json!({"action": "leave", "meeting_id": MEETING_ID});
    assert_eq!(redis.publish(&meeting_channel(), &own_meeting).await, 1);
    bot.expect_exit_code(0).await;
    let accepted: Vec<_> = bot
        .events_named("command_received")
        .iter()
        .map(|e| e["accepted"].clone())
        .collect();
    assert_eq!(accepted, [false, true]);
    assert_eq!(bot.events_named("leave_started").len(), 1);
    assert_eq!(server.terminal().len(), 1);
}

#[tokio::test]
async fn with_the_meeting_channel_off_a_publish_on_it_reaches_no_receiver() {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &redis.url());
    let mut bot = Bot::spawn(&config, &[("MOCK_BOT_MEETING_CHANNEL", "0")]);
    bot.wait_ready().await;

    let leave = json!({"action": "leave", "meeting_id": MEETING_ID});
    assert_eq!(redis.publish(&meeting_channel(), &leave).await, 0);
    assert!(bot.is_running());

    // The bot was subscribed all along, on the uid channel only.
    assert_eq!(redis.leave(&bot.uid).await, 1);
    bot.expect_exit_code(0).await;
    assert_eq!(
        subscribed_channels(&bot),
        [protocol::bot_commands_channel(&config.connection_id)]
    );
    let received = bot.events_named("command_received");
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(
        received[0]["channel"],
        protocol::bot_commands_channel(&config.connection_id)
    );
}

#[tokio::test]
async fn after_a_uid_switch_the_meeting_channel_still_receives() {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &redis.url());
    let mut bot = Bot::spawn(&config, &[("MOCK_BOT_RESTART_NEW_UID_AFTER_MS", "0")]);

    let changed = bot.wait_event("uid_changed").await;
    let new_uid = changed["new_uid"].as_str().expect("a new uid").to_owned();
    let new_channel = protocol::bot_commands_channel(&new_uid);
    let moved = bot
        .wait_nth(1, "subscribed", |e| e["channel"] == new_channel.as_str())
        .await;
    assert_eq!(
        moved["replaces"],
        protocol::bot_commands_channel(&config.connection_id)
    );
    // Only the uid channel moved: the meeting channel was subscribed once, never replaced.
    let meeting_subscribed: Vec<_> = bot
        .events_named("subscribed")
        .into_iter()
        .filter(|e| e["channel"] == meeting_channel())
        .collect();
    assert_eq!(meeting_subscribed.len(), 1, "{meeting_subscribed:#?}");
    assert!(meeting_subscribed[0]["replaces"].is_null());
    server
        .wait_until("a session under the new uid", |r| {
            r.iter().any(|r| r.body["session_uid"] == new_uid.as_str())
        })
        .await;

    assert_eq!(redis.leave(&config.connection_id).await, 0);
    let leave = json!({"action": "leave", "meeting_id": MEETING_ID});
    assert_eq!(redis.publish(&meeting_channel(), &leave).await, 1);
    bot.expect_exit_code(0).await;

    let received = bot.events_named("command_received");
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(received[0]["channel"], meeting_channel());
    let terminal = server.terminal();
    assert_eq!(terminal.len(), 1);
    assert_eq!(terminal[0].body["connection_id"], new_uid.as_str());
}

/// Which command channel a test publishes on.
#[derive(Debug, Clone, Copy)]
pub enum Channel {
    Uid,
    Meeting,
}

impl Channel {
    fn name(self, uid: &str) -> String {
        match self {
            Channel::Uid => protocol::bot_commands_channel(uid),
            Channel::Meeting => meeting_channel(),
        }
    }
}

/// `bot_commands:meeting:{MEETING_ID}`.
fn meeting_channel() -> String {
    protocol::meeting_commands_channel(MEETING_ID)
}

/// The `channel` of every `subscribed` event so far, in order.
fn subscribed_channels(bot: &Bot) -> Vec<String> {
    bot.events_named("subscribed")
        .iter()
        .map(|e| e["channel"].as_str().expect("a channel").to_owned())
        .collect()
}
