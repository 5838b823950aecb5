//! Shrinking a failing plan: take it apart while it still fails, as Hypothesis and
//! proptest do, but with real runs as the oracle. Candidates come smallest-first (a whole
//! meeting, a whole step, a bot behaviour, then simpler triggers and shorter times); the
//! first one that still fails becomes the plan, and the search starts again from it,
//! until no candidate fails or the budget of oracle calls is spent. Candidates that are
//! not valid scenarios are skipped without a call. The result always failed when last
//! asked: the shrinker returns nothing unless the original plan fails too.

use std::collections::BTreeSet;
use std::path::Path;

use toml::Value;

use super::plan::{PlanSpec, PlanWhen};

/// Whether a plan still fails the way the finding did.
pub trait Oracle {
    fn fails(&mut self, plan: &PlanSpec) -> impl std::future::Future<Output = bool>;
}

#[derive(Debug, Clone)]
pub struct Shrunk {
    pub plan: PlanSpec,
    /// Oracle calls made, the original's included.
    pub calls: usize,
    /// How many candidates were kept.
    pub steps_taken: usize,
}

/// Shrinks `plan` with at most `budget` oracle calls; `None` when the plan itself does
/// not fail (a finding that does not replay).
pub async fn shrink<O: Oracle>(plan: PlanSpec, oracle: &mut O, budget: usize) -> Option<Shrunk> {
    if !oracle.fails(&plan).await {
        return None;
    }
    let mut shrunk = Shrunk {
        plan,
        calls: 1,
        steps_taken: 0,
    };
    let mut rejected: BTreeSet<String> = BTreeSet::new();
    'search: while shrunk.calls < budget {
        for candidate in candidates(&shrunk.plan) {
            let key = candidate.to_toml("c", "", &Default::default());
            if rejected.contains(&key) || !valid(&candidate) {
                continue;
            }
            if shrunk.calls >= budget {
                break 'search;
            }
            shrunk.calls += 1;
            if oracle.fails(&candidate).await {
                shrunk.plan = candidate;
                shrunk.steps_taken += 1;
                continue 'search;
            }
            rejected.insert(key);
        }
        break;
    }
    Some(shrunk)
}

fn valid(plan: &PlanSpec) -> bool {
    !plan.steps.is_empty()
        && plan
            .scenario(
                Path::new("candidate.toml"),
                "candidate",
                &[("legacy".to_owned(), "holds".to_owned())].into(),
            )
            .is_ok()
}

/// Every one-move simplification of `plan`, the biggest moves first.
pub fn candidates(plan: &PlanSpec) -> Vec<PlanSpec> {
    let mut out = Vec::new();
    if plan.meetings.len() > 1 {
        for m in &plan.meetings {
            out.push(without_meeting(plan, &m.name));
        }
    }
    for step in &plan.steps {
        out.push(without_steps(plan, [step.name.clone()].into()));
    }
    for (i, m) in plan.meetings.iter().enumerate() {
        for key in m.bot.keys() {
            let mut c = plan.clone();
            c.meetings[i].bot.remove(key);
            out.push(c);
        }
    }
    // A step waiting on another takes that one's trigger instead (one link less).
    for (i, step) in plan.steps.iter().enumerate() {
        if let PlanWhen::AfterStep { step: on, after_ms } = &step.when
            && let Some(anchor) = plan.steps.iter().find(|s| &s.name == on)
        {
            let mut c = plan.clone();
            let mut when = anchor.when.clone();
            *when.after_ms_mut() += after_ms;
            c.steps[i].when = when;
            out.push(c);
        }
    }
    // Times toward zero: a trigger's delay, then every number of a step or a behaviour
    // that is a time or a size (to zero, then halved).
    for (i, step) in plan.steps.iter().enumerate() {
        let after = step.when.after_ms();
        for smaller in toward_zero(after) {
            let mut c = plan.clone();
            *c.steps[i].when.after_ms_mut() = smaller;
            out.push(c);
        }
        for (key, value) in &step.fields {
            for smaller in smaller_values(value) {
                let mut c = plan.clone();
                c.steps[i].fields.insert(key.clone(), smaller);
                out.push(c);
            }
        }
    }
    for (i, m) in plan.meetings.iter().enumerate() {
        for (key, value) in &m.bot {
            for smaller in smaller_values(value) {
                let mut c = plan.clone();
                c.meetings[i].bot.insert(key.clone(), smaller);
                out.push(c);
            }
        }
    }
    out
}

/// 0, then half: the two moves toward zero, for a positive number.
fn toward_zero(n: u64) -> Vec<u64> {
    match n {
        0 => Vec::new(),
        1 => vec![0],
        n => vec![0, n / 2],
    }
}

/// Simpler versions of a field's value: numbers toward zero (inside a toxic's attributes
/// too); nothing else changes.
fn smaller_values(value: &Value) -> Vec<Value> {
    match value {
        Value::Integer(n) if *n > 0 => toward_zero(*n as u64)
            .into_iter()
            .map(|v| Value::Integer(v as i64))
            .collect(),
        Value::Table(t) => {
            let mut out = Vec::new();
            for (key, inner) in t {
                for smaller in smaller_values(inner) {
                    let mut c = t.clone();
                    c.insert(key.clone(), smaller);
                    out.push(Value::Table(c));
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

/// The plan without the named steps and every step waiting on one of them.
fn without_steps(plan: &PlanSpec, mut gone: BTreeSet<String>) -> PlanSpec {
    loop {
        let more: Vec<String> = plan
            .steps
            .iter()
            .filter(|s| !gone.contains(&s.name))
            .filter(|s| s.when.step().is_some_and(|on| gone.contains(on)))
            .map(|s| s.name.clone())
            .collect();
        if more.is_empty() {
            break;
        }
        gone.extend(more);
    }
    PlanSpec {
        meetings: plan.meetings.clone(),
        steps: plan
            .steps
            .iter()
            .filter(|s| !gone.contains(&s.name))
            .cloned()
            .collect(),
    }
}

/// The plan without meeting `name`, its steps and the steps that watch or fault it.
fn without_meeting(plan: &PlanSpec, name: &str) -> PlanSpec {
    let gone: BTreeSet<String> = plan
        .steps
        .iter()
        .filter(|s| {
            s.meeting() == Some(name)
                || s.when.meeting() == Some(name)
                || s.link_meeting() == Some(name)
        })
        .map(|s| s.name.clone())
        .collect();
    let mut c = without_steps(plan, gone);
    c.meetings.retain(|m| m.name != name);
    c
}
