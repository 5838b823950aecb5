//! The system under test as data. `reference` is the project's own bot-manager, started
//! the native way with `--profile`; every other service is described by an adapter file
//! (`fixtures/sut/<name>.toml`, built in, or any file the user gives): how to start it,
//! prepare its database, create users and keys, tell it is ready, restart it, set its
//! timers, and which expectation column judges it. A scenario that needs what an adapter
//! lacks is *not applicable*, never a pass.

mod model;
pub mod standin;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use model::{
    Adapter, DatabaseSpec, DockerTransport, Ready, ServiceSpec, SessionStart, SetupSpec, TimerSpec,
    Users,
};

use crate::scenario::{Action, Scenario, ServiceSettings};

/// The adapters compiled into the binary, so an installed `chaos` needs no source tree.
const BUILTIN: &[(&str, &str)] = &[
    (
        "reference-external",
        include_str!("../../../../fixtures/sut/reference-external.toml"),
    ),
    (
        "reference-later",
        include_str!("../../../../fixtures/sut/reference-later.toml"),
    ),
    (
        "vexa-bot-manager",
        include_str!("../../../../fixtures/sut/vexa-bot-manager.toml"),
    ),
];

/// The name of the built-in, native system under test.
pub const REFERENCE: &str = "reference";

#[derive(Debug, thiserror::Error)]
pub enum SutError {
    #[error(
        "find system under test {name:?}: not `reference`, a built-in adapter ({}), or an adapter file",
        builtin_names().join(", ")
    )]
    Unknown { name: String },
    #[error("read adapter {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}:{line}:{column}: {message}")]
    Invalid {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("expand {what}: {message}")]
    Placeholder { what: String, message: String },
}

/// A system under test: the reference, or a service an adapter describes.
#[derive(Debug, Clone)]
pub struct Sut {
    pub name: String,
    /// What the user gave to `--sut` (a name or a path), for rerun commands.
    pub spec: String,
    /// `None`: the native reference.
    pub adapter: Option<Adapter>,
}

pub fn builtin_names() -> Vec<&'static str> {
    std::iter::once(REFERENCE)
        .chain(BUILTIN.iter().map(|(n, _)| *n))
        .collect()
}

impl Sut {
    pub fn reference() -> Sut {
        Sut {
            name: REFERENCE.into(),
            spec: REFERENCE.into(),
            adapter: None,
        }
    }

