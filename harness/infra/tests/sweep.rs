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

/// `program` (found on PATH) copied to `dir/bin/name`: a process whose name is one of the
/// harness's server programs, as the sweep tells them.
fn named(dir: &Path, program: &str, name: &str) -> PathBuf {
    let source = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} on PATH"));
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let path = bin.join(name);
    fs::copy(source, &path).unwrap();
    path
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
    let server = named(root.path(), "sleep", "redis-server");
    let stray = die_with_parent(Command::new(server).arg("1000").current_dir(&dir))
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
    let postgres = named(root.path(), "sleep", "postgres");
    let reader = named(root.path(), "tail", "redis-server");
    let mut strays = [
        // The harness's programs working in the dir, below it, and naming it from elsewhere.
        spawn(
            Command::new(&postgres).arg("1000").current_dir(&dir),
            "server",
        ),
        spawn(
            Command::new(&postgres)
                .arg("1000")
                .current_dir(dir.join("data")),
            "worker",
        ),
        spawn(
            Command::new(&reader)
                .arg("-f")
                .arg(dir.join("data").join("some-file"))
                .current_dir(root.path()),
            "reader",
        ),
    ];
    fs::write(dir.join("server.pid"), strays[0].id().to_string()).unwrap();
    let bystanders = [
        spawn(
            Command::new("sleep").arg("1000").current_dir(root.path()),
            "bystander",
        ),
        // A user's own process in the leftover folder is not the sweep's to kill.
        spawn(
            Command::new("tail")
                .arg("-f")
                .arg(dir.join("data").join("some-file"))
                .current_dir(root.path()),
            "a user's tail",
        ),
    ];

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
    for mut bystander in bystanders {
        assert_eq!(
            bystander.try_exit_status().unwrap(),
            None,
            "{} was killed",
            bystander.program()
        );
    }
}
