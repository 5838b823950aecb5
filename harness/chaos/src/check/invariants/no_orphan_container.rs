//! INV-NO-ORPHAN-CONTAINER: no container runs for a terminal meeting beyond the grace.
//!
//! From the moment `t` a meeting first holds a terminal status, every life of its
//! container that overlaps `[t, end]` must end by `max(t, life start) + grace`: a
//! container running when the meeting became terminal must be gone by `t + grace`, and
//! one that started later (a bot joining after its row was completed) within the grace
//! of its start. The final state counts: a container it lists as running (forgotten by
//! the runtime or not) runs to the end. Unknown when the run ended inside the grace.

use super::Findings;
use crate::check::timeline::{ContainerLife, Life, LifeEnd, StatusAt, Timeline, grace_end, ms};
use crate::check::{CheckConfig, CheckResult, Invariant};
use crate::history::{Event, EventKind, History};

pub fn no_orphan_container(history: &History, config: &CheckConfig) -> CheckResult {
    let tl = Timeline::new(history);
    let mut findings = Findings::new(Invariant::NoOrphanContainer);
    for (id, line) in &tl.meetings {
        let Some(terminal) = line.first_terminal() else {
            continue;
        };
        for c in tl.containers_of(*id) {
            for life in &c.lives {
                check_life(&tl, config, *id, terminal, c, life, &mut findings);
            }
        }
    }
    findings.finish("no meeting became terminal while its container ran", |n| {
        format!("All {n} container(s) running for a terminal meeting were gone within the grace.")
    })
}

fn check_life(
    tl: &Timeline<'_>,
    config: &CheckConfig,
    id: i64,
    terminal: StatusAt<'_>,
    c: &ContainerLife<'_>,
    life: &Life<'_>,
    findings: &mut Findings,
) {
    let t = terminal.at_us;
    let overlaps = match life.end {
        LifeEnd::Running => true,
        LifeEnd::Died { at_us, .. } => at_us > t,
        // Exited at an unknown time: only a sign of life after `t` shows it ran then.
        LifeEnd::Vanished { seen_us } => seen_us > t,
    };
    if !overlaps || life.from_us > tl.end_us {
        return;
    }
    findings.occurred();
    let from = t.max(life.from_us);
    let due = tl.after_service_time(from, config.grace_us);
    let name = &c.name;
    let head = if life.from_us <= t {
        format!(
            "Meeting {id} became {} at {} while its container {name} ran",
            terminal.status,
            ms(t)
        )
    } else {
        format!(
            "Meeting {id} was {} since {} when its container {name} started at {}",
            terminal.status,
            ms(t),
            ms(life.from_us)
        )
    };
    match life.end {
        LifeEnd::Died { at_us, .. } if at_us <= due => findings.held(),
        LifeEnd::Died { at_us, event } => findings.violated(
            format!(
                "{head}; the container went away only at {}, after the grace ({}).",
                ms(at_us),
                ms(due)
            ),
            [Some(terminal.event), life.start, Some(event)]
                .into_iter()
                .flatten(),
        ),
        LifeEnd::Running if tl.end_us < due => findings.unknown(format!(
            "{head}; the run ended at {} before the grace ran out ({}).",
            ms(tl.end_us),
            grace_end(due)
        )),
        LifeEnd::Running => findings.violated(
            format!(
                "{head}; it still ran at the end of the run ({}), past the grace ({}).",
                ms(tl.end_us),
                ms(due)
            ),
            [Some(terminal.event), life.start, proof_of_life(tl, c)]
                .into_iter()
                .flatten(),
        ),
        LifeEnd::Vanished { seen_us } if seen_us > due => findings.violated(
            format!(
                "{head}; its bot still logged at {}, past the grace ({}).",
                ms(seen_us),
                ms(due)
            ),
            [Some(terminal.event), life.start, last_bot_line(tl, c)]
                .into_iter()
                .flatten(),
        ),
        LifeEnd::Vanished { seen_us } => findings.unknown(format!(
            "{head}; it exited at an unknown time after {} (no exit event).",
            ms(seen_us)
        )),
    }
}

/// What shows a container still ran at the end: the final state listing it running.
fn proof_of_life<'h>(tl: &Timeline<'h>, c: &ContainerLife<'h>) -> Option<&'h Event> {
    match c.final_entry {
        Some(_) => tl.final_event,
        None => last_bot_line(tl, c).or_else(|| c.events.last().copied()),
    }
}

