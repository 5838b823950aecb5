//! The `callback_auth` fix (issue 12, "anyone on the network can finish anyone's
//! meeting") through real processes: under it a callback needs its own bot's secret,
//! bound to its meeting and container, and a refused one changes nothing; under legacy
//! the same forged requests are accepted, as the incident's code accepts them.

use protocol::Platform;
use reqwest::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use rstest::rstest;
use serde_json::{Value, json};

use crate::support::{ChannelWatch, DEV_TOKEN, Stack, StackOptions, unique_meet_id, wait_for};

const STATUS_CHANGE: &str = "/bots/internal/callback/status_change";
const EXITED: &str = "/bots/internal/callback/exited";
const SESSION_START: &str = "/bots/internal/session_start";

/// A bot whose leave never returns: only a callback (or the service's stop) moves it.
const HUNG_LEAVE: &[(&str, &str)] = &[("MOCK_BOT_LEAVE", "hang")];
/// A bot held in the waiting room, its leave hung: a forged `active` would apply.
const HELD_IN_WAITING_ROOM: &[(&str, &str)] = &[
    ("MOCK_BOT_LEAVE", "hang"),
    ("MOCK_BOT_ADMISSION_DELAY_MS", "600000"),
];

/// One meeting and what its bot was given.
struct Party {
    id: i64,
    native: String,
    uid: String,
    container_name: String,
    /// The runtime's id of the container.
    container_id: String,
    /// The bot's own secret (`None` without `callback_auth`).
    secret: Option<String>,
}

impl Party {
    fn secret(&self) -> &str {
        self.secret.as_deref().expect("a bot given a secret")
    }
}

/// A meeting whose bot reached `status` and has made every call it will make there
/// (its report of `status` answered; at `active`, its session start too).
async fn party(stack: &Stack, behaviour: &[(&str, &str)], status: &str) -> Party {
    let (native, meeting) = stack.bot_at(behaviour, status).await;
    let event = if status == "active" {
        "session_started"
    } else {
        "status_sent"
    };
    wait_for(
        &format!("the bot of meeting {} to be answered", meeting.id),
        || async {
            let log = stack.bot_log(meeting.id);
            log.events
                .iter()
                .any(|e| {
                    e["event"] == event
                        && (event != "status_sent" || e["status"] == status)
                        && e.get("http_status").is_some()
                })
                .then_some(())
        },
    )
    .await;
    let uid = stack.connection_id(meeting.id).await;
    stack.wait_session(meeting.id, &uid).await;
    let container_name = stack.container_name(meeting.id).await;
    let container_id = stack
        .runtime_containers()
        .await
        .iter()
        .find(|c| c["name"].as_str().map(|n| n.trim_start_matches('/')) == Some(&container_name))
        .and_then(|c| c["id"].as_str().map(str::to_owned))
        .expect("the container's id");
    let secret = stack.bot_config(meeting.id).await.callback_secret;
    Party {
        id: meeting.id,
        native,
        uid,
        container_name,
        container_id,
        secret,
    }
}

/// A stack under `profile` with a victim (active) and an attacker (held in the
/// waiting room), each a bot of its own.
async fn victim_and_attacker(profile: &str) -> (Stack, Party, Party) {
    let stack = Stack::start_with(StackOptions {
        profile: profile.into(),
        ..StackOptions::default()
    })
    .await;
    let victim = party(&stack, HUNG_LEAVE, "active").await;
    let attacker = party(&stack, HELD_IN_WAITING_ROOM, "awaiting_admission").await;
    (stack, victim, attacker)
}

/// Everything a callback could change: every meeting row, every session row, the
/// parties' `current_uid` keys.
#[derive(Debug, PartialEq)]
struct Stored {
    meetings: Vec<(i32, String, Option<String>, Value, String)>,
    sessions: Vec<(i32, String, String)>,
    current_uids: Vec<Option<String>>,
}

