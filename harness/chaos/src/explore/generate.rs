//! Draws random plans. Each plan takes a random subset of the allowed fault kinds (swarm
//! testing: Groce et al., ISSTA 2012), a workload (one or two meetings, their stops, now
//! and then a second DELETE or a second POST) and 1 to 4 fault steps, timed on the
//! protocol's own events (the leave published, the bot leaving, its container dying)
//! more often than at a random moment. Plan `i` of seed `s` depends on `(s, i)` alone
//! (ChaCha8, portable), so the same seed gives the same plans in the same order on any
//! machine, and a shard of an exploration draws exactly its own plans.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use toml::Value;

use super::plan::{PlanMeeting, PlanSpec, PlanStep, PlanWhen};

/// A kind of fault a plan may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// Bot misbehaviour: a hung or slow leave, SIGTERM handling, failed or late
    /// subscriptions, dropped or retried callbacks, crashes, rejected reasons, slow starts.
    Bot,
    /// A bot restarted (under a new uid, mostly), uid switches and reconnect sessions.
    Restart,
    /// A bot killed by a signal.
    Kill,
    /// A bot paused (a hung container) and resumed.
    Pause,
    /// The runtime's faults: slow or 404 stops, failed or slow starts, forgotten
    /// containers.
    Runtime,
    /// The service restarted.
    Service,
    /// Redis paused.
    Redis,
    /// Callbacks the harness posts as if it were the bot.
    Callback,
    /// A toxic or a cut on any link (service to Postgres, Redis, runtime; bot to Redis,
    /// callbacks).
    Network,
    /// Requests from someone other than a meeting's own bot or user: an attacker's forged
    /// callbacks and session rows, another meeting's bot ending this one. Opt-in: a
    /// service without callback authentication breaks INV-OWN-CHANGES in every such plan.
    Forge,
}

impl FaultKind {
    pub const ALL: [FaultKind; 10] = [
        FaultKind::Bot,
        FaultKind::Restart,
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Runtime,
        FaultKind::Service,
        FaultKind::Redis,
        FaultKind::Callback,
        FaultKind::Network,
        FaultKind::Forge,
    ];

    /// What an exploration uses unless `--faults` says otherwise: every kind but the
    /// opt-in `forge` (so a seed draws the plans it drew before that kind existed).
    pub fn defaults() -> Vec<FaultKind> {
        FaultKind::ALL
            .into_iter()
            .filter(|k| *k != FaultKind::Forge)
            .collect()
    }

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Bot => "bot",
            FaultKind::Restart => "restart",
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Runtime => "runtime",
            FaultKind::Service => "service",
            FaultKind::Redis => "redis",
            FaultKind::Callback => "callback",
            FaultKind::Network => "network",
            FaultKind::Forge => "forge",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "read fault kind {given:?}: not one of {}",
    FaultKind::ALL.map(FaultKind::name).join(", ")
)]
pub struct UnknownFaultKind {
    given: String,
}

impl FromStr for FaultKind {
    type Err = UnknownFaultKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == s.trim())
            .ok_or_else(|| UnknownFaultKind {
                given: s.trim().to_owned(),
            })
    }
}

/// The generator of one exploration: its seed and the kinds it may use.
#[derive(Debug, Clone)]
pub struct Generator {
    pub seed: u64,
    pub kinds: Vec<FaultKind>,
}

/// One drawn plan and the kinds its swarm allowed.
#[derive(Debug, Clone)]
pub struct Drawn {
    pub index: u64,
    pub kinds: Vec<FaultKind>,
    pub plan: PlanSpec,
}

