//! Against real servers: a throwaway one this test process starts, and the external one
//! at `$DATABASE_URL` (or the conventional local URL) when it is reachable.

use std::path::{Path, PathBuf};
use std::time::Duration;

use infra::postgres::{PostgresServer, TestDatabase, shared_server, test_database};
use infra::process::{spawn_until_line, wait_until_gone};
use infra::sweep;
use nix::sys::signal::Signal;
use sqlx::{Connection, PgConnection};

/// Set in the environment of a re-executed copy of this binary to give it a helper role.
const ROLE: &str = "INFRA_TEST_ROLE";
/// Hang guard for helpers and servers to do their part; not a timing expectation.
const DEADLINE: Duration = Duration::from_secs(120);

async fn database_exists(admin_url: &str, name: &str) -> bool {
    let mut conn = PgConnection::connect(admin_url).await.unwrap();
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

async fn current_database(url: &str) -> String {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// `$DATABASE_URL`, else the conventional local server; `Err` says why it is unusable.
async fn reachable_external_url() -> Result<String, String> {
    let url = std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(&url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(url)
        }
        Ok(Err(err)) => Err(format!("no external postgres at {url}: {err}")),
        Err(_) => Err(format!("no answer from an external postgres at {url}")),
    }
}

#[tokio::test]
async fn a_throwaway_postgres_accepts_a_query_and_its_data_dir_is_gone_after_drop() {
    let server = PostgresServer::start_throwaway().unwrap();
    let dir = server.dir().unwrap().to_owned();
    let pid = server.pid().unwrap();
    assert!(server.is_throwaway());
    assert!(dir.join("data").join("PG_VERSION").exists());

    let mut conn = PgConnection::connect(server.admin_url()).await.unwrap();
    let answer: i32 = sqlx::query_scalar("SELECT 41 + 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(answer, 42);
    conn.close().await.unwrap();
    drop(server);

    assert!(!dir.exists(), "{} is still there", dir.display());
    assert!(
        wait_until_gone(pid, Duration::ZERO),
        "postgres {pid} still runs"
    );
}

#[tokio::test]
async fn two_test_databases_on_one_server_are_isolated_and_each_is_dropped_on_drop() {
    let first = test_database().await.unwrap();
    let second = test_database().await.unwrap();
    assert_ne!(first.name(), second.name());
    assert!(
        first
            .name()
            .starts_with(&format!("stopflow_t_{}_", std::process::id()))
    );

    let mut in_first = PgConnection::connect(first.url()).await.unwrap();
    sqlx::query("CREATE TABLE only_in_first (x int)")
        .execute(&mut in_first)
        .await
        .unwrap();
    let mut in_second = PgConnection::connect(second.url()).await.unwrap();
    let seen: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_first'")
            .fetch_one(&mut in_second)
            .await
            .unwrap();
    assert_eq!(seen, 0);
    assert_eq!(current_database(second.url()).await, second.name());

    // The connections stay open: drop must force them out.
    let names = [first.name().to_owned(), second.name().to_owned()];
    drop(first);
    drop(second);
    let admin_url = shared_server().unwrap().admin_url();
    for name in names {
        assert!(
            !database_exists(admin_url, &name).await,
            "{name} survived its drop"
        );
    }
}

#[test]
fn a_test_database_dropped_outside_any_runtime_is_still_dropped() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let database = runtime.block_on(test_database()).unwrap();
    let name = database.name().to_owned();

    drop(database);

    let admin_url = shared_server().unwrap().admin_url();
    assert!(!runtime.block_on(database_exists(admin_url, &name)));
}

#[tokio::test]
async fn an_external_server_given_by_url_serves_test_databases() {
    let url = match reachable_external_url().await {
        Ok(url) => url,
        Err(why) => return eprintln!("skipped: {why}"),
    };
    let server = PostgresServer::external(&url).unwrap();
    assert!(!server.is_throwaway());
    assert_eq!(server.admin_url(), url);

    let database = TestDatabase::create(&server).await.unwrap();
    let name = database.name().to_owned();
    assert_eq!(current_database(database.url()).await, name);
    drop(database);

    assert!(
        !database_exists(&url, &name).await,
        "{name} survived its drop"
    );
}

#[tokio::test]
async fn the_sweep_drops_a_database_whose_creator_died_and_keeps_a_live_one() {
    let url = match reachable_external_url().await {
        Ok(url) => url,
        Err(why) => return eprintln!("skipped: {why}"),
    };
    let server = PostgresServer::external(&url).unwrap();
    let live = TestDatabase::create(&server).await.unwrap();

    // Forge a leftover: the owner record of our own database, moved to a dead pid.
    let dead_pid = dead_pid();
    let mut admin = PgConnection::connect(&url).await.unwrap();
    let record: String = sqlx::query_scalar(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
    )
    .bind(live.name())
    .fetch_one(&mut admin)
    .await
    .unwrap();
    let forged = record.replace(
        &format!("pid={}", std::process::id()),
        &format!("pid={dead_pid}"),
    );
    assert_ne!(forged, record);
    let leftover = format!("stopflow_t_{dead_pid}_{:x}", rand_suffix());
    for statement in [
        format!("CREATE DATABASE \"{leftover}\""),
        format!("COMMENT ON DATABASE \"{leftover}\" IS '{forged}'"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut admin)
            .await
            .unwrap();
    }

    let dropped = sweep::sweep_databases(&server).await.unwrap();

    assert!(dropped.contains(&leftover), "dropped: {dropped:?}");
    assert!(!dropped.iter().any(|name| name == live.name()));
    assert!(!database_exists(&url, &leftover).await);
    assert!(database_exists(&url, live.name()).await);
}

/// Runs only as a re-executed copy: owns a throwaway server until it is killed.
#[test]
fn helper_owning_a_throwaway_postgres() {
    if std::env::var(ROLE).as_deref() != Ok("postgres-owner") {
        return;
    }
    let server = PostgresServer::start_throwaway().unwrap();
    println!(
        "postgres pid={} dir={}",
        server.pid().unwrap(),
        server.dir().unwrap().display()
    );
    loop {
        std::thread::park();
    }
}

#[tokio::test]
async fn a_throwaway_postgres_dies_with_its_owner_and_a_later_sweep_removes_its_dir() {
    // Pins: a SIGKILLed owner's postgres left its System V segment and its POSIX dynamic
    // shared memory (/dev/shm/PostgreSQL.*) behind, which nothing ever removed.
    let mut owner = tokio::process::Command::new(std::env::current_exe().unwrap());
    owner
        .args(["--exact", "helper_owning_a_throwaway_postgres"])
        .args(["--nocapture", "--test-threads=1"])
        .env(ROLE, "postgres-owner");
    // libtest prints "test <name> ... " without a newline before the helper's own output.
    let (mut owner, line) =
        spawn_until_line(owner, |line| line.contains("postgres pid="), DEADLINE)
            .await
            .unwrap();
    let (_, report) = line.split_once("postgres pid=").unwrap();
    let (pid, dir) = report.split_once(" dir=").unwrap();
    let (pid, dir): (u32, PathBuf) = (pid.parse().unwrap(), dir.into());
    let segment = sysv_segment(&dir);
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    // The server's dir may itself be in /dev/shm (the memory root): only what is outside
    // it would outlive the sweep.
    let outside: Vec<&str> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| path.starts_with("/dev/shm/") && !Path::new(path).starts_with(&dir))
        .collect();
    assert!(
        maps.contains("pg_dynshmem") && outside.is_empty(),
        "dynamic shared memory outside the server's dir:\n{maps}"
    );

    owner.signal(Signal::SIGKILL);
    owner.wait_exit(DEADLINE).await.unwrap();

    assert!(
        wait_until_gone(pid, DEADLINE),
        "postgres {pid} outlived its owner"
    );
    assert!(dir.exists(), "a killed owner cannot remove its dir");
    // Another process starting meanwhile may sweep it first; either way it must be gone.
    let removed = sweep::sweep_leftovers();
    assert!(
        !dir.exists(),
        "{} survived the sweep (removed: {removed:?})",
        dir.display()
    );
    assert!(
        !sysv_segments().contains(&segment),
        "shared memory segment {segment} survived the sweep"
    );
}

