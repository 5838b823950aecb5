//! Scenarios as data: the file format (`model`), its validation (`load`), and the
//! validated form the runner executes (this module).

pub mod load;
pub mod model;
pub mod time;

use std::collections::BTreeMap;

use protocol::Platform;

pub use load::{LoadError, ScenarioError, ScenarioErrors, discover, load, parse};
pub use model::ServiceSettings;

use crate::check::{CheckConfig, Invariant};
use crate::verdict::Expectation;

/// No run goes on longer than this unless `--run-timeout` says so.
pub const RUN_DEADLINE_CAP: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub covers: Vec<String>,
    pub service: ServiceSettings,
    pub meetings: Vec<Meeting>,
    pub steps: Vec<Step>,
    pub grace_ms: u64,
    pub deadline_ms: u64,
    pub quiet_ms: u64,
    pub step_timeout_ms: u64,
    /// Profile name -> what it should give.
    pub expect: BTreeMap<String, Expectation>,
    pub focus: Vec<Invariant>,
    /// The times written relative to the timers, to work out again under a service's
    /// own timers ([`Scenario::with_timers`]).
    pub relative: Vec<(Relative, time::TimeValue)>,
}

/// Which time of a scenario an expression gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relative {
    After { step: usize },
    Heal { step: usize },
    Grace,
    Deadline,
    Quiet,
    StepTimeout,
}

impl Scenario {
    pub fn check_config(&self) -> CheckConfig {
        CheckConfig {
            grace_us: self.grace_ms as i64 * 1000,
            deadline_us: self.deadline_ms as i64 * 1000,
        }
    }

    /// How long a row may take to converge once it has to (see
    /// [`crate::check::convergence`]): the delayed stop, the stop grace, the finalizer's
    /// grace and one reconcile sweep, at the service's defaults where the scenario sets
    /// none.
    pub fn convergence_bound_ms(&self) -> u64 {
        let s = &self.service;
        s.delayed_stop_ms.unwrap_or(30_000)
            + u64::from(s.stop_grace_s.unwrap_or(10)) * 1000
            + s.finalizer_grace_ms.unwrap_or(1_000)
            + s.reconcile_interval_ms.unwrap_or(300_000)
    }

    /// What a run of this scenario is expected to take, for ordering runs (longest
    /// first), not for judging them: its latest scripted moment (delay, a restart's
    /// downtime, a fault's heal) and then the checkers' longest window and the quiet
    /// period. A trigger's own wait is unknown and counted as nothing.
    pub fn expected_ms(&self) -> u64 {
        let steps = self.steps.iter().map(Step::scripted_ms).max().unwrap_or(0);
        steps + self.deadline_ms.max(self.grace_ms) + self.quiet_ms
    }

    /// The run's overall deadline when none is given (`--run-timeout`): time to start the
    /// stack, the longest any step can take (its trigger's timeout, its delay, its action
    /// and its fault's heal), the heals at the end of the fault phase, the checkers'
    /// windows and the engine's settle cap, capped at [`RUN_DEADLINE_CAP`].
    pub fn run_deadline(&self) -> std::time::Duration {
        const STARTUP_MS: u64 = 60_000;
        // An HTTP call of the harness, or a process start or stop, is bounded by 30 s.
        const ACTION_MS: u64 = 60_000;
        const SETTLE_CAP_MS: u64 = 120_000;
        const FINAL_MS: u64 = 30_000;
        let steps = self
            .steps
            .iter()
            .map(|s| self.step_timeout_ms + ACTION_MS + s.scripted_ms())
            .max()
            .unwrap_or(0);
        let derived = STARTUP_MS
            + steps
            + ACTION_MS
            + self.deadline_ms.max(self.grace_ms)
            + self.quiet_ms
            + SETTLE_CAP_MS
            + FINAL_MS;
        std::time::Duration::from_millis(derived.min(RUN_DEADLINE_CAP.as_millis() as u64))
    }

    /// Whether the scenario takes a service's fixed timers instead of its own
    /// (`[service] fixed_timers = "follow"`).
    pub fn follows_fixed_timers(&self) -> bool {
        self.service.fixed_timers.as_deref() == Some("follow")
    }

    /// This scenario under other timers: every time written relative to them worked out
    /// again. An error names the time that no longer makes sense.
    pub fn with_timers(&self, timers: ServiceSettings) -> Result<Scenario, String> {
        let mut s = self.clone();
        s.service = timers;
        for (target, value) in &self.relative {
            let ms = value.eval(&s.service)?;
            // The bounds `validate` checks hold under every service's timers too.
            if ms > load::MAX_SCENARIO_MS {
                return Err(format!(
                    "{target:?} comes to {ms} ms, above the bound of {} ms",
                    load::MAX_SCENARIO_MS
                ));
            }
            match target {
                Relative::After { step } => s.steps[*step].when.after_ms = ms,
                Relative::Heal { step } => s.steps[*step].heal_after_ms = Some(ms),
                Relative::Grace => s.grace_ms = ms,
                Relative::Deadline => s.deadline_ms = ms,
                Relative::Quiet => s.quiet_ms = ms,
                Relative::StepTimeout => s.step_timeout_ms = ms,
            }
        }
        Ok(s)
    }

