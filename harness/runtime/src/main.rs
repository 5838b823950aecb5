//! `runtime`: see the library documentation and `docs/interfaces.md`.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use runtime::Runtime;
use runtime::cli::Cli;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let config = match cli.into_config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("runtime: failed to {err}");
            return ExitCode::from(2);
        }
    };
    // Installed before announcing readiness, so an early SIGTERM still shuts down cleanly.
    let (mut terminate, mut interrupt) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(terminate), Ok(interrupt)) => (terminate, interrupt),
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("runtime: failed to install signal handlers: {err}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match Runtime::start(config).await {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("runtime: failed to {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    for addr in runtime.addresses() {
        let _ = writeln!(stdout, "runtime listening on {addr}");
    }
    let _ = stdout.flush();
    drop(stdout);
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
    }
    runtime.shutdown().await;
    ExitCode::SUCCESS
}