async fn stored(stack: &Stack, parties: &[&Party]) -> Stored {
    let meetings = sqlx::query_as(
        "SELECT id, status, bot_container_id, data, updated_at::text FROM meetings ORDER BY id",
    )
    .fetch_all(&stack.pool)
    .await
    .expect("meetings");
    let sessions = sqlx::query_as(
        "SELECT meeting_id, session_uid, session_start_time::text FROM meeting_sessions ORDER BY id",
    )
    .fetch_all(&stack.pool)
    .await
    .expect("sessions");
    let mut current_uids = Vec::new();
    for party in parties {
        let key = protocol::current_uid_key(Platform::GoogleMeet, &party.native);
        current_uids.push(stack.redis_get(&key).await);
    }
    Stored {
        meetings,
        sessions,
        current_uids,
    }
}

/// Asserts nothing was published since `watch` began: a marker published now reaches
/// the watch after anything the service published before it.
async fn assert_nothing_published(stack: &Stack, watch: &mut ChannelWatch) {
    let marker = format!("stopflow-test-marker-{}", unique_meet_id());
    stack.redis_publish(&marker, "{}").await;
    let seen = watch.wait_until("the marker", |c, _| c == marker).await;
    assert_eq!(seen.0, marker);
    let others: Vec<_> = watch.seen.iter().filter(|(c, _)| *c != marker).collect();
    assert!(others.is_empty(), "a refused callback published {others:?}");
}

/// Asserts both bots still run: no refused callback stopped a container.
async fn assert_containers_run(stack: &Stack, parties: &[&Party]) {
    let containers = stack.runtime_containers().await;
    for party in parties {
        let c = containers
            .iter()
            .find(|c| c["id"] == party.container_id.as_str())
            .expect("the party's container");
        assert_eq!(c["state"], "running", "{c}");
    }
}

/// A callback to send: its path, body and bearer secret, and what its refusal says.
type Forged<'a> = (&'a str, Value, Option<String>, &'a str);

/// Sends each request, expects `code` with a `detail` text saying what that request's
/// refusal says, and that none of them changed anything.
async fn assert_refused(stack: &Stack, parties: &[&Party], code: u16, requests: Vec<Forged<'_>>) {
    let mut watch = stack.watch("*").await;
    let before = stored(stack, parties).await;
    for (path, body, bearer, says) in requests {
        let (got, answer) = stack.post_callback(path, &body, bearer.as_deref()).await;
        assert_eq!(got, code, "{path} {body}: {answer}");
        let detail = answer["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{path} {body}: {answer}");
        assert_eq!(
            stored(stack, parties).await,
            before,
            "{path} {body} changed something"
        );
    }
    assert_nothing_published(stack, &mut watch).await;
    assert_containers_run(stack, parties).await;
}

// Pins issue 12: the internal callbacks took no credential at all. Under callback_auth
// a callback with no secret, or a header that cannot carry one, is 401 and changes
// nothing, on every callback route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_callback_auth_a_callback_without_its_secret_is_401_and_changes_nothing() {
    let (stack, victim, attacker) = victim_and_attacker("callback-auth").await;
    let missing = "Missing Authorization header";
    let requests = vec![
        (
            STATUS_CHANGE,
            json!({"connection_id": victim.uid, "status": "completed"}),
            None,
            missing,
        ),
        (
            EXITED,
            json!({"connection_id": victim.uid, "exit_code": 1}),
            None,
            missing,
        ),
        (
            SESSION_START,
            json!({"meeting_id": victim.id, "session_uid": "forged", "session_start_time": "2000-01-01T00:00:00Z"}),
            None,
            missing,
        ),
    ];
    assert_refused(&stack, &[&victim, &attacker], 401, requests).await;
}

