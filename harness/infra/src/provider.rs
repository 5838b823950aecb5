//! Where Postgres, Redis and Toxiproxy come from: `DATABASE_URL`, `REDIS_URL` and
//! `TOXIPROXY_URL` first, then what the provider chosen gives for the rest:
//!
//! - `containers`: containers through testcontainers, on the Docker daemon at
//!   `DOCKER_HOST` (or the default socket), or on the project's `runtime`;
//! - `local`: throwaway local servers (Postgres, Redis; the embedded fault proxy);
//! - `env`: nothing but the environment (`DATABASE_URL` and `REDIS_URL` must be set);
//! - `auto`: `containers` when a daemon answers a ping at once, else `local`, saying why.
//!
//! The choice is process-wide and made once ([`select`]); a process that never chooses
//! gets `STOPFLOW_INFRA`, else `local`, so tests stay on today's throwaway servers.

use std::fmt;
use std::io::{Read, Write};
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::InfraError;

/// The environment variable of the same meaning as `--infra`.
pub const ENV_VAR: &str = "STOPFLOW_INFRA";
/// Where Docker's clients look when `DOCKER_HOST` is not set.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";
/// Bounds the whole ping: a daemon answers it in milliseconds, and a missing socket or a
/// refused connection fails at once.
const PING_DEADLINE: Duration = Duration::from_secs(2);

/// What was asked for (`--infra`, `STOPFLOW_INFRA`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Auto,
    Containers,
    Local,
    Env,
}

impl Choice {
    pub const NAMES: &'static str = "auto, containers, local, env";

    /// `STOPFLOW_INFRA` when set; the error names the variable and the values it takes.
    pub fn from_env() -> Result<Option<Choice>, InfraError> {
        match std::env::var(ENV_VAR) {
            Ok(text) if !text.trim().is_empty() => {
                text.parse()
                    .map(Some)
                    .map_err(|problem| InfraError::Provider {
                        reason: format!("read {ENV_VAR}: {problem}"),
                    })
            }
            _ => Ok(None),
        }
    }
}

impl std::str::FromStr for Choice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "auto" => Ok(Choice::Auto),
            "containers" => Ok(Choice::Containers),
            "local" => Ok(Choice::Local),
            "env" => Ok(Choice::Env),
            other => Err(format!("{other:?} is not one of {}", Choice::NAMES)),
        }
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Choice::Auto => "auto",
            Choice::Containers => "containers",
            Choice::Local => "local",
            Choice::Env => "env",
        })
    }
}

/// What serves what is missing from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// Containers on the daemon at `docker_host`.
    Containers {
        docker_host: String,
    },
    Local,
    /// Only the environment's URLs.
    Env,
}

/// The provider in use and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub choice: Choice,
    pub provider: Provider,
    /// Why `auto` did not take containers, when it did not.
    pub reason: Option<String>,
}

impl Selection {
    pub fn containers(&self) -> Option<&str> {
        match &self.provider {
            Provider::Containers { docker_host } => Some(docker_host),
            _ => None,
        }
    }
}

/// One line for the run's output: what provides each server, and why not containers.
impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let from_env = |var: &str| std::env::var(var).is_ok_and(|v| !v.trim().is_empty());
        let each = |what: &str, var: &str, otherwise: &str| {
            if from_env(var) {
                format!("{what} from {var}")
            } else {
                format!("{what} {otherwise}")
            }
        };
        match &self.provider {
            Provider::Containers { docker_host } => write!(
                f,
                "infra: containers on the Docker daemon at {docker_host}: {}, {}, {}",
                each("Postgres", "DATABASE_URL", "in a container"),
                each("Redis", "REDIS_URL", "in a container per run"),
                each(
                    "links",
                    "TOXIPROXY_URL",
                    if toxiproxy_container(&|name| std::env::var(name).ok()) {
                        "through a Toxiproxy container (STOPFLOW_TOXIPROXY=container)"
                    } else {
                        "through the embedded fault proxy"
                    }
                ),
            ),
            Provider::Local => {
                write!(
                    f,
                    "infra: local: {}, {}, {}",
                    each("Postgres", "DATABASE_URL", "a throwaway server"),
                    each("Redis", "REDIS_URL", "a throwaway server per run"),
                    each("links", "TOXIPROXY_URL", "through the embedded fault proxy"),
                )?;
                match &self.reason {
                    Some(reason) => write!(f, " (not containers: {reason})"),
                    None => write!(f, " (--infra {})", self.choice),
                }
            }
            Provider::Env => write!(
                f,
                "infra: from the environment: Postgres from DATABASE_URL, Redis from REDIS_URL, {}",
                each("links", "TOXIPROXY_URL", "through the embedded fault proxy"),
            ),
        }
    }
}

