//! `chaos explore` end to end: a random plan that leaves a meeting stuck is found, shrunk
//! and written as a scenario that replays, ready to keep as a regression.

use chaos::explore::generate::{FaultKind, Generator};
use chaos::explore::plan::PlanWhen;

mod support;
use support::{chaos, text};

/// A seed whose first plan with bot faults only is one meeting whose leave hangs (H1),
/// stopped once active: the engine must find that, whatever else the draw added.
fn seed_with_a_hanging_leave() -> u64 {
    (0..10_000)
        .find(|&seed| {
            let plan = Generator {
                seed,
                kinds: vec![FaultKind::Bot],
            }
            .plan(0)
            .plan;
            plan.meetings.len() == 1
                && plan.meetings[0].bot.len() == 1
                && plan.meetings[0].bot.get("leave") == Some(&"hang".into())
                && plan.steps.len() == 1
                && matches!(&plan.steps[0].when, PlanWhen::Status { status, .. } if status == "active")
        })
        .expect("some seed draws it")
}

#[test]
fn explore_finds_a_stuck_meeting_shrinks_it_and_writes_a_scenario_that_replays() {
    let out = tempfile::tempdir().unwrap();
    let seed = seed_with_a_hanging_leave();
    let output = chaos()
        .args([
            "explore",
            "--profile",
            "legacy",
            "--faults",
            "bot",
            "--runs",
            "1",
        ])
        .args(["--replays", "3", "--shrink-calls", "6", "--seed"])
        .arg(seed.to_string())
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let all = text(&output);
    // Something found is not a pass.
    assert_eq!(output.status.code(), Some(1), "{all}");
    let dir = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("explore-")
        })
        .expect("an exploration folder");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("explore.json")).unwrap()).unwrap();
    let findings = json["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{all}");
    let finding = &findings[0];
    assert_eq!(finding["invariant"], "INV-TERMINAL", "{finding}");
    assert!(finding["faults"].as_u64().unwrap() <= 3, "{finding}");
    assert!(finding["replay_hits"].as_u64().unwrap() >= 1, "{finding}");
    let file = dir.join(finding["file"].as_str().unwrap());
    let scenario = std::fs::read_to_string(&file).unwrap();
    assert!(
        scenario.contains("legacy = \"violates INV-TERMINAL")
            && scenario.contains("leave = \"hang\""),
        "{scenario}"
    );
    assert!(
        !scenario.contains("optional"),
        "a kept scenario's steps are required: {scenario}"
    );
    // The file is a scenario like any other.
    let validate = chaos().arg("validate").arg(&file).output().unwrap();
    assert_eq!(validate.status.code(), Some(0), "{}", text(&validate));
    for report in ["explore.md", "explore.html"] {
        let body = std::fs::read_to_string(dir.join(report)).unwrap();
        assert!(body.contains(finding["file"].as_str().unwrap()), "{report}");
    }
}

#[test]
fn an_unknown_fault_kind_is_refused_with_the_known_ones() {
    let output = chaos()
        .args(["explore", "--faults", "bot,gremlins", "--runs", "1"])
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(
        all.contains("\"gremlins\"") && all.contains("network"),
        "{all}"
    );
}
