//! The adapter file format (`fixtures/sut/*.toml`), as serde reads it, and its checks.
//! Unknown keys are errors; every error names the file, line and column.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::{PLACEHOLDERS, SutError, Vars, expand};

/// One implementation of the protocol, described as data.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adapter {
    pub description: String,
    /// The expectation column that judges this service; `None` (`"profile"` in the file):
    /// the `--profile` the run was given, as for the reference.
    #[serde(default, deserialize_with = "expect_as")]
    pub expect_as: Option<String>,
    /// Whether `--profile` reaches the service (as `{profile}`).
    #[serde(default)]
    pub profiles: bool,
    /// What to install once per machine before the first run (a virtual environment).
    #[serde(default)]
    pub setup: Option<SetupSpec>,
    pub service: ServiceSpec,
    pub database: DatabaseSpec,
    pub docker: DockerSpec,
    /// The scenario's `[service]` keys this service takes, and how.
    #[serde(default)]
    pub timers: BTreeMap<String, Spanned<TimerSpec>>,
    /// What every bot of this service is given besides (`MOCK_BOT_*` behaviours), for
    /// example a start delay as long as a real bot's.
    #[serde(default)]
    pub bots: BotsSpec,
    /// How the service speaks on Redis (channels, payloads, keys); the reference's when
    /// absent.
    #[serde(default)]
    pub protocol: Option<Spanned<protocol::Wire>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotsSpec {
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

fn expect_as<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let column = String::deserialize(d)?;
    Ok((column != "profile").then_some(column))
}

/// Commands run once, under a lock, when `creates` does not exist yet; they must create it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupSpec {
    pub creates: Spanned<String>,
    pub commands: Vec<Spanned<Vec<String>>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Program and arguments, with placeholders.
    pub command: Spanned<Vec<String>>,
    /// Working directory (placeholders allowed); the caller's when absent.
    pub workdir: Option<Spanned<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, Spanned<String>>,
    pub ready: Ready,
    /// How to stop it (a restart is a stop, then a start).
    #[serde(default = "sigterm")]
    pub stop_signal: Spanned<String>,
    /// Who records the sessions bots report (`POST /bots/internal/session_start`):
    /// `"service"`, or `"harness"` for a service without that route (production's rows
    /// come from its transcription collector, for which the harness stands in).
    #[serde(default)]
    pub session_start: SessionStart,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStart {
    #[default]
    Service,
    Harness,
}

fn sigterm() -> Spanned<String> {
    Spanned::new(0..0, "SIGTERM".into())
}

