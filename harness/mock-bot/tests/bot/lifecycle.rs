//! Phases, the leave, signals and crashes.

use nix::sys::signal::Signal;
use rstest::rstest;
use serde_json::json;

use crate::support::{Bot, CallbackServer, MEETING_ID, SESSION_START_PATH, TestRedis, bot_config};

#[tokio::test]
async fn leave_sends_completed_after_the_joining_phases_then_exits_zero() {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &redis.url());
    let mut bot = Bot::spawn(&config, &[]);

    bot.wait_ready().await;
    server
        .wait_until("the first session", |r| {
            r.iter().any(|r| r.path == SESSION_START_PATH)
        })
        .await;
    assert_eq!(redis.leave(&bot.uid).await, 1);
    bot.expect_exit_code(0).await;

    assert_eq!(
        server.statuses(),
        ["joining", "awaiting_admission", "active", "completed"]
    );
    for record in server
        .records()
        .iter()
        .filter(|r| r.path != SESSION_START_PATH)
    {
        assert_eq!(record.body["connection_id"], config.connection_id.as_str());
        assert_eq!(record.body["container_id"], config.container_name.as_str());
        assert!(record.body["timestamp"].is_string(), "{record:?}");
    }
    let mut terminal = server.terminal().remove(0).body;
    terminal
        .as_object_mut()
        .expect("an object")
        .remove("timestamp");
    assert_eq!(
        terminal,
        json!({
            "connection_id": config.connection_id,
            "container_id": config.container_name,
            "status": "completed",
            "reason": "self_initiated_leave",
            "exit_code": 0,
            "completion_reason": "stopped",
        })
    );
    let sessions = server.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].session_uid, config.connection_id);
    assert_eq!(sessions[0].meeting_id, MEETING_ID);
}

#[tokio::test]
async fn hung_leave_sends_no_callback_ignores_sigterm_and_ends_only_by_sigkill() {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &redis.url());
    let mut bot = Bot::spawn(&config, &[("MOCK_BOT_LEAVE", "hang")]);

    bot.wait_ready().await;
    assert_eq!(redis.leave(&bot.uid).await, 1);
    bot.wait_event("leave_hung").await;
    assert!(server.terminal().is_empty());

    bot.signal(Signal::SIGTERM);
    bot.wait_event("sigterm_ignored").await;
    assert!(bot.is_running());

    bot.signal(Signal::SIGKILL);
    let status = bot.wait_exit().await;
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(server.terminal().is_empty());
}

#[tokio::test]
async fn graceful_sigterm_sends_completed_then_exits_143() {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &redis.url());
    let mut bot = Bot::spawn(&config, &[("MOCK_BOT_SIGTERM", "graceful")]);

    bot.wait_ready().await;
    bot.signal(Signal::SIGTERM);
    bot.expect_exit_code(143).await;

    let terminal = server.terminal();
    assert_eq!(terminal.len(), 1);
    assert_eq!(terminal[0].body["completion_reason"], "stopped");
    assert_eq!(terminal[0].body["reason"], "sigterm");
    assert_eq!(bot.events_named("leave_started")[0]["trigger"], "sigterm");
}

#[tokio::test]
async fn graceful_sigterm_with_a_hung_leave_exits_143_at_the_grace_without_callback() {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &redis.url());
    let mut bot = Bot::spawn(
        &config,
        &[
            ("MOCK_BOT_SIGTERM", "graceful"),
            ("MOCK_BOT_SIGTERM_GRACE_MS", "100"),
            ("MOCK_BOT_LEAVE", "hang"),
        ],
    );

    bot.wait_ready().await;
    bot.signal(Signal::SIGTERM);
    bot.expect_exit_code(143).await;

    assert_eq!(bot.events_named("grace_expired").len(), 1);
    assert!(server.terminal().is_empty());
}

