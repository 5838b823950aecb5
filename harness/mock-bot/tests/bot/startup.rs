//! What the bot reads from its environment: bad values stop it, aliases and the URL
//! overrides route it.

use std::process::Stdio;

use rstest::rstest;

use crate::support::{
    Bot, CallbackServer, DEADLINE, EXITED_PATH, STATUS_CHANGE_PATH, TestRedis, bot_config,
    refused_port,
};

const CALLBACK_URL: &str = "http://bot-manager:8080/bots/internal/callback/exited";

fn valid_config() -> String {
    serde_json::to_string(&bot_config(CALLBACK_URL, "redis://redis:6379/0")).expect("JSON")
}

fn invalid_redis_url_config() -> String {
    serde_json::to_string(&bot_config(CALLBACK_URL, "http://redis:6379")).expect("JSON")
}

/// A valid `BOT_CONFIG` with `change` applied to it.
fn config_with(change: fn(&mut protocol::BotConfig)) -> String {
    let mut config = bot_config(CALLBACK_URL, "redis://redis:6379/0");
    change(&mut config);
    serde_json::to_string(&config).expect("JSON")
}

#[rstest]
#[case::missing_config(None, &[], "BOT_CONFIG")]
#[case::malformed_config(Some("{".to_owned()), &[], "parse BOT_CONFIG")]
#[case::invalid_config(Some(invalid_redis_url_config()), &[], "redisUrl")]
#[case::unknown_behaviour(Some(valid_config()), &[("MOCK_BOT_SHOUT", "1")], "MOCK_BOT_SHOUT")]
#[case::unknown_value(Some(valid_config()), &[("MOCK_BOT_CALLBACK", "twice")], "MOCK_BOT_CALLBACK=\"twice\"")]
#[case::not_a_number(Some(valid_config()), &[("MOCK_BOT_RECONNECTS", "many")], "MOCK_BOT_RECONNECTS=\"many\"")]
#[case::malformed_alias(Some(valid_config()), &[("STOPFLOW_HOST_ALIASES", "bot-manager")], "STOPFLOW_HOST_ALIASES")]
#[case::redis_url_not_redis(Some(valid_config()), &[("MOCK_BOT_REDIS_URL", "http://127.0.0.1:6379")], "MOCK_BOT_REDIS_URL=\"http://127.0.0.1:6379\"")]
#[case::redis_url_not_a_url(Some(valid_config()), &[("MOCK_BOT_REDIS_URL", "127.0.0.1:6379")], "MOCK_BOT_REDIS_URL=\"127.0.0.1:6379\"")]
#[case::callback_base_with_a_path(Some(valid_config()), &[("MOCK_BOT_CALLBACK_BASE", "http://127.0.0.1:4567/bots")], "MOCK_BOT_CALLBACK_BASE=\"http://127.0.0.1:4567/bots\"")]
#[case::callback_base_not_http(Some(valid_config()), &[("MOCK_BOT_CALLBACK_BASE", "127.0.0.1:4567")], "MOCK_BOT_CALLBACK_BASE=\"127.0.0.1:4567\"")]
#[case::extreme_skew(Some(valid_config()), &[("MOCK_BOT_RECONNECT_SKEW_MS", "-9223372036854775808")], "MOCK_BOT_RECONNECT_SKEW_MS=\"-9223372036854775808\"")]
#[case::delay_beyond_a_day(Some(valid_config()), &[("MOCK_BOT_SIGTERM_GRACE_MS", "18446744073709551615")], "MOCK_BOT_SIGTERM_GRACE_MS=\"18446744073709551615\"")]
#[case::count_beyond_its_bound(Some(valid_config()), &[("MOCK_BOT_DUPLICATE_TERMINAL", "4294967295")], "MOCK_BOT_DUPLICATE_TERMINAL=\"4294967295\"")]
#[case::config_timeout_beyond_a_day(Some(config_with(|c| c.automatic_leave.waiting_room_timeout = u64::MAX)), &[], "automaticLeave.waitingRoomTimeout is 18446744073709551615")]
#[case::config_meeting_id_not_positive(Some(config_with(|c| c.meeting_id = i64::MIN)), &[], "meeting_id is -9223372036854775808")]
#[case::secret_no_header_can_carry(Some(config_with(|c| c.callback_secret = Some("a\nb".into()))), &[], "BOT_CONFIG.callbackSecret")]
#[tokio::test]
async fn bad_environment_exits_1_with_one_line_naming_the_problem(
    #[case] config: Option<String>,
    #[case] env: &[(&str, &str)],
    #[case] named: &str,
) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mock-bot"));
    cmd.env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(config) = config {
        cmd.env("BOT_CONFIG", config);
    }
    infra::process::die_with_parent_tokio(&mut cmd);
    let output = tokio::time::timeout(DEADLINE, cmd.output())
        .await
        .expect("the bot exits")
        .expect("run mock-bot");

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "stderr: {stderr}");
    assert!(stderr.contains(named), "stderr: {stderr}");
    assert!(stderr.contains("failed to"), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    let event: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON event on stdout");
    assert_eq!(event["event"], "config_error");
}

