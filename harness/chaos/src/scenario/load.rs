//! Loading and validating scenario files. Every error names the file and the line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use protocol::Platform;
use toml::Spanned;

use super::model::{MeetingSpec, ScenarioFile, StepSpec, Trigger};
use super::{Action, Condition, Meeting, Scenario, Sender, Step, When};
use crate::check::Invariant;
use crate::verdict::Expectation;

/// The longest time a scenario may script (a wait, a fault, a window): ten minutes. A
/// run as a whole is bounded by its deadline besides (`RunSpec::deadline`).
pub const MAX_SCENARIO_MS: u64 = 600_000;
/// The longest timer the service may be given, in ms (a day, as the service takes).
pub const MAX_SERVICE_MS: u64 = protocol::MAX_TIMER_MS;
/// The longest a forged session may claim to have started before now.
const MAX_EARLIER_MS: u64 = 31_536_000_000;

/// One problem in a scenario file, located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}:{column}: {message}")]
pub struct ScenarioError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Every problem found in one file (validation does not stop at the first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ScenarioErrors(pub Vec<ScenarioError>);

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("read scenario {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(#[from] ScenarioErrors),
    #[error("find scenarios under {path}: no .toml file there")]
    Empty { path: PathBuf },
    #[error("read scenario {path}: not a regular file (a pipe, device or socket is refused)")]
    NotAFile { path: PathBuf },
}

/// Every `.toml` file under the paths (files or directories), sorted.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut found = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|source| LoadError::Read {
                path: path.clone(),
                source,
            })?;
            let mut files: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            if files.is_empty() {
                return Err(LoadError::Empty { path: path.clone() });
            }
            files.sort();
            found.extend(files);
        } else {
            found.push(path.clone());
        }
    }
    Ok(found)
}

