//! Hostile callers (issue 12): input Postgres cannot store is refused before it gets
//! there, and a dependency's error text never reaches an answer, under every profile.

use protocol::Platform;
use rstest::rstest;
use serde_json::{Value, json};

use crate::support::{DEV_TOKEN, Stack, StackOptions, unique_meet_id};

/// What the database holds, for "the request changed nothing".
async fn snapshot(stack: &Stack) -> (Vec<(i32, String, Value, String)>, i64) {
    let meetings =
        sqlx::query_as("SELECT id, status, data, updated_at::text FROM meetings ORDER BY id")
            .fetch_all(&stack.pool)
            .await
            .expect("meetings");
    let sessions = sqlx::query_scalar("SELECT count(*) FROM meeting_sessions")
        .fetch_one(&stack.pool)
        .await
        .expect("sessions");
    (meetings, sessions)
}

/// A meeting whose bot crashed at `joining`, settled (the fixes end it from the exit),
/// and its bot's connectionId.
async fn settled_meeting(stack: &Stack, profile: &str) -> (i64, String) {
    let native = unique_meet_id();
    stack
        .bot_behaviour(&native, &[("MOCK_BOT_CRASH", "joining:3")])
        .await;
    let meeting = stack.start_bot(Platform::GoogleMeet, &native).await;
    let uid = stack.connection_id(meeting.id).await;
    assert_eq!(stack.wait_container_exit(meeting.id).await, 3);
    stack.wait_session(meeting.id, &uid).await;
    if profile == "fixed" {
        stack.wait_terminal(meeting.id).await;
    } else {
        stack.wait_status(meeting.id, "joining").await;
    }
    (meeting.id, uid)
}