    /// `reference`, a built-in adapter's name, or a path to an adapter file.
    pub fn resolve(spec: &str) -> Result<Sut, SutError> {
        if spec == REFERENCE {
            return Ok(Sut::reference());
        }
        if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == spec) {
            let adapter = Adapter::parse(&format!("<built-in {name}>"), text)?;
            return Ok(Sut {
                name: (*name).into(),
                spec: (*name).into(),
                adapter: Some(adapter),
            });
        }
        let path = Path::new(spec);
        if !(spec.ends_with(".toml") || spec.contains('/')) {
            return Err(SutError::Unknown { name: spec.into() });
        }
        if !path.is_file() {
            return Err(SutError::Read {
                path: path.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such regular file"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| SutError::Read {
            path: path.to_owned(),
            source,
        })?;
        let adapter = Adapter::parse(&path.display().to_string(), &text)?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| spec.to_owned());
        Ok(Sut {
            name,
            spec: spec.to_owned(),
            adapter: Some(adapter),
        })
    }

    /// How this service speaks on Redis: its adapter's `[protocol]`, or the reference's.
    pub fn wire(&self) -> protocol::Wire {
        self.adapter.as_ref().map(Adapter::wire).unwrap_or_default()
    }

    /// The one expectation column of a service that takes no profiles (the adapter
    /// must name it: checked when it loads).
    pub fn only_column(&self) -> Option<&str> {
        self.adapter
            .as_ref()
            .filter(|a| !a.profiles)
            .and_then(|a| a.expect_as.as_deref())
    }

    /// The expectation column that judges a run of this service under `profile`.
    pub fn column<'p>(&'p self, profile: &'p str) -> &'p str {
        match self.adapter.as_ref().and_then(|a| a.expect_as.as_deref()) {
            Some(column) => column,
            None => profile,
        }
    }

    /// Why `scenario` cannot be judged against this service, if it cannot: a timer the
    /// service cannot take (unless the scenario follows fixed timers), a link it does not
    /// have. Never a pass.
    pub fn not_applicable(&self, scenario: &Scenario) -> Option<String> {
        self.prepare(scenario).err()
    }

    /// The scenario as this service runs it: where the service's timer is a literal and
    /// the scenario follows fixed timers, the service's value, with every time written
    /// relative to the timers worked out again. An error says why it cannot run.
    pub fn prepare(&self, scenario: &Scenario) -> Result<Scenario, String> {
        let Some(adapter) = self.adapter.as_ref() else {
            return Ok(scenario.clone());
        };
        let follows = scenario.follows_fixed_timers();
        let mut timers = scenario.service.clone();
        let mut reasons = Vec::new();
        let mut mismatched = Vec::new();
        for (key, value) in settings(&scenario.service) {
            match (adapter.timer(key), value) {
                (Some(TimerSpec::Fixed { fixed }), Some(value)) if *fixed != value && !follows => {
                    mismatched.push(format!("service.{key} = {value} (fixed at {fixed})"))
                }
                (Some(TimerSpec::Fixed { fixed }), _) => set(&mut timers, key, *fixed),
                (Some(TimerSpec::Absent { .. }), _) => unset(&mut timers, key),
                (None, Some(value)) => reasons.push(format!(
                    "it sets service.{key} = {value}, which {} cannot take",
                    self.name
                )),
                _ => {}
            }
        }
        if !mismatched.is_empty() {
            reasons.insert(
                0,
                format!(
                    "it sets {}, which {}'s code fixes (a scenario whose times are written relative to the timers can say `fixed_timers = \"follow\"`)",
                    mismatched.join(", "),
                    self.name
                ),
            );
        }
        if adapter.docker.transport == DockerTransport::Unix
            && scenario.steps.iter().any(|s| {
                matches!(&s.action, Action::Network { link, .. } | Action::LinkDown { link } if link == "service:runtime")
            })
        {
            reasons.push(format!(
                "it faults the service:runtime link, but {} reaches the runtime over a unix socket only",
                self.name
            ));
        }
        if !reasons.is_empty() {
            return Err(reasons.join("; "));
        }
        scenario
            .with_timers(timers)
            .map_err(|e| format!("under {}'s timers: {e}", self.name))
    }

    /// The arguments and environment that give the service the scenario's timers.
    pub fn timer_settings(
        &self,
        service: &ServiceSettings,
    ) -> (Vec<String>, Vec<(String, String)>) {
        let (mut args, mut env) = (Vec::new(), Vec::new());
        let Some(adapter) = &self.adapter else {
            return (args, env);
        };
        for (key, value) in settings(service) {
            let Some(value) = value else { continue };
            match adapter.timer(key) {
                Some(TimerSpec::Flag { flag }) => {
                    args.push(flag.clone());
                    args.push(value.to_string());
                }
                Some(TimerSpec::Env { env: name }) => env.push((name.clone(), value.to_string())),
                _ => {}
            }
        }
        (args, env)
    }
}

/// Forgets one timer (the service has none): relative times take the default.
fn unset(s: &mut ServiceSettings, key: &str) {
    match key {
        "delayed_stop_ms" => s.delayed_stop_ms = None,
        "stop_grace_s" => s.stop_grace_s = None,
        "pre_active_window_ms" => s.pre_active_window_ms = None,
        "exited_failure_stop_ms" => s.exited_failure_stop_ms = None,
        "session_record_delay_ms" => s.session_record_delay_ms = None,
        "current_uid_ttl_s" => s.current_uid_ttl_s = None,
        "finalizer_grace_ms" => s.finalizer_grace_ms = None,
        "reconcile_interval_ms" => s.reconcile_interval_ms = None,
        "dependency_timeout_ms" => s.dependency_timeout_ms = None,
        _ => {}
    }
}