pub fn load(path: &Path) -> Result<Scenario, LoadError> {
    // A named pipe or a device would block the read forever (or never end).
    let meta = std::fs::metadata(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    if !meta.is_file() {
        return Err(LoadError::NotAFile {
            path: path.to_owned(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(parse(path, &text)?)
}

/// Parses and validates scenario text; `path` only names the file in errors.
pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioErrors> {
    let mut v = Validator {
        path,
        text,
        errors: Vec::new(),
    };
    let file: ScenarioFile = match toml::from_str(text) {
        Ok(file) => file,
        Err(err) => {
            let offset = err.span().map_or(0, |s| s.start);
            v.error(offset, err.message().trim().to_owned());
            return Err(ScenarioErrors(v.errors));
        }
    };
    let scenario = v.scenario(file);
    if v.errors.is_empty() {
        Ok(scenario)
    } else {
        Err(ScenarioErrors(v.errors))
    }
}

struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
    errors: Vec<ScenarioError>,
}

impl Validator<'_> {
    fn error(&mut self, offset: usize, message: impl Into<String>) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        self.errors.push(ScenarioError {
            path: self.path.to_owned(),
            line,
            column,
            message: message.into(),
        });
    }

    /// Where `key = ...` is written in the table that starts at `start` (up to the next
    /// table header), else `start`: errors about a value point at its own line.
    fn key_at(&self, start: usize, key: &str) -> usize {
        let start = start.min(self.text.len());
        let body = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        let end = self.text[body..]
            .find("\n[")
            .map_or(self.text.len(), |i| body + i);
        let region = &self.text[start..end];
        for (i, _) in region.match_indices(key) {
            let before = region[..i].chars().next_back();
            let after = region[i + key.len()..].trim_start();
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && after.starts_with('=')
            {
                return start + i;
            }
        }
        start
    }

    /// `value` of `what` must lie within `min..=max`.
    fn bound(&mut self, at: usize, what: &str, value: u64, min: u64, max: u64) {
        if value < min || value > max {
            self.error(
                at,
                format!("{what} = {value} is out of bounds: it must be from {min} to {max}"),
            );
        }
    }

    fn service(&mut self, spanned: Option<&Spanned<super::model::ServiceSettings>>) {
        let Some(spanned) = spanned else { return };
        let span = spanned.span();
        let s = spanned.get_ref();
        let ms = [
            ("delayed_stop_ms", s.delayed_stop_ms),
            ("pre_active_window_ms", s.pre_active_window_ms),
            ("exited_failure_stop_ms", s.exited_failure_stop_ms),
            ("session_record_delay_ms", s.session_record_delay_ms),
            ("finalizer_grace_ms", s.finalizer_grace_ms),
            ("reconcile_interval_ms", s.reconcile_interval_ms),
            ("dependency_timeout_ms", s.dependency_timeout_ms),
        ];
        for (key, value) in ms {
            if let Some(v) = value {
                let min = u64::from(matches!(
                    key,
                    "reconcile_interval_ms" | "dependency_timeout_ms"
                ));
                let at = self.key_at(span.start, key);
                self.bound(at, &format!("service.{key}"), v, min, MAX_SERVICE_MS);
            }
        }
        if let Some(v) = s.stop_grace_s {
            let at = self.key_at(span.start, "stop_grace_s");
            self.bound(at, "service.stop_grace_s", u64::from(v), 0, 3_600);
        }
        if let Some(mode) = &s.fixed_timers
            && !matches!(mode.as_str(), "require" | "follow")
        {
            let at = self.key_at(span.start, "fixed_timers");
            self.error(
                at,
                format!("service.fixed_timers = {mode:?} is not \"require\" or \"follow\""),
            );
        }
        if let Some(v) = s.current_uid_ttl_s {
            let at = self.key_at(span.start, "current_uid_ttl_s");
            self.bound(at, "service.current_uid_ttl_s", v, 1, 30 * 86_400);
        }
    }

    /// A time's value under the scenario's own timers, bounded, each error at its line.
    fn time(
        &mut self,
        at: usize,
        what: &str,
        value: &super::time::TimeValue,
        min: u64,
        timers: &super::ServiceSettings,
    ) -> u64 {
        match value.eval(timers) {
            Ok(ms) => {
                self.bound(at, what, ms, min, MAX_SCENARIO_MS);
                ms
            }
            Err(err) => {
                self.error(at, format!("{what}: {err}"));
                0
            }
        }
    }

    /// The convergence windows, evaluated; relative ones are noted in `relative`.
    fn convergence(
        &mut self,
        spanned: Option<&Spanned<super::model::Convergence>>,
        timers: &super::ServiceSettings,
        relative: &mut Vec<(super::Relative, super::time::TimeValue)>,
    ) -> [u64; 4] {
        let default = super::model::Convergence::default();
        let (start, c) = match spanned {
            Some(spanned) => (Some(spanned.span().start), spanned.get_ref()),
            None => (None, &default),
        };
        let mut out = [0; 4];
        for (i, (key, value, min, target)) in [
            ("grace_ms", &c.grace_ms, 0, super::Relative::Grace),
            ("deadline_ms", &c.deadline_ms, 0, super::Relative::Deadline),
            ("quiet_ms", &c.quiet_ms, 0, super::Relative::Quiet),
            (
                "step_timeout_ms",
                &c.step_timeout_ms,
                1,
                super::Relative::StepTimeout,
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let at = start.map_or(0, |s| self.key_at(s, key));
            out[i] = self.time(at, &format!("convergence.{key}"), value, min, timers);
            if value.is_relative() {
                relative.push((target, value.clone()));
            }
        }
        out
    }

    fn scenario(&mut self, file: ScenarioFile) -> Scenario {
        let name = file.name.clone().unwrap_or_else(|| {
            self.path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.error(
                0,
                format!("scenario name {name:?} must be non-empty letters, digits, '-' or '_'"),
            );
        }
        let meetings = self.meetings(&file.meetings);
        let labels: BTreeSet<String> = meetings.iter().map(|m| m.label.clone()).collect();
        let timers = file
            .service
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_default();
        let mut relative = Vec::new();
        let steps = self.steps(&file.steps, &labels, &timers, &mut relative);
        let (expect, focus) = self.expect(&file.expect);
        self.service(file.service.as_ref());
        let [grace_ms, deadline_ms, quiet_ms, step_timeout_ms] =
            self.convergence(file.convergence.as_ref(), &timers, &mut relative);
        Scenario {
            name,
            description: file.description.trim().to_owned(),
            covers: file.covers.clone(),
            service: file
                .service
                .as_ref()
                .map(|s| s.get_ref().clone())
                .unwrap_or_default(),
            meetings,
            steps,
            grace_ms,
            deadline_ms,
            quiet_ms,
            step_timeout_ms,
            expect,
            focus,
            relative,
        }
    }

    fn meetings(&mut self, specs: &[Spanned<MeetingSpec>]) -> Vec<Meeting> {
        if specs.is_empty() {
            self.error(0, "a scenario needs at least one [[meetings]]");
        }
        let mut seen = BTreeSet::new();
        let mut meetings = Vec::new();
        for spanned in specs {
            let at = spanned.span().start;
            let spec = spanned.get_ref();
            if !seen.insert(spec.name.clone()) {
                self.error(at, format!("meeting {:?} is defined twice", spec.name));
            }
            let platform = match spec.platform.parse::<Platform>() {
                Ok(p) => p,
                Err(err) => {
                    self.error(at, err.to_string());
                    Platform::GoogleMeet
                }
            };
            if !matches!(spec.user.as_str(), "dev" | "limited") {
                self.error(
                    at,
                    format!(
                        "meeting {:?}: user {:?} is not one of dev, limited",
                        spec.name, spec.user
                    ),
                );
            }
            let env = self.bot_env(at, &spec.name, &spec.bot);
            meetings.push(Meeting {
                label: spec.name.clone(),
                platform,
                user: spec.user.clone(),
                start: spec.start,
                bot_env: env,
            });
        }
        meetings
    }

    /// `leave = "hang"` -> `MOCK_BOT_LEAVE=hang`, checked by the mock bot's own parser.
    fn bot_env(
        &mut self,
        at: usize,
        meeting: &str,
        bot: &BTreeMap<String, toml::Value>,
    ) -> Vec<(String, String)> {
        let mut env = Vec::new();
        for (key, value) in bot {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => if *b { "1" } else { "0" }.to_owned(),
                other => {
                    self.error(at, format!("meeting {meeting:?}: bot.{key} = {other} is not a string, integer or boolean"));
                    continue;
                }
            };
            env.push((
                format!(
                    "{}{}",
                    mock_bot::behaviour::PREFIX,
                    key.to_ascii_uppercase()
                ),
                text,
            ));
        }
        if let Err(err) = mock_bot::behaviour::Behaviour::from_vars(env.clone()) {
            self.error(at, format!("meeting {meeting:?}: bot behaviour: {err}"));
        }
        env
    }

    fn steps(
        &mut self,
        specs: &[Spanned<StepSpec>],
        labels: &BTreeSet<String>,
        timers: &super::ServiceSettings,
        relative: &mut Vec<(super::Relative, super::time::TimeValue)>,
    ) -> Vec<Step> {
        let mut names = BTreeSet::new();
        for (i, spanned) in specs.iter().enumerate() {
            let name = spanned
                .get_ref()
                .name
                .clone()
                .unwrap_or_else(|| format!("step-{}", i + 1));
            if !names.insert(name.clone()) {
                self.error(
                    spanned.span().start,
                    format!("step name {name:?} is used twice"),
                );
            }
        }
        let mut steps = Vec::new();
        for (i, spanned) in specs.iter().enumerate() {
            let at = spanned.span().start;
            let spec = spanned.get_ref();
            let name = spec
                .name
                .clone()
                .unwrap_or_else(|| format!("step-{}", i + 1));
            let mut when = self.when(at, &name, &spec.when, labels, &names);
            self.step_numbers(at, &name, spec);
            let after_at = self.key_at(at, "after_ms");
            when.after_ms = self.time(
                after_at,
                &format!("step {name:?}: after_ms"),
                &spec.when.after_ms,
                0,
                timers,
            );
            let heal_after_ms = spec.heal_after_ms.as_ref().map(|heal| {
                let heal_at = self.key_at(at, "heal_after_ms");
                self.time(
                    heal_at,
                    &format!("step {name:?}: heal_after_ms"),
                    heal,
                    0,
                    timers,
                )
            });
            if let Some(action) = self.action(at, &name, spec, labels) {
                let index = steps.len();
                if spec.when.after_ms.is_relative() {
                    relative.push((
                        super::Relative::After { step: index },
                        spec.when.after_ms.clone(),
                    ));
                }
                if let Some(heal) = spec.heal_after_ms.as_ref().filter(|h| h.is_relative()) {
                    relative.push((super::Relative::Heal { step: index }, heal.clone()));
                }
                steps.push(Step {
                    name,
                    when,
                    action,
                    heal_after_ms,
                    optional: spec.optional,
                });
            }
        }
        steps
    }

    /// Bounds on every number a step gives, each error at the value's own line.
    fn step_numbers(&mut self, at: usize, step: &str, spec: &StepSpec) {
        for (key, value) in [
            ("down_ms", spec.down_ms),
            ("stop_delay_ms", spec.stop_delay_ms),
            ("start_delay_ms", spec.start_delay_ms),
        ] {
            if let Some(v) = value {
                let at = self.key_at(at, key);
                self.bound(at, &format!("step {step:?}: {key}"), v, 0, MAX_SCENARIO_MS);
            }
        }
        if let Some(code) = spec.exit_code {
            let at = self.key_at(at, "exit_code");
            if !(0..=255).contains(&code) {
                self.error(
                    at,
                    format!("step {step:?}: exit_code = {code} is out of bounds: it must be from 0 to 255"),
                );
            }
        }
    }

    fn meeting_ref(
        &mut self,
        at: usize,
        step: &str,
        meeting: Option<&String>,
        labels: &BTreeSet<String>,
    ) -> Option<String> {
        match meeting {
            Some(m) if labels.contains(m) => Some(m.clone()),
            Some(m) => {
                self.error(
                    at,
                    format!(
                        "step {step:?}: meeting {m:?} is not defined in [[meetings]] (defined: {})",
                        join(labels)
                    ),
                );
                None
            }
            None => None,
        }
    }

    fn when(
        &mut self,
        at: usize,
        step: &str,
        t: &Trigger,
        labels: &BTreeSet<String>,
        steps: &BTreeSet<String>,
    ) -> When {
        let conditions = [
            t.status.is_some(),
            t.container.is_some(),
            t.bot_event.is_some(),
            t.published.is_some(),
            t.after_step.is_some(),
            t.sessions.is_some(),
        ]
        .iter()
        .filter(|c| **c)
        .count();
        if conditions > 1 {
            self.error(at, format!("step {step:?}: `when` takes at most one of status, container, bot_event, published, after_step, sessions"));
        }
        let meeting = self.meeting_ref(at, step, t.meeting.as_ref(), labels);
        let needs_meeting = t.status.is_some()
            || t.container.is_some()
            || t.bot_event.is_some()
            || t.published.is_some()
            || t.sessions.is_some();
        if needs_meeting && t.meeting.is_none() {
            self.error(
                at,
                format!("step {step:?}: `when` names a condition about a meeting but no `meeting`"),
            );
        }
        let condition = if let Some(status) = &t.status {
            if !is_status(status) {
                self.error(at, format!("step {step:?}: when.status {status:?} is not a meeting status (requested, joining, awaiting_admission, active, stopping, completed, failed, error)"));
            }
            Some(Condition::Status {
                meeting: meeting.clone().unwrap_or_default(),
                status: status.clone(),
            })
        } else if let Some(state) = &t.container {
            if !matches!(state.as_str(), "started" | "died") {
                self.error(
                    at,
                    format!("step {step:?}: when.container {state:?} is not one of started, died"),
                );
            }
            Some(Condition::Container {
                meeting: meeting.clone().unwrap_or_default(),
                died: state == "died",
            })
        } else if let Some(event) = &t.bot_event {
            if !mock_bot::events::EVENTS.contains(&event.as_str()) {
                self.error(
                    self.key_at(at, "bot_event"),
                    format!(
                        "step {step:?}: when.bot_event {event:?} is not an event the bot logs ({})",
                        mock_bot::events::EVENTS.join(", ")
                    ),
                );
            }
            Some(Condition::BotEvent {
                meeting: meeting.clone().unwrap_or_default(),
                event: event.clone(),
            })
        } else if let Some(what) = &t.published {
            if !PUBLISHED.contains(&what.as_str()) {
                self.error(
                    self.key_at(at, "published"),
                    format!(
                        "step {step:?}: when.published {what:?} is neither a command action sent to a bot nor a status published for a meeting ({})",
                        PUBLISHED.join(", ")
                    ),
                );
            }
            Some(Condition::Published {
                meeting: meeting.clone().unwrap_or_default(),
                what: what.clone(),
            })
        } else if let Some(count) = t.sessions {
            if count == 0 || count > 1000 {
                self.error(
                    self.key_at(at, "sessions"),
                    format!("step {step:?}: when.sessions {count} is not 1 to 1000"),
                );
            }
            Some(Condition::Sessions {
                meeting: meeting.clone().unwrap_or_default(),
                count,
            })
        } else if let Some(other) = &t.after_step {
            if !steps.contains(other) || other == step {
                self.error(at, format!("step {step:?}: when.after_step {other:?} is not another step of this scenario"));
            }
            Some(Condition::AfterStep {
                step: other.clone(),
            })
        } else {
            if t.meeting.is_some() {
                self.error(
                    at,
                    format!("step {step:?}: `when.meeting` without a condition about it"),
                );
            }
            None
        };
        // The delay is worked out by the caller, which knows the timers.
        When {
            condition,
            after_ms: 0,
        }
    }

    fn action(
        &mut self,
        at: usize,
        step: &str,
        spec: &StepSpec,
        labels: &BTreeSet<String>,
    ) -> Option<Action> {
        // Which optional fields each action takes; any other one given is an error.
        let given: Vec<(&str, bool)> = vec![
            ("meeting", spec.meeting.is_some()),
            ("new_uid", spec.new_uid.is_some()),
            ("signal", spec.signal.is_some()),
            ("stop_delay_ms", spec.stop_delay_ms.is_some()),
            ("stop_answers_404", spec.stop_answers_404.is_some()),
            ("start_fails", spec.start_fails.is_some()),
            ("start_delay_ms", spec.start_delay_ms.is_some()),
            ("down_ms", spec.down_ms.is_some()),
            ("status", spec.status.is_some()),
            ("completion_reason", spec.completion_reason.is_some()),
            ("exit_code", spec.exit_code.is_some()),
            ("path", spec.path.is_some()),
            ("heal_after_ms", spec.heal_after_ms.is_some()),
            ("link", spec.link.is_some()),
            ("toxic", spec.toxic.is_some()),
            ("from", spec.from.is_some()),
            ("container", spec.container.is_some()),
            ("session_uid", spec.session_uid.is_some()),
            ("earlier_ms", spec.earlier_ms.is_some()),
        ];
        let (takes, needs_meeting): (&[&str], bool) = match spec.action.as_str() {
            "create" | "stop" | "reconfigure" => (&["meeting"], true),
            "restart_bot" => (&["meeting", "new_uid"], true),
            "kill_bot" => (&["meeting", "signal"], true),
            "pause_bot" => (&["meeting", "heal_after_ms"], true),
            "resume_bot" => (&["meeting"], true),
            "runtime_faults" => (
                &[
                    "stop_delay_ms",
                    "stop_answers_404",
                    "start_fails",
                    "start_delay_ms",
                    "heal_after_ms",
                ],
                false,
            ),
            "forget_containers" => (&[], false),
            "restart_service" => (&["down_ms"], false),
            "stop_service" => (&["heal_after_ms"], false),
            "start_service" => (&[], false),
            "pause_redis" => (&["heal_after_ms"], false),
            "callback" => (
                &[
                    "meeting",
                    "status",
                    "completion_reason",
                    "exit_code",
                    "path",
                    "from",
                    "container",
                ],
                true,
            ),
            "forge_session" => (&["meeting", "from", "session_uid", "earlier_ms"], true),
            "network" => (&["link", "toxic", "heal_after_ms"], false),
            "link_down" => (&["link", "heal_after_ms"], false),
            other => {
                self.error(at, format!("step {step:?}: unknown action {other:?} (create, stop, reconfigure, restart_bot, kill_bot, pause_bot, resume_bot, runtime_faults, forget_containers, restart_service, stop_service, start_service, pause_redis, callback, forge_session, network, link_down)"));
                return None;
            }
        };
        for (field, present) in &given {
            if *present && !takes.contains(field) {
                self.error(
                    at,
                    format!(
                        "step {step:?}: action {:?} does not take `{field}`",
                        spec.action
                    ),
                );
            }
        }
        let meeting = self.meeting_ref(at, step, spec.meeting.as_ref(), labels);
        if needs_meeting && spec.meeting.is_none() {
            self.error(
                at,
                format!("step {step:?}: action {:?} needs `meeting`", spec.action),
            );
        }
        let m = || meeting.clone().unwrap_or_default();
        Some(match spec.action.as_str() {
            "create" => Action::Create { meeting: m() },
            "stop" => Action::Stop { meeting: m() },
            "reconfigure" => Action::Reconfigure { meeting: m() },
            "restart_bot" => Action::RestartBot {
                meeting: m(),
                new_uid: spec.new_uid.unwrap_or(true),
            },
            "kill_bot" => {
                let signal = spec.signal.clone().unwrap_or_else(|| "SIGKILL".into());
                if !signal.starts_with("SIG") || signal.parse::<nix::sys::signal::Signal>().is_err()
                {
                    let at = self.key_at(at, "signal");
                    self.error(
                        at,
                        format!(
                            "step {step:?}: signal {signal:?} is not a signal name like SIGKILL, SIGTERM, SIGINT, SIGSTOP"
                        ),
                    );
                }
                Action::KillBot {
                    meeting: m(),
                    signal,
                }
            }
            "pause_bot" => Action::PauseBot { meeting: m() },
            "resume_bot" => Action::ResumeBot { meeting: m() },
            "runtime_faults" => Action::RuntimeFaults {
                stop_delay_ms: spec.stop_delay_ms,
                stop_answers_404: spec.stop_answers_404,
                start_fails: spec.start_fails,
                start_delay_ms: spec.start_delay_ms,
            },
            "forget_containers" => Action::ForgetContainers,
            "restart_service" => Action::RestartService {
                down_ms: spec.down_ms.unwrap_or(0),
            },
            "stop_service" => Action::StopService,
            "start_service" => Action::StartService,
            "pause_redis" => Action::PauseRedis,
            "callback" => {
                let status = spec.status.clone().unwrap_or_default();
                if !matches!(
                    status.as_str(),
                    "joining" | "awaiting_admission" | "active" | "completed" | "failed"
                ) {
                    self.error(at, format!("step {step:?}: callback status {status:?} is not one a bot reports (joining, awaiting_admission, active, completed, failed)"));
                }
                let path = spec.path.clone().unwrap_or_else(|| "status_change".into());
                if !matches!(path.as_str(), "status_change" | "exited") {
                    self.error(at, format!("step {step:?}: callback path {path:?} is not one of status_change, exited"));
                }
                let meeting = m();
                let from = self.sender(
                    at,
                    step,
                    spec.from.as_deref(),
                    &meeting,
                    labels,
                    Sender::OwnBot,
                )?;
                let container = match &spec.container {
                    Some(label) if !labels.contains(label) => {
                        let at = self.key_at(at, "container");
                        self.error(at, format!("step {step:?}: `container` names meeting {label:?}, which is not defined"));
                        None
                    }
                    other => other.clone(),
                };
                Action::Callback {
                    meeting,
                    status,
                    completion_reason: spec.completion_reason.clone(),
                    exit_code: spec.exit_code,
                    path,
                    from,
                    container,
                }
            }
            "forge_session" => {
                let meeting = m();
                let from = self.sender(
                    at,
                    step,
                    spec.from.as_deref(),
                    &meeting,
                    labels,
                    Sender::Attacker,
                )?;
                let session_uid = spec
                    .session_uid
                    .clone()
                    .unwrap_or_else(|| format!("forged-{step}"));
                if session_uid.trim().is_empty() || session_uid.len() > 255 {
                    let at = self.key_at(at, "session_uid");
                    self.error(
                        at,
                        format!("step {step:?}: `session_uid` must have 1 to 255 characters"),
                    );
                }
                let earlier_ms = spec.earlier_ms.unwrap_or(3_600_000);
                if earlier_ms > MAX_EARLIER_MS {
                    let at = self.key_at(at, "earlier_ms");
                    self.error(at, format!("step {step:?}: `earlier_ms` {earlier_ms} is more than a year ({MAX_EARLIER_MS})"));
                }
                Action::ForgeSession {
                    meeting,
                    from,
                    session_uid,
                    earlier_ms,
                }
            }
            "network" => {
                let link = self.link(at, step, spec.link.as_deref(), labels)?;
                let Some(toxic) = &spec.toxic else {
                    self.error(
                        at,
                        format!("step {step:?}: action \"network\" needs `toxic`"),
                    );
                    return None;
                };
                self.toxic(at, step, link, toxic)?
            }
            "link_down" => Action::LinkDown {
                link: self.link(at, step, spec.link.as_deref(), labels)?,
            },
            _ => unreachable!("checked above"),
        })
    }

    /// `bot`, `attacker` or `bot:<label>` of another defined meeting.
    fn sender(
        &mut self,
        at: usize,
        step: &str,
        from: Option<&str>,
        meeting: &str,
        labels: &BTreeSet<String>,
        default: Sender,
    ) -> Option<Sender> {
        let Some(from) = from else {
            return Some(default);
        };
        let at = self.key_at(at, "from");
        match from.split_once(':') {
            None if from == "bot" => Some(Sender::OwnBot),
            None if from == "attacker" => Some(Sender::Attacker),
            Some(("bot", label)) if label == meeting => {
                self.error(at, format!("step {step:?}: `from = \"bot:{label}\"` is the meeting's own bot: write `from = \"bot\"`"));
                None
            }
            Some(("bot", label)) if labels.contains(label) => Some(Sender::Bot(label.to_owned())),
            Some(("bot", label)) => {
                self.error(
                    at,
                    format!("step {step:?}: `from` names meeting {label:?}, which is not defined"),
                );
                None
            }
            _ => {
                self.error(at, format!("step {step:?}: `from` {from:?} is not one of \"bot\", \"attacker\", \"bot:<meeting>\""));
                None
            }
        }
    }

    /// `service:postgres|redis|runtime` or `bot:<meeting>:redis|callbacks`.
    fn link(
        &mut self,
        at: usize,
        step: &str,
        link: Option<&str>,
        labels: &BTreeSet<String>,
    ) -> Option<String> {
        let Some(link) = link else {
            self.error(at, format!("step {step:?}: a network step needs `link`"));
            return None;
        };
        let ok = match link.split(':').collect::<Vec<_>>().as_slice() {
            ["service", "postgres" | "redis" | "runtime"] => true,
            ["bot", meeting, "redis" | "callbacks"] => {
                if !labels.contains(*meeting) {
                    self.error(at, format!("step {step:?}: link {link:?} names meeting {meeting:?}, which is not defined"));
                    return None;
                }
                true
            }
            _ => false,
        };
        if !ok {
            self.error(at, format!("step {step:?}: link {link:?} is not one of service:postgres, service:redis, service:runtime, bot:<meeting>:redis, bot:<meeting>:callbacks"));
            return None;
        }
        Some(link.to_owned())
    }

    /// `{ type = "reset_peer", stream = "downstream", toxicity = 1.0, attributes = { timeout = 0 } }`
    fn toxic(
        &mut self,
        at: usize,
        step: &str,
        link: String,
        toxic: &toml::Table,
    ) -> Option<Action> {
        for key in toxic.keys() {
            if !matches!(
                key.as_str(),
                "type" | "stream" | "toxicity" | "attributes" | "name"
            ) {
                self.error(at, format!("step {step:?}: toxic key `{key}` is not one of type, stream, toxicity, attributes, name"));
                return None;
            }
        }
        let Some(kind) = toxic.get("type").and_then(|t| t.as_str()) else {
            self.error(at, format!("step {step:?}: toxic needs `type`"));
            return None;
        };
        let stream = match toxic.get("stream") {
            None => fault_proxy::model::Stream::Downstream,
            Some(value) => match value.as_str().and_then(fault_proxy::model::Stream::parse) {
                Some(stream) => stream,
                None => {
                    self.error(at, format!("step {step:?}: toxic stream {value} is not \"upstream\" or \"downstream\""));
                    return None;
                }
            },
        };
        let toxicity = match toxic.get("toxicity") {
            None => 1.0,
            Some(toml::Value::Float(f)) if (0.0..=1.0).contains(f) => *f as f32,
            Some(toml::Value::Integer(i)) if (0..=1).contains(i) => *i as f32,
            Some(other) => {
                self.error(
                    at,
                    format!("step {step:?}: toxicity {other} is not a number from 0 to 1"),
                );
                return None;
            }
        };
        let attributes = match toxic.get("attributes") {
            None => serde_json::Map::new(),
            Some(toml::Value::Table(t)) => match serde_json::to_value(t) {
                Ok(serde_json::Value::Object(map)) => map,
                _ => serde_json::Map::new(),
            },
            Some(other) => {
                self.error(
                    at,
                    format!("step {step:?}: toxic attributes {other} is not a table"),
                );
                return None;
            }
        };
        let kind = match fault_proxy::model::ToxicKind::from_attributes(kind, &attributes)
            .and_then(|k| k.validate().map(|()| k))
        {
            Ok(kind) => kind,
            Err(err) => {
                self.error(at, format!("step {step:?}: toxic: {err}"));
                return None;
            }
        };
        for (name, value) in kind.fields() {
            if matches!(name, "latency" | "jitter" | "delay" | "timeout") {
                self.bound(
                    at,
                    &format!("step {step:?}: toxic attribute {name} (ms)"),
                    value,
                    0,
                    MAX_SCENARIO_MS,
                );
            }
        }
        let name = toxic
            .get("name")
            .and_then(|n| n.as_str())
            .map_or_else(|| step.to_owned(), str::to_owned);
        Some(Action::Network {
            link,
            toxic: name,
            kind,
            stream,
            toxicity,
        })
    }

    fn expect(
        &mut self,
        spanned: &Spanned<BTreeMap<String, Spanned<toml::Value>>>,
    ) -> (BTreeMap<String, Expectation>, Vec<Invariant>) {
        let mut expect = BTreeMap::new();
        let mut focus = Vec::new();
        for (key, value) in spanned.get_ref() {
            let at = value.span().start;
            if key == "focus" {
                let Some(items) = value.get_ref().as_array() else {
                    self.error(at, "expect.focus: expected a list of invariant ids");
                    continue;
                };
                for item in items {
                    match item.as_str().map(str::parse::<Invariant>) {
                        Some(Ok(i)) => focus.push(i),
                        Some(Err(err)) => self.error(at, format!("expect.focus: {err}")),
                        None => self.error(at, "expect.focus: expected invariant ids as strings"),
                    }
                }
                continue;
            }
            if let Err(err) = crate::profiles::check(key) {
                self.error(at, format!("expect.{key}: {err}"));
                continue;
            }
            let Some(text) = value.get_ref().as_str() else {
                self.error(
                    at,
                    format!("expect.{key}: expected a string (\"holds\", \"violates INV-...\")"),
                );
                continue;
            };
            match text.parse::<Expectation>() {
                Ok(e) => {
                    expect.insert(key.clone(), e);
                }
                Err(err) => self.error(at, format!("expect.{key}: {err}")),
            }
        }
        if expect.is_empty() && !spanned.get_ref().keys().any(|k| k != "focus") {
            self.error(
                spanned.span().start,
                "[expect] names no profile (legacy, fixed, a single fix, or a+b)",
            );
        }
        (expect, focus)
    }
}

/// What `when.published` can name (protocol.md section 6): a command's `action` on the
/// bot's channels, or a status on the meeting's status channel.
const PUBLISHED: &[&str] = &[
    "leave",
    "reconfigure",
    "requested",
    "joining",
    "awaiting_admission",
    "active",
    "stopping",
    "completed",
    "failed",
];

fn is_status(s: &str) -> bool {
    s == "error" || s.parse::<protocol::MeetingStatus>().is_ok()
}

fn join(labels: &BTreeSet<String>) -> String {
    labels.iter().cloned().collect::<Vec<_>>().join(", ")
}
