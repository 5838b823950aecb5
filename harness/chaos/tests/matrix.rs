//! The ablation matrix as a regression suite: under each single-fix profile (and each
//! combination a scenario names), every catalogue scenario gives the verdict it states,
//! or legacy's when it names nothing for that fix. A fix that stops closing what it
//! closed, or starts changing what it should not, fails here with the rerun command.

use std::sync::Arc;

use chaos::engine::{self, Plan};

mod support;
use support::catalogue;

async fn check_column(profiles: Vec<String>) {
    let out = tempfile::tempdir().unwrap();
    let plan = Plan {
        scenarios: catalogue(),
        profiles: Some(profiles.clone()),
        skip_unstated_combinations: true,
        seed: 1,
        repeat: 1,
        jobs: support::CATALOGUE_JOBS,
        out: out.path().to_owned(),
        progress: false,
        run_timeout: None,
        rerun_prefix: "chaos run".into(),
        sut: Arc::new(chaos::sut::Sut::reference()),
        sut_dir: None,
    };
    let (report, _) = engine::execute(plan).await.unwrap();
    let unexpected: Vec<String> = report
        .records
        .iter()
        .filter(|r| !r.as_expected)
        .map(|r| {
            let findings: Vec<String> = r
                .checks
                .iter()
                .filter(|c| c.outcome != chaos::check::Outcome::Holds)
                .map(|c| format!("    {} {}: {}", c.invariant, c.outcome, c.summary))
                .collect();
            format!(
                "{} under {}: expected {}, got {}\n{}\n    rerun: {}",
                r.scenario,
                r.profile,
                r.expectation,
                r.verdict,
                findings.join("\n"),
                r.rerun
            )
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "{} of {} cells not as the scenarios state:\n{}",
        unexpected.len(),
        report.records.len(),
        unexpected.join("\n")
    );
}

macro_rules! single_fixes {
    ($($test:ident => $profile:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $test() {
                check_column(vec![$profile.to_owned()]).await;
            }
        )*

        #[test]
        fn every_single_fix_profile_has_its_column_here() {
            let here = [$($profile),*];
            let builtin: Vec<&String> = chaos::profiles::builtin()
                .unwrap()
                .iter()
                .filter(|p| chaos::profiles::is_single_fix(p))
                .collect();
            for p in &builtin {
                assert!(here.contains(&p.as_str()), "profile {p} has no matrix test");
            }
            assert_eq!(here.len(), builtin.len());
        }
    };
}

single_fixes! {
    scenarios_give_their_stated_verdicts_under_callback_auth => "callback-auth",
    scenarios_give_their_stated_verdicts_under_durable_stop => "durable-stop",
    scenarios_give_their_stated_verdicts_under_finalize_after_forced_stop => "finalize-after-forced-stop",
    scenarios_give_their_stated_verdicts_under_idempotent_callbacks => "idempotent-callbacks",
    scenarios_give_their_stated_verdicts_under_persist_stopping => "persist-stopping",
    scenarios_give_their_stated_verdicts_under_reconcile => "reconcile",
    scenarios_give_their_stated_verdicts_under_route_current_uid => "route-current-uid",
    scenarios_give_their_stated_verdicts_under_route_meeting_channel => "route-meeting-channel",
    scenarios_give_their_stated_verdicts_under_row_locks => "row-locks",
    scenarios_give_their_stated_verdicts_under_runtime_exit_evidence => "runtime-exit-evidence",
    scenarios_give_their_stated_verdicts_under_session_before_start => "session-before-start",
    scenarios_give_their_stated_verdicts_under_start_failure_fails => "start-failure-fails",
    scenarios_give_their_stated_verdicts_under_stop_all_rows => "stop-all-rows",
}

/// The combinations scenarios name (fixes that only close a failure together).
#[tokio::test(flavor = "multi_thread")]
async fn scenarios_give_their_stated_verdicts_under_the_combinations_they_name() {
    let mut combos: Vec<String> = catalogue()
        .iter()
        .flat_map(|(_, s)| {
            s.expect
                .keys()
                .filter(|p| p.contains('+'))
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    combos.sort();
    combos.dedup();
    if combos.is_empty() {
        return;
    }
    check_column(combos).await;
}
