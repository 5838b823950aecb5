//! The figures of one load run, from its recorded history alone (pure functions, as the
//! checkers are): time to converge against the bound, stops lost, meetings stuck,
//! containers orphaned, and what became of each meeting.
//!
//! Words, as the report uses them:
//! - a meeting **converges** when its row first turns terminal (completed or failed);
//!   its time to converge runs from the `202` that accepted its stop (0 when the row was
//!   terminal first, as on the pre-active fast path);
//! - a **lost stop** is a stop answered `202` whose meeting is not terminal at the end of
//!   the observation: the incident's "stop accepted, meeting still active";
//! - a **stuck meeting** is a started meeting not terminal at the end, whatever the
//!   reason (a lost stop, a stop that was not accepted);
//! - an **orphan container** is one still running at the end for a row that is terminal
//!   (or for no row): no container may outlive its row.
//!
//! A stop that never converged counts as infinitely slow in the percentiles: a p99 is a
//! time only when at least 99 % of the accepted stops converged.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::spec::{Planned, StopMix};
use crate::history::{EventKind, History, HttpPhase};

/// The time a stop may take, by construction of the fixed flow: the delayed stop, the
/// stop grace (SIGTERM to SIGKILL), the finalizer's grace, and one sweep interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bound {
    pub delayed_stop_ms: u64,
    pub stop_grace_s: u32,
    pub finalizer_grace_ms: u64,
    pub reconcile_interval_ms: u64,
}

impl Bound {
    pub fn total_ms(&self) -> u64 {
        self.delayed_stop_ms
            + u64::from(self.stop_grace_s) * 1000
            + self.finalizer_grace_ms
            + self.reconcile_interval_ms
    }
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ms (delayed stop {} ms + stop grace {} s + finalizer grace {} ms + one sweep {} ms)",
            self.total_ms(),
            self.delayed_stop_ms,
            self.stop_grace_s,
            self.finalizer_grace_ms,
            self.reconcile_interval_ms
        )
    }
}

/// A duration in milliseconds, or never (a stop that did not converge).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub enum Ms {
    At(f64),
    Never,
}

impl Ms {
    pub fn at(self) -> Option<f64> {
        match self {
            Ms::At(ms) => Some(ms),
            Ms::Never => None,
        }
    }
}

impl std::fmt::Display for Ms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ms::At(ms) if *ms >= 10_000.0 => write!(f, "{:.1} s", ms / 1000.0),
            Ms::At(ms) if *ms >= 1000.0 => write!(f, "{:.2} s", ms / 1000.0),
            Ms::At(ms) => write!(f, "{ms:.0} ms"),
            Ms::Never => f.write_str("never"),
        }
    }
}

impl Serialize for Ms {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Ms::At(ms) => s.serialize_f64((ms * 10.0).round() / 10.0),
            Ms::Never => s.serialize_str("never"),
        }
    }
}

impl<'de> Deserialize<'de> for Ms {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) if s == "never" => Ok(Ms::Never),
            serde_json::Value::Number(n) => n
                .as_f64()
                .map(Ms::At)
                .ok_or_else(|| serde::de::Error::custom("a duration in ms")),
            other => Err(serde::de::Error::custom(format!(
                "expected a duration in ms or \"never\", got {other}"
            ))),
        }
    }
}

/// The `p`-th percentile by nearest rank (the smallest value with at least `p` % of the
/// values at or below it); `None` for no values.
pub fn percentile(values: &[Ms], p: f64) -> Option<Ms> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The middle, the 99th percentile and the worst of some durations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Spread {
    pub p50: Option<Ms>,
    pub p99: Option<Ms>,
    pub max: Option<Ms>,
}

impl Spread {
    pub fn of(values: &[Ms]) -> Spread {
        Spread {
            p50: percentile(values, 50.0),
            p99: percentile(values, 99.0),
            max: percentile(values, 100.0),
        }
    }
}

