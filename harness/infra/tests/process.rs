use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use infra::InfraError;
use infra::process::{ChildGuard, die_with_parent, free_port, spawn_until_line, wait_until_gone};
use nix::sys::signal::Signal;

/// Set in the environment of a re-executed copy of this binary to give it a helper role.
const ROLE: &str = "INFRA_TEST_ROLE";
/// Hang guard for processes to do their part; not a timing expectation.
const DEADLINE: Duration = Duration::from_secs(60);

fn shell(script: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.args(["-c", script]);
    cmd
}

/// The number after `marker` in `line`.
fn pid_after(line: &str, marker: &str) -> u32 {
    line.split_once(marker).unwrap().1.trim().parse().unwrap()
}

/// Runs only as a re-executed copy: starts a guarded child, reports it, waits to be killed.
#[test]
fn helper_parent_of_a_child_that_dies_with_it() {
    if std::env::var(ROLE).as_deref() != Ok("parent") {
        return;
    }
    let child = die_with_parent(Command::new("sleep").arg("1000"))
        .spawn()
        .unwrap();
    let child = ChildGuard::from_std(child, "sleep");
    println!("child pid={}", child.id());
    loop {
        std::thread::park();
    }
}

#[tokio::test]
async fn a_child_started_with_die_with_parent_dies_when_its_parent_is_killed() {
    let mut parent = tokio::process::Command::new(std::env::current_exe().unwrap());
    parent
        .args(["--exact", "helper_parent_of_a_child_that_dies_with_it"])
        .args(["--nocapture", "--test-threads=1"])
        .env(ROLE, "parent");
    // libtest prints "test <name> ... " without a newline before the helper's own output.
    let (mut parent, line) = spawn_until_line(parent, |line| line.contains("child pid="), DEADLINE)
        .await
        .unwrap();
    let child = pid_after(&line, "child pid=");

    // Only the parent: its child is in a process group of its own, out of reach of this.
    parent.signal(Signal::SIGKILL);
    parent.wait_exit(DEADLINE).await.unwrap();

    assert!(
        wait_until_gone(child, DEADLINE),
        "child {child} outlived its parent"
    );
}

#[tokio::test]
async fn dropping_a_child_guard_kills_its_whole_process_group() {
    let script = r#"sleep 1000 & echo "grandchild $!"; wait"#;
    let (guard, line) = spawn_until_line(
        shell(script),
        |line| line.starts_with("grandchild"),
        DEADLINE,
    )
    .await
    .unwrap();
    let grandchild = pid_after(&line, "grandchild");

    drop(guard);

    assert!(
        wait_until_gone(grandchild, DEADLINE),
        "grandchild {grandchild} survived"
    );
}

#[tokio::test]
async fn spawn_until_line_returns_the_matching_line_and_keeps_draining_stdout() {
    // Far more than a pipe buffer after the ready line: the child only exits if drained.
    let script = r#"echo booting; echo "ready on 4242"; i=0
        while [ $i -lt 3000 ]; do echo "filler line $i, long enough to fill a pipe"; i=$((i+1)); done"#;
    let (mut guard, line) =
        spawn_until_line(shell(script), |line| line.starts_with("ready"), DEADLINE)
            .await
            .unwrap();

    assert_eq!(line, "ready on 4242");
    assert!(guard.wait_exit(DEADLINE).await.unwrap().success());
}

#[tokio::test]
async fn a_child_that_exits_before_the_line_is_reported_with_its_status_and_output() {
    let err = spawn_until_line(shell("echo oops; exit 3"), |line| line == "ready", DEADLINE)
        .await
        .unwrap_err();

    let InfraError::LineMissing { status, tail, .. } = &err else {
        panic!("unexpected error: {err}");
    };
    assert!(status.contains('3'), "{err}");
    assert_eq!(tail, "oops");
}

#[tokio::test]
async fn spawn_until_line_gives_up_at_the_deadline() {
    let mut quiet = tokio::process::Command::new("sleep");
    quiet.arg("1000");

    let err = spawn_until_line(quiet, |_| true, Duration::from_millis(50))
        .await
        .unwrap_err();

    assert!(matches!(err, InfraError::LineTimeout { .. }), "{err}");
}

#[tokio::test]
async fn wait_exit_reports_the_exit_code_or_the_signal() {
    let exits = Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
    let mut exits = ChildGuard::from_std(exits, "sh");
    assert_eq!(exits.wait_exit(DEADLINE).await.unwrap().code(), Some(7));

    let sleeps = die_with_parent(Command::new("sleep").arg("1000"))
        .spawn()
        .unwrap();
    let mut sleeps = ChildGuard::from_std(sleeps, "sleep");
    sleeps.signal(Signal::SIGTERM);
    let status = sleeps.wait_exit(DEADLINE).await.unwrap();
    assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));
}

#[test]
fn waiting_for_a_running_child_past_the_deadline_is_an_error() {
    let sleeps = die_with_parent(Command::new("sleep").arg("1000"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut sleeps = ChildGuard::from_std(sleeps, "sleep");

    let err = sleeps.wait_exit_blocking(Duration::ZERO).unwrap_err();

    assert!(matches!(err, InfraError::ExitTimeout { .. }), "{err}");
}

#[test]
fn a_free_port_can_be_bound() {
    let port = free_port().unwrap();
    std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
}
