//! The `runtime` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgGroup, Parser};

use crate::config::{EnvVar, HostAlias, RuntimeConfig};
use crate::images::{Images, ImagesError};

/// A container runtime that serves a Docker Engine API subset and runs each container
/// as a supervised local process.
#[derive(Debug, Parser)]
#[command(name = "runtime", version)]
#[command(group(
    ArgGroup::new("listener")
        .required(true)
        .multiple(true)
        .args(["socket", "listen"])
))]
pub struct Cli {
    /// Serve on this unix socket (a stale socket file is replaced).
    #[arg(long, value_name = "PATH")]
    pub socket: Vec<PathBuf>,
    /// Serve on this TCP address; port 0 picks a free one (the printed line has it).
    /// Loopback only (127.0.0.0/8, ::1) unless --allow-non-loopback-listen.
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<SocketAddr>,
    /// Let --listen take an address that is not loopback. The API is unauthenticated and
    /// runs processes: whoever reaches it can run the mapped images as this user.
    #[arg(long)]
    pub allow_non_loopback_listen: bool,
    /// TOML file mapping image names to commands.
    #[arg(long, value_name = "FILE")]
    pub images: PathBuf,
    /// Add to every container's environment.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<EnvVar>,
    /// Pass to every container in STOPFLOW_HOST_ALIASES.
    #[arg(long = "add-host", value_name = "NAME=IP")]
    pub add_host: Vec<HostAlias>,
    /// Write each container's stdout and stderr to DIR/<name>.log.
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
}

impl Cli {
    /// Loads the images file; the error reads after "failed to".
    pub fn into_config(self) -> Result<RuntimeConfig, ImagesError> {
        let mut config = RuntimeConfig::new(Images::load(&self.images)?);
        config.sockets = self.socket;
        config.listen = self.listen;
        config.allow_non_loopback = self.allow_non_loopback_listen;
        config.env = self.env;
        config.host_aliases = self.add_host;
        config.log_dir = self.log_dir;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_listener_is_required_and_bad_values_are_named() {
        let err = Cli::try_parse_from(["runtime", "--images", "x.toml"]).unwrap_err();
        assert!(err.to_string().contains("--socket"), "{err}");
        let err = Cli::try_parse_from([
            "runtime",
            "--images",
            "x.toml",
            "--listen",
            "127.0.0.1:0",
            "--add-host",
            "redis=nope",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("--add-host"), "{err}");
        let cli = Cli::try_parse_from([
            "runtime", "--images", "x.toml", "--socket", "/tmp/s", "--env", "A=1", "--env", "B=2",
        ])
        .unwrap();
        assert_eq!(cli.env.len(), 2);
        assert!(!cli.allow_non_loopback_listen, "loopback only by default");
    }
}
