//! The `chaos` command as a user runs it: validation errors, exit codes, the reports it
//! writes, re-judging a stored run, and cleaning up after Ctrl-C.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod support;
use support::{ExternalProxy, chaos, scenario, text};

const DEADLINE: Duration = Duration::from_secs(60);

const HAPPY: &str = r#"
description = "a well-behaved bot is stopped"
[service]
delayed_stop_ms = 1000
stop_grace_s = 1
pre_active_window_ms = 0
[[meetings]]
name = "m1"
[[steps]]
name = "stop"
when = { meeting = "m1", bot_event = "session_started" }
action = "stop"
meeting = "m1"
[expect]
legacy = "holds"
fixed = "holds"
focus = ["INV-TERMINAL"]
"#;

#[test]
fn validate_points_at_the_line_of_each_error_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = HAPPY
        .replace("action = \"stop\"", "action = \"stopp\"")
        .replace("[service]", "[service]\nfoo = 1");
    let path = scenario(dir.path(), "bad", &bad);
    let output = chaos().args(["validate"]).arg(&path).output().unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(
        all.contains(&format!("{}:4:", path.display())) && all.contains("foo"),
        "{all}"
    );
    let output = chaos().args(["validate", "scenarios"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
}

#[test]
fn run_writes_every_report_and_report_rejudges_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), "happy", HAPPY);
    let out = dir.path().join("reports");
    let output = chaos()
        .args(["run", "--profile", "legacy", "--seed", "5", "--out"])
        .arg(&out)
        .arg(&path)
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    let run_dir = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for file in [
        "results.json",
        "junit.xml",
        "summary.md",
        "happy/legacy-1/history.jsonl",
        "happy/legacy-1/timeline.html",
    ] {
        assert!(run_dir.join(file).is_file(), "missing {file}: {all}");
    }
    let results = std::fs::read_to_string(run_dir.join("results.json")).unwrap();
    assert!(results.contains("\"seed\": 5"), "{results}");

    let output = chaos().arg("report").arg(&run_dir).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
}

#[test]
fn unexpected_verdict_exits_1_and_prints_the_rerun_command() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = HAPPY.replace("legacy = \"holds\"", "legacy = \"violates INV-TERMINAL\"");
    let path = scenario(dir.path(), "wrong", &wrong);
    let output = chaos()
        .args(["run", "--profile", "legacy", "--seed", "9", "--out"])
        .arg(dir.path().join("reports"))
        .arg(&path)
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(
        all.contains(&format!("run {} --profile legacy --seed 9", path.display())),
        "{all}"
    );
}

/// Pids of the direct children of `pid`, from /proc.
fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // The command name may hold spaces; the fields after its ')' are fixed.
        let after = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        if after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) == Some(pid) {
            found.push(child);
        }
    }
    found
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[test]
fn ctrl_c_stops_the_run_and_leaves_no_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    // A bot that hangs and a long deadline: the run is still going when interrupted.
    let long = HAPPY
        .replace(
            "[[meetings]]\nname = \"m1\"",
            "[[meetings]]\nname = \"m1\"\nbot = { leave = \"hang\" }",
        )
        .replace("[expect]", "[convergence]\ndeadline_ms = 60000\n[expect]");
    let path = scenario(dir.path(), "long", &long);
    let mut child = chaos()
        .args(["run", "--profile", "legacy", "--out"])
        .arg(dir.path().join("reports"))
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until the run's bot-manager is up among chaos's children.
    let started = Instant::now();
    let stack = loop {
        let kids = children(pid);
        let names: Vec<String> = kids
            .iter()
            .filter_map(|k| std::fs::read_to_string(format!("/proc/{k}/comm")).ok())
            .collect();
        if names.iter().any(|n| n.trim() == "bot-manager")
            && names.iter().any(|n| n.trim() == "runtime")
        {
            break kids;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the run never started its stack"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "chaos did not stop after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        status.code(),
        Some(2),
        "an interrupted run is a harness error, not a verdict"
    );
    for pid in stack {
        assert!(
            infra::process::wait_until_gone(pid, DEADLINE) || !alive(pid),
            "process {pid} outlived the interrupted run"
        );
    }
}

#[test]
fn run_puts_its_links_on_the_toxiproxy_at_toxiproxy_url_and_removes_them_after() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = ExternalProxy::start(dir.path());
    // A network scenario: its toxic must reach the external server for the legacy
    // violation to show.
    let output = chaos()
        .args(["run", "--profile", "legacy", "--seed", "4", "--out"])
        .arg(dir.path().join("reports"))
        .arg("scenarios/net-callback-lost-no-retry.toml")
        .env("TOXIPROXY_URL", &proxy.url)
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");

    let log = std::fs::read_to_string(&proxy.log).unwrap();
    let started: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("proxy started"))
        .collect();
    for link in [
        "service:postgres",
        "service:redis",
        "service:runtime",
        "bot:m1:redis",
        "bot:m1:callbacks",
    ] {
        assert!(
            started
                .iter()
                .any(|l| l.contains("stopflow-") && l.contains(link)),
            "no link {link} on the external proxy:\n{log}\n{all}"
        );
    }
    let left = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(fault_proxy::client::Client::new(proxy.url.clone()).proxies())
        .unwrap();
    assert!(left.is_empty(), "the run left proxies behind: {left:?}");
}

