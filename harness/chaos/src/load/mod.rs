//! `chaos load`: N meetings started at once through the real stack, all stopped, and
//! the figures of the stop flow under that load, for each meeting count and profile:
//! time to converge against the bound, lost stops, stuck meetings, orphan containers,
//! each program's CPU and memory, and a plot (issue 12, "Load").
//!
//! - `spec.rs`: the command line's inputs and the schedule of each run;
//! - `drive.rs`: one run against a stack of its own;
//! - `figures.rs`: the figures, from the recorded history alone;
//! - `procfs.rs`: CPU and memory from /proc;
//! - `report.rs`, `svg.rs`: `load.json`, `load.md`, `load.svg`.

pub mod drive;
pub mod figures;
pub mod procfs;
pub mod report;
pub mod spec;
pub mod svg;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Args;

use self::figures::Bound;
use self::report::{LoadReport, RunEntry, Settings, Verdict};
use self::spec::{MAX_MEETINGS, MeetingCounts, StopMix};
use crate::scenario::ServiceSettings;

/// `chaos load`'s flags.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Profiles to measure, comma-separated; each runs every meeting count.
    #[arg(long, default_value = "legacy,fixed")]
    pub profile: String,
    /// Meetings started at once, comma-separated: one run (a stack of its own) each.
    #[arg(long, default_value = "100,300,1000", value_name = "N,...")]
    pub meetings: MeetingCounts,
    /// When each meeting is stopped, after its POST /bots was answered 201: moments or
    /// ranges, each with its share of the meetings (`0-1s=50%,15s-20s=50%`), or without
    /// shares for equal parts. The same for every profile.
    #[arg(long, default_value = "0-1s=50%,15s-20s=50%", value_name = "MIX")]
    pub stop_at: StopMix,
    /// Profiles whose runs must meet the bound for exit 0 (p99 within it; nothing lost,
    /// stuck or orphaned), comma-separated; the others are measured and reported.
    /// Default: `fixed`, when it is measured.
    #[arg(long)]
    pub require: Option<String>,
    /// A behaviour of every bot, as a scenario's `bot` table writes it (`leave=hang` is
    /// `MOCK_BOT_LEAVE=hang`); repeatable. Default: the incident's bot.
    #[arg(long = "bot", value_name = "NAME=VALUE")]
    pub bot: Vec<String>,
    /// Seed of the schedules (native ids, each stop's moment); random when not given,
    /// printed either way.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The report's folder (default: reports/load-<run-id>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The delayed stop (bot-manager `--delayed-stop-ms`; production: 30000).
    #[arg(long, default_value_t = 1000)]
    pub delayed_stop_ms: u64,
    /// `docker stop`'s grace, whole seconds (production: 10).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=600))]
    pub stop_grace_s: u32,
    /// The finalizer's grace after a forced stop (fixed; production: 1000).
    #[arg(long, default_value_t = 200)]
    pub finalizer_grace_ms: u64,
    /// The reconcile sweep's interval (fixed; production: 300000, later 15000).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub reconcile_interval_ms: u64,
    /// A stop this soon after the creation of a meeting not yet active takes the
    /// pre-active fast path (production: 5000).
    #[arg(long, default_value_t = 5000)]
    pub pre_active_window_ms: u64,
    /// How long past its bound the last stop is watched before what has not ended is
    /// judged stuck: `30s`, `2m`.
    #[arg(long, default_value = "30s", value_parser = crate::cli::parse_budget)]
    pub window: Duration,
    /// Each request's own bound: a request not answered by then counts as unanswered.
    #[arg(long, default_value = "60s", value_parser = crate::cli::parse_budget)]
    pub request_timeout: Duration,
    /// The bot-manager's Postgres pool (its `--database-pool-size`, 32 by default).
    /// Default here: 64, or what the Postgres server has left (less the harness's own).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub database_pool_size: Option<u32>,
    /// A further flag for the bot-manager, as its command line takes it
    /// (`--service-arg=--reconcile-concurrency=1`); repeatable.
    #[arg(long = "service-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub service_args: Vec<String>,
    /// No progress bar: one line per finished run.
    #[arg(long)]
    pub quiet: bool,
}

