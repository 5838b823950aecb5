//! Settings: production environment names where one exists, plus one flag per timer
//! of protocol.md section 8 (production values by default, so tests can shrink them).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use crate::bus::Wire;
use crate::profile::Profile;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "bot-manager",
    version,
    about = "The reference stop-flow service"
)]
pub struct Config {
    /// Which fixes are on: `legacy` (the incident's code, bugs included), `fixed`, a
    /// single-fix profile of `fixtures/profiles/`, or a combination `a+b+c`.
    #[arg(long, env = "BOT_MANAGER_PROFILE", default_value = "legacy")]
    pub profile: Profile,

    /// A profile file of the same format, instead of `--profile`.
    #[arg(long, env = "BOT_MANAGER_PROFILE_FILE")]
    pub profile_file: Option<std::path::PathBuf>,

    /// One fix switch over the profile, `name=value` as in a profile file
    /// (`reconcile=true`, `route_leave=current_uid`); repeatable, applied in order.
    #[arg(long = "fix", value_name = "NAME=VALUE")]
    pub fixes: Vec<String>,

    /// Which production version's Redis protocol to speak, whatever the profile.
    #[arg(long, env = "BOT_MANAGER_WIRE", value_enum, default_value_t = Wire::Incident)]
    pub wire: Wire,

    /// Address the HTTP API listens on.
    #[arg(long, env = "BOT_MANAGER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,

    #[arg(long, env = "REDIS_URL")]
    pub redis_url: String,

    /// Docker Engine API endpoint (`unix:///path` or `tcp://host:port`); bollard's default
    /// socket when unset.
    #[arg(long, env = "DOCKER_HOST")]
    pub docker_host: Option<String>,

    #[arg(long, env = "BOT_IMAGE_NAME", default_value = "vexa-bot:latest")]
    pub bot_image_name: String,

    /// Network the bot containers join (Docker's `HostConfig.NetworkMode`).
    #[arg(long, env = "DOCKER_NETWORK", default_value = "vexa_default")]
    pub docker_network: String,

    /// The exit-callback URL written into `BOT_CONFIG.botManagerCallbackUrl`.
    #[arg(
        long,
        env = "BOT_MANAGER_CALLBACK_URL",
        default_value = "http://bot-manager:8080/bots/internal/callback/exited"
    )]
    pub callback_url: String,

    /// Handed to every bot container as `WHISPER_LIVE_URL`, as production does.
    #[arg(
        long,
        env = "WHISPER_LIVE_URL",
        default_value = "ws://whisperlive:9090"
    )]
    pub whisper_live_url: String,

    /// Handed to every bot container as `LOG_LEVEL` (upper-cased), as production passes
    /// its own `LOG_LEVEL` on.
    #[arg(long = "bot-log-level", env = "LOG_LEVEL", default_value = "INFO")]
    pub bot_log_level: String,

    /// The one bind mount of every bot container, `SOURCE:TARGET` (Docker's
    /// `HostConfig.Mounts`; a process runtime may ignore it). protocol.md names no paths,
    /// so the default is a placeholder of the right shape.
    #[arg(
        long,
        env = "BOT_BIND_MOUNT",
        default_value = "/var/lib/vexa-bot:/app/storage",
        value_parser = parse_bind_mount
    )]
    pub bot_bind_mount: BindMount,

    /// The Redis URL handed to bots; the service's own `REDIS_URL` when unset.
    #[arg(long, env = "BOT_REDIS_URL")]
    pub bot_redis_url: Option<String>,

    /// This instance's name, recorded with the work it does (its reconcile sweeps), so
    /// that several instances against one database can be told apart;
    /// `<hostname>-<pid>` when unset.
    #[arg(long, env = "BOT_MANAGER_INSTANCE")]
    pub instance: Option<String>,

    #[command(flatten)]
    pub timers: Timers,

    #[command(flatten)]
    pub http: HttpLimits,

    #[command(flatten)]
    pub work: WorkLimits,
}

/// How much work the service does at once: its Postgres pool and the container stops of
/// a reconcile sweep (issue 12: a thousand meetings at once).
#[derive(Debug, Clone, clap::Args)]
pub struct WorkLimits {
    /// Postgres connections the service pools; a request that finds none free waits up
    /// to `--dependency-timeout-ms` for one.
    #[arg(
        long,
        env = "DATABASE_POOL_SIZE",
        default_value_t = 32,
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub database_pool_size: u32,

