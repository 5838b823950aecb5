use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chaos::cli::{Cli, Command, RunOptions, default_paths};
use chaos::engine::{self, Plan};
use chaos::scenario::{self, Scenario};
use clap::Parser;

/// Exit codes: 0 every verdict as expected, 1 an unexpected verdict (or invalid
/// scenarios), 2 a harness or infrastructure error.
fn main() -> ExitCode {
    let cli = Cli::parse();
    chaos::fixtures::set_dir(cli.fixtures.clone());
    // A run drops its database under the recorder's pool: sqlx's warnings about those
    // connections are noise to the user.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,sqlx=error".into()),
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
            Command::List { paths, sut } => list(&default_paths(paths), &sut),
            Command::Report { run_dir } => report(&run_dir),
            Command::Merge { dirs, out } => merge(&dirs, out),
            Command::Conform { sut, sut_dir, out } => conform(&sut, sut_dir, &out).await,
            Command::Load(args) => chaos::load::main(args, command_line()).await,
            Command::Signoff {
                criteria,
                scenarios,
                profile,
                repeat,
                options,
            } => signoff(criteria.as_deref(), &scenarios, profile, repeat, options).await,
            Command::Matrix {
                paths,
                profiles,
                repeat,
                partition,
                options,
            } => matrix(default_paths(paths), profiles, repeat, partition, options).await,
            Command::Run {
                paths,
                profile,
                repeat,
                partition,
                options,
            } => run(default_paths(paths), profile, repeat, partition, options).await,
            Command::Explore {
                profile,
                budget,
                runs,
                faults,
                shrink_calls,
                replays,
                partition,
                options,
            } => {
                let search = (shrink_calls, replays);
                explore(profile, budget, runs, faults, search, partition, options).await
            }
        }
    });
    ExitCode::from(code)
}

/// Chooses where the servers come from (`--infra`) and says so in one line, with why
/// not containers when they were not used.
fn select_infra(choice: infra::provider::Choice) -> Result<(), u8> {
    match infra::provider::select(choice) {
        Ok(selection) => {
            eprintln!("chaos: {selection}");
            Ok(())
        }
        Err(err) => {
            eprintln!("chaos: failed to {err}");
            Err(2)
        }
    }
}

/// The binary as the user ran it (argv[0]), for rerun commands that work as printed.
fn invoked_as() -> String {
    std::env::args_os()
        .next()
        .map(|a| a.to_string_lossy().into_owned())
        .filter(|a| !a.is_empty())
        .or_else(|| {
            std::env::current_exe()
                .ok()
                .map(|p| p.display().to_string())
        })
        .unwrap_or_else(|| "chaos".into())
}

