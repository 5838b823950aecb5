//! The happy path through real processes: POST, the bot reaches `active`, DELETE, the
//! bot leaves and calls back, the row completes and the container is gone.

use crate::support::{Stack, StackOptions, unique_meet_id};
use protocol::Platform;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_of_active_bot_completes_meeting_and_removes_container() {
    // A delayed stop far beyond the test: the bot's own leave must do everything.
    let stack = Stack::start_with(StackOptions {
        delayed_stop_ms: 600_000,
        ..StackOptions::default()
    })
    .await;
    let native = unique_meet_id();
    let meeting = stack.start_bot(Platform::GoogleMeet, &native).await;
    // The bot starts before POST answers, so on a busy machine its first report can land
    // first, as in production: the body shows the row as POST last read it.
    assert!(
        matches!(meeting.status.as_str(), "requested" | "joining"),
        "{}",
        meeting.status
    );
    assert!(meeting.bot_container_id.is_some());

    stack.wait_status(meeting.id, "active").await;
    let (status, body) = stack.delete_bot(Platform::GoogleMeet, &native).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["message"],
        "Stop request accepted and is being processed."
    );

    let row = stack.wait_status(meeting.id, "completed").await;
    row.assert_stopped_by_its_user();
    // The bot exits 0 by itself after its callback; AutoRemove takes the container.
    assert_eq!(stack.wait_container_exit(meeting.id).await, 0);
    stack.assert_container_gone(meeting.id).await;
    let log = stack.bot_log(meeting.id);
    assert!(log.has("command_received"), "bot events: {:?}", log.names());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_bots_come_from_the_runtime_not_the_database() {
    let stack = Stack::start().await;
    let (native, meeting) = stack.bot_at(&[], "active").await;

    let body: serde_json::Value = stack
        .http
        .get(stack.url("/bots/status"))
        .header("X-API-Key", crate::support::DEV_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bots = body["running_bots"].as_array().expect("running_bots");
    assert_eq!(bots.len(), 1, "{body}");
    assert_eq!(bots[0]["meeting_id_from_name"], meeting.id.to_string());
    assert_eq!(bots[0]["native_meeting_id"], native.as_str());

    // Killed behind the service's back: the database still says active, the runtime
    // no longer lists it.
    let name = bots[0]["container_name"].as_str().unwrap().to_owned();
    let (code, _) = stack
        .runtime_post(
            &format!("/_runtime/containers/{name}/signal"),
            &serde_json::json!({"signal": "SIGKILL"}),
        )
        .await;
    assert_eq!(code, 204);
    assert_eq!(stack.wait_container_exit(meeting.id).await, 137);
    stack.assert_container_gone(meeting.id).await;
    let body: serde_json::Value = stack
        .http
        .get(stack.url("/bots/status"))
        .header("X-API-Key", crate::support::DEV_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["running_bots"].as_array().map(Vec::len),
        Some(0),
        "{body}"
    );
    assert_eq!(stack.meeting_row(meeting.id).await.status, "active");
}
