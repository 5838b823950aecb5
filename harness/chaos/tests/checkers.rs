//! The checkers on real histories: for each invariant, a `history.jsonl` recorded from a
//! catalogue run that breaks it, and one from a run where it holds with its dangerous
//! precondition met, judged with the windows the run used (its `check.json`).
//!
//! The histories live in `tests/histories/<scenario>-<profile>/`, recorded with
//! `target/debug/chaos run scenarios/<scenario>.toml --profile <profile>` and copied
//! unchanged. Re-recording one may change times and ids, never the outcomes asserted here.

use std::path::Path;

use chaos::check::{self, CheckConfig, CheckResult, Invariant, Outcome};
use chaos::history::{EventKind, History};
use rstest::rstest;

/// A recorded run: its history and the checkers' windows from its `check.json`.
fn recorded(run: &str) -> (History, CheckConfig) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/histories")
        .join(run);
    let read = |file: &str| {
        std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("read {}/{file}: {e}", dir.display()))
    };
    let history = History::from_jsonl(&read("history.jsonl")).unwrap_or_else(|e| panic!("{e}"));
    let meta: serde_json::Value =
        serde_json::from_str(&read("check.json")).unwrap_or_else(|e| panic!("{e}"));
    let config: CheckConfig =
        serde_json::from_value(meta["check"].clone()).unwrap_or_else(|e| panic!("{e}"));
    (history, config)
}

fn judged(invariant: Invariant, run: &str) -> CheckResult {
    let (history, config) = recorded(run);
    check::check(invariant, &history, &config)
}

#[rstest]
#[case::terminal(
    Invariant::Terminal,
    "h1-leave-hangs-legacy",
    "still active at the deadline"
)]
#[case::no_active_without_container(
    Invariant::NoActiveWithoutContainer,
    "h1-leave-hangs-legacy",
    "after its container went away"
)]
#[case::no_orphan_container(
    Invariant::NoOrphanContainer,
    "post-then-immediate-delete-legacy",
    "was completed since"
)]
#[case::transitions_error_row(
    Invariant::Transitions,
    "failed-start-error-row-legacy",
    "requested -> error"
)]
#[case::transitions_terminal_left(
    Invariant::Transitions,
    "net-service-postgres-slow-during-exit-callback-finalize-after-forced-stop",
    "failed -> completed"
)]
#[case::terminal_final(
    Invariant::TerminalFinal,
    "net-service-postgres-slow-during-exit-callback-finalize-after-forced-stop",
    "was failed from"
)]
#[case::leave_routed(
    Invariant::LeaveRouted,
    "h2-restart-new-uid-legacy",
    "reached no live bot"
)]
#[case::status_agrees(
    Invariant::StatusAgrees,
    "h1-leave-hangs-legacy",
    "the last published status is stopping"
)]
#[case::no_loss(
    Invariant::NoLoss,
    "net-service-postgres-slow-during-exit-callback-finalize-after-forced-stop",
    "a transition record was lost"
)]
#[case::own_changes_forged_active(
    Invariant::OwnChanges,
    "sec-forged-active-steals-container-legacy",
    "forged status active"
)]
#[case::own_changes_session(
    Invariant::OwnChanges,
    "sec-forged-session-redirects-leave-legacy",
    "forged session"
)]
fn recorded_run_that_breaks_an_invariant_is_judged_violated_with_a_witness(
    #[case] invariant: Invariant,
    #[case] run: &str,
    #[case] found: &str,
) {
    let r = judged(invariant, run);
    assert_eq!(r.outcome, Outcome::Violated, "{run}: {r:#?}");
    assert!(r.precondition_met, "{run}: {r:#?}");
    assert!(r.summary.contains(found), "{run}: {}", r.summary);
    assert!(!r.violations.is_empty(), "{run}: {r:#?}");
    assert_eq!(r.witness, r.violations[0].witness, "{run}");
    for v in &r.violations {
        assert!(!v.witness.is_empty(), "{run}: {} has no witness", v.text);
    }
}