/// A request as the dev user; a callback (`/bots/internal/...`) carries `secret` as its
/// bearer, as its bot would under `callback_auth`.
async fn send(
    stack: &Stack,
    method: &str,
    path: &str,
    body: Option<&Value>,
    secret: &str,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    let mut request = stack
        .http
        .request(method, stack.url(path))
        .header("X-API-Key", DEV_TOKEN);
    if path.starts_with("/bots/internal/") {
        request = request.bearer_auth(secret);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let resp = request.send().await.expect("the request is answered");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The error id a generic 500 names.
fn error_id(detail: &str) -> &str {
    detail
        .split_once("error id ")
        .and_then(|(_, rest)| rest.split(';').next())
        .unwrap_or_else(|| panic!("no error id in {detail:?}"))
}

// Pins issue 12: a database error reached the answer verbatim ("failed to query Postgres:
// error returned from database: relation ... does not exist"). The answer is a generic
// 500 naming what failed and an error id; the log has Postgres's text under that id.
#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_error_is_logged_in_full_and_answered_as_a_generic_500(
    #[values("legacy", "fixed")] profile: &str,
) {
    let stack = Stack::start_with(StackOptions {
        profile: profile.into(),
        ..StackOptions::default()
    })
    .await;

    // Postgres fails the callback's lookup (which comes before its secret can be
    // checked against a meeting: any well-formed secret gets that far).
    sqlx::query("ALTER TABLE meeting_sessions RENAME TO meeting_sessions_gone")
        .execute(&stack.pool)
        .await
        .unwrap();
    let (code, body) = stack
        .post_callback(
            "/bots/internal/callback/status_change",
            &json!({"connection_id": "u", "status": "active"}),
            Some(&"0".repeat(64)),
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
    let line = log
        .lines()
        .find(|l| l.contains(&db_id))
        .unwrap_or_else(|| panic!("no log line with error id {db_id}: {log}"));
    assert!(
        line.contains("relation \"meeting_sessions\" does not exist"),
        "{log}"
    );
}

// Pins issue 12: a NUL character in a passcode, a callback's reason, details, connection
// id or container id, or a DELETE path, reached Postgres, which refused it ("invalid byte
// sequence for encoding \"UTF8\": 0x00", "unsupported Unicode escape sequence"), and the
// answer was a 500 carrying that text. It is a 422 naming the field, nothing is written,
// and Postgres never sees it, whatever the profile.
#[rstest]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_any_text_is_refused_with_422_naming_where_it_is_and_writes_nothing(
    #[values("legacy", "fixed")] profile: &str,
) {
    let stack = Stack::start_with(StackOptions {
        profile: profile.into(),
        ..StackOptions::default()
    })
    .await;
    let (id, uid) = settled_meeting(&stack, profile).await;
    // Under `callback_auth` the callbacks get past their secret's check to the body's.
    let secret = stack.known_secret(id).await;
    let status_change = "/bots/internal/callback/status_change";
    let exited = "/bots/internal/callback/exited";
    let cases: Vec<(&str, &str, Option<Value>, Value)> = vec![
        (
            "POST",
            "/bots",
            Some(
                json!({"platform": "zoom", "native_meeting_id": "123456789", "passcode": "12\u{0}34"}),
            ),
            json!(["body", "passcode"]),
        ),
        (
            "POST",
            status_change,
            Some(json!({"connection_id": uid, "status": "failed", "reason": "boom\u{0}"})),
            json!(["body", "reason"]),
        ),
        (
            "POST",
            status_change,
            Some(
                json!({"connection_id": uid, "status": "failed", "error_details": {"stderr": ["ok", "\u{0}"]}}),
            ),
            json!(["body", "error_details", "stderr", 1]),
        ),
        (
            "POST",
            status_change,
            Some(json!({"connection_id": "u\u{0}", "status": "active"})),
            json!(["body", "connection_id"]),
        ),
        (
            "POST",
            status_change,
            Some(json!({"connection_id": uid, "status": "active", "container_id": "c\u{0}"})),
            json!(["body", "container_id"]),
        ),
        (
            "POST",
            exited,
            Some(json!({"connection_id": uid, "exit_code": 1, "reason": "\u{0}"})),
            json!(["body", "reason"]),
        ),
        (
            "POST",
            exited,
            Some(json!({"connection_id": uid, "exit_code": 1, "error_details": "x\u{0}"})),
            json!(["body", "error_details"]),
        ),
        (
            "POST",
            exited,
            Some(json!({"connection_id": "\u{0}", "exit_code": 0})),
            json!(["body", "connection_id"]),
        ),
        (
            "POST",
            "/bots/internal/session_start",
            Some(
                json!({"meeting_id": id, "session_uid": "s\u{0}", "session_start_time": "2024-01-01T00:00:00Z"}),
            ),
            json!(["body", "session_uid"]),
        ),
        (
            "DELETE",
            "/bots/google_meet/abc-defg-hij%00",
            None,
            json!(["path", "native_meeting_id"]),
        ),
        (
            "PUT",
            "/bots/google_meet/%00/config",
            Some(json!({"language": "de"})),
            json!(["path", "native_meeting_id"]),
        ),
    ];
    let before = snapshot(&stack).await;
    for (method, path, body, loc) in cases {
        let (code, answer) = send(&stack, method, path, body.as_ref(), &secret).await;
        assert_eq!(code, 422, "{method} {path} {body:?}: {answer}");
        let error = &answer["detail"][0];
        assert_eq!(error["loc"], loc, "{method} {path}: {answer}");
        assert_eq!(error["type"], "value_error", "{answer}");
        assert!(
            error["msg"].as_str().is_some_and(|m| m.contains("NUL")),
            "{answer}"
        );
        assert_eq!(snapshot(&stack).await, before, "{method} {path} wrote");
    }
    let log = stack.service_log();
    for postgres_said in ["0x00", "Unicode escape", "error returned from database"] {
        assert!(!log.contains(postgres_said), "Postgres saw a NUL: {log}");
    }
}

// Pins issue 12's hunt for other 5xx: a session uid longer than a Postgres btree entry
// (about 2.7 kB) failed its insert with a 500 carrying Postgres's "index row size"
// error, through the session-start route and, with current-uid routing, through a
// restarted bot's adopted uid. Both are a 422 that says how long a uid may be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlong_session_uid_is_refused_with_422_instead_of_failing_the_insert() {
    let stack = Stack::start_with(StackOptions {
        profile: "route-current-uid".into(),
        ..StackOptions::default()
    })
    .await;
    let (id, _) = settled_meeting(&stack, "route-current-uid").await;
    let name = stack.container_name(id).await;
    // Random, so Postgres cannot compress it under the limit.
    let long: String = (0..3000)
        .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
        .collect();
    let before = snapshot(&stack).await;
    let (code, body) = stack
        .post_json(
            "/bots/internal/callback/status_change",
            &json!({"connection_id": long, "container_id": name, "status": "awaiting_admission"}),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "connection_id"]));
    assert_eq!(body["detail"][0]["type"], "string_too_long");
    let (code, body) = stack
        .post_json(
            "/bots/internal/session_start",
            &json!({"meeting_id": id, "session_uid": long, "session_start_time": "2024-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "session_uid"]));
    assert_eq!(snapshot(&stack).await, before, "a refused uid was written");
    // A uid of an ordinary length is still adopted.
    let (code, body) = stack
        .post_json(
            "/bots/internal/callback/status_change",
            &json!({"connection_id": "a-restarted-bot", "container_id": name, "status": "awaiting_admission"}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert!(
        stack
            .sessions(id)
            .await
            .contains(&"a-restarted-bot".to_owned())
    );
}

// Pins issue 12's "a 4xx with a clear message": a route asked with a method it does not
// take answered 405 with an empty body (axum's default), where FastAPI answers
// `{"detail": "Method Not Allowed"}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_a_route_does_not_take_is_answered_405_with_a_message() {
    let stack = Stack::start().await;
    for (method, path) in [
        ("GET", "/bots"),
        ("PUT", "/bots/zoom/123456789"),
        ("GET", "/bots/internal/callback/status_change"),
    ] {
        let (code, body) = send(&stack, method, path, None, "").await;
        assert_eq!(code, 405, "{method} {path}: {body}");
        assert_eq!(
            body,
            json!({"detail": "Method Not Allowed"}),
            "{method} {path}"
        );
    }
}

// Pins the meeting path's decoding: a native id whose escapes are not UTF-8 was refused
// by axum with a plain-text 400; uvicorn decodes it with U+FFFD for the bad bytes, and
// production then finds no meeting. So does the service now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_path_that_is_not_utf8_finds_no_meeting_as_uvicorn_decodes_it() {
    let stack = Stack::start().await;
    for path in ["/bots/zoom/%FF%FE", "/bots/google_meet/abc%C3%28"] {
        let (code, body) = stack.delete_bot_path(path).await;
        assert_eq!(code, 404, "{path}: {body}");
        assert_eq!(body["detail"], "No meeting found to stop.", "{path}");
    }
    let (code, body) = stack.delete_bot_path("/bots/%FF/123456789").await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["path", "platform"]));
}
