//! Host aliases from `STOPFLOW_HOST_ALIASES=name=ip,name2=ip`.
//!
//! A bot started as a local process cannot have its own `/etc/hosts`, so the runtime passes
//! Docker's `--add-host` entries in this variable and the bot applies them itself: to the
//! HTTP client's resolver and to the host of `redisUrl` before connecting.

use std::net::{IpAddr, SocketAddr};

use reqwest::Url;

/// The variable the runtime sets.
pub const VAR: &str = "STOPFLOW_HOST_ALIASES";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostAliasError {
    #[error("read {VAR}: the value is not valid UTF-8")]
    NotUnicode,
    #[error("parse {VAR}={value:?}: entry {entry:?} {problem}")]
    Malformed {
        value: String,
        entry: String,
        problem: &'static str,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostAliases {
    entries: Vec<(String, IpAddr)>,
}

impl HostAliases {
    /// Reads [`VAR`]; unset or empty means no alias.
    pub fn from_env() -> Result<Self, HostAliasError> {
        match std::env::var(VAR) {
            Ok(value) => Self::parse(&value),
            Err(std::env::VarError::NotPresent) => Ok(Self::default()),
            Err(std::env::VarError::NotUnicode(_)) => Err(HostAliasError::NotUnicode),
        }
    }

    pub fn parse(value: &str) -> Result<Self, HostAliasError> {
        let mut aliases = HostAliases::default();
        if value.trim().is_empty() {
            return Ok(aliases);
        }
        for entry in value.split(',') {
            let malformed = |problem| HostAliasError::Malformed {
                value: value.to_owned(),
                entry: entry.to_owned(),
                problem,
            };
            let (name, ip) = entry
                .trim()
                .split_once('=')
                .ok_or_else(|| malformed("is not name=ip"))?;
            let name = name.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(malformed("has no valid host name"));
            }
            let ip: IpAddr = ip
                .trim()
                .parse()
                .map_err(|_| malformed("has no valid IP address"))?;
            if aliases.lookup(name).is_some() {
                return Err(malformed("repeats a host name"));
            }
            aliases.entries.push((name.to_ascii_lowercase(), ip));
        }
        Ok(aliases)
    }

    /// Host names compare case-insensitively, as DNS does.
    pub fn lookup(&self, host: &str) -> Option<IpAddr> {
        self.entries
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(host))
            .map(|(_, ip)| *ip)
    }

    /// Makes the HTTP client resolve every alias to its address (the URL keeps its port).
    pub fn apply(&self, mut builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        for (name, ip) in &self.entries {
            builder = builder.resolve(name, SocketAddr::new(*ip, 0));
        }
        builder
    }

    /// Replaces an aliased host in `url` by its address; anything else is returned as is
    /// (an unparsable URL is left for the Redis client to reject).
    pub fn rewrite_url(&self, url: &str) -> String {
        let Ok(mut parsed) = Url::parse(url) else {
            return url.to_owned();
        };
        let Some(ip) = parsed.host_str().and_then(|host| self.lookup(host)) else {
            return url.to_owned();
        };
        match parsed.set_ip_host(ip) {
            Ok(()) => parsed.into(),
            Err(()) => url.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn aliases_parse_and_resolve_case_insensitively() {
        let aliases = HostAliases::parse("bot-manager=127.0.0.1, Redis=::1").unwrap();
        assert_eq!(aliases.lookup("BOT-MANAGER"), Some([127, 0, 0, 1].into()));
        assert_eq!(aliases.lookup("redis"), Some("::1".parse().unwrap()));
        assert_eq!(aliases.lookup("other"), None);
    }

    #[test]
    fn empty_value_means_no_alias() {
        assert_eq!(HostAliases::parse("").unwrap(), HostAliases::default());
    }

    #[rstest]
    #[case("bot-manager")]
    #[case("bot-manager=")]
    #[case("=127.0.0.1")]
    #[case("bot-manager=localhost")]
    #[case("a=127.0.0.1,")]
    #[case("a=127.0.0.1,A=127.0.0.2")]
    fn malformed_aliases_name_the_variable_and_entry(#[case] value: &str) {
        let err = HostAliases::parse(value).unwrap_err().to_string();
        assert!(err.contains(VAR), "{err}");
        assert!(err.contains(&format!("{value:?}")), "{err}");
    }

    #[rstest]
    #[case("redis://redis:6379/0", "redis://127.0.0.1:6379/0")]
    #[case("redis://:secret@redis:6380", "redis://:secret@127.0.0.1:6380")]
    #[case("redis://other:6379/0", "redis://other:6379/0")]
    #[case("not a url", "not a url")]
    fn redis_url_host_is_rewritten_only_when_aliased(#[case] url: &str, #[case] want: &str) {
        let aliases = HostAliases::parse("redis=127.0.0.1").unwrap();
        assert_eq!(aliases.rewrite_url(url), want);
    }

    #[test]
    fn ipv6_alias_is_bracketed_in_the_url() {
        let aliases = HostAliases::parse("redis=::1").unwrap();
        assert_eq!(
            aliases.rewrite_url("redis://redis:6379"),
            "redis://[::1]:6379"
        );
    }
}