    /// Container stops (each with its finalizing) a reconcile sweep runs at once. One at
    /// a time, a sweep took a whole stop grace per orphan: one a second at a 1 s grace.
    #[arg(
        long,
        env = "RECONCILE_CONCURRENCY",
        default_value_t = 256,
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub reconcile_concurrency: u32,

    /// Due durable stops claimed at once (a full batch is followed by another claim at
    /// once, not after `--stop-job-poll-ms`); each runs in a task of its own.
    #[arg(
        long,
        env = "STOP_JOB_BATCH",
        default_value_t = 256,
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub stop_job_batch: u32,

    /// Container starts in flight at the runtime at once; a burst of `POST /bots` waits
    /// its turn in the service rather than at the runtime, where the wait counted
    /// against each call's `--dependency-timeout-ms`.
    #[arg(
        long,
        env = "CONTAINER_START_CONCURRENCY",
        default_value_t = 32,
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub container_start_concurrency: u32,
}

/// Bounds on the HTTP server's connections, so that slow or idle clients cannot hold it
/// (issue 12: slowloris connections were still open after 150 s). The timeouts default
/// to those of Toxiproxy's API server.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpLimits {
    /// A client must send a request's whole head (request line and headers) within this
    /// long of the server starting to wait for it (the connection's accept, or the end of
    /// the previous answer): otherwise the connection is closed (hyper's
    /// `header_read_timeout`). An idle keep-alive connection waits for its next request
    /// this long, too.
    #[arg(
        long,
        env = "BOT_MANAGER_HEADER_READ_TIMEOUT_MS",
        default_value_t = 15_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub header_read_timeout_ms: u64,

    /// A connection on which no byte has moved either way for this long while the server
    /// waits on its client (for a request, the rest of a request's body, or to take an
    /// answer) is closed. Time the server spends working on a request does not count.
    #[arg(
        long,
        env = "BOT_MANAGER_IDLE_TIMEOUT_MS",
        default_value_t = 60_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub idle_timeout_ms: u64,

    /// The most connections served at once; past it, new connections wait in the
    /// listen backlog until one closes.
    #[arg(
        long,
        env = "BOT_MANAGER_MAX_CONNECTIONS",
        default_value_t = 512,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_connections: u32,

    /// The most `POST /bots` worked on at once; past it, each waits its turn in arrival
    /// order, its body received. A burst of a thousand creates otherwise took every
    /// database connection the stops and the bots' callbacks needed.
    #[arg(
        long,
        env = "BOT_MANAGER_MAX_CONCURRENT_CREATES",
        default_value_t = 64,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_concurrent_creates: u32,
}

impl HttpLimits {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
}

/// A bind mount, `SOURCE:TARGET`, both absolute paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: String,
    pub target: String,
}

fn parse_bind_mount(raw: &str) -> Result<BindMount, String> {
    let (source, target) = raw
        .split_once(':')
        .ok_or_else(|| format!("expected SOURCE:TARGET, got {raw:?}"))?;
    if !source.starts_with('/') || !target.starts_with('/') || target.contains(':') {
        return Err(format!(
            "expected SOURCE:TARGET with two absolute paths, got {raw:?}"
        ));
    }
    Ok(BindMount {
        source: source.to_owned(),
        target: target.to_owned(),
    })
}

/// The longest timer the service takes, in ms: every deadline it derives must stay a
/// time Postgres and tokio can hold (an unbounded delayed stop made a stop's deadline
/// that Postgres refused, and the DELETE failed after marking the row).
pub const MAX_TIMER_MS: u64 = protocol::MAX_TIMER_MS;
/// The longest `current_uid` TTL, in seconds (a year; Redis takes an i64 of them).
pub const MAX_TTL_S: u64 = 31_536_000;

