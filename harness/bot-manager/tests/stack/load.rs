//! Many meetings at once (issue 12, "Load"): what the service does in bulk it does side
//! by side, within its bounds, and not one meeting after another.

use chrono::{DateTime, Utc};
use protocol::Platform;
use serde_json::Value;

use crate::support::{Stack, StackOptions, wait_for};

/// A bot that swallows SIGTERM (the incident's) and whose leave never returns: only a
/// container stop that waits out its whole grace ends it.
const HUNG_LEAVE: &[(&str, &str)] = &[("MOCK_BOT_LEAVE", "hang")];

#[derive(Debug, sqlx::FromRow)]
struct SweepRecord {
    rows_finalized: i32,
    containers_stopped: i32,
}

/// The runtime's events of one container, in the order the runtime emitted them: its
/// actions, with the signal of each `kill`.
fn lifecycle(events: &[Value], container: &str) -> Vec<(usize, String)> {
    events
        .iter()
        .enumerate()
        .filter(|(_, e)| e["Actor"]["Attributes"]["name"].as_str() == Some(container))
        .map(|(at, e)| {
            let action = e["Action"].as_str().unwrap_or_default();
            match e["Actor"]["Attributes"]["signal"].as_str() {
                Some(signal) => (at, format!("{action}:{signal}")),
                None => (at, action.to_owned()),
            }
        })
        .collect()
}

// Pins "the cleanup sweep stops orphans about one per second": a sweep tore its overdue
// containers down one after another, each stop waiting out the bot's whole grace (a bot
// that swallows SIGTERM), so N orphans took N graces. Now one sweep stops all of them at
// once: every SIGTERM of the sweep is sent before the first of its bots dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sweep_sends_every_overdue_stop_before_any_of_its_bots_dies() {
    const N: usize = 4;
    let mut stack = Stack::start_with(StackOptions {
        // The sweep is the only teardown: no durable stop (the delayed stops are in the
        // service's memory, and its restart drops them), no finalizer, no exit evidence.
        profile: "reconcile+persist-stopping".into(),
        // Long enough that every delayed stop is still pending at the restart, however
        // slow the machine.
        delayed_stop_ms: 5_000,
        reconcile_interval_ms: Some(100),
        finalizer_grace_ms: Some(200),
        ..StackOptions::default()
    })
    .await;
    let mut meetings = Vec::new();
    for _ in 0..N {
        meetings.push(stack.bot_at(HUNG_LEAVE, "active").await);
    }
    for (native, _) in &meetings {
        let (code, body) = stack.delete_bot(Platform::GoogleMeet, native).await;
        assert_eq!(code, 202, "{body}");
    }
    // The restart drops every delayed stop: the bots run on, their rows `stopping`.
    let exit = stack.stop_manager().await;
    assert!(exit.success(), "{exit:?}");
    let mut latest = None;
    for (_, meeting) in &meetings {
        let row = stack.meeting_row(meeting.id).await;
        assert_eq!(row.status, "stopping", "{:?}", row.data);
        let deadline: DateTime<Utc> = row.data["stop_deadline"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .expect("a stop deadline on record");
        latest = latest.max(Some(deadline));
    }
    // The service comes back once every stop is overdue (its deadline and the grace
    // past), so its first sweep finds all of them at once.
    let overdue = latest.expect("N stops") + chrono::Duration::milliseconds(200);
    wait_for("every stop to be overdue", || async {
        (Utc::now() > overdue).then_some(())
    })
    .await;
    let since = Utc::now().timestamp() - 1;
    stack.start_manager().await;
    for (_, meeting) in &meetings {
        let row = stack.wait_terminal(meeting.id).await;
        assert_eq!(row.status, "completed", "{:?}", row.data);
    }

    // A sweep records itself once its work is done, after the rows it finalized.
    let records: Vec<SweepRecord> = wait_for("the sweeps that tore the bots down", || async {
        let records: Vec<SweepRecord> = sqlx::query_as(
            "SELECT rows_finalized, containers_stopped FROM reconcile_sweeps \
             WHERE containers_stopped > 0 ORDER BY started_at, id",
        )
        .fetch_all(&stack.pool)
        .await
        .expect("reconcile_sweeps");
        let stopped: i32 = records.iter().map(|r| r.containers_stopped).sum();
        (stopped >= N as i32).then_some(records)
    })
    .await;
    assert_eq!(records.len(), 1, "one sweep tore them down: {records:?}");
    assert_eq!(
        (records[0].containers_stopped, records[0].rows_finalized),
        (N as i32, N as i32),
        "{records:?}"
    );

    let events = stack.runtime_events(since).await;
    let mut sigterms = Vec::new();
    let mut deaths = Vec::new();
    for (_, meeting) in &meetings {
        let name = stack.container_name(meeting.id).await;
        let seen = lifecycle(&events, &name);
        let sigterm = seen.iter().find(|(_, a)| a == "kill:15");
        let death = seen.iter().find(|(_, a)| a == "die");
        let (Some((sigterm, _)), Some((death, _))) = (sigterm, death) else {
            panic!("{name}: no SIGTERM and death from the sweep: {seen:?}");
        };
        sigterms.push(*sigterm);
        deaths.push(*death);
    }
    let last_sigterm = sigterms.iter().max().expect("N stops");
    let first_death = deaths.iter().min().expect("N deaths");
    assert!(
        last_sigterm < first_death,
        "the sweep stopped the bots one after another: SIGTERMs at events {sigterms:?}, deaths at {deaths:?}"
    );
}

