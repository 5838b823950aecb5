//! A small hand-built run for the report tests: one record that reproduced its expected
//! violation (with a witness), one that unexpectedly held, one pending.

use std::collections::BTreeSet;

use serde_json::json;

use crate::check::convergence::Convergence;
use crate::check::{CheckResult, Invariant, Outcome, Violation};
use crate::history::{
    Event, EventKind, FaultPhase, FinalContainer, FinalMeeting, FinalSession, FinalState, History,
    HttpPhase, MeetingLabel,
};
use crate::results::{RunRecord, RunReport};
use crate::verdict::{Expectation, Verdict};

fn ev(seq: u64, at_ms: i64, kind: EventKind) -> Event {
    Event {
        seq,
        at_us: at_ms * 1000,
        kind,
    }
}

pub(crate) fn sample_history() -> History {
    History::new(vec![
        ev(
            0,
            0,
            EventKind::RunStarted {
                scenario: "restart-during-stop".into(),
                profile: "legacy".into(),
                seed: 42,
                wire: Default::default(),
                meetings: vec![MeetingLabel {
                    label: "m1".into(),
                    platform: "google_meet".into(),
                    native_meeting_id: "abc-defg-hij".into(),
                }],
            },
        ),
        ev(
            1,
            100,
            EventKind::Step {
                name: "create".into(),
                action: "post_bot".into(),
                meeting: Some("m1".into()),
                outcome: "ok".into(),
            },
        ),
        ev(
            2,
            120,
            EventKind::Http {
                op: 1,
                phase: HttpPhase::Invoke,
                method: "POST".into(),
                path: "/bots".into(),
                meeting: Some("m1".into()),
                status: None,
                body: None,
                error: None,
                by: None,
            },
        ),
        ev(
            3,
            180,
            EventKind::MeetingInserted {
                meeting_id: 1,
                platform: "google_meet".into(),
                native_meeting_id: "abc-defg-hij".into(),
                status: "requested".into(),
            },
        ),
        ev(
            4,
            250,
            EventKind::Http {
                op: 1,
                phase: HttpPhase::Ok,
                method: "POST".into(),
                path: "/bots".into(),
                meeting: Some("m1".into()),
                status: Some(201),
                body: Some(json!({"id": 1, "status": "requested"})),
                error: None,
                by: None,
            },
        ),
        ev(
            5,
            300,
            EventKind::Container {
                action: "start".into(),
                container_id: "deadbeefcafe0001".into(),
                name: "vexa-bot-1-deadbeef".into(),
                meeting_id: Some(1),
                exit_code: None,
            },
        ),
        ev(
            6,
            1000,
            EventKind::Bot {
                container: "vexa-bot-1-deadbeef".into(),
                meeting_id: Some(1),
                uid: Some("u1".into()),
                event: "joined".into(),
                fields: json!({}),
            },
        ),
        ev(
            7,
            2000,
            EventKind::Fault {
                name: "bot_restart_new_uid".into(),
                phase: FaultPhase::Applied,
                target: "m1".into(),
                detail: json!({"new_uid": "u2"}),
            },
        ),
        ev(
            8,
            5000,
            EventKind::Published {
                channel: "bot_commands:meeting:1".into(),
                payload: json!({"action": "leave", "note": "<script>alert(1)</script>"}),
            },
        ),
        ev(
            9,
            5400,
            EventKind::StatusStored {
                meeting_id: 1,
                from: "active".into(),
                to: "stopping".into(),
                audit_len: 3,
                completion_reason: None,
                failure_stage: None,
                stop_requested: true,
                bot_container_id: None,
            },
        ),
        ev(
            10,
            5500,
            EventKind::Published {
                channel: "meeting:1:status".into(),
                payload: json!({"status": "stopping"}),
            },
        ),
        ev(
            11,
            6000,
            EventKind::Container {
                action: "die".into(),
                container_id: "deadbeefcafe0001".into(),
                name: "vexa-bot-1-deadbeef".into(),
                meeting_id: Some(1),
                exit_code: Some(137),
            },
        ),
        ev(
            12,
            7000,
            EventKind::Fault {
                name: "bot_restart_new_uid".into(),
                phase: FaultPhase::Healed,
                target: "m1".into(),
                detail: json!(null),
            },
        ),
        ev(
            13,
            7100,
            EventKind::Fault {
                name: "redis_down".into(),
                phase: FaultPhase::Applied,
                target: "service->redis".into(),
                detail: json!(null),
            },
        ),
        ev(
            14,
            9000,
            EventKind::Final(FinalState {
                meetings: vec![FinalMeeting {
                    id: 1,
                    platform: "google_meet".into(),
                    native_meeting_id: "abc-defg-hij".into(),
                    status: "stopping".into(),
                    bot_container_id: Some("deadbeefcafe0001".into()),
                    data: json!({}),
                }],
                sessions: vec![FinalSession {
                    meeting_id: 1,
                    session_uid: "u1".into(),
                }],
                containers: vec![FinalContainer {
                    id: "deadbeefcafe0001".into(),
                    name: "vexa-bot-1-deadbeef".into(),
                    meeting_id: Some(1),
                    state: "exited".into(),
                    exit_code: Some(137),
                    forgotten: false,
                }],
            }),
        ),
    ])
}