// Pins issue 12: a forged `completed` finished another user's meeting. Under
// callback_auth another meeting's secret (or a secret of no meeting) is 403 for every
// callback about the victim's meeting, and a callback that resolves to no meeting is
// 403 too; none changes anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_callback_auth_another_meetings_secret_is_403_and_changes_nothing() {
    let (stack, victim, attacker) = victim_and_attacker("callback-auth").await;
    let theirs = Some(attacker.secret().to_owned());
    let nobodys = Some(bot_manager::callback_auth::new_secret());
    let not_its = "secret is not that of the meeting";
    let requests = vec![
        (
            STATUS_CHANGE,
            json!({"connection_id": victim.uid, "status": "completed"}),
            theirs.clone(),
            not_its,
        ),
        (
            STATUS_CHANGE,
            json!({"connection_id": victim.uid, "status": "failed", "container_id": victim.container_name}),
            theirs.clone(),
            not_its,
        ),
        (
            EXITED,
            json!({"connection_id": victim.uid, "exit_code": 1}),
            theirs.clone(),
            not_its,
        ),
        (
            EXITED,
            json!({"connection_id": victim.uid, "exit_code": 0}),
            nobodys,
            not_its,
        ),
        (
            STATUS_CHANGE,
            json!({"connection_id": "a-uid-of-no-meeting", "status": "completed"}),
            theirs,
            "secret is not that of the meeting",
        ),
    ];
    assert_refused(&stack, &[&victim, &attacker], 403, requests).await;
}

// Pins issue 12: a forged `active` pointed user 3's meeting at user 1's container, and
// user 3's stop then killed user 1's bot. Under callback_auth a meeting's own secret
// naming another meeting's container (by name or by id) is 403 and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_callback_auth_its_own_secret_naming_another_meetings_container_is_403() {
    let (stack, victim, attacker) = victim_and_attacker("callback-auth").await;
    let own = Some(attacker.secret().to_owned());
    let requests = [
        &victim.container_name,
        &victim.container_id,
        &"/".to_owned(),
    ]
    .into_iter()
    .map(|container| {
        (
            STATUS_CHANGE,
            json!({"connection_id": attacker.uid, "status": "active", "container_id": container}),
            own.clone(),
            "container_id is not the container",
        )
    })
    .collect();
    assert_refused(&stack, &[&victim, &attacker], 403, requests).await;
}

// Pins issue 12: a forged session_start redirected a legacy leave to a channel the
// attacker listened on. Under callback_auth a session start for another meeting, for a
// meeting that does not exist, or claiming another meeting's uid is 403 and records
// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_callback_auth_a_forged_session_start_is_403_and_records_nothing() {
    let (stack, victim, attacker) = victim_and_attacker("callback-auth").await;
    let own = Some(attacker.secret().to_owned());
    let start = |meeting_id: i64, uid: &str| json!({"meeting_id": meeting_id, "session_uid": uid, "session_start_time": "2000-01-01T00:00:00Z"});
    let requests = vec![
        (
            SESSION_START,
            start(victim.id, "attacker-listens-here"),
            own.clone(),
            "secret is not that of the meeting",
        ),
        (
            SESSION_START,
            start(attacker.id + 1000, "nowhere"),
            own.clone(),
            "secret is not that of the meeting",
        ),
        (
            SESSION_START,
            start(attacker.id, &victim.uid),
            own.clone(),
            "belongs to another meeting",
        ),
    ];
    assert_refused(&stack, &[&victim, &attacker], 403, requests).await;
    // Its own meeting, under a uid of its own: recorded.
    let (code, body) = stack
        .post_callback(
            SESSION_START,
            &start(attacker.id, "a-reconnect"),
            own.as_deref(),
        )
        .await;
    assert_eq!(code, 201, "{body}");
}

