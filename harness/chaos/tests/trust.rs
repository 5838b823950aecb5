//! No false pass: every way a run can fail to prove what its scenario says ends as
//! inconclusive or a harness error, never as "as expected", and every violation is kept.
//! Each test drives the `chaos` binary as a user does, against real processes.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::{chaos, scenario, text};

/// `chaos run --profile legacy` on one file; answers the output and the run folder.
fn run(dir: &Path, path: &Path, extra: &[&str]) -> (Output, PathBuf) {
    let out = dir.join("reports");
    let output = chaos()
        .args(["run", "--profile", "legacy", "--seed", "3", "--out"])
        .arg(&out)
        .args(extra)
        .arg(path)
        .output()
        .unwrap();
    let run_dir = std::fs::read_dir(&out)
        .map(|mut entries| entries.next().unwrap().unwrap().path())
        .unwrap_or_else(|_| panic!("no run folder: {}", text(&output)));
    (output, run_dir)
}

fn results(run_dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap()).unwrap()
}

/// The events of `scenario`'s legacy run in `run_dir`.
fn history(run_dir: &Path, scenario: &str) -> Vec<Value> {
    let path = run_dir.join(scenario).join("legacy-1/history.jsonl");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A scenario of one well-behaved meeting under the short timers, with `steps`.
fn one_meeting(description: &str, steps: &str) -> String {
    format!(
        "description = \"{description}\"\n[service]\ndelayed_stop_ms = 1000\nstop_grace_s = 1\npre_active_window_ms = 0\n[[meetings]]\nname = \"m1\"\n{steps}\n[convergence]\nstep_timeout_ms = 4000\n[expect]\nlegacy = \"holds\"\n"
    )
}

const BASE: &str = r#"
description = "a well-behaved bot is stopped once it is active"
[service]
delayed_stop_ms = 1000
stop_grace_s = 1
pre_active_window_ms = 0
[[meetings]]
name = "m1"
[[steps]]
name = "stop"
when = { meeting = "m1", status = "active" }
action = "stop"
meeting = "m1"
[convergence]
step_timeout_ms = 4000
[expect]
legacy = "holds"
"#;

/// BASE with a fault step that waits for a bot event the well-behaved bot never logs.
fn never_fires(optional: bool) -> String {
    let step = format!(
        "[[steps]]\nname = \"kill-when-hung\"\nwhen = {{ meeting = \"m1\", bot_event = \"leave_hung\" }}\naction = \"kill_bot\"\nmeeting = \"m1\"\noptional = {optional}\n[convergence]"
    );
    BASE.replace("[convergence]", &step)
}

#[test]
fn a_step_whose_trigger_never_fires_makes_the_run_inconclusive_and_exits_1() {
    // A fault step that never fired (`not_triggered`, visible only in history.jsonl) let
    // the run pass: the scripted fault never happened, so the run proved nothing.
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), "never-fires", &never_fires(false));
    let (output, run_dir) = run(dir.path(), &path, &[]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains("INCONCLUSIVE never-fires [legacy]"), "{all}");
    assert!(
        all.contains(
            "step \"kill-when-hung\" (kill_bot, when m1's bot logs leave_hung) never fired"
        ),
        "{all}"
    );

    let record = &results(&run_dir)["records"][0];
    assert_eq!(record["verdict"]["kind"], "inconclusive", "{record}");
    assert_eq!(record["as_expected"], false);
    let step = &record["steps"][1];
    assert_eq!(step["name"], "kill-when-hung");
    assert_eq!(step["outcome"], "not_triggered");
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    assert!(summary.contains("✗ inconclusive"), "{summary}");
    assert!(summary.contains("kill-when-hung"), "{summary}");
    let junit = std::fs::read_to_string(run_dir.join("junit.xml")).unwrap();
    assert!(junit.contains("type=\"inconclusive\""), "{junit}");
    assert!(junit.contains("kill-when-hung"), "{junit}");
}