static SELECTED: OnceLock<Selection> = OnceLock::new();

/// Chooses the provider for this process (the first call wins; later calls answer the
/// first selection). `auto` pings the daemon unless `DATABASE_URL` and `REDIS_URL` are
/// both set. Fails for `env` without both URLs and for `containers` without a daemon.
pub fn select(choice: Choice) -> Result<&'static Selection, InfraError> {
    if let Some(selected) = SELECTED.get() {
        return Ok(selected);
    }
    let selection = choose(choice, &|name| std::env::var(name).ok())?;
    Ok(SELECTED.get_or_init(|| selection))
}

/// The selection made, or the default one (`STOPFLOW_INFRA`, else `local`).
pub fn current() -> Result<&'static Selection, InfraError> {
    match SELECTED.get() {
        Some(selected) => Ok(selected),
        None => select(Choice::from_env()?.unwrap_or(Choice::Local)),
    }
}

/// What [`select`] would choose with the environment `var` reads (pure but for the ping).
pub fn choose(
    choice: Choice,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Selection, InfraError> {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    let both_urls = set("DATABASE_URL") && set("REDIS_URL");
    let selection = |provider, reason| Selection {
        choice,
        provider,
        reason,
    };
    match choice {
        Choice::Local => Ok(selection(Provider::Local, None)),
        Choice::Env if both_urls => Ok(selection(Provider::Env, None)),
        Choice::Env => Err(InfraError::Provider {
            reason: format!(
                "use --infra env: it takes every server from the environment, and {} not set",
                match (set("DATABASE_URL"), set("REDIS_URL")) {
                    (false, false) => "DATABASE_URL and REDIS_URL are",
                    (false, true) => "DATABASE_URL is",
                    _ => "REDIS_URL is",
                }
            ),
        }),
        Choice::Auto if both_urls => Ok(selection(Provider::Env, None)),
        Choice::Containers | Choice::Auto => {
            let docker_host = docker_host_in(var);
            match ping_in(&docker_host, var) {
                Ok(()) => Ok(selection(Provider::Containers { docker_host }, None)),
                Err(reason) if choice == Choice::Auto => {
                    Ok(selection(Provider::Local, Some(reason)))
                }
                Err(reason) => Err(InfraError::Provider {
                    reason: format!("use --infra containers: {reason}"),
                }),
            }
        }
    }
}

/// Set to `container` to put the runs' links on the `containers` provider's Toxiproxy.
pub const TOXIPROXY_VAR: &str = "STOPFLOW_TOXIPROXY";

/// Where the run's links go: `TOXIPROXY_URL`; else, with `STOPFLOW_TOXIPROXY=container`
/// and the `containers` provider, its Toxiproxy (started once per process); else `None`:
/// the embedded fault proxy.
///
/// The embedded proxy is the default on every provider because verdicts must not depend
/// on the provider: with the links in another process (any Toxiproxy, `TOXIPROXY_URL`
/// too), a bot on a loaded machine can read a leave before the harness's recorder sees
/// it published, which leaves INV-LEAVE-ROUTED undecided (5 of the catalogue's 73 runs
/// at 24 at once on 2 cores).
pub fn toxiproxy_url() -> Result<Option<String>, InfraError> {
    if let Ok(url) = std::env::var("TOXIPROXY_URL")
        && !url.trim().is_empty()
    {
        return Ok(Some(url.trim().to_owned()));
    }
    let asked = toxiproxy_container(&|name| std::env::var(name).ok());
    match current()?.provider {
        Provider::Containers { .. } if asked => {
            let container = crate::containers::shared_toxiproxy()?;
            Ok(Some(format!(
                "http://{}:{}",
                container.host(),
                container.port()
            )))
        }
        Provider::Containers { .. } | Provider::Local | Provider::Env => Ok(None),
    }
}

/// Whether the runs' links go to a Toxiproxy container ([`toxiproxy_url`]).
fn toxiproxy_container(var: &dyn Fn(&str) -> Option<String>) -> bool {
    var(TOXIPROXY_VAR).is_some_and(|v| v.trim() == "container")
}

/// The daemon address testcontainers uses: `DOCKER_HOST`, else the first of Docker's
/// usual sockets that exists, else [`DEFAULT_DOCKER_HOST`].
pub fn docker_host() -> String {
    docker_host_in(&|name| std::env::var(name).ok())
}

fn docker_host_in(var: &dyn Fn(&str) -> Option<String>) -> String {
    if let Some(host) = var("DOCKER_HOST")
        && !host.trim().is_empty()
    {
        return host.trim().to_owned();
    }
    let home = var("HOME").map(PathBuf::from);
    let runtime_dir = var("XDG_RUNTIME_DIR").map(PathBuf::from);
    let candidates = [
        Some(PathBuf::from("/var/run/docker.sock")),
        runtime_dir.map(|d| d.join(".docker/run/docker.sock")),
        home.as_ref().map(|d| d.join(".docker/run/docker.sock")),
        home.as_ref().map(|d| d.join(".docker/desktop/docker.sock")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|path| path.exists())
        .map_or_else(
            || DEFAULT_DOCKER_HOST.to_owned(),
            |path| format!("unix://{}", path.display()),
        )
}

/// Asks the daemon at `host` for `GET /_ping` within [`PING_DEADLINE`]; the error says,
/// in a phrase, why nothing usable answers (no socket, refused, not Docker, TLS asked).
pub fn ping(host: &str) -> Result<(), String> {
    ping_in(host, &|name| std::env::var(name).ok())
}

fn ping_in(host: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    let unset = var("DOCKER_HOST").is_none_or(|h| h.trim().is_empty());
    let named = if unset {
        format!("{host} (DOCKER_HOST is not set)")
    } else {
        host.to_owned()
    };
    if var("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty() && v != "0") {
        return Err(format!(
            "DOCKER_TLS_VERIFY is set, and the harness reaches a daemon over a socket or plain TCP only ({named})"
        ));
    }
    let answer = if let Some(path) = host.strip_prefix("unix://") {
        ping_unix(Path::new(path))
    } else if let Some(address) = host
        .strip_prefix("tcp://")
        .or_else(|| host.strip_prefix("http://"))
    {
        ping_tcp(address.trim_end_matches('/'))
    } else {
        return Err(format!(
            "no Docker daemon the harness can reach at {named}: it speaks to unix:// and tcp:// hosts"
        ));
    };
    answer.map_err(|problem| format!("no Docker daemon answers at {named}: {problem}"))
}

fn ping_unix(path: &Path) -> Result<(), String> {
    if !path.exists() {
        return Err("no such socket".to_owned());
    }
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(|e| e.to_string())?;
    exchange(&mut stream, |s, t| {
        s.set_read_timeout(Some(t))?;
        s.set_write_timeout(Some(t))
    })
}

fn ping_tcp(address: &str) -> Result<(), String> {
    let addr = address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {address}: {e}"))?
        .next()
        .ok_or_else(|| format!("{address} resolves to no address"))?;
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, PING_DEADLINE).map_err(|e| e.to_string())?;
    exchange(&mut stream, |s, t| {
        s.set_read_timeout(Some(t))?;
        s.set_write_timeout(Some(t))
    })
}

/// Whether `GET path` on `address` (`host:port`) answers 200 within the ping's bound.
pub fn http_get_ok(address: &str, path: &str) -> bool {
    let Some(addr) = address.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, PING_DEADLINE) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(PING_DEADLINE));
    let _ = stream.set_write_timeout(Some(PING_DEADLINE));
    let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = (&mut stream).take(64 * 1024).read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .is_some_and(|line| line.starts_with("HTTP/1.") && line.split(' ').nth(1) == Some("200"))
}