/// File descriptors one meeting costs the busiest process (the fault proxy: two per bot
/// Redis connection and per callback in flight; the bot-manager: a client connection
/// and a callback), with room.
const FILES_PER_MEETING: u64 = 8;
/// File descriptors any process needs besides.
const FILES_BASE: u64 = 512;
/// Memory one meeting costs: a mock bot, its share of the service, runtime and proxy.
const MEMORY_PER_MEETING: u64 = 16 << 20;
/// Postgres connections a run takes besides the service's pool: the harness's pool, the
/// recorder's listener, the database's creation, with room.
const CONNECTIONS_BESIDES_POOL: u64 = 16;
/// The service's pool unless told otherwise (its own default is 32). Measured at 1000
/// meetings at once under fixed, release build: before the service took creates in
/// turns, 64 connections failed 536 of the 1000 POSTs after 10 s waits; with its turns,
/// p99 1.63-1.71 s at 64, 1.73-1.85 s at 32 and 2.01-2.05 s at 200, where Postgres also
/// took 20 s of CPU and 955 MiB against 12-15 s and 356 MiB at 64.
const POOL: u64 = 64;

/// The bounds one run holds to, printed at the start and kept in the report.
struct Limits {
    lines: Vec<String>,
    /// The service's Postgres pool.
    pool: u32,
}

/// Raises the soft limit on open files to the hard one (every process of the stack
/// inherits it); answers the soft limit now and before.
fn raise_open_files() -> Option<(u64, u64)> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some((hard, soft));
    }
    Some((soft, soft))
}

/// Checks that the machine holds the largest run and says what bounds it.
async fn limits(args: &LoadArgs) -> Result<Limits, String> {
    let largest = args.meetings.0.iter().copied().max().unwrap_or(0) as u64;
    let mut bounds = vec![(
        format!("the dev user's max_concurrent_bots {MAX_MEETINGS}"),
        MAX_MEETINGS as u64,
    )];
    let mut lines = Vec::new();
    if let Some((files, before)) = raise_open_files() {
        bounds.push((
            format!("open files {files} per process / {FILES_PER_MEETING} per meeting"),
            files.saturating_sub(FILES_BASE) / FILES_PER_MEETING,
        ));
        if files > before {
            lines.push(format!("open files: raised from {before} to {files} (the hard limit), for every process of the stack"));
        }
    }
    if let Some(memory) = procfs::available_memory() {
        bounds.push((
            format!(
                "memory {} MiB available / {} MiB per meeting",
                memory >> 20,
                MEMORY_PER_MEETING >> 20
            ),
            memory / MEMORY_PER_MEETING,
        ));
    }
    let postgres = postgres_connections().await;
    let room = postgres.map(|left| left.saturating_sub(CONNECTIONS_BESIDES_POOL));
    let pool = match (args.database_pool_size, room) {
        (Some(pool), Some(room)) if u64::from(pool) > room => {
            return Err(format!(
                "give the bot-manager a pool of {pool} Postgres connections: the server has {} \
                 left, {CONNECTIONS_BESIDES_POOL} of them for the harness: give a smaller \
                 --database-pool-size",
                postgres.unwrap_or_default()
            ));
        }
        (Some(pool), _) => pool,
        (None, Some(0)) => {
            return Err(format!(
                "find Postgres connections for the bot-manager: the server has {} left",
                postgres.unwrap_or_default()
            ));
        }
        (None, room) => u32::try_from(room.unwrap_or(POOL).min(POOL)).unwrap_or(1),
    };
    let (bound_by, most) = bounds
        .iter()
        .min_by_key(|(_, n)| *n)
        .cloned()
        .unwrap_or_default();
    let all: Vec<String> = bounds
        .iter()
        .map(|(what, n)| format!("{what}: {n}"))
        .collect();
    lines.insert(
        0,
        format!(
            "meetings at once: at most {most}, bound by {bound_by} ({})",
            all.join("; ")
        ),
    );
    if largest > most {
        return Err(format!(
            "run {largest} meetings at once: this machine holds {most} ({bound_by})"
        ));
    }
    lines.push(format!(
        "bot-manager: --max-connections {} (two per meeting and {FILES_BASE}), --database-pool-size {pool} (Postgres: {} connections left){}",
        max_connections(largest),
        postgres.map_or_else(|| "unknown".to_owned(), |n| n.to_string()),
        if args.service_args.is_empty() {
            String::new()
        } else {
            format!(", {}", args.service_args.join(" "))
        }
    ));
    Ok(Limits { lines, pool })
}

/// The bot-manager's HTTP connection bound for a run of `n` meetings: each meeting's
/// client connection and its bot's callback at once, and room.
fn max_connections(n: u64) -> u64 {
    2 * n + FILES_BASE
}