#[test]
fn an_optional_step_that_never_fires_leaves_the_verdict_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), "optional", &never_fires(true));
    let (output, run_dir) = run(dir.path(), &path, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let record = &results(&run_dir)["records"][0];
    assert_eq!(record["verdict"]["kind"], "holds", "{record}");
    assert_eq!(record["steps"][1]["outcome"], "not_triggered");
}

#[test]
fn a_step_that_fails_makes_the_run_inconclusive_with_its_reason() {
    // A kill the runtime refused read as done, and the run passed.
    let dir = tempfile::tempdir().unwrap();
    let body = BASE.replace(
        "[convergence]",
        "[[steps]]\nname = \"kill-too-early\"\naction = \"kill_bot\"\nmeeting = \"m2\"\n[[meetings]]\nname = \"m2\"\nstart = false\n[convergence]",
    );
    let path = scenario(dir.path(), "fails", &body);
    let (output, run_dir) = run(dir.path(), &path, &[]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(
        all.contains("step \"kill-too-early\" (kill_bot, 0 ms after the start) failed: meeting \"m2\" has no container yet"),
        "{all}"
    );
    let record = &results(&run_dir)["records"][0];
    assert_eq!(record["verdict"]["kind"], "inconclusive", "{record}");
}

#[test]
fn a_run_past_its_deadline_is_a_harness_error_naming_what_it_waited_for() {
    // A step with after_ms = 3600000 ran until killed by hand: no run may hang.
    let dir = tempfile::tempdir().unwrap();
    let body = BASE.replace(
        "when = { meeting = \"m1\", status = \"active\" }",
        "when = { meeting = \"m1\", status = \"active\", after_ms = 600000 }",
    );
    let path = scenario(dir.path(), "hangs", &body);
    // nextest's slow-timeout ends the test if the run waits out its ten-minute step. The
    // deadline leaves a loaded machine time to start the stack (CI once took more than
    // 10 s there, and the error then named the stack start, not the step).
    let (output, run_dir) = run(dir.path(), &path, &["--run-timeout", "40"]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(
        all.contains("deadline of 40 s") && all.contains("still waiting for step \"stop\""),
        "{all}"
    );
    let record = &results(&run_dir)["records"][0];
    assert_eq!(record["verdict"]["kind"], "error", "{record}");
    assert!(
        record["rerun"]
            .as_str()
            .unwrap()
            .contains("--run-timeout 40"),
        "{record}"
    );
    let junit = std::fs::read_to_string(run_dir.join("junit.xml")).unwrap();
    assert!(junit.contains("<error"), "an error, not a skip: {junit}");
}

#[test]
fn validate_bounds_every_number_and_names_its_line_and_column() {
    // Timer values `chaos validate` accepted overflowed in the run and crashed it.
    let dir = tempfile::tempdir().unwrap();
    let body = BASE
        .replace(
            "delayed_stop_ms = 1000",
            "delayed_stop_ms = 18446744073709551615",
        )
        .replace(
            "step_timeout_ms = 4000",
            "step_timeout_ms = 4000\ngrace_ms = 9223372036854775807\ndeadline_ms = 10000000000000000",
        );
    let path = scenario(dir.path(), "huge", &body);
    let output = chaos().arg("validate").arg(&path).output().unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    let p = path.display();
    for (at, what) in [
        (
            "4:1",
            "service.delayed_stop_ms = 18446744073709551615 is out of bounds",
        ),
        (
            "16:1",
            "convergence.grace_ms = 9223372036854775807 is out of bounds",
        ),
        (
            "17:1",
            "convergence.deadline_ms = 10000000000000000 is out of bounds",
        ),
    ] {
        assert!(
            all.contains(&format!("{p}:{at}: {what}")),
            "{at} {what}:\n{all}"
        );
    }
}

#[test]
fn validate_checks_trigger_and_action_values_against_their_vocabularies() {
    // `session_startd`, `SIGKIL` and a status nobody publishes all validated, and their
    // steps then never fired or failed.
    let dir = tempfile::tempdir().unwrap();
    let body = BASE
        .replace("status = \"active\" }", "bot_event = \"session_startd\" }")
        .replace(
            "[convergence]",
            "[[steps]]\nwhen = { meeting = \"m1\", published = \"stoping\" }\naction = \"kill_bot\"\nmeeting = \"m1\"\nsignal = \"SIGKIL\"\n[convergence]",
        );
    let path = scenario(dir.path(), "words", &body);
    let output = chaos().arg("validate").arg(&path).output().unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    let p = path.display();
    assert!(all.contains(&format!("{p}:11:26: step \"stop\": when.bot_event \"session_startd\" is not an event the bot logs")), "{all}");
    assert!(
        all.contains(&format!(
            "{p}:15:26: step \"step-2\": when.published \"stoping\""
        )),
        "{all}"
    );
    assert!(
        all.contains(&format!("{p}:18:1: step \"step-2\": signal \"SIGKIL\"")),
        "{all}"
    );
}

#[test]
fn validate_refuses_a_named_pipe_instead_of_blocking_on_it() {
    // `chaos validate` blocked forever on a named pipe called `*.toml`.
    let dir = tempfile::tempdir().unwrap();
    let pipe = dir.path().join("pipe.toml");
    nix::unistd::mkfifo(&pipe, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let mut child = chaos()
        .arg("validate")
        .arg(&pipe)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("chaos validate blocked on a named pipe");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains("not a regular file"), "{all}");
}

#[test]
fn every_violation_of_an_invariant_is_kept_with_its_own_witness() {
    // Only the first violation of each invariant was kept; the rest became "(and N more)"
    // and the second meeting's evidence was reported nowhere.
    let dir = tempfile::tempdir().unwrap();
    let body = r#"
description = "two meetings whose bots hang in their leave: both stay active"
[service]
delayed_stop_ms = 1000
stop_grace_s = 1
pre_active_window_ms = 0
[[meetings]]
name = "m1"
bot = { leave = "hang", sigterm = "ignore" }
[[meetings]]
name = "m2"
bot = { leave = "hang", sigterm = "ignore" }
[[steps]]
name = "stop-1"
when = { meeting = "m1", status = "active" }
action = "stop"
meeting = "m1"
[[steps]]
name = "stop-2"
when = { meeting = "m2", status = "active" }
action = "stop"
meeting = "m2"
[convergence]
grace_ms = 1500
deadline_ms = 4000
[expect]
legacy = "violates INV-TERMINAL, INV-NO-ACTIVE-WITHOUT-CONTAINER, INV-STATUS-AGREES"
"#;
    let path = scenario(dir.path(), "two-stuck", body);
    let (output, run_dir) = run(dir.path(), &path, &[]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    let record = &results(&run_dir)["records"][0];
    let terminal = record["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["invariant"] == "INV-TERMINAL")
        .unwrap();
    let cases = terminal["violations"].as_array().unwrap();
    assert_eq!(cases.len(), 2, "{terminal}");
    for (case, label) in cases.iter().zip(["m1", "m2"]) {
        assert!(case["text"].as_str().unwrap().contains(label), "{case}");
        assert!(!case["witness"].as_array().unwrap().is_empty(), "{case}");
    }
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    for case in cases {
        assert!(
            summary.contains(case["text"].as_str().unwrap()),
            "{summary}"
        );
    }
}

#[test]
fn a_service_restart_is_a_fault_period_from_the_signal_to_the_new_process() {
    // restart_service recorded no fault period and its step was stamped when the restart
    // finished, so a callback lost during the restart had no visible cause.
    let dir = tempfile::tempdir().unwrap();
    let (output, run_dir) = run(
        dir.path(),
        Path::new("scenarios/service-restart-loses-delayed-stop.toml"),
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let events = history(&run_dir, "service-restart-loses-delayed-stop");
    let at = |pred: &dyn Fn(&Value) -> bool| {
        events
            .iter()
            .find(|e| pred(e))
            .and_then(|e| e["at_us"].as_i64())
            .unwrap_or_else(|| panic!("missing event in {events:?}"))
    };
    let fault = |phase: &'static str| {
        move |e: &Value| {
            e["type"] == "fault" && e["name"] == "restart_service" && e["phase"] == phase
        }
    };
    let applied = at(&fault("applied"));
    let healed = at(&fault("healed"));
    let step = at(&|e: &Value| e["type"] == "step" && e["action"] == "restart_service");
    assert!(applied < healed, "{applied} {healed}");
    assert!(
        applied < step,
        "the down period starts at the signal: {applied} {step}"
    );
    assert!(
        healed <= step,
        "and ends when the new process answers: {healed} {step}"
    );
}

#[test]
fn a_restart_that_fires_during_another_waits_for_it_and_then_restarts() {
    // Two restart_service steps whose times overlapped (as a loaded machine shifts them)
    // failed the second with "the bot-manager is not running", and the run was
    // inconclusive: service-restarts-around-stop under fixed at 32 runs at once.
    let dir = tempfile::tempdir().unwrap();
    let body = one_meeting(
        "two restarts of the service overlap while the bot is active; then a stop",
        r#"[[steps]]
name = "long-restart"
when = { meeting = "m1", status = "active" }
action = "restart_service"
down_ms = 1500
[[steps]]
name = "short-restart"
when = { meeting = "m1", status = "active", after_ms = 300 }
action = "restart_service"
down_ms = 100
[[steps]]
name = "stop"
when = { meeting = "m1", status = "active", after_ms = 5000 }
action = "stop"
meeting = "m1""#,
    );
    let path = scenario(dir.path(), "overlapping-restarts", &body);
    let (output, run_dir) = run(dir.path(), &path, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let events = history(&run_dir, "overlapping-restarts");
    let phases: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "fault" && e["name"] == "restart_service")
        .map(|e| e["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["applied", "healed", "applied", "healed"],
        "one restart after the other: {events:?}"
    );
    let restarts: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "step" && e["action"] == "restart_service")
        .collect();
    assert_eq!(restarts.len(), 2, "{events:?}");
    assert!(
        restarts.iter().all(|s| s["outcome"] == "ok"),
        "{restarts:?}"
    );
}

#[test]
fn a_service_restarted_while_its_redis_is_unreachable_is_started_again_until_it_answers() {
    // Pins: a restart during a fault of the service's Redis link failed its heal ("its
    // stdout closed first": the service exits when Redis refuses it at start) and the
    // run was inconclusive (explore under fixed, seed 200, plan 17); a supervisor starts
    // it again until it answers.
    let dir = tempfile::tempdir().unwrap();
    let body = one_meeting(
        "the service restarts while its Redis link is down, then a stop",
        r#"[[steps]]
name = "redis-down"
when = { meeting = "m1", status = "active" }
action = "link_down"
link = "service:redis"
heal_after_ms = 1500
[[steps]]
name = "restart"
when = { meeting = "m1", status = "active", after_ms = 100 }
action = "restart_service"
down_ms = 100
[[steps]]
name = "stop"
when = { meeting = "m1", status = "active", after_ms = 3000 }
action = "stop"
meeting = "m1""#,
    );
    let path = scenario(dir.path(), "restart-without-redis", &body);
    let (output, run_dir) = run(dir.path(), &path, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let events = history(&run_dir, "restart-without-redis");
    let restart = events
        .iter()
        .find(|e| e["type"] == "step" && e["name"] == "restart")
        .unwrap_or_else(|| panic!("no restart step: {events:?}"));
    assert_eq!(restart["outcome"], "ok", "{restart}");
    let log =
        std::fs::read_to_string(run_dir.join("restart-without-redis/legacy-1/logs/service.log"))
            .unwrap();
    assert!(
        log.contains("failed to connect to Redis"),
        "the restart met the fault at least once:\n{log}"
    );
}