impl Generator {
    /// Plan number `index` (0-based).
    pub fn plan(&self, index: u64) -> Drawn {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(self.seed, index));
        // Swarm: each allowed kind is in this plan's subset with probability 1/2, and
        // the subset is never empty.
        let mut kinds: Vec<FaultKind> = self
            .kinds
            .iter()
            .copied()
            .filter(|_| rng.random_bool(0.5))
            .collect();
        if kinds.is_empty() && !self.kinds.is_empty() {
            kinds.push(*self.kinds.choose(&mut rng).expect("not empty"));
        }
        let plan = Draw {
            rng: &mut rng,
            kinds: &kinds,
            steps: Vec::new(),
        }
        .plan();
        Drawn { index, kinds, plan }
    }
}

/// SplitMix64 of the seed and the index: independent streams per plan.
fn mix(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Adds one misbehaviour to a bot's behaviours.
type Behaviour = fn(&mut Draw<'_>, &mut BTreeMap<String, Value>);

struct Draw<'r> {
    rng: &'r mut ChaCha8Rng,
    kinds: &'r [FaultKind],
    steps: Vec<PlanStep>,
}

fn int(v: u64) -> Value {
    Value::Integer(v as i64)
}

impl Draw<'_> {
    fn has(&self, kind: FaultKind) -> bool {
        self.kinds.contains(&kind)
    }

    fn pick<T: Clone>(&mut self, from: &[T]) -> T {
        from.choose(self.rng).expect("a non-empty choice").clone()
    }

    /// A delay after a trigger: none 40% of the time (the instant of the event is where
    /// races live), else up to `max` ms.
    fn after(&mut self, max: u64) -> u64 {
        if self.rng.random_bool(0.4) {
            0
        } else {
            self.rng.random_range(1..=max / 50).saturating_mul(50)
        }
    }

    fn plan(mut self) -> PlanSpec {
        let count = if self.rng.random_bool(0.25) { 2 } else { 1 };
        let mut meetings: Vec<PlanMeeting> = (1..=count)
            .map(|i| PlanMeeting {
                name: format!("m{i}"),
                bot: BTreeMap::new(),
            })
            .collect();
        if self.has(FaultKind::Bot) || self.has(FaultKind::Restart) {
            for m in &mut meetings {
                let behaviours = self.behaviours();
                m.bot = behaviours;
            }
        }
        let names: Vec<String> = meetings.iter().map(|m| m.name.clone()).collect();
        for m in &names {
            self.workload(m);
        }
        let faults = self.rng.random_range(1..=4);
        for _ in 0..faults {
            let meeting = self.pick(&names);
            self.fault(&meeting, &names);
        }
        // Every step of a drawn plan is optional: a trigger that never comes is part of
        // the draw, not a failure of the run.
        for s in &mut self.steps {
            s.fields.insert("optional".into(), Value::Boolean(true));
        }
        PlanSpec {
            meetings,
            steps: self.steps,
        }
    }

    fn push(&mut self, action: &str, when: PlanWhen, fields: Vec<(&str, Value)>) -> String {
        let name = format!("s{}-{action}", self.steps.len() + 1).replace('_', "-");
        self.steps.push(PlanStep {
            name: name.clone(),
            when,
            action: action.to_owned(),
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        });
        name
    }

    fn behaviours(&mut self) -> BTreeMap<String, Value> {
        let mut bot = BTreeMap::new();
        let mut options: Vec<Behaviour> = Vec::new();
        if self.has(FaultKind::Bot) {
            options.extend([
                (|_, b| {
                    b.insert("leave".into(), "hang".into());
                }) as Behaviour,
                |d, b| {
                    b.insert(
                        "leave_delay_ms".into(),
                        int(d.rng.random_range(1..=30) * 100),
                    );
                },
                |d, b| {
                    b.insert("sigterm".into(), "graceful".into());
                    b.insert(
                        "sigterm_grace_ms".into(),
                        int(d.rng.random_range(1..=20) * 100),
                    );
                },
                |d, b| {
                    let how = d.pick(&["fail", "late"]);
                    b.insert("subscribe".into(), how.into());
                    if how == "late" {
                        b.insert(
                            "subscribe_delay_ms".into(),
                            int(d.rng.random_range(1..=40) * 100),
                        );
                    }
                },
                |d, b| {
                    let how = d.pick(&["drop", "retry"]);
                    b.insert("callback".into(), how.into());
                },
                |_, b| {
                    b.insert("callback_path".into(), "exited".into());
                },
                |d, b| {
                    let reason = d.pick(&["removed_by_admin", "left_alone", "stopped"]);
                    b.insert("completion_reason".into(), reason.into());
                },
                |d, b| {
                    b.insert("duplicate_terminal".into(), int(d.rng.random_range(1..=2)));
                },
                |_, b| {
                    b.insert("late_joining_after_leave".into(), int(1));
                },
                |d, b| {
                    let phase = d.pick(&["joining", "awaiting_admission", "active", "leaving"]);
                    let code = d.pick(&[0u64, 1, 2, 137]);
                    b.insert("crash".into(), format!("{phase}:{code}").into());
                    b.insert("crash_after_ms".into(), int(d.after(2000)));
                },
                |d, b| {
                    b.insert(
                        "exit_delay_ms".into(),
                        int(d.rng.random_range(1..=30) * 100),
                    );
                },
                |d, b| {
                    b.insert("start_delay_ms".into(), int(d.pick(&[0u64, 50, 500])));
                },
                |d, b| {
                    b.insert(
                        "join_delay_ms".into(),
                        int(d.rng.random_range(1..=20) * 100),
                    );
                },
                |d, b| {
                    b.insert(
                        "active_for_ms".into(),
                        int(d.rng.random_range(1..=30) * 100),
                    );
                },
            ]);
        }
        if self.has(FaultKind::Restart) {
            options.extend([
                (|d, b| {
                    b.insert(
                        "restart_new_uid_after_ms".into(),
                        int(d.rng.random_range(1..=20) * 50),
                    );
                }) as Behaviour,
                |d, b| {
                    b.insert("reconnects".into(), int(d.rng.random_range(1..=3)));
                    if d.rng.random_bool(0.5) {
                        b.insert("reconnect_skew_ms".into(), Value::Integer(-60_000));
                    }
                },
            ]);
        }
        let n = self.rng.random_range(0..=3.min(options.len()));
        for _ in 0..n {
            let option = self.pick(&options);
            option(self, &mut bot);
        }
        bot
    }

    /// The meeting's stop, and now and then a second DELETE or a second POST.
    fn workload(&mut self, m: &str) {
        let when = match self.rng.random_range(0..4) {
            0 => PlanWhen::Bot {
                meeting: m.into(),
                event: "session_started".into(),
                after_ms: self.after(2000),
            },
            1 => PlanWhen::Status {
                meeting: m.into(),
                status: "active".into(),
                after_ms: self.after(2000),
            },
            2 => PlanWhen::Status {
                meeting: m.into(),
                status: "joining".into(),
                after_ms: self.after(500),
            },
            _ => PlanWhen::Start {
                after_ms: self.rng.random_range(0..=60) * 50,
            },
        };
        let stop = self.push("stop", when, vec![("meeting", m.into())]);
        match self.rng.random_range(0..10) {
            0 | 1 => {
                let after_ms = self.after(1500);
                self.push(
                    "stop",
                    PlanWhen::AfterStep {
                        step: stop,
                        after_ms,
                    },
                    vec![("meeting", m.into())],
                );
            }
            2 => {
                let when = if self.rng.random_bool(0.5) {
                    PlanWhen::AfterStep {
                        step: stop,
                        after_ms: self.after(1500),
                    }
                } else {
                    PlanWhen::Status {
                        meeting: m.into(),
                        status: "joining".into(),
                        after_ms: self.after(800),
                    }
                };
                self.push("create", when, vec![("meeting", m.into())]);
            }
            _ => {}
        }
    }

    /// A trigger on the protocol's events for meeting `m`.
    fn trigger(&mut self, m: &str) -> PlanWhen {
        let after_ms = self.after(1500);
        let m = m.to_owned();
        match self.rng.random_range(0..12) {
            0 => PlanWhen::Bot {
                meeting: m,
                event: "session_started".into(),
                after_ms,
            },
            1 => PlanWhen::Bot {
                meeting: m,
                event: "command_received".into(),
                after_ms,
            },
            2 => PlanWhen::Bot {
                meeting: m,
                event: "leave_started".into(),
                after_ms,
            },
            3 => PlanWhen::Bot {
                meeting: m,
                event: "sigterm_received".into(),
                after_ms,
            },
            4 => PlanWhen::Bot {
                meeting: m,
                event: "callback_attempt".into(),
                after_ms,
            },
            5 => PlanWhen::Published {
                meeting: m,
                what: "leave".into(),
                after_ms,
            },
            6 => PlanWhen::Published {
                meeting: m,
                what: "stopping".into(),
                after_ms,
            },
            7 => PlanWhen::Status {
                meeting: m,
                status: "active".into(),
                after_ms,
            },
            8 => PlanWhen::Container {
                meeting: m,
                died: true,
                after_ms,
            },
            9 => PlanWhen::Container {
                meeting: m,
                died: false,
                after_ms,
            },
            10 => match self.steps.iter().find(|s| s.is_workload()) {
                Some(stop) => PlanWhen::AfterStep {
                    step: stop.name.clone(),
                    after_ms,
                },
                None => PlanWhen::Start { after_ms },
            },
            _ => PlanWhen::Start {
                after_ms: self.rng.random_range(0..=60) * 50,
            },
        }
    }

    fn heal(&mut self) -> Value {
        int(self.rng.random_range(2..=40) * 100)
    }

    /// One fault step of a kind in the plan's subset, on meeting `m` where it takes one
    /// (`names`: every meeting of the plan).
    fn fault(&mut self, m: &str, names: &[String]) {
        let step_kinds: Vec<FaultKind> = self
            .kinds
            .iter()
            .copied()
            .filter(|k| *k != FaultKind::Bot)
            .collect();
        let Some(kind) = step_kinds.choose(self.rng).copied() else {
            return;
        };
        let when = self.trigger(m);
        let meeting = ("meeting", Value::from(m));
        match kind {
            FaultKind::Restart => {
                let new_uid = Value::Boolean(self.rng.random_bool(0.8));
                self.push("restart_bot", when, vec![meeting, ("new_uid", new_uid)]);
            }
            FaultKind::Kill => {
                let signal = self.pick(&["SIGKILL", "SIGTERM"]);
                self.push("kill_bot", when, vec![meeting, ("signal", signal.into())]);
            }
            FaultKind::Pause => {
                let heal = self.heal();
                self.push("pause_bot", when, vec![meeting, ("heal_after_ms", heal)]);
            }
            FaultKind::Runtime => {
                let fields = match self.rng.random_range(0..5) {
                    0 => vec![("stop_delay_ms", int(self.rng.random_range(1..=50) * 100))],
                    1 => vec![("stop_answers_404", Value::Boolean(true))],
                    2 => vec![("start_fails", Value::Boolean(true))],
                    3 => vec![("start_delay_ms", int(self.rng.random_range(1..=20) * 100))],
                    _ => {
                        self.push("forget_containers", when, Vec::new());
                        return;
                    }
                };
                self.push("runtime_faults", when, fields);
            }
            FaultKind::Service => {
                let down = int(self.rng.random_range(0..=30) * 50);
                self.push("restart_service", when, vec![("down_ms", down)]);
            }
            FaultKind::Redis => {
                let heal = self.heal();
                self.push("pause_redis", when, vec![("heal_after_ms", heal)]);
            }
            FaultKind::Callback => {
                let mut fields = vec![meeting];
                match self.rng.random_range(0..4) {
                    0 => fields.push(("status", "active".into())),
                    1 => {
                        fields.push(("status", "completed".into()));
                        fields.push(("completion_reason", "stopped".into()));
                    }
                    2 => fields.push(("status", "failed".into())),
                    _ => {
                        fields.push(("path", "exited".into()));
                        fields.push(("status", "completed".into()));
                        fields.push(("exit_code", int(self.pick(&[0u64, 1, 137]))));
                    }
                }
                self.push("callback", when, fields);
            }
            FaultKind::Forge => self.forge(m, names, when),
            FaultKind::Network => {
                let link = match self.rng.random_range(0..5) {
                    0 => "service:postgres".to_owned(),
                    1 => "service:redis".to_owned(),
                    2 => "service:runtime".to_owned(),
                    3 => format!("bot:{m}:redis"),
                    _ => format!("bot:{m}:callbacks"),
                };
                let heal = self.heal();
                if self.rng.random_bool(0.2) {
                    self.push(
                        "link_down",
                        when,
                        vec![("link", link.into()), ("heal_after_ms", heal)],
                    );
                    return;
                }
                let toxic = self.toxic();
                self.push(
                    "network",
                    when,
                    vec![
                        ("link", link.into()),
                        ("toxic", toxic),
                        ("heal_after_ms", heal),
                    ],
                );
            }
            FaultKind::Bot => unreachable!("bot faults are behaviours, not steps"),
        }
    }

    /// A request about meeting `m` from someone else: an attacker with no key, or the
    /// bot of another meeting of the plan with its own.
    fn forge(&mut self, m: &str, names: &[String], when: PlanWhen) {
        let other = names.iter().find(|n| n.as_str() != m).cloned();
        let mut fields = vec![("meeting", Value::from(m))];
        match self.rng.random_range(0..4) {
            0 => {
                fields.push(("from", "attacker".into()));
                fields.push(("status", "completed".into()));
                fields.push(("completion_reason", "stopped".into()));
                self.push("callback", when, fields);
            }
            1 => {
                // An `active` naming another meeting's container, which a stop then kills.
                fields.push(("from", "attacker".into()));
                fields.push(("status", "active".into()));
                if let Some(other) = other {
                    fields.push(("container", other.into()));
                }
                self.push("callback", when, fields);
            }
            2 => {
                fields.push(("from", "attacker".into()));
                let earlier = self.pick(&[0u64, 60_000, 3_600_000]);
                fields.push(("earlier_ms", int(earlier)));
                self.push("forge_session", when, fields);
            }
            _ => {
                match other {
                    Some(other) => fields.push(("from", format!("bot:{other}").into())),
                    None => fields.push(("from", "attacker".into())),
                }
                fields.push(("path", "exited".into()));
                fields.push(("status", "completed".into()));
                fields.push(("exit_code", int(0)));
                self.push("callback", when, fields);
            }
        }
    }

    fn toxic(&mut self) -> Value {
        let stream = self.pick(&["upstream", "downstream"]);
        let (kind, attributes): (&str, Vec<(&str, u64)>) = match self.rng.random_range(0..5) {
            0 => (
                "latency",
                vec![("latency", self.pick(&[30u64, 300, 1000, 3000, 6000]))],
            ),
            1 => ("timeout", vec![("timeout", 0)]),
            2 => ("reset_peer", vec![("timeout", 0)]),
            3 => ("bandwidth", vec![("rate", 1)]),
            _ => ("slow_close", vec![("delay", self.pick(&[500u64, 3000]))]),
        };
        let mut t = toml::Table::new();
        t.insert("type".into(), kind.into());
        t.insert("stream".into(), stream.into());
        t.insert(
            "attributes".into(),
            Value::Table(
                attributes
                    .into_iter()
                    .map(|(k, v)| (k.into(), int(v)))
                    .collect(),
            ),
        );
        Value::Table(t)
    }
}
