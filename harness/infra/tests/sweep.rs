use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use infra::process::{ChildGuard, die_with_parent};
use infra::sweep::sweep_temp_dirs_in;
use nix::sys::signal::Signal;

/// The pid of a process that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn leftover(root: &Path, kind: &str, pid: u32) -> PathBuf {
    let dir = root.join(format!("stopflow-{kind}-{pid}-x1y2z3"));
    fs::create_dir_all(dir.join("data")).unwrap();
    fs::write(dir.join("data").join("some-file"), "left behind").unwrap();
    dir
}

#[test]
fn a_leftover_dir_whose_pid_is_dead_is_removed() {
    let root = tempfile::tempdir().unwrap();
    let dir = leftover(root.path(), "pg", dead_pid());

    let removed = sweep_temp_dirs_in(root.path());

    assert_eq!(removed, std::slice::from_ref(&dir));
    assert!(!dir.exists());
}

#[test]
fn dirs_of_live_processes_and_other_names_are_kept() {
    let root = tempfile::tempdir().unwrap();
    let alive = die_with_parent(Command::new("sleep").arg("1000"))
        .spawn()
        .unwrap();
    let alive = ChildGuard::from_std(alive, "sleep");
    let kept = [
        leftover(root.path(), "redis", alive.id()),
        leftover(root.path(), "pg", std::process::id()),
        root.path().join("stopflow-pg-notapid-1"),
        root.path().join(format!("elsewhere-pg-{}-1", dead_pid())),
    ];
    for dir in &kept {
        fs::create_dir_all(dir).unwrap();
    }

    let removed = sweep_temp_dirs_in(root.path());

    assert_eq!(removed, Vec::<PathBuf>::new());
    assert!(kept.iter().all(|dir| dir.exists()));
}

#[tokio::test]
async fn a_server_still_running_in_a_leftover_dir_is_killed_before_the_dir_is_removed() {
    let root = tempfile::tempdir().unwrap();
    let dir = leftover(root.path(), "redis", dead_pid());
    let stray = die_with_parent(Command::new("sleep").arg("1000").current_dir(&dir))
        .spawn()
        .unwrap();
    let mut stray = ChildGuard::from_std(stray, "sleep");
    fs::write(dir.join("server.pid"), stray.id().to_string()).unwrap();

    let removed = sweep_temp_dirs_in(root.path());

    assert_eq!(removed, std::slice::from_ref(&dir));
    assert!(!dir.exists());
    let status = stray.wait_exit(Duration::from_secs(60)).await.unwrap();
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
}

#[tokio::test]
async fn every_process_working_in_a_leftover_dir_or_naming_it_is_killed_not_only_its_server() {
    // Pins: the sweep killed only the pid in server.pid, so a killed postmaster's backends
    // (working in its data dir, attached to its shared memory) outlived the sweep, and so
    // did the segment they kept attached.
    let root = tempfile::tempdir().unwrap();
    let dir = leftover(root.path(), "pg", dead_pid());
    let spawn = |command: &mut Command, name: &str| {
        ChildGuard::from_std(die_with_parent(command).spawn().unwrap(), name)
    };
    let mut strays = [
        // Working in the dir, below it, and naming it from elsewhere.
        spawn(
            Command::new("sleep").arg("1000").current_dir(&dir),
            "server",
        ),
        spawn(
            Command::new("sleep")
                .arg("1000")
                .current_dir(dir.join("data")),
            "worker",
        ),
        spawn(
            Command::new("tail")
                .arg("-f")
                .arg(dir.join("data").join("some-file"))
                .current_dir(root.path()),
            "reader",
        ),
    ];
    fs::write(dir.join("server.pid"), strays[0].id().to_string()).unwrap();
    let bystander = spawn(
        Command::new("sleep").arg("1000").current_dir(root.path()),
        "bystander",
    );

    let removed = sweep_temp_dirs_in(root.path());

    assert_eq!(removed, std::slice::from_ref(&dir));
    assert!(!dir.exists());
    for stray in &mut strays {
        let status = stray.wait_exit(Duration::from_secs(60)).await.unwrap();
        assert_eq!(
            status.signal(),
            Some(Signal::SIGKILL as i32),
            "{}",
            stray.program()
        );
    }
    let mut bystander = bystander;
    assert_eq!(
        bystander.try_exit_status().unwrap(),
        None,
        "a process elsewhere was killed"
    );
}
