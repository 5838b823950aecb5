//! The scenario file format (`scenarios/*.toml`), as serde reads it. Unknown keys are
//! errors everywhere. `load.rs` then checks what serde cannot (references between steps
//! and meetings, which fields each action takes) and points at the line of each error.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::time::TimeValue;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Defaults to the file name without `.toml`.
    pub name: Option<String>,
    pub description: String,
    /// The incident report's hypotheses (H1..H4) or protocol.md section 9 failure modes
    /// this scenario exercises.
    #[serde(default)]
    pub covers: Vec<String>,
    #[serde(default)]
    pub service: Option<Spanned<ServiceSettings>>,
    pub meetings: Vec<Spanned<MeetingSpec>>,
    #[serde(default)]
    pub steps: Vec<Spanned<StepSpec>>,
    #[serde(default)]
    pub convergence: Option<Spanned<Convergence>>,
    /// `<profile> = "holds" | "violates INV-..." | "pending: why"` for `legacy`, `fixed`,
    /// any single fix or `a+b` combination, and `focus = [...]`: the invariants the
    /// scenario is about. Checked by `load.rs`.
    pub expect: Spanned<BTreeMap<String, Spanned<toml::Value>>>,
}

/// Overrides of the service's timers (the bot-manager flags of the same names).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    pub delayed_stop_ms: Option<u64>,
    pub stop_grace_s: Option<u32>,
    pub pre_active_window_ms: Option<u64>,
    pub exited_failure_stop_ms: Option<u64>,
    pub session_record_delay_ms: Option<u64>,
    pub current_uid_ttl_s: Option<u64>,
    pub finalizer_grace_ms: Option<u64>,
    pub reconcile_interval_ms: Option<u64>,
    pub dependency_timeout_ms: Option<u64>,
    /// `"require"` (default): a service whose timer is a literal of another value cannot
    /// run this scenario (not applicable). `"follow"`: use the service's value instead;
    /// the scenario writes its times relative to the timers.
    pub fixed_timers: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeetingSpec {
    /// The label steps use to name this meeting.
    pub name: String,
    #[serde(default = "default_platform")]
    pub platform: String,
    /// `dev` (default) or `limited` (one concurrent bot).
    #[serde(default = "default_user")]
    pub user: String,
    /// Create it (POST /bots) when the run starts; `false` leaves it to a `create` step.
    #[serde(default = "default_true")]
    pub start: bool,
    /// Bot behaviours: `MOCK_BOT_*` variables without the prefix, in lower case
    /// (`leave = "hang"` is `MOCK_BOT_LEAVE=hang`).
    #[serde(default)]
    pub bot: BTreeMap<String, toml::Value>,
}

fn default_platform() -> String {
    "google_meet".into()
}

fn default_user() -> String {
    "dev".into()
}

fn default_true() -> bool {
    true
}

/// One step: a trigger and an action. The fields an action takes are checked by
/// `load.rs` (anything else given to it is an error).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub name: Option<String>,
    #[serde(default)]
    pub when: Trigger,
    pub action: String,
    pub meeting: Option<String>,
    /// `restart_bot`: give the restarted bot a fresh connection uid (default true).
    pub new_uid: Option<bool>,
    /// `kill_bot`: the signal (default SIGKILL).
    pub signal: Option<String>,
    /// `runtime_faults`: the runtime's misbehaviour.
    pub stop_delay_ms: Option<u64>,
    pub stop_answers_404: Option<bool>,
    pub start_fails: Option<bool>,
    pub start_delay_ms: Option<u64>,
    /// `restart_service`: how long the service stays down.
    pub down_ms: Option<u64>,
    /// `callback`: what the harness posts as if it were the bot.
    pub status: Option<String>,
    pub completion_reason: Option<String>,
    pub exit_code: Option<i32>,
    /// `callback`: `status_change` (default) or `exited`.
    pub path: Option<String>,
    /// `callback`, `forge_session`: who sends it: `bot` (the meeting's own bot, with its
    /// credentials; the default of `callback`), `attacker` (no credentials; the default of
    /// `forge_session`) or `bot:<label>` (another meeting's bot, with that bot's
    /// credentials).
    pub from: Option<String>,
    /// `callback`: the meeting whose container the callback names (default its own).
    pub container: Option<String>,
    /// `forge_session`: the session uid to record (default `forged-<step name>`).
    pub session_uid: Option<String>,
    /// `forge_session`: how much earlier than now the forged session claims to have
    /// started (default an hour, so it is the meeting's earliest).
    pub earlier_ms: Option<u64>,
    /// Fault steps: heal this long after applying (else at the end of the fault phase).
    pub heal_after_ms: Option<TimeValue>,
    /// Network faults (the fault-proxy issue): the link and toxic to apply.
    pub link: Option<String>,
    pub toxic: Option<toml::Table>,
    /// A step that may not fire, or may fail, without making the run inconclusive.
    #[serde(default)]
    pub optional: bool,
}

/// When a step fires: a condition (at most one), then `after_ms` more. With no
/// condition, `after_ms` counts from the start of the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    #[serde(default)]
    pub after_ms: TimeValue,
    /// The meeting the condition is about.
    pub meeting: Option<String>,
    /// The meeting's stored status reached this value.
    pub status: Option<String>,
    /// The meeting's container `started` or `died`.
    pub container: Option<String>,
    /// The meeting's bot logged this event (`leave_hung`, `callback_attempt`, ...).
    pub bot_event: Option<String>,
    /// A command with this action (`leave`) was published to the meeting's bot channels,
    /// or this status was published on its status channel.
    pub published: Option<String>,
    /// Another step (by name) has run.
    pub after_step: Option<String>,
    /// The meeting has at least this many `meeting_sessions` rows stored (its bot's
    /// sessions, reconnects and restarts included).
    pub sessions: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Convergence {
    /// How long a container may be gone while its meeting is not terminal (and run for a
    /// terminal meeting).
    #[serde(default = "default_grace")]
    pub grace_ms: TimeValue,
    /// How long after the stop (or the last heal) the meeting must be terminal.
    #[serde(default = "default_deadline")]
    pub deadline_ms: TimeValue,
    /// Silence that counts as quiet at the end of a run.
    #[serde(default = "default_quiet")]
    pub quiet_ms: TimeValue,
    /// How long a step waits for its trigger before it is recorded as not triggered.
    #[serde(default = "default_step_timeout")]
    pub step_timeout_ms: TimeValue,
}

fn default_grace() -> TimeValue {
    TimeValue::Ms(3_000)
}
fn default_deadline() -> TimeValue {
    TimeValue::Ms(8_000)
}
fn default_quiet() -> TimeValue {
    TimeValue::Ms(300)
}
fn default_step_timeout() -> TimeValue {
    TimeValue::Ms(15_000)
}

impl Default for Convergence {
    fn default() -> Self {
        Convergence {
            grace_ms: default_grace(),
            deadline_ms: default_deadline(),
            quiet_ms: default_quiet(),
            step_timeout_ms: default_step_timeout(),
        }
    }
}