/// Connections a new client may open on the Postgres the runs use (the throwaway
/// server's 300 when `DATABASE_URL` is unset).
async fn postgres_connections() -> Option<u64> {
    use sqlx::Connection;
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => return Some(300),
    };
    let ask = async {
        let mut conn = sqlx::PgConnection::connect(url.trim()).await.ok()?;
        let left: i64 = sqlx::query_scalar(
            "SELECT current_setting('max_connections')::int \
                  - current_setting('superuser_reserved_connections')::int \
                  - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')",
        )
        .fetch_one(&mut conn)
        .await
        .ok()?;
        let _ = conn.close().await;
        u64::try_from(left).ok()
    };
    tokio::time::timeout(Duration::from_secs(5), ask)
        .await
        .ok()
        .flatten()
}

fn fail(message: impl std::fmt::Display) -> u8 {
    eprintln!("chaos: failed to {message}");
    2
}

/// Runs `chaos load`. Exit codes: 0 every run judged and every required profile's run
/// meets the bound; 1 a required run misses it, or a run is inconclusive; 2 a run could
/// not be made, or the user interrupted.
pub async fn main(args: LoadArgs, command: String) -> u8 {
    let profiles: Vec<String> = args
        .profile
        .split(',')
        .map(|p| p.trim().to_owned())
        .collect();
    let required: Vec<String> = match &args.require {
        Some(list) => list
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
        None => profiles.iter().filter(|p| *p == "fixed").cloned().collect(),
    };
    for p in profiles.iter().chain(&required) {
        if let Err(err) = crate::profiles::check(p) {
            return fail(format_args!("select profile {p:?}: {err}"));
        }
    }
    if let Some(p) = required.iter().find(|p| !profiles.contains(p)) {
        return fail(format_args!(
            "require profile {p:?}: --profile {} does not run it",
            args.profile
        ));
    }
    let bot_env = match spec::bot_env(&args.bot) {
        Ok(env) => env,
        Err(err) => return fail(format_args!("read the bots' behaviours: {err}")),
    };
    let limits = match limits(&args).await {
        Ok(limits) => limits,
        Err(err) => return fail(err),
    };
    infra::sweep::sweep_leftovers();
    let seed = args.seed.unwrap_or_else(rand::random);
    let run_id = crate::engine::run_id();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports").join(format!("load-{run_id}")));
    if let Err(err) = std::fs::create_dir_all(&out) {
        return fail(format_args!("create {}: {err}", out.display()));
    }
    let bound = Bound {
        delayed_stop_ms: args.delayed_stop_ms,
        stop_grace_s: args.stop_grace_s,
        finalizer_grace_ms: args.finalizer_grace_ms,
        reconcile_interval_ms: args.reconcile_interval_ms,
    };
    eprintln!(
        "chaos: load run {run_id}, seed {seed}, into {}",
        out.display()
    );
    for line in &limits.lines {
        eprintln!("chaos: {line}");
    }
    eprintln!("chaos: bound {bound}");
    let started_at = chrono::Utc::now();
    let settings = Settings {
        command,
        seed,
        profiles: profiles.clone(),
        required: required.clone(),
        meetings: args.meetings.0.clone(),
        stop_at: args.stop_at.0.clone(),
        bot_env: bot_env.clone(),
        bound,
        bound_ms: bound.total_ms(),
        pre_active_window_ms: args.pre_active_window_ms,
        window_s: args.window.as_secs_f64(),
        request_timeout_s: args.request_timeout.as_secs_f64(),
        limits: limits.lines.clone(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let progress =
        !args.quiet && std::env::var_os("CI").is_none() && std::io::stderr().is_terminal();
    let mut runs = Vec::new();
    let mut interrupted = false;
    'all: for &n in &args.meetings.0 {
        let plan = spec::schedule(seed, n, &args.stop_at);
        for profile in &profiles {
            let dir_name = PathBuf::from(format!("{}-n{n}", profile.replace('+', "_")));
            let run = drive::RunSpec {
                profile: profile.clone(),
                seed: spec::run_seed(seed, n),
                plan: plan.clone(),
                mix: args.stop_at.clone(),
                bot_env: bot_env.clone(),
                timers: ServiceSettings {
                    delayed_stop_ms: Some(args.delayed_stop_ms),
                    stop_grace_s: Some(args.stop_grace_s),
                    finalizer_grace_ms: Some(args.finalizer_grace_ms),
                    reconcile_interval_ms: Some(args.reconcile_interval_ms),
                    pre_active_window_ms: Some(args.pre_active_window_ms),
                    ..ServiceSettings::default()
                },
                bound,
                window: args.window,
                request_timeout: args.request_timeout,
                manager_args: manager_args(&args, n, limits.pool),
                dir: out.join(&dir_name),
            };
            let machine_before = drive::machine_note();
            let counters = Arc::new(drive::Counters::default());
            let bar = progress.then(|| progress_bar(profile, n));
            let ticker = bar.clone().map(|bar| {
                let counters = counters.clone();
                tokio::spawn(async move {
                    loop {
                        bar.set_message(format!(
                            "started {}, stopped {}, ended {} of {n}",
                            counters.started.load(Ordering::Relaxed),
                            counters.stopped.load(Ordering::Relaxed),
                            counters.ended.load(Ordering::Relaxed)
                        ));
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                })
            });
            let outcome = tokio::select! {
                outcome = drive::run(&run, counters.clone()) => Some(outcome),
                () = interrupt() => None,
            };
            if let Some(ticker) = ticker {
                ticker.abort();
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            let entry = match outcome {
                None => {
                    interrupted = true;
                    RunEntry {
                        profile: profile.clone(),
                        meetings: n,
                        seed: run.seed,
                        dir: dir_name,
                        verdict: Verdict::Error {
                            reason: "interrupted".into(),
                        },
                        required: required.contains(profile),
                        figures: None,
                        usage: Vec::new(),
                        ended: None,
                        duration_s: None,
                        machine_before,
                    }
                }
                Some(Ok(result)) => RunEntry {
                    profile: profile.clone(),
                    meetings: n,
                    seed: run.seed,
                    dir: dir_name,
                    verdict: report::judge(&result.figures, bound.total_ms()),
                    required: required.contains(profile),
                    figures: Some(result.figures),
                    usage: result.usage,
                    ended: Some(result.ended),
                    duration_s: Some((result.duration.as_secs_f64() * 10.0).round() / 10.0),
                    machine_before,
                },
                Some(Err(err)) => RunEntry {
                    profile: profile.clone(),
                    meetings: n,
                    seed: run.seed,
                    dir: dir_name,
                    verdict: Verdict::Error {
                        reason: format!("failed to {err}"),
                    },
                    required: required.contains(profile),
                    figures: None,
                    usage: Vec::new(),
                    ended: None,
                    duration_s: None,
                    machine_before,
                },
            };
            println!("{}", entry.line(bound.total_ms()));
            runs.push(entry);
            if interrupted {
                eprintln!(
                    "chaos: interrupted; the run in flight is stopped and its processes are gone"
                );
                break 'all;
            }
        }
    }
    let report = LoadReport {
        run_id,
        started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        settings,
        runs,
    };
    match report::write(&out, &report) {
        Ok(paths) => {
            for path in paths {
                eprintln!("chaos: wrote {}", path.display());
            }
        }
        Err(err) => return fail(err),
    }
    exit_code(&report, interrupted)
}

fn exit_code(report: &LoadReport, interrupted: bool) -> u8 {
    if interrupted
        || report
            .runs
            .iter()
            .any(|r| matches!(r.verdict, Verdict::Error { .. }))
    {
        return 2;
    }
    let failed = report.runs.iter().any(|r| match &r.verdict {
        Verdict::Inconclusive { .. } => true,
        Verdict::Misses { .. } => r.required,
        _ => false,
    });
    u8::from(failed)
}

/// The bot-manager's bounds for a run of `n` meetings, then the user's own flags.
fn manager_args(args: &LoadArgs, n: usize, pool: u32) -> Vec<String> {
    let mut flags = vec![
        "--max-connections".to_owned(),
        max_connections(n as u64).to_string(),
        "--database-pool-size".to_owned(),
        pool.to_string(),
    ];
    flags.extend(args.service_args.iter().cloned());
    flags
}

fn progress_bar(profile: &str, n: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {prefix} {elapsed} {msg}")
            .expect("a valid template"),
    );
    bar.set_prefix(format!("{profile} N={n}"));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// SIGINT or SIGTERM (how CI cancels a job).
async fn interrupt() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_gets_a_connection_per_meeting_and_its_callback_and_the_users_flags_last() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            load: LoadArgs,
        }
        let cli = Cli::try_parse_from([
            "load",
            "--meetings",
            "10",
            "--service-arg=--reconcile-concurrency=1",
        ])
        .expect("the flags parse");
        assert_eq!(
            manager_args(&cli.load, 1000, 200),
            [
                "--max-connections",
                "2512",
                "--database-pool-size",
                "200",
                "--reconcile-concurrency=1"
            ]
        );
        let bad = Cli::try_parse_from(["load", "--meetings", "1001"]);
        assert!(bad.is_err());
        let bad = Cli::try_parse_from(["load", "--stop-at", "5s-1s"]);
        assert!(bad.unwrap_err().to_string().contains("backwards"));
    }
}