/// Sends the ping and reads the answer, which must be `200` and `OK`.
fn exchange<S: Read + Write>(
    stream: &mut S,
    bound: impl Fn(&S, Duration) -> std::io::Result<()>,
) -> Result<(), String> {
    bound(stream, PING_DEADLINE).map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .map_err(|e| format!("sending the ping: {e}"))?;
    let mut answer = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut answer)
        .map_err(|e| format!("reading the answer to the ping: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let status_ok = text
        .lines()
        .next()
        .is_some_and(|line| line.starts_with("HTTP/1.") && line.split(' ').nth(1) == Some("200"));
    if status_ok && text.trim_end().ends_with("OK") {
        Ok(())
    } else {
        Err(format!(
            "it does not answer as Docker does: {:?}",
            text.lines().next().unwrap_or_default()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_read_their_names_and_name_what_is_wrong() {
        assert_eq!("containers".parse::<Choice>(), Ok(Choice::Containers));
        assert_eq!(" auto ".parse::<Choice>(), Ok(Choice::Auto));
        let err = "docker".parse::<Choice>().unwrap_err();
        assert!(err.contains("\"docker\"") && err.contains("local"), "{err}");
    }

    #[test]
    fn a_missing_socket_is_named_at_once() {
        let reason = ping("unix:///nonexistent/stopflow/docker.sock").unwrap_err();
        assert!(reason.contains("no such socket"), "{reason}");
    }

    #[test]
    fn a_closed_port_is_refused_at_once() {
        let port = crate::process::free_port().unwrap();
        let reason = ping(&format!("tcp://127.0.0.1:{port}")).unwrap_err();
        assert!(reason.contains(&port.to_string()), "{reason}");
    }

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn auto_without_a_daemon_takes_local_and_says_why() {
        let selection = choose(
            Choice::Auto,
            &env(&[("DOCKER_HOST", "unix:///nonexistent/stopflow/docker.sock")]),
        )
        .unwrap();
        assert_eq!(selection.provider, Provider::Local);
        let reason = selection.reason.clone().unwrap();
        assert!(
            reason.contains("/nonexistent/stopflow/docker.sock"),
            "{reason}"
        );
        let line = selection.to_string();
        assert!(
            line.starts_with("infra: local") && line.contains("not containers"),
            "{line}"
        );
    }

    #[test]
    fn containers_without_a_daemon_fail_naming_the_host() {
        let err = choose(
            Choice::Containers,
            &env(&[("DOCKER_HOST", "unix:///nonexistent/stopflow/docker.sock")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("--infra containers"), "{err}");
    }

    #[test]
    fn the_environments_urls_come_first_and_env_needs_both() {
        let both = env(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("REDIS_URL", "redis://x/"),
        ]);
        assert_eq!(choose(Choice::Auto, &both).unwrap().provider, Provider::Env);
        assert_eq!(choose(Choice::Env, &both).unwrap().provider, Provider::Env);
        let err = choose(Choice::Env, &env(&[("DATABASE_URL", "postgres://x/y")])).unwrap_err();
        assert!(err.to_string().contains("REDIS_URL is not set"), "{err}");
        assert_eq!(
            choose(Choice::Local, &env(&[])).unwrap().provider,
            Provider::Local
        );
    }

    #[test]
    fn tls_is_not_spoken_and_is_said_so() {
        let reason = ping_in(
            "tcp://127.0.0.1:2376",
            &env(&[
                ("DOCKER_TLS_VERIFY", "1"),
                ("DOCKER_HOST", "tcp://127.0.0.1:2376"),
            ]),
        )
        .unwrap_err();
        assert!(reason.contains("DOCKER_TLS_VERIFY"), "{reason}");
    }

    #[test]
    fn hosts_the_harness_cannot_speak_to_are_said_so() {
        let reason = ping("ssh://user@box").unwrap_err();
        assert!(reason.contains("unix:// and tcp://"), "{reason}");
    }
}
