//! The scripted behaviour of one bot, parsed strictly from `MOCK_BOT_*` variables.
//!
//! Defaults mirror the production bot at the time of the incident, so a bot started with
//! no `MOCK_BOT_*` variable behaves like the legacy one (its extra subscription to the
//! meeting channel, `MOCK_BOT_MEETING_CHANNEL`, is silent under a legacy service, which
//! never publishes there). Timings are milliseconds so tests
//! can shrink them. An unknown `MOCK_BOT_*` variable, an unknown value or a non-number is
//! an error naming the variable and the value (the bot then exits 1).
//!
//! Every number has a range, checked here, before the bot does anything: a time (`ms`) is
//! at most a day ([`Behaviour::MAX_MS`]; the start delay 10 minutes), a count at most
//! [`Behaviour::MAX_COUNT`], the reconnect skew within ten years either way
//! ([`Behaviour::MAX_SKEW_MS`]), the backoff list at most [`Behaviour::MAX_BACKOFFS`]
//! waits. A value out of its range is an error naming the variable, the value and the
//! range, so no later arithmetic on it (deadlines, timestamps) can overflow.
//!
//! | variable | values (default) | effect |
//! |---|---|---|
//! | `MOCK_BOT_START_DELAY_MS` | ms, at most 600000 (200) | the earliest time, from the bot's start, of its first report (`joining`); the subscription still comes first, so the report waits for whichever is later. The service records the connectionId session row after the container start, fire-and-forget (protocol.md section 11): a first report that overtakes that write is answered "session not found" and the meeting stays `requested`. The default keeps the bot on the safe side of that race; `0` reports as soon as it has subscribed |
//! | `MOCK_BOT_JOIN_DELAY_MS` | ms (100) | time in `joining` before the waiting room |
//! | `MOCK_BOT_ADMISSION_DELAY_MS` | ms (100) | time after each `awaiting_admission` report |
//! | `MOCK_BOT_AWAITING_ADMISSION_REPEATS` | count (1) | `awaiting_admission` reports sent (0 skips the waiting room) |
//! | `MOCK_BOT_LEAVE` | `normal`\|`hang` (normal) | `hang`: the leave UI step never returns (`leave_hung`), so no terminal callback |
//! | `MOCK_BOT_LEAVE_DELAY_MS` | ms (0) | duration of a `normal` leave step |
//! | `MOCK_BOT_SIGTERM` | `ignore`\|`graceful` (ignore) | `ignore`: SIGTERM does nothing (PID-1 shell), the runtime ends in SIGKILL/137; `graceful`: leave, terminal callback, exit 143 |
//! | `MOCK_BOT_SIGTERM_GRACE_MS` | ms (5000) | `graceful`: the bot exits 143 at the latest this long after the first SIGTERM, callback sent or not |
//! | `MOCK_BOT_SUBSCRIBE` | `ok`\|`fail`\|`late` (ok) | `fail`: never subscribe (go on without commands); `late`: subscribe only after `MOCK_BOT_SUBSCRIBE_DELAY_MS`, without holding up joining |
//! | `MOCK_BOT_SUBSCRIBE_DELAY_MS` | ms (1000) | delay of a `late` subscription |
//! | `MOCK_BOT_SUBSCRIBE_TIMEOUT_MS` | ms (5000) | a connect and subscribe (first or resubscribe) taking longer counts as failed |
//! | `MOCK_BOT_RESUBSCRIBE` | `0`\|`1` (1) | resubscribe with bounded backoff when the subscription stream ends (messages in the gap are lost) |
//! | `MOCK_BOT_MEETING_CHANNEL` | `0`\|`1` (1) | also subscribe to `bot_commands:meeting:{meeting_id}` on the same connection (`MOCK_BOT_SUBSCRIBE*` and `MOCK_BOT_RESUBSCRIBE` apply to it alike; a uid switch leaves it in place); `0`: a bot from before that fix, listening on `bot_commands:{connectionId}` only |
//! | `MOCK_BOT_CALLBACK` | `once`\|`retry`\|`drop` (once) | terminal callback: `once` one attempt, no timeout; `retry` 3 attempts with timeout and backoff; `drop` never sent |
//! | `MOCK_BOT_CALLBACK_TIMEOUT_MS` | ms (5000) | per-attempt timeout of `retry` |
//! | `MOCK_BOT_CALLBACK_BACKOFF_MS` | ms list (`1000,2000`) | waits between `retry` attempts (the last one repeats) |
//! | `MOCK_BOT_CALLBACK_PATH` | `status_change`\|`exited` (status_change) | where the terminal callback goes; `exited` posts the legacy `/exited` payload |
//! | `MOCK_BOT_COMPLETION_REASON` | any text (`stopped`; `left_alone` after `MOCK_BOT_ACTIVE_FOR_MS`; `awaiting_admission_timeout` after the waiting-room timeout) | sent verbatim, even values the server rejects (`removed_by_admin`) |
//! | `MOCK_BOT_DUPLICATE_TERMINAL` | count (0) | extra copies of the terminal callback |
//! | `MOCK_BOT_LATE_JOINING_AFTER_LEAVE` | `0`\|`1` (0) | send a `joining` status after the leave step, before the terminal one |
//! | `MOCK_BOT_RESTART_NEW_UID_AFTER_MS` | ms (never) | this long after `active`, switch to a fresh connection uid: move the subscription, open a session, use it in later callbacks |
//! | `MOCK_BOT_RECONNECTS` | count (0) | transcription sessions after the first, each with a fresh uid |
//! | `MOCK_BOT_RECONNECT_INTERVAL_MS` | ms (50) | time between transcription sessions |
//! | `MOCK_BOT_RECONNECT_SKEW_MS` | signed ms, within ±315360000000 (0) | added to the client timestamp of reconnect sessions (negative: earlier than the first) |
//! | `MOCK_BOT_CRASH` | `<phase>:<code>` (none) | phase `joining`\|`awaiting_admission`\|`active`\|`leaving`: exit with `code` (0-255) `MOCK_BOT_CRASH_AFTER_MS` after entering the phase, with no terminal callback |
//! | `MOCK_BOT_CRASH_AFTER_MS` | ms (0) | delay of the crash after entering its phase |
//! | `MOCK_BOT_EXIT_DELAY_MS` | ms (0) | slow exit: wait this long after the terminal callback |
//! | `MOCK_BOT_ACTIVE_FOR_MS` | ms (forever) | leave by itself after this long active (completion reason `left_alone`): how a scenario scripts "everyone left" |
//! | `MOCK_BOT_REDIS_URL` | `redis://` URL (`BOT_CONFIG.redisUrl`) | replaces `redisUrl` for every Redis connection (subscription and resubscriptions), e.g. a per-bot fault proxy; `STOPFLOW_HOST_ALIASES` still applies to its host |
//! | `MOCK_BOT_SESSION_BASE` | `http://host[:port]` (none) | where `session_start` requests go instead of the callback base: a stand-in for the service that records sessions in production (its transcription collector) |
//! | `MOCK_BOT_CALLBACK_BASE` | `http://host[:port]` (the callback URL's own) | replaces scheme, host and port of `BOT_CONFIG.botManagerCallbackUrl`, keeping its path, for every callback and `session_start` request; no path, query, fragment or user info; `STOPFLOW_HOST_ALIASES` still applies to its host |
//!
//! The two URL variables exist for the harness's fault proxy, which gives each bot its own
//! port (host aliases cannot change a port). The `started` event logs the effective URLs.
//!
//! The `MOCK_BOT_CALLBACK*` variables govern the terminal callback only; `joining`,
//! `awaiting_admission` and `active` are always one attempt with no timeout, their answer
//! ignored, as the legacy bot sends them.
//!
//! `BOT_CONFIG.automaticLeave.waitingRoomTimeout` is honoured as the production bot does:
//! still awaiting admission that long after the first `awaiting_admission` report, the bot
//! leaves (completion reason `awaiting_admission_timeout`). The mock is admitted
//! `MOCK_BOT_AWAITING_ADMISSION_REPEATS` x `MOCK_BOT_ADMISSION_DELAY_MS` after that report,
//! so a scenario makes the timeout fire with a larger admission delay (or more repeats)
//! than the timeout. `noOneJoinedTimeout` and `everyoneLeftTimeout` are not modelled: the
//! mock is never alone unless `MOCK_BOT_ACTIVE_FOR_MS` says so.
//!
//! Entering a phase means reporting it: `joining`, the first `awaiting_admission` and
//! `active` are entered once their `status_change` has been sent; `leaving` once the leave
//! step starts.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use reqwest::Url;

