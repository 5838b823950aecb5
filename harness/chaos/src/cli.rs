//! The `chaos` command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "chaos",
    version,
    about = "Chaos and fault injection for the meeting-bot stop flow"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Read the image map (images.toml) and the acceptance criteria (acceptance.toml)
    /// from this folder instead of the copies built into the binary.
    #[arg(long, global = true, env = "STOPFLOW_FIXTURES", value_name = "DIR")]
    pub fixtures: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run scenarios and write reports under reports/<run-id>/.
    Run {
        /// Scenario files or folders (default: scenarios/).
        paths: Vec<PathBuf>,
        /// all (every profile each scenario names in [expect]), or a comma-separated list
        /// of profiles: legacy, fixed, a single fix (reconcile, ...) or a+b combinations.
        #[arg(long, default_value = "all")]
        profile: String,
        /// Runs of each scenario and profile.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// Run only shard K of N of the planned runs (K from 1); `chaos merge` joins the
        /// shards' run folders.
        #[arg(long, value_name = "K/N")]
        partition: Option<crate::shard::Partition>,
        #[command(flatten)]
        options: RunOptions,
    },
    /// Run every scenario under every profile (legacy, each single fix, fixed, and the
    /// combinations scenarios name); write the ablation matrix (matrix.md, matrix.html)
    /// beside the usual reports.
    Matrix {
        /// Scenario files or folders (default: scenarios/).
        paths: Vec<PathBuf>,
        /// Only these profiles (comma-separated), in this column order.
        #[arg(long)]
        profiles: Option<String>,
        /// Runs of each cell.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// Run only shard K of N of the planned runs (K from 1); `chaos merge` joins the
        /// shards' run folders.
        #[arg(long, value_name = "K/N")]
        partition: Option<crate::shard::Partition>,
        #[command(flatten)]
        options: RunOptions,
    },
    /// Run the scenarios behind each acceptance criterion of the incident report (under
    /// `fixed`, 20 times each) and write signoff.md and signoff.html; exit 0 only when
    /// every criterion holds on every run.
    Signoff {
        /// The criteria, their invariants and scenarios (default: the built-in
        /// acceptance.toml, or the one in --fixtures).
        #[arg(long)]
        criteria: Option<PathBuf>,
        /// Where the scenarios the criteria name are.
        #[arg(long, default_value = "scenarios")]
        scenarios: PathBuf,
        #[arg(long, default_value = "fixed")]
        profile: String,
        /// Runs of each scenario.
        #[arg(long, default_value_t = 20)]
        repeat: u32,
        #[command(flatten)]
        options: RunOptions,
    },
    /// Run the API checks of protocol.md sections 4 and 5 against a system under test and
    /// print one table: check, expected, observed, match. Exit 0 when every check matches.
    Conform {
        #[arg(long, env = "STOPFLOW_SUT", default_value = "reference")]
        sut: String,
        #[arg(long, env = "STOPFLOW_SUT_DIR")]
        sut_dir: Option<PathBuf>,
        /// Where the probe's logs go (a folder of its own is made there).
        #[arg(long, default_value = "reports")]
        out: PathBuf,
    },
    /// Draw random plans (a random subset of the fault kinds each, timed on the
    /// protocol's events), run them as scenarios, shrink every violation to a minimal
    /// scenario and write it under found/ with its replay rate; exit 0 only when nothing
    /// was found.
    Explore {
        #[arg(long, default_value = "legacy")]
        profile: String,
        /// How long to explore: `90s`, `10m`, `1h` (default 5m, unless --runs is given).
        #[arg(long, value_parser = parse_budget, conflicts_with = "runs")]
        budget: Option<std::time::Duration>,
        /// How many plans to run instead of a time budget.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        runs: Option<u64>,
        /// The fault kinds plans may use (comma-separated; default all but forge): bot,
        /// restart, kill, pause, runtime, service, redis, callback, network, and the
        /// opt-in forge (an attacker's forged callbacks and session rows, another
        /// meeting's bot ending this one).
        #[arg(long, value_delimiter = ',')]
        faults: Vec<crate::explore::generate::FaultKind>,
        /// Oracle calls (each a few replays) a finding's shrink may make.
        #[arg(long, default_value_t = crate::explore::SHRINK_CALLS)]
        shrink_calls: usize,
        /// Replays of each shrunk plan that give its replay rate.
        #[arg(long, default_value_t = crate::explore::RATE_RUNS, value_parser = clap::value_parser!(u32).range(1..=1000))]
        replays: u32,
        /// Explore only shard K of N of the seed's plans (plan i is shard i mod N + 1),
        /// so N machines explore one seed without overlap.
        #[arg(long, value_name = "K/N")]
        partition: Option<crate::shard::Partition>,
        #[command(flatten)]
        options: RunOptions,
    },
    /// Start N meetings at once through the real stack, stop them all, and report time
    /// to converge against the bound, lost stops, stuck meetings, orphan containers and
    /// each program's CPU and memory, for each N and profile (load.json, load.md,
    /// load.svg); exit 0 only when every run was judged and the required profiles meet
    /// the bound.
    Load(crate::load::LoadArgs),
    /// Check scenario files without running them.
    Validate { paths: Vec<PathBuf> },
    /// Judge a stored run again from its histories and rewrite its reports.
    Report { run_dir: PathBuf },
    /// Join the run folders of the shards of one `run` or `matrix` (`--partition K/N`)
    /// into one run folder, and exit as `run` would on all of their runs.
    Merge {
        /// The shards' run folders, every shard once.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// The merged run folder (made; must be empty if it exists). Default:
        /// reports/<run-id>.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the scenarios with what they cover and expect (and, with --sut, whether that
    /// service can run each).
    List {
        paths: Vec<PathBuf>,
        #[arg(long, env = "STOPFLOW_SUT", default_value = "reference")]
        sut: String,
    },
}