/// The command as the user typed it, for the report.
fn command_line() -> String {
    std::iter::once(invoked_as())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Loads every scenario; prints each error with its file and line.
fn validate(paths: &[PathBuf]) -> Result<Vec<(PathBuf, Arc<Scenario>)>, ()> {
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

fn list(paths: &[PathBuf], sut: &str) -> u8 {
    let Ok(scenarios) = validate(paths) else {
        return 1;
    };
    let sut = match chaos::sut::Sut::resolve(sut) {
        Ok(sut) => sut,
        Err(err) => {
            eprintln!("chaos: failed to {err}");
            return 2;
        }
    };
    for (_, s) in scenarios {
        let expect: Vec<String> = match sut.not_applicable(&s) {
            Some(reason) => vec![format!("not applicable to {}: {reason}", sut.name)],
            None if let Some(column) = sut.only_column() => {
                vec![format!(
                    "{column}: {}",
                    s.expectation_for(column)
                        .map_or_else(|| "no expectation stated".into(), |e| e.to_string())
                )]
            }
            None => s.expect.iter().map(|(p, e)| format!("{p}: {e}")).collect(),
        };
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

/// `chaos merge`: exits as `chaos run` would on the union (and 1 when it holds no run).
fn merge(dirs: &[PathBuf], out: Option<PathBuf>) -> u8 {
    let out = out.unwrap_or_else(|| PathBuf::from("reports").join(engine::run_id()));
    match chaos::shard::merge(dirs, &out) {
        Ok((report, written)) => {
            for path in written {
                eprintln!("chaos: wrote {}", path.display());
            }
            print_summary(&report, &out);
            if report.records.is_empty() {
                1
            } else {
                report.exit_code() as u8
            }
        }
        Err(err) => {
            eprintln!("chaos: failed to {err}");
            2
        }
    }
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

/// `a,b+c` into checked profile names; the error is already printed.
fn parse_profiles(list: &str) -> Result<Vec<String>, u8> {
    let profiles: Vec<String> = list.split(',').map(|p| p.trim().to_owned()).collect();
    for p in &profiles {
        if let Err(err) = chaos::profiles::check(p) {
            eprintln!("chaos: failed to select profile {p:?}: {err}");
            return Err(2);
        }
    }
    Ok(profiles)
}

async fn execute(
    scenarios: Vec<(PathBuf, Arc<Scenario>)>,
    profiles: Option<Vec<String>>,
    skip_unstated_combinations: bool,
    repeat: u32,
    options: RunOptions,
) -> Result<(chaos::results::RunReport, PathBuf), u8> {
    execute_shard(
        scenarios,
        profiles,
        skip_unstated_combinations,
        repeat,
        None,
        options,
    )
    .await
}

async fn execute_shard(
    scenarios: Vec<(PathBuf, Arc<Scenario>)>,
    profiles: Option<Vec<String>>,
    skip_unstated_combinations: bool,
    repeat: u32,
    partition: Option<chaos::shard::Partition>,
    options: RunOptions,
) -> Result<(chaos::results::RunReport, PathBuf), u8> {
    if partition.is_some() && options.seed.is_none() {
        eprintln!(
            "chaos: failed to run a shard: --partition needs --seed, the same on every shard (else the shards are of different plans and cannot be merged)"
        );
        return Err(2);
    }
    let seed = options.seed.unwrap_or_else(rand::random);
    eprintln!("chaos: seed {seed}");
    select_infra(options.infra)?;
    let jobs = chaos::capacity::resolve(options.jobs).await;
    if jobs > 1 && std::env::var_os("REDIS_URL").is_some() {
        eprintln!(
            "chaos: warning: REDIS_URL is shared by {jobs} parallel runs; under profiles that send the \
             leave to bot_commands:meeting:{{id}} (fixed, route-meeting-channel) runs with the same \
             database ids can take each other's leaves: unset REDIS_URL (each run gets its own \
             Redis) or use --jobs 1"
        );
    }
    let progress =
        !options.quiet && std::env::var_os("CI").is_none() && std::io::stderr().is_terminal();
    let sut = match chaos::sut::Sut::resolve(&options.sut) {
        Ok(sut) => Arc::new(sut),
        Err(err) => {
            eprintln!("chaos: failed to {err}");
            return Err(2);
        }
    };
    if let Some(dir) = &options.sut_dir
        && !dir.is_dir()
    {
        eprintln!(
            "chaos: failed to use --sut-dir {}: not a folder",
            dir.display()
        );
        return Err(2);
    }
    if sut.name != chaos::sut::REFERENCE {
        eprintln!("chaos: system under test: {}", sut.name);
    }
    let plan = Plan {
        scenarios,
        profiles,
        skip_unstated_combinations,
        seed,
        repeat: repeat.max(1),
        jobs,
        out: options.out,
        progress,
        run_timeout: options.run_timeout.map(std::time::Duration::from_secs),
        rerun_prefix: format!("{} run", invoked_as()),
        sut,
        sut_dir: options.sut_dir,
    };
    engine::execute_shard(plan, partition).await.map_err(|err| {
        eprintln!("chaos: failed to {err}");
        2
    })
}

async fn run(
    paths: Vec<PathBuf>,
    profile: String,
    repeat: u32,
    partition: Option<chaos::shard::Partition>,
    options: RunOptions,
) -> u8 {
    let Ok(scenarios) = validate(&paths) else {
        return 1;
    };
    let profiles = match profile.as_str() {
        "all" => None,
        list => match parse_profiles(list) {
            Ok(profiles) => Some(profiles),
            Err(code) => return code,
        },
    };
    match execute_shard(scenarios, profiles, false, repeat, partition, options).await {
        Ok((report, dir)) => {
            print_summary(&report, &dir);
            report.exit_code() as u8
        }
        Err(code) => code,
    }
}

async fn matrix(
    paths: Vec<PathBuf>,
    profiles: Option<String>,
    repeat: u32,
    partition: Option<chaos::shard::Partition>,
    options: RunOptions,
) -> u8 {
    let Ok(scenarios) = validate(&paths) else {
        return 1;
    };
    let columns = match profiles {
        Some(list) => match parse_profiles(&list) {
            Ok(profiles) => profiles,
            Err(code) => return code,
        },
        None => {
            let mut columns = match chaos::profiles::builtin() {
                Ok(builtin) => builtin.to_vec(),
                Err(err) => {
                    eprintln!("chaos: failed to {err}");
                    return 2;
                }
            };
            for (_, s) in &scenarios {
                for p in s.expect.keys() {
                    if !columns.contains(p) {
                        columns.push(p.clone());
                    }
                }
            }
            columns
        }
    };
    let (report, dir) = match execute_shard(
        scenarios,
        Some(columns.clone()),
        true,
        repeat,
        partition,
        options,
    )
    .await
    {
        Ok(done) => done,
        Err(code) => return code,
    };
    if let Err(code) = announce(chaos::report::write_matrix(&dir, &report, &columns)) {
        return code;
    }
    print_summary(&report, &dir);
    report.exit_code() as u8
}

async fn signoff(
    criteria_path: Option<&std::path::Path>,
    scenarios_dir: &std::path::Path,
    profile: String,
    repeat: u32,
    mut options: RunOptions,
) -> u8 {
    let Ok(catalogue) = validate(&[scenarios_dir.to_owned()]) else {
        return 1;
    };
    let names: Vec<String> = catalogue.iter().map(|(_, s)| s.name.clone()).collect();
    let (text, criteria_path) = match criteria_path {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => (text, path.to_owned()),
            Err(err) => {
                eprintln!("chaos: failed to read criteria {}: {err}", path.display());
                return 1;
            }
        },
        None => match chaos::fixtures::acceptance() {
            Ok(found) => found,
            Err(err) => {
                eprintln!("chaos: failed to {err}");
                return 1;
            }
        },
    };
    let criteria_path = criteria_path.as_path();
    let criteria = match chaos::signoff::parse_criteria(criteria_path, &text, &names) {
        Ok(criteria) => criteria,
        Err(err) => {
            eprintln!("chaos: failed to {err}");
            return 1;
        }
    };
    if let Err(code) = parse_profiles(&profile) {
        return code;
    }
    let wanted = chaos::signoff::scenarios(&criteria);
    let scenarios: Vec<_> = catalogue
        .into_iter()
        .filter(|(_, s)| wanted.contains(&s.name))
        .collect();
    let seed = *options.seed.get_or_insert_with(rand::random);
    let provenance = chaos::signoff::Provenance {
        profile: profile.clone(),
        repeat: repeat.max(1),
        seed,
        criteria_file: criteria_path.display().to_string(),
    };
    let (report, dir) = match execute(scenarios, Some(vec![profile]), false, repeat, options).await
    {
        Ok(done) => done,
        Err(code) => return code,
    };
    let evidence = chaos::signoff::evaluate(&criteria, &report);
    if let Err(code) = announce(chaos::signoff::write(&dir, &evidence, &report, &provenance)) {
        return code;
    }
    if report.exit_code() == 2 {
        return 2;
    }
    println!();
    for e in &evidence {
        println!(
            "{} {}: {}/{} runs support it. {}",
            e.criterion.id,
            if e.holds() { "holds" } else { "FAILS" },
            e.held_runs(),
            e.runs(),
            e.criterion.text
        );
    }
    if evidence
        .iter()
        .all(chaos::signoff::CriterionEvidence::holds)
    {
        println!(
            "SIGNED OFF; report in {}",
            dir.join("signoff.html").display()
        );
        0
    } else {
        println!(
            "NOT SIGNED OFF; report in {}",
            dir.join("signoff.html").display()
        );
        1
    }
}

/// `chaos conform`: the table, and 0 only when every check matches.
async fn conform(sut: &str, sut_dir: Option<PathBuf>, out: &std::path::Path) -> u8 {
    infra::sweep::sweep_leftovers();
    let sut = match chaos::sut::Sut::resolve(sut) {
        Ok(sut) => Arc::new(sut),
        Err(err) => {
            eprintln!("chaos: failed to {err}");
            return 2;
        }
    };
    let logs = out.join(format!("conform-{}", engine::run_id()));
    let name = sut.name.clone();
    match chaos::conform::conform(sut, sut_dir, logs.clone()).await {
        Ok(checks) => {
            print!("{}", chaos::conform::render(&name, &checks));
            eprintln!("chaos: logs in {}", logs.display());
            if checks.iter().all(chaos::conform::Check::matches) {
                0
            } else {
                1
            }
        }
        Err(err) => {
            eprintln!("chaos: failed to {err} (logs in {})", logs.display());
            2
        }
    }
}

/// Names the reports written, or says why they could not be (exit code 2).
fn announce(written: Result<Vec<PathBuf>, chaos::report::ReportError>) -> Result<(), u8> {
    match written {
        Ok(paths) => {
            for path in paths {
                eprintln!("chaos: wrote {}", path.display());
            }
            Ok(())
        }
        Err(err) => {
            eprintln!("chaos: failed to {err}");
            Err(2)
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
            // Every case, each with its witness (results.json and summary.md keep them all).
            let cases: Vec<(&str, &[chaos::history::Event])> = if c.violations.is_empty() {
                vec![(c.summary.as_str(), c.witness.as_slice())]
            } else {
                c.violations
                    .iter()
                    .map(|v| (v.text.as_str(), v.witness.as_slice()))
                    .collect()
            };
            for (text, witness) in cases {
                println!("  {} violated: {text}", c.invariant);
                for e in witness {
                    let kind = serde_json::to_string(&e.kind).unwrap_or_default();
                    println!("    {:>9.1} ms  {kind}", e.at_us as f64 / 1000.0);
                }
            }
        }
    }
    let pending = report
        .records
        .iter()
        .filter(|r| r.as_expected && matches!(r.verdict, chaos::verdict::Verdict::Pending { .. }))
        .count();
    let count = |f: fn(&chaos::verdict::Verdict) -> bool| {
        report.records.iter().filter(|r| f(&r.verdict)).count()
    };
    let inconclusive = count(|v| matches!(v, chaos::verdict::Verdict::Inconclusive { .. }));
    let errors = count(|v| matches!(v, chaos::verdict::Verdict::Error { .. }));
    let not_applicable = count(|v| matches!(v, chaos::verdict::Verdict::NotApplicable { .. }));
    let judged = total - pending - not_applicable;
    let expected = expected - pending - not_applicable;
    println!(
        "{expected}/{judged} verdicts as expected ({inconclusive} inconclusive, {errors} harness errors; not run: {pending} pending, {not_applicable} not applicable); reports in {}",
        dir.display()
    );
    print!("{}", chaos::stats::rates_text(report));
    if judged == 0 && total > 0 {
        println!("  NOTHING JUDGED: every run was pending or not applicable, so nothing was shown");
    }
    for r in report.records.iter().filter(|r| !r.as_expected) {
        let word = match r.verdict {
            chaos::verdict::Verdict::Inconclusive { .. } => "INCONCLUSIVE",
            chaos::verdict::Verdict::Error { .. } => "HARNESS ERROR",
            _ => "UNEXPECTED",
        };
        println!(
            "  {word} {} [{}]: expected {}, got {}",
            r.scenario, r.profile, r.expectation, r.verdict
        );
        for problem in &r.problems {
            println!("    {problem}");
        }
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

async fn explore(
    profile: String,
    budget: Option<std::time::Duration>,
    runs: Option<u64>,
    faults: Vec<chaos::explore::generate::FaultKind>,
    (shrink_calls, replays): (usize, u32),
    partition: Option<chaos::shard::Partition>,
    options: RunOptions,
) -> u8 {
    use chaos::explore::{self, Budget};
    if let Err(err) = chaos::profiles::check(&profile) {
        eprintln!("chaos: failed to select profile {profile:?}: {err}");
        return 2;
    }
    let sut = match chaos::sut::Sut::resolve(&options.sut) {
        Ok(sut) => Arc::new(sut),
        Err(err) => {
            eprintln!("chaos: failed to {err}");
            return 2;
        }
    };
    if partition.is_some() && options.seed.is_none() {
        eprintln!(
            "chaos: failed to explore a shard: --partition needs --seed, the same on every shard (else each explores plans of its own seed)"
        );
        return 2;
    }
    let seed = options.seed.unwrap_or_else(rand::random);
    if select_infra(options.infra).is_err() {
        return 2;
    }
    let jobs = chaos::capacity::resolve(options.jobs).await;
    if jobs > 1 && std::env::var_os("REDIS_URL").is_some() {
        eprintln!(
            "chaos: warning: REDIS_URL is shared by {jobs} parallel runs; channels keyed by a \
             database id alone (bot_commands:meeting:{{id}} under fixed, a later wire's \
             statuses) cross between runs: unset REDIS_URL (each run gets its own Redis) or \
             use --jobs 1"
        );
    }
    let mut kinds = faults;
    if kinds.is_empty() {
        kinds = explore::generate::FaultKind::defaults();
    }
    kinds.sort();
    kinds.dedup();
    let budget = match (runs, budget) {
        (Some(n), _) => Budget::Runs(n),
        (None, Some(t)) => Budget::Time(t),
        (None, None) => Budget::Time(std::time::Duration::from_secs(300)),
    };
    eprintln!(
        "chaos: exploring under {profile} with seed {seed}, fault kinds {}",
        kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let outcome = explore::explore(explore::Options {
        seed,
        profile,
        budget,
        jobs,
        kinds,
        out: options.out,
        sut,
        sut_dir: options.sut_dir,
        shrink_calls,
        replays,
        partition: partition.map(|p| (u64::from(p.index), u64::from(p.total))),
    })
    .await;
    match outcome {
        Ok((exploration, dir)) => {
            println!("{}", explore::report::markdown(&exploration));
            println!("reports in {}", dir.display());
            exploration.exit_code() as u8
        }
        Err(err) => {
            eprintln!("chaos: failed to {err}");
            2
        }
    }
}
