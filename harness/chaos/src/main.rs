use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use chaos::cli::{Cli, Command, default_paths};
use chaos::engine::{self, Plan};
use chaos::scenario::{self, Scenario};
use clap::Parser;

/// Exit codes: 0 every verdict as expected, 1 an unexpected verdict (or invalid
/// scenarios), 2 a harness or infrastructure error.
fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let code = runtime.block_on(async {
        match cli.command {
            Command::Validate { paths } => validate(&default_paths(paths)).map(|_| 0).unwrap_or(1),
            Command::List { paths } => list(&default_paths(paths)),
            Command::Report { run_dir } => report(&run_dir),
            Command::Run {
                paths,
                profile,
                seed,
                repeat,
                jobs,
                out,
                quiet,
            } => {
                run(
                    default_paths(paths),
                    profile,
                    seed,
                    repeat,
                    jobs,
                    out,
                    quiet,
                )
                .await
            }
        }
    });
    ExitCode::from(code)
}

/// Loads every scenario; prints each error with its file and line.
fn validate(paths: &[std::path::PathBuf]) -> Result<Vec<(std::path::PathBuf, Arc<Scenario>)>, ()> {
    let files = match scenario::discover(paths) {
        Ok(files) => files,
        Err(err) => {
            eprintln!("chaos: failed to {err}");
            return Err(());
        }
    };
    let mut loaded = Vec::new();
    let mut bad = 0;
    for file in files {
        match scenario::load(&file) {
            Ok(s) => loaded.push((file, Arc::new(s))),
            Err(err) => {
                bad += 1;
                eprintln!("{err}");
            }
        }
    }
    let mut names = std::collections::BTreeMap::new();
    for (file, s) in &loaded {
        if let Some(other) = names.insert(s.name.clone(), file.clone()) {
            bad += 1;
            eprintln!(
                "{}: scenario name {:?} is also used by {}",
                file.display(),
                s.name,
                other.display()
            );
        }
    }
    if bad > 0 {
        eprintln!("chaos: {bad} invalid scenario file(s)");
        return Err(());
    }
    eprintln!("chaos: {} scenario(s) valid", loaded.len());
    Ok(loaded)
}

fn list(paths: &[std::path::PathBuf]) -> u8 {
    let Ok(scenarios) = validate(paths) else {
        return 1;
    };
    for (_, s) in scenarios {
        let expect: Vec<String> = s.expect.iter().map(|(p, e)| format!("{p}: {e}")).collect();
        println!(
            "{:<40} covers {:<18} {}",
            s.name,
            s.covers.join(","),
            expect.join("; ")
        );
        println!("    {}", s.description.lines().next().unwrap_or_default());
    }
    0
}

fn report(run_dir: &std::path::Path) -> u8 {
    match engine::rejudge(run_dir) {
        Ok(report) => {
            print_summary(&report, run_dir);
            report.exit_code() as u8
        }
        Err(err) => {
            eprintln!("chaos: failed to {err}");
            2
        }
    }
}

async fn run(
    paths: Vec<std::path::PathBuf>,
    profile: String,
    seed: Option<u64>,
    repeat: u32,
    jobs: usize,
    out: std::path::PathBuf,
    quiet: bool,
) -> u8 {
    let Ok(scenarios) = validate(&paths) else {
        return 1;
    };
    let profile = match profile.as_str() {
        "all" => None,
        p if scenario::load::PROFILES.contains(&p) => Some(p.to_owned()),
        other => {
            eprintln!("chaos: failed to select profile {other:?}: not one of legacy, fixed, all");
            return 2;
        }
    };
    let seed = seed.unwrap_or_else(rand::random);
    eprintln!("chaos: seed {seed}");
    let progress = !quiet && std::env::var_os("CI").is_none() && std::io::stderr().is_terminal();
    let plan = Plan {
        scenarios,
        profile,
        seed,
        repeat: repeat.max(1),
        jobs,
        out,
        progress,
    };
    match engine::execute(plan).await {
        Ok((report, dir)) => {
            print_summary(&report, &dir);
            report.exit_code() as u8
        }
        Err(err) => {
            eprintln!("chaos: failed to {err}");
            2
        }
    }
}

fn print_summary(report: &chaos::results::RunReport, dir: &std::path::Path) {
    let total = report.records.len();
    let expected = report.records.iter().filter(|r| r.as_expected).count();
    println!();
    // What a reproduction proved: each violated invariant and the events that show it.
    for r in report
        .records
        .iter()
        .filter(|r| r.as_expected && matches!(r.verdict, chaos::verdict::Verdict::Violated { .. }))
    {
        println!(
            "REPRODUCED {} [{}] (seed {}):",
            r.scenario, r.profile, r.seed
        );
        for c in r
            .checks
            .iter()
            .filter(|c| c.outcome == chaos::check::Outcome::Violated)
        {
            println!("  {} violated: {}", c.invariant, c.summary);
            for e in &c.witness {
                let kind = serde_json::to_string(&e.kind).unwrap_or_default();
                println!("    {:>9.1} ms  {kind}", e.at_us as f64 / 1000.0);
            }
        }
    }
    let pending = report
        .records
        .iter()
        .filter(|r| matches!(r.verdict, chaos::verdict::Verdict::Pending { .. }))
        .count();
    println!(
        "{expected}/{total} verdicts as expected ({pending} pending, not run); reports in {}",
        dir.display()
    );
    for r in report.records.iter().filter(|r| !r.as_expected) {
        println!(
            "  UNEXPECTED {} [{}]: expected {}, got {}",
            r.scenario, r.profile, r.expectation, r.verdict
        );
        for c in r
            .checks
            .iter()
            .filter(|c| c.outcome != chaos::check::Outcome::Holds)
        {
            println!("    {} {}: {}", c.invariant, c.outcome, c.summary);
        }
        println!("    rerun: {}", r.rerun);
    }
}
