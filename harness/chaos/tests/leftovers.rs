//! What a run could leave behind, checked for real: `chaos run` (or one stack) against
//! shared servers (Postgres at `DATABASE_URL`, a Redis at `REDIS_URL`, a
//! Toxiproxy-compatible proxy at `TOXIPROXY_URL`), then nothing of it may remain:
//! processes, temp folders, unix sockets, shared memory segments, databases, keys, proxies.
//!
//! The Redis and the proxy are this test's own, so everything on them is the run's; on the
//! machine's Postgres, and among processes, temp folders, sockets and segments, the run's
//! are told apart by its pid and its `TMPDIR` (a folder of the test's own). The test process
//! is a child subreaper, so whatever the run leaves running is reparented to it, not lost.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fault_proxy::client::Client;
use fault_proxy::model::NewProxy;
use infra::process::wait_until_gone;
use infra::redis::RedisServer;
use nix::sys::signal::Signal;

mod support;
use support::{ExternalProxy, dead_pid};

/// Hang guard for a process to exit; never a timing expectation.
const DEADLINE: Duration = Duration::from_secs(60);
/// Hang guard for runs to get going or to finish on a loaded machine.
const RUN_DEADLINE: Duration = Duration::from_secs(240);
/// How often a bounded wait looks again.
const POLL: Duration = Duration::from_millis(50);
/// Set in the environment of a re-executed copy of this binary to give it a helper role.
const ROLE: &str = "CHAOS_LEFTOVERS_ROLE";

/// One test at a time in this binary (under `cargo test` they share a process): each
/// counts the new processes of its process as its run's.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    let guard = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    nix::sys::prctl::set_child_subreaper(true).expect("become a child subreaper");
    guard
}

// ---------------------------------------------------------------------------------------
// The shared servers.

/// The servers runs share: the machine's Postgres (or `DATABASE_URL`), and a Redis and a
/// fault proxy of this test's own.
struct Shared {
    proxy: ExternalProxy,
    redis: RedisServer,
    database_url: String,
    runtime: tokio::runtime::Runtime,
}

impl Shared {
    fn start(dir: &Path) -> Shared {
        let database_url = std::env::var("DATABASE_URL")
            .ok()
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        Shared {
            proxy: ExternalProxy::start(dir),
            redis: RedisServer::start_throwaway().unwrap(),
            database_url,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    /// Points a command at the shared servers.
    fn env<'c>(&self, command: &'c mut Command, database: bool) -> &'c mut Command {
        if database {
            command.env("DATABASE_URL", &self.database_url);
        } else {
            command.env_remove("DATABASE_URL");
        }
        command
            .env("REDIS_URL", self.redis.url())
            .env("TOXIPROXY_URL", &self.proxy.url)
    }

    fn keys(&self) -> BTreeSet<String> {
        self.runtime.block_on(async {
            let client = redis::Client::open(self.redis.url()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            redis::cmd("KEYS")
                .arg("*")
                .query_async::<Vec<String>>(&mut conn)
                .await
                .unwrap()
                .into_iter()
                .collect()
        })
    }

    fn proxies(&self) -> BTreeSet<String> {
        let client = Client::new(self.proxy.url.clone());
        let proxies = self.runtime.block_on(client.proxies()).unwrap();
        proxies.into_keys().collect()
    }

    /// Test databases of process `pid` on the shared Postgres.
    fn databases_of(&self, pid: u32) -> Vec<String> {
        use sqlx::Connection;
        self.runtime.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&self.database_url)
                .await
                .unwrap_or_else(|err| panic!("no Postgres at {}: {err}", self.database_url));
            let names =
                sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE $1")
                    .bind(format!("stopflow\\_t\\_{pid}\\_%"))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
            let _ = conn.close().await;
            names
        })
    }
}

// ---------------------------------------------------------------------------------------
// Processes, segments and sockets, from /proc.

/// A process, told apart from a later one with the same pid by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Proc {
    pid: u32,
    start: u64,
}

struct Stat {
    ppid: u32,
    state: char,
    start: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; the fields after its ')' are fixed.
    let mut fields = text[text.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let start = fields.nth(22 - 5)?.parse().ok()?;
    Some(Stat { ppid, state, start })
}

fn pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect()
}

