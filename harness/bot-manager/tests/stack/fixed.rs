//! The `fixed` profile (protocol.md section 10) through real processes: the races of a
//! stop, a restart inside a stop, and two instances sharing one database each end the
//! meeting exactly once, with reason `stopped` and no container left behind.

use chrono::{DateTime, Utc};
use protocol::Platform;
use serde_json::{Value, json};

use crate::support::{Stack, StackOptions, StoredMeeting, unique_meet_id, wait_for};

/// A bot whose leave step never returns: nothing but the service's own stop (or a
/// callback the test sends in its name) can end its meeting.
const HUNG_LEAVE: &[(&str, &str)] = &[("MOCK_BOT_LEAVE", "hang")];

/// `fixed`, with the sweep and the finalizer shrunk so that they act within a test.
/// A bot that reached the meeting, then stopped under `fixed`: `stopping` on record first.
const STOPPED_FROM_ACTIVE: &[(&str, &str)] = &[
    ("requested", "joining"),
    ("joining", "awaiting_admission"),
    ("awaiting_admission", "active"),
    ("active", "stopping"),
    ("stopping", "completed"),
];

fn fixed() -> StackOptions {
    StackOptions {
        profile: "fixed".into(),
        reconcile_interval_ms: Some(200),
        finalizer_grace_ms: Some(200),
        ..StackOptions::default()
    }
}

#[derive(Debug, sqlx::FromRow)]
struct StopJob {
    attempts: i32,
    done_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

async fn stop_jobs(stack: &Stack, meeting_id: i64) -> Vec<StopJob> {
    sqlx::query_as("SELECT attempts, done_at, last_error FROM stop_jobs WHERE meeting_id = $1")
        .bind(meeting_id as i32)
        .fetch_all(&stack.pool)
        .await
        .expect("stop_jobs")
}

#[derive(Debug, sqlx::FromRow)]
struct SweepRecord {
    instance: String,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    containers_stopped: i32,
    attempts_skipped: i32,
}

async fn sweeps(stack: &Stack) -> Vec<SweepRecord> {
    sqlx::query_as(
        "SELECT instance, started_at, finished_at, containers_stopped, attempts_skipped \
         FROM reconcile_sweeps ORDER BY started_at, id",
    )
    .fetch_all(&stack.pool)
    .await
    .expect("reconcile_sweeps")
}

/// Waits until nothing is left to act on the meeting: every durable stop of it is done
/// (a job is marked done after its finalizer ran) and, with `sweep`, a reconcile sweep
/// that began after that has been recorded.
async fn settle(stack: &Stack, meeting_id: i64, sweep: bool) {
    wait_for(
        &format!("the durable stops of meeting {meeting_id} to be done"),
        || async {
            let jobs = stop_jobs(stack, meeting_id).await;
            jobs.iter().all(|j| j.done_at.is_some()).then_some(())
        },
    )
    .await;
    if !sweep {
        return;
    }
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    wait_for("a reconcile sweep after the meeting settled", || async {
        sweeps(stack)
            .await
            .iter()
            .any(|s| s.started_at > now)
            .then_some(())
    })
    .await;
}

/// The end every stop race must reach: completed with reason `stopped`, one terminal
/// entry in the audit list, the container gone, and still so once the meeting settled
/// (so that a late second terminal would be seen).
async fn assert_stopped_once(stack: &Stack, meeting_id: i64) -> StoredMeeting {
    let row = stack.wait_terminal(meeting_id).await;
    assert_eq!(
        row.status, "completed",
        "audit list: {}",
        row.data["status_transition"]
    );
    stack.wait_container_gone(meeting_id).await;
    settle(stack, meeting_id, true).await;
    assert_completed_once(&stack.meeting_row(meeting_id).await)
}

fn assert_completed_once(row: &StoredMeeting) -> StoredMeeting {
    let audit = &row.data["status_transition"];
    assert_eq!(row.status, "completed", "audit list: {audit}");
    assert_eq!(
        row.data["completion_reason"], "stopped",
        "audit list: {audit}"
    );
    let terminals = row.terminal_transitions();
    assert_eq!(terminals.len(), 1, "one terminal transition: {audit}");
    assert_eq!(terminals[0]["to"], "completed", "{audit}");
    assert_eq!(terminals[0]["completion_reason"], "stopped", "{audit}");
    row.clone()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

// Pins "a stop and the bot's exit callback race": sent at the same instant, whichever
// the service handles first, the meeting ends once, as `stopped`, and the bot's
// container (its leave hung, so it would run on) is torn down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_exit_callback_at_the_same_instant_end_the_meeting_once() {
    let stack = Stack::start_with(fixed()).await;
    let (native, meeting) = stack.bot_at(HUNG_LEAVE, "active").await;
    let uid = stack.connection_id(meeting.id).await;
    let secret = stack.bot_secret(meeting.id).await;
    let exited = json!({"connection_id": uid, "exit_code": 0, "reason": "self_initiated_leave"});

    let ((stop_code, stop_body), (callback_code, callback_body)) = tokio::join!(
        stack.delete_bot(Platform::GoogleMeet, &native),
        stack.post_callback("/bots/internal/callback/exited", &exited, Some(&secret)),
    );
    assert_eq!(stop_code, 202, "{stop_body}");
    assert!(
        matches!(
            stop_body["message"].as_str(),
            Some("Stop request accepted and is being processed." | "Meeting already completed.")
        ),
        "{stop_body}"
    );
    eprintln!("the stop answered {}", stop_body["message"]);
    // The callback comes first or finds the row `stopping`: either way it is the one
    // that completes the meeting.
    assert_eq!(callback_code, 200, "{callback_body}");
    assert_eq!(
        callback_body,
        json!({"status": "callback processed", "meeting_id": meeting.id, "final_status": "completed"})
    );

    let row = assert_stopped_once(&stack, meeting.id).await;
    // Production's entry for an exit callback: source `user` (any completion), with the
    // callback's exit code; the finalizer's would say `finalizer` and carry none.
    let terminal = &row.terminal_transitions()[0];
    assert_eq!(terminal["source"], "user", "{terminal}");
    assert_eq!(terminal["exit_code"], 0, "{terminal}");
}

// Pins "a repeated DELETE stops again": two DELETEs at once and a third while the stop
// is under way all answer 202, and the meeting gets one leave, one durable stop and one
// terminal transition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_and_repeated_deletes_stop_the_meeting_once() {
    let stack = Stack::start_with(StackOptions {
        // Long enough that the third DELETE finds the stop still under way.
        delayed_stop_ms: 3_000,
        ..fixed()
    })
    .await;
    let (native, meeting) = stack.bot_at(HUNG_LEAVE, "active").await;
    let mut commands = stack.watch_commands().await;

