//! INV-NO-ACTIVE-WITHOUT-CONTAINER: no meeting is non-terminal while its container has
//! been gone longer than the grace.
//!
//! A meeting's container is gone from its last `die`/`destroy` with no later `start` (a
//! restart is not gone; a container the final state lists as running is not gone, even
//! forgotten by the runtime). At `gone + grace` the stored status must be terminal. When
//! the run ended before that moment, a meeting not yet terminal is unknown. A container
//! that exited at an unknown time (forgotten, no exit line) decides nothing unless the
//! meeting is terminal by the end.

use super::Findings;
use crate::check::timeline::{Gone, Timeline, grace_end, is_terminal, ms};
use crate::check::{CheckConfig, CheckResult, Invariant};
use crate::history::History;

pub fn no_active_without_container(history: &History, config: &CheckConfig) -> CheckResult {
    let tl = Timeline::new(history);
    let mut findings = Findings::new(Invariant::NoActiveWithoutContainer);
    for id in tl.meeting_ids() {
        check_meeting(&tl, config, id, &mut findings);
    }
    findings.finish("no meeting's container went away during the run", |n| {
        format!("All {n} meeting(s) whose container went away were terminal within the grace.")
    })
}

fn check_meeting(tl: &Timeline<'_>, config: &CheckConfig, id: i64, findings: &mut Findings) {
    let gone = tl.meeting_gone(id);
    if matches!(gone, Gone::Never) {
        return;
    }
    findings.occurred();
    let Some(line) = tl.meeting(id).filter(|l| !l.statuses.is_empty()) else {
        findings.unknown(format!(
            "Meeting {id}: its container went away but no stored status of it was recorded."
        ));
        return;
    };
    let terminal_by_end = line
        .status_at(tl.end_us)
        .is_some_and(|s| is_terminal(s.status));
    let (gone_us, die) = match gone {
        Gone::At { at_us, event } => (at_us, event),
        Gone::Sometime { after_us } => {
            if terminal_by_end {
                findings.held();
            } else {
                findings.unknown(format!(
                    "Meeting {id}: its container exited at an unknown time after {} (no exit event), and the meeting is not terminal.",
                    ms(after_us)
                ));
            }
            return;
        }
        Gone::Never => return,
    };
    let window_end = tl.after_service_time(gone_us, config.grace_us);
    if tl.end_us < window_end {
        if terminal_by_end {
            findings.held();
        } else {
            findings.unknown(format!(
                "Meeting {id}: container gone at {}, the run ended at {} before the grace ran out ({}).",
                ms(gone_us),
                ms(tl.end_us),
                grace_end(window_end)
            ));
        }
        return;
    }
    match line.status_at(window_end) {
        Some(s) if is_terminal(s.status) => findings.held(),
        Some(s) => {
            let down = window_end - gone_us - config.grace_us;
            let not_counted = if down > 0 {
                format!(
                    ", not counting the {} the scenario kept the service down or cut off",
                    ms(down)
                )
            } else {
                String::new()
            };
            findings.violated(
                format!(
                    "Meeting {id} was still {} at {}, {} after its container went away at {}{not_counted}.",
                    s.status,
                    ms(window_end),
                    ms(config.grace_us),
                    ms(gone_us)
                ),
                [die, s.event],
            )
        }
        None => findings.unknown(format!(
            "Meeting {id}: no stored status of it by {}, when its container had been gone for the grace.",
            ms(window_end)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{H, config, container_name};
    use super::*;
    use crate::check::Outcome;

    use crate::history::EventKind;

    fn active_meeting() -> H {
        H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "requested")
            .at(10)
            .start(1)
            .at(100)
            .status(1, "requested", "joining")
            .status(1, "joining", "awaiting_admission")
            .status(1, "awaiting_admission", "active")
    }

    #[test]
    fn meeting_active_after_container_died_violates_no_active_without_container() {
        let h = active_meeting().at(2000).die(1).at(10_000).end();
        let r = no_active_without_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(r.precondition_met);
        assert!(
            r.summary.contains("Meeting 1 was still active at 3000 ms"),
            "{}",
            r.summary
        );
        let kinds: Vec<&str> = r.witness.iter().map(|e| e.kind.name()).collect();
        assert_eq!(kinds, ["status_stored", "container"]);
    }

    #[test]
    fn each_live_row_whose_container_went_away_is_its_own_violation() {
        // Two live rows of one meeting, both bots gone, neither row terminal.
        let h = active_meeting()
            .at(500)
            .insert(2, "abc-defg-hij", "active")
            .start(2)
            .at(2000)
            .die(1)
            .at(2600)
            .die(2)
            .at(10_000)
            .end();
        let r = no_active_without_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        let texts: Vec<&str> = r.violations.iter().map(|v| v.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Meeting 1 was still active at 3000 ms, 1000 ms after its container went away at 2000 ms.",
                "Meeting 2 was still active at 3600 ms, 1000 ms after its container went away at 2600 ms.",
            ]
        );
        assert_eq!(r.summary, format!("{} (and 1 more violation)", texts[0]));
        assert_eq!(r.witness, r.violations[0].witness);
        let second: Vec<(&str, i64)> = r.violations[1]
            .witness
            .iter()
            .map(|e| (e.kind.name(), e.at_us))
            .collect();
        assert_eq!(
            second,
            [("meeting_inserted", 500_000), ("container", 2_600_000)]
        );
    }

    #[test]
    fn the_grace_does_not_run_while_the_scenario_keeps_the_service_down() {
        // Pins: three service restarts in a row kept the service down for 3 s after the
        // bot exited; it completed the row 0.2 s after it came back, and the grace,
        // counted through the outage, called that a violation under fixed (explore,
        // seed 200, plan 25).
        let h = active_meeting()
            .at(2000)
            .die(1)
            .fault_period("restart_service", "service", 2100, 4000)
            .at(4500)
            .status(1, "active", "completed")
            .at(10_000)
            .end();
        assert_eq!(
            no_active_without_container(&h, &config()).outcome,
            Outcome::Holds
        );
        let h = active_meeting()
            .at(2000)
            .die(1)
            .fault_period("restart_service", "service", 2100, 4000)
            .at(10_000)
            .end();
        let r = no_active_without_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert_eq!(
            r.violations[0].text,
            "Meeting 1 was still active at 4900 ms, 1000 ms after its container went away at 2000 ms, not counting the 1900 ms the scenario kept the service down or cut off."
        );
    }

    #[test]
    fn the_grace_does_not_run_while_the_services_database_link_is_faulted() {
        // Pins: a 6 s latency on the service's Postgres link, applied as the container
        // died, made every write late and the grace ran through it (explore under fixed,
        // seed 200, plan 88).
        let h = active_meeting()
            .at(2000)
            .die(1)
            .fault_period("network", "service:postgres", 2000, 5100)
            .at(5800)
            .status(1, "active", "completed")
            .at(10_000)
            .end();
        assert_eq!(
            no_active_without_container(&h, &config()).outcome,
            Outcome::Holds
        );
    }

    #[test]
    fn a_service_cut_off_to_the_end_leaves_no_active_without_container_unknown_never_held() {
        // A fault whose heal never came (the heal failed) must not make the grace
        // endless in a way that reads as a pass.
        let h = active_meeting()
            .at(2000)
            .die(1)
            .push(EventKind::Fault {
                name: "link_down".into(),
                phase: crate::history::FaultPhase::Applied,
                target: "service:redis".into(),
                detail: serde_json::Value::Null,
            })
            .at(10_000)
            .end();
        let r = no_active_without_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
        assert!(
            r.summary
                .contains("never: the scenario kept the service down"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn meeting_completed_within_grace_of_container_death_holds() {
        let h = active_meeting()
            .at(2000)
            .die(1)
            .at(2500)
            .status(1, "active", "completed")
            .at(10_000)
            .end();
        assert_eq!(
            no_active_without_container(&h, &config()).outcome,
            Outcome::Holds
        );
    }

    #[test]
    fn container_that_never_went_away_is_unknown_for_no_active_without_container() {
        let h = active_meeting().at(10_000).end();
        let r = no_active_without_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown);
        assert!(!r.precondition_met);
    }

    #[test]
    fn container_restarted_after_die_is_not_gone() {
        let h = active_meeting()
            .at(2000)
            .die(1)
            .at(2100)
            .container(1, "start")
            .at(10_000)
            .end();
        let r = no_active_without_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
        assert!(!r.precondition_met);
    }

    #[test]
    fn meeting_that_never_had_a_container_is_no_precondition() {
        // Stopped before its container id was stored: completed at once, no container.
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "requested")
            .at(5)
            .status(1, "requested", "completed")
            .at(10_000)
            .end();
        assert!(!no_active_without_container(&h, &config()).precondition_met);
    }

    #[test]
    fn completion_at_exactly_the_end_of_the_grace_holds() {
        let h = active_meeting()
            .at(2000)
            .die(1)
            .at(3000)
            .status(1, "active", "completed")
            .at(10_000)
            .end();
        assert_eq!(
            no_active_without_container(&h, &config()).outcome,
            Outcome::Holds
        );
    }

    #[test]
    fn run_ending_inside_the_grace_leaves_no_active_without_container_unknown() {
        let h = active_meeting().at(2000).die(1).at(2500).end();
        let r = no_active_without_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown);
        assert!(r.precondition_met);
    }

    #[test]
    fn row_in_error_without_container_violates_no_active_without_container() {
        // A failed container start: the row holds `error`, a non-terminal value.
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "requested")
            .container(1, "create")
            .at(50)
            .container(1, "destroy")
            .status(1, "requested", "error")
            .at(5000)
            .end();
        let r = no_active_without_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(r.summary.contains("still error"), "{}", r.summary);
    }

    #[test]
    fn forgotten_container_still_running_is_not_gone() {
        let h = active_meeting()
            .at(10_000)
            .final_auto()
            .final_edit(|f| f.containers[0].forgotten = true)
            .end();
        let r = no_active_without_container(&h, &config());
        assert!(!r.precondition_met, "{r:?}");
    }

    #[test]
    fn forgotten_container_exit_is_dated_by_its_bots_exiting_line() {
        let h = active_meeting()
            .at(2000)
            .bot(1, "u1", "exiting", serde_json::json!({"code": 0}))
            .at(10_000)
            .final_auto()
            .final_edit(|f| {
                f.containers[0].forgotten = true;
                f.containers[0].state = "exited".into();
            })
            .end();
        let r = no_active_without_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(r.summary.contains("went away at 2000 ms"), "{}", r.summary);
    }

    #[test]
    fn a_container_gone_for_exactly_the_grace_when_the_run_ends_is_judged() {
        let h = active_meeting().at(2000).die(1).at(3000).end();
        let r = no_active_without_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(
            r.summary.contains("still active at 3000 ms"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn a_replacement_container_still_running_keeps_the_meeting_from_being_gone() {
        let h = active_meeting()
            .at(2000)
            .die(1)
            .at(2100)
            .container_as(1, "c1b", "vexa-bot-1-1111abcd", "start")
            .at(10_000)
            .end();
        let r = no_active_without_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
        assert!(!r.precondition_met, "{r:?}");
    }

    #[test]
    fn a_replacement_container_that_never_started_does_not_keep_the_meeting() {
        let h = active_meeting()
            .at(2000)
            .die(1)
            .at(2100)
            .container_as(1, "c1b", "vexa-bot-1-1111abcd", "create")
            .at(10_000)
            .end();
        let r = no_active_without_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(r.summary.contains("went away at 2000 ms"), "{}", r.summary);
    }

    #[test]
    fn the_meeting_is_gone_from_the_death_of_its_last_container() {
        // Its second container died a second after the first: completing 500 ms after
        // the last death is within the grace.
        let h = active_meeting()
            .at(500)
            .container_as(1, "c1b", "vexa-bot-1-1111abcd", "start")
            .at(2000)
            .die(1)
            .at(3000)
            .container_as(1, "c1b", "vexa-bot-1-1111abcd", "die")
            .at(3500)
            .status(1, "active", "completed")
            .at(10_000)
            .end();
        let r = no_active_without_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Holds, "{r:?}");
    }

    #[test]
    fn a_container_known_only_from_the_final_state_went_away_at_its_bots_exiting_line() {
        // No container event at all (forgotten by the runtime): the final state lists it
        // exited, and its bot's `exiting` line dates the exit, not its first line.
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(50)
            .bot(1, "u1", "started", serde_json::json!({}))
            .at(2000)
            .bot(1, "u1", "exiting", serde_json::json!({"code": 0}))
            .at(10_000)
            .final_auto()
            .final_container("c1", &container_name(1), Some(1), "exited")
            .end();
        let r = no_active_without_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert_eq!(
            r.summary,
            "Meeting 1 was still active at 3000 ms, 1000 ms after its container went away at 2000 ms."
        );
    }
}