#[rstest]
#[case::terminal(Invariant::Terminal, "h1-leave-hangs-fixed")]
#[case::terminal_stopped_twice(Invariant::Terminal, "second-delete-fixed")]
#[case::no_active_without_container(Invariant::NoActiveWithoutContainer, "h1-leave-hangs-fixed")]
#[case::no_orphan_container(Invariant::NoOrphanContainer, "post-then-immediate-delete-fixed")]
#[case::transitions(Invariant::Transitions, "failed-start-error-row-fixed")]
#[case::terminal_final(
    Invariant::TerminalFinal,
    "net-service-postgres-slow-during-exit-callback-finalize-after-forced-stop+row-locks"
)]
#[case::leave_routed(Invariant::LeaveRouted, "h2-restart-new-uid-fixed")]
#[case::own_changes_forged_active(
    Invariant::OwnChanges,
    "sec-forged-active-steals-container-fixed"
)]
#[case::own_changes_session(Invariant::OwnChanges, "sec-forged-session-redirects-leave-fixed")]
#[case::status_agrees(Invariant::StatusAgrees, "h1-leave-hangs-fixed")]
#[case::status_agrees_two_live_rows(Invariant::StatusAgrees, "two-live-rows-legacy")]
#[case::no_loss(
    Invariant::NoLoss,
    "net-service-postgres-slow-during-exit-callback-finalize-after-forced-stop+row-locks"
)]
fn recorded_run_that_keeps_an_invariant_is_judged_held_with_its_precondition_met(
    #[case] invariant: Invariant,
    #[case] run: &str,
) {
    let r = judged(invariant, run);
    assert_eq!(r.outcome, Outcome::Holds, "{run}: {r:#?}");
    assert!(r.precondition_met, "{run}: {r:#?}");
    assert!(r.witness.is_empty() && r.violations.is_empty(), "{run}");
}

#[test]
fn recorded_happy_path_holds_every_invariant_with_its_precondition_met() {
    let (history, config) = recorded("happy-path-legacy");
    let results = check::check_all(&history, &config);
    let judged: Vec<Invariant> = results.iter().map(|r| r.invariant).collect();
    assert_eq!(judged, Invariant::ALL, "every invariant judged, once");
    for r in results {
        if r.invariant == Invariant::OwnChanges {
            // Nobody forged anything: undecided, never a pass.
            assert_eq!(r.outcome, Outcome::Unknown, "{}", r.summary);
            assert!(!r.precondition_met, "{}", r.summary);
            continue;
        }
        assert_eq!(r.outcome, Outcome::Holds, "{}: {}", r.invariant, r.summary);
        assert!(r.precondition_met, "{}: {}", r.invariant, r.summary);
    }
}

/// The rows of the recorded run's meeting key, and which of them the stop completed.
fn rows_of(history: &History) -> Vec<(i64, bool)> {
    let mut rows: Vec<(i64, bool)> = history
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::MeetingInserted { meeting_id, .. } => Some(*meeting_id),
            _ => None,
        })
        .map(|id| {
            let completed = history.events.iter().any(|e| {
                matches!(&e.kind, EventKind::StatusStored { meeting_id, to, .. }
                    if *meeting_id == id && to == "completed")
            });
            (id, completed)
        })
        .collect();
    rows.sort_unstable();
    rows
}

#[test]
fn recorded_two_live_rows_under_legacy_credit_each_status_publish_to_its_own_row() {
    // The legacy stop handles only the latest row: the older one stays active, as its own
    // last publish (`active`) says, though the shared channel's last word is the newer
    // row's `completed`. Only INV-TERMINAL is broken, and only for the older row.
    let (history, config) = recorded("two-live-rows-legacy");
    assert_eq!(rows_of(&history), [(1, false), (2, true)]);
    let publishes = history
        .events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::Published { channel, .. } if channel.ends_with(":status")))
        .count();
    assert!(publishes >= 8, "both rows published on one channel");

    let agrees = check::check(Invariant::StatusAgrees, &history, &config);
    assert_eq!(agrees.outcome, Outcome::Holds, "{agrees:#?}");
    assert_eq!(
        agrees.summary,
        "For all 2 meeting(s) with published statuses, the last one equals the stored status at the end."
    );

    let terminal = check::check(Invariant::Terminal, &history, &config);
    assert_eq!(terminal.outcome, Outcome::Violated, "{terminal:#?}");
    assert_eq!(terminal.violations.len(), 1, "{terminal:#?}");
    assert!(
        terminal
            .summary
            .starts_with("Meeting 1 (m1): stop accepted at"),
        "{}",
        terminal.summary
    );
}

#[test]
fn recorded_second_delete_reads_as_two_stops_over_one_row() {
    // Two DELETEs over one row read "All 3 accepted stop(s)": count what the user did.
    let r = judged(Invariant::Terminal, "second-delete-fixed");
    assert_eq!(
        r.summary,
        "Both accepted stops (DELETEs answered 202, over 1 meeting row) reached completed/failed within the deadline."
    );
}

#[test]
fn recorded_forged_active_is_caught_twice_the_container_it_named_and_the_bot_stopped_for_it() {
    // Pins the finding: a forged `active` pointed user B's meeting at user A's
    // container, and B's stop then killed A's bot.
    let r = judged(
        Invariant::OwnChanges,
        "sec-forged-active-steals-container-legacy",
    );
    let texts: Vec<&str> = r.violations.iter().map(|v| v.text.as_str()).collect();
    assert!(
        texts.iter().any(|t| t.contains("forged status active")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("Meeting a's container")
                && t.contains("its user had asked for no stop")),
        "{texts:?}"
    );
}