/// A stop the legacy service never completes: the bot's leave hangs and SIGTERM is
/// swallowed.
const HUNG: &str = r#"
description = "the leave hangs"
[service]
delayed_stop_ms = 1000
stop_grace_s = 1
pre_active_window_ms = 0
finalizer_grace_ms = 200
reconcile_interval_ms = 500
[convergence]
grace_ms = 1500
deadline_ms = 4000
[[meetings]]
name = "m1"
bot = { leave = "hang" }
[[steps]]
name = "stop"
when = { meeting = "m1", bot_event = "session_started" }
action = "stop"
meeting = "m1"
[expect]
legacy = "violates INV-TERMINAL, INV-NO-ACTIVE-WITHOUT-CONTAINER, INV-STATUS-AGREES"
fixed = "holds"
focus = ["INV-TERMINAL"]
"#;

fn only_run_dir(out: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

#[test]
fn matrix_writes_a_column_per_profile_and_says_which_fix_closes_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir(&scenarios).unwrap();
    // Only the finalizer closes a hang; the sweep alone finds no evidence (the stop
    // removed the container).
    let hung = HUNG.replace(
        "fixed = \"holds\"",
        "fixed = \"holds\"\nfinalize-after-forced-stop = \"holds\"",
    );
    scenario(&scenarios, "hung", &hung);
    let out = dir.path().join("reports");
    let output = chaos()
        .args([
            "matrix",
            "--profiles",
            "legacy,reconcile,finalize-after-forced-stop",
        ])
        .args(["--seed", "2", "--out"])
        .arg(&out)
        .arg(&scenarios)
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    let run_dir = only_run_dir(&out);
    let md = std::fs::read_to_string(run_dir.join("matrix.md")).unwrap();
    assert!(
        md.contains("| scenario | legacy | reconcile | finalize-after-forced-stop |"),
        "{md}"
    );
    assert!(md.contains("**3/3 as the scenarios expect**"), "{md}");
    assert!(
        md.contains("closed by any one of: `finalize-after-forced-stop`"),
        "{md}"
    );
    assert!(run_dir.join("matrix.html").is_file());
}

#[test]
fn signoff_passes_only_when_every_criterion_holds_and_shows_the_witness_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir(&scenarios).unwrap();
    scenario(&scenarios, "happy", HAPPY);
    scenario(&scenarios, "hung", HUNG);
    let criteria = dir.path().join("acceptance.toml");
    std::fs::write(
        &criteria,
        r#"
[[criterion]]
id = "AC1"
text = "stops reach a terminal status"
invariants = ["INV-TERMINAL"]
scenarios = ["happy", "hung"]
"#,
    )
    .unwrap();
    let signoff = |profile: &str, out: &Path| {
        chaos()
            .args([
                "signoff",
                "--profile",
                profile,
                "--repeat",
                "2",
                "--seed",
                "3",
            ])
            .arg("--criteria")
            .arg(&criteria)
            .arg("--scenarios")
            .arg(&scenarios)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };

    let out = dir.path().join("fixed");
    let output = signoff("fixed", &out);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    let md = std::fs::read_to_string(only_run_dir(&out).join("signoff.md")).unwrap();
    assert!(md.contains("SIGNED OFF: every criterion holds"), "{md}");
    assert!(md.contains("Runs supporting it: 4/4"), "{md}");
    assert!(md.contains("--profile fixed --repeat 2 --seed 3"), "{md}");

    let out = dir.path().join("legacy");
    let output = signoff("legacy", &out);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    let run_dir = only_run_dir(&out);
    let md = std::fs::read_to_string(run_dir.join("signoff.md")).unwrap();
    assert!(md.contains("NOT SIGNED OFF: AC1"), "{md}");
    assert!(md.contains("Runs supporting it: 2/4"), "{md}");
    assert!(
        md.contains("INV-TERMINAL violated") && md.contains("still active at the deadline"),
        "{md}"
    );
    assert!(run_dir.join("signoff.html").is_file());
}

#[test]
fn signoff_names_a_criterion_that_points_at_a_missing_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir(&scenarios).unwrap();
    scenario(&scenarios, "happy", HAPPY);
    let criteria = dir.path().join("acceptance.toml");
    std::fs::write(
        &criteria,
        "[[criterion]]\nid = \"AC9\"\ntext = \"t\"\ninvariants = [\"INV-TERMINAL\"]\nscenarios = [\"nope\"]\n",
    )
    .unwrap();
    let output = chaos()
        .arg("signoff")
        .arg("--criteria")
        .arg(&criteria)
        .arg("--scenarios")
        .arg(&scenarios)
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains("AC9") && all.contains("\"nope\""), "{all}");
}