/// What became of one meeting of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeetingOutcome {
    pub label: String,
    pub meeting_id: Option<i64>,
    /// Its part of the stop mix.
    pub part: usize,
    /// How `POST /bots` was answered (`None`: no answer).
    pub post_status: Option<u16>,
    pub post_ms: Option<f64>,
    /// How its `DELETE` was answered (`None`: no answer, or never sent).
    pub stop_status: Option<u16>,
    pub stop_sent: bool,
    pub stop_ms: Option<f64>,
    /// The stored status when the stop was sent.
    pub status_at_stop: Option<String>,
    /// The first terminal status stored, and when (ms from the run's start).
    pub ended_as: Option<String>,
    pub ended_at_ms: Option<f64>,
    /// From the accepted stop to the terminal row; `Never` when it did not end.
    pub converge: Option<Ms>,
    /// The row's status at the end.
    pub final_status: Option<String>,
    /// A container of it still running at the end.
    pub container_running: bool,
    /// What the history says happened to it, for the ones that went wrong.
    pub mechanism: Option<String>,
}

impl MeetingOutcome {
    fn accepted(&self) -> bool {
        self.stop_status == Some(202)
    }

    fn terminal_at_end(&self) -> bool {
        self.final_status
            .as_deref()
            .is_some_and(|s| matches!(s, "completed" | "failed"))
    }
}

/// The figures of one part of the stop mix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartFigures {
    pub stop_at: String,
    pub meetings: usize,
    pub accepted: usize,
    pub converge: Spread,
    pub within_bound: usize,
    pub lost_stops: usize,
}

/// The figures of one run (one profile, one meeting count).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub meetings: usize,
    /// `POST /bots` answered 201.
    pub started: usize,
    pub stops_sent: usize,
    pub stops_accepted: usize,
    /// Answered other than 202, or not answered.
    pub stops_not_accepted: usize,
    /// Accepted stops whose row turned terminal.
    pub converged: usize,
    pub within_bound: usize,
    pub converge: Spread,
    pub lost_stops: usize,
    pub stuck: usize,
    /// Stuck meetings whose container still runs at the end.
    pub stuck_running: usize,
    pub orphans: usize,
    pub post_latency: Spread,
    pub stop_latency: Spread,
    /// How the rows ended (`completed (stopped)`, `failed (active)`, `active`, ...).
    pub ended: BTreeMap<String, usize>,
    /// The stored status each stop met.
    pub status_at_stop: BTreeMap<String, usize>,
    pub parts: Vec<PartFigures>,
    /// What happened to the lost, stuck and orphaned ones, each told once with its count.
    pub mechanisms: BTreeMap<String, usize>,
    /// What keeps these figures from judging the run (inconclusive).
    pub problems: Vec<String>,
}

#[derive(Debug, Default)]
struct Exchange {
    sent_us: Option<i64>,
    answered_us: Option<i64>,
    status: Option<u16>,
    body: Option<serde_json::Value>,
    error: Option<String>,
}

