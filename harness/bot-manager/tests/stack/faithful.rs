//! Where production was measured to differ from the first reimplementation (protocol.md
//! section 11), `legacy` answers and writes as production does: each test pins one
//! difference against the whole stack.

use crate::support::{DEV_TOKEN, Stack, StackOptions, unique_meet_id};
use protocol::Platform;
use serde_json::{Value, json};

/// A bot that reports as soon as it has subscribed, against a session row lagging the
/// container start by `lag_ms`, under `profile`.
fn early_bot(profile: &str, lag_ms: u64) -> StackOptions {
    StackOptions {
        profile: profile.into(),
        session_record_delay_ms: lag_ms,
        bot_env: [
            ("MOCK_BOT_START_DELAY_MS", "0"),
            ("MOCK_BOT_JOIN_DELAY_MS", "800"),
            ("MOCK_BOT_ADMISSION_DELAY_MS", "20"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec(),
        ..StackOptions::default()
    }
}

/// When the connectionId session row was written, and when the container started, as
/// microseconds since the epoch (one machine, one clock).
async fn row_and_start_times(stack: &Stack, meeting_id: i64, uid: &str) -> (i64, i64) {
    stack.wait_session(meeting_id, uid).await;
    let row: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT session_start_time FROM meeting_sessions WHERE meeting_id = $1 AND session_uid = $2",
    )
    .bind(meeting_id as i32)
    .bind(uid)
    .fetch_one(&stack.pool)
    .await
    .expect("session row");
    let started = stack.inspect(meeting_id).await["State"]["StartedAt"]
        .as_str()
        .expect("StartedAt")
        .parse::<chrono::DateTime<chrono::Utc>>()
        .expect("StartedAt is RFC 3339");
    (row.timestamp_micros(), started.timestamp_micros())
}

// Pins "the session row written before the container start hides production's race":
// legacy writes it after the start, fire-and-forget, so a bot reporting within the
// row's lag is answered "session not found", its later reports are illegal from
// `requested`, and the meeting stays `requested` while its bot is in the meeting, until
// a stop (whose leave then reaches it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_reporting_before_its_session_row_leaves_the_meeting_requested() {
    let stack = Stack::start_with(early_bot("legacy", 400)).await;
    let native = unique_meet_id();
    let meeting = stack.start_bot(Platform::GoogleMeet, &native).await;
    let uid = stack.connection_id(meeting.id).await;
    // Joining overtook the row; awaiting_admission and active came after it.
    let log = stack.wait_bot_event(meeting.id, "session_started").await;
    let reported: Vec<&str> = log
        .events
        .iter()
        .filter(|e| e["event"] == "status_sent")
        .filter_map(|e| e["status"].as_str())
        .collect();
    assert_eq!(reported, ["joining", "awaiting_admission", "active"]);
    let (row_at, started_at) = row_and_start_times(&stack, meeting.id, &uid).await;
    assert!(
        row_at > started_at,
        "the session row ({row_at}) is written after the container start ({started_at})"
    );
    let row = stack.meeting_row(meeting.id).await;
    assert_eq!(row.status, "requested", "{}", row.data);
    assert_eq!(row.transitions(), Vec::<(String, String)>::new());

    // The stop (outside the pre-active window) sends the leave to the connectionId, which
    // the bot does listen on: the meeting completes.
    let (code, body) = stack.delete_bot(Platform::GoogleMeet, &native).await;
    assert_eq!(code, 202, "{body}");
    let row = stack.wait_status(meeting.id, "completed").await;
    assert_eq!(
        row.transitions(),
        [("requested".to_owned(), "completed".to_owned())]
    );
}

