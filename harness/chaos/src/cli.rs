//! The `chaos` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "chaos",
    version,
    about = "Chaos and fault injection for the meeting-bot stop flow"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run scenarios and write reports under reports/<run-id>/.
    Run {
        /// Scenario files or folders (default: scenarios/).
        paths: Vec<PathBuf>,
        /// legacy, fixed, or all (every profile the scenario names in [expect]).
        #[arg(long, default_value = "all")]
        profile: String,
        /// Seed of the first repetition (random when not given; printed either way).
        #[arg(long)]
        seed: Option<u64>,
        /// Runs of each scenario and profile.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// Runs at once (each has its own database, Redis, runtime and ports).
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// Where run folders go.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// No progress bar: one line per finished run (the default in CI).
        #[arg(long)]
        quiet: bool,
    },
    /// Check scenario files without running them.
    Validate { paths: Vec<PathBuf> },
    /// Judge a stored run again from its histories and rewrite its reports.
    Report { run_dir: PathBuf },
    /// List the scenarios with what they cover and expect.
    List { paths: Vec<PathBuf> },
}

pub fn default_paths(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    if paths.is_empty() {
        vec![PathBuf::from("scenarios")]
    } else {
        paths
    }
}