/// Whether `process` still runs (a zombie has exited).
fn alive(process: Proc) -> bool {
    stat(process.pid).is_some_and(|s| s.start == process.start && !matches!(s.state, 'Z' | 'X'))
}

/// The live descendants of `root`.
fn descendants(root: u32) -> BTreeSet<Proc> {
    let table: Vec<(u32, Stat)> = pids()
        .into_iter()
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .collect();
    let mut found = BTreeSet::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for (pid, s) in &table {
            if s.ppid == parent && !matches!(s.state, 'Z' | 'X') {
                found.insert(Proc {
                    pid: *pid,
                    start: s.start,
                });
                parents.push(*pid);
            }
        }
    }
    found
}

fn cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
        .unwrap_or_default()
}

/// Whether `text` names a temp folder of process `pid`: `stopflow-<kind>-<pid>-...`.
fn names_dir_of(text: &str, pid: u32) -> bool {
    let tail = format!("-{pid}-");
    text.match_indices("stopflow-").any(|(at, prefix)| {
        let rest = &text[at + prefix.len()..];
        let kind = rest.bytes().take_while(u8::is_ascii_lowercase).count();
        kind > 0 && rest[kind..].starts_with(&tail)
    })
}

/// Live processes working in `dir` or naming it, or naming a temp folder of `pid`.
fn processes_naming(dir: &Path, pid: u32) -> BTreeSet<Proc> {
    let dir_text = dir.to_string_lossy().into_owned();
    pids()
        .into_iter()
        .filter(|&p| p != std::process::id())
        .filter_map(|p| {
            let s = stat(p).filter(|s| !matches!(s.state, 'Z' | 'X'))?;
            let line = cmdline(p);
            let cwd = fs::read_link(format!("/proc/{p}/cwd")).unwrap_or_default();
            let names = line.contains(&dir_text)
                || names_dir_of(&line, pid)
                || cwd.starts_with(dir)
                || names_dir_of(&cwd.to_string_lossy(), pid);
            names.then_some(Proc {
                pid: p,
                start: s.start,
            })
        })
        .collect()
}

/// System V shared memory segments (`ipcs -m`): (id, owner uid, creator pid).
fn segments() -> Vec<(i64, u32, u32)> {
    fs::read_to_string("/proc/sysvipc/shm")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            Some((
                f.get(1)?.parse().ok()?,
                f.get(7)?.parse().ok()?,
                f.get(4)?.parse().ok()?,
            ))
        })
        .collect()
}

/// Paths of the unix sockets bound on the machine.
fn unix_sockets() -> BTreeSet<String> {
    fs::read_to_string("/proc/net/unix")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(7).map(str::to_owned))
        .filter(|path| path.starts_with('/'))
        .collect()
}

fn postgres_uid() -> Option<u32> {
    nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .map(|user| user.uid.as_raw())
}

// ---------------------------------------------------------------------------------------
// A run, and what it leaves.

/// A process under watch (`chaos`, or a helper that runs a stack), with a `TMPDIR` of its
/// own; every process seen below it is remembered.
struct Run {
    child: Child,
    pid: u32,
    tmpdir: PathBuf,
    log: PathBuf,
    seen: BTreeSet<Proc>,
    /// POSIX shared memory (`/dev/shm/...`) the processes below it had mapped.
    shm_files: BTreeSet<PathBuf>,
    status: Option<ExitStatus>,
}

/// A new folder for a run's `TMPDIR`, as `mktemp -d` makes it: the postgres user cannot
/// enter it.
fn new_tmpdir(dir: &Path) -> PathBuf {
    tempfile::Builder::new()
        .prefix("tmpdir-")
        .tempdir_in(dir)
        .unwrap()
        .keep()
}

