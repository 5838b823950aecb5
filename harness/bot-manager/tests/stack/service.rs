//! The service as a process: shutdown, restart, and what it leaves behind.

use std::time::Duration;

use protocol::Platform;

use crate::support::{DEADLINE, Stack, StackOptions, unique_meet_id};

// Pins "service restart inside the 30 s window loses the in-memory delayed stop": the
// restarted service never stops the container, and the meeting stays active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_inside_delayed_stop_window_loses_the_container_stop() {
    let options = StackOptions {
        delayed_stop_ms: 1_500,
        ..StackOptions::default()
    };
    let window = Duration::from_millis(options.delayed_stop_ms)
        + Duration::from_secs(u64::from(options.stop_grace_s));
    let mut stack = Stack::start_with(options).await;
    let native = unique_meet_id();
    stack
        .bot_behaviour(&native, &[("MOCK_BOT_LEAVE", "hang")])
        .await;
    let meeting = stack.start_bot(Platform::GoogleMeet, &native).await;
    stack.wait_status(meeting.id, "active").await;
    let (status, _) = stack.delete_bot(Platform::GoogleMeet, &native).await;
    assert_eq!(status, 202);

    let exit = stack.stop_manager().await;
    assert!(exit.success(), "SIGTERM ends the service cleanly: {exit:?}");
    stack.start_manager().await;

    // Proving that a stop never happens takes watching the whole window it was due in.
    tokio::time::sleep(window * 2).await;
    let container = stack
        .runtime_containers()
        .await
        .into_iter()
        .find(|c| {
            c["name"]
                .as_str()
                .is_some_and(|n| n.contains(&format!("vexa-bot-{}-", meeting.id)))
        })
        .expect("the container is still known");
    assert_eq!(container["state"], "running", "{container}");
    assert_eq!(stack.meeting_row(meeting.id).await.status, "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stack_leaves_no_process_behind() {
    let stack = Stack::start().await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let native = unique_meet_id();
        stack
            .bot_behaviour(&native, &[("MOCK_BOT_LEAVE", "hang")])
            .await;
        ids.push(stack.start_bot(Platform::GoogleMeet, &native).await.id);
    }
    for id in &ids {
        stack.wait_status(*id, "active").await;
    }
    let pids = stack.process_ids().await;
    assert_eq!(pids.len(), 3, "the runtime and two bots: {pids:?}");
    drop(stack);
    for pid in pids {
        let gone =
            tokio::task::spawn_blocking(move || infra::process::wait_until_gone(pid, DEADLINE))
                .await
                .unwrap();
        assert!(gone, "process {pid} outlived the stack");
    }
}

/// Runs `bot-manager` with `args` and answers its exit code and stderr.
async fn run_manager(args: &[&str]) -> (Option<i32>, String) {
    let bin = infra::bins::workspace_bin("bot-manager").expect("bot-manager binary");
    let output = tokio::time::timeout(
        DEADLINE,
        tokio::process::Command::new(bin)
            .env_clear()
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("bot-manager exits by itself")
    .expect("run bot-manager");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn unknown_profile_is_refused_naming_the_profiles() {
    let (code, stderr) = run_manager(&[
        "--profile",
        "fixd",
        "--database-url",
        "x",
        "--redis-url",
        "y",
    ])
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("fixd") && stderr.contains("legacy"),
        "{stderr}"
    );
}

#[tokio::test]
async fn unreachable_database_fails_startup_with_a_clear_error() {
    let port = infra::process::free_port().unwrap().to_string();
    let url = format!("postgres://postgres@127.0.0.1:{port}/nowhere");
    let (code, stderr) = run_manager(&[
        "--database-url",
        &url,
        "--redis-url",
        "redis://127.0.0.1:1",
        "--listen",
        "127.0.0.1:0",
        "--dependency-timeout-ms",
        "500",
    ])
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("failed to connect to Postgres"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_fails_startup_with_a_clear_error() {
    let db = infra::postgres::test_database().await.unwrap();
    let port = infra::process::free_port().unwrap().to_string();
    let redis = format!("redis://127.0.0.1:{port}");
    let (code, stderr) = run_manager(&[
        "--database-url",
        db.url(),
        "--redis-url",
        &redis,
        "--listen",
        "127.0.0.1:0",
    ])
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("failed to connect to Redis at"), "{stderr}");
}
