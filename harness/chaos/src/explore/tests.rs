use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;

use super::generate::{FaultKind, Generator};

fn holds() -> BTreeMap<String, String> {
    BTreeMap::from([("legacy".to_owned(), "holds".to_owned())])
}

fn all_kinds(seed: u64) -> Generator {
    Generator {
        seed,
        kinds: FaultKind::ALL.to_vec(),
    }
}

#[test]
fn the_same_seed_draws_the_same_plans_in_the_same_order() {
    let a: Vec<String> = (0..20)
        .map(|i| all_kinds(7).plan(i).plan.to_toml("p", "d", &holds()))
        .collect();
    let b: Vec<String> = (0..20)
        .map(|i| all_kinds(7).plan(i).plan.to_toml("p", "d", &holds()))
        .collect();
    assert_eq!(a, b);
    let other: Vec<String> = (0..20)
        .map(|i| all_kinds(8).plan(i).plan.to_toml("p", "d", &holds()))
        .collect();
    assert_ne!(a, other);
}

#[test]
fn a_plan_uses_only_the_kinds_it_was_allowed() {
    let only = Generator {
        seed: 3,
        kinds: vec![FaultKind::Network],
    };
    for i in 0..50 {
        let drawn = only.plan(i);
        assert_eq!(drawn.kinds, vec![FaultKind::Network]);
        for s in drawn.plan.steps.iter().filter(|s| !s.is_workload()) {
            assert!(
                matches!(s.action.as_str(), "network" | "link_down"),
                "{}",
                s.action
            );
        }
        assert!(drawn.plan.meetings.iter().all(|m| m.bot.is_empty()));
    }
}

#[test]
fn every_fault_kind_is_drawn_in_some_plan() {
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..300 {
        seen.extend(all_kinds(11).plan(i).kinds);
    }
    assert_eq!(seen.len(), FaultKind::ALL.len(), "{seen:?}");
}

#[test]
fn fault_kinds_parse_by_name_and_an_unknown_one_is_named() {
    assert_eq!("network".parse::<FaultKind>(), Ok(FaultKind::Network));
    let err = "netwrk".parse::<FaultKind>().unwrap_err().to_string();
    assert!(
        err.contains("\"netwrk\"") && err.contains("network"),
        "{err}"
    );
}

#[test]
fn forgeries_are_drawn_only_when_asked_for() {
    assert!(!FaultKind::defaults().contains(&FaultKind::Forge));
    assert_eq!(FaultKind::defaults().len(), FaultKind::ALL.len() - 1);
    let defaults = Generator {
        seed: 5,
        kinds: FaultKind::defaults(),
    };
    for i in 0..300 {
        let drawn = defaults.plan(i);
        for s in &drawn.plan.steps {
            assert_ne!(s.action, "forge_session");
            let from = s.fields.get("from").and_then(|v| v.as_str());
            assert!(matches!(from, None | Some("bot")), "plan {i}: {s:?}");
        }
    }
}

#[test]
fn a_forged_request_comes_from_an_attacker_or_another_meetings_bot() {
    let forge = Generator {
        seed: 9,
        kinds: vec![FaultKind::Forge],
    };
    let mut senders = std::collections::BTreeSet::new();
    for i in 0..200 {
        let drawn = forge.plan(i);
        for s in drawn.plan.steps.iter().filter(|s| !s.is_workload()) {
            assert!(
                matches!(s.action.as_str(), "callback" | "forge_session"),
                "{s:?}"
            );
            let meeting = s.meeting().expect("a forgery names its meeting");
            let from = s.fields["from"].as_str().expect("a sender");
            match from.strip_prefix("bot:") {
                Some(other) => {
                    assert_ne!(other, meeting, "a meeting's own bot is no forger: {s:?}");
                    senders.insert("another bot");
                }
                None => {
                    assert_eq!(from, "attacker", "{s:?}");
                    senders.insert("attacker");
                }
            }
        }
    }
    assert_eq!(senders.len(), 2, "{senders:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn every_drawn_plan_is_a_valid_scenario(seed in any::<u64>(), index in 0u64..1000) {
        let drawn = all_kinds(seed).plan(index);
        let scenario = drawn.plan.scenario(Path::new("plan.toml"), "plan", &holds());
        prop_assert!(scenario.is_ok(), "{}\n{}", scenario.unwrap_err(), drawn.plan.to_toml("plan", "d", &holds()));
        prop_assert!(drawn.plan.steps.iter().any(|s| s.action == "stop"));
    }
}