fn last_bot_line<'h>(tl: &Timeline<'h>, c: &ContainerLife<'h>) -> Option<&'h Event> {
    tl.bots
        .iter()
        .filter(|b| matches!(b.life, Some(i) if std::ptr::eq(&tl.containers[i], c)))
        .flat_map(|b| b.events.iter().copied())
        .filter(|e| matches!(e.kind, EventKind::Bot { .. }))
        .max_by_key(|e| (e.at_us, e.seq))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{H, config};
    use super::*;
    use crate::check::Outcome;

    fn active_meeting() -> H {
        H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(10)
            .start(1)
    }

    #[test]
    fn container_outliving_completed_meeting_violates_no_orphan_container() {
        let h = active_meeting()
            .at(1000)
            .status(1, "active", "completed")
            .at(4000)
            .die(1)
            .at(10_000)
            .end();
        let r = no_orphan_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(
            r.summary.contains("went away only at 4000 ms"),
            "{}",
            r.summary
        );
        let kinds: Vec<&str> = r.witness.iter().map(|e| e.kind.name()).collect();
        assert_eq!(kinds, ["container", "status_stored", "container"]);
    }

    #[test]
    fn container_gone_within_grace_holds_no_orphan_container() {
        let h = active_meeting()
            .at(1000)
            .status(1, "active", "completed")
            .at(1800)
            .die(1)
            .at(10_000)
            .end();
        assert_eq!(no_orphan_container(&h, &config()).outcome, Outcome::Holds);
    }

    #[test]
    fn container_dying_at_exactly_the_end_of_the_grace_holds() {
        let h = active_meeting()
            .at(1000)
            .status(1, "active", "completed")
            .at(2000)
            .die(1)
            .at(10_000)
            .end();
        assert_eq!(no_orphan_container(&h, &config()).outcome, Outcome::Holds);
    }

    #[test]
    fn meeting_never_terminal_is_unknown_for_no_orphan_container() {
        let h = active_meeting().at(2000).die(1).at(10_000).end();
        let r = no_orphan_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown);
        assert!(!r.precondition_met);
    }

    #[test]
    fn container_died_before_terminal_is_no_precondition() {
        let h = active_meeting()
            .at(1000)
            .die(1)
            .at(1500)
            .status(1, "active", "failed")
            .at(10_000)
            .end();
        assert!(!no_orphan_container(&h, &config()).precondition_met);
    }

    #[test]
    fn forgotten_container_still_running_at_the_end_violates_no_orphan_container() {
        let h = active_meeting()
            .at(1000)
            .status(1, "active", "completed")
            .at(10_000)
            .final_auto()
            .final_edit(|f| f.containers[0].forgotten = true)
            .end();
        let r = no_orphan_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(r.summary.contains("still ran at the end"), "{}", r.summary);
        assert_eq!(r.witness.last().map(|e| e.kind.name()), Some("final"));
    }

    #[test]
    fn run_ending_inside_the_grace_leaves_no_orphan_container_unknown() {
        let h = active_meeting()
            .at(1000)
            .status(1, "active", "completed")
            .at(1500)
            .end();
        let r = no_orphan_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown);
        assert!(r.precondition_met);
    }

    #[test]
    fn bot_joining_after_its_row_completed_violates_no_orphan_container() {
        // POST then an immediate DELETE: the row completes before the container starts.
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "requested")
            .at(5)
            .status(1, "requested", "completed")
            .at(20)
            .start(1)
            .at(10_000)
            .end();
        let r = no_orphan_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(r.summary.contains("started at 20 ms"), "{}", r.summary);
    }

    #[test]
    fn a_container_dying_at_the_instant_its_meeting_ends_is_no_precondition() {
        let h = active_meeting()
            .at(1000)
            .die(1)
            .status(1, "active", "completed")
            .at(10_000)
            .end();
        let r = no_orphan_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
        assert!(!r.precondition_met, "{r:?}");
    }

    #[test]
    fn a_container_still_running_exactly_when_the_grace_runs_out_violates() {
        let h = active_meeting()
            .at(1000)
            .status(1, "active", "completed")
            .at(2000)
            .end();
        let r = no_orphan_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(r.summary.contains("still ran at the end"), "{}", r.summary);
    }

    #[test]
    fn a_container_started_for_a_terminal_meeting_at_the_runs_last_instant_is_undecided() {
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "requested")
            .at(5)
            .status(1, "requested", "completed")
            .at(5000)
            .start(1)
            .end();
        let r = no_orphan_container(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
        assert!(r.precondition_met, "{r:?}");
    }

    /// A container that exited at a time no event shows (the final state lists it
    /// exited), its bot's last line at `last_line_ms`; the meeting completed at 1000 ms.
    fn exited_unseen(last_line_ms: i64) -> History {
        active_meeting()
            .at(20)
            .bot(1, "u1", "started", serde_json::json!({}))
            .at(1000)
            .status(1, "active", "completed")
            .at(last_line_ms)
            .bot(1, "u1", "heartbeat", serde_json::json!({}))
            .at(10_000)
            .final_auto()
            .final_edit(|f| f.containers[0].state = "exited".into())
            .end()
    }

    #[test]
    fn a_container_whose_bot_logged_past_the_grace_after_completion_violates() {
        let r = no_orphan_container(&exited_unseen(3000), &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert_eq!(
            r.summary,
            "Meeting 1 became completed at 1000 ms while its container vexa-bot-1-0000abcd ran; its bot still logged at 3000 ms, past the grace (2000 ms)."
        );
        let last = r.witness.last().expect("a witness");
        assert!(
            matches!(&last.kind, EventKind::Bot { event, .. } if event == "heartbeat"),
            "{last:?}"
        );
    }

    #[test]
    fn a_container_whose_bot_logged_until_the_grace_ran_out_is_undecided() {
        let r = no_orphan_container(&exited_unseen(2000), &config());
        assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
        assert!(r.precondition_met, "{r:?}");
        assert!(
            r.summary.contains("unknown time after 2000 ms"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn a_container_whose_bot_fell_silent_when_its_meeting_ended_is_no_precondition() {
        let r = no_orphan_container(&exited_unseen(1000), &config());
        assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
        assert!(!r.precondition_met, "{r:?}");
    }
}