/// How to tell the service is ready.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, untagged)]
pub enum Ready {
    /// A line that starts with this on its stdout or stderr.
    Line { line: String },
    /// `GET` this path answers (any status below 500).
    Http { http: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSpec {
    /// Commands run once against the run's fresh database before the first start (the
    /// service's own schema tool, for example), with placeholders.
    #[serde(default)]
    pub prepare: Vec<Spanned<Vec<String>>>,
    /// Who creates the harness's users and API keys.
    pub users: Users,
}

/// `"service"`: the service seeds them itself (the reference's migration); or SQL run once
/// its tables exist, with `{user_id}`, `{email}`, `{max_bots}` and `{token}` per user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, untagged)]
pub enum Users {
    Sql { sql: String },
    Named(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerSpec {
    pub transport: DockerTransport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DockerTransport {
    /// `tcp://...` through a link scenarios can fault.
    Tcp,
    /// `unix://...` only: the service-to-runtime link cannot be faulted.
    Unix,
}

/// How one timer reaches the service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, untagged)]
pub enum TimerSpec {
    Flag {
        flag: String,
    },
    Env {
        env: String,
    },
    /// A literal in the service's code: scenarios must follow it.
    Fixed {
        fixed: u64,
    },
    /// The service has no such timer (a fix's timer, in a service without the fix): a
    /// scenario's value for it does not apply.
    Absent {
        absent: String,
    },
}

impl Adapter {
    /// Parses and checks an adapter; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Adapter, SutError> {
        let at = |offset: usize, message: String| {
            let before = &text[..offset.min(text.len())];
            SutError::Invalid {
                origin: origin.to_owned(),
                line: before.matches('\n').count() + 1,
                column: before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1,
                message,
            }
        };
        let adapter: Adapter = toml::from_str(text).map_err(|e| {
            at(
                e.span().map_or(0, |s| s.start),
                e.message().trim().to_owned(),
            )
        })?;
        // Every template must expand once a run gives every placeholder a value.
        let all = Vars(PLACEHOLDERS.iter().map(|p| (*p, String::new())).collect());
        let bin = |_: &str| Ok(String::new());
        let check = |span: std::ops::Range<usize>, template: &str| {
            expand(template, &all, &bin)
                .map(|_| ())
                .map_err(|m| at(span.start, m))
        };
        let command = &adapter.service.command;
        if command.get_ref().is_empty() {
            return Err(at(command.span().start, "service.command is empty".into()));
        }
        for part in command.get_ref() {
            check(command.span(), part)?;
        }
        if let Some(dir) = &adapter.service.workdir {
            check(dir.span(), dir.get_ref())?;
        }
        for value in adapter.service.env.values() {
            check(value.span(), value.get_ref())?;
        }
        let setup = adapter.setup.iter().flat_map(|s| &s.commands);
        for cmd in adapter.database.prepare.iter().chain(setup) {
            if cmd.get_ref().is_empty() {
                return Err(at(cmd.span().start, "an empty command".into()));
            }
            for part in cmd.get_ref() {
                check(cmd.span(), part)?;
            }
        }
        if let Some(setup) = &adapter.setup {
            check(setup.creates.span(), setup.creates.get_ref())?;
        }
        if let Some(column) = &adapter.expect_as
            && let Err(err) = crate::profiles::check(column)
        {
            return Err(at(0, format!("expect_as {column:?}: {err}")));
        }
        if !adapter.profiles && adapter.expect_as.is_none() {
            return Err(at(
                0,
                "profiles = false needs expect_as to name the column that judges it (\"legacy\", or a column of its own)".into(),
            ));
        }
        if let Users::Named(other) = &adapter.database.users
            && other != "service"
        {
            return Err(at(
                0,
                format!("database.users = {other:?}: expected \"service\" or {{ sql = \"...\" }}"),
            ));
        }
        if let Err(err) = mock_bot::behaviour::Behaviour::from_vars(
            adapter.bots.env.iter().map(|(k, v)| (k.clone(), v.clone())),
        ) {
            return Err(at(0, format!("bots.env: {err}")));
        }
        let signal = &adapter.service.stop_signal;
        if signal
            .get_ref()
            .parse::<nix::sys::signal::Signal>()
            .is_err()
        {
            return Err(at(
                signal.span().start,
                format!(
                    "service.stop_signal {:?} is not a signal name like SIGTERM",
                    signal.get_ref()
                ),
            ));
        }
        let known: Vec<&str> = super::settings(&Default::default())
            .iter()
            .map(|(k, _)| *k)
            .collect();
        for (key, spec) in &adapter.timers {
            if !known.contains(&key.as_str()) {
                return Err(at(
                    spec.span().start,
                    format!(
                        "timers.{key} is not a scenario timer ({})",
                        known.join(", ")
                    ),
                ));
            }
        }
        if let Some(wire) = &adapter.protocol
            && let Err(err) = wire.get_ref().validate()
        {
            return Err(at(wire.span().start, err.to_string()));
        }
        Ok(adapter)
    }
}

impl Adapter {
    /// How the service speaks on Redis.
    pub fn wire(&self) -> protocol::Wire {
        self.protocol
            .as_ref()
            .map(|w| w.get_ref().clone())
            .unwrap_or_default()
    }

    /// The timers as plain specs.
    pub fn timer(&self, key: &str) -> Option<&TimerSpec> {
        self.timers.get(key).map(Spanned::get_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
description = "a service"
expect_as = "legacy"
[service]
command = ["uvicorn", "app.main:app", "--port", "{port}"]
workdir = "{sut_dir}/services/bot-manager"
env = { DATABASE_URL = "{database_url}" }
ready = { http = "/" }
[database]
prepare = [["python", "-c", "init_db()"]]
users = { sql = "INSERT INTO users (id) VALUES ({user_id})" }
[docker]
transport = "unix"
[timers]
delayed_stop_ms = { fixed = 30000 }
stop_grace_s = { env = "GRACE" }
"#;

    #[test]
    fn a_good_adapter_parses() {
        let a = Adapter::parse("a.toml", GOOD).unwrap();
        assert_eq!(a.expect_as.as_deref(), Some("legacy"));
        assert_eq!(a.docker.transport, DockerTransport::Unix);
        assert_eq!(
            a.timer("delayed_stop_ms"),
            Some(&TimerSpec::Fixed { fixed: 30000 })
        );
        assert_eq!(a.service.ready, Ready::Http { http: "/".into() });
        assert!(matches!(a.database.users, Users::Sql { .. }));
    }

    fn error(text: &str) -> String {
        Adapter::parse("a.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_file_line_and_what_is_wrong() {
        let e = error(&GOOD.replace("{port}", "{prot}"));
        assert!(
            e.starts_with("a.toml:5:") && e.contains("{prot} is not a placeholder"),
            "{e}"
        );
        let e = error(&GOOD.replace("stop_grace_s", "stop_grace"));
        assert!(
            e.starts_with("a.toml:16:") && e.contains("timers.stop_grace"),
            "{e}"
        );
        let e = error(&GOOD.replace("transport = \"unix\"", "transport = \"pipe\""));
        assert!(e.starts_with("a.toml:13:"), "{e}");
        let e = error(&GOOD.replace("[docker]", "[docker]\nport = 1"));
        assert!(e.contains("port"), "{e}");
    }

    const LATER: &str = r#"
[protocol]
command_channels = ["bot_commands:meeting:{meeting_id}"]
command_meeting_field = "meeting_id"
status_channels = ["bm:meeting:{meeting_id}:status"]
"#;

    #[test]
    fn a_protocol_table_describes_the_wire_and_defaults_to_the_reference() {
        assert_eq!(
            Adapter::parse("a.toml", GOOD).unwrap().wire(),
            protocol::Wire::reference()
        );
        let wire = Adapter::parse("a.toml", &format!("{GOOD}{LATER}"))
            .unwrap()
            .wire();
        assert_eq!(wire.current_uid_key, None);
        assert_eq!(
            wire.status_channels[0].to_string(),
            "bm:meeting:{meeting_id}:status"
        );
    }

    #[test]
    fn a_bad_protocol_table_is_refused_with_its_line() {
        let e = error(&format!(
            "{GOOD}{}",
            LATER.replace("{meeting_id}:status", "{id}:status")
        ));
        assert!(
            e.starts_with("a.toml:") && e.contains("unknown placeholder {id}"),
            "{e}"
        );
        let e = error(&format!(
            "{GOOD}{}",
            LATER.replace("bm:meeting:{meeting_id}:status", "bm:{user_id}:status")
        ));
        assert!(
            e.starts_with("a.toml:18:") && e.contains("must name"),
            "{e}"
        );
    }
}
