//! Hostile callers (issue 12): input Postgres cannot store is refused before it gets
//! there, and a dependency's error text never reaches an answer, under every profile.

use protocol::Platform;
use rstest::rstest;
use serde_json::json;

use crate::support::{Stack, StackOptions, unique_meet_id};

/// The error id a generic 500 names.
fn error_id(detail: &str) -> &str {
    detail
        .split_once("error id ")
        .and_then(|(_, rest)| rest.split(';').next())
        .unwrap_or_else(|| panic!("no error id in {detail:?}"))
}

// Pins issue 12: a database error reached the answer verbatim ("failed to query Postgres:
// error returned from database: relation ... does not exist"), and so did a runtime's.
// The answer is a generic 500 naming what failed and an error id; the log has the text.
#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_error_is_logged_in_full_and_answered_as_a_generic_500(
    #[values("legacy", "fixed")] profile: &str,
) {
    let stack = Stack::start_with(StackOptions {
        profile: profile.into(),
        ..StackOptions::default()
    })
    .await;

    // The runtime refuses to start the container.
    let (code, body) = stack
        .runtime_put_faults(&json!({"start_fails": true}))
        .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = stack
        .post_bot(Platform::GoogleMeet, &unique_meet_id())
        .await;
    assert_eq!(code, 500, "{body}");
    let detail = body["detail"].as_str().expect("a text");
    assert!(
        detail.starts_with("Internal Server Error: failed to start the bot's container"),
        "{detail}"
    );
    assert!(
        !detail.contains("start_fails"),
        "the runtime's text: {detail}"
    );
    let runtime_id = error_id(detail).to_owned();

    // Postgres fails the callback's lookup.
    sqlx::query("ALTER TABLE meeting_sessions RENAME TO meeting_sessions_gone")
        .execute(&stack.pool)
        .await
        .unwrap();
    let (code, body) = stack
        .post_json(
            "/bots/internal/callback/status_change",
            &json!({"connection_id": "u", "status": "active"}),
        )
        .await;
    assert_eq!(code, 500, "{body}");
    let detail = body["detail"].as_str().expect("a text");
    assert!(
        detail.starts_with("Internal Server Error: failed to query the database"),
        "{detail}"
    );
    for leak in ["meeting_sessions", "relation", "does not exist", "Postgres"] {
        assert!(!detail.contains(leak), "Postgres's text ({leak}): {detail}");
    }
    let db_id = error_id(detail).to_owned();

    let log = stack.service_log();
    let line = |id: &str| {
        log.lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("no log line with error id {id}: {log}"))
            .to_owned()
    };
    assert!(line(&runtime_id).contains("start_fails"), "{log}");
    assert!(
        line(&db_id).contains("relation \"meeting_sessions\" does not exist"),
        "{log}"
    );
}