/// Every timer of the stop flow, in milliseconds unless named otherwise.
#[derive(Debug, Clone, clap::Args)]
pub struct Timers {
    /// A stop this soon after creation of a pre-active meeting takes the fast path.
    #[arg(
        long,
        env = "PRE_ACTIVE_WINDOW_MS",
        default_value_t = 5_000,
        value_parser = clap::value_parser!(u64).range(0..=MAX_TIMER_MS)
    )]
    pub pre_active_window_ms: u64,

    /// Delay before the container stop that DELETE schedules.
    #[arg(
        long,
        env = "DELAYED_STOP_MS",
        default_value_t = 30_000,
        value_parser = clap::value_parser!(u64).range(0..=MAX_TIMER_MS)
    )]
    pub delayed_stop_ms: u64,

    /// `docker stop` grace (`t`), in whole seconds: SIGTERM, then SIGKILL.
    #[arg(
        long,
        env = "STOP_GRACE_S",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(0..=3_600)
    )]
    pub stop_grace_s: u32,

    /// Delay before stopping the container after an exit callback with a non-zero code.
    #[arg(
        long,
        env = "EXITED_FAILURE_STOP_MS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(0..=MAX_TIMER_MS)
    )]
    pub exited_failure_stop_ms: u64,

    /// TTL of `bm:meeting:{platform}:{native}:current_uid`, in seconds.
    #[arg(
        long,
        env = "CURRENT_UID_TTL_S",
        default_value_t = 86_400,
        value_parser = clap::value_parser!(u64).range(1..=MAX_TTL_S)
    )]
    pub current_uid_ttl_s: u64,

    /// Lag of the write of the connectionId session row (a fault knob; production has no
    /// deliberate lag, but its fire-and-forget write, after the container start, can come
    /// after a fast bot's first callback). With `session_before_start` the start waits
    /// for the write, lag included.
    #[arg(
        long,
        env = "SESSION_RECORD_DELAY_MS",
        default_value_t = 0,
        value_parser = clap::value_parser!(u64).range(0..=MAX_TIMER_MS)
    )]
    pub session_record_delay_ms: u64,

    #[arg(
        long,
        env = "WAITING_ROOM_TIMEOUT_MS",
        default_value_t = 300_000,
        value_parser = clap::value_parser!(u64).range(0..=MAX_TIMER_MS)
    )]
    pub waiting_room_timeout_ms: u64,

    #[arg(
        long,
        env = "NO_ONE_JOINED_TIMEOUT_MS",
        default_value_t = 120_000,
        value_parser = clap::value_parser!(u64).range(0..=MAX_TIMER_MS)
    )]
    pub no_one_joined_timeout_ms: u64,

    #[arg(
        long,
        env = "EVERYONE_LEFT_TIMEOUT_MS",
        default_value_t = 60_000,
        value_parser = clap::value_parser!(u64).range(0..=MAX_TIMER_MS)
    )]
    pub everyone_left_timeout_ms: u64,

    /// Grace after a forced stop before finalizing (fixed profile).
    #[arg(
        long,
        env = "FINALIZER_GRACE_MS",
        default_value_t = 1_000,
        value_parser = clap::value_parser!(u64).range(0..=MAX_TIMER_MS)
    )]
    pub finalizer_grace_ms: u64,

    /// Reconcile sweep interval (fixed profile).
    #[arg(
        long,
        env = "RECONCILE_INTERVAL_MS",
        default_value_t = 300_000,
        value_parser = clap::value_parser!(u64).range(1..=MAX_TIMER_MS)
    )]
    pub reconcile_interval_ms: u64,

    /// How often the durable stop worker looks for due stops (fixed profile).
    #[arg(
        long,
        env = "STOP_JOB_POLL_MS",
        default_value_t = 250,
        value_parser = clap::value_parser!(u64).range(1..=MAX_TIMER_MS)
    )]
    pub stop_job_poll_ms: u64,

    /// Bound on each call to Postgres, Redis and the runtime, so a hung dependency
    /// turns into an error instead of a hung request.
    #[arg(
        long,
        env = "DEPENDENCY_TIMEOUT_MS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(1..=MAX_TIMER_MS)
    )]
    pub dependency_timeout_ms: u64,
}

impl Timers {
    pub fn pre_active_window(&self) -> Duration {
        Duration::from_millis(self.pre_active_window_ms)
    }
    pub fn delayed_stop(&self) -> Duration {
        Duration::from_millis(self.delayed_stop_ms)
    }
    pub fn exited_failure_stop(&self) -> Duration {
        Duration::from_millis(self.exited_failure_stop_ms)
    }
    pub fn session_record_delay(&self) -> Duration {
        Duration::from_millis(self.session_record_delay_ms)
    }
    pub fn finalizer_grace(&self) -> Duration {
        Duration::from_millis(self.finalizer_grace_ms)
    }
    pub fn reconcile_interval(&self) -> Duration {
        Duration::from_millis(self.reconcile_interval_ms)
    }
    pub fn stop_job_poll(&self) -> Duration {
        Duration::from_millis(self.stop_job_poll_ms)
    }
    pub fn dependency_timeout(&self) -> Duration {
        Duration::from_millis(self.dependency_timeout_ms)
    }
}

impl Config {
    pub fn bot_redis_url(&self) -> &str {
        self.bot_redis_url.as_deref().unwrap_or(&self.redis_url)
    }