// Pins "with the row written after the start, a fast bot's first report is lost" under
// the session-before-start fix: the row exists before the container starts, so the
// same bot, against the same lag, reaches `active`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_row_before_the_start_the_same_bot_reaches_active() {
    let stack = Stack::start_with(early_bot("session-before-start", 400)).await;
    let (_, meeting) = stack.bot_at(&[], "active").await;
    let uid = stack.connection_id(meeting.id).await;
    let (row_at, started_at) = row_and_start_times(&stack, meeting.id, &uid).await;
    assert!(
        row_at < started_at,
        "the session row ({row_at}) is written before the container start ({started_at})"
    );
    let row = stack.meeting_row(meeting.id).await;
    assert_eq!(
        row.transitions(),
        [
            ("requested".to_owned(), "joining".to_owned()),
            ("joining".to_owned(), "awaiting_admission".to_owned()),
            ("awaiting_admission".to_owned(), "active".to_owned()),
        ]
    );
}

/// A meeting whose bot dies right after `active`, so the test drives the callbacks.
async fn silent_active_meeting(stack: &Stack) -> (i64, String) {
    let native = unique_meet_id();
    stack
        .bot_behaviour(&native, &[("MOCK_BOT_CRASH", "active:3")])
        .await;
    let meeting = stack.start_bot(Platform::GoogleMeet, &native).await;
    let uid = stack.connection_id(meeting.id).await;
    assert_eq!(stack.wait_container_exit(meeting.id).await, 3);
    stack.wait_status(meeting.id, "active").await;
    (meeting.id, uid)
}

// Pins "`/exited` without `reason` is refused with 422": production's payload defaults
// it (`self_initiated_leave`) and completes the meeting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_callback_without_reason_completes_the_meeting() {
    let stack = Stack::start().await;
    let (id, uid) = silent_active_meeting(&stack).await;
    let (code, body) = stack
        .post_json(
            "/bots/internal/callback/exited",
            &json!({"connection_id": uid, "exit_code": 0}),
        )
        .await;
    assert_eq!(
        (code, body),
        (
            200,
            json!({"status": "callback processed", "meeting_id": id, "final_status": "completed"})
        )
    );
    let row = stack.meeting_row(id).await;
    assert_eq!(row.status, "completed");
    let terminal = &row.terminal_transitions()[0];
    assert_eq!(terminal["reason"], "self_initiated_leave", "{terminal}");
    assert_eq!(terminal["exit_code"], 0, "{terminal}");
    assert_eq!(terminal["source"], "user", "{terminal}");
}

// Pins "`status_change` refuses `stopping` and `requested` with 422": production's
// payload takes every status of the machine; a bot's `stopping` is stored and
// published, a `requested` is an illegal transition answered as a failed update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_change_takes_every_status_and_stores_a_bots_stopping() {
    let stack = Stack::start().await;
    let (id, uid) = silent_active_meeting(&stack).await;
    let post = |status: &'static str| {
        let uid = uid.clone();
        let stack = &stack;
        async move {
            stack
                .post_json(
                    "/bots/internal/callback/status_change",
                    &json!({"connection_id": uid, "status": status, "container_id": "c"}),
                )
                .await
        }
    };
    let before = stack.meeting_row(id).await;
    let (code, body) = post("requested").await;
    assert_eq!(
        (code, body),
        (
            200,
            json!({"status": "error", "detail": "Failed to update meeting status"})
        )
    );
    assert_eq!(stack.meeting_row(id).await, before, "the row is untouched");

    let (code, body) = post("stopping").await;
    assert_eq!(
        (code, body),
        (200, json!({"status": "stopping", "meeting_id": id}))
    );
    let row = stack.meeting_row(id).await;
    assert_eq!(row.status, "stopping");
    let last = row.data["status_transition"]
        .as_array()
        .unwrap()
        .last()
        .cloned();
    assert_eq!(last.as_ref().map(|t| &t["source"]), Some(&json!("user")));

    // A second `stopping` is illegal from `stopping`.
    let (code, body) = post("stopping").await;
    assert_eq!(
        (code, body),
        (
            200,
            json!({"status": "error", "detail": "Failed to update meeting status"})
        )
    );
}