// Regression: an extreme `MOCK_BOT_RECONNECT_SKEW_MS` passed the parser; the bot then
// panicked at its first reconnect session (exit 101), without a terminal callback.
#[tokio::test]
async fn an_extreme_reconnect_skew_stops_the_bot_at_its_start_naming_the_variable_and_range() {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mock-bot"));
    cmd.env_clear()
        .env("BOT_CONFIG", valid_config())
        .env("MOCK_BOT_RECONNECTS", "1")
        .env("MOCK_BOT_RECONNECT_SKEW_MS", i64::MAX.to_string())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    infra::process::die_with_parent_tokio(&mut cmd);
    let output = tokio::time::timeout(DEADLINE, cmd.output())
        .await
        .expect("the bot exits")
        .expect("run mock-bot");

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    let max = mock_bot::behaviour::Behaviour::MAX_SKEW_MS;
    assert_eq!(
        stderr.trim(),
        format!(
            "mock-bot: failed to parse MOCK_BOT_RECONNECT_SKEW_MS=\"{}\": expected a whole \
             number of milliseconds from -{max} to {max}",
            i64::MAX
        )
    );
}

#[tokio::test]
async fn host_aliases_resolve_the_callback_and_redis_hosts() {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let mut redis_url = reqwest::Url::parse(&redis.url()).expect("a Redis URL");
    redis_url.set_host(Some("redis-host")).expect("a host");
    let callback_url = format!(
        "http://bot-manager:{}/bots/internal/callback/exited",
        server.port()
    );
    let config = bot_config(&callback_url, redis_url.as_str());
    let mut bot = Bot::spawn(
        &config,
        &[(
            "STOPFLOW_HOST_ALIASES",
            "bot-manager=127.0.0.1,redis-host=127.0.0.1",
        )],
    );

    bot.wait_ready().await;
    server.wait_for_status("active").await;
    assert_eq!(redis.leave(&bot.uid).await, 1);
    bot.expect_exit_code(0).await;

    assert_eq!(server.terminal().len(), 1);
    let started = &bot.events_named("started")[0];
    assert!(
        started["redis_url"]
            .as_str()
            .is_some_and(|url| url.contains("127.0.0.1")),
        "{started}"
    );
}

#[rstest]
#[case::by_address("127.0.0.1", "status_change", STATUS_CHANGE_PATH)]
#[case::through_a_host_alias("fault-proxy", "status_change", STATUS_CHANGE_PATH)]
#[case::legacy_exited_path("127.0.0.1", "exited", EXITED_PATH)]
#[tokio::test]
async fn with_a_callback_base_every_callback_goes_to_its_host_and_port_keeping_the_path(
    #[case] host: &str,
    #[case] callback_path: &str,
    #[case] terminal_path: &str,
) {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let callback_url = format!(
        "http://bot-manager:{}/bots/internal/callback/exited",
        refused_port()
    );
    let config = bot_config(&callback_url, &redis.url());
    let base = format!("http://{host}:{}", server.port());
    let mut bot = Bot::spawn(
        &config,
        &[
            ("MOCK_BOT_CALLBACK_BASE", base.as_str()),
            ("MOCK_BOT_CALLBACK_PATH", callback_path),
            ("STOPFLOW_HOST_ALIASES", "fault-proxy=127.0.0.1"),
        ],
    );

    bot.wait_ready().await;
    server.wait_for_status("active").await;
    // The session opens alongside `active`; a leave before its answer would cut it short.
    bot.wait_event("session_started").await;
    assert_eq!(redis.leave(&bot.uid).await, 1);
    bot.expect_exit_code(0).await;

    assert_eq!(
        server.statuses(),
        ["joining", "awaiting_admission", "active", "completed"]
    );
    assert_eq!(server.sessions().len(), 1);
    let terminal = server.terminal();
    assert_eq!(terminal.len(), 1, "{terminal:#?}");
    assert_eq!(terminal[0].path, terminal_path);
    for sent in bot.events_named("status_sent") {
        assert_eq!(sent["http_status"], 200, "{sent}");
    }
    assert_eq!(bot.events_named("session_started")[0]["http_status"], 200);
    let started = &bot.events_named("started")[0];
    assert_eq!(
        started["callback_url"],
        format!("{base}{EXITED_PATH}"),
        "{started}"
    );
}

#[rstest]
#[case::by_address("127.0.0.1")]
#[case::through_a_host_alias("fault-proxy")]
#[tokio::test]
async fn with_a_redis_url_override_a_leave_published_on_that_redis_is_honoured(#[case] host: &str) {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let unreachable = format!("redis://127.0.0.1:{}/0", refused_port());
    let config = bot_config(&server.exited_url(), &unreachable);
    let mut redis_url = reqwest::Url::parse(&redis.url()).expect("a Redis URL");
    redis_url.set_host(Some(host)).expect("a host");
    let mut bot = Bot::spawn(
        &config,
        &[
            ("MOCK_BOT_REDIS_URL", redis_url.as_str()),
            ("STOPFLOW_HOST_ALIASES", "fault-proxy=127.0.0.1"),
        ],
    );

    bot.wait_ready().await;
    assert_eq!(redis.leave(&bot.uid).await, 1);
    bot.expect_exit_code(0).await;

    assert!(bot.events_named("subscribe_failed").is_empty());
    let leave_started = bot.wait_event("leave_started").await;
    assert_eq!(leave_started["trigger"], "command");
    assert_eq!(server.terminal().len(), 1);
    // The effective URL, after the alias: the test Redis on loopback.
    redis_url.set_host(Some("127.0.0.1")).expect("a host");
    let started = &bot.events_named("started")[0];
    assert_eq!(started["redis_url"], redis_url.as_str(), "{started}");
}