impl Run {
    /// `chaos <args>` from the workspace root with `TMPDIR=tmpdir`, reports in
    /// `dir/reports-<n>`; on the shared Postgres if `database`, else on its own.
    fn chaos(dir: &Path, tmpdir: &Path, shared: &Shared, database: bool, args: &[&str]) -> Run {
        let out = dir.join(format!("reports-{}", rand::random::<u32>()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_chaos"));
        command
            .current_dir(support::root())
            .env("CI", "1")
            .args(args)
            .arg("--out")
            .arg(&out);
        shared.env(&mut command, database);
        Run::spawn(dir, tmpdir, command)
    }

    fn spawn(dir: &Path, tmpdir: &Path, mut command: Command) -> Run {
        let log = dir.join(format!("run-{}.log", rand::random::<u32>()));
        let file = fs::File::create(&log).unwrap();
        let child = command
            .env("TMPDIR", tmpdir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Run {
            pid: child.id(),
            child,
            tmpdir: tmpdir.to_owned(),
            log,
            seen: BTreeSet::new(),
            shm_files: BTreeSet::new(),
            status: None,
        }
    }

    fn output(&self) -> String {
        format!(
            "output of {} (exit {:?}):\n{}",
            self.pid,
            self.status,
            fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    fn watch(&mut self) {
        for process in descendants(self.pid) {
            if self.seen.insert(process) {
                let maps = fs::read_to_string(format!("/proc/{}/maps", process.pid));
                self.shm_files.extend(
                    maps.unwrap_or_default()
                        .lines()
                        .filter_map(|line| line.split_whitespace().nth(5))
                        .filter(|path| path.starts_with("/dev/shm/"))
                        .map(PathBuf::from),
                );
            }
        }
    }

    /// Waits for the exit, remembering the processes below it meanwhile.
    fn wait(&mut self, deadline: Duration) -> ExitStatus {
        let until = Instant::now() + deadline;
        loop {
            self.watch();
            if let Some(status) = self.child.try_wait().unwrap() {
                self.status = Some(status);
                return status;
            }
            assert!(
                Instant::now() < until,
                "{} did not exit within {deadline:?}; {}",
                self.pid,
                self.output()
            );
            wait_until_gone(self.pid, POLL);
        }
    }

    /// Waits until `ready` holds, while it runs.
    fn wait_until(&mut self, what: &str, deadline: Duration, mut ready: impl FnMut(&Run) -> bool) {
        let until = Instant::now() + deadline;
        loop {
            self.watch();
            if ready(self) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                self.status = Some(status);
                panic!("it exited before {what}; {}", self.output());
            }
            assert!(
                Instant::now() < until,
                "no {what} within {deadline:?}; {}",
                self.output()
            );
            std::thread::sleep(POLL);
        }
    }

    fn signal(&self, signal: Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), signal).unwrap();
    }

    /// Runs under way with a bot: runtimes below it with a `mock-bot` child.
    fn runs_with_a_bot(&self) -> usize {
        descendants(self.pid)
            .iter()
            .filter(|p| cmdline(p.pid).contains("mock-bot"))
            .filter_map(|p| stat(p.pid).map(|s| s.ppid))
            .collect::<BTreeSet<u32>>()
            .len()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What could be left behind, before the runs.
struct Snapshot {
    processes: BTreeSet<Proc>,
    segments: BTreeSet<i64>,
    sockets: BTreeSet<String>,
    keys: BTreeSet<String>,
    proxies: BTreeSet<String>,
}

impl Snapshot {
    fn take(shared: &Shared) -> Snapshot {
        Snapshot {
            processes: descendants(std::process::id()),
            segments: segments().into_iter().map(|(id, _, _)| id).collect(),
            sockets: unix_sockets(),
            keys: shared.keys(),
            proxies: shared.proxies(),
        }
    }

    /// Panics naming everything `runs` left: processes (once given a bounded while to go
    /// after their parent's exit), temp folders, unix sockets, shared memory segments,
    /// databases, keys and proxies.
    fn assert_nothing_left(&self, shared: &Shared, runs: &[&Run]) {
        let mut left = Vec::new();

        let mut suspects: BTreeSet<Proc> = descendants(std::process::id())
            .difference(&self.processes)
            .copied()
            .collect();
        for run in runs {
            suspects.extend(run.seen.iter().copied());
            suspects.extend(processes_naming(&run.tmpdir, run.pid));
        }
        let run_pids: BTreeSet<u32> = suspects
            .iter()
            .map(|p| p.pid)
            .chain(runs.iter().map(|run| run.pid))
            .collect();
        for process in suspects.into_iter().filter(|p| alive(*p)) {
            let line = cmdline(process.pid);
            if !wait_until_gone(process.pid, DEADLINE) && alive(process) {
                left.push(format!("process {}: {line}", process.pid));
            }
        }

        for run in runs {
            for entry in fs::read_dir(&run.tmpdir).unwrap().flatten() {
                left.push(format!("in its TMPDIR: {}", entry.path().display()));
            }
            for file in run.shm_files.iter().filter(|file| file.exists()) {
                left.push(format!("POSIX shared memory {}", file.display()));
            }
            let mut roots = vec![
                std::env::temp_dir(),
                "/tmp".into(),
                "/var/tmp".into(),
                "/dev/shm".into(),
            ];
            roots.dedup();
            for root in roots {
                for entry in fs::read_dir(&root).into_iter().flatten().flatten() {
                    if names_dir_of(&entry.file_name().to_string_lossy(), run.pid) {
                        left.push(format!("temp folder {}", entry.path().display()));
                    }
                }
            }
            for name in shared.databases_of(run.pid) {
                left.push(format!("database {name}"));
            }
        }

        for path in unix_sockets().difference(&self.sockets) {
            if runs
                .iter()
                .any(|run| Path::new(path).starts_with(&run.tmpdir) || names_dir_of(path, run.pid))
            {
                left.push(format!("unix socket {path}"));
            }
        }

        let postgres = postgres_uid();
        for (id, uid, creator) in segments() {
            if !self.segments.contains(&id) && Some(uid) == postgres && run_pids.contains(&creator)
            {
                left.push(format!("shared memory segment {id} (created by {creator})"));
            }
        }

        for key in shared.keys().difference(&self.keys) {
            left.push(format!("Redis key {key}"));
        }
        for proxy in shared.proxies().difference(&self.proxies) {
            left.push(format!("proxy {proxy}"));
        }

        assert!(
            left.is_empty(),
            "left behind:\n  {}\n{}",
            left.join("\n  "),
            runs.iter()
                .map(|run| run.output())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

// ---------------------------------------------------------------------------------------
// The tests.

#[test]
fn a_passing_run_on_shared_servers_leaves_nothing_behind() {
    // Pins: with REDIS_URL every run, even a passing one, left its meetings' current_uid
    // keys on the shared Redis.
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::start(dir.path());
    let snapshot = Snapshot::take(&shared);

    let mut run = Run::chaos(
        dir.path(),
        &new_tmpdir(dir.path()),
        &shared,
        true,
        &[
            "run",
            "scenarios/happy-path.toml",
            "--profile",
            "legacy,fixed",
            "--jobs",
            "1",
        ],
    );
    let status = run.wait(RUN_DEADLINE);

    assert_eq!(status.code(), Some(0), "{}", run.output());
    snapshot.assert_nothing_left(&shared, &[&run]);
}

/// Runs only as a re-executed copy: one stack on the shared servers of its environment,
/// with one meeting, then dropped.
#[tokio::test]
async fn helper_running_a_stack_with_a_meeting() {
    if std::env::var(ROLE).as_deref() != Ok("stack") {
        return;
    }
    let log_dir = PathBuf::from(std::env::var("CHAOS_LEFTOVERS_LOGS").unwrap());
    let stack = chaos::stack::Stack::start(chaos::stack::StackConfig {
        profile: "legacy".to_owned(),
        service: chaos::scenario::ServiceSettings::default(),
        bot_env: Vec::new(),
        log_dir,
        links: None,
    })
    .await
    .unwrap();
    let native: String = (0..10)
        .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
        .collect();
    let native = format!("{}-{}-{}", &native[..3], &native[3..7], &native[7..]);
    let answer = stack
        .http
        .post(stack.url("/bots"))
        .header("X-API-Key", "stopflow-dev-token")
        .json(&serde_json::json!({"platform": "google_meet", "native_meeting_id": native}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 201, "{:?}", answer.text().await);
    let key = protocol::current_uid_key(protocol::Platform::GoogleMeet, &native);
    let client = redis::Client::open(stack.redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(exists, "the bot-manager wrote no {key}");

    drop(stack);
    println!("dropped the stack that wrote {key}");
}

#[test]
fn a_stack_on_a_shared_redis_removes_its_meetings_keys_when_dropped() {
    // Pins: a stack on a shared REDIS_URL left `bm:meeting:{platform}:{native}:current_uid`
    // of its meetings behind after its teardown (a day's TTL).
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::start(dir.path());
    let snapshot = Snapshot::take(&shared);

    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "helper_running_a_stack_with_a_meeting"])
        .args(["--nocapture", "--test-threads=1"])
        .env(ROLE, "stack")
        .env("CHAOS_LEFTOVERS_LOGS", dir.path().join("logs"));
    shared.env(&mut command, true);
    let tmpdir = new_tmpdir(dir.path());
    let mut run = Run::spawn(dir.path(), &tmpdir, command);
    let status = run.wait(RUN_DEADLINE);

    assert!(status.success(), "{}", run.output());
    assert!(
        run.output().contains("dropped the stack that wrote"),
        "{}",
        run.output()
    );
    snapshot.assert_nothing_left(&shared, &[&run]);
}

#[test]
fn the_proxy_sweep_removes_the_proxies_of_dead_runs_and_keeps_every_other() {
    // Pins: with TOXIPROXY_URL a killed run's proxies stayed on the shared server forever,
    // each with a live listener.
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let proxy = ExternalProxy::start(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = Client::new(proxy.url.clone());
    let dead = dead_pid();
    let live = infra::process::ChildGuard::from_std(
        Command::new("sleep").arg("1000").spawn().unwrap(),
        "sleep",
    );
    let tag = infra::sweep::host_tag();
    let other_host: String = tag
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    let prefix = chaos::links::proxy_prefix;
    let dead_run = [
        format!("{}service:redis", prefix(dead)),
        format!("{}bot:m1:callbacks", prefix(dead)),
    ];
    let kept = [
        format!("{}service:redis", prefix(live.id())),
        format!("{}service:redis", prefix(std::process::id())),
        format!("stopflow-{dead}-{other_host}0badcafe-service:redis"),
        format!("stopflow-{dead}-0badcafe-service:redis"),
        "someone-else".to_owned(),
    ];
    for name in dead_run.iter().chain(&kept) {
        runtime
            .block_on(client.create_proxy(&NewProxy::new(name, "127.0.0.1:0", "127.0.0.1:9")))
            .unwrap();
    }

    let removed = runtime
        .block_on(chaos::links::sweep_external(&proxy.url))
        .unwrap();

    let left = runtime.block_on(client.proxies()).unwrap();
    drop(live);
    assert_eq!(
        removed.into_iter().collect::<BTreeSet<_>>(),
        dead_run.iter().cloned().collect::<BTreeSet<_>>()
    );
    assert_eq!(
        left.into_keys().collect::<BTreeSet<_>>(),
        kept.iter().cloned().collect::<BTreeSet<_>>()
    );
}

#[test]
fn a_runs_links_leave_a_shared_proxy_when_they_are_dropped_mid_start() {
    // Pins: a SIGTERM while a run's stack was starting dropped its links unawaited, and
    // service:postgres, service:redis and service:runtime stayed on the shared proxy (CI,
    // sigterm_mid_catalogue_returns_promptly_and_leaves_nothing_behind).
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let proxy = ExternalProxy::start(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = Client::new(proxy.url.clone());
    let ours = |names: &BTreeSet<String>| {
        names
            .iter()
            .filter(|n| n.starts_with(&format!("stopflow-{}-", std::process::id())))
            .cloned()
            .collect::<Vec<_>>()
    };
    let before: BTreeSet<String> = runtime
        .block_on(client.proxies())
        .unwrap()
        .into_keys()
        .collect();

    // A start cut short: its future, holding the links it made, dropped half-way.
    runtime.block_on(async {
        let start = async {
            let links = chaos::links::Links::at(&proxy.url).await.unwrap();
            links
                .create("service:postgres", "127.0.0.1:9")
                .await
                .unwrap();
            links.create("service:redis", "127.0.0.1:9").await.unwrap();
            std::future::pending::<()>().await;
            drop(links);
        };
        let made = async {
            loop {
                let names: BTreeSet<String> = client.proxies().await.unwrap().into_keys().collect();
                if ours(&names).len() == 2 {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        };
        let made = tokio::time::timeout(std::time::Duration::from_secs(30), made);
        tokio::select! {
            () = start => unreachable!("the start never ends by itself"),
            made = made => made.expect("the start made its two links within 30 s"),
        }
    });

    let after: BTreeSet<String> = runtime
        .block_on(client.proxies())
        .unwrap()
        .into_keys()
        .collect();
    assert!(ours(&after).is_empty(), "left behind: {after:?}");
    assert_eq!(after, before, "only the run's own proxies go");
}

/// SIGKILLs a run once its stack has a bot, then lets another run start and finish, and
/// checks that its start swept everything the killed one left (but for the keys on the
/// shared Redis, which the killed run's stack could not remove and which expire).
fn a_killed_run_is_swept_by_the_next_start(database: bool) {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::start(dir.path());
    let mut snapshot = Snapshot::take(&shared);

    let tmpdir = new_tmpdir(dir.path());
    let mut killed = Run::chaos(
        dir.path(),
        &tmpdir,
        &shared,
        database,
        &[
            "run",
            "scenarios/h1-leave-hangs.toml",
            "--profile",
            "legacy",
        ],
    );
    killed.wait_until("a bot running", RUN_DEADLINE, |run| {
        run.runs_with_a_bot() >= 1
    });
    killed.signal(Signal::SIGKILL);
    killed.wait(DEADLINE);
    snapshot.keys.extend(shared.keys());

    // The same TMPDIR: the next start looks where the killed run put its folders.
    let mut next = Run::chaos(
        dir.path(),
        &tmpdir,
        &shared,
        database,
        &["run", "scenarios/happy-path.toml", "--profile", "legacy"],
    );
    let status = next.wait(RUN_DEADLINE);

    assert_eq!(status.code(), Some(0), "{}", next.output());
    snapshot.assert_nothing_left(&shared, &[&killed, &next]);
}

#[test]
fn a_run_killed_with_sigkill_on_shared_servers_is_swept_by_the_next_start() {
    // Pins: a SIGKILLed run's proxies on the shared Toxiproxy were never removed (its
    // database, stack folder and processes must go too).
    a_killed_run_is_swept_by_the_next_start(true);
}

#[test]
fn a_run_killed_with_sigkill_with_its_own_postgres_is_swept_by_the_next_start() {
    // Pins: a SIGKILLed run's throwaway postgres left its dynamic shared memory in
    // /dev/shm forever and, while its backends lingered, its System V segment.
    a_killed_run_is_swept_by_the_next_start(false);
}

/// Interrupts the catalogue once two runs are under way (a bot each: their meetings, keys
/// and proxies exist); it must exit 2, promptly (60 s is only a hang guard), having removed
/// everything itself.
fn a_signal_mid_catalogue_leaves_nothing_behind(signal: Signal) {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let shared = Shared::start(dir.path());
    let snapshot = Snapshot::take(&shared);

    let mut run = Run::chaos(
        dir.path(),
        &new_tmpdir(dir.path()),
        &shared,
        true,
        &[
            "run",
            "scenarios/",
            "--profile",
            "legacy,fixed",
            "--jobs",
            "3",
        ],
    );
    run.wait_until("two runs with a bot", RUN_DEADLINE, |run| {
        run.runs_with_a_bot() >= 2
    });
    let signalled = std::time::Instant::now();
    run.signal(signal);
    let status = run.wait(DEADLINE);
    // Reported, not asserted: the figure for the README.
    eprintln!("{signal} to exit: {:?}", signalled.elapsed());

    assert_eq!(status.code(), Some(2), "{}", run.output());
    snapshot.assert_nothing_left(&shared, &[&run]);
}

#[test]
fn sigterm_mid_catalogue_returns_promptly_and_leaves_nothing_behind() {
    // Pins: SIGTERM killed `chaos` outright, leaving its runs' databases, keys and proxies
    // on the shared servers.
    a_signal_mid_catalogue_leaves_nothing_behind(Signal::SIGTERM);
}

#[test]
fn sigint_mid_catalogue_returns_promptly_and_leaves_nothing_behind() {
    // Pins: Ctrl-C mid-catalogue went on starting every queued run before exiting, and
    // left the interrupted runs' keys and proxies on the shared servers.
    a_signal_mid_catalogue_leaves_nothing_behind(Signal::SIGINT);
}

#[test]
fn names_of_a_runs_temp_folders_are_told_from_others() {
    assert!(names_dir_of("/tmp/stopflow-pg-42-abc", 42));
    assert!(names_dir_of("-D /tmp/stopflow-stack-42-x/docker.sock", 42));
    assert!(!names_dir_of("/tmp/stopflow-pg-421-abc", 42));
    assert!(!names_dir_of("/tmp/stopflow-42-abc", 42));
    assert!(!names_dir_of("/tmp/other-pg-42-abc", 42));
}