fn event(history: &History, seq: u64) -> Event {
    history
        .events
        .iter()
        .find(|e| e.seq == seq)
        .cloned()
        .expect("fixture event")
}

pub(crate) fn sample_report() -> RunReport {
    let history = sample_history();
    let violated = BTreeSet::from([Invariant::NoActiveWithoutContainer]);
    RunReport {
        run_id: "20250101-120000-abcd".into(),
        started_at: "2025-01-01T12:00:00Z".into(),
        finished_at: "2025-01-01T12:00:20Z".into(),
        commit: Some("0123456789abcdef".into()),
        records: vec![
            RunRecord {
                scenario: "restart-during-stop".into(),
                description: "The bot restarts under a new uid while the stop is in flight."
                    .into(),
                covers: vec!["H2".into()],
                profile: "legacy".into(),
                seed: 42,
                repetition: 1,
                expectation: Expectation::Violates {
                    invariants: violated.clone(),
                },
                verdict: Verdict::Violated {
                    invariants: violated,
                },
                as_expected: true,
                steps: vec![],
                problems: vec![],
                focus: vec![Invariant::NoActiveWithoutContainer],
                checks: vec![
                    CheckResult {
                        invariant: Invariant::NoActiveWithoutContainer,
                        outcome: Outcome::Violated,
                        precondition_met: true,
                        summary: "meeting 1 stayed stopping 3000 ms after its container died (grace 1000 ms)".into(),
                        witness: vec![event(&history, 11), event(&history, 14)],
                        violations: vec![Violation {
                            text: "meeting 1 stayed stopping 3000 ms after its container died (grace 1000 ms)".into(),
                            witness: vec![event(&history, 11), event(&history, 14)],
                        }],
                    },
                    CheckResult {
                        invariant: Invariant::Transitions,
                        outcome: Outcome::Holds,
                        precondition_met: true,
                        summary: "all 1 status changes allowed".into(),
                        witness: vec![],
                        violations: vec![],
                    },
                ],
                duration_ms: 9100,
                dir: Some("restart-during-stop/legacy-1".into()),
                rerun: "chaos run scenarios/restart-during-stop.toml --profile legacy --seed 42".into(),
                convergence: None,
                convergence_bound_ms: 2700,
            },
            RunRecord {
                scenario: "late-callback".into(),
                description: "A late | duplicated callback <b>after</b> completion.".into(),
                covers: vec!["H4".into()],
                profile: "legacy".into(),
                seed: 7,
                repetition: 1,
                expectation: Expectation::Violates {
                    invariants: BTreeSet::from([Invariant::StatusAgrees]),
                },
                verdict: Verdict::Holds,
                as_expected: false,
                steps: vec![],
                problems: vec![],
                focus: vec![Invariant::StatusAgrees],
                checks: vec![
                    CheckResult {
                        invariant: Invariant::StatusAgrees,
                        outcome: Outcome::Holds,
                        precondition_met: true,
                        summary: "last published status stopping | stored stopping".into(),
                        witness: vec![],
                        violations: vec![],
                    },
                    CheckResult {
                        invariant: Invariant::LeaveRouted,
                        outcome: Outcome::Unknown,
                        precondition_met: false,
                        summary: "no leave was published".into(),
                        witness: vec![event(&history, 8)],
                        violations: vec![],
                    },
                ],
                duration_ms: 4200,
                dir: Some("late-callback/legacy-1".into()),
                rerun: "chaos run scenarios/late-callback.toml --profile legacy --seed 7".into(),
                convergence: Some(Convergence { worst_ms: Some(1250.0), rows: 1, unconverged: 0 }),
                convergence_bound_ms: 2700,
            },
            RunRecord {
                scenario: "restart-during-stop".into(),
                description: "The bot restarts under a new uid while the stop is in flight."
                    .into(),
                covers: vec!["H2".into()],
                profile: "fixed".into(),
                seed: 42,
                repetition: 1,
                expectation: Expectation::Pending {
                    reason: "needs the fixed profile".into(),
                },
                verdict: Verdict::Pending {
                    reason: "needs the fixed profile".into(),
                },
                as_expected: true,
                steps: vec![],
                problems: vec![],
                focus: vec![Invariant::NoActiveWithoutContainer],
                checks: vec![],
                duration_ms: 0,
                dir: None,
                rerun: "chaos run scenarios/restart-during-stop.toml --profile fixed --seed 42".into(),
                convergence: None,
                convergence_bound_ms: 2700,
            },
        ],
        plan: None,
    }
}
