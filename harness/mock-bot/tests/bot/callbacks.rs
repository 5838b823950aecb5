//! The terminal callback's delivery modes, payload quirks and transcription sessions.

use rstest::rstest;
use serde_json::json;

use crate::support::{
    Bot, CallbackServer, EXITED_PATH, SESSION_START_PATH, STATUS_CHANGE_PATH, TestRedis, bot_config,
};

#[rstest]
#[case::once("once", 1)]
#[case::retry("retry", 3)]
#[tokio::test]
async fn terminal_callback_attempts_against_a_failing_server_follow_the_mode(
    #[case] mode: &str,
    #[case] attempts: usize,
) {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    server.answer_with(500);
    let config = bot_config(&server.exited_url(), &redis.url());
    let mut bot = Bot::spawn(
        &config,
        &[
            ("MOCK_BOT_CALLBACK", mode),
            ("MOCK_BOT_CALLBACK_BACKOFF_MS", "10"),
        ],
    );

    bot.wait_ready().await;
    assert_eq!(redis.leave(&bot.uid).await, 1);
    bot.expect_exit_code(0).await;

    assert_eq!(server.terminal().len(), attempts);
    let results = bot.events_named("callback_result");
    assert_eq!(results.len(), attempts);
    for result in results {
        assert_eq!(result["http_status"], 500, "{result}");
        assert_eq!(result["ok"], false);
    }
}

#[tokio::test]
async fn retry_mode_retries_against_a_refused_port() {
    let redis = TestRedis::start();
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let callback_url = format!("http://127.0.0.1:{port}/bots/internal/callback/exited");
    let config = bot_config(&callback_url, &redis.url());
    let mut bot = Bot::spawn(
        &config,
        &[
            ("MOCK_BOT_CALLBACK", "retry"),
            ("MOCK_BOT_CALLBACK_BACKOFF_MS", "10,10"),
        ],
    );

    bot.wait_ready().await;
    assert!(bot.events_named("status_sent")[0]["error"].is_string());
    assert_eq!(redis.leave(&bot.uid).await, 1);
    bot.expect_exit_code(0).await;

    let attempts: Vec<u64> = bot
        .events_named("callback_attempt")
        .iter()
        .map(|e| e["attempt"].as_u64().expect("an attempt number"))
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    for result in bot.events_named("callback_result") {
        assert!(result["error"].is_string(), "{result}");
    }
}

#[tokio::test]
async fn drop_mode_sends_no_terminal_callback() {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &redis.url());
    let mut bot = Bot::spawn(&config, &[("MOCK_BOT_CALLBACK", "drop")]);

    bot.wait_ready().await;
    assert_eq!(redis.leave(&bot.uid).await, 1);
    bot.expect_exit_code(0).await;

    assert!(server.terminal().is_empty());
    assert_eq!(bot.events_named("callback_dropped").len(), 1);
    assert!(bot.events_named("callback_attempt").is_empty());
}

#[rstest]
#[case::status_change("status_change", STATUS_CHANGE_PATH)]
#[case::exited("exited", EXITED_PATH)]
#[tokio::test]
async fn completion_reason_is_sent_verbatim_even_one_the_server_rejects(
    #[case] callback_path: &str,
    #[case] path: &str,
) {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &redis.url());
    let mut bot = Bot::spawn(
        &config,
        &[
            ("MOCK_BOT_COMPLETION_REASON", "removed_by_admin"),
            ("MOCK_BOT_CALLBACK_PATH", callback_path),
        ],
    );

    bot.wait_ready().await;
    assert_eq!(redis.leave(&bot.uid).await, 1);
    bot.expect_exit_code(0).await;

    let terminal = server.terminal();
    assert_eq!(terminal.len(), 1);
    assert_eq!(terminal[0].path, path);
    assert_eq!(terminal[0].body["completion_reason"], "removed_by_admin");
    if path == EXITED_PATH {
        assert_eq!(
            terminal[0].body,
            json!({
                "connection_id": config.connection_id,
                "exit_code": 0,
                "reason": "self_initiated_leave",
                "completion_reason": "removed_by_admin",
            })
        );
    }
}

#[tokio::test]
async fn late_joining_and_duplicate_terminals_follow_the_leave() {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &redis.url());
    let mut bot = Bot::spawn(
        &config,
        &[
            ("MOCK_BOT_LATE_JOINING_AFTER_LEAVE", "1"),
            ("MOCK_BOT_DUPLICATE_TERMINAL", "2"),
            ("MOCK_BOT_AWAITING_ADMISSION_REPEATS", "2"),
        ],
    );

    bot.wait_ready().await;
    assert_eq!(redis.leave(&bot.uid).await, 1);
    bot.expect_exit_code(0).await;

    assert_eq!(
        server.statuses(),
        [
            "joining",
            "awaiting_admission",
            "awaiting_admission",
            "active",
            "joining",
            "completed",
            "completed",
            "completed",
        ]
    );
}

