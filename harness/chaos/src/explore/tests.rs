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
    assert!(err.contains("\"netwrk\"") && err.contains("network"), "{err}");
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