mod shrinking {
    use std::collections::{BTreeMap, HashMap};

    use toml::Value;

    use super::super::plan::{PlanMeeting, PlanSpec, PlanStep, PlanWhen};
    use super::super::shrink::{Oracle, shrink};

    fn step(name: &str, when: PlanWhen, action: &str, fields: &[(&str, Value)]) -> PlanStep {
        PlanStep {
            name: name.into(),
            when,
            action: action.into(),
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        }
    }

    /// Two meetings, five steps, five behaviours: room to shrink.
    fn big() -> PlanSpec {
        let m = |name: &str, bot: &[(&str, Value)]| PlanMeeting {
            name: name.into(),
            bot: bot
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        };
        PlanSpec {
            meetings: vec![
                m(
                    "m1",
                    &[
                        ("leave", "hang".into()),
                        ("leave_delay_ms", Value::Integer(300)),
                        ("callback", "drop".into()),
                    ],
                ),
                m("m2", &[("subscribe", "fail".into())]),
            ],
            steps: vec![
                step(
                    "stop-m1",
                    PlanWhen::Bot {
                        meeting: "m1".into(),
                        event: "session_started".into(),
                        after_ms: 400,
                    },
                    "stop",
                    &[("meeting", "m1".into())],
                ),
                step(
                    "stop-m2",
                    PlanWhen::Start { after_ms: 1000 },
                    "stop",
                    &[("meeting", "m2".into())],
                ),
                step(
                    "pause",
                    PlanWhen::AfterStep {
                        step: "stop-m1".into(),
                        after_ms: 200,
                    },
                    "pause_bot",
                    &[
                        ("meeting", "m1".into()),
                        ("heal_after_ms", Value::Integer(2000)),
                    ],
                ),
                step(
                    "cut",
                    PlanWhen::Start { after_ms: 300 },
                    "link_down",
                    &[
                        ("link", "bot:m2:redis".into()),
                        ("heal_after_ms", Value::Integer(1000)),
                    ],
                ),
                step(
                    "restart",
                    PlanWhen::AfterStep {
                        step: "stop-m2".into(),
                        after_ms: 100,
                    },
                    "restart_service",
                    &[("down_ms", Value::Integer(500))],
                ),
            ],
        }
    }

    /// Fails when m1's leave hangs and m1's bot is paused: the known minimal plan is
    /// that behaviour and that one step, with every time at its least.
    struct HangAndPause {
        calls: usize,
    }

    impl Oracle for HangAndPause {
        async fn fails(&mut self, plan: &PlanSpec) -> bool {
            self.calls += 1;
            let hangs = plan
                .meetings
                .iter()
                .any(|m| m.name == "m1" && m.bot.get("leave") == Some(&"hang".into()));
            hangs
                && plan
                    .steps
                    .iter()
                    .any(|s| s.action == "pause_bot" && s.meeting() == Some("m1"))
        }
    }

    #[tokio::test]
    async fn the_shrinker_reaches_the_known_minimal_plan() {
        let mut oracle = HangAndPause { calls: 0 };
        let shrunk = shrink(big(), &mut oracle, 1000).await.expect("it fails");
        let plan = &shrunk.plan;
        assert_eq!(plan.meetings.len(), 1, "{plan:#?}");
        assert_eq!(
            plan.meetings[0].bot,
            BTreeMap::from([("leave".to_owned(), Value::from("hang"))])
        );
        assert_eq!(plan.steps.len(), 1, "{plan:#?}");
        assert_eq!(plan.steps[0].action, "pause_bot");
        assert_eq!(plan.steps[0].when.after_ms(), 0, "{plan:#?}");
        assert_eq!(shrunk.calls, oracle.calls);
    }

    /// Answers from a fixed pseudo-random sequence, remembering what it said of each plan.
    struct Fickle {
        state: u64,
        said: HashMap<String, bool>,
    }

    impl Oracle for Fickle {
        async fn fails(&mut self, plan: &PlanSpec) -> bool {
            self.state = self
                .state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let answer = self.said.is_empty() || (self.state >> 33).is_multiple_of(3);
            self.said
                .insert(plan.to_toml("c", "", &BTreeMap::new()), answer);
            answer
        }
    }