// Pins "`GET /bots/status` entries lack `normalized_status`": production adds Docker's
// status text reduced to its first word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_bots_carry_normalized_status() {
    let stack = Stack::start().await;
    let (_, meeting) = stack.bot_at(&[], "active").await;
    let body: Value = stack
        .http
        .get(stack.url("/bots/status"))
        .header("X-API-Key", DEV_TOKEN)
        .send()
        .await
        .expect("GET /bots/status")
        .json()
        .await
        .expect("status JSON");
    let bots = body["running_bots"].as_array().expect("running_bots");
    let bot = bots
        .iter()
        .find(|b| b["meeting_id_from_name"] == json!(meeting.id.to_string()))
        .unwrap_or_else(|| panic!("meeting {} not listed: {body}", meeting.id));
    let status = bot["status"].as_str().expect("status text");
    assert!(status.starts_with("Up "), "{bot}");
    assert_eq!(bot["normalized_status"], "Up", "{bot}");
}

// Pins "the audit entry of a terminal `status_change` carries the bot's reason and exit
// code under its own source": production writes `{from, to, timestamp, source: "user",
// completion_reason}` and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bots_completion_is_audited_as_production_writes_it() {
    let stack = Stack::start().await;
    let (native, meeting) = stack.bot_at(&[], "active").await;
    let (code, body) = stack.delete_bot(Platform::GoogleMeet, &native).await;
    assert_eq!(code, 202, "{body}");
    let row = stack.wait_status(meeting.id, "completed").await;
    let terminals = row.terminal_transitions();
    let entry = terminals[0].as_object().expect("audit entry");
    let mut keys: Vec<&str> = entry.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["completion_reason", "from", "source", "timestamp", "to"],
        "{entry:?}"
    );
    assert_eq!(entry["source"], "user");
    assert_eq!(entry["from"], "active");
    assert_eq!(entry["completion_reason"], "stopped");
}

// Pins "the create request binds the Docker socket, has only BOT_CONFIG in its Env and
// writes null keys into BOT_CONFIG": production sends BOT_CONFIG, WHISPER_LIVE_URL and
// LOG_LEVEL, no socket bind, and a BOT_CONFIG without null keys whose `botName` is
// `VexaBot-<6 hex>` when none is given and whose `token` is the user's API key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_create_request_carries_productions_environment_and_bot_config() {
    let stack = Stack::start().await;
    // Held in joining: a bot left to itself passes through it in a few milliseconds, and
    // a loaded machine's poll saw it already active (24 tests at once).
    let (_, meeting) = stack
        .bot_at(&[("MOCK_BOT_JOIN_DELAY_MS", "600000")], "joining")
        .await;
    let container = stack.inspect(meeting.id).await;
    let env: Vec<&str> = container["Config"]["Env"]
        .as_array()
        .expect("Env")
        .iter()
        .filter_map(Value::as_str)
        // The runtime appends the scenario's behaviour rules.
        .filter(|e| !e.starts_with("MOCK_BOT_"))
        .collect();
    assert_eq!(env.len(), 3, "{env:?}");
    assert!(env[0].starts_with("BOT_CONFIG="), "{env:?}");
    assert_eq!(env[1], "WHISPER_LIVE_URL=ws://whisperlive:9090");
    assert_eq!(env[2], "LOG_LEVEL=INFO");
    assert!(
        container["HostConfig"]["Binds"].is_null(),
        "no Docker socket bind: {}",
        container["HostConfig"]
    );
    assert_eq!(container["HostConfig"]["AutoRemove"], true);

    let config: Value =
        serde_json::from_str(env[0].trim_start_matches("BOT_CONFIG=")).expect("BOT_CONFIG");
    for key in ["language", "task"] {
        assert!(
            config.get(key).is_none(),
            "{key} written although null: {config}"
        );
    }
    assert!(
        config.as_object().unwrap().values().all(|v| !v.is_null()),
        "{config}"
    );
    assert_eq!(config["token"], DEV_TOKEN);
    let name = config["botName"].as_str().expect("botName");
    let hex = name
        .strip_prefix("VexaBot-")
        .unwrap_or_else(|| panic!("{name}"));
    assert!(
        hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{name}"
    );

    // Given ones are passed on.
    let mut request = protocol::CreateBotRequest::new(Platform::Zoom, "123456789");
    request.language = Some("de".into());
    request.bot_name = Some("Notes".into());
    let (code, body) = stack.post_bot_as(DEV_TOKEN, &request).await;
    assert_eq!(code, 201, "{body}");
    let id = body["id"].as_i64().expect("id");
    let container = stack.inspect(id).await;
    let bot_config = container["Config"]["Env"][0]
        .as_str()
        .and_then(|e| e.strip_prefix("BOT_CONFIG="))
        .expect("BOT_CONFIG first");
    let config: Value = serde_json::from_str(bot_config).expect("BOT_CONFIG");
    assert_eq!(config["language"], "de");
    assert_eq!(config["botName"], "Notes");
    assert!(config.get("task").is_none(), "{config}");
}