/// Sets one timer by its `[service]` key.
fn set(s: &mut ServiceSettings, key: &str, value: u64) {
    match key {
        "delayed_stop_ms" => s.delayed_stop_ms = Some(value),
        "stop_grace_s" => s.stop_grace_s = u32::try_from(value).ok(),
        "pre_active_window_ms" => s.pre_active_window_ms = Some(value),
        "exited_failure_stop_ms" => s.exited_failure_stop_ms = Some(value),
        "session_record_delay_ms" => s.session_record_delay_ms = Some(value),
        "current_uid_ttl_s" => s.current_uid_ttl_s = Some(value),
        "finalizer_grace_ms" => s.finalizer_grace_ms = Some(value),
        "reconcile_interval_ms" => s.reconcile_interval_ms = Some(value),
        "dependency_timeout_ms" => s.dependency_timeout_ms = Some(value),
        _ => {}
    }
}

/// Every timer a scenario can set, by its `[service]` key.
pub fn settings(s: &ServiceSettings) -> [(&'static str, Option<u64>); 9] {
    [
        ("delayed_stop_ms", s.delayed_stop_ms),
        ("stop_grace_s", s.stop_grace_s.map(u64::from)),
        ("pre_active_window_ms", s.pre_active_window_ms),
        ("exited_failure_stop_ms", s.exited_failure_stop_ms),
        ("session_record_delay_ms", s.session_record_delay_ms),
        ("current_uid_ttl_s", s.current_uid_ttl_s),
        ("finalizer_grace_ms", s.finalizer_grace_ms),
        ("reconcile_interval_ms", s.reconcile_interval_ms),
        ("dependency_timeout_ms", s.dependency_timeout_ms),
    ]
}

/// What a run provides to an adapter's templates (`{name}`).
#[derive(Debug, Clone, Default)]
pub struct Vars(pub BTreeMap<&'static str, String>);

/// The placeholders an adapter may use; `{bin:NAME}` besides (a program of the harness).
pub const PLACEHOLDERS: &[&str] = &[
    "port",
    "database_url",
    "db_host",
    "db_port",
    "db_name",
    "db_user",
    "db_password",
    "redis_url",
    "docker_host",
    "docker_socket",
    "callback_base",
    "profile",
    "sut_dir",
    "run_dir",
    "cache_dir",
];

/// Where adapters keep what they install once per machine (`{cache_dir}`):
/// `$STOPFLOW_CACHE_DIR`, else `$XDG_CACHE_HOME/stopflow`, else `~/.cache/stopflow`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STOPFLOW_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("stopflow")
}

/// Replaces every `{name}` of `template` from `vars` (and `{bin:NAME}` by `bin`); an
/// unknown or unset name is an error naming it. `{{` and `}}` stand for braces.
pub fn expand(
    template: &str,
    vars: &Vars,
    bin: &dyn Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("{{") {
            out.push('{');
            rest = after;
            continue;
        }
        if let Some(after) = tail.strip_prefix("}}") {
            out.push('}');
            rest = after;
            continue;
        }
        if tail.starts_with('}') {
            return Err(format!("a lone `}}` in {template:?} (write `}}}}`)"));
        }
        let Some(end) = tail.find('}') else {
            return Err(format!("an unclosed `{{` in {template:?}"));
        };
        let name = &tail[1..end];
        if let Some(program) = name.strip_prefix("bin:") {
            out.push_str(&bin(program)?);
        } else if let Some(value) = vars.0.get(name) {
            out.push_str(value);
        } else if PLACEHOLDERS.contains(&name) {
            return Err(format!("{{{name}}} has no value in this run"));
        } else {
            return Err(format!(
                "{{{name}}} is not a placeholder ({}, bin:NAME)",
                PLACEHOLDERS.join(", ")
            ));
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn vars() -> Vars {
        Vars(BTreeMap::from([
            ("port", "8080".to_owned()),
            ("database_url", "postgres://u@h:1/d".to_owned()),
        ]))
    }

    fn no_bin(name: &str) -> Result<String, String> {
        Ok(format!("/bin/{name}"))
    }

    #[test]
    fn placeholders_expand_and_unknown_ones_are_named() {
        let got = expand(
            "{bin:bot-manager} --listen 127.0.0.1:{port} {{x}}",
            &vars(),
            &no_bin,
        );
        assert_eq!(got.unwrap(), "/bin/bot-manager --listen 127.0.0.1:8080 {x}");
        let err = expand("--db {databse_url}", &vars(), &no_bin).unwrap_err();
        assert!(err.contains("{databse_url} is not a placeholder"), "{err}");
        let err = expand("{redis_url}", &vars(), &no_bin).unwrap_err();
        assert!(err.contains("has no value"), "{err}");
        assert!(expand("{port", &vars(), &no_bin).is_err());
    }

    #[test]
    fn the_builtin_adapters_load() {
        for name in builtin_names() {
            let sut = Sut::resolve(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(sut.name, name);
        }
        assert!(Sut::resolve("reference").unwrap().adapter.is_none());
        let err = Sut::resolve("vexa").unwrap_err().to_string();
        assert!(err.contains("reference-external"), "{err}");
    }

    fn scenario(text: &str) -> Scenario {
        crate::scenario::parse(Path::new("s.toml"), text).unwrap()
    }

    const H1: &str = r#"
description = "d"
[service]
delayed_stop_ms = 1000
stop_grace_s = 1
[[meetings]]
name = "m1"
[[steps]]
action = "network"
link = "service:runtime"
toxic = { type = "latency", attributes = { latency = 10 } }
[expect]
legacy = "holds"
"#;

    fn adapter(timers: &str, transport: &str) -> Sut {
        let text = format!(
            "description = \"x\"\nexpect_as = \"legacy\"\nprofiles = false\n[service]\ncommand = [\"svc\", \"{{port}}\"]\nready = {{ http = \"/\" }}\n[database]\nusers = \"service\"\n[docker]\ntransport = \"{transport}\"\n[timers]\n{timers}\n"
        );
        Sut {
            name: "prod".into(),
            spec: "prod.toml".into(),
            adapter: Some(Adapter::parse("prod.toml", &text).unwrap()),
        }
    }

    #[test]
    fn a_scenario_needing_a_timer_or_link_the_service_lacks_is_not_applicable() {
        // A scenario run against a service that cannot take its timers would be judged
        // on a timeline it never had: it is not applicable, never a pass.
        let s = scenario(H1);
        let sut = adapter(
            "delayed_stop_ms = { fixed = 30000 }\nstop_grace_s = { fixed = 1 }",
            "unix",
        );
        let why = sut.not_applicable(&s).unwrap();
        assert!(
            why.contains("service.delayed_stop_ms = 1000 (fixed at 30000)"),
            "{why}"
        );
        assert!(
            !why.contains("stop_grace_s"),
            "a fixed timer of the same value fits: {why}"
        );
        assert!(why.contains("service:runtime"), "{why}");
        let sut = adapter(
            "delayed_stop_ms = { env = \"DELAYED\" }\nstop_grace_s = { flag = \"--grace\" }",
            "tcp",
        );
        assert_eq!(sut.not_applicable(&s), None);
        let (args, env) = sut.timer_settings(&s.service);
        assert_eq!(args, ["--grace", "1"]);
        assert_eq!(env, [("DELAYED".to_owned(), "1000".to_owned())]);
        assert_eq!(sut.column("fixed"), "legacy");

        // A scenario that follows fixed timers runs on the service's, its relative
        // times worked out again.
        let follows = H1
            .replace(
                "stop_grace_s = 1",
                "stop_grace_s = 1\nfixed_timers = \"follow\"",
            )
            .replace(
                "[expect]",
                "[convergence]\ndeadline_ms = \"delayed_stop_ms + 3000\"\n[expect]",
            )
            .replace("link = \"service:runtime\"", "link = \"service:redis\"");
        let s = scenario(&follows);
        assert_eq!(s.deadline_ms, 4000);
        let sut = adapter(
            "delayed_stop_ms = { fixed = 30000 }\nstop_grace_s = { flag = \"--g\" }",
            "unix",
        );
        let prepared = sut.prepare(&s).unwrap();
        assert_eq!(prepared.service.delayed_stop_ms, Some(30000));
        assert_eq!(prepared.deadline_ms, 33000);
        assert_eq!(Sut::reference().column("fixed"), "fixed");
    }
}
