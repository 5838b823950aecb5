//! The system under test as real processes: a database and Redis of the run's own, the
//! `runtime` (Docker API over a unix socket, control API over TCP) and the
//! `bot-manager` in the requested profile, with the scenario's timers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use infra::postgres::TestDatabase;
use infra::process::ChildGuard;
use infra::redis::RedisServer;
use nix::sys::signal::Signal;
use serde_json::Value;

use crate::history::{
    FinalContainer, FinalMeeting, FinalSession, FinalState, meeting_id_from_container_name,
};
use crate::scenario::ServiceSettings;
use crate::sut::{Sut, Vars};

/// Bound on starting or stopping any process of the stack.
pub const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a supervisor waits before starting again a service that exited while
/// starting ([`Stack::start_manager`]).
pub const RESTART_BACKOFF: Duration = Duration::from_millis(250);
/// Bound on each step of forgetting the run's keys on a shared Redis: a hang guard.
const CLEANUP_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("prepare the infrastructure: {0}")]
    Infra(#[from] infra::InfraError),
    #[error("create {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("list the runtime's containers: it answered {status} {body}")]
    RuntimeListing { status: u16, body: String },
    #[error("read the runtime's address from {line:?}")]
    RuntimeAddress { line: String },
    #[error("call the runtime's {what}: {source}")]
    Runtime {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{action}: the bot-manager is not running")]
    ManagerDown { action: &'static str },
    #[error("{0} needs a throwaway Redis of the run's own, not REDIS_URL")]
    ExternalRedis(&'static str),
    #[error("connect to the run's database: {0}")]
    Database(#[source] sqlx::Error),
    #[error("read the final state: {0}")]
    Final(#[source] sqlx::Error),
    #[error("set up the links: {0}")]
    Links(#[from] crate::links::LinkError),
    #[error("route {what} through a link: cannot read host:port from {url:?}")]
    LinkUrl { what: String, url: String },
    #[error("start {sut}: {message}")]
    Adapter { sut: String, message: String },
}

/// What to start.
#[derive(Debug, Clone)]
pub struct StackConfig {
    pub profile: String,
    pub service: ServiceSettings,
    /// Environment for every bot container.
    pub bot_env: Vec<(String, String)>,
    /// Where service, runtime and bot logs go.
    pub log_dir: PathBuf,
    /// Route every link through the fault proxy (seeded); `None`: direct connections.
    pub links: Option<u64>,
}

/// What a load run (`chaos load`) sets beyond a scenario's stack: the reference
/// service's bounds, and a fault proxy of its own.
#[derive(Debug, Clone, Default)]
pub struct StackExtras {
    /// Further flags for the reference bot-manager (`--max-connections 2304`, ...).
    pub manager_args: Vec<String>,
    /// The Toxiproxy-compatible API the links go on (a `fault-proxy` process of the
    /// caller's), instead of an embedded proxy or `TOXIPROXY_URL`.
    pub links_at: Option<String>,
}

/// Everything it started goes when it is dropped: the bot-manager first, then on a shared
/// Redis (`REDIS_URL`) the keys the bot-manager wrote for the run's meetings, then the
/// runtime (and its bots), the links, a throwaway Redis, the run's database and its folder.
pub struct Stack {
    pub pool: sqlx::PgPool,
    pub http: reqwest::Client,
    pub base_url: String,
    pub runtime_url: String,
    pub log_dir: PathBuf,
    /// Where the runtime writes each container's output (`<name>.log`).
    pub bot_log_dir: PathBuf,
    manager: tokio::sync::Mutex<Option<ChildGuard>>,
    manager_args: tokio::sync::Mutex<ManagerArgs>,
    runtime: ChildGuard,
    /// The fault proxy every link goes through, when the run asked for it.
    pub links: Option<crate::links::Links>,
    service_addr: String,
    /// The collector's stand-in, for a service that does not record sessions itself.
    session_standin: Option<crate::sut::standin::SessionStandin>,
    /// Which keys the service writes (its current-uid key, if any), to remove them.
    wire: protocol::Wire,
    redis: RedisServer,
    db: TestDatabase,
    _dir: tempfile::TempDir,
}

impl Drop for Stack {
    fn drop(&mut self) {
        // The bot-manager writes the keys: it goes before them, or it could write one more.
        drop(self.manager.get_mut().take());
        if !self.redis.is_throwaway() && self.wire.current_uid_key.is_some() {
            forget_meeting_keys(self.db.url(), self.redis.url(), &self.wire);
        }
    }
}

/// Deletes from the shared Redis at `redis_url` what the bot-manager wrote there for the
/// meetings of the run's database at `database_url`: its current-uid key as `wire` names it
/// (`bm:meeting:{platform}:{native_id}:current_uid`, a day's TTL otherwise). Native ids are unique to a run, so these keys are the run's own.
/// Blocks (on a thread of its own: drop may run inside a runtime or outside one); logs a
/// failure.
fn forget_meeting_keys(database_url: &str, redis_url: &str, wire: &protocol::Wire) {
    let (database_url, redis_url) = (database_url.to_owned(), redis_url.to_owned());
    let wire = wire.clone();
    let outcome = std::thread::Builder::new()
        .name("chaos-forget-keys".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| format!("build a runtime: {err}"))?;
            runtime.block_on(delete_meeting_keys(&database_url, &redis_url, &wire))
        })
        .map_err(|err| format!("spawn a thread: {err}"))
        .and_then(|thread| {
            thread
                .join()
                .unwrap_or_else(|_| Err("the thread panicked".to_owned()))
        });
    if let Err(reason) = outcome {
        tracing::warn!("failed to remove the run's keys from the shared Redis: {reason}");
    }
}

async fn delete_meeting_keys(
    database_url: &str,
    redis_url: &str,
    wire: &protocol::Wire,
) -> Result<(), String> {
    use sqlx::Connection;
    let bounded =
        |what: &'static str| move |_| format!("{what}: no answer within {CLEANUP_DEADLINE:?}");
    let mut conn =
        tokio::time::timeout(CLEANUP_DEADLINE, sqlx::PgConnection::connect(database_url))
            .await
            .map_err(bounded("connect to the run's database"))?
            .map_err(|err| format!("connect to the run's database: {err}"))?;
    let meetings: Result<Vec<(i64, String, String)>, sqlx::Error> = tokio::time::timeout(
        CLEANUP_DEADLINE,
        sqlx::query_as(
            "SELECT id::bigint, platform, platform_specific_id FROM meetings \
             WHERE platform_specific_id IS NOT NULL",
        )
        .fetch_all(&mut conn),
    )
    .await
    .map_err(bounded("list the run's meetings"))?;
    let _ = conn.close().await;
    let meetings = match meetings {
        Ok(meetings) => meetings,
        // The bot-manager never got to create its tables: it wrote no key either.
        Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some("42P01") => return Ok(()),
        Err(err) => return Err(format!("list the run's meetings: {err}")),
    };
    let keys: Vec<String> = meetings
        .iter()
        .filter_map(|(id, platform, native)| {
            let platform = platform.parse::<protocol::Platform>().ok()?;
            wire.current_uid_key(*id, platform, native)
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    let client =
        redis::Client::open(redis_url).map_err(|err| format!("read the Redis URL: {err}"))?;
    let mut redis =
        tokio::time::timeout(CLEANUP_DEADLINE, client.get_multiplexed_async_connection())
            .await
            .map_err(bounded("connect to the shared Redis"))?
            .map_err(|err| format!("connect to the shared Redis: {err}"))?;
    tokio::time::timeout(
        CLEANUP_DEADLINE,
        redis::cmd("DEL").arg(&keys).query_async::<i64>(&mut redis),
    )
    .await
    .map_err(bounded("delete the run's keys"))?
    .map_err(|err| format!("delete the run's keys: {err}"))?;
    Ok(())
}

/// A further bot-manager instance of the run ([`Stack::start_extra_manager`]); dropping it
/// ends the process.
pub struct ExtraManager {
    pub base_url: String,
    pub instance: String,
    process: ChildGuard,
}

impl ExtraManager {
    /// SIGTERM; answers how it exited.
    pub async fn stop(mut self) -> Result<std::process::ExitStatus, StackError> {
        self.process.signal(Signal::SIGTERM);
        Ok(self.process.wait_exit(START_DEADLINE).await?)
    }
}

/// Whose environment an adapter's command runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CommandEnv {
    Service,
    Inherited,
}

struct ManagerArgs {
    /// What to start: the native reference, or a service an adapter describes.
    sut: std::sync::Arc<Sut>,
    /// What the adapter's templates are given (without `port`).
    vars: Vars,
    port: u16,
    profile: String,
    database_url: String,
    redis_url: String,
    docker_host: String,
    service: ServiceSettings,
    log_dir: PathBuf,
    starts: u32,
    /// [`StackExtras::manager_args`].
    extra_args: Vec<String>,
}

/// `url` routed through a new link.
async fn through(links: &crate::links::Links, link: &str, url: &str) -> Result<String, StackError> {
    let bad = || StackError::LinkUrl {
        what: link.to_owned(),
        url: url.to_owned(),
    };
    let upstream = crate::links::authority(url).ok_or_else(bad)?;
    let listen = links.create(link, upstream).await?;
    crate::links::with_authority(url, &listen).ok_or_else(bad)
}

fn create_dir(path: &Path) -> Result<(), StackError> {
    std::fs::create_dir_all(path).map_err(|source| StackError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Whether what `log` gained past `from` says the listening port was taken (Rust's,
/// Python's and Go's wordings all contain this).
fn lost_port(log: &Path, from: u64) -> bool {
    use std::io::{Read, Seek};
    let mut text = String::new();
    std::fs::File::open(log)
        .and_then(|mut f| {
            f.seek(std::io::SeekFrom::Start(from))?;
            f.take(1 << 20).read_to_string(&mut text)
        })
        .is_ok_and(|_| text.to_ascii_lowercase().contains("address already in use"))
}

fn log_file(path: &Path) -> Result<std::fs::File, StackError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| StackError::Io {
            path: path.to_owned(),
            source,
        })
}

impl ManagerArgs {
    /// The run's bot-manager, on the run's port.
    async fn spawn(&mut self) -> Result<ChildGuard, StackError> {
        self.starts += 1;
        self.spawn_on(self.port, None, "service.log").await
    }

    /// The first start. The port was free when picked, but another run may pick and bind
    /// the same one first (seen at 24 runs at once): then the service says so in its log,
    /// and it starts again on a new port, a few times. Restarts keep the port: bots call
    /// back to it.
    async fn spawn_first(&mut self) -> Result<ChildGuard, StackError> {
        const PORT_ATTEMPTS: u32 = 3;
        let log = self.log_dir.join("service.log");
        let mut attempt = 1;
        loop {
            let logged = std::fs::metadata(&log).map_or(0, |m| m.len());
            match self.spawn().await {
                Err(err) if attempt < PORT_ATTEMPTS && lost_port(&log, logged) => {
                    tracing::info!("the service's port {} was taken: {err}", self.port);
                    attempt += 1;
                    self.port = infra::process::free_port()?;
                }
                started => return started,
            }
        }
    }

    /// A bot-manager on `port` with the run's arguments, named `instance` when given,
    /// logging to `log_name` in the log dir.
    async fn spawn_on(
        &self,
        port: u16,
        instance: Option<&str>,
        log_name: &str,
    ) -> Result<ChildGuard, StackError> {
        if self.sut.adapter.is_some() {
            return self.spawn_adapter(port, log_name).await;
        }
        let mut cmd = tokio::process::Command::new(infra::bins::workspace_bin("bot-manager")?);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info,sqlx=warn")
            .args([
                "--profile",
                &self.profile,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["--database-url", &self.database_url])
            .args(["--redis-url", &self.redis_url])
            .args(["--docker-host", &self.docker_host])
            .args([
                "--callback-url",
                &format!("http://bot-manager:{port}/bots/internal/callback/exited"),
            ])
            .stderr(log_file(&self.log_dir.join(log_name))?);
        if let Some(instance) = instance {
            cmd.args(["--instance", instance]);
        }
        cmd.args(&self.extra_args);
        let s = &self.service;
        let timers: [(&str, Option<u64>); 9] = [
            ("--delayed-stop-ms", s.delayed_stop_ms),
            ("--stop-grace-s", s.stop_grace_s.map(u64::from)),
            ("--pre-active-window-ms", s.pre_active_window_ms),
            ("--exited-failure-stop-ms", s.exited_failure_stop_ms),
            ("--session-record-delay-ms", s.session_record_delay_ms),
            ("--current-uid-ttl-s", s.current_uid_ttl_s),
            ("--finalizer-grace-ms", s.finalizer_grace_ms),
            ("--reconcile-interval-ms", s.reconcile_interval_ms),
            ("--dependency-timeout-ms", s.dependency_timeout_ms),
        ];
        for (flag, value) in timers {
            if let Some(v) = value {
                cmd.args([flag, &v.to_string()]);
            }
        }
        let (guard, _) = infra::process::spawn_until_line(
            cmd,
            |l| l.starts_with("bot-manager listening on "),
            START_DEADLINE,
        )
        .await?;
        Ok(guard)
    }
}

impl ManagerArgs {
    fn adapter_error(&self, message: impl Into<String>) -> StackError {
        StackError::Adapter {
            sut: self.sut.name.clone(),
            message: message.into(),
        }
    }

    fn vars(&self, port: u16) -> Vars {
        let mut vars = self.vars.clone();
        vars.0.insert("port", port.to_string());
        vars.0
            .insert("callback_base", format!("http://bot-manager:{port}"));
        vars
    }

    fn expand(&self, vars: &Vars, template: &str) -> Result<String, StackError> {
        let bin = |name: &str| {
            infra::bins::workspace_bin(name)
                .map(|p| p.display().to_string())
                .map_err(|e| e.to_string())
        };
        crate::sut::expand(template, vars, &bin).map_err(|m| self.adapter_error(m))
    }

    /// One of the adapter's commands, the run's placeholders expanded. With
    /// [`CommandEnv::Service`], in the service's working directory and environment; with
    /// [`CommandEnv::Inherited`], in the user's own (an install step needs their package
    /// index, proxy and certificates, not the service's).
    fn adapter_command(
        &self,
        vars: &Vars,
        argv: &[String],
        env: CommandEnv,
    ) -> Result<tokio::process::Command, StackError> {
        let adapter = self.sut.adapter.as_ref().expect("an adapter");
        let argv: Vec<String> = argv
            .iter()
            .map(|a| self.expand(vars, a))
            .collect::<Result<_, _>>()?;
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        if env == CommandEnv::Inherited {
            return Ok(cmd);
        }
        cmd.env_clear();
        for key in ["PATH", "HOME", "LANG", "TMPDIR"] {
            if let Ok(value) = std::env::var(key) {
                cmd.env(key, value);
            }
        }
        for (key, value) in &adapter.service.env {
            cmd.env(key, self.expand(vars, value.get_ref())?);
        }
        if let Some(dir) = &adapter.service.workdir {
            cmd.current_dir(self.expand(vars, dir.get_ref())?);
        }
        Ok(cmd)
    }

    /// Runs one of the adapter's commands to the end; a failure names it, with the tail
    /// of what it printed.
    async fn run_to_end(
        &self,
        vars: &Vars,
        argv: &[String],
        env: CommandEnv,
        what: &str,
        deadline: Duration,
    ) -> Result<(), StackError> {
        let mut cmd = self.adapter_command(vars, argv, env)?;
        infra::process::die_with_parent_tokio(&mut cmd);
        let output = tokio::time::timeout(deadline, cmd.output())
            .await
            .map_err(|_| {
                self.adapter_error(format!(
                    "{what}: {argv:?} did not finish in {} s",
                    deadline.as_secs()
                ))
            })?
            .map_err(|e| self.adapter_error(format!("{what}: run {argv:?}: {e}")))?;
        if output.status.success() {
            return Ok(());
        }
        let printed = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = printed.lines().collect();
        let tail = lines[lines.len().saturating_sub(10)..].join("\n");
        Err(self.adapter_error(format!(
            "{what}: {argv:?} exited with {}: {tail}",
            output.status
        )))
    }

    /// The adapter's one-off setup (a virtual environment), when what it creates is
    /// missing; under a lock, so parallel runs wait for one setup instead of racing.
    async fn ensure_setup(&self) -> Result<(), StackError> {
        let Some(setup) = self.sut.adapter.as_ref().and_then(|a| a.setup.as_ref()) else {
            return Ok(());
        };
        let vars = self.vars(self.port);
        let creates = PathBuf::from(self.expand(&vars, setup.creates.get_ref())?);
        if creates.exists() {
            return Ok(());
        }
        let cache = crate::sut::cache_dir();
        create_dir(&cache)?;
        let lock_path = cache.join(format!("{}.setup.lock", self.sut.name));
        let file = std::fs::File::create(&lock_path).map_err(|source| StackError::Io {
            path: lock_path.clone(),
            source,
        })?;
        let lock = tokio::task::spawn_blocking(move || {
            nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        })
        .await
        .expect("the lock task runs")
        .map_err(|(_, e)| self.adapter_error(format!("lock {}: {e}", lock_path.display())))?;
        if !creates.exists() {
            eprintln!(
                "chaos: setting up {} once (creates {})",
                self.sut.name,
                creates.display()
            );
            for argv in &setup.commands {
                self.run_to_end(
                    &vars,
                    argv.get_ref(),
                    CommandEnv::Inherited,
                    "set up",
                    START_DEADLINE * 20,
                )
                .await?;
            }
            if !creates.exists() {
                return Err(self.adapter_error(format!(
                    "set up: its commands ran but {} still does not exist",
                    creates.display()
                )));
            }
        }
        drop(lock);
        Ok(())
    }

    /// Prepares the run's fresh database with the adapter's commands, once.
    async fn prepare_database(&self) -> Result<(), StackError> {
        let adapter = self.sut.adapter.as_ref().expect("an adapter");
        let vars = self.vars(self.port);
        for argv in &adapter.database.prepare {
            self.run_to_end(
                &vars,
                argv.get_ref(),
                CommandEnv::Service,
                "prepare the database",
                START_DEADLINE * 4,
            )
            .await?;
        }
        Ok(())
    }

    /// Starts the adapter's service on `port` and waits until it is ready.
    async fn spawn_adapter(&self, port: u16, log_name: &str) -> Result<ChildGuard, StackError> {
        let adapter = self.sut.adapter.as_ref().expect("an adapter");
        let vars = self.vars(port);
        let mut cmd = self.adapter_command(
            &vars,
            adapter.service.command.get_ref(),
            CommandEnv::Service,
        )?;
        let (timer_args, timer_env) = self.sut.timer_settings(&self.service);
        cmd.args(timer_args).envs(timer_env);
        cmd.stderr(log_file(&self.log_dir.join(log_name))?);
        match &adapter.service.ready {
            crate::sut::Ready::Line { line } => {
                let (guard, _) = infra::process::spawn_until_line(
                    cmd,
                    |l| l.starts_with(line.as_str()),
                    START_DEADLINE,
                )
                .await?;
                Ok(guard)
            }
            crate::sut::Ready::Http { http } => {
                infra::process::die_with_parent_tokio(&mut cmd);
                cmd.stdout(log_file(&self.log_dir.join(log_name))?);
                let child = cmd.spawn().map_err(|e| {
                    self.adapter_error(format!("spawn {:?}: {e}", cmd.as_std().get_program()))
                })?;
                let mut guard = ChildGuard::from_tokio(child, self.sut.name.clone());
                let url = format!("http://127.0.0.1:{port}{http}");
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(2))
                    .build()
                    .expect("an HTTP client without TLS builds");
                let deadline = tokio::time::Instant::now() + START_DEADLINE;
                loop {
                    if let Ok(resp) = client.get(&url).send().await
                        && resp.status().as_u16() < 500
                    {
                        return Ok(guard);
                    }
                    if let Ok(Some(status)) = guard.try_exit_status() {
                        return Err(self.adapter_error(format!(
                            "it exited ({status}) before {url} answered; see {}",
                            self.log_dir.join(log_name).display()
                        )));
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(self.adapter_error(format!(
                            "{url} did not answer within {} s; see {}",
                            START_DEADLINE.as_secs(),
                            self.log_dir.join(log_name).display()
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// The harness's users and API keys, created by an adapter's SQL (`{user_id}`,
/// `{email}`, `{max_bots}`, `{token}`) when the service does not seed them itself.
const USERS: [(u32, &str, u32, &str); 2] = [
    (1, "dev@stopflow.test", 1000, "stopflow-dev-token"),
    (2, "limited@stopflow.test", 1, "stopflow-limited-token"),
];

async fn create_users(pool: &sqlx::PgPool, sut: &Sut) -> Result<(), StackError> {
    let Some(crate::sut::Users::Sql { sql }) = sut.adapter.as_ref().map(|a| &a.database.users)
    else {
        return Ok(());
    };
    for (id, email, max_bots, token) in USERS {
        let statement = sql
            .replace("{user_id}", &id.to_string())
            .replace("{email}", email)
            .replace("{max_bots}", &max_bots.to_string())
            .replace("{token}", token);
        // The adapter is the user's own file, and the values are the harness's constants.
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(pool)
            .await
            .map_err(|e| StackError::Adapter {
                sut: sut.name.clone(),
                message: format!("create user {email} with the adapter's SQL: {e}"),
            })?;
    }
    Ok(())
}

/// `postgres://user[:password]@host:port/name` in parts, for adapters that want them.
fn database_parts(url: &str, vars: &mut Vars) {
    if let Ok(options) = url.parse::<sqlx::postgres::PgConnectOptions>() {
        vars.0.insert("db_host", options.get_host().to_owned());
        vars.0.insert("db_port", options.get_port().to_string());
        vars.0.insert(
            "db_name",
            options.get_database().unwrap_or_default().to_owned(),
        );
        vars.0.insert("db_user", options.get_username().to_owned());
        let password = url
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('@'))
            .and_then(|(auth, _)| auth.split_once(':'))
            .map(|(_, p)| p.to_owned())
            .unwrap_or_default();
        vars.0.insert("db_password", password);
    }
}

impl Stack {
    pub async fn start(config: StackConfig) -> Result<Stack, StackError> {
        Stack::start_sut(config, std::sync::Arc::new(Sut::reference()), None).await
    }

    /// Starts the stack around `sut`: the reference natively, any other service from its
    /// adapter (`sut_dir`: the user's checkout, for `{sut_dir}`).
    pub async fn start_sut(
        config: StackConfig,
        sut: std::sync::Arc<Sut>,
        sut_dir: Option<PathBuf>,
    ) -> Result<Stack, StackError> {
        Stack::start_with(config, sut, sut_dir, StackExtras::default()).await
    }

    /// [`Stack::start_sut`], with what a load run sets besides.
    pub async fn start_with(
        config: StackConfig,
        sut: std::sync::Arc<Sut>,
        sut_dir: Option<PathBuf>,
        extras: StackExtras,
    ) -> Result<Stack, StackError> {
        let db = infra::postgres::test_database().await?;
        let redis = infra::redis::test_redis_async().await?;
        let dir = infra::tempdir::create("stack")?;
        create_dir(&config.log_dir)?;
        let bot_log_dir = config.log_dir.join("bots");
        create_dir(&bot_log_dir)?;
        let socket = dir.path().join("docker.sock");
        // The image map, built in (or from --fixtures), as a file of the run's own.
        let images = dir.path().join("images.toml");
        let (map, _) = crate::fixtures::images().map_err(|e| StackError::Io {
            path: e.path,
            source: e.source,
        })?;
        std::fs::write(&images, map).map_err(|source| StackError::Io {
            path: images.clone(),
            source,
        })?;

        let mut runtime_cmd = tokio::process::Command::new(infra::bins::workspace_bin("runtime")?);
        runtime_cmd
            .arg("--socket")
            .arg(&socket)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--add-host",
                "bot-manager=127.0.0.1",
            ])
            .arg("--images")
            .arg(&images)
            .arg("--log-dir")
            .arg(&bot_log_dir)
            .stderr(log_file(&config.log_dir.join("runtime.log"))?);
        let adapter_bots = sut.adapter.iter().flat_map(|a| &a.bots.env);
        for (key, value) in config
            .bot_env
            .iter()
            .map(|(k, v)| (k, v))
            .chain(adapter_bots)
        {
            runtime_cmd.arg("--env").arg(format!("{key}={value}"));
        }
        let (runtime, line) = infra::process::spawn_until_line(
            runtime_cmd,
            |l| l.starts_with("runtime listening on ") && !l.contains("unix://"),
            START_DEADLINE,
        )
        .await?;
        let runtime_addr = line
            .strip_prefix("runtime listening on ")
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| StackError::RuntimeAddress { line: line.clone() })?
            .to_owned();

        let port = infra::process::free_port()?;
        let mut database_url = db.url().to_owned();
        let mut redis_url = redis.url().to_owned();
        let mut docker_host = format!("unix://{}", socket.display());
        let links = match config.links {
            Some(seed) => {
                let links = match &extras.links_at {
                    Some(url) => crate::links::Links::at(url).await?,
                    None => crate::links::Links::start(seed).await?,
                };
                database_url = through(&links, "service:postgres", &database_url).await?;
                redis_url = through(&links, "service:redis", &redis_url).await?;
                // A service that takes only a unix socket has no faultable runtime link.
                let unix_only = sut
                    .adapter
                    .as_ref()
                    .is_some_and(|a| a.docker.transport == crate::sut::DockerTransport::Unix);
                if !unix_only {
                    docker_host = format!(
                        "tcp://{}",
                        links.create("service:runtime", &runtime_addr).await?
                    );
                }
                Some(links)
            }
            None => None,
        };
        let mut vars = Vars::default();
        database_parts(&database_url, &mut vars);
        vars.0.insert("database_url", database_url.clone());
        vars.0.insert("redis_url", redis_url.clone());
        vars.0.insert("docker_host", docker_host.clone());
        vars.0.insert("docker_socket", socket.display().to_string());
        vars.0.insert("profile", config.profile.clone());
        vars.0
            .insert("run_dir", config.log_dir.display().to_string());
        vars.0
            .insert("cache_dir", crate::sut::cache_dir().display().to_string());
        if let Some(dir) = &sut_dir {
            vars.0.insert("sut_dir", dir.display().to_string());
        }
        let mut manager_args = ManagerArgs {
            sut: sut.clone(),
            vars,
            port,
            profile: config.profile.clone(),
            database_url,
            redis_url,
            docker_host,
            service: config.service.clone(),
            log_dir: config.log_dir.clone(),
            starts: 0,
            extra_args: extras.manager_args,
        };
        if sut.adapter.is_some() {
            manager_args.ensure_setup().await?;
            manager_args.prepare_database().await?;
        }
        let manager = manager_args.spawn_first().await?;
        let port = manager_args.port;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(db.url())
            .await
            .map_err(StackError::Database)?;
        create_users(&pool, &sut).await?;
        let session_standin = match sut.adapter.as_ref().map(|a| a.service.session_start) {
            Some(crate::sut::SessionStart::Harness) => Some(
                crate::sut::standin::start(pool.clone())
                    .await
                    .map_err(|source| StackError::Io {
                        path: PathBuf::from("127.0.0.1:0"),
                        source,
                    })?,
            ),
            _ => None,
        };
        Ok(Stack {
            pool,
            http: reqwest::Client::builder()
                .timeout(START_DEADLINE)
                .build()
                .expect("an HTTP client without TLS builds"),
            base_url: format!("http://127.0.0.1:{port}"),
            runtime_url: format!("http://{runtime_addr}"),
            log_dir: config.log_dir,
            bot_log_dir,
            manager: tokio::sync::Mutex::new(Some(manager)),
            manager_args: tokio::sync::Mutex::new(manager_args),
            runtime,
            links,
            service_addr: format!("127.0.0.1:{port}"),
            session_standin,
            wire: sut.wire(),
            redis,
            db,
            _dir: dir,
        })
    }

    /// How the service speaks on Redis.
    pub fn wire(&self) -> &protocol::Wire {
        &self.wire
    }

    pub fn redis_url(&self) -> &str {
        self.redis.url()
    }

    /// Creates the links of one scenario meeting's bots and answers the environment that
    /// points its bots at them (none without links).
    pub async fn bot_links(&self, meeting: &str) -> Result<Vec<(String, String)>, StackError> {
        let Some(links) = &self.links else {
            return Ok(Vec::new());
        };
        let redis = through(links, &format!("bot:{meeting}:redis"), self.redis.url()).await?;
        let callbacks = links
            .create(&format!("bot:{meeting}:callbacks"), &self.service_addr)
            .await?;
        let mut env = vec![
            ("MOCK_BOT_REDIS_URL".to_owned(), redis),
            (
                "MOCK_BOT_CALLBACK_BASE".to_owned(),
                format!("http://{callbacks}"),
            ),
        ];
        if let Some(standin) = &self.session_standin {
            env.push((
                "MOCK_BOT_SESSION_BASE".to_owned(),
                format!("http://{}", standin.addr),
            ));
        }
        Ok(env)
    }

    /// Where bots report their sessions: the collector's stand-in, else the service.
    pub fn session_base(&self) -> Option<String> {
        self.session_standin
            .as_ref()
            .map(|standin| format!("http://{}", standin.addr))
    }

    pub fn database_url(&self) -> &str {
        self.db.url()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// SIGTERM to the bot-manager; answers how it exited.
    pub async fn stop_manager(&self) -> Result<std::process::ExitStatus, StackError> {
        let mut manager = self
            .manager
            .lock()
            .await
            .take()
            .ok_or(StackError::ManagerDown {
                action: "stop the bot-manager",
            })?;
        let signal = self
            .manager_args
            .lock()
            .await
            .sut
            .adapter
            .as_ref()
            .and_then(|a| a.service.stop_signal.get_ref().parse().ok())
            .unwrap_or(Signal::SIGTERM);
        manager.signal(signal);
        Ok(manager.wait_exit(START_DEADLINE).await?)
    }

    /// Starts the bot-manager again on the same port, database and Redis (a no-op when
    /// it runs).
    ///
    /// As a supervisor (`restart: always`) would: a service that exits while starting (its
    /// Redis or database unreachable, say, under a fault of the same scenario) is started
    /// again every [`RESTART_BACKOFF`] until it answers or [`START_DEADLINE`] has gone by.
    pub async fn start_manager(&self) -> Result<(), StackError> {
        let mut manager = self.manager.lock().await;
        if manager.is_some() {
            return Ok(());
        }
        let until = tokio::time::Instant::now() + START_DEADLINE;
        loop {
            match self.manager_args.lock().await.spawn().await {
                Ok(started) => {
                    *manager = Some(started);
                    return Ok(());
                }
                Err(StackError::Infra(infra::InfraError::LineMissing { .. }))
                    if tokio::time::Instant::now() + RESTART_BACKOFF < until =>
                {
                    tokio::time::sleep(RESTART_BACKOFF).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Starts one more bot-manager against the run's database, Redis and runtime, with
    /// the run's profile and timers, on a port of its own and named `instance` (its log:
    /// `service-<instance>.log`). It runs until the answer is dropped. Bots it would start
    /// call back to it, not to the run's manager.
    pub async fn start_extra_manager(&self, instance: &str) -> Result<ExtraManager, StackError> {
        let port = infra::process::free_port()?;
        let guard = self
            .manager_args
            .lock()
            .await
            .spawn_on(port, Some(instance), &format!("service-{instance}.log"))
            .await?;
        Ok(ExtraManager {
            base_url: format!("http://127.0.0.1:{port}"),
            instance: instance.to_owned(),
            process: guard,
        })
    }

    /// Stops (SIGSTOP) or resumes (SIGCONT) the run's Redis server: a signal to a
    /// throwaway server, a pause or unpause of a container.
    pub fn signal_redis(&self, signal: Signal) -> Result<(), StackError> {
        if !self.redis.is_throwaway() {
            return Err(StackError::ExternalRedis("pausing Redis"));
        }
        self.redis.signal(signal).map_err(StackError::Infra)
    }

    pub fn runtime_pid(&self) -> u32 {
        self.runtime.id()
    }

    /// The bot-manager's pid, while it runs.
    pub async fn manager_pid(&self) -> Option<u32> {
        self.manager.lock().await.as_ref().map(ChildGuard::id)
    }

    /// The pid of the run's throwaway Redis (`None` with `REDIS_URL`).
    pub fn redis_pid(&self) -> Option<u32> {
        self.redis.pid()
    }

    /// A call to the runtime (Docker or control API); answers status and JSON body.
    pub async fn runtime_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), StackError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.runtime_url));
        if let Some(body) = body {
            req = req.json(body);
        }
        let err = |source| StackError::Runtime {
            what: path.to_owned(),
            source,
        };
        let resp = req.send().await.map_err(err)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(err)?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// The state at the end of a run: every meeting and session row and every container
    /// the runtime lists (forgotten ones too). A runtime that cannot list them is an
    /// error, never an empty list: no container would read as no orphan.
    pub async fn final_state(&self) -> Result<FinalState, StackError> {
        type Row = (
            i32,
            String,
            Option<String>,
            String,
            Option<String>,
            serde_json::Value,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, platform, platform_specific_id, status, bot_container_id, data FROM meetings ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StackError::Final)?;
        let sessions: Vec<(i32, String)> =
            sqlx::query_as("SELECT meeting_id, session_uid FROM meeting_sessions ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .map_err(StackError::Final)?;
        let containers = self.runtime_containers().await?;
        Ok(FinalState {
            meetings: rows
                .into_iter()
                .map(
                    |(id, platform, native, status, container, data)| FinalMeeting {
                        id: id.into(),
                        platform,
                        native_meeting_id: native.unwrap_or_default(),
                        status,
                        bot_container_id: container,
                        data,
                    },
                )
                .collect(),
            sessions: sessions
                .into_iter()
                .map(|(meeting_id, session_uid)| FinalSession {
                    meeting_id: meeting_id.into(),
                    session_uid,
                })
                .collect(),
            containers: containers
                .iter()
                .map(|c| {
                    let name = c["name"]
                        .as_str()
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_owned();
                    FinalContainer {
                        id: c["id"].as_str().unwrap_or_default().to_owned(),
                        meeting_id: meeting_id_from_container_name(&name),
                        name,
                        state: c["state"].as_str().unwrap_or_default().to_owned(),
                        exit_code: c["exit_code"].as_i64(),
                        forgotten: c["forgotten"].as_bool().unwrap_or(false),
                    }
                })
                .collect(),
        })
    }

    /// Every container the runtime knows or knew (control API).
    pub async fn runtime_containers(&self) -> Result<Vec<Value>, StackError> {
        let (status, body) = self
            .runtime_call(reqwest::Method::GET, "/_runtime/containers", None)
            .await?;
        // An error answer is no list: read as "no containers" it would hide every orphan.
        match body {
            Value::Array(containers) if status == 200 => Ok(containers),
            body => Err(StackError::RuntimeListing {
                status,
                body: body.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_read_only_from_what_the_log_gained_since_the_start() {
        // Pins: a run's service lost its port to another run's (both picked it free) and
        // the run was a harness error instead of starting again on another port.
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("service.log");
        std::fs::write(
            &log,
            "bot-manager: failed to listen on 127.0.0.1:1: Address already in use (os error 98)\n",
        )
        .unwrap();
        assert!(lost_port(&log, 0));
        let from = std::fs::metadata(&log).unwrap().len();
        assert!(
            !lost_port(&log, from),
            "an earlier start's failure is not this one's"
        );
        std::fs::write(
            &log,
            "ERROR: [Errno 98] error while attempting to bind on address ('127.0.0.1', 1): address already in use\n",
        )
        .unwrap();
        assert!(lost_port(&log, 0), "uvicorn's wording");
        assert!(!lost_port(&dir.path().join("missing.log"), 0));
    }
}