// Pins "a thousand stops due at once are claimed sixteen a poll": the durable stop worker
// claimed at most 16 due stops every 250 ms, so the last of a thousand waited some 16 s
// before its container stop began. Now the stops due at once are claimed at once: one
// claim sets every job's lease (`due_at`, from that claim's `now()`), so all carry the
// same one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_due_at_once_are_claimed_in_one_claim_past_sixteen() {
    const N: i64 = 40;
    let stack = Stack::start_with(StackOptions {
        profile: "durable-stop".into(),
        ..StackOptions::default()
    })
    .await;
    // Stops a crashed instance left due, all at once (one statement): meetings with no
    // bot, whose containers the runtime does not know (each stop is answered 404 and done).
    sqlx::query(
        "WITH m AS (INSERT INTO meetings (user_id, platform, platform_specific_id, status) \
           SELECT 1, 'google_meet', 'zzz-' || lpad(g::text, 4, '0') || '-zzz', 'active' \
           FROM generate_series(1, $1) g RETURNING id) \
         INSERT INTO stop_jobs (meeting_id, container, due_at) \
         SELECT id, 'vexa-bot-' || id || '-00000000', now() FROM m",
    )
    .bind(N)
    .execute(&stack.pool)
    .await
    .expect("insert the due stops");
    let leases: Vec<(DateTime<Utc>, i64)> = wait_for("every due stop to be done", || async {
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM stop_jobs WHERE done_at IS NULL")
                .fetch_one(&stack.pool)
                .await
                .expect("count the pending stops");
        if pending > 0 {
            return None;
        }
        sqlx::query_as("SELECT due_at, count(*) FROM stop_jobs GROUP BY due_at ORDER BY due_at")
            .fetch_all(&stack.pool)
            .await
            .ok()
    })
    .await;
    assert_eq!(leases.iter().map(|(_, n)| n).sum::<i64>(), N, "{leases:?}");
    assert_eq!(leases.len(), 1, "claims, with their jobs: {leases:?}");
    let attempts: Vec<i32> = sqlx::query_scalar("SELECT DISTINCT attempts FROM stop_jobs")
        .fetch_all(&stack.pool)
        .await
        .expect("attempts");
    assert_eq!(attempts, [1], "each stop claimed once");
}