// With current-uid routing a callback from an unknown uid naming a meeting's container
// is adopted as that meeting's bot, restarted: its session row and `current_uid` are
// written. Under callback_auth only with that meeting's secret: another's is 403, and
// neither is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_callback_auth_an_adoption_by_container_name_needs_that_meetings_secret() {
    let (stack, victim, attacker) = victim_and_attacker("route-current-uid+callback-auth").await;
    let forged = json!({
        "connection_id": "the-attackers-uid",
        "status": "active",
        "container_id": victim.container_name,
    });
    let requests = vec![(
        STATUS_CHANGE,
        forged,
        Some(attacker.secret().to_owned()),
        "secret is not that of the meeting",
    )];
    assert_refused(&stack, &[&victim, &attacker], 403, requests).await;

    // The victim's bot itself, restarted under a new uid, keeps its secret and is
    // adopted.
    let (code, body) = stack
        .runtime_post(
            &format!("/_runtime/containers/{}/restart", victim.container_name),
            &json!({"new_uid": true}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let new_uid = body["connection_id"]
        .as_str()
        .expect("the new uid")
        .to_owned();
    assert_eq!(stack.bot_secret(victim.id).await, victim.secret());
    stack.wait_session(victim.id, &new_uid).await;
    let key = protocol::current_uid_key(Platform::GoogleMeet, &victim.native);
    assert_eq!(
        stack.redis_get(&key).await.as_deref(),
        Some(new_uid.as_str())
    );
}

// Under callback_auth the real bot's own callbacks, each carrying its secret, are
// processed: start, joining, awaiting_admission, active, its session start, the stop,
// its completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_callback_auth_a_bots_own_callbacks_carrying_its_secret_are_processed() {
    let stack = Stack::start_with(StackOptions {
        profile: "callback-auth".into(),
        delayed_stop_ms: 600_000,
        ..StackOptions::default()
    })
    .await;
    let victim = party(&stack, &[], "active").await;
    let (code, body) = stack.delete_bot(Platform::GoogleMeet, &victim.native).await;
    assert_eq!(code, 202, "{body}");
    let row = stack.wait_terminal(victim.id).await;
    row.assert_stopped_by_its_user();
    assert_eq!(stack.wait_container_exit(victim.id).await, 0);
    let log = stack.bot_log(victim.id);
    let answered: Vec<(String, u64)> = log
        .events
        .iter()
        .filter(|e| {
            matches!(
                e["event"].as_str(),
                Some("status_sent" | "session_started" | "callback_result")
            )
        })
        .map(|e| {
            (
                e["event"].as_str().unwrap_or_default().to_owned(),
                e["http_status"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        answered,
        [
            ("status_sent", 200),
            ("status_sent", 200),
            ("status_sent", 200),
            ("session_started", 200),
            ("callback_result", 200),
        ]
        .map(|(e, s)| (e.to_owned(), s)),
        "{:?}",
        log.events
    );
}

// Pins issue 12 under legacy (which must keep the bug): with no credential at all, a
// forged `completed` finishes another user's meeting, and a forged session start with
// an early client clock becomes the meeting's earliest session, where legacy sends the
// leave, a channel the attacker listens on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_legacy_anyone_can_finish_a_meeting_and_redirect_its_leave_without_a_secret() {
    let (stack, victim, attacker) = victim_and_attacker("legacy").await;
    assert_eq!(victim.secret, None);

    let (code, body) = stack
        .post_callback(
            SESSION_START,
            &json!({"meeting_id": victim.id, "session_uid": "attacker-listens-here", "session_start_time": "2000-01-01T00:00:00Z"}),
            None,
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let mut commands = stack.watch_commands().await;
    let (code, body) = stack.delete_bot(Platform::GoogleMeet, &victim.native).await;
    assert_eq!(code, 202, "{body}");
    let (channel, _) = commands
        .wait_until("the leave", |_, p| p["action"] == "leave")
        .await;
    assert_eq!(channel, "bot_commands:attacker-listens-here");

    let (code, body) = stack
        .post_callback(
            STATUS_CHANGE,
            &json!({"connection_id": victim.uid, "status": "completed"}),
            None,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(stack.meeting_row(victim.id).await.status, "completed");
    // The attacker's own meeting was never touched.
    assert_eq!(
        stack.meeting_row(attacker.id).await.status,
        "awaiting_admission"
    );
}

// Pins issue 12 under legacy (which must keep the bug): a forged `active` in the name of
// one meeting's bot, naming another meeting's container, points the first meeting at
// that container; its stop then kills the other meeting's bot, whose row stays active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_legacy_a_forged_active_points_a_meeting_at_another_bot_and_its_stop_kills_it() {
    let (stack, victim, attacker) = victim_and_attacker("legacy").await;
    let (code, body) = stack
        .post_callback(
            STATUS_CHANGE,
            &json!({"connection_id": attacker.uid, "status": "active", "container_id": victim.container_name}),
            None,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let row = stack.meeting_row(attacker.id).await;
    assert_eq!(row.status, "active");
    assert_eq!(
        row.bot_container_id.as_deref(),
        Some(victim.container_name.as_str())
    );

    let (code, body) = stack
        .delete_bot(Platform::GoogleMeet, &attacker.native)
        .await;
    assert_eq!(code, 202, "{body}");
    // The delayed stop of the attacker's meeting hits the victim's bot (its leave hung,
    // its SIGTERM swallowed: SIGKILL).
    assert_eq!(stack.wait_container_exit(victim.id).await, 137);
    assert_eq!(stack.meeting_row(victim.id).await.status, "active");
}

// Pins issue 12 under legacy (which must keep the bug): another meeting's uid, a uid of
// no meeting's container, with no header at all, is accepted (a uid of no meeting is
// answered 200 "error", as production answers it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_legacy_a_callback_with_no_secret_is_accepted_and_an_unknown_uid_answered_200() {
    let (stack, victim, _attacker) = victim_and_attacker("legacy").await;
    let (code, body) = stack
        .post_callback(
            STATUS_CHANGE,
            &json!({"connection_id": "a-uid-of-no-meeting", "status": "completed"}),
            None,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "error");
    let (code, body) = stack
        .post_callback(
            EXITED,
            &json!({"connection_id": victim.uid, "exit_code": 1}),
            None,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["final_status"], "failed");
}

// BOT_CONFIG carries `callbackSecret` only with the switch on; no answer a user gets
// (POST /bots, GET /meetings, GET /bots/status, DELETE) nor anything published shows
// the secret, its digest or the binding's key.
#[rstest]
#[case::legacy("legacy", false)]
#[case::callback_auth("callback-auth", true)]
#[case::fixed("fixed", true)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_config_carries_a_secret_only_with_the_switch_on_and_no_answer_shows_it(
    #[case] profile: &str,
    #[case] given: bool,
) {
    let stack = Stack::start_with(StackOptions {
        profile: profile.into(),
        bot_env: vec![("MOCK_BOT_LEAVE".into(), "hang".into())],
        ..StackOptions::default()
    })
    .await;
    let mut published = stack.watch("*").await;
    let native = unique_meet_id();
    let (code, created) = stack.post_bot(Platform::GoogleMeet, &native).await;
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_i64().expect("the meeting id");
    stack.wait_status(id, "active").await;

    let config = stack.bot_config(id).await;
    assert_eq!(config.callback_secret.is_some(), given, "{config:?}");
    let row = stack.meeting_row(id).await;
    assert_eq!(
        row.data.get("callback_auth").is_some(),
        given,
        "{}",
        row.data
    );
    let mut secrets = vec!["callback_auth".to_owned(), "callbackSecret".to_owned()];
    if let Some(secret) = &config.callback_secret {
        assert_eq!(secret.len(), 64, "{secret}");
        assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()), "{secret}");
        secrets.push(secret.clone());
        let digest = row.data["callback_auth"]["secret_sha256"]
            .as_str()
            .expect("the stored digest")
            .to_owned();
        assert!(
            !row.data.to_string().contains(secret.as_str()),
            "{}",
            row.data
        );
        assert_eq!(
            row.data["callback_auth"]["container_name"],
            config.container_name
        );
        secrets.push(digest);
    }

    let get = |path: &'static str| {
        let stack = &stack;
        async move {
            let resp = stack
                .http
                .get(stack.url(path))
                .header("X-API-Key", DEV_TOKEN)
                .send()
                .await
                .expect("GET");
            assert_eq!(resp.status().as_u16(), 200, "{path}");
            resp.text().await.expect("a body")
        }
    };
    let meetings = get("/meetings").await;
    let running = get("/bots/status").await;
    let (code, stopped) = stack.delete_bot(Platform::GoogleMeet, &native).await;
    assert_eq!(code, 202, "{stopped}");
    published
        .wait_until("stopping", |_, p| p["payload"]["status"] == "stopping")
        .await;
    let published: Vec<String> = published
        .drain()
        .iter()
        .map(|(_, p)| p.to_string())
        .collect();
    for (what, text) in [
        ("POST /bots", created.to_string()),
        ("GET /meetings", meetings),
        ("GET /bots/status", running),
        ("DELETE", stopped.to_string()),
        ("Redis", published.join("\n")),
    ] {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{what} shows {secret}: {text}"
            );
        }
    }
    // The log names the switch (`callback_auth: true`), never a secret or its digest.
    let log = stack.service_log();
    for secret in secrets.iter().skip(2) {
        assert!(!log.contains(secret.as_str()), "the log shows {secret}");
    }
}