#[rstest]
#[case::joining("joining", 3, "joining")]
#[case::awaiting_admission("awaiting_admission", 4, "awaiting_admission")]
#[case::active("active", 5, "active")]
#[case::leaving("leaving", 6, "active")]
#[tokio::test]
async fn crash_exits_with_its_code_on_entering_the_phase_without_terminal_callback(
    #[case] phase: &str,
    #[case] code: i32,
    #[case] last_status: &str,
) {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &redis.url());
    let crash = format!("{phase}:{code}");
    let mut bot = Bot::spawn(&config, &[("MOCK_BOT_CRASH", &crash)]);

    if phase == "leaving" {
        bot.wait_ready().await;
        assert_eq!(redis.leave(&bot.uid).await, 1);
    }
    bot.expect_exit_code(code).await;

    assert_eq!(bot.events_named("crashing")[0]["phase"], phase);
    assert!(server.terminal().is_empty(), "{:?}", server.records());
    assert_eq!(
        server.statuses().last().map(String::as_str),
        Some(last_status)
    );
}

#[tokio::test]
async fn active_for_leaves_alone_with_completion_reason_left_alone() {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &redis.url());
    let mut bot = Bot::spawn(&config, &[("MOCK_BOT_ACTIVE_FOR_MS", "0")]);

    bot.expect_exit_code(0).await;

    let terminal = server.terminal();
    assert_eq!(terminal.len(), 1);
    assert_eq!(terminal[0].body["completion_reason"], "left_alone");
    assert_eq!(
        bot.events_named("leave_started")[0]["trigger"],
        "active_for"
    );
}

/// A bot whose waiting room gives up after `timeout_ms`, with these behaviours.
fn waiting_room_bot(
    server: &CallbackServer,
    redis: &TestRedis,
    timeout_ms: u64,
    env: &[(&str, &str)],
) -> Bot {
    let mut config = bot_config(&server.exited_url(), &redis.url());
    config.automatic_leave.waiting_room_timeout = timeout_ms;
    Bot::spawn(&config, env)
}

#[tokio::test]
async fn not_admitted_within_the_waiting_room_timeout_the_bot_leaves_with_awaiting_admission_timeout_and_exits_zero()
 {
    // Regression: the bot ignored `BOT_CONFIG.automaticLeave` and waited in the waiting
    // room for as long as admission took, where the production bot gives up.
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let mut bot = waiting_room_bot(
        &server,
        &redis,
        50,
        &[("MOCK_BOT_ADMISSION_DELAY_MS", "3600000")],
    );

    bot.expect_exit_code(0).await;

    assert_eq!(
        server.statuses(),
        ["joining", "awaiting_admission", "completed"]
    );
    let terminal = &server.terminal()[0].body;
    assert_eq!(terminal["completion_reason"], "awaiting_admission_timeout");
    assert_eq!(terminal["reason"], "awaiting_admission_timeout");
    assert_eq!(terminal["exit_code"], 0);
    assert_eq!(
        bot.events_named("leave_started")[0]["trigger"],
        "waiting_room_timeout"
    );
    assert!(server.sessions().is_empty());
}

#[tokio::test]
async fn the_waiting_room_timeout_counts_from_the_first_awaiting_admission_report_not_each_repeat()
{
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    // Each repeat waits less than the timeout; the three together wait longer.
    let mut bot = waiting_room_bot(
        &server,
        &redis,
        250,
        &[
            ("MOCK_BOT_AWAITING_ADMISSION_REPEATS", "3"),
            ("MOCK_BOT_ADMISSION_DELAY_MS", "100"),
        ],
    );

    bot.expect_exit_code(0).await;

    let statuses = server.statuses();
    assert!(!statuses.iter().any(|s| s == "active"), "{statuses:?}");
    assert_eq!(statuses.last().map(String::as_str), Some("completed"));
    assert_eq!(
        server.terminal()[0].body["completion_reason"],
        "awaiting_admission_timeout"
    );
}

#[rstest]
#[case::admitted_in_time(60_000, "2")]
#[case::no_waiting_room(0, "0")]
#[tokio::test]
async fn a_bot_admitted_before_the_waiting_room_timeout_goes_active(
    #[case] timeout_ms: u64,
    #[case] repeats: &str,
) {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let mut bot = waiting_room_bot(
        &server,
        &redis,
        timeout_ms,
        &[
            ("MOCK_BOT_AWAITING_ADMISSION_REPEATS", repeats),
            ("MOCK_BOT_ACTIVE_FOR_MS", "0"),
        ],
    );

    bot.expect_exit_code(0).await;

    assert!(server.statuses().iter().any(|s| s == "active"));
    assert_eq!(server.terminal()[0].body["completion_reason"], "left_alone");
}
