//! What became of a scenario's steps, read back from the history: fired and done, not
//! triggered, failed, or never reached. A step that did not do what the scenario says
//! leaves the scripted situation unproven, so it makes the run inconclusive unless the
//! scenario marks it `optional`.

use serde::{Deserialize, Serialize};

use crate::history::{EventKind, FaultPhase, History};
use crate::scenario::Scenario;

/// A step as the scenario plans it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub name: String,
    pub action: String,
    /// The trigger, in words (`when m1 is active, then 500 ms`).
    pub trigger: String,
    #[serde(default)]
    pub optional: bool,
}

/// A step and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    #[serde(flatten)]
    pub planned: PlannedStep,
    /// `ok`, `not_triggered`, `failed: <why>`, or `not_reached` (no record of it).
    pub outcome: String,
    /// When its outcome was recorded, in ms from the start of the run.
    #[serde(default)]
    pub at_ms: Option<f64>,
}

impl StepReport {
    /// Whether the step did what the scenario says.
    pub fn done(&self) -> bool {
        self.outcome == "ok"
    }

    /// Why the step did not do what the scenario says, in a sentence; `None` when it did.
    pub fn problem(&self) -> Option<String> {
        let p = &self.planned;
        let head = format!("step {:?} ({}, {})", p.name, p.action, p.trigger);
        match self.outcome.as_str() {
            "ok" => None,
            "not_triggered" => Some(format!(
                "{head} never fired: its trigger did not happen within step_timeout_ms"
            )),
            "not_reached" => Some(format!("{head} has no record: the run never reached it")),
            other => Some(format!(
                "{head} {}",
                other.strip_prefix("failed: ").map_or_else(
                    || format!("ended {other:?}"),
                    |why| format!("failed: {why}")
                )
            )),
        }
    }
}

pub fn planned(scenario: &Scenario) -> Vec<PlannedStep> {
    scenario
        .steps
        .iter()
        .map(|s| PlannedStep {
            name: s.name.clone(),
            action: s.action.name().to_owned(),
            trigger: s.when.to_string(),
            optional: s.optional,
        })
        .collect()
}

/// Each planned step with the outcome its `Step` event recorded.
pub fn reports(planned: &[PlannedStep], history: &History) -> Vec<StepReport> {
    planned
        .iter()
        .map(|p| {
            let recorded = history.events.iter().find_map(|e| match &e.kind {
                EventKind::Step { name, outcome, .. } if *name == p.name => {
                    Some((outcome.clone(), e.at_us))
                }
                _ => None,
            });
            let (outcome, at_ms) = match recorded {
                Some((outcome, at_us)) => (outcome, Some(at_us as f64 / 1000.0)),
                None => ("not_reached".to_owned(), None),
            };
            StepReport {
                planned: p.clone(),
                outcome,
                at_ms,
            }
        })
        .collect()
}

/// Everything about the run itself that leaves its verdict unproven: every step that is
/// not optional and did not do its job, every fault whose heal failed (the fault then
/// outlived the window the scenario gives it), and every gap in the recording (events
/// meanwhile may be missing, so "nothing violated" would rest on a partial history).
pub fn problems(steps: &[StepReport], history: &History) -> Vec<String> {
    let mut problems: Vec<String> = steps
        .iter()
        .filter(|s| !s.planned.optional)
        .filter_map(StepReport::problem)
        .collect();
    for e in &history.events {
        if let EventKind::Fault {
            name,
            phase: FaultPhase::Healed,
            target,
            detail,
        } = &e.kind
            && let Some(outcome) = detail["outcome"].as_str()
            && outcome.starts_with("failed")
        {
            problems.push(format!(
                "the heal of {name} on {target} at {:.1} ms {outcome}",
                e.at_us as f64 / 1000.0
            ));
        }
        if let EventKind::RecorderGap { source, detail } = &e.kind {
            problems.push(format!(
                "the recorder lost {source} at {:.1} ms ({detail}): events meanwhile may be missing from the history",
                e.at_us as f64 / 1000.0
            ));
        }
    }
    problems.extend(undeclared(history));
    problems
}

