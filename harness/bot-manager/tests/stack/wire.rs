//! `--wire later`: the Redis protocol of a later production version (protocol.md section
//! 11) under the legacy profile: commands and statuses on channels named by the meeting
//! row's id, and no `current_uid` key.

use protocol::Platform;
use serde_json::{Value, json};

use crate::support::{DEV_TOKEN, Stack, StackOptions, unique_meet_id};

async fn later_wire_stack() -> Stack {
    let stack = Stack::start_with(StackOptions {
        wire: Some("later".into()),
        ..StackOptions::default()
    })
    .await;
    // Every stack's database counts meetings from 1: on a Redis shared with other tests'
    // stacks, channels named by the meeting's id would meet. A random start keeps them apart.
    let start = 1_000 + i64::from(rand::random::<u32>() % 1_000_000_000);
    sqlx::query("SELECT setval('meetings_id_seq', $1)")
        .bind(start)
        .execute(&stack.pool)
        .await
        .expect("move the meeting ids");
    stack
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_wire_sends_the_leave_and_statuses_on_meeting_id_channels_and_writes_no_current_uid()
{
    let stack = later_wire_stack().await;
    let native = unique_meet_id();
    let mine = |payload: &Value| payload["meeting"]["native_id"] == native.as_str();
    let mut statuses = stack.watch("bm:meeting:*").await;
    let mut commands = stack.watch_commands().await;

    let meeting = stack.start_bot(Platform::GoogleMeet, &native).await;
    let current_uid_key = protocol::current_uid_key(Platform::GoogleMeet, &native);
    assert!(
        !stack.redis_has(&current_uid_key).await,
        "{current_uid_key} written"
    );
    let status_channel = protocol::meeting_status_channel(meeting.id);
    statuses
        .wait_until("the meeting active on its status channel", |c, p| {
            c == status_channel && mine(p) && p["payload"]["status"] == "active"
        })
        .await;

    let (status, body) = stack.delete_bot(Platform::GoogleMeet, &native).await;
    assert_eq!(status, 202, "{body}");
    let leave = (
        protocol::meeting_commands_channel(meeting.id),
        json!({"action": "leave", "meeting_id": meeting.id}),
    );
    let leave_channel = leave.0.clone();
    let seen = commands
        .wait_until("a leave on the meeting's channel", |c, _| {
            c == leave_channel
        })
        .await;
    assert_eq!(seen, leave);

    assert_eq!(stack.wait_terminal(meeting.id).await.status, "completed");
    statuses
        .wait_until("the meeting completed on its status channel", |c, p| {
            c == status_channel && mine(p) && p["payload"]["status"] == "completed"
        })
        .await;
    let published: Vec<(String, Value)> = statuses
        .drain()
        .iter()
        .filter(|(_, p)| mine(p))
        .cloned()
        .collect();
    assert!(
        published.iter().all(|(c, p)| c == &status_channel
            && p["type"] == "meeting.status"
            && p["meeting"]["platform"] == "google_meet"
            && p["ts"].is_string()),
        "every status on {status_channel}, in today's shape: {published:?}"
    );
    let order: Vec<&str> = published
        .iter()
        .filter_map(|(_, p)| p["payload"]["status"].as_str())
        .filter(|s| ["requested", "active", "stopping", "completed"].contains(s))
        .collect();
    assert_eq!(order, ["requested", "active", "stopping", "completed"]);
    assert_eq!(
        commands
            .drain()
            .iter()
            .filter(|(c, _)| c == &leave_channel)
            .collect::<Vec<_>>(),
        [&leave],
        "one command for the meeting"
    );
    assert!(
        !stack.redis_has(&current_uid_key).await,
        "{current_uid_key} written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_wire_sends_a_reconfigure_on_the_meeting_channel_naming_the_meeting() {
    let stack = later_wire_stack().await;
    let (native, meeting) = stack.bot_at(&[], "active").await;
    let uid = stack.connection_id(meeting.id).await;
    stack.wait_session(meeting.id, &uid).await;
    let mut commands = stack.watch_commands().await;

    let resp = stack
        .http
        .put(stack.url(&format!("/bots/google_meet/{native}/config")))
        .header("X-API-Key", DEV_TOKEN)
        .json(&json!({"language": "de", "task": "translate"}))
        .send()
        .await
        .expect("PUT config");
    assert_eq!(resp.status().as_u16(), 202);
    let channel = protocol::meeting_commands_channel(meeting.id);
    let seen = commands
        .wait_until("a command on the meeting's channel", |c, _| c == channel)
        .await;
    assert_eq!(
        seen.1,
        json!({"action": "reconfigure", "uid": uid, "language": "de", "task": "translate",
               "meeting_id": meeting.id})
    );
    stack.wait_bot_event(meeting.id, "command_received").await;
}