// Pins "a burst of creates took every database connection": a thousand POST /bots at once
// were all worked on at once, and their queries took the pool from the stops and the
// bots' callbacks (whose answers then took seconds). Now creates past
// `--max-concurrent-creates` wait their turn before touching the database: with one turn,
// each create's row is inserted only after the previous create stored its container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_past_the_bound_wait_their_turn_before_touching_the_database() {
    const CREATES: usize = 3;
    let stack = Stack::start_with(StackOptions {
        service_args: vec!["--max-concurrent-creates".into(), "1".into()],
        // Bots that never call back: nothing but the create writes their rows.
        bot_env: vec![("MOCK_BOT_START_DELAY_MS".into(), "600000".into())],
        ..StackOptions::default()
    })
    .await;
    // Each start takes a second at the runtime: a create holds its turn that long.
    let (code, body) = stack
        .runtime_put_faults(&serde_json::json!({"start_delay_ms": 1000}))
        .await;
    assert!((200..300).contains(&code), "{code} {body}");
    let natives: Vec<String> = (0..CREATES)
        .map(|_| crate::support::unique_meet_id())
        .collect();
    let posts = natives
        .iter()
        .map(|native| stack.post_bot(Platform::GoogleMeet, native));
    for (status, body) in futures::future::join_all(posts).await {
        assert_eq!(status, 201, "{body}");
    }
    let rows: Vec<(i32, DateTime<Utc>, DateTime<Utc>)> =
        sqlx::query_as("SELECT id, created_at, updated_at FROM meetings ORDER BY created_at, id")
            .fetch_all(&stack.pool)
            .await
            .expect("the rows");
    assert_eq!(rows.len(), CREATES);
    for pair in rows.windows(2) {
        let ((first, _, stored), (next, created, _)) = (pair[0], pair[1]);
        assert!(
            created >= stored,
            "meeting {next} was created at {created}, before meeting {first} stored its \
             container at {stored}: the creates were worked on at once"
        );
    }
}

// The turn reads a create's body first, up to one byte past the API's limit: a body over
// the limit is still refused as too large, not cut to fit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_body_over_the_limit_is_refused_as_too_large() {
    let stack = Stack::start().await;
    let body =
        serde_json::json!({"platform": "google_meet", "native_meeting_id": "x".repeat(200_000)});
    let (status, answer) = stack.post_bot_json(&body).await;
    assert_eq!(status, 413, "{answer}");
    stack.assert_nothing_created().await;
}

// Pins "a stop due now waited for the worker's next poll": a pre-active stop puts a stop
// job due at once, and the durable stop worker found it only at its next poll (250 ms;
// of a bound of 2.7 s, the slack a thousand stops at once did not have). Now the stop
// wakes the worker: with a poll a minute long, the bot is still stopped at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_due_now_is_claimed_without_waiting_for_the_next_poll() {
    let stack = Stack::start_with(StackOptions {
        profile: "durable-stop+finalize-after-forced-stop".into(),
        // Every stop of a meeting not yet active takes the pre-active path.
        pre_active_window_ms: 600_000,
        finalizer_grace_ms: Some(200),
        service_args: vec!["--stop-job-poll-ms".into(), "600000".into()],
        ..StackOptions::default()
    })
    .await;
    let (native, meeting) = stack.bot_at(&[], "requested").await;
    let (code, body) = stack.delete_bot(Platform::GoogleMeet, &native).await;
    assert_eq!(code, 202, "{body}");
    let row = stack.wait_terminal(meeting.id).await;
    assert_eq!(row.status, "completed", "{:?}", row.data);
    let jobs: Vec<(i32, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT attempts, done_at FROM stop_jobs WHERE meeting_id = $1")
            .bind(meeting.id as i32)
            .fetch_all(&stack.pool)
            .await
            .expect("stop_jobs");
    assert!(
        matches!(jobs.as_slice(), [(1, _)]),
        "one stop job, claimed once: {jobs:?}"
    );
}
