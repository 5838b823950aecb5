//! The harness as an installed tool: its programs copied to a folder of their own (as
//! `cargo install` puts them beside each other), run from a folder that is not the
//! source tree, with a scenario folder of the user's own.

mod support;

use std::path::Path;
use std::process::Command;

use support::text;

/// Copies the harness's programs into `bin` (what `cargo install --path` would put there).
fn install(bin: &Path) {
    std::fs::create_dir_all(bin).unwrap();
    let built = Path::new(env!("CARGO_BIN_EXE_chaos")).parent().unwrap();
    for program in ["chaos", "bot-manager", "runtime", "mock-bot", "fault-proxy"] {
        std::fs::copy(built.join(program), bin.join(program))
            .unwrap_or_else(|e| panic!("copy {program} from {}: {e}", built.display()));
    }
}

#[test]
fn an_installed_chaos_runs_a_users_scenarios_from_any_folder() {
    let home = tempfile::tempdir().unwrap();
    let bin = home.path().join("bin");
    install(&bin);
    let project = home.path().join("my-service");
    std::fs::create_dir_all(project.join("chaos")).unwrap();
    std::fs::copy(
        support::root().join("scenarios/happy-path.toml"),
        project.join("chaos/happy.toml"),
    )
    .unwrap();
    let output = Command::new(bin.join("chaos"))
        .current_dir(&project)
        .env("CI", "1")
        .args(["run", "chaos/", "--profile", "legacy", "--seed", "2"])
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(all.contains("PASS happy [legacy] holds"), "{all}");
    assert!(project.join("reports").is_dir(), "{all}");
    // The rerun command names the binary the user ran.
    let results = std::fs::read_dir(project.join("reports"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("results.json");
    let results = std::fs::read_to_string(results).unwrap();
    assert!(
        results.contains(&bin.join("chaos").display().to_string()),
        "{results}"
    );

    // The sign-off's criteria are built in too: it finds them with no fixtures folder,
    // and names the scenarios missing from the user's folder.
    let output = Command::new(bin.join("chaos"))
        .current_dir(&project)
        .args(["signoff", "--scenarios", "chaos", "--repeat", "1"])
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains("<built-in acceptance.toml>"), "{all}");
}