/// The prefix of every behaviour variable.
pub const PREFIX: &str = "MOCK_BOT_";

/// Every variable [`Behaviour`] reads; anything else under [`PREFIX`] is an error.
pub const KNOWN_VARS: &[&str] = &[
    "MOCK_BOT_START_DELAY_MS",
    "MOCK_BOT_JOIN_DELAY_MS",
    "MOCK_BOT_ADMISSION_DELAY_MS",
    "MOCK_BOT_AWAITING_ADMISSION_REPEATS",
    "MOCK_BOT_LEAVE",
    "MOCK_BOT_LEAVE_DELAY_MS",
    "MOCK_BOT_SIGTERM",
    "MOCK_BOT_SIGTERM_GRACE_MS",
    "MOCK_BOT_SUBSCRIBE",
    "MOCK_BOT_SUBSCRIBE_DELAY_MS",
    "MOCK_BOT_SUBSCRIBE_TIMEOUT_MS",
    "MOCK_BOT_RESUBSCRIBE",
    "MOCK_BOT_MEETING_CHANNEL",
    "MOCK_BOT_CALLBACK",
    "MOCK_BOT_CALLBACK_TIMEOUT_MS",
    "MOCK_BOT_CALLBACK_BACKOFF_MS",
    "MOCK_BOT_CALLBACK_PATH",
    "MOCK_BOT_COMPLETION_REASON",
    "MOCK_BOT_DUPLICATE_TERMINAL",
    "MOCK_BOT_LATE_JOINING_AFTER_LEAVE",
    "MOCK_BOT_RESTART_NEW_UID_AFTER_MS",
    "MOCK_BOT_RECONNECTS",
    "MOCK_BOT_RECONNECT_INTERVAL_MS",
    "MOCK_BOT_RECONNECT_SKEW_MS",
    "MOCK_BOT_CRASH",
    "MOCK_BOT_CRASH_AFTER_MS",
    "MOCK_BOT_EXIT_DELAY_MS",
    "MOCK_BOT_ACTIVE_FOR_MS",
    "MOCK_BOT_REDIS_URL",
    "MOCK_BOT_CALLBACK_BASE",
    "MOCK_BOT_SESSION_BASE",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BehaviourError {
    #[error("read {var}: not a known MOCK_BOT_ variable (known: {})", KNOWN_VARS.join(", "))]
    Unknown { var: String },
    #[error("read {var}: the value is not valid UTF-8")]
    NotUnicode { var: String },
    #[error("parse {var}={value:?}: {expected}")]
    Invalid {
        var: &'static str,
        value: String,
        expected: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveMode {
    Normal,
    Hang,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigtermMode {
    Ignore,
    Graceful,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeMode {
    Ok,
    Fail,
    Late,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackMode {
    Once,
    Retry,
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackPath {
    StatusChange,
    Exited,
}

impl CallbackPath {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackPath::StatusChange => "status_change",
            CallbackPath::Exited => "exited",
        }
    }
}

/// A phase of the bot's life a scripted crash can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Joining,
    AwaitingAdmission,
    Active,
    Leaving,
}

impl Phase {
    const ALL: [Phase; 4] = [
        Phase::Joining,
        Phase::AwaitingAdmission,
        Phase::Active,
        Phase::Leaving,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Joining => "joining",
            Phase::AwaitingAdmission => "awaiting_admission",
            Phase::Active => "active",
            Phase::Leaving => "leaving",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `MOCK_BOT_CRASH=<phase>:<exit_code>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crash {
    pub phase: Phase,
    pub exit_code: u8,
}

/// What the terminal callback attempts look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackPolicy {
    pub mode: CallbackMode,
    pub path: CallbackPath,
    /// Per-attempt timeout, `retry` only (the legacy bot has none).
    pub timeout: Duration,
    /// Waits between `retry` attempts; the last one repeats.
    pub backoff: Vec<Duration>,
}

impl CallbackPolicy {
    /// Attempts of the `retry` mode (the later production bot's count).
    pub const RETRY_ATTEMPTS: u32 = 3;

    pub fn attempts(&self) -> u32 {
        match self.mode {
            CallbackMode::Once => 1,
            CallbackMode::Retry => Self::RETRY_ATTEMPTS,
            CallbackMode::Drop => 0,
        }
    }

    pub fn attempt_timeout(&self) -> Option<Duration> {
        (self.mode == CallbackMode::Retry).then_some(self.timeout)
    }

    /// The wait before attempt `attempt + 1`, after attempt `attempt` (1-based) failed.
    pub fn backoff_after(&self, attempt: u32) -> Duration {
        let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        self.backoff
            .get(index)
            .or(self.backoff.last())
            .copied()
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeBehaviour {
    pub mode: SubscribeMode,
    pub delay: Duration,
    /// A connect and subscribe taking longer counts as failed.
    pub timeout: Duration,
    pub resubscribe: bool,
    /// Also subscribe to the meeting-scoped channel.
    pub meeting_channel: bool,
}

/// Where the bot connects instead of what `BOT_CONFIG` says (`MOCK_BOT_REDIS_URL`,
/// `MOCK_BOT_CALLBACK_BASE`); `None` keeps the configured URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub redis_url: Option<String>,
    /// Scheme, host and port only (checked: no path, query, fragment or user info).
    pub callback_base: Option<Url>,
    /// Where session starts go instead (`MOCK_BOT_SESSION_BASE`): a harness that stands in
    /// for the service that records them in production (the transcription collector).
    pub session_base: Option<Url>,
}

impl Endpoints {
    /// `MOCK_BOT_REDIS_URL` if set, else `configured`.
    pub fn redis_url(&self, configured: &str) -> String {
        self.redis_url
            .clone()
            .unwrap_or_else(|| configured.to_owned())
    }

    /// `configured` with scheme, host and port from `MOCK_BOT_CALLBACK_BASE` if set (path
    /// and query kept), else `configured` unchanged.
    pub fn callback_url(&self, configured: &str) -> Result<String, BehaviourError> {
        let Some(base) = &self.callback_base else {
            return Ok(configured.to_owned());
        };
        let original = Url::parse(configured).map_err(|error| {
            Vars::invalid(
                CALLBACK_BASE_VAR,
                base.as_str().trim_end_matches('/'),
                format!(
                    "BOT_CONFIG.botManagerCallbackUrl {configured:?} is not a URL whose path can be kept ({error})"
                ),
            )
        })?;
        let mut url = base.clone();
        url.set_path(original.path());
        url.set_query(original.query());
        Ok(url.into())
    }
}

const REDIS_URL_VAR: &str = "MOCK_BOT_REDIS_URL";
const CALLBACK_BASE_VAR: &str = "MOCK_BOT_CALLBACK_BASE";
const SESSION_BASE_VAR: &str = "MOCK_BOT_SESSION_BASE";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behaviour {
    /// The earliest time, from the start, of the first report.
    pub start_delay: Duration,
    pub join_delay: Duration,
    pub admission_delay: Duration,
    pub awaiting_admission_repeats: u32,
    pub leave: LeaveMode,
    pub leave_delay: Duration,
    pub sigterm: SigtermMode,
    pub sigterm_grace: Duration,
    pub subscribe: SubscribeBehaviour,
    pub callback: CallbackPolicy,
    /// `None`: `stopped`, or `left_alone` after `active_for`.
    pub completion_reason: Option<String>,
    pub duplicate_terminal: u32,
    pub late_joining_after_leave: bool,
    pub restart_new_uid_after: Option<Duration>,
    pub reconnects: u32,
    pub reconnect_interval: Duration,
    pub reconnect_skew_ms: i64,
    pub crash: Option<Crash>,
    pub crash_after: Duration,
    pub exit_delay: Duration,
    pub active_for: Option<Duration>,
    pub endpoints: Endpoints,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour::from_vars(std::iter::empty::<(OsString, OsString)>())
            .expect("an empty environment is the default behaviour")
    }
}

impl Behaviour {
    /// `MOCK_BOT_START_DELAY_MS` when unset: far enough from the start that the service's
    /// fire-and-forget session row, written right after the start, is there first.
    pub const DEFAULT_START_DELAY_MS: u64 = 200;
    /// The largest `MOCK_BOT_START_DELAY_MS` (10 minutes, the longest scripted time).
    pub const MAX_START_DELAY_MS: u64 = 600_000;
    /// The largest time any other `MOCK_BOT_*_MS` variable may give (a day).
    pub const MAX_MS: u64 = protocol::MAX_TIMER_MS;
    /// The largest count (`MOCK_BOT_AWAITING_ADMISSION_REPEATS`,
    /// `MOCK_BOT_DUPLICATE_TERMINAL`, `MOCK_BOT_RECONNECTS`).
    pub const MAX_COUNT: u32 = 1000;
    /// The largest `MOCK_BOT_RECONNECT_SKEW_MS`, either way: ten years, a clock far off
    /// that a timestamp still holds.
    pub const MAX_SKEW_MS: i64 = 10 * 365 * 86_400_000;
    /// The most waits `MOCK_BOT_CALLBACK_BACKOFF_MS` may list.
    pub const MAX_BACKOFFS: usize = 100;

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, BehaviourError> {
        Self::from_vars(std::env::vars_os())
    }

    /// Reads `MOCK_BOT_*` pairs out of `vars`, ignoring every other variable.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Result<Self, BehaviourError>
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let mut found = BTreeMap::new();
        for (key, value) in vars {
            let key = key.into();
            let Some(key) = key.to_str() else { continue };
            if !key.starts_with(PREFIX) {
                continue;
            }
            if !KNOWN_VARS.contains(&key) {
                return Err(BehaviourError::Unknown {
                    var: key.to_owned(),
                });
            }
            let value = value
                .into()
                .into_string()
                .map_err(|_| BehaviourError::NotUnicode {
                    var: key.to_owned(),
                })?;
            found.insert(key.to_owned(), value);
        }
        let vars = Vars(found);
        Ok(Behaviour {
            start_delay: vars.bounded_millis(
                "MOCK_BOT_START_DELAY_MS",
                Self::DEFAULT_START_DELAY_MS,
                Self::MAX_START_DELAY_MS,
            )?,
            join_delay: vars.millis("MOCK_BOT_JOIN_DELAY_MS", 100)?,
            admission_delay: vars.millis("MOCK_BOT_ADMISSION_DELAY_MS", 100)?,
            awaiting_admission_repeats: vars.count("MOCK_BOT_AWAITING_ADMISSION_REPEATS", 1)?,
            leave: vars.choice(
                "MOCK_BOT_LEAVE",
                LeaveMode::Normal,
                &[("normal", LeaveMode::Normal), ("hang", LeaveMode::Hang)],
            )?,
            leave_delay: vars.millis("MOCK_BOT_LEAVE_DELAY_MS", 0)?,
            sigterm: vars.choice(
                "MOCK_BOT_SIGTERM",
                SigtermMode::Ignore,
                &[
                    ("ignore", SigtermMode::Ignore),
                    ("graceful", SigtermMode::Graceful),
                ],
            )?,
            sigterm_grace: vars.millis("MOCK_BOT_SIGTERM_GRACE_MS", 5000)?,
            subscribe: SubscribeBehaviour {
                mode: vars.choice(
                    "MOCK_BOT_SUBSCRIBE",
                    SubscribeMode::Ok,
                    &[
                        ("ok", SubscribeMode::Ok),
                        ("fail", SubscribeMode::Fail),
                        ("late", SubscribeMode::Late),
                    ],
                )?,
                delay: vars.millis("MOCK_BOT_SUBSCRIBE_DELAY_MS", 1000)?,
                timeout: vars.millis("MOCK_BOT_SUBSCRIBE_TIMEOUT_MS", 5000)?,
                resubscribe: vars.flag("MOCK_BOT_RESUBSCRIBE", true)?,
                meeting_channel: vars.flag("MOCK_BOT_MEETING_CHANNEL", true)?,
            },
            callback: CallbackPolicy {
                mode: vars.choice(
                    "MOCK_BOT_CALLBACK",
                    CallbackMode::Once,
                    &[
                        ("once", CallbackMode::Once),
                        ("retry", CallbackMode::Retry),
                        ("drop", CallbackMode::Drop),
                    ],
                )?,
                path: vars.choice(
                    "MOCK_BOT_CALLBACK_PATH",
                    CallbackPath::StatusChange,
                    &[
                        ("status_change", CallbackPath::StatusChange),
                        ("exited", CallbackPath::Exited),
                    ],
                )?,
                timeout: vars.millis("MOCK_BOT_CALLBACK_TIMEOUT_MS", 5000)?,
                backoff: vars.millis_list("MOCK_BOT_CALLBACK_BACKOFF_MS", &[1000, 2000])?,
            },
            completion_reason: vars.text("MOCK_BOT_COMPLETION_REASON")?,
            duplicate_terminal: vars.count("MOCK_BOT_DUPLICATE_TERMINAL", 0)?,
            late_joining_after_leave: vars.flag("MOCK_BOT_LATE_JOINING_AFTER_LEAVE", false)?,
            restart_new_uid_after: vars.optional_millis("MOCK_BOT_RESTART_NEW_UID_AFTER_MS")?,
            reconnects: vars.count("MOCK_BOT_RECONNECTS", 0)?,
            reconnect_interval: vars.millis("MOCK_BOT_RECONNECT_INTERVAL_MS", 50)?,
            reconnect_skew_ms: vars.skew("MOCK_BOT_RECONNECT_SKEW_MS")?,
            crash: vars.crash("MOCK_BOT_CRASH")?,
            crash_after: vars.millis("MOCK_BOT_CRASH_AFTER_MS", 0)?,
            exit_delay: vars.millis("MOCK_BOT_EXIT_DELAY_MS", 0)?,
            active_for: vars.optional_millis("MOCK_BOT_ACTIVE_FOR_MS")?,
            endpoints: Endpoints {
                redis_url: vars.redis_url(REDIS_URL_VAR)?,
                callback_base: vars.http_base(CALLBACK_BASE_VAR)?,
                session_base: vars.http_base(SESSION_BASE_VAR)?,
            },
        })
    }
}

/// The `MOCK_BOT_*` variables that are set, already checked to be known.
struct Vars(BTreeMap<String, String>);

impl Vars {
    fn get(&self, var: &'static str) -> Option<&str> {
        debug_assert!(KNOWN_VARS.contains(&var), "{var} missing from KNOWN_VARS");
        self.0.get(var).map(String::as_str)
    }

    fn invalid(var: &'static str, value: &str, expected: impl Into<String>) -> BehaviourError {
        BehaviourError::Invalid {
            var,
            value: value.to_owned(),
            expected: expected.into(),
        }
    }

    /// A whole number from `min` to `max`; the error names the range.
    fn number_in<T>(
        &self,
        var: &'static str,
        default: T,
        min: T,
        max: T,
        unit: &str,
    ) -> Result<T, BehaviourError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
    {
        let Some(value) = self.get(var) else {
            return Ok(default);
        };
        value
            .parse::<T>()
            .ok()
            .filter(|number| (min..=max).contains(number))
            .ok_or_else(|| {
                Self::invalid(
                    var,
                    value,
                    format!("expected a whole number {unit}from {min} to {max}"),
                )
            })
    }

    /// A count, at most [`Behaviour::MAX_COUNT`].
    fn count(&self, var: &'static str, default: u32) -> Result<u32, BehaviourError> {
        self.number_in(var, default, 0, Behaviour::MAX_COUNT, "")
    }

    /// Milliseconds, at most [`Behaviour::MAX_MS`].
    fn millis(&self, var: &'static str, default_ms: u64) -> Result<Duration, BehaviourError> {
        self.bounded_millis(var, default_ms, Behaviour::MAX_MS)
    }

    /// Milliseconds no larger than `max_ms`.
    fn bounded_millis(
        &self,
        var: &'static str,
        default_ms: u64,
        max_ms: u64,
    ) -> Result<Duration, BehaviourError> {
        self.number_in(var, default_ms, 0, max_ms, "of milliseconds ")
            .map(Duration::from_millis)
    }

    fn optional_millis(&self, var: &'static str) -> Result<Option<Duration>, BehaviourError> {
        match self.get(var) {
            None => Ok(None),
            Some(_) => self.millis(var, 0).map(Some),
        }
    }

    /// Signed milliseconds, within [`Behaviour::MAX_SKEW_MS`] either way.
    fn skew(&self, var: &'static str) -> Result<i64, BehaviourError> {
        let max = Behaviour::MAX_SKEW_MS;
        self.number_in(var, 0, -max, max, "of milliseconds ")
    }

    fn millis_list(
        &self,
        var: &'static str,
        default_ms: &[u64],
    ) -> Result<Vec<Duration>, BehaviourError> {
        let Some(value) = self.get(var) else {
            return Ok(default_ms
                .iter()
                .copied()
                .map(Duration::from_millis)
                .collect());
        };
        let invalid = || {
            Self::invalid(
                var,
                value,
                format!(
                    "expected comma-separated milliseconds (1000,2000), each from 0 to {}, at most {} of them",
                    Behaviour::MAX_MS,
                    Behaviour::MAX_BACKOFFS
                ),
            )
        };
        let items: Vec<&str> = value.split(',').collect();
        if items.len() > Behaviour::MAX_BACKOFFS {
            return Err(invalid());
        }
        items
            .into_iter()
            .map(|item| {
                item.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| *ms <= Behaviour::MAX_MS)
                    .map(Duration::from_millis)
                    .ok_or_else(invalid)
            })
            .collect()
    }

    fn flag(&self, var: &'static str, default: bool) -> Result<bool, BehaviourError> {
        self.choice(var, default, &[("0", false), ("1", true)])
    }

    fn choice<T: Copy>(
        &self,
        var: &'static str,
        default: T,
        options: &[(&str, T)],
    ) -> Result<T, BehaviourError> {
        let Some(value) = self.get(var) else {
            return Ok(default);
        };
        options
            .iter()
            .find(|(name, _)| *name == value)
            .map(|(_, choice)| *choice)
            .ok_or_else(|| {
                let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
                Self::invalid(var, value, format!("expected one of {}", names.join(", ")))
            })
    }

    fn text(&self, var: &'static str) -> Result<Option<String>, BehaviourError> {
        match self.get(var) {
            Some("") => Err(Self::invalid(var, "", "expected a non-empty value")),
            other => Ok(other.map(str::to_owned)),
        }
    }

    /// A `redis://` URL the Redis client accepts, with a host.
    fn redis_url(&self, var: &'static str) -> Result<Option<String>, BehaviourError> {
        let Some(value) = self.get(var) else {
            return Ok(None);
        };
        let invalid = || Self::invalid(var, value, "expected a redis://host[:port][/db] URL");
        let url = Self::untrimmed_url(value).ok_or_else(invalid)?;
        if url.scheme() != "redis"
            || url.host_str().is_none_or(str::is_empty)
            || url.query().is_some()
            || url.fragment().is_some()
            || redis::IntoConnectionInfo::into_connection_info(value).is_err()
        {
            return Err(invalid());
        }
        Ok(Some(value.to_owned()))
    }

    /// An `http://host[:port]` base: nothing but scheme, host and port (a trailing `/` is
    /// allowed).
    fn http_base(&self, var: &'static str) -> Result<Option<Url>, BehaviourError> {
        let Some(value) = self.get(var) else {
            return Ok(None);
        };
        let invalid = || {
            Self::invalid(
                var,
                value,
                "expected an http://host[:port] base URL without path, query or user info",
            )
        };
        let url = Self::untrimmed_url(value).ok_or_else(invalid)?;
        if url.scheme() != "http"
            || url.host_str().is_none_or(str::is_empty)
            || url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(invalid());
        }
        Ok(Some(url))
    }

    /// `value` parsed as a URL, unless it has surrounding whitespace (which the URL parser
    /// would silently strip).
    fn untrimmed_url(value: &str) -> Option<Url> {
        if value.trim() != value {
            return None;
        }
        Url::parse(value).ok()
    }

    fn crash(&self, var: &'static str) -> Result<Option<Crash>, BehaviourError> {
        let Some(value) = self.get(var) else {
            return Ok(None);
        };
        let expected = || {
            let phases: Vec<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
            Self::invalid(
                var,
                value,
                format!(
                    "expected <phase>:<exit code 0-255>, phase one of {}",
                    phases.join(", ")
                ),
            )
        };
        let (phase, code) = value.split_once(':').ok_or_else(expected)?;
        let phase = Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == phase)
            .ok_or_else(expected)?;
        let exit_code = code.parse::<u8>().map_err(|_| expected())?;
        Ok(Some(Crash { phase, exit_code }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn parse(vars: &[(&str, &str)]) -> Result<Behaviour, BehaviourError> {
        Behaviour::from_vars(vars.iter().map(|(k, v)| (*k, *v)))
    }

    #[test]
    fn defaults_mirror_the_legacy_bot() {
        let b = Behaviour::default();
        assert_eq!(b.leave, LeaveMode::Normal);
        assert_eq!(b.sigterm, SigtermMode::Ignore);
        assert_eq!(b.subscribe.mode, SubscribeMode::Ok);
        assert!(b.subscribe.resubscribe);
        assert!(b.subscribe.meeting_channel);
        assert_eq!(b.subscribe.timeout, Duration::from_secs(5));
        assert_eq!(b.callback.mode, CallbackMode::Once);
        assert_eq!(b.callback.attempts(), 1);
        assert_eq!(b.callback.attempt_timeout(), None);
        assert_eq!(b.callback.path, CallbackPath::StatusChange);
        assert_eq!(b.awaiting_admission_repeats, 1);
        assert_eq!(b.completion_reason, None);
        assert_eq!(b.crash, None);
        assert_eq!(b.active_for, None);
        assert_eq!(b.restart_new_uid_after, None);
        assert_eq!(b.start_delay, Duration::from_millis(200));
    }

    #[test]
    fn start_delay_is_bounded() {
        let b = parse(&[("MOCK_BOT_START_DELAY_MS", "0")]).unwrap();
        assert_eq!(b.start_delay, Duration::ZERO);
        let b = parse(&[("MOCK_BOT_START_DELAY_MS", "600000")]).unwrap();
        assert_eq!(b.start_delay, Duration::from_secs(600));
        let err = parse(&[("MOCK_BOT_START_DELAY_MS", "600001")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("MOCK_BOT_START_DELAY_MS=\"600001\"") && err.contains("600000"),
            "{err}"
        );
    }

    /// Every numeric variable, its largest value and one past it.
    fn numeric_vars() -> Vec<(&'static str, String, String)> {
        let day = Behaviour::MAX_MS;
        let count = u64::from(Behaviour::MAX_COUNT);
        let mut vars = vec![(
            "MOCK_BOT_START_DELAY_MS",
            Behaviour::MAX_START_DELAY_MS,
            Behaviour::MAX_START_DELAY_MS + 1,
        )];
        for var in KNOWN_VARS.iter().filter(|var| var.ends_with("_MS")) {
            if !matches!(
                *var,
                "MOCK_BOT_START_DELAY_MS" | "MOCK_BOT_RECONNECT_SKEW_MS"
            ) {
                vars.push((var, day, day + 1));
            }
        }
        for var in [
            "MOCK_BOT_AWAITING_ADMISSION_REPEATS",
            "MOCK_BOT_DUPLICATE_TERMINAL",
            "MOCK_BOT_RECONNECTS",
        ] {
            vars.push((var, count, count + 1));
        }
        let mut vars: Vec<_> = vars
            .into_iter()
            .map(|(var, max, above)| (var, max.to_string(), above.to_string()))
            .collect();
        let skew = Behaviour::MAX_SKEW_MS;
        vars.push((
            "MOCK_BOT_RECONNECT_SKEW_MS",
            skew.to_string(),
            (skew + 1).to_string(),
        ));
        vars.push((
            "MOCK_BOT_RECONNECT_SKEW_MS",
            (-skew).to_string(),
            (-skew - 1).to_string(),
        ));
        vars
    }

    // Regression: numbers were parsed to their type's full range, so an extreme
    // `MOCK_BOT_RECONNECT_SKEW_MS` passed and later panicked the bot (exit 101, no
    // terminal callback) when it computed a reconnect timestamp.
    #[test]
    fn every_number_is_taken_up_to_its_bound_and_refused_past_it_naming_the_range() {
        for (var, max, above) in numeric_vars() {
            let at_bound = parse(&[(var, max.as_str())]);
            assert!(at_bound.is_ok(), "{var}={max}: {at_bound:?}");
            for bad in [
                above.as_str(),
                "99999999999999999999",
                "-99999999999999999999",
            ] {
                let err = parse(&[(var, bad)]).unwrap_err().to_string();
                assert!(err.contains(&format!("{var}={bad:?}")), "{err}");
                assert!(
                    err.contains(&format!("to {}", max.trim_start_matches('-'))),
                    "{err}"
                );
            }
        }
    }

    #[test]
    fn every_numeric_variable_has_a_bound() {
        let bounded: Vec<&str> = numeric_vars().iter().map(|(var, ..)| *var).collect();
        for var in KNOWN_VARS.iter().filter(|var| var.ends_with("_MS")) {
            assert!(bounded.contains(var), "{var} has no bound in numeric_vars");
        }
    }

    #[test]
    fn a_backoff_list_is_bounded_in_each_wait_and_in_length() {
        let day = Behaviour::MAX_MS;
        let b = parse(&[("MOCK_BOT_CALLBACK_BACKOFF_MS", &format!("0,{day}"))]).unwrap();
        assert_eq!(b.callback.backoff_after(2), Duration::from_millis(day));
        let too_long = vec!["1"; Behaviour::MAX_BACKOFFS + 1].join(",");
        for bad in [format!("10,{}", day + 1), too_long] {
            let err = parse(&[("MOCK_BOT_CALLBACK_BACKOFF_MS", &bad)])
                .unwrap_err()
                .to_string();
            assert!(err.contains("MOCK_BOT_CALLBACK_BACKOFF_MS"), "{err}");
            assert!(err.contains(&format!("each from 0 to {day}")), "{err}");
        }
    }

    #[test]
    fn other_variables_are_ignored() {
        assert_eq!(
            parse(&[("PATH", "/bin"), ("MOCK_BOTX", "1")]).unwrap(),
            Behaviour::default()
        );
    }

    #[test]
    fn behaviours_combine() {
        let b = parse(&[
            ("MOCK_BOT_LEAVE", "hang"),
            ("MOCK_BOT_SIGTERM", "graceful"),
            ("MOCK_BOT_CALLBACK", "retry"),
            ("MOCK_BOT_CALLBACK_BACKOFF_MS", "10, 20"),
            ("MOCK_BOT_RECONNECT_SKEW_MS", "-60000"),
            ("MOCK_BOT_CRASH", "awaiting_admission:137"),
            ("MOCK_BOT_COMPLETION_REASON", "removed_by_admin"),
            ("MOCK_BOT_ACTIVE_FOR_MS", "250"),
            ("MOCK_BOT_SUBSCRIBE_TIMEOUT_MS", "40"),
            ("MOCK_BOT_MEETING_CHANNEL", "0"),
        ])
        .unwrap();
        assert_eq!(b.leave, LeaveMode::Hang);
        assert_eq!(b.sigterm, SigtermMode::Graceful);
        assert_eq!(b.callback.attempts(), 3);
        assert_eq!(b.callback.backoff_after(1), Duration::from_millis(10));
        assert_eq!(b.callback.backoff_after(2), Duration::from_millis(20));
        assert_eq!(b.callback.backoff_after(7), Duration::from_millis(20));
        assert_eq!(b.reconnect_skew_ms, -60000);
        assert_eq!(
            b.crash,
            Some(Crash {
                phase: Phase::AwaitingAdmission,
                exit_code: 137
            })
        );
        assert_eq!(b.completion_reason.as_deref(), Some("removed_by_admin"));
        assert_eq!(b.active_for, Some(Duration::from_millis(250)));
        assert_eq!(b.subscribe.timeout, Duration::from_millis(40));
        assert!(!b.subscribe.meeting_channel);
    }

    #[rstest]
    #[case("MOCK_BOT_LEAVE", "sometimes")]
    #[case("MOCK_BOT_JOIN_DELAY_MS", "fast")]
    #[case("MOCK_BOT_JOIN_DELAY_MS", "-1")]
    #[case("MOCK_BOT_START_DELAY_MS", "soon")]
    #[case("MOCK_BOT_START_DELAY_MS", "-5")]
    #[case("MOCK_BOT_START_DELAY_MS", "99999999999999999999")]
    #[case("MOCK_BOT_RESUBSCRIBE", "yes")]
    #[case("MOCK_BOT_MEETING_CHANNEL", "true")]
    #[case("MOCK_BOT_MEETING_CHANNEL", "")]
    #[case("MOCK_BOT_SUBSCRIBE_TIMEOUT_MS", "5s")]
    #[case("MOCK_BOT_SUBSCRIBE_TIMEOUT_MS", "")]
    #[case("MOCK_BOT_CALLBACK_BACKOFF_MS", "1000,")]
    #[case("MOCK_BOT_CRASH", "active")]
    #[case("MOCK_BOT_CRASH", "requested:1")]
    #[case("MOCK_BOT_CRASH", "active:256")]
    #[case("MOCK_BOT_COMPLETION_REASON", "")]
    #[case("MOCK_BOT_REDIS_URL", "")]
    #[case("MOCK_BOT_REDIS_URL", "127.0.0.1:6379")]
    #[case("MOCK_BOT_REDIS_URL", "http://127.0.0.1:6379")]
    #[case("MOCK_BOT_REDIS_URL", "redis://")]
    #[case("MOCK_BOT_REDIS_URL", "redis://127.0.0.1:6379/zero")]
    #[case("MOCK_BOT_REDIS_URL", " redis://127.0.0.1:6379")]
    #[case("MOCK_BOT_CALLBACK_BASE", "")]
    #[case("MOCK_BOT_CALLBACK_BASE", "127.0.0.1:4567")]
    #[case("MOCK_BOT_CALLBACK_BASE", "https://127.0.0.1:4567")]
    #[case("MOCK_BOT_CALLBACK_BASE", "redis://127.0.0.1:4567")]
    #[case("MOCK_BOT_CALLBACK_BASE", "http://127.0.0.1:4567/bots")]
    #[case("MOCK_BOT_CALLBACK_BASE", "http://127.0.0.1:4567?x=1")]
    #[case("MOCK_BOT_CALLBACK_BASE", "http://user@127.0.0.1:4567")]
    #[case("MOCK_BOT_CALLBACK_BASE", "http://127.0.0.1:99999")]
    #[case("MOCK_BOT_CALLBACK_BASE", "http://127.0.0.1:4567 ")]
    fn bad_values_name_the_variable_and_value(#[case] var: &str, #[case] value: &str) {
        let err = parse(&[(var, value)]).unwrap_err().to_string();
        assert!(err.contains(var), "{err}");
        assert!(err.contains(&format!("{value:?}")), "{err}");
    }

    #[test]
    fn without_url_overrides_the_configured_urls_are_kept() {
        let endpoints = Behaviour::default().endpoints;
        assert_eq!(endpoints, Endpoints::default());
        assert_eq!(
            endpoints.redis_url("redis://redis:6379/0"),
            "redis://redis:6379/0"
        );
        assert_eq!(
            endpoints
                .callback_url("http://bot-manager:8080/bots/internal/callback/exited")
                .unwrap(),
            "http://bot-manager:8080/bots/internal/callback/exited"
        );
    }

    #[test]
    fn the_redis_url_override_replaces_the_configured_one() {
        let b = parse(&[("MOCK_BOT_REDIS_URL", "redis://127.0.0.1:7001/2")]).unwrap();
        assert_eq!(
            b.endpoints.redis_url("redis://redis:6379/0"),
            "redis://127.0.0.1:7001/2"
        );
    }

    #[rstest]
    #[case(
        "http://127.0.0.1:4567",
        "http://bot-manager:8080/bots/internal/callback/exited",
        "http://127.0.0.1:4567/bots/internal/callback/exited"
    )]
    #[case(
        "http://fault-proxy:4567/",
        "https://bot-manager/prefix/bots/internal/callback/exited?x=1",
        "http://fault-proxy:4567/prefix/bots/internal/callback/exited?x=1"
    )]
    #[case(
        "http://127.0.0.1",
        "http://bot-manager:8080/callback",
        "http://127.0.0.1/callback"
    )]
    fn the_callback_base_replaces_scheme_host_and_port_and_keeps_the_path(
        #[case] base: &str,
        #[case] configured: &str,
        #[case] want: &str,
    ) {
        let b = parse(&[("MOCK_BOT_CALLBACK_BASE", base)]).unwrap();
        assert_eq!(b.endpoints.callback_url(configured).unwrap(), want);
    }

    #[test]
    fn a_session_base_is_checked_like_a_callback_base() {
        let b = parse(&[("MOCK_BOT_SESSION_BASE", "http://127.0.0.1:4567")]).unwrap();
        assert_eq!(
            b.endpoints.session_base.map(String::from).as_deref(),
            Some("http://127.0.0.1:4567/")
        );
        let err = parse(&[("MOCK_BOT_SESSION_BASE", "http://127.0.0.1:4567/bots")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("MOCK_BOT_SESSION_BASE"), "{err}");
    }

    #[test]
    fn a_callback_base_over_an_unparsable_callback_url_is_an_error_naming_the_variable() {
        let b = parse(&[("MOCK_BOT_CALLBACK_BASE", "http://127.0.0.1:4567")]).unwrap();
        let err = b
            .endpoints
            .callback_url("http://bad host/callback")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("MOCK_BOT_CALLBACK_BASE=\"http://127.0.0.1:4567\""),
            "{err}"
        );
        assert!(err.contains("http://bad host/callback"), "{err}");
    }

    #[test]
    fn unknown_variable_is_an_error_naming_it() {
        let err = parse(&[("MOCK_BOT_LEAVE_MODE", "hang")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("MOCK_BOT_LEAVE_MODE"), "{err}");
    }
}
