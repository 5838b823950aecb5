//! `fault-proxy [--host 127.0.0.1] [--port 8474] [--seed N] [--allow-non-loopback-listen]`: the server alone, as
//! `toxiproxy-server` runs. Prints `fault-proxy listening on ADDR` when ready; stops on
//! SIGTERM or Ctrl-C.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use fault_proxy::Server;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(version, about = "A TCP fault proxy speaking Toxiproxy's REST API")]
struct Cli {
    /// Address the API listens on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port the API listens on (0: a free one).
    #[arg(long, default_value_t = 8474)]
    port: u16,
    /// Let the API listen on an address other than loopback: whoever reaches it can open
    /// proxies on this machine to any upstream, with no authentication.
    #[arg(long)]
    allow_non_loopback_listen: bool,
    /// Seed of every random choice (jitter, toxicity, slices); random if not given.
    #[arg(long, env = "FAULT_PROXY_SEED")]
    seed: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let seed = cli.seed.unwrap_or_else(random_seed);
    let addr = match tokio::net::lookup_host((cli.host.as_str(), cli.port)).await {
        Ok(mut addrs) => match addrs.next() {
            Some(addr) => addr,
            None => {
                eprintln!("fault-proxy: failed to resolve {}: no address", cli.host);
                return ExitCode::from(2);
            }
        },
        Err(err) => {
            eprintln!("fault-proxy: failed to resolve {}: {err}", cli.host);
            return ExitCode::from(2);
        }
    };
    if !addr.ip().to_canonical().is_loopback() && !cli.allow_non_loopback_listen {
        eprintln!(
            "fault-proxy: failed to listen on {addr}: not a loopback address; the API has no \
             authentication (--allow-non-loopback-listen to listen there anyway)"
        );
        return ExitCode::from(2);
    }
    // Installed before announcing readiness, so an early SIGTERM still shuts down cleanly.
    let (mut terminate, mut interrupt) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(terminate), Ok(interrupt)) => (terminate, interrupt),
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("fault-proxy: failed to install signal handlers: {err}");
            return ExitCode::FAILURE;
        }
    };
    let server = match Server::start(addr, seed).await {
        Ok(server) => server,
        Err(err) => {
            let cause = std::error::Error::source(&err)
                .map(|source| format!(": {source}"))
                .unwrap_or_default();
            eprintln!("fault-proxy: failed to {err}{cause}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "fault-proxy listening on {}", server.addr());
    let _ = stdout.flush();
    drop(stdout);
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
    }
    server.shutdown().await;
    ExitCode::SUCCESS
}

/// A seed from the clock and pid, logged by the server so the run can be replayed.
fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}