/// Messages the service's wire cannot read: a protocol description that does not fit the
/// service would leave the checkers blind to its leaves and statuses, never a pass.
fn undeclared(history: &History) -> Option<String> {
    let wire = history.wire();
    let mut channels = std::collections::BTreeMap::<&str, usize>::new();
    for e in &history.events {
        if let EventKind::Published { channel, payload } = &e.kind
            && wire.read(channel, payload) == protocol::Published::Undeclared
        {
            *channels.entry(channel).or_default() += 1;
        }
    }
    if channels.is_empty() {
        return None;
    }
    let total: usize = channels.values().sum();
    let mut named: Vec<String> = channels.keys().take(3).map(|c| format!("`{c}`")).collect();
    if channels.len() > 3 {
        named.push(format!("{} more", channels.len() - 3));
    }
    Some(format!(
        "{total} message(s) were published on channels the service's protocol description does not declare, or without the status where it says ({}): the checkers could not read them (the adapter's [protocol] must describe the service's channels)",
        named.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::history::Event;

    fn planned(name: &str, optional: bool) -> PlannedStep {
        PlannedStep {
            name: name.into(),
            action: "kill_bot".into(),
            trigger: "when m1's bot logs session_started".into(),
            optional,
        }
    }

    fn step(name: &str, outcome: &str, at_us: i64) -> Event {
        Event {
            seq: 0,
            at_us,
            kind: EventKind::Step {
                name: name.into(),
                action: "kill_bot".into(),
                meeting: Some("m1".into()),
                outcome: outcome.into(),
            },
        }
    }

    fn history(events: Vec<Event>) -> History {
        History::new(events)
    }

    #[test]
    fn a_step_that_never_fired_is_a_problem_unless_optional() {
        // A misspelled trigger left the fault step not_triggered, visible only in
        // history.jsonl, and the run passed.
        let h = history(vec![step("kill", "not_triggered", 15_000_000)]);
        let steps = reports(&[planned("kill", false)], &h);
        let found = problems(&steps, &h);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("\"kill\"") && found[0].contains("never fired"));
        assert!(
            found[0].contains("session_started"),
            "names the trigger: {found:?}"
        );
        let optional = reports(&[planned("kill", true)], &h);
        assert!(problems(&optional, &h).is_empty());
    }

    #[test]
    fn a_failed_step_names_why() {
        // kill_bot with a signal the runtime refused (400) read as done.
        let h = history(vec![step(
            "kill",
            "failed: /_runtime/containers/x/signal answered 400: invalid signal",
            1_000,
        )]);
        let steps = reports(&[planned("kill", false)], &h);
        assert!(!steps[0].done());
        let found = problems(&steps, &h);
        assert!(found[0].contains("failed: /_runtime/containers/x/signal answered 400"));
    }

    #[test]
    fn a_step_with_no_record_was_not_reached() {
        let h = history(vec![]);
        let steps = reports(&[planned("kill", false)], &h);
        assert_eq!(steps[0].outcome, "not_reached");
        assert_eq!(problems(&steps, &h).len(), 1);
    }

    #[test]
    fn a_step_that_did_its_job_is_no_problem() {
        let h = history(vec![step("kill", "ok", 2_000)]);
        let steps = reports(&[planned("kill", false)], &h);
        assert!(steps[0].done());
        assert_eq!(steps[0].at_ms, Some(2.0));
        assert!(problems(&steps, &h).is_empty());
    }

    #[test]
    fn a_failed_heal_is_a_problem() {
        let h = history(vec![Event {
            seq: 1,
            at_us: 3_000,
            kind: EventKind::Fault {
                name: "pause_bot".into(),
                phase: FaultPhase::Healed,
                target: "m1".into(),
                detail: json!({"outcome": "failed: no such container"}),
            },
        }]);
        let found = problems(&[], &h);
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("pause_bot") && found[0].contains("no such container"));
    }

    #[test]
    fn a_gap_in_the_recording_is_a_problem() {
        // A recorder that lost its Redis subscription saw no publish meanwhile, and a
        // checker that saw nothing dangerous passed.
        let h = history(vec![Event {
            seq: 1,
            at_us: 4_000,
            kind: EventKind::RecorderGap {
                source: "redis".into(),
                detail: "the subscription stream ended; resubscribing".into(),
            },
        }]);
        let found = problems(&[], &h);
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("recorder lost redis"), "{found:?}");
    }

    #[test]
    fn a_heal_made_moot_by_its_target_going_away_is_no_problem() {
        // h1-hung-container: the stop kills the paused bot, so resuming it at the end of
        // the fault phase finds no container; the fault ended with it.
        let h = history(vec![Event {
            seq: 1,
            at_us: 3_000,
            kind: EventKind::Fault {
                name: "pause_bot".into(),
                phase: FaultPhase::Healed,
                target: "m1".into(),
                detail: json!({"outcome": "moot: the container is gone"}),
            },
        }]);
        assert!(problems(&[], &h).is_empty());
    }

    fn published(seq: u64, channel: &str, payload: serde_json::Value) -> Event {
        Event {
            seq,
            at_us: seq as i64 * 1_000,
            kind: EventKind::Published {
                channel: channel.into(),
                payload,
            },
        }
    }

    fn started(wire: protocol::Wire) -> Event {
        Event {
            seq: 0,
            at_us: 0,
            kind: EventKind::RunStarted {
                scenario: "s".into(),
                profile: "legacy".into(),
                seed: 1,
                meetings: Vec::new(),
                wire: Box::new(wire),
            },
        }
    }

    #[test]
    fn messages_the_wire_cannot_read_are_a_problem() {
        // A later service judged with the incident's description: its statuses on
        // `bm:meeting:{id}:status` went unread, and INV-STATUS-AGREES saw nothing.
        let status = json!({"payload": {"status": "active"}});
        let h = history(vec![
            started(protocol::Wire::reference()),
            published(1, "bm:meeting:1:status", status.clone()),
            published(2, "bm:meeting:1:status", status.clone()),
        ]);
        let found = problems(&[], &h);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("2 message(s)") && found[0].contains("`bm:meeting:1:status`"),
            "{found:?}"
        );
        let h = history(vec![
            started(crate::check::invariants::testkit::later_wire()),
            published(1, "bm:meeting:1:status", status),
            published(
                2,
                "bot_commands:meeting:1",
                json!({"action": "leave", "meeting_id": 1}),
            ),
        ]);
        assert!(problems(&[], &h).is_empty());
    }
}
