//! The service as a process: shutdown, restart, and what it leaves behind.

use protocol::Platform;

use crate::support::{DEADLINE, Stack, StackOptions, unique_meet_id};

// Pins "service restart inside the 30 s window loses the in-memory delayed stop": the
// restarted service never stops the container, and the meeting stays active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_inside_delayed_stop_window_loses_the_container_stop() {
    let mut stack = Stack::start_with(StackOptions {
        delayed_stop_ms: 1_500,
        ..StackOptions::default()
    })
    .await;
    let since = chrono::Utc::now().timestamp();
    let (lost, control) = (unique_meet_id(), unique_meet_id());
    let mut ids = Vec::new();
    for native in [&lost, &control] {
        stack
            .bot_behaviour(native, &[("MOCK_BOT_LEAVE", "hang")])
            .await;
        ids.push(stack.start_bot(Platform::GoogleMeet, native).await.id);
    }
    for id in &ids {
        stack.wait_status(*id, "active").await;
    }
    assert_eq!(stack.delete_bot(Platform::GoogleMeet, &lost).await.0, 202);

    let exit = stack.stop_manager().await;
    assert!(exit.success(), "SIGTERM ends the service cleanly: {exit:?}");
    stack.start_manager().await;

    // The control's stop is scheduled later, by the same delay, in the new process: once
    // it has killed its bot, the lost stop's moment has passed too.
    assert_eq!(
        stack.delete_bot(Platform::GoogleMeet, &control).await.0,
        202
    );
    assert_eq!(stack.wait_container_exit(ids[1]).await, 137);

    let lost_name = stack.container_name(ids[0]).await;
    let events = stack.runtime_events(since).await;
    let touching: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["Actor"]["Attributes"]["name"] == lost_name.as_str())
        .filter(|e| matches!(e["Action"].as_str(), Some("kill" | "die" | "stop")))
        .collect();
    assert!(touching.is_empty(), "the lost stop happened: {touching:?}");
    let control_name = stack.container_name(ids[1]).await;
    assert!(
        events.iter().any(
            |e| e["Actor"]["Attributes"]["name"] == control_name.as_str() && e["Action"] == "kill"
        ),
        "the control stop was seen"
    );
    assert_eq!(stack.meeting_row(ids[0]).await.status, "active");
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