    let (first, second) = tokio::join!(
        stack.delete_bot(Platform::GoogleMeet, &native),
        stack.delete_bot(Platform::GoogleMeet, &native),
    );
    let mut messages = Vec::new();
    for (code, body) in [first, second] {
        assert_eq!(code, 202, "{body}");
        messages.push(body["message"].as_str().unwrap_or_default().to_owned());
    }
    messages.sort();
    assert_eq!(
        messages,
        [
            "Stop already in progress.",
            "Stop request accepted and is being processed."
        ],
        "exactly one of two concurrent DELETEs stops the meeting"
    );

    // The premise of the third DELETE: the stop is on record and not done yet.
    let jobs = stop_jobs(&stack, meeting.id).await;
    assert!(
        jobs.iter().all(|j| j.done_at.is_none()),
        "the stop is still under way: {jobs:?}"
    );
    assert_eq!(stack.meeting_row(meeting.id).await.status, "stopping");
    let (code, body) = stack.delete_bot(Platform::GoogleMeet, &native).await;
    assert_eq!(
        (code, body["message"].as_str()),
        (202, Some("Stop already in progress."))
    );

    let row = assert_stopped_once(&stack, meeting.id).await;
    assert_eq!(row.transitions(), pairs(STOPPED_FROM_ACTIVE));
    let jobs = stop_jobs(&stack, meeting.id).await;
    assert_eq!(jobs.len(), 1, "one durable stop: {jobs:?}");
    let leave = (
        protocol::meeting_commands_channel(meeting.id),
        json!({"action": "leave", "meeting_id": meeting.id}),
    );
    commands.wait_for(1).await;
    assert_eq!(commands.drain(), [leave], "one leave, no other command");
}

