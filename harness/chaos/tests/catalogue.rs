//! The catalogue as a regression suite: every scenario under legacy and fixed gives its
//! expected verdict (a scenario expecting a violation that does not occur fails), and
//! its normalised legacy history matches the reviewed insta snapshot, so a change in
//! behaviour shows up in review.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chaos::history::normalise;
use chaos::run::{self, RunSpec};
use chaos::verdict::{self, Verdict};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

async fn check_scenario(name: &str) {
    let path = scenarios_dir().join(format!("{name}.toml"));
    let scenario = Arc::new(chaos::scenario::load(&path).unwrap_or_else(|e| panic!("{e}")));
    let dir = tempfile::tempdir().expect("temp dir");
    let (_never, interrupted) = tokio::sync::watch::channel(false);
    // Both profiles at once (each run has a stack of its own); the single fixes and
    // combinations are the ablation matrix's (tests/matrix.rs).
    let mut runs = tokio::task::JoinSet::new();
    for (profile, expectation) in scenario
        .expect
        .iter()
        .filter(|(p, _)| *p == "legacy" || *p == "fixed")
    {
        let spec = RunSpec {
            scenario: scenario.clone(),
            profile: profile.clone(),
            seed: 1,
            repetition: 1,
            dir: dir.path().join(profile),
            deadline: scenario.run_deadline(),
            sut: Arc::new(chaos::sut::Sut::reference()),
            sut_dir: None,
            expectation: expectation.clone(),
        };
        let interrupted = interrupted.clone();
        runs.spawn(async move {
            let outcome = run::run(&spec, interrupted).await;
            (spec, outcome)
        });
    }
    let mut outcomes = runs.join_all().await;
    outcomes.sort_by(|(a, _), (b, _)| a.profile.cmp(&b.profile));
    for (spec, outcome) in outcomes {
        let (profile, expectation) = (&spec.profile, &spec.expectation);
        let findings: Vec<String> = outcome
            .checks
            .iter()
            .map(|c| format!("{} {}: {}", c.invariant, c.outcome, c.summary))
            .collect();
        assert!(
            verdict::as_expected(expectation, &outcome.verdict),
            "{name} under {profile}: expected {expectation}, got {}\n{}",
            outcome.verdict,
            findings.join("\n")
        );
        match &outcome.history {
            // Legacy is deterministic to the event; the fixed profile's background workers
            // (finalizer, exit evidence, sweep) may take turns differently from run to
            // run, so only its verdict is asserted.
            Some(history) if profile == "legacy" => {
                insta::assert_snapshot!(format!("{name}-{profile}"), normalise::render(history));
            }
            Some(_) => {}
            None => assert!(
                matches!(outcome.verdict, Verdict::Pending { .. }),
                "{}",
                outcome.verdict
            ),
        }
    }
}

macro_rules! catalogue {
    ($($test:ident => $file:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                check_scenario($file).await;
            }
        )*
        const NAMES: &[&str] = &[$($file),*];
    };
}

#[test]
fn every_scenario_file_has_a_catalogue_test() {
    let mut files: Vec<String> = std::fs::read_dir(scenarios_dir())
        .expect("scenarios/")
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".toml")
                .map(str::to_owned)
        })
        .collect();
    files.sort();
    let mut names: Vec<&str> = NAMES.to_vec();
    names.sort_unstable();
    assert_eq!(files, names, "add the new scenario to the catalogue! macro");
    assert!(files.len() >= 20, "the catalogue has at least 20 scenarios");
}

catalogue! {
    bot_crash_while_active_gives_its_expected_verdicts => "bot-crash-while-active",
    bot_killed_then_stopped_gives_its_expected_verdicts => "bot-killed-then-stopped",
    callback_races_stop_gives_its_expected_verdicts => "callback-races-stop",
    duplicate_terminal_callbacks_gives_its_expected_verdicts => "duplicate-terminal-callbacks",
    early_report_loses_session_row_gives_its_expected_verdicts => "early-report-loses-session-row",
    exit_callback_failure_code_gives_its_expected_verdicts => "exit-callback-failure-code",
    exit_callback_legacy_path_gives_its_expected_verdicts => "exit-callback-legacy-path",
    failed_start_error_row_gives_its_expected_verdicts => "failed-start-error-row",
    h1_callback_dropped_gives_its_expected_verdicts => "h1-callback-dropped",
    h1_hung_container_gives_its_expected_verdicts => "h1-hung-container",
    h1_leave_hangs_gives_its_expected_verdicts => "h1-leave-hangs",
    h2_reconnect_rows_earlier_gives_its_expected_verdicts => "h2-reconnect-rows-earlier",
    h2_restart_new_uid_gives_its_expected_verdicts => "h2-restart-new-uid",
    h2_uid_switch_in_process_gives_its_expected_verdicts => "h2-uid-switch-in-process",
    h3_graceful_sigterm_rescues_gives_its_expected_verdicts => "h3-graceful-sigterm-rescues",
    h3_subscription_failed_gives_its_expected_verdicts => "h3-subscription-failed",
    h3_subscription_late_gives_its_expected_verdicts => "h3-subscription-late",
    h4_rejected_completion_reason_gives_its_expected_verdicts => "h4-rejected-completion-reason",
    happy_path_gives_its_expected_verdicts => "happy-path",
    late_joining_after_leave_gives_its_expected_verdicts => "late-joining-after-leave",
    net_bot_redis_reset_resubscribes_gives_its_expected_verdicts => "net-bot-redis-reset-resubscribes",
    net_callback_lost_no_retry_gives_its_expected_verdicts => "net-callback-lost-no-retry",
    net_callback_retried_gives_its_expected_verdicts => "net-callback-retried",
    net_latency_everywhere_gives_its_expected_verdicts => "net-latency-everywhere",
    net_slow_callback_outlives_delayed_stop_gives_its_expected_verdicts => "net-slow-callback-outlives-delayed-stop",
    net_leave_lost_on_bot_redis_link_gives_its_expected_verdicts => "net-leave-lost-on-bot-redis-link",
    net_service_redis_down_during_delete_gives_its_expected_verdicts => "net-service-redis-down-during-delete",
    net_service_postgres_reset_after_stop_gives_its_expected_verdicts => "net-service-postgres-reset-after-stop",
    service_restarts_around_stop_gives_its_expected_verdicts => "service-restarts-around-stop",
    sec_forged_active_steals_container_gives_its_expected_verdicts => "sec-forged-active-steals-container",
    sec_forged_completed_gives_its_expected_verdicts => "sec-forged-completed",
    sec_forged_session_redirects_leave_gives_its_expected_verdicts => "sec-forged-session-redirects-leave",
    sec_other_bot_finishes_meeting_gives_its_expected_verdicts => "sec-other-bot-finishes-meeting",
    net_service_postgres_slow_during_exit_callback_gives_its_expected_verdicts => "net-service-postgres-slow-during-exit-callback",
    post_then_immediate_delete_gives_its_expected_verdicts => "post-then-immediate-delete",
    redis_down_during_delete_gives_its_expected_verdicts => "redis-down-during-delete",
    runtime_forgets_containers_gives_its_expected_verdicts => "runtime-forgets-containers",
    runtime_stop_answers_404_gives_its_expected_verdicts => "runtime-stop-answers-404",
    second_delete_gives_its_expected_verdicts => "second-delete",
    service_restart_loses_delayed_stop_gives_its_expected_verdicts => "service-restart-loses-delayed-stop",
    slow_start_loses_stop_gives_its_expected_verdicts => "slow-start-loses-stop",
    two_live_rows_gives_its_expected_verdicts => "two-live-rows",
}