    #[tokio::test]
    async fn the_shrinker_never_returns_a_plan_the_oracle_did_not_call_failing() {
        for seed in 0..20 {
            let mut oracle = Fickle {
                state: seed,
                said: HashMap::new(),
            };
            let shrunk = shrink(big(), &mut oracle, 60)
                .await
                .expect("the first answer fails");
            let key = shrunk.plan.to_toml("c", "", &BTreeMap::new());
            assert_eq!(oracle.said.get(&key), Some(&true), "seed {seed}");
            assert!(shrunk.calls <= 60);
        }
    }

    #[tokio::test]
    async fn a_plan_holding_a_findings_minimal_plan_is_recognised_as_that_finding() {
        let mut oracle = HangAndPause { calls: 0 };
        let minimal = shrink(big(), &mut oracle, 1000).await.unwrap().plan;
        assert!(big().holds_shape_of(&minimal));
        assert!(minimal.holds_shape_of(&minimal));
        assert!(!minimal.holds_shape_of(&big()));
    }

    struct Never;

    impl Oracle for Never {
        async fn fails(&mut self, _: &PlanSpec) -> bool {
            false
        }
    }

    #[tokio::test]
    async fn a_plan_that_does_not_fail_is_not_shrunk() {
        assert!(shrink(big(), &mut Never, 100).await.is_none());
    }
}

#[test]
fn a_kept_plan_is_renamed_in_order_and_stays_the_same_scenario() {
    use super::plan::{PlanMeeting, PlanSpec, PlanStep, PlanWhen};
    let plan = PlanSpec {
        meetings: vec![PlanMeeting {
            name: "m2".into(),
            bot: [("leave".to_owned(), toml::Value::from("hang"))].into(),
        }],
        steps: vec![
            PlanStep {
                name: "s4-stop".into(),
                when: PlanWhen::Status {
                    meeting: "m2".into(),
                    status: "active".into(),
                    after_ms: 0,
                },
                action: "stop".into(),
                fields: [("meeting".to_owned(), toml::Value::from("m2"))].into(),
            },
            PlanStep {
                name: "s7-link-down".into(),
                when: PlanWhen::AfterStep {
                    step: "s4-stop".into(),
                    after_ms: 100,
                },
                action: "link_down".into(),
                fields: [("link".to_owned(), toml::Value::from("bot:m2:redis"))].into(),
            },
        ],
    };
    let renamed = plan.renamed();
    assert_eq!(renamed.meetings[0].name, "m1");
    assert_eq!(renamed.steps[0].name, "s1-stop");
    assert_eq!(renamed.steps[0].meeting(), Some("m1"));
    assert_eq!(renamed.steps[0].when.meeting(), Some("m1"));
    assert_eq!(renamed.steps[1].when.step(), Some("s1-stop"));
    assert_eq!(renamed.steps[1].link_meeting(), Some("m1"));
    assert_eq!(renamed.shape(), plan.shape());
    assert!(
        renamed
            .scenario(std::path::Path::new("r.toml"), "r", &holds())
            .is_ok()
    );
}

#[test]
fn an_exploration_passes_only_when_it_ran_plans_and_found_nothing() {
    use super::Exploration;
    let clean = Exploration {
        seed: 1,
        profile: "fixed".into(),
        sut: "reference".into(),
        kinds: vec!["bot".into()],
        partition: None,
        plans_run: 10,
        held_runs: 8,
        idle_runs: 1,
        violating_runs: 0,
        inconclusive_runs: 2,
        error_runs: 0,
        not_replayed: 0,
        elapsed_s: 1.0,
        plans_per_minute: 1.0,
        findings: Vec::new(),
    };
    assert_eq!(clean.exit_code(), 0);
    // Nothing run is nothing shown; a violation that did not replay is still something
    // seen; a harness error is the harness's.
    assert_eq!(
        Exploration {
            plans_run: 0,
            held_runs: 0,
            ..clean.clone()
        }
        .exit_code(),
        1
    );
    // Every plan inconclusive: nothing was shown to hold.
    assert_eq!(
        Exploration {
            held_runs: 0,
            inconclusive_runs: 10,
            ..clean.clone()
        }
        .exit_code(),
        1
    );
    assert_eq!(
        Exploration {
            not_replayed: 1,
            ..clean.clone()
        }
        .exit_code(),
        1
    );
    assert_eq!(
        Exploration {
            error_runs: 1,
            ..clean
        }
        .exit_code(),
        2
    );
}