// Pins "POST then an immediate DELETE": the stop lands while the container is still
// starting (no container id stored, the bot not joined yet) and completes the row at
// once; the bot that starts anyway must not run on for a completed meeting, and its
// late callbacks must not reopen it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_before_the_container_id_is_stored_ends_the_meeting_once_and_its_container() {
    let stack = Stack::start_with(fixed()).await;
    // A slow runtime: every start waits, which holds POST between the container's
    // creation and the storing of its id (the stop below checks it landed there).
    let (code, body) = stack
        .runtime_put_faults(&json!({"start_delay_ms": 3_000}))
        .await;
    assert_eq!(code, 200, "{body}");
    let native = unique_meet_id();

    let ((post_code, post_body), (stop_code, stop_body)) =
        tokio::join!(stack.post_bot(Platform::GoogleMeet, &native), async {
            // The container is created, so POST is inside the start.
            wait_for("the bot's container to be created", || async {
                (!stack.runtime_containers().await.is_empty()).then_some(())
            })
            .await;
            stack.delete_bot(Platform::GoogleMeet, &native).await
        },);
    assert_eq!(stop_code, 202, "{stop_body}");
    assert_eq!(
        stop_body["message"], "Meeting had no running container; marked completed.",
        "the stop must land before the container id is stored"
    );
    assert_eq!(post_code, 201, "{post_body}");
    let id = post_body["id"].as_i64().expect("meeting id");

    // The bot started anyway; the service tears it down.
    stack.wait_container_exit(id).await;
    let row = assert_stopped_once(&stack, id).await;
    assert_eq!(row.transitions(), pairs(&[("requested", "completed")]));
}

// Pins "a late `joining` after the stop": once the stop is accepted, a non-terminal
// status callback is ignored (it neither reopens nor moves the meeting), whether it is
// sent by the bot itself after its leave or arrives from a straggler, and the meeting
// still ends once, as `stopped`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joining_after_the_stop_is_ignored_and_the_meeting_ends_once() {
    let stack = Stack::start_with(fixed()).await;

    // A straggler: the bot's leave hangs, and a `joining` in its name arrives after the
    // stop was accepted.
    let (native, meeting) = stack.bot_at(HUNG_LEAVE, "active").await;
    let uid = stack.connection_id(meeting.id).await;
    let (secret, container) = (
        stack.bot_secret(meeting.id).await,
        stack.container_name(meeting.id).await,
    );
    let (code, body) = stack.delete_bot(Platform::GoogleMeet, &native).await;
    assert_eq!(code, 202, "{body}");
    let (code, body) = stack
        .post_callback(
            "/bots/internal/callback/status_change",
            &json!({"connection_id": uid, "status": "joining", "container_id": container}),
            Some(&secret),
        )
        .await;
    assert_eq!(
        (code, body),
        (200, json!({"status": "ignored", "meeting_id": meeting.id}))
    );
    let row = assert_stopped_once(&stack, meeting.id).await;
    assert_eq!(row.transitions(), pairs(STOPPED_FROM_ACTIVE));

    // The bot itself: after its leave it reports `joining`, then completes.
    let (native, meeting) = stack
        .bot_at(&[("MOCK_BOT_LATE_JOINING_AFTER_LEAVE", "1")], "active")
        .await;
    let (code, body) = stack.delete_bot(Platform::GoogleMeet, &native).await;
    assert_eq!(code, 202, "{body}");
    let row = assert_stopped_once(&stack, meeting.id).await;
    assert_eq!(row.transitions(), pairs(STOPPED_FROM_ACTIVE));
    // The bot's `status_change` completed it: production's entry (source `user`, no
    // exit code), with the stop-dominance note of what the bot reported.
    let terminal = &row.terminal_transitions()[0];
    assert_eq!(terminal["source"], "user", "{terminal}");
    assert_eq!(terminal.get("exit_code"), None, "{terminal}");
    assert_eq!(
        terminal["reason"], "bot reported completed (stopped)",
        "{terminal}"
    );
    let log = stack.bot_log(meeting.id);
    let after_leave: Vec<&Value> = log
        .events
        .iter()
        .skip_while(|e| e["event"] != "leave_started")
        .filter(|e| e["event"] == "status_sent")
        .collect();
    assert_eq!(
        after_leave.first().map(|e| &e["status"]),
        Some(&json!("joining")),
        "the bot sent its late joining: {:?}",
        log.names()
    );
}

