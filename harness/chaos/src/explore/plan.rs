//! A random plan: a scenario nobody wrote, kept as data the shrinker can take apart, and
//! written out in the scenario format, so that every plan is loaded, validated and run
//! exactly as a scenario file is.

use std::collections::BTreeMap;
use std::path::Path;

use toml::{Table, Value};

use crate::scenario::{Scenario, ScenarioErrors};

/// The service's timers in every plan: the catalogue's shrunk ones (protocol.md section
/// 8), so a plan runs in seconds and a found plan reads like the catalogue.
pub const TIMERS: &[(&str, i64)] = &[
    ("delayed_stop_ms", 1000),
    ("stop_grace_s", 1),
    ("pre_active_window_ms", 0),
    ("exited_failure_stop_ms", 500),
    ("dependency_timeout_ms", 2000),
    ("reconcile_interval_ms", 500),
    ("finalizer_grace_ms", 200),
];

/// How long a plan's step waits for its trigger.
pub const STEP_TIMEOUT_MS: i64 = 5_000;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanSpec {
    pub meetings: Vec<PlanMeeting>,
    pub steps: Vec<PlanStep>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanMeeting {
    pub name: String,
    /// `MOCK_BOT_*` behaviours, lower case without the prefix, as a scenario writes them.
    pub bot: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanStep {
    pub name: String,
    pub when: PlanWhen,
    pub action: String,
    /// The action's fields (`meeting`, `link`, `toxic`, `heal_after_ms`, ...).
    pub fields: BTreeMap<String, Value>,
}

/// When a step fires: a condition, then `after_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanWhen {
    Start {
        after_ms: u64,
    },
    Bot {
        meeting: String,
        event: String,
        after_ms: u64,
    },
    Published {
        meeting: String,
        what: String,
        after_ms: u64,
    },
    Status {
        meeting: String,
        status: String,
        after_ms: u64,
    },
    Container {
        meeting: String,
        died: bool,
        after_ms: u64,
    },
    AfterStep {
        step: String,
        after_ms: u64,
    },
}

impl PlanWhen {
    pub fn after_ms(&self) -> u64 {
        match self {
            PlanWhen::Start { after_ms }
            | PlanWhen::Bot { after_ms, .. }
            | PlanWhen::Published { after_ms, .. }
            | PlanWhen::Status { after_ms, .. }
            | PlanWhen::Container { after_ms, .. }
            | PlanWhen::AfterStep { after_ms, .. } => *after_ms,
        }
    }

    pub fn after_ms_mut(&mut self) -> &mut u64 {
        match self {
            PlanWhen::Start { after_ms }
            | PlanWhen::Bot { after_ms, .. }
            | PlanWhen::Published { after_ms, .. }
            | PlanWhen::Status { after_ms, .. }
            | PlanWhen::Container { after_ms, .. }
            | PlanWhen::AfterStep { after_ms, .. } => after_ms,
        }
    }

    /// The meeting the condition watches, if any.
    pub fn meeting(&self) -> Option<&str> {
        match self {
            PlanWhen::Bot { meeting, .. }
            | PlanWhen::Published { meeting, .. }
            | PlanWhen::Status { meeting, .. }
            | PlanWhen::Container { meeting, .. } => Some(meeting),
            PlanWhen::Start { .. } | PlanWhen::AfterStep { .. } => None,
        }
    }

    /// The step it waits for, if any.
    pub fn step(&self) -> Option<&str> {
        match self {
            PlanWhen::AfterStep { step, .. } => Some(step),
            _ => None,
        }
    }

    fn table(&self) -> Table {
        let mut t = Table::new();
        let mut put = |k: &str, v: Value| {
            t.insert(k.into(), v);
        };
        match self {
            PlanWhen::Start { .. } => {}
            PlanWhen::Bot { meeting, event, .. } => {
                put("meeting", meeting.as_str().into());
                put("bot_event", event.as_str().into());
            }
            PlanWhen::Published { meeting, what, .. } => {
                put("meeting", meeting.as_str().into());
                put("published", what.as_str().into());
            }
            PlanWhen::Status {
                meeting, status, ..
            } => {
                put("meeting", meeting.as_str().into());
                put("status", status.as_str().into());
            }
            PlanWhen::Container { meeting, died, .. } => {
                put("meeting", meeting.as_str().into());
                put("container", if *died { "died" } else { "started" }.into());
            }
            PlanWhen::AfterStep { step, .. } => put("after_step", step.as_str().into()),
        }
        let after = self.after_ms();
        if after > 0 || matches!(self, PlanWhen::Start { .. }) {
            put("after_ms", Value::Integer(after as i64));
        }
        t
    }
}

impl PlanStep {
    /// The meeting the step acts on, if any.
    pub fn meeting(&self) -> Option<&str> {
        self.fields.get("meeting").and_then(Value::as_str)
    }

    /// The meeting a `bot:<meeting>:...` link names, if any.
    pub fn link_meeting(&self) -> Option<&str> {
        let link = self.fields.get("link")?.as_str()?;
        link.strip_prefix("bot:")?.split(':').next()
    }

    /// Whether the step is the workload (a stop or a create), not a fault.
    pub fn is_workload(&self) -> bool {
        matches!(self.action.as_str(), "stop" | "create")
    }
}

impl PlanSpec {
    /// The plan as a scenario file, in the order a person writes one: `name`, the
    /// `description`, the shrunk timers, the meetings, the steps (their triggers inline),
    /// and `[expect]` (profile -> "holds" or "violates ...").
    pub fn to_toml(
        &self,
        name: &str,
        description: &str,
        expect: &BTreeMap<String, String>,
    ) -> String {
        let mut out = String::new();
        let line = |out: &mut String, key: &str, value: &Value| {
            out.push_str(&format!("{key} = {}\n", inline(value)));
        };
        line(&mut out, "name", &name.into());
        line(&mut out, "description", &description.into());
        line(&mut out, "covers", &Value::Array(vec!["explore".into()]));
        out.push_str("\n[service]\n");
        for (k, v) in TIMERS {
            line(&mut out, k, &Value::Integer(*v));
        }
        // A drawn trigger that has not come within 5 s is not coming: the protocol's
        // events of these timers all happen sooner, and each wait is a run's time.
        out.push_str("\n[convergence]\n");
        line(
            &mut out,
            "step_timeout_ms",
            &Value::Integer(STEP_TIMEOUT_MS),
        );
        for m in &self.meetings {
            out.push_str("\n[[meetings]]\n");
            line(&mut out, "name", &m.name.as_str().into());
            if !m.bot.is_empty() {
                line(
                    &mut out,
                    "bot",
                    &Value::Table(m.bot.clone().into_iter().collect()),
                );
            }
        }
        for s in &self.steps {
            out.push_str("\n[[steps]]\n");
            line(&mut out, "name", &s.name.as_str().into());
            line(&mut out, "when", &Value::Table(s.when.table()));
            line(&mut out, "action", &s.action.as_str().into());
            for (k, v) in &s.fields {
                line(&mut out, k, v);
            }
        }
        out.push_str("\n[expect]\n");
        for (k, v) in expect {
            line(&mut out, &inline_key(k), &v.as_str().into());
        }
        out
    }

    /// The plan loaded as a scenario, through the same validation as a file.
    pub fn scenario(
        &self,
        path: &Path,
        name: &str,
        expect: &BTreeMap<String, String>,
    ) -> Result<Scenario, ScenarioErrors> {
        crate::scenario::parse(path, &self.to_toml(name, "a random plan", expect))
    }

    /// The plan with every step required: a kept regression must fire its steps, or its
    /// run is inconclusive.
    pub fn required(&self) -> PlanSpec {
        let mut plan = self.clone();
        for s in &mut plan.steps {
            s.fields.remove("optional");
        }
        plan
    }

    /// How many faults the plan has: its fault steps (not the workload) and its bots'
    /// misbehaviours.
    pub fn faults(&self) -> usize {
        self.steps.iter().filter(|s| !s.is_workload()).count()
            + self.meetings.iter().map(|m| m.bot.len()).sum::<usize>()
    }

    /// The same plan with its meetings named `m1`, `m2`, ... and its steps `s1-<action>`,
    /// ... in order, as a person would name a kept scenario.
    pub fn renamed(&self) -> PlanSpec {
        let meetings: BTreeMap<String, String> = self
            .meetings
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), format!("m{}", i + 1)))
            .collect();
        let steps: BTreeMap<String, String> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    s.name.clone(),
                    format!("s{}-{}", i + 1, s.action.replace('_', "-")),
                )
            })
            .collect();
        let meeting = |m: &mut String| {
            if let Some(new) = meetings.get(m.as_str()) {
                *m = new.clone();
            }
        };
        let mut plan = self.clone();
        for m in &mut plan.meetings {
            meeting(&mut m.name);
        }
        for s in &mut plan.steps {
            s.name = steps[&s.name].clone();
            match &mut s.when {
                PlanWhen::Bot { meeting: m, .. }
                | PlanWhen::Published { meeting: m, .. }
                | PlanWhen::Status { meeting: m, .. }
                | PlanWhen::Container { meeting: m, .. } => meeting(m),
                PlanWhen::AfterStep { step, .. } => *step = steps[step.as_str()].clone(),
                PlanWhen::Start { .. } => {}
            }
            if let Some(Value::String(m)) = s.fields.get_mut("meeting") {
                meeting(m);
            }
            if let Some(old) = s.link_meeting().map(str::to_owned)
                && let Some(Value::String(link)) = s.fields.get_mut("link")
            {
                *link = link.replacen(
                    &format!("bot:{old}:"),
                    &format!("bot:{}:", meetings[&old]),
                    1,
                );
            }
        }
        plan
    }

    /// Its size, for reports and for the shrinker's progress: steps, meetings and bot
    /// behaviours.
    pub fn size(&self) -> usize {
        self.steps.len()
            + self.meetings.len()
            + self.meetings.iter().map(|m| m.bot.len()).sum::<usize>()
    }

    /// What kind of plan it is, regardless of times: its actions (with links and toxic
    /// types) and bot behaviours, sorted. Two findings of one invariant with the same
    /// shape are one finding.
    pub fn shape(&self) -> String {
        self.shape_parts().join(" ")
    }

    /// Whether this plan has every part of `smaller`'s shape (as many times): a plan
    /// that holds a finding's whole minimal plan most likely fails for the same reason.
    pub fn holds_shape_of(&self, smaller: &PlanSpec) -> bool {
        let mut mine = self.shape_parts();
        smaller
            .shape_parts()
            .iter()
            .all(|part| match mine.iter().position(|p| p == part) {
                Some(i) => {
                    mine.swap_remove(i);
                    true
                }
                None => false,
            })
    }

    fn shape_parts(&self) -> Vec<String> {
        let mut parts: Vec<String> = self
            .steps
            .iter()
            .map(|s| {
                let mut p = s.action.clone();
                if let Some(link) = s.fields.get("link").and_then(Value::as_str) {
                    let link = match s.link_meeting() {
                        Some(m) => link.replacen(m, "*", 1),
                        None => link.to_owned(),
                    };
                    p.push_str(&format!("@{link}"));
                }
                if let Some(kind) = s
                    .fields
                    .get("toxic")
                    .and_then(|t| t.get("type"))
                    .and_then(Value::as_str)
                {
                    p.push_str(&format!(":{kind}"));
                }
                for key in [
                    "stop_delay_ms",
                    "stop_answers_404",
                    "start_fails",
                    "start_delay_ms",
                ] {
                    if s.fields.contains_key(key) {
                        p.push_str(&format!(":{key}"));
                    }
                }
                p
            })
            .collect();
        for m in &self.meetings {
            for (k, v) in &m.bot {
                let v = match v {
                    Value::String(s) => s.split(':').next().unwrap_or(s).to_owned(),
                    _ => String::new(),
                };
                parts.push(format!(
                    "bot.{k}{}",
                    if v.is_empty() { v } else { format!("={v}") }
                ));
            }
        }
        parts.sort();
        parts
    }
}

/// A key as TOML writes it: bare when it can be, quoted otherwise (`"a+b"`).
fn inline_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_owned()
    } else {
        Value::String(key.to_owned()).to_string()
    }
}

/// A value on one line: tables inline, in their keys' order.
fn inline(value: &Value) -> String {
    match value {
        Value::Table(t) => {
            let parts: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{} = {}", inline_key(k), inline(v)))
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", parts.join(", "))
        }
        other => other.to_string(),
    }
}
