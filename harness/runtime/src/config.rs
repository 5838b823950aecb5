//! What a runtime is started with.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use crate::images::Images;

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub images: Images,
    /// Unix sockets to serve on (a stale socket file is replaced).
    pub sockets: Vec<PathBuf>,
    /// TCP addresses to serve on; port 0 picks a free port. Loopback only, unless
    /// `allow_non_loopback`.
    pub listen: Vec<SocketAddr>,
    /// Serve on a `listen` address that is not loopback. The API runs processes as the
    /// runtime's user and has no authentication, like a Docker socket: whoever reaches
    /// it can run what the image map allows, with what env it allows.
    pub allow_non_loopback: bool,
    /// Added to every container's environment.
    pub env: Vec<EnvVar>,
    /// Passed to every container as `STOPFLOW_HOST_ALIASES=name=ip,...`.
    pub host_aliases: Vec<HostAlias>,
    /// Container output goes to `<log_dir>/<name>.log` instead of the runtime's stderr.
    pub log_dir: Option<PathBuf>,
}

impl RuntimeConfig {
    pub fn new(images: Images) -> Self {
        RuntimeConfig {
            images,
            sockets: Vec::new(),
            listen: Vec::new(),
            allow_non_loopback: false,
            env: Vec::new(),
            host_aliases: Vec::new(),
            log_dir: None,
        }
    }
}

/// `KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub key: String,
    pub value: String,
}

impl FromStr for EnvVar {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once('=') {
            Some((key, value)) if !key.is_empty() && !text.contains('\0') => Ok(EnvVar {
                key: key.into(),
                value: value.into(),
            }),
            _ => Err(format!(
                "expected KEY=VALUE with a non-empty KEY, got {text:?}"
            )),
        }
    }
}

/// `NAME=IP`, Docker's `--add-host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAlias {
    pub name: String,
    pub ip: IpAddr,
}

impl FromStr for HostAlias {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some((name, ip)) = text.split_once('=') else {
            return Err(format!("expected NAME=IP, got {text:?}"));
        };
        if name.is_empty() || name.contains([',', ' ']) {
            return Err(format!(
                "host name {name:?} in {text:?} is empty or has a comma or space"
            ));
        }
        let ip = ip
            .parse()
            .map_err(|_| format!("{ip:?} in {text:?} is not an IP address"))?;
        Ok(HostAlias {
            name: name.into(),
            ip,
        })
    }
}

impl fmt::Display for HostAlias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.ip)
    }
}

/// Where a started runtime serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl fmt::Display for ListenAddr {
    /// `unix:///path` (ready for `DOCKER_HOST`) or `127.0.0.1:PORT` (as `--listen` takes it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Unix(path) => write!(f, "unix://{}", path.display()),
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_and_host_alias_arguments_name_what_is_wrong() {
        assert_eq!("A=b=c".parse::<EnvVar>().unwrap().value, "b=c");
        assert!("=x".parse::<EnvVar>().unwrap_err().contains("\"=x\""));
        assert!("NOEQUALS".parse::<EnvVar>().is_err());
        let alias: HostAlias = "redis=127.0.0.1".parse().unwrap();
        assert_eq!(alias.to_string(), "redis=127.0.0.1");
        assert!(
            "redis=nope"
                .parse::<HostAlias>()
                .unwrap_err()
                .contains("\"nope\"")
        );
        assert!("redis".parse::<HostAlias>().is_err());
    }
}