// Pins "service restart inside the delayed-stop window loses the container stop" (the
// legacy behaviour, restart_inside_delayed_stop_window_loses_the_container_stop): with
// the durable stop, the stop is a row, and the restarted service performs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_inside_delayed_stop_window_keeps_the_durable_stop() {
    let mut stack = Stack::start_with(StackOptions {
        delayed_stop_ms: 3_000,
        // No sweep within the test: the durable stop alone must do it.
        reconcile_interval_ms: None,
        ..fixed()
    })
    .await;
    let (native, meeting) = stack.bot_at(HUNG_LEAVE, "active").await;
    let (code, body) = stack.delete_bot(Platform::GoogleMeet, &native).await;
    assert_eq!(code, 202, "{body}");

    let exit = stack.stop_manager().await;
    assert!(exit.success(), "SIGTERM ends the service cleanly: {exit:?}");
    // The premise: the stop was due after the service went down, and nothing did it.
    let jobs = stop_jobs(&stack, meeting.id).await;
    assert!(
        jobs.len() == 1 && jobs[0].attempts == 0 && jobs[0].done_at.is_none(),
        "one durable stop, not claimed yet: {jobs:?}"
    );
    let container = stack.container_name(meeting.id).await;
    let record = stack
        .runtime_containers()
        .await
        .into_iter()
        .find(|c| c["name"].as_str().map(|n| n.trim_start_matches('/')) == Some(&container))
        .expect("the bot's container");
    assert_eq!(record["state"], "running", "{record}");
    assert_eq!(stack.meeting_row(meeting.id).await.status, "stopping");

    stack.start_manager().await;
    // The bot swallows SIGTERM: the durable stop ends in SIGKILL after the grace.
    assert_eq!(stack.wait_container_exit(meeting.id).await, 137);
    stack.wait_terminal(meeting.id).await;
    stack.wait_container_gone(meeting.id).await;
    settle(&stack, meeting.id, false).await;
    let row = assert_completed_once(&stack.meeting_row(meeting.id).await);
    assert_eq!(
        row.transitions().last(),
        Some(&("stopping".to_owned(), "completed".to_owned()))
    );
    let jobs = stop_jobs(&stack, meeting.id).await;
    assert!(
        jobs.len() == 1 && jobs[0].attempts >= 1 && jobs[0].last_error.is_none(),
        "the restarted service performed the stop: {jobs:?}"
    );
}

