//! What the bot reads from its environment: bad values stop it, aliases route it.

use std::process::Stdio;

use rstest::rstest;

use crate::support::{Bot, CallbackServer, DEADLINE, TestRedis, bot_config};

const CALLBACK_URL: &str = "http://bot-manager:8080/bots/internal/callback/exited";

fn valid_config() -> String {
    serde_json::to_string(&bot_config(CALLBACK_URL, "redis://redis:6379/0")).expect("JSON")
}

fn invalid_redis_url_config() -> String {
    serde_json::to_string(&bot_config(CALLBACK_URL, "http://redis:6379")).expect("JSON")
}

#[rstest]
#[case::missing_config(None, &[], "BOT_CONFIG")]
#[case::malformed_config(Some("{".to_owned()), &[], "parse BOT_CONFIG")]
#[case::invalid_config(Some(invalid_redis_url_config()), &[], "redisUrl")]
#[case::unknown_behaviour(Some(valid_config()), &[("MOCK_BOT_SHOUT", "1")], "MOCK_BOT_SHOUT")]
#[case::unknown_value(Some(valid_config()), &[("MOCK_BOT_CALLBACK", "twice")], "MOCK_BOT_CALLBACK=\"twice\"")]
#[case::not_a_number(Some(valid_config()), &[("MOCK_BOT_RECONNECTS", "many")], "MOCK_BOT_RECONNECTS=\"many\"")]
#[case::malformed_alias(Some(valid_config()), &[("STOPFLOW_HOST_ALIASES", "bot-manager")], "STOPFLOW_HOST_ALIASES")]
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
    let event: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON event on stdout");
    assert_eq!(event["event"], "config_error");
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