#[tokio::test]
async fn reconnect_sessions_get_fresh_uids_and_skewed_earlier_client_timestamps() {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &redis.url());
    let _bot = Bot::spawn(
        &config,
        &[
            ("MOCK_BOT_RECONNECTS", "2"),
            ("MOCK_BOT_RECONNECT_INTERVAL_MS", "0"),
            ("MOCK_BOT_RECONNECT_SKEW_MS", "-60000"),
        ],
    );

    server
        .wait_until("three sessions", |r| {
            r.iter()
                .filter(|r| r.path == crate::support::SESSION_START_PATH)
                .count()
                >= 3
        })
        .await;

    let sessions = server.sessions();
    let time = |s: &protocol::SessionStartPayload| {
        chrono::DateTime::parse_from_rfc3339(&s.session_start_time).expect("an RFC 3339 time")
    };
    let (first, reconnects) = sessions.split_first().expect("sessions");
    assert_eq!(first.session_uid, config.connection_id);
    assert_eq!(reconnects.len(), 2);
    assert_ne!(reconnects[0].session_uid, reconnects[1].session_uid);
    for reconnect in reconnects {
        assert!(uuid::Uuid::parse_str(&reconnect.session_uid).is_ok());
        assert_ne!(reconnect.session_uid, config.connection_id);
        assert!(time(reconnect) < time(first), "{reconnect:?} vs {first:?}");
    }
}

// A reconnect timestamp far off used to panic the bot (exit 101, no terminal callback);
// the parser now bounds the skew, and at that bound the timestamp is still computed and
// sent, and the bot leaves cleanly.
#[tokio::test]
async fn a_reconnect_skew_at_its_bound_sends_its_session_and_the_bot_still_leaves_cleanly() {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let config = bot_config(&server.exited_url(), &redis.url());
    let skew = -mock_bot::behaviour::Behaviour::MAX_SKEW_MS;
    let skew_text = skew.to_string();
    let mut bot = Bot::spawn(
        &config,
        &[
            ("MOCK_BOT_RECONNECTS", "1"),
            ("MOCK_BOT_RECONNECT_INTERVAL_MS", "0"),
            ("MOCK_BOT_RECONNECT_SKEW_MS", skew_text.as_str()),
        ],
    );

    bot.wait_nth(2, "session_started", |_| true).await;
    bot.wait_ready().await;
    assert_eq!(redis.leave(&bot.uid).await, 1);
    bot.expect_exit_code(0).await;

    assert_eq!(server.terminal().len(), 1);
    let sessions = server.sessions();
    let time = |s: &protocol::SessionStartPayload| {
        chrono::DateTime::parse_from_rfc3339(&s.session_start_time).expect("an RFC 3339 time")
    };
    // Ten years back, less the moments between the two sessions.
    let behind = time(&sessions[0]) - time(&sessions[1]);
    let hour = chrono::TimeDelta::hours(1);
    assert!(
        behind > chrono::TimeDelta::milliseconds(-skew) - hour,
        "{sessions:?}"
    );
}

// A bot given `callbackSecret` (a service with the callback_auth fix) sends it as its
// bearer on every request: each status, its session start, its terminal callback on
// either path. Without it (legacy, production's BOT_CONFIG), no Authorization header.
#[rstest]
#[case::secret_on_exited(Some("5e".repeat(32)), "exited")]
#[case::secret_on_status_change(Some("5e".repeat(32)), "status_change")]
#[case::no_secret(None, "exited")]
#[tokio::test]
async fn every_request_carries_the_callback_secret_as_its_bearer_and_none_without_one(
    #[case] secret: Option<String>,
    #[case] callback_path: &str,
) {
    let redis = TestRedis::start();
    let server = CallbackServer::start().await;
    let mut config = bot_config(&server.exited_url(), &redis.url());
    config.callback_secret = secret.clone();
    let mut bot = Bot::spawn(&config, &[("MOCK_BOT_CALLBACK_PATH", callback_path)]);

    bot.wait_ready().await;
    server
        .wait_until("the session start", |r| {
            r.iter().any(|r| r.path == SESSION_START_PATH)
        })
        .await;
    assert_eq!(redis.leave(&bot.uid).await, 1);
    bot.expect_exit_code(0).await;

    let records = server.records();
    let paths: Vec<&str> = records.iter().map(|r| r.path.as_str()).collect();
    for path in [STATUS_CHANGE_PATH, SESSION_START_PATH] {
        assert!(paths.contains(&path), "{paths:?}");
    }
    assert_eq!(server.terminal().len(), 1);
    assert_eq!(
        server.terminal()[0].path,
        if callback_path == "exited" {
            EXITED_PATH
        } else {
            STATUS_CHANGE_PATH
        }
    );
    let expected = secret.map(|s| format!("Bearer {s}"));
    for record in &records {
        assert_eq!(
            record.authorization, expected,
            "{} {}",
            record.path, record.body
        );
    }
}