    /// What this scenario expects under `profile`: as stated, else, for a single fix,
    /// what it expects under legacy (a fix is taken to change nothing the scenario does
    /// not say it changes, so the matrix asserts that too).
    pub fn expectation_for(&self, profile: &str) -> Option<Expectation> {
        if let Some(stated) = self.expect.get(profile) {
            return Some(stated.clone());
        }
        crate::profiles::is_single_fix(profile)
            .then(|| self.expect.get("legacy").cloned())
            .flatten()
    }

    pub fn meeting(&self, label: &str) -> Option<&Meeting> {
        self.meetings.iter().find(|m| m.label == label)
    }
}

#[derive(Debug, Clone)]
pub struct Meeting {
    pub label: String,
    pub platform: Platform,
    pub user: String,
    pub start: bool,
    /// `MOCK_BOT_*` variables for this meeting's bots.
    pub bot_env: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub when: When,
    pub action: Action,
    pub heal_after_ms: Option<u64>,
    /// Whether the run may go on as conclusive when this step does not fire or fails.
    pub optional: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct When {
    pub condition: Option<Condition>,
    pub after_ms: u64,
}

impl std::fmt::Display for When {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.condition {
            Some(c) if self.after_ms > 0 => write!(f, "{c}, then {} ms", self.after_ms),
            Some(c) => write!(f, "{c}"),
            None => write!(f, "{} ms after the start", self.after_ms),
        }
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Condition::Status { meeting, status } => write!(f, "when {meeting} is {status}"),
            Condition::Container { meeting, died } => write!(
                f,
                "when {meeting}'s container {}",
                if *died { "died" } else { "started" }
            ),
            Condition::BotEvent { meeting, event } => {
                write!(f, "when {meeting}'s bot logs {event}")
            }
            Condition::Published { meeting, what } => {
                write!(f, "when {what} is published for {meeting}")
            }
            Condition::AfterStep { step } => write!(f, "after step {step:?}"),
            Condition::Sessions { meeting, count } => {
                write!(f, "when {meeting} has {count} session rows")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Status { meeting: String, status: String },
    Container { meeting: String, died: bool },
    BotEvent { meeting: String, event: String },
    Published { meeting: String, what: String },
    AfterStep { step: String },
    Sessions { meeting: String, count: u32 },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Create {
        meeting: String,
    },
    Stop {
        meeting: String,
    },
    Reconfigure {
        meeting: String,
    },
    RestartBot {
        meeting: String,
        new_uid: bool,
    },
    KillBot {
        meeting: String,
        signal: String,
    },
    PauseBot {
        meeting: String,
    },
    ResumeBot {
        meeting: String,
    },
    RuntimeFaults {
        stop_delay_ms: Option<u64>,
        stop_answers_404: Option<bool>,
        start_fails: Option<bool>,
        start_delay_ms: Option<u64>,
    },
    ForgetContainers,
    RestartService {
        down_ms: u64,
    },
    StopService,
    StartService,
    PauseRedis,
    /// A callback about `meeting`'s bot session, sent by `from`, naming the container of
    /// `container` (default `meeting`'s own).
    Callback {
        meeting: String,
        status: String,
        completion_reason: Option<String>,
        exit_code: Option<i32>,
        path: String,
        from: Sender,
        container: Option<String>,
    },
    /// A session row for `meeting` reported by `from` on the session-start path (the
    /// service's or the collector's), claiming a start `earlier_ms` ago.
    ForgeSession {
        meeting: String,
        from: Sender,
        session_uid: String,
        earlier_ms: u64,
    },
    /// A toxic on a link (fault proxy), removed when healed.
    Network {
        link: String,
        toxic: String,
        kind: fault_proxy::model::ToxicKind,
        stream: fault_proxy::model::Stream,
        toxicity: f32,
    },
    /// A link down (refuses and closes connections), up again when healed.
    LinkDown {
        link: String,
    },
}

/// Who sends a callback or a session report the harness makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// The meeting's own bot, with its credentials (the harness standing in for it).
    OwnBot,
    /// Another meeting's bot, with that bot's credentials (a compromised bot).
    Bot(String),
    /// Anyone on the network, with no credentials.
    Attacker,
}

impl Sender {
    /// As recorded in the history's `by`.
    pub fn by(&self) -> String {
        match self {
            Sender::OwnBot => "bot".into(),
            Sender::Bot(label) => format!("bot:{label}"),
            Sender::Attacker => "attacker".into(),
        }
    }
}

impl Step {
    /// The step's own scripted time once triggered: its delay, a restart's downtime and
    /// its fault's heal.
    pub fn scripted_ms(&self) -> u64 {
        let down = match self.action {
            Action::RestartService { down_ms } => down_ms,
            _ => 0,
        };
        self.when.after_ms + down + self.heal_after_ms.unwrap_or(0)
    }
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Create { .. } => "create",
            Action::Stop { .. } => "stop",
            Action::Reconfigure { .. } => "reconfigure",
            Action::RestartBot { .. } => "restart_bot",
            Action::KillBot { .. } => "kill_bot",
            Action::PauseBot { .. } => "pause_bot",
            Action::ResumeBot { .. } => "resume_bot",
            Action::RuntimeFaults { .. } => "runtime_faults",
            Action::ForgetContainers => "forget_containers",
            Action::RestartService { .. } => "restart_service",
            Action::StopService => "stop_service",
            Action::StartService => "start_service",
            Action::PauseRedis => "pause_redis",
            Action::Callback { .. } => "callback",
            Action::ForgeSession { .. } => "forge_session",
            Action::Network { .. } => "network",
            Action::LinkDown { .. } => "link_down",
        }
    }

    pub fn meeting(&self) -> Option<&str> {
        match self {
            Action::Create { meeting }
            | Action::Stop { meeting }
            | Action::Reconfigure { meeting }
            | Action::RestartBot { meeting, .. }
            | Action::KillBot { meeting, .. }
            | Action::PauseBot { meeting }
            | Action::ResumeBot { meeting }
            | Action::Callback { meeting, .. }
            | Action::ForgeSession { meeting, .. } => Some(meeting),
            _ => None,
        }
    }

    /// Faults that stay in force until healed (by `heal_after_ms` or at the end of the
    /// fault phase).
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            Action::PauseBot { .. }
                | Action::RuntimeFaults { .. }
                | Action::StopService
                | Action::PauseRedis
                | Action::Network { .. }
                | Action::LinkDown { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const GOOD: &str = r#"
description = "H1: the leave hangs and SIGTERM is swallowed"
covers = ["H1"]

[service]
delayed_stop_ms = 1000
stop_grace_s = 1

[[meetings]]
name = "m1"
bot = { leave = "hang" }

[[steps]]
name = "stop"
when = { meeting = "m1", status = "active" }
action = "stop"
meeting = "m1"

[expect]
legacy = "violates INV-TERMINAL, INV-NO-ACTIVE-WITHOUT-CONTAINER"
fixed = "holds"
focus = ["INV-TERMINAL"]
"#;

    #[test]
    fn good_scenario_loads() {
        let s = parse(Path::new("scenarios/h1.toml"), GOOD).unwrap();
        assert_eq!(s.name, "h1");
        assert_eq!(
            s.meetings[0].bot_env,
            [("MOCK_BOT_LEAVE".to_owned(), "hang".to_owned())]
        );
        assert_eq!(
            s.steps[0].action,
            Action::Stop {
                meeting: "m1".into()
            }
        );
        assert_eq!(
            s.steps[0].when.condition,
            Some(Condition::Status {
                meeting: "m1".into(),
                status: "active".into()
            })
        );
        assert_eq!(s.expect["fixed"], Expectation::Holds);
    }

    fn errors(text: &str) -> Vec<String> {
        parse(Path::new("s.toml"), text)
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// GOOD with a second meeting and its last step replaced by `step` (a TOML body).
    fn with_step(step: &str) -> String {
        GOOD.replace(
            "[[steps]]\nname = \"stop\"\nwhen = { meeting = \"m1\", status = \"active\" }\naction = \"stop\"\nmeeting = \"m1\"\n",
            &format!("[[meetings]]\nname = \"m2\"\n\n[[steps]]\nname = \"forge\"\n{step}\n"),
        )
    }

    #[test]
    fn callbacks_and_session_reports_name_their_sender() {
        let s = parse(
            Path::new("s.toml"),
            &with_step("action = \"callback\"\nmeeting = \"m1\"\nstatus = \"active\"\nfrom = \"bot:m2\"\ncontainer = \"m2\""),
        )
        .unwrap();
        let Action::Callback {
            from, container, ..
        } = &s.steps[0].action
        else {
            panic!("{:?}", s.steps[0].action);
        };
        assert_eq!(from, &Sender::Bot("m2".into()));
        assert_eq!(from.by(), "bot:m2");
        assert_eq!(container.as_deref(), Some("m2"));

        let own = parse(
            Path::new("s.toml"),
            &with_step("action = \"callback\"\nmeeting = \"m1\"\nstatus = \"active\""),
        )
        .unwrap();
        let Action::Callback { from, .. } = &own.steps[0].action else {
            panic!();
        };
        assert_eq!(
            from,
            &Sender::OwnBot,
            "a callback is the bot's own unless it says"
        );
        assert_eq!(from.by(), "bot");

        let session = parse(
            Path::new("s.toml"),
            &with_step("action = \"forge_session\"\nmeeting = \"m1\""),
        )
        .unwrap();
        assert_eq!(
            session.steps[0].action,
            Action::ForgeSession {
                meeting: "m1".into(),
                from: Sender::Attacker,
                session_uid: "forged-forge".into(),
                earlier_ms: 3_600_000,
            }
        );
    }

    #[test]
    fn a_step_may_wait_for_a_number_of_session_rows() {
        let text = GOOD.replace(
            "when = { meeting = \"m1\", status = \"active\" }",
            "when = { meeting = \"m1\", sessions = 3, after_ms = 300 }",
        );
        let s = parse(Path::new("s.toml"), &text).unwrap();
        assert_eq!(
            s.steps[0].when.condition,
            Some(Condition::Sessions {
                meeting: "m1".into(),
                count: 3
            })
        );
        let zero = errors(&GOOD.replace(
            "when = { meeting = \"m1\", status = \"active\" }",
            "when = { meeting = \"m1\", sessions = 0 }",
        ));
        assert!(
            zero.iter().any(|e| e.contains("when.sessions 0")),
            "{zero:?}"
        );
        let two = errors(&GOOD.replace(
            "when = { meeting = \"m1\", status = \"active\" }",
            "when = { meeting = \"m1\", status = \"active\", sessions = 2 }",
        ));
        assert!(two.iter().any(|e| e.contains("at most one of")), "{two:?}");
    }

    #[test]
    fn a_bad_sender_is_an_error_naming_the_step_and_line() {
        for (from, says) in [
            ("bot:m1", "the meeting's own bot"),
            ("bot:m9", "\"m9\", which is not defined"),
            ("mallory", "is not one of"),
        ] {
            let errs = errors(&with_step(&format!(
                "action = \"callback\"\nmeeting = \"m1\"\nstatus = \"active\"\nfrom = \"{from}\""
            )));
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert!(errs[0].contains(says), "{from}: {errs:?}");
            assert!(errs[0].starts_with("s.toml:21:"), "{from}: {errs:?}");
        }
        let errs = errors(&with_step(
            "action = \"forge_session\"\nmeeting = \"m1\"\nstatus = \"active\"",
        ));
        assert!(
            errs.iter().any(|e| e.contains("does not take `status`")),
            "{errs:?}"
        );
        let errs = errors(&with_step(
            "action = \"forge_session\"\nmeeting = \"m1\"\nearlier_ms = 99999999999999",
        ));
        assert!(
            errs.iter().any(|e| e.contains("more than a year")),
            "{errs:?}"
        );
    }

    #[test]
    fn unknown_key_is_an_error_with_its_line() {
        let text = GOOD.replace("stop_grace_s = 1", "stop_grace_s = 1\nstop_grase_ms = 3");
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("s.toml:8:"), "{errs:?}");
        assert!(errs[0].contains("stop_grase_ms"), "{errs:?}");
    }

    #[test]
    fn undefined_meeting_and_bad_behaviour_are_both_reported_with_lines() {
        let text = GOOD
            .replace(
                "meeting = \"m1\"\n\n[expect]",
                "meeting = \"m2\"\n\n[expect]",
            )
            .replace("leave = \"hang\"", "leave = \"hung\"");
        let errs = errors(&text);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs.iter()
                .any(|e| e.contains("\"m2\" is not defined") && e.starts_with("s.toml:13:")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("MOCK_BOT_LEAVE") && e.starts_with("s.toml:9:")),
            "{errs:?}"
        );
    }

    #[test]
    fn action_given_a_field_it_does_not_take_is_an_error() {
        let text = GOOD.replace(
            "action = \"stop\"",
            "action = \"stop\"\nsignal = \"SIGTERM\"",
        );
        let errs = errors(&text);
        assert!(errs[0].contains("does not take `signal`"), "{errs:?}");
    }

    #[test]
    fn bad_expectation_names_the_profile() {
        let text = GOOD.replace("fixed = \"holds\"", "fixed = \"passes\"");
        let errs = errors(&text);
        assert!(
            errs[0].contains("expect.fixed") && errs[0].starts_with("s.toml:21:"),
            "{errs:?}"
        );
    }
}
