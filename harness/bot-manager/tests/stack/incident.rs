//! The incident of `stop-bot-stuck-active.md`, reproduced deterministically under the
//! legacy profile: DELETE answers 202, the container is gone (SIGKILL, exit 137), no
//! callback ever arrived, and the meeting is still `active` in the database.

use crate::support::{DEADLINE, unique_meet_id};
use crate::support::{Stack, StackOptions};
use futures::StreamExt;
use protocol::Platform;

/// Stops the bot, checks the one leave went to `leave_uid`'s channel, and checks the
/// stuck state once the container is gone.
async fn stop_and_expect_stuck(stack: &Stack, native: &str, meeting_id: i64, leave_uid: &str) {
    let mut commands = stack.watch_commands().await;
    let (status, body) = stack.delete_bot(Platform::GoogleMeet, native).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["message"],
        "Stop request accepted and is being processed."
    );

    let leave = (
        protocol::bot_commands_channel(leave_uid),
        serde_json::json!({"action": "leave"}),
    );
    assert_eq!(commands.wait_for(1).await, std::slice::from_ref(&leave));

    // The delayed stop's SIGTERM is swallowed (PID-1 shell): SIGKILL after the grace.
    assert_eq!(stack.wait_container_exit(meeting_id).await, 137);
    stack.assert_container_gone(meeting_id).await;
    assert_eq!(commands.drain(), [leave], "one leave, no other command");
    let log = stack.bot_log(meeting_id);
    assert!(
        !log.has("callback_attempt"),
        "the bot called back: {:?}",
        log.names()
    );
    let row = stack.meeting_row(meeting_id).await;
    assert_eq!(row.status, "active", "audit list: {:?}", row.transitions());
    assert!(
        row.transitions()
            .iter()
            .all(|(_, to)| to != "completed" && to != "failed"),
        "{:?}",
        row.transitions()
    );
    assert_eq!(
        row.data.get("stop_requested"),
        None,
        "legacy does not record the stop"
    );
    eprintln!(
        "REPRODUCED: meeting {meeting_id} is still `active` with its container gone (exit 137, no callback); audit list {:?}",
        row.transitions()
    );
}

// H1: the leave UI step hangs, SIGTERM is swallowed, the delayed stop kills the bot,
// and nothing writes the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_leave_and_swallowed_sigterm_leave_meeting_active() {
    let stack = Stack::start().await;
    let (native, meeting) = stack.bot_at(&[("MOCK_BOT_LEAVE", "hang")], "active").await;
    let uid = stack.connection_id(meeting.id).await;

    stop_and_expect_stuck(&stack, &native, meeting.id, &uid).await;
    let log = stack.bot_log(meeting.id);
    assert!(
        log.has("leave_started") && log.has("leave_hung"),
        "{:?}",
        log.names()
    );
    assert!(
        log.has("command_received"),
        "the leave did arrive: {:?}",
        log.names()
    );
    assert!(
        log.has("sigterm_ignored") || log.has("sigterm_received"),
        "{:?}",
        log.names()
    );
}

// H2, reconnect rows: transcription reconnects carry client timestamps earlier than
// the service's own connectionId row, so "earliest" names a uid nobody listens on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_to_earliest_reconnect_uid_leaves_meeting_active() {
    let stack = Stack::start().await;
    let native = unique_meet_id();
    stack
        .bot_behaviour(
            &native,
            &[
                ("MOCK_BOT_RECONNECTS", "2"),
                ("MOCK_BOT_RECONNECT_SKEW_MS", "-60000"),
            ],
        )
        .await;
    let meeting = stack.start_bot(Platform::GoogleMeet, &native).await;
    stack.wait_status(meeting.id, "active").await;
    stack
        .wait_bot_event_count(meeting.id, "session_started", 3)
        .await;
    let sessions = stack.sessions(meeting.id).await;
    assert_eq!(sessions.len(), 3, "{sessions:?}");
    let live_uid = stack.connection_id(meeting.id).await;
    assert_ne!(
        sessions[0], live_uid,
        "the earliest row must be a reconnect uid"
    );

    stop_and_expect_stuck(&stack, &native, meeting.id, &sessions[0]).await;
    assert!(!stack.bot_log(meeting.id).has("command_received"));
}

// H2, restart: the bot restarted under a new uid; the leave goes to the first uid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_to_stale_uid_after_restart_leaves_meeting_active() {
    let stack = Stack::start().await;
    let (native, meeting) = stack.bot_at(&[], "active").await;
    stack
        .wait_bot_event_count(meeting.id, "session_started", 1)
        .await;
    let first_uid = stack.connection_id(meeting.id).await;

    let container = stack
        .meeting_row(meeting.id)
        .await
        .bot_container_id
        .expect("container id");
    let (code, body) = stack
        .runtime_post(
            &format!("/_runtime/containers/{container}/restart"),
            &serde_json::json!({"new_uid": true}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let new_uid = body["connection_id"].as_str().expect("new uid").to_owned();
    assert_ne!(new_uid, first_uid);
    // The restarted bot opens its transcription session under the new uid.
    stack.wait_session(meeting.id, &new_uid).await;
    assert_eq!(stack.sessions(meeting.id).await[0], first_uid);

    stop_and_expect_stuck(&stack, &native, meeting.id, &first_uid).await;
}

// H3: the bot's subscription failed, so the leave is published to nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_lost_by_failed_subscription_leaves_meeting_active() {
    let stack = Stack::start().await;
    let (native, meeting) = stack
        .bot_at(&[("MOCK_BOT_SUBSCRIBE", "fail")], "active")
        .await;
    assert!(stack.bot_log(meeting.id).has("subscribe_failed"));

    let uid = stack.connection_id(meeting.id).await;
    stop_and_expect_stuck(&stack, &native, meeting.id, &uid).await;
    assert!(!stack.bot_log(meeting.id).has("command_received"));
}

// H4: `stopping` is published on the status channel but never stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_published_while_database_keeps_active() {
    let stack = Stack::start_with(StackOptions::default()).await;
    let (native, meeting) = stack.bot_at(&[("MOCK_BOT_LEAVE", "hang")], "active").await;

    let client = redis::Client::open(stack.redis_url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(protocol::status_channel(1, Platform::GoogleMeet, &native))
        .await
        .unwrap();
    let mut messages = pubsub.on_message();

    let uid = stack.connection_id(meeting.id).await;
    stop_and_expect_stuck(&stack, &native, meeting.id, &uid).await;
    // The `active` publish may trail the row it reports, so skip to the `stopping` one.
    let mut published = Vec::new();
    while !published.contains(&protocol::MeetingStatus::Stopping) {
        let message = tokio::time::timeout(DEADLINE, messages.next())
            .await
            .unwrap_or_else(|_| panic!("no `stopping` published; saw {published:?}"))
            .expect("the status stream");
        let event: protocol::StatusEvent =
            serde_json::from_slice(message.get_payload_bytes()).unwrap();
        published.push(event.payload.status);
    }
    assert_eq!(published.last(), Some(&protocol::MeetingStatus::Stopping));
    assert_eq!(stack.meeting_row(meeting.id).await.status, "active");
}