/// The System V segment a server's `postmaster.pid` names (line 7: "<key> <shmid>").
fn sysv_segment(dir: &std::path::Path) -> i64 {
    let lock = std::fs::read_to_string(dir.join("data").join("postmaster.pid")).unwrap();
    let line = lock.lines().nth(6).unwrap_or_default().to_owned();
    line.split_whitespace()
        .nth(1)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no segment in postmaster.pid:\n{lock}"))
}

/// The ids of every System V shared memory segment (what `ipcs -m` lists).
fn sysv_segments() -> Vec<i64> {
    std::fs::read_to_string("/proc/sysvipc/shm")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

/// Runs only as a re-executed copy: a throwaway server under the `TMPDIR` it was given.
#[tokio::test]
async fn helper_using_a_throwaway_postgres_under_tmpdir() {
    if std::env::var(ROLE).as_deref() != Ok("postgres-under-tmpdir") {
        return;
    }
    let server = PostgresServer::start_throwaway().unwrap();
    let dir = server.dir().unwrap().to_owned();
    let mut conn = PgConnection::connect(server.admin_url()).await.unwrap();
    let answer: i32 = sqlx::query_scalar("SELECT 41 + 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(answer, 42);
    conn.close().await.unwrap();
    drop(server);
    assert!(!dir.exists(), "{} is still there", dir.display());
    println!("served from dir={}", dir.display());
}

#[tokio::test]
async fn a_throwaway_postgres_works_under_a_tmpdir_the_postgres_user_cannot_enter() {
    // Pins: with TMPDIR a root-owned 0700 folder (what `mktemp -d` makes), every throwaway
    // postgres failed with "spawn /usr/local/bin/initdb: Permission denied".
    use std::os::unix::fs::PermissionsExt;
    // The premise: the server runs as another user than ours (as root, the harness runs
    // it as `postgres`); otherwise a 0700 folder of ours is one it can enter.
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root, which runs the throwaway server as the postgres user"
    );
    let tmpdir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmpdir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut helper = tokio::process::Command::new(std::env::current_exe().unwrap());
    helper
        .args(["--exact", "helper_using_a_throwaway_postgres_under_tmpdir"])
        .args(["--nocapture", "--test-threads=1"])
        .env(ROLE, "postgres-under-tmpdir")
        .env("TMPDIR", tmpdir.path())
        .kill_on_drop(true);
    let output = tokio::time::timeout(DEADLINE, helper.output())
        .await
        .expect("the helper hangs")
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    let dir = text
        .split_once("served from dir=")
        .and_then(|(_, rest)| rest.lines().next())
        .unwrap_or_else(|| panic!("the helper named no dir:\n{text}"));
    assert!(!std::path::Path::new(dir).exists(), "{dir} is still there");
    let left: Vec<_> = std::fs::read_dir(tmpdir.path()).unwrap().collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
}

/// The pid of a process that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn rand_suffix() -> u64 {
    rand::random::<u64>() >> 16
}

#[test]
fn a_throwaway_server_keeps_its_files_in_memory_when_dev_shm_is_a_tmpfs_with_room() {
    // Pins: with its files on ext4, creating and dropping a database per run took over
    // half of the machine's CPU at 16 runs at once (ext4 scans its recently deleted
    // inodes on every file created).
    let server = PostgresServer::start_throwaway().unwrap();
    let dir = server.dir().unwrap();
    let shm = nix::sys::statfs::statfs("/dev/shm").ok();
    let memory = shm.is_some_and(|s| {
        s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC
            && s.blocks_available() * s.block_size() as u64 >= 2 << 30
    });
    assert_eq!(
        dir.starts_with("/dev/shm"),
        memory,
        "{} (a tmpfs /dev/shm with room: {memory})",
        dir.display()
    );
}