/// How runs are carried out, for `run`, `matrix` and `signoff` alike.
#[derive(Debug, Clone, Args)]
pub struct RunOptions {
    /// Seed of the first repetition (random when not given; printed either way).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Runs at once (each has its own database, Redis, runtime and ports). Default: what
    /// the machine holds (runs per core, free memory, open files, Postgres connections),
    /// printed with the limit that bound it.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub jobs: Option<usize>,
    /// Where run folders go.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// No progress bar: one line per finished run (the default in CI).
    #[arg(long)]
    pub quiet: bool,
    /// Every run's overall deadline, in seconds (default: derived from its scenario,
    /// at most 15 minutes). A run past it is a harness error naming what it waited for.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub run_timeout: Option<u64>,
    /// The system under test: `reference` (the project's bot-manager, where --profile
    /// applies), a built-in adapter (`reference-external`), or an adapter file.
    #[arg(long, env = "STOPFLOW_SUT", default_value = "reference")]
    pub sut: String,
    /// The user's checkout of the service, for adapters that run from one (`{sut_dir}`).
    #[arg(long, env = "STOPFLOW_SUT_DIR")]
    pub sut_dir: Option<PathBuf>,
    /// Where Postgres, Redis and Toxiproxy come from when DATABASE_URL, REDIS_URL and
    /// TOXIPROXY_URL do not say: containers (through testcontainers, on DOCKER_HOST or the
    /// default socket), local (throwaway servers), env (the URLs only), or auto:
    /// containers when a Docker daemon answers, else local.
    #[arg(
        long,
        env = "STOPFLOW_INFRA",
        default_value = "auto",
        value_name = "PROVIDER"
    )]
    pub infra: infra::provider::Choice,
}

pub fn default_paths(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    if paths.is_empty() {
        vec![PathBuf::from("scenarios")]
    } else {
        paths
    }
}

/// A time budget as humantime reads it (`90s`, `10m`, `1h 30m`), more than zero.
pub fn parse_budget(text: &str) -> Result<std::time::Duration, String> {
    let budget = humantime::parse_duration(text.trim())
        .map_err(|err| format!("{text:?} is not a duration such as 90s, 10m or 1h: {err}"))?;
    if budget.is_zero() {
        return Err(format!("{text:?} is no time at all"));
    }
    Ok(budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_read_seconds_minutes_and_hours_and_name_what_is_wrong() {
        assert_eq!(parse_budget("90s"), Ok(std::time::Duration::from_secs(90)));
        assert_eq!(parse_budget("10m"), Ok(std::time::Duration::from_secs(600)));
        assert_eq!(parse_budget("1h"), Ok(std::time::Duration::from_secs(3600)));
        assert!(parse_budget("10x").unwrap_err().contains("not a duration"));
        assert!(parse_budget("0m").unwrap_err().contains("no time"));
    }
}