// Every Authorization header that cannot carry a secret (missing, empty, no token,
// another scheme, not ASCII, 10 kB) is 401 naming what is wrong, with
// `WWW-Authenticate: Bearer`, on every callback route, and never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_callback_auth_a_malformed_authorization_header_is_401_never_5xx() {
    let (stack, victim, attacker) = victim_and_attacker("callback-auth").await;
    let secret = victim.secret().to_owned();
    let headers: Vec<(Option<HeaderValue>, &str)> = vec![
        (None, "Missing Authorization header"),
        (Some(HeaderValue::from_static("")), "scheme is not Bearer"),
        (Some(HeaderValue::from_static("Bearer")), "token is missing"),
        (
            Some(HeaderValue::from_static("Bearer    ")),
            "token is missing",
        ),
        (
            Some(HeaderValue::from_static("Basic x")),
            "scheme is not Bearer",
        ),
        (
            Some(HeaderValue::from_str(&format!("Basic {secret}")).unwrap()),
            "scheme is not Bearer",
        ),
        (
            Some(HeaderValue::from_str(&format!("Token {secret}")).unwrap()),
            "scheme is not Bearer",
        ),
        (
            Some(HeaderValue::from_bytes("Bearer é".as_bytes()).unwrap()),
            "not visible ASCII",
        ),
        (
            Some(
                HeaderValue::from_bytes(&[b'B', b'e', b'a', b'r', b'e', b'r', b' ', 0xff]).unwrap(),
            ),
            "not visible ASCII",
        ),
        (
            Some(HeaderValue::from_str(&format!("Bearer {}", "a".repeat(10_000))).unwrap()),
            "not a callback secret",
        ),
        (
            Some(HeaderValue::from_str(&"x".repeat(10_000)).unwrap()),
            "scheme is not Bearer",
        ),
        (
            Some(HeaderValue::from_str(&format!("Bearer {secret}x")).unwrap()),
            "not a callback secret",
        ),
        (
            Some(HeaderValue::from_str(&format!("Bearer {}", &secret[1..])).unwrap()),
            "not a callback secret",
        ),
    ];
    let bodies = [
        (
            STATUS_CHANGE,
            json!({"connection_id": victim.uid, "status": "completed"}),
        ),
        (EXITED, json!({"connection_id": victim.uid, "exit_code": 0})),
        (
            SESSION_START,
            json!({"meeting_id": victim.id, "session_uid": "s", "session_start_time": "2000-01-01T00:00:00Z"}),
        ),
    ];
    let before = stored(&stack, &[&victim, &attacker]).await;
    for (header, says) in &headers {
        for (path, body) in &bodies {
            let mut request = stack.http.post(stack.url(path)).json(body);
            if let Some(header) = header {
                request = request.header(AUTHORIZATION, header.clone());
            }
            let resp = request.send().await.expect("an answer");
            let code = resp.status().as_u16();
            let challenge = resp.headers().get(WWW_AUTHENTICATE).cloned();
            let answer: Value = resp.json().await.expect("a JSON answer");
            assert_eq!(code, 401, "{path} with {header:?}: {answer}");
            assert_eq!(
                challenge.as_ref().map(|v| v.as_bytes()),
                Some(&b"Bearer"[..])
            );
            let detail = answer["detail"].as_str().unwrap_or_default();
            assert!(detail.contains(says), "{path} with {header:?}: {answer}");
        }
    }
    assert_eq!(stored(&stack, &[&victim, &attacker]).await, before);
}