// Pins "422 bodies are a text": production's are pydantic's list, which clients read as
// `detail[0].loc`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprocessable_requests_answer_pydantics_list() {
    let stack = Stack::start().await;
    let post = |path: &'static str, body: Value| {
        let stack = &stack;
        async move {
            let resp = stack
                .http
                .post(stack.url(path))
                .header("X-API-Key", DEV_TOKEN)
                .json(&body)
                .send()
                .await
                .expect("POST");
            let code = resp.status().as_u16();
            (code, resp.json::<Value>().await.expect("JSON body"))
        }
    };
    let cases = [
        (
            "/bots",
            json!({"platform": "zoom"}),
            json!(["body", "native_meeting_id"]),
            "missing",
        ),
        (
            "/bots",
            json!({"platform": "webex", "native_meeting_id": "123456789"}),
            json!(["body", "platform"]),
            "enum",
        ),
        (
            "/bots",
            json!({"platform": "google_meet", "native_meeting_id": "abc-defg-hi"}),
            json!(["body", "native_meeting_id"]),
            "value_error",
        ),
        (
            "/bots/internal/callback/status_change",
            json!({"connection_id": "u", "status": "paused"}),
            json!(["body", "status"]),
            "enum",
        ),
        (
            "/bots/internal/callback/exited",
            json!({"connection_id": "u", "exit_code": "zero"}),
            json!(["body", "exit_code"]),
            "int_type",
        ),
    ];
    for (path, body, loc, kind) in cases {
        let (code, answer) = post(path, body.clone()).await;
        assert_eq!(code, 422, "{path} {body}: {answer}");
        let errors = answer["detail"].as_array().expect("a list");
        assert_eq!(errors[0]["loc"], loc, "{path} {body}: {answer}");
        assert_eq!(errors[0]["type"], kind, "{path} {body}: {answer}");
        assert!(errors[0]["msg"].is_string(), "{answer}");
    }
    let (code, answer) = stack.delete_bot_path("/bots/webex/123456789").await;
    assert_eq!(code, 422);
    assert_eq!(answer["detail"][0]["loc"], json!(["path", "platform"]));
    assert_eq!(
        answer["detail"][0]["ctx"]["expected"],
        "'google_meet', 'zoom' or 'teams'"
    );
    let resp = stack
        .http
        .post(stack.url("/bots"))
        .header("X-API-Key", DEV_TOKEN)
        .header("content-type", "application/json")
        .body("{\"platform\": ")
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 422);
    let answer: Value = resp.json().await.expect("JSON body");
    assert_eq!(answer["detail"][0]["type"], "json_invalid", "{answer}");
    assert_eq!(answer["detail"][0]["loc"][0], "body", "{answer}");
}