// Pins "sweeps repeated by every replica": two instances against one database take
// turns (a transaction-level advisory lock), so no two recorded sweeps overlap, and the
// meeting a sweep tears down and finalizes ends once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_never_sweep_at_once_and_end_a_meeting_once() {
    let stack = Stack::start_with(StackOptions {
        reconcile_interval_ms: Some(100),
        ..fixed()
    })
    .await;
    let second = stack.start_extra_manager("second").await;

    // A stop only a sweep can finish: the durable stop is answered 404 (not proof the
    // bot is gone), and the bot runs on with its leave hung.
    let (native, meeting) = stack.bot_at(HUNG_LEAVE, "active").await;
    let (code, body) = stack
        .runtime_put_faults(&json!({"stop_answers_404": true}))
        .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = stack.delete_bot(Platform::GoogleMeet, &native).await;
    assert_eq!(code, 202, "{body}");
    wait_for("the durable stop to be answered 404", || async {
        let jobs = stop_jobs(&stack, meeting.id).await;
        (!jobs.is_empty() && jobs.iter().all(|j| j.done_at.is_some())).then_some(())
    })
    .await;
    assert_eq!(stack.meeting_row(meeting.id).await.status, "stopping");
    let (code, body) = stack
        .runtime_put_faults(&json!({"stop_answers_404": false}))
        .await;
    assert_eq!(code, 200, "{body}");

    // The sweep that tears the bot down holds the lock for the whole stop grace (the bot
    // swallows SIGTERM), so the other instance is turned away meanwhile.
    assert_eq!(stack.wait_container_exit(meeting.id).await, 137);
    assert_stopped_once(&stack, meeting.id).await;
    // Wait until each instance has recorded a sweep begun after the teardown's began:
    // under the lock, the other one's comes after the teardown; without it, during.
    let records = wait_for(
        "a sweep of each instance begun after the teardown's began",
        || async {
            let records = sweeps(&stack).await;
            let teardown = records.iter().find(|s| s.containers_stopped > 0)?;
            let mut later: Vec<&str> = records
                .iter()
                .filter(|s| s.started_at >= teardown.started_at)
                .map(|s| s.instance.as_str())
                .collect();
            later.sort_unstable();
            later.dedup();
            (later.len() == 2 && later.contains(&"second")).then_some(records)
        },
    )
    .await;
    for pair in records.windows(2) {
        assert!(
            pair[0].finished_at <= pair[1].started_at,
            "two sweeps overlap: {pair:?}"
        );
    }
    let torn_down: Vec<&SweepRecord> = records
        .iter()
        .filter(|s| s.containers_stopped > 0)
        .collect();
    assert_eq!(
        torn_down.len(),
        1,
        "one sweep tore the bot down: {records:?}"
    );
    // The precondition: the lock did turn an instance away (the teardown holds it for the
    // whole stop grace, several sweep intervals).
    assert!(
        records.iter().any(|s| s.attempts_skipped > 0),
        "no sweep was ever turned away: {records:?}"
    );
    let exit = second.stop().await.expect("stop the second bot-manager");
    assert!(exit.success(), "{exit:?}");
}

// Pins "reconcile finalized a restarting bot": a sweep that listed the container in the
// moment between its kill and its start (a restart) failed a meeting whose bot went on
// running (h2-restart-new-uid under fixed, about 1 run in 70). An exit is evidence only
// if it still holds after the grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_runs_again_within_the_grace_is_no_evidence_for_the_sweep() {
    let stack = Stack::start_with(StackOptions {
        // The sweep alone: the exit evidence would see the restart by itself.
        profile: "reconcile".into(),
        reconcile_interval_ms: Some(100),
        finalizer_grace_ms: Some(3_000),
        ..fixed()
    })
    .await;
    let (_native, meeting) = stack.bot_at(&[], "active").await;
    let container = stack.container_name(meeting.id).await;
    // A restart whose start is slow: its container is listed exited for a second, long
    // enough for a sweep to see it, and runs again well within the grace.
    let (code, body) = stack
        .runtime_put_faults(&json!({"start_delay_ms": 1000}))
        .await;
    assert!((200..300).contains(&code), "{code} {body}");
    let restart = {
        let stack = &stack;
        let container = container.clone();
        async move {
            stack
                .runtime_post(
                    &format!("/_runtime/containers/{container}/restart"),
                    &json!({"new_uid": false}),
                )
                .await
        }
    };
    let seen = async {
        wait_for("a sweep that saw the exit", || async {
            stack
                .service_log()
                .contains("container exited; confirming after the grace")
                .then_some(())
        })
        .await;
    };
    let ((code, body), ()) = tokio::join!(restart, seen);
    assert!((200..300).contains(&code), "{code} {body}");
    wait_for("the sweep to find the container running again", || async {
        stack
            .service_log()
            .contains("its container runs again; no evidence")
            .then_some(())
    })
    .await;
    let row = stack.meeting_row(meeting.id).await;
    assert_eq!(
        row.status,
        "active",
        "the bot runs: {:?}",
        row.transitions()
    );
    let record = stack
        .runtime_containers()
        .await
        .into_iter()
        .find(|c| c["name"].as_str().map(|n| n.trim_start_matches('/')) == Some(&container))
        .expect("the bot's container");
    assert_eq!(record["state"], "running", "{record}");
}