/// Every meeting's outcome, from the history of a run of `plan`.
pub fn outcomes(history: &History, plan: &[Planned]) -> Vec<MeetingOutcome> {
    let mut ids_by_native: HashMap<&str, i64> = HashMap::new();
    let mut statuses: HashMap<i64, Vec<(i64, &str)>> = HashMap::new();
    let mut exchanges: HashMap<(String, &str), Exchange> = HashMap::new();
    let mut ops: HashMap<u64, (String, &str)> = HashMap::new();
    for e in &history.events {
        match &e.kind {
            EventKind::MeetingInserted {
                meeting_id,
                native_meeting_id,
                ..
            } => {
                ids_by_native.insert(native_meeting_id, *meeting_id);
            }
            EventKind::StatusStored { meeting_id, to, .. } => {
                statuses.entry(*meeting_id).or_default().push((e.at_us, to));
            }
            EventKind::Http {
                op,
                phase,
                method,
                meeting: Some(label),
                status,
                body,
                error,
                ..
            } => {
                let key = match phase {
                    HttpPhase::Invoke => {
                        let key = (label.clone(), method.as_str());
                        ops.insert(*op, key.clone());
                        key
                    }
                    _ => match ops.get(op) {
                        Some(key) => key.clone(),
                        None => continue,
                    },
                };
                let x = exchanges.entry(key).or_default();
                match phase {
                    HttpPhase::Invoke => x.sent_us = Some(e.at_us),
                    _ => {
                        x.answered_us = Some(e.at_us);
                        x.status = *status;
                        x.body = body.clone();
                        x.error = error.clone();
                    }
                }
            }
            _ => {}
        }
    }
    let final_state = history.final_state();
    let final_rows: HashMap<i64, &str> = final_state
        .map(|f| {
            f.meetings
                .iter()
                .map(|m| (m.id, m.status.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let running: Vec<i64> = final_state
        .map(|f| {
            f.containers
                .iter()
                .filter(|c| is_running(&c.state))
                .filter_map(|c| c.meeting_id)
                .collect()
        })
        .unwrap_or_default();
    plan.iter()
        .map(|p| {
            let post = exchanges.get(&(p.label.clone(), "POST"));
            let stop = exchanges.get(&(p.label.clone(), "DELETE"));
            let meeting_id = ids_by_native.get(p.native_meeting_id.as_str()).copied();
            let latency = |x: &Exchange| match (x.sent_us, x.answered_us, x.status) {
                (Some(s), Some(a), Some(_)) => Some((a - s) as f64 / 1000.0),
                _ => None,
            };
            let line = meeting_id.and_then(|id| statuses.get(&id));
            let status_at = |at: i64| -> String {
                line.and_then(|l| l.iter().rev().find(|(t, _)| *t <= at))
                    .map_or("requested", |(_, s)| s)
                    .to_owned()
            };
            let ended = line.and_then(|l| {
                l.iter()
                    .find(|(_, s)| matches!(*s, "completed" | "failed"))
                    .copied()
            });
            let accepted_at = stop
                .filter(|x| x.status == Some(202))
                .and_then(|x| x.answered_us);
            let final_status =
                meeting_id.and_then(|id| final_rows.get(&id).map(|s| (*s).to_owned()));
            let converge = accepted_at.map(|at| match ended {
                Some((end, _)) => Ms::At((end - at).max(0) as f64 / 1000.0),
                None => Ms::Never,
            });
            MeetingOutcome {
                label: p.label.clone(),
                meeting_id,
                part: p.part,
                post_status: post.and_then(|x| x.status),
                post_ms: post.and_then(latency),
                stop_status: stop.and_then(|x| x.status),
                stop_sent: stop.is_some_and(|x| x.sent_us.is_some()),
                stop_ms: stop.and_then(latency),
                status_at_stop: stop.and_then(|x| x.sent_us).map(status_at),
                ended_as: ended.map(|(_, s)| s.to_owned()),
                ended_at_ms: ended.map(|(at, _)| at as f64 / 1000.0),
                converge,
                final_status,
                container_running: meeting_id.is_some_and(|id| running.contains(&id)),
                mechanism: None,
            }
        })
        .map(|mut o| {
            let wrong = (o.accepted() && !o.terminal_at_end())
                || (o.post_status == Some(201) && !o.terminal_at_end())
                || (o.terminal_at_end() && o.container_running);
            if wrong {
                o.mechanism = Some(mechanism(history, &o));
            }
            o
        })
        .collect()
}

/// Docker's states of a container whose bot runs (or may run on: paused, restarting).
/// A container `created` and never started runs nothing: a start that failed leaves one.
pub fn is_running(state: &str) -> bool {
    matches!(state, "running" | "paused" | "restarting")
}

/// A short, countable account of what the history shows for a meeting that went wrong:
/// the status its stop met, whether the bot got the leave, what its terminal callback
/// got, how its container ended, and how the row ended.
pub fn mechanism(history: &History, o: &MeetingOutcome) -> String {
    let mut leave = false;
    let mut callback: Option<String> = None;
    let mut exit: Option<i64> = None;
    let mut lost_report = false;
    if let Some(id) = o.meeting_id {
        for e in &history.events {
            match &e.kind {
                EventKind::Bot {
                    meeting_id: Some(m),
                    event,
                    fields,
                    ..
                } if *m == id => match event.as_str() {
                    "command_received" if fields["action"] == "leave" => leave = true,
                    "callback_result" => {
                        callback = Some(match fields["http_status"].as_u64() {
                            Some(code) => format!("answered {code}"),
                            None => format!(
                                "failed ({})",
                                error_kind(fields["error"].as_str().unwrap_or_default())
                            ),
                        });
                    }
                    "status_sent" if fields["http_status"].as_u64().is_none() => {
                        lost_report = true;
                    }
                    _ => {}
                },
                EventKind::Container {
                    action,
                    meeting_id: Some(m),
                    exit_code,
                    ..
                } if *m == id && action == "die" => exit = *exit_code,
                _ => {}
            }
        }
    }
    let mut parts = Vec::new();
    match (&o.stop_status, o.stop_sent) {
        (Some(202), _) => parts.push(format!(
            "stop accepted while {}",
            o.status_at_stop.as_deref().unwrap_or("unknown")
        )),
        (Some(code), _) => parts.push(format!("stop answered {code}")),
        (None, true) => parts.push("stop not answered".to_owned()),
        (None, false) => parts.push("never stopped".to_owned()),
    }
    if lost_report {
        parts.push("a status report failed".to_owned());
    }
    parts.push(
        if leave {
            "leave received"
        } else {
            "leave not received"
        }
        .to_owned(),
    );
    parts.push(match callback {
        Some(c) => format!("terminal callback {c}"),
        None => "no terminal callback".to_owned(),
    });
    parts.push(match (exit, o.container_running) {
        (_, true) => "container still running".to_owned(),
        (Some(code), false) => format!("container exited {code}"),
        (None, false) => "container gone".to_owned(),
    });
    parts.push(format!(
        "row {} at the end",
        o.final_status.as_deref().unwrap_or("missing")
    ));
    parts.join("; ")
}

/// An HTTP client error reduced to its kind, so that like failures count together.
fn error_kind(error: &str) -> &'static str {
    let e = error.to_ascii_lowercase();
    if e.contains("timed out") || e.contains("timeout") {
        "timed out"
    } else if e.contains("refused") {
        "connection refused"
    } else if e.contains("reset") || e.contains("closed") || e.contains("broken pipe") {
        "connection reset"
    } else {
        "error"
    }
}

/// The figures of a run from its meetings' outcomes.
pub fn figures(
    history: &History,
    plan: &[Planned],
    mix: &StopMix,
    bound_ms: u64,
) -> (Figures, Vec<MeetingOutcome>) {
    let outcomes = outcomes(history, plan);
    let bound = bound_ms as f64;
    let accepted: Vec<&MeetingOutcome> = outcomes.iter().filter(|o| o.accepted()).collect();
    let times: Vec<Ms> = accepted.iter().filter_map(|o| o.converge).collect();
    let within = |times: &[Ms]| {
        times
            .iter()
            .filter(|t| matches!(t, Ms::At(ms) if *ms <= bound))
            .count()
    };
    let latencies = |f: fn(&MeetingOutcome) -> Option<f64>| -> Vec<Ms> {
        outcomes.iter().filter_map(f).map(Ms::At).collect()
    };
    let mut ended = BTreeMap::new();
    let mut at_stop = BTreeMap::new();
    let mut mechanisms = BTreeMap::new();
    for o in &outcomes {
        if let Some(status) = &o.final_status {
            let reason = history.final_state().and_then(|f| {
                f.meetings
                    .iter()
                    .find(|m| Some(m.id) == o.meeting_id)
                    .and_then(|m| {
                        m.data["completion_reason"]
                            .as_str()
                            .or(m.data["failure_stage"].as_str())
                            .map(str::to_owned)
                    })
            });
            let key = match reason {
                Some(r) => format!("{status} ({r})"),
                None => status.clone(),
            };
            *ended.entry(key).or_insert(0) += 1;
        }
        if let Some(s) = &o.status_at_stop {
            *at_stop.entry(s.clone()).or_insert(0) += 1;
        }
        if let Some(m) = &o.mechanism {
            *mechanisms.entry(m.clone()).or_insert(0) += 1;
        }
    }
    let parts = mix
        .0
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let mine: Vec<&MeetingOutcome> = outcomes.iter().filter(|o| o.part == i).collect();
            let times: Vec<Ms> = mine
                .iter()
                .filter(|o| o.accepted())
                .filter_map(|o| o.converge)
                .collect();
            PartFigures {
                stop_at: part.to_string(),
                meetings: mine.len(),
                accepted: mine.iter().filter(|o| o.accepted()).count(),
                converge: Spread::of(&times),
                within_bound: within(&times),
                lost_stops: mine
                    .iter()
                    .filter(|o| o.accepted() && !o.terminal_at_end())
                    .count(),
            }
        })
        .collect();
    let started: Vec<&MeetingOutcome> = outcomes
        .iter()
        .filter(|o| o.post_status == Some(201))
        .collect();
    let stuck: Vec<&&MeetingOutcome> = started.iter().filter(|o| !o.terminal_at_end()).collect();
    let orphans = history.final_state().map_or(0, |f| {
        f.containers
            .iter()
            .filter(|c| is_running(&c.state))
            .filter(|c| {
                let row = c
                    .meeting_id
                    .and_then(|id| f.meetings.iter().find(|m| m.id == id));
                row.is_none_or(|m| matches!(m.status.as_str(), "completed" | "failed"))
            })
            .count()
    });
    let figures = Figures {
        meetings: plan.len(),
        started: started.len(),
        stops_sent: outcomes.iter().filter(|o| o.stop_sent).count(),
        stops_accepted: accepted.len(),
        stops_not_accepted: outcomes
            .iter()
            .filter(|o| o.stop_sent && !o.accepted())
            .count(),
        converged: times.iter().filter(|t| matches!(t, Ms::At(_))).count(),
        within_bound: within(&times),
        converge: Spread::of(&times),
        lost_stops: accepted.iter().filter(|o| !o.terminal_at_end()).count(),
        stuck: stuck.len(),
        stuck_running: stuck.iter().filter(|o| o.container_running).count(),
        orphans,
        post_latency: Spread::of(&latencies(|o| o.post_ms)),
        stop_latency: Spread::of(&latencies(|o| o.stop_ms)),
        ended,
        status_at_stop: at_stop,
        parts,
        mechanisms,
        problems: problems(history, &outcomes),
    };
    (figures, outcomes)
}

/// What keeps a run from being judged: meetings that did not start, stops not sent, no
/// final state, a gap in the recording of the database, a terminal row whose change
/// the recording lacks.
fn problems(history: &History, outcomes: &[MeetingOutcome]) -> Vec<String> {
    let mut problems = Vec::new();
    let not_started: Vec<String> = outcomes
        .iter()
        .filter(|o| o.post_status != Some(201))
        .map(|o| match o.post_status {
            Some(code) => format!("{} answered {code}", o.label),
            None => format!("{} not answered", o.label),
        })
        .collect();
    if !not_started.is_empty() {
        problems.push(format!(
            "only {} of {} meetings started (POST /bots answered 201): {}{}",
            outcomes.len() - not_started.len(),
            outcomes.len(),
            not_started
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            if not_started.len() > 5 { ", ..." } else { "" }
        ));
    }
    let unsent = outcomes
        .iter()
        .filter(|o| o.post_status == Some(201) && !o.stop_sent)
        .count();
    if unsent > 0 {
        problems.push(format!("{unsent} started meetings were never stopped"));
    }
    if history.final_state().is_none() {
        problems.push("no final state was read".to_owned());
    }
    for e in &history.events {
        if let EventKind::RecorderGap { source, detail } = &e.kind
            && source == "postgres"
        {
            problems.push(format!(
                "the recording of the database broke off at {:.1} s ({detail}): changes may be missing",
                e.at_us as f64 / 1e6
            ));
        }
    }
    let unrecorded = outcomes
        .iter()
        .filter(|o| {
            o.ended_as.is_none()
                && o.final_status
                    .as_deref()
                    .is_some_and(|s| matches!(s, "completed" | "failed"))
        })
        .count();
    if unrecorded > 0 {
        problems.push(format!(
            "{unrecorded} rows are terminal at the end but the recording has no terminal change for them"
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[f64]) -> Vec<Ms> {
        values.iter().copied().map(Ms::At).collect()
    }

    #[test]
    fn percentiles_are_taken_by_nearest_rank() {
        let hundred: Vec<Ms> = ms(&(1..=100).map(f64::from).collect::<Vec<_>>());
        assert_eq!(percentile(&hundred, 50.0), Some(Ms::At(50.0)));
        assert_eq!(percentile(&hundred, 99.0), Some(Ms::At(99.0)));
        assert_eq!(percentile(&hundred, 100.0), Some(Ms::At(100.0)));
        // Order does not matter; one value is every percentile.
        assert_eq!(percentile(&ms(&[3.0, 1.0, 2.0]), 50.0), Some(Ms::At(2.0)));
        assert_eq!(percentile(&ms(&[7.0]), 99.0), Some(Ms::At(7.0)));
        assert_eq!(percentile(&[], 50.0), None);
        // 1000 values: the 99th percentile is the 990th.
        let thousand: Vec<Ms> = ms(&(1..=1000).map(f64::from).collect::<Vec<_>>());
        assert_eq!(percentile(&thousand, 99.0), Some(Ms::At(990.0)));
    }

    #[test]
    fn a_stop_that_never_converged_counts_as_slowest() {
        let mut values = ms(&(1..=99).map(f64::from).collect::<Vec<_>>());
        values.push(Ms::Never);
        let spread = Spread::of(&values);
        assert_eq!(spread.p99, Some(Ms::At(99.0)), "1 in 100 may be missing");
        assert_eq!(spread.max, Some(Ms::Never));
        values.push(Ms::Never);
        assert_eq!(Spread::of(&values).p99, Some(Ms::Never), "2 in 101 may not");
        assert_eq!(Ms::Never.to_string(), "never");
        assert_eq!(serde_json::to_string(&Ms::Never).unwrap(), "\"never\"");
        assert_eq!(serde_json::to_string(&Ms::At(1234.56)).unwrap(), "1234.6");
        let back: Ms = serde_json::from_str("\"never\"").unwrap();
        assert_eq!(back, Ms::Never);
    }

    #[test]
    fn the_bound_adds_the_delayed_stop_the_grace_the_finalizer_and_a_sweep() {
        let bound = Bound {
            delayed_stop_ms: 1000,
            stop_grace_s: 1,
            finalizer_grace_ms: 200,
            reconcile_interval_ms: 500,
        };
        assert_eq!(bound.total_ms(), 2700);
        assert!(
            bound
                .to_string()
                .starts_with("2700 ms (delayed stop 1000 ms"),
            "{bound}"
        );
    }

    #[test]
    fn durations_read_in_their_unit() {
        assert_eq!(Ms::At(12.4).to_string(), "12 ms");
        assert_eq!(Ms::At(2345.0).to_string(), "2.35 s");
        assert_eq!(Ms::At(12_345.0).to_string(), "12.3 s");
    }

    #[test]
    fn client_errors_count_together_by_kind() {
        assert_eq!(error_kind("operation timed out"), "timed out");
        assert_eq!(
            error_kind("tcp connect error: Connection refused (os error 111)"),
            "connection refused"
        );
        assert_eq!(error_kind("connection reset by peer"), "connection reset");
        assert_eq!(error_kind("something else"), "error");
    }
}

#[cfg(test)]
mod history_tests {
    use std::time::Duration;

    use super::*;
    use crate::check::invariants::testkit::H;

    fn plan() -> Vec<Planned> {
        ["m1", "m2", "m3"]
            .iter()
            .enumerate()
            .map(|(i, label)| Planned {
                label: (*label).into(),
                native_meeting_id: format!("aaa-bbbb-cc{}", i + 1),
                part: 0,
                stop_after: Duration::from_secs(1),
            })
            .collect()
    }

    /// m1 stopped and ended by its bot; m2's stop accepted and lost (its bot gone, its row
    /// active); m3 completed at once while its bot runs on.
    fn history() -> History {
        let mut h = H::new();
        for (i, p) in plan().iter().enumerate() {
            let id = i as i64 + 1;
            h = h
                .label(&p.label, &p.native_meeting_id)
                .at(0)
                .request("POST", &p.label, 201)
                .insert(id, &p.native_meeting_id, "requested")
                .start(id);
        }
        h.at(300)
            .status(1, "requested", "active")
            .status(2, "requested", "active")
            .at(1000)
            .delete_accepted("m1")
            .delete_accepted("m2")
            .delete_invoked("m3")
            .at(1001)
            .status(3, "requested", "completed")
            .answered("m3", 202)
            .at(2250)
            .status(1, "active", "completed")
            .die(1)
            .at(2500)
            .die(2)
            .at(9000)
            .final_auto()
            .end()
    }

    #[test]
    fn a_history_gives_converged_lost_stuck_and_orphaned_meetings() {
        let mix: StopMix = "1s".parse().unwrap();
        let (f, outcomes) = figures(&history(), &plan(), &mix, 2700);
        assert_eq!((f.meetings, f.started, f.stops_accepted), (3, 3, 3));
        assert_eq!((f.converged, f.within_bound), (2, 2));
        assert_eq!(
            (f.lost_stops, f.stuck, f.stuck_running, f.orphans),
            (1, 1, 0, 1)
        );
        assert_eq!(f.converge.p50, Some(Ms::At(1250.0)));
        assert_eq!(
            f.converge.p99,
            Some(Ms::Never),
            "one in three never converged"
        );
        assert_eq!(f.status_at_stop.get("active"), Some(&2));
        assert_eq!(f.ended.get("completed (stopped)"), Some(&2));
        assert_eq!(f.ended.get("active"), Some(&1));
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert_eq!(
            outcomes[2].converge,
            Some(Ms::At(0.0)),
            "terminal before the 202"
        );
        assert_eq!(
            outcomes[1].mechanism.as_deref(),
            Some(
                "stop accepted while active; leave not received; no terminal callback; \
                 container exited 137; row active at the end"
            )
        );
        assert_eq!(
            outcomes[2].mechanism.as_deref(),
            Some(
                "stop accepted while requested; leave not received; no terminal callback; \
                 container still running; row completed at the end"
            )
        );
        assert_eq!(f.parts[0].lost_stops, 1);
    }

    #[test]
    fn meetings_that_did_not_start_make_the_run_inconclusive() {
        let h = H::new()
            .label("m1", "aaa-bbbb-cc1")
            .at(0)
            .request("POST", "m1", 500)
            .final_auto()
            .end();
        let mix: StopMix = "1s".parse().unwrap();
        let (f, _) = figures(&h, &plan()[..1], &mix, 2700);
        assert_eq!(f.started, 0);
        assert!(
            f.problems[0].starts_with("only 0 of 1 meetings started")
                && f.problems[0].contains("m1 answered 500"),
            "{:?}",
            f.problems
        );
    }
}