    /// `--instance`, else `<hostname>-<pid>`.
    pub fn instance_name(&self) -> String {
        if let Some(name) = self.instance.as_deref().filter(|n| !n.trim().is_empty()) {
            return name.to_owned();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "bot-manager".to_owned());
        format!("{host}-{}", std::process::id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Config {
        let args = ["bot-manager", "--database-url", "d", "--redis-url", "r"];
        Config::try_parse_from(args.iter().chain(extra)).expect("the arguments parse")
    }

    #[test]
    fn a_timer_out_of_bounds_is_refused_at_start_naming_its_flag() {
        // Regression: --delayed-stop-ms 18446744073709551615 started, then every late
        // DELETE failed with Postgres's "timestamp out of range" after marking the row;
        // --current-uid-ttl-s of the same value made every current_uid write fail.
        let huge = u64::MAX.to_string();
        for flag in [
            "--pre-active-window-ms",
            "--delayed-stop-ms",
            "--stop-grace-s",
            "--exited-failure-stop-ms",
            "--current-uid-ttl-s",
            "--session-record-delay-ms",
            "--waiting-room-timeout-ms",
            "--no-one-joined-timeout-ms",
            "--everyone-left-timeout-ms",
            "--finalizer-grace-ms",
            "--reconcile-interval-ms",
            "--stop-job-poll-ms",
            "--dependency-timeout-ms",
        ] {
            let args = ["bot-manager", "--database-url", "d", "--redis-url", "r"];
            let err = Config::try_parse_from(args.iter().chain(&[flag, huge.as_str()]))
                .err()
                .unwrap_or_else(|| panic!("{flag} {huge} was accepted"))
                .to_string();
            assert!(err.contains(flag) && err.contains(&huge), "{err}");
        }
        for flag in [
            "--reconcile-interval-ms",
            "--stop-job-poll-ms",
            "--dependency-timeout-ms",
            "--current-uid-ttl-s",
        ] {
            let args = ["bot-manager", "--database-url", "d", "--redis-url", "r"];
            assert!(
                Config::try_parse_from(args.iter().chain(&[flag, "0"])).is_err(),
                "{flag} 0 was accepted"
            );
        }
        let day = parse(&["--delayed-stop-ms", "86400000", "--stop-grace-s", "3600"]);
        assert_eq!(day.timers.delayed_stop_ms, MAX_TIMER_MS);
    }

    #[test]
    fn work_limits_have_defaults_and_flags_override_them() {
        let work = parse(&[]).work;
        assert_eq!(
            (
                work.database_pool_size,
                work.reconcile_concurrency,
                work.stop_job_batch,
                work.container_start_concurrency
            ),
            (32, 256, 256, 32)
        );
        let work = parse(&[
            "--database-pool-size",
            "200",
            "--reconcile-concurrency",
            "1",
            "--stop-job-batch",
            "16",
            "--container-start-concurrency",
            "4",
        ])
        .work;
        assert_eq!(
            (
                work.database_pool_size,
                work.reconcile_concurrency,
                work.stop_job_batch,
                work.container_start_concurrency
            ),
            (200, 1, 16, 4)
        );
    }

    #[test]
    fn http_limits_default_to_toxiproxys_timeouts_and_flags_override_them() {
        let http = parse(&[]).http;
        assert_eq!(http.header_read_timeout(), Duration::from_secs(15));
        assert_eq!(http.idle_timeout(), Duration::from_secs(60));
        assert_eq!(http.max_connections, 512);
        let http = parse(&[
            "--header-read-timeout-ms",
            "300",
            "--idle-timeout-ms",
            "400",
            "--max-connections",
            "2",
        ])
        .http;
        assert_eq!(http.header_read_timeout(), Duration::from_millis(300));
        assert_eq!(http.idle_timeout(), Duration::from_millis(400));
        assert_eq!(http.max_connections, 2);
        let args = ["bot-manager", "--database-url", "d", "--redis-url", "r"];
        for zero in [
            "--database-pool-size",
            "--reconcile-concurrency",
            "--stop-job-batch",
            "--container-start-concurrency",
        ] {
            let refused = Config::try_parse_from(args.iter().chain(&[zero, "0"]));
            assert!(refused.is_err(), "{zero} 0 was taken");
        }
        for zero in [
            "--header-read-timeout-ms",
            "--idle-timeout-ms",
            "--max-connections",
        ] {
            let refused = Config::try_parse_from(args.iter().chain(&[zero, "0"]));
            assert!(refused.is_err(), "{zero} 0 was taken");
        }
    }
}
