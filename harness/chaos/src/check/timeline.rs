//! A history digested for the checkers: each meeting's stored statuses over time, each
//! container's lifetimes, the bots' logs, and the resolution of scenario labels, session
//! uids and channels to meeting rows. Pure: built from the history alone.
//!
//! Conventions shared by every checker:
//! - events are ordered by `at_us` (then `seq`); "at time t" includes events at exactly t;
//! - "terminal" is `completed` or `failed`; any other stored value (including `error`) is not;
//! - a container is alive from a `start` to the next `die`/`destroy`; a `pause` does not end
//!   it. The `Final` event's container list settles the end: a container listed as
//!   running or paused is alive at the end (a forgotten one emits no events), one listed
//!   as exited whose exit no event showed died at its bot's `exiting` line if it logged
//!   one, else at an unknown time after its last sign of life.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::history::{
    Event, EventKind, FaultPhase, FinalContainer, FinalState, History, HttpPhase, MeetingLabel,
    meeting_id_from_container_name,
};

pub(crate) fn is_terminal(status: &str) -> bool {
    matches!(status, "completed" | "failed")
}

/// Milliseconds since the run started, for summaries.
/// When a grace from [`Timeline::after_service_time`] runs out, for a finding's text.
pub(crate) fn grace_end(at_us: i64) -> String {
    if at_us == i64::MAX {
        "never: the scenario kept the service down or cut off to the end".to_owned()
    } else {
        ms(at_us)
    }
}

pub(crate) fn ms(us: i64) -> String {
    if us % 1000 == 0 {
        format!("{} ms", us / 1000)
    } else {
        format!("{:.1} ms", us as f64 / 1000.0)
    }
}

/// A JSON payload as recorded: parsed JSON, or text that may itself hold JSON.
pub(crate) fn json_payload(payload: &Value) -> Value {
    match payload {
        Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| payload.clone()),
        other => other.clone(),
    }
}

/// One stored status of a meeting: its `MeetingInserted` or a `StatusStored`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StatusAt<'h> {
    pub at_us: i64,
    pub status: &'h str,
    pub event: &'h Event,
}

/// A meeting row's stored status timeline.
#[derive(Debug, Default)]
pub(crate) struct MeetingLine<'h> {
    pub inserted: Option<&'h Event>,
    pub platform: Option<&'h str>,
    pub native: Option<&'h str>,
    /// The insert, then every stored change, in history order.
    pub statuses: Vec<StatusAt<'h>>,
}

impl<'h> MeetingLine<'h> {
    /// The stored status at `t` (the last one at or before it).
    pub fn status_at(&self, t: i64) -> Option<StatusAt<'h>> {
        self.statuses.iter().rev().find(|s| s.at_us <= t).copied()
    }

    /// When the row first held a terminal status.
    pub fn first_terminal(&self) -> Option<StatusAt<'h>> {
        self.statuses
            .iter()
            .find(|s| is_terminal(s.status))
            .copied()
    }

    pub fn last_status(&self) -> Option<StatusAt<'h>> {
        self.statuses.last().copied()
    }
}

/// How one life of a container ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LifeEnd<'h> {
    /// Still alive when the run ended.
    Running,
    /// Died at a known time: its `die`/`destroy` event, or its bot's `exiting` line.
    Died { at_us: i64, event: &'h Event },
    /// Exited (per the final state) at an unknown time after `seen_us`, its last sign of
    /// life (a forgotten container emits no events).
    Vanished { seen_us: i64 },
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Life<'h> {
    pub from_us: i64,
    /// The `start` event, when one was seen.
    pub start: Option<&'h Event>,
    pub end: LifeEnd<'h>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alive {
    Yes,
    No,
    Maybe,
}

/// When a meeting's container went away for good.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Gone<'h> {
    /// Never (a container alive at the end, or no container that ever ran or died).
    Never,
    /// Gone from `at_us`: its last `die`/`destroy` with no later `start`.
    At { at_us: i64, event: &'h Event },
    /// Gone at an unknown time after `after_us`.
    Sometime { after_us: i64 },
}

#[derive(Debug)]
pub(crate) struct ContainerLife<'h> {
    pub id: String,
    pub name: String,
    pub meeting_id: Option<i64>,
    pub events: Vec<&'h Event>,
    pub lives: Vec<Life<'h>>,
    /// A `die`/`destroy` of a container that never started (a failed start).
    pub death_unstarted: Option<&'h Event>,
    pub final_entry: Option<&'h FinalContainer>,
}

impl<'h> ContainerLife<'h> {
    pub fn alive_at(&self, t: i64) -> Alive {
        let mut answer = Alive::No;
        for life in self.lives.iter().filter(|l| l.from_us <= t) {
            match life.end {
                LifeEnd::Running => return Alive::Yes,
                LifeEnd::Died { at_us, .. } if at_us > t => return Alive::Yes,
                LifeEnd::Died { .. } => {}
                LifeEnd::Vanished { seen_us } if t <= seen_us => return Alive::Yes,
                LifeEnd::Vanished { .. } => answer = Alive::Maybe,
            }
        }
        answer
    }

    pub fn gone(&self) -> Gone<'h> {
        match self.lives.last() {
            Some(life) => match life.end {
                LifeEnd::Running => Gone::Never,
                LifeEnd::Died { at_us, event } => Gone::At { at_us, event },
                LifeEnd::Vanished { seen_us } => Gone::Sometime { after_us: seen_us },
            },
            None => match self.death_unstarted {
                Some(event) => Gone::At {
                    at_us: event.at_us,
                    event,
                },
                None => Gone::Never,
            },
        }
    }

    fn answers_to(&self, reference: &str) -> bool {
        let reference = reference.trim_start_matches('/');
        !reference.is_empty()
            && (self.name.trim_start_matches('/') == reference
                || self.id == reference
                || (reference.len() >= 12 && self.id.starts_with(reference)))
    }
}

/// A bot's own event log, one per `container` value of `Bot` events.
#[derive(Debug)]
pub(crate) struct BotLog<'h> {
    pub container: String,
    pub meeting_id: Option<i64>,
    pub events: Vec<&'h Event>,
    /// Index into [`Timeline::containers`].
    pub life: Option<usize>,
}

/// Where a bot listens for commands.
/// The channels a bot listens on (a bot may listen on its connection channel and on the
/// meeting channel at once).
pub(crate) type Listening = std::collections::BTreeSet<String>;

impl BotLog<'_> {
    /// The channels the bot listens on at `t`, from its `started`, `subscribed`,
    /// `subscribe_failed`, `subscription_lost` and `uid_changed` lines at or before `t`, and
    /// the last of those lines. A failure or loss naming no channel ends every subscription.
    pub fn listening_at(&self, t: i64) -> (Listening, Option<&Event>) {
        let mut state = Listening::new();
        let mut last = None;
        for e in self.events.iter().copied().filter(|e| e.at_us <= t) {
            let EventKind::Bot { event, fields, .. } = &e.kind else {
                continue;
            };
            let channel = fields.get("channel").and_then(Value::as_str);
            match event.as_str() {
                // A new process (a restart in the same container) starts with nothing.
                "started" => state.clear(),
                "subscribed" => {
                    if let Some(replaced) = fields.get("replaces").and_then(Value::as_str) {
                        state.remove(replaced);
                    }
                    if let Some(channel) = channel {
                        state.insert(channel.to_owned());
                    }
                }
                "subscribe_failed" | "subscription_lost" => match channel {
                    Some(channel) => {
                        state.remove(channel);
                    }
                    None => state.clear(),
                },
                "uid_changed" => {
                    let old = fields.get("old_uid").and_then(Value::as_str);
                    let new = fields.get("new_uid").and_then(Value::as_str);
                    if let (Some(old), Some(new)) = (old, new)
                        && state.remove(&format!("bot_commands:{old}"))
                    {
                        state.insert(format!("bot_commands:{new}"));
                    }
                }
                _ => continue,
            }
            last = Some(e);
        }
        (state, last)
    }
}

/// An HTTP exchange about a scenario meeting: from its `invoke` to its answer.
#[derive(Debug, Clone)]
pub(crate) struct Exchange<'h> {
    pub method: String,
    pub label: String,
    pub from_us: i64,
    pub until_us: i64,
    pub path: String,
    /// Who sent it when not the meeting's user (the history's `by`).
    pub by: Option<String>,
    /// What was sent.
    pub body: Option<Value>,
    /// The answer's status; `None` when none came (failed, timed out or never answered).
    pub status: Option<u16>,
    pub invoke: &'h Event,
}

impl<'h> Exchange<'h> {
    fn new(invoke: &'h Event, until_us: i64, status: Option<u16>) -> Self {
        let EventKind::Http {
            method,
            path,
            meeting,
            body,
            by,
            ..
        } = &invoke.kind
        else {
            unreachable!("an exchange starts with an HTTP invoke");
        };
        Exchange {
            method: method.clone(),
            label: meeting.clone().unwrap_or_default(),
            from_us: invoke.at_us,
            until_us,
            path: path.clone(),
            by: by.clone(),
            body: body.clone(),
            status,
            invoke,
        }
    }

    /// Sent by neither the meeting's user nor its own bot.
    pub fn forged(&self) -> bool {
        self.by.as_deref().is_some_and(|by| by != "bot")
    }
}

#[derive(Debug)]
pub(crate) struct Timeline<'h> {
    pub end_us: i64,
    pub labels: Vec<MeetingLabel>,
    pub meetings: BTreeMap<i64, MeetingLine<'h>>,
    pub containers: Vec<ContainerLife<'h>>,
    pub bots: Vec<BotLog<'h>>,
    pub final_event: Option<&'h Event>,
    pub final_state: Option<&'h FinalState>,
    /// When the last fault healed.
    pub last_heal_us: Option<i64>,
    /// When the scenario impaired the service itself: kept it down (a restart's or a
    /// stop's fault period) or faulted one of its own links (`service:postgres`,
    /// `service:redis`, `service:runtime`); in order of start, possibly overlapping; the
    /// end is `None` while it lasted to the end of the run.
    pub service_impaired: Vec<(i64, Option<i64>)>,
    pub exchanges: Vec<Exchange<'h>>,
    /// How the service spoke on Redis.
    pub wire: protocol::Wire,
    uids: HashMap<String, i64>,
}

impl<'h> Timeline<'h> {
    /// The moment by which the service has been up and unimpaired for `span` since
    /// `from`: a window the checkers give the service (a grace) does not run while the
    /// scenario itself keeps the service down or cuts it off from its own dependencies,
    /// as INV-TERMINAL's deadline runs from the last heal.
    pub fn after_service_time(&self, from: i64, span: i64) -> i64 {
        let mut periods: Vec<(i64, i64)> = self
            .service_impaired
            .iter()
            .map(|&(down, up)| (down, up.unwrap_or(i64::MAX)))
            .collect();
        periods.sort_unstable();
        let mut at = from;
        let mut left = span;
        for (down, up) in periods {
            if up <= at {
                continue;
            }
            if down > at {
                if at + left <= down {
                    return at + left;
                }
                left -= down - at;
            }
            if up == i64::MAX {
                return i64::MAX;
            }
            at = up;
        }
        at + left
    }

    pub fn new(history: &'h History) -> Self {
        let mut tl = Timeline {
            end_us: history.end_us(),
            labels: history.meeting_labels(),
            meetings: BTreeMap::new(),
            containers: Vec::new(),
            bots: Vec::new(),
            final_event: None,
            final_state: None,
            last_heal_us: None,
            service_impaired: Vec::new(),
            exchanges: Vec::new(),
            wire: history.wire(),
            uids: HashMap::new(),
        };
        let mut invoked: HashMap<u64, &'h Event> = HashMap::new();
        // Service faults applied and not healed yet: name, target, index.
        let mut impairing: Vec<(&str, &str, usize)> = Vec::new();
        for e in &history.events {
            match &e.kind {
                EventKind::MeetingInserted {
                    meeting_id,
                    platform,
                    native_meeting_id,
                    status,
                } => {
                    let line = tl.meetings.entry(*meeting_id).or_default();
                    line.inserted.get_or_insert(e);
                    line.platform = Some(platform.as_str());
                    line.native = Some(native_meeting_id.as_str());
                    line.statuses.push(StatusAt {
                        at_us: e.at_us,
                        status,
                        event: e,
                    });
                }
                EventKind::StatusStored { meeting_id, to, .. } => {
                    tl.meetings
                        .entry(*meeting_id)
                        .or_default()
                        .statuses
                        .push(StatusAt {
                            at_us: e.at_us,
                            status: to,
                            event: e,
                        });
                }
                EventKind::MeetingUpdated { meeting_id, .. } => {
                    tl.meetings.entry(*meeting_id).or_default();
                }
                EventKind::SessionStored {
                    meeting_id,
                    session_uid,
                    ..
                } => {
                    tl.uids.entry(session_uid.clone()).or_insert(*meeting_id);
                }
                EventKind::Container {
                    container_id,
                    name,
                    meeting_id,
                    ..
                } => {
                    let index = match tl.containers.iter().position(|c| c.id == *container_id) {
                        Some(index) => index,
                        None => {
                            tl.containers.push(ContainerLife {
                                id: container_id.clone(),
                                name: name.clone(),
                                meeting_id: None,
                                events: Vec::new(),
                                lives: Vec::new(),
                                death_unstarted: None,
                                final_entry: None,
                            });
                            tl.containers.len() - 1
                        }
                    };
                    let c = &mut tl.containers[index];
                    c.meeting_id = c
                        .meeting_id
                        .or(*meeting_id)
                        .or_else(|| meeting_id_from_container_name(name));
                    c.events.push(e);
                }
                EventKind::Bot {
                    container,
                    meeting_id,
                    uid,
                    ..
                } => {
                    let index = match tl.bots.iter().position(|b| b.container == *container) {
                        Some(index) => index,
                        None => {
                            tl.bots.push(BotLog {
                                container: container.clone(),
                                meeting_id: None,
                                events: Vec::new(),
                                life: None,
                            });
                            tl.bots.len() - 1
                        }
                    };
                    let bot = &mut tl.bots[index];
                    bot.meeting_id = bot.meeting_id.or(*meeting_id);
                    bot.events.push(e);
                    if let Some(uid) = uid {
                        tl.uids
                            .entry(uid.clone())
                            .or_insert_with(|| meeting_id.unwrap_or(-1));
                    }
                }
                EventKind::Fault {
                    name,
                    phase,
                    target,
                    ..
                } => {
                    let service = target.starts_with("service:")
                        || (target == "service"
                            && matches!(name.as_str(), "restart_service" | "stop_service"));
                    match phase {
                        FaultPhase::Applied if service => {
                            tl.service_impaired.push((e.at_us, None));
                            impairing.push((
                                name.as_str(),
                                target.as_str(),
                                tl.service_impaired.len() - 1,
                            ));
                        }
                        FaultPhase::Healed => {
                            tl.last_heal_us = Some(e.at_us);
                            if let Some(at) = impairing
                                .iter()
                                .position(|(n, t, _)| n == name && t == target)
                            {
                                let (_, _, index) = impairing.remove(at);
                                tl.service_impaired[index].1 = Some(e.at_us);
                            }
                        }
                        _ => {}
                    }
                }
                EventKind::Http {
                    op,
                    phase,
                    meeting,
                    status,
                    ..
                } => match (phase, meeting) {
                    (HttpPhase::Invoke, Some(_)) => {
                        invoked.insert(*op, e);
                    }
                    (HttpPhase::Invoke, None) => {}
                    (_, _) => {
                        if let Some(invoke) = invoked.remove(op) {
                            tl.exchanges.push(Exchange::new(invoke, e.at_us, *status));
                        }
                    }
                },
                EventKind::Final(state) => {
                    tl.final_event = Some(e);
                    tl.final_state = Some(state);
                }
                _ => {}
            }
        }
        // An exchange never answered lasts to the end of the run.
        for invoke in invoked.into_values() {
            tl.exchanges.push(Exchange::new(invoke, tl.end_us, None));
        }
        tl.resolve_bot_uids();
        tl.attach_final_containers();
        tl.link_bots();
        tl.build_lives();
        tl
    }

    /// Bot lines whose meeting id was missing take their log's; `uid_changed` names both
    /// uids of the same bot.
    fn resolve_bot_uids(&mut self) {
        for bot in &mut self.bots {
            if bot.meeting_id.is_none() {
                bot.meeting_id = meeting_id_from_container_name(&bot.container);
            }
            let Some(meeting_id) = bot.meeting_id else {
                continue;
            };
            for e in &bot.events {
                let EventKind::Bot { uid, fields, .. } = &e.kind else {
                    continue;
                };
                let named = [
                    uid.as_deref(),
                    fields.get("old_uid").and_then(Value::as_str),
                    fields.get("new_uid").and_then(Value::as_str),
                ];
                for uid in named.into_iter().flatten() {
                    let slot = self.uids.entry(uid.to_owned()).or_insert(meeting_id);
                    if *slot < 0 {
                        *slot = meeting_id;
                    }
                }
            }
        }
        self.uids.retain(|_, meeting_id| *meeting_id >= 0);
    }

    fn attach_final_containers(&mut self) {
        let Some(state) = self.final_state else {
            return;
        };
        for entry in &state.containers {
            let found = self.containers.iter().position(|c| {
                c.id == entry.id
                    || (!entry.id.is_empty()
                        && !c.id.is_empty()
                        && (c.id.starts_with(&entry.id) || entry.id.starts_with(&c.id)))
                    || (!entry.name.is_empty()
                        && c.name.trim_start_matches('/') == entry.name.trim_start_matches('/'))
            });
            let index = match found {
                Some(index) => index,
                None => {
                    self.containers.push(ContainerLife {
                        id: entry.id.clone(),
                        name: entry.name.clone(),
                        meeting_id: None,
                        events: Vec::new(),
                        lives: Vec::new(),
                        death_unstarted: None,
                        final_entry: None,
                    });
                    self.containers.len() - 1
                }
            };
            let c = &mut self.containers[index];
            c.final_entry = Some(entry);
            c.meeting_id = c
                .meeting_id
                .or(entry.meeting_id)
                .or_else(|| meeting_id_from_container_name(&entry.name));
        }
    }

    fn link_bots(&mut self) {
        for bot in &mut self.bots {
            bot.life = self
                .containers
                .iter()
                .position(|c| c.answers_to(&bot.container));
            if let (Some(index), None) = (bot.life, bot.meeting_id) {
                bot.meeting_id = self.containers[index].meeting_id;
            }
        }
    }

    fn build_lives(&mut self) {
        for index in 0..self.containers.len() {
            let bot_events: Vec<&'h Event> = self
                .bots
                .iter()
                .filter(|b| b.life == Some(index))
                .flat_map(|b| b.events.iter().copied())
                .collect();
            let c = &mut self.containers[index];
            let mut open: Option<(i64, Option<&'h Event>)> = None;
            for e in c.events.iter().copied() {
                let EventKind::Container { action, .. } = &e.kind else {
                    continue;
                };
                match action.as_str() {
                    "start" | "restart" if open.is_none() => open = Some((e.at_us, Some(e))),
                    "die" | "destroy" => match open.take() {
                        Some((from_us, start)) => c.lives.push(Life {
                            from_us,
                            start,
                            end: LifeEnd::Died {
                                at_us: e.at_us,
                                event: e,
                            },
                        }),
                        None if c.lives.is_empty() => {
                            c.death_unstarted.get_or_insert(e);
                        }
                        None => {}
                    },
                    _ => {}
                }
            }
            let final_alive = c
                .final_entry
                .map(|f| matches!(f.state.as_str(), "running" | "paused" | "restarting"));
            match (open, final_alive) {
                (Some((from_us, start)), None | Some(true)) => c.lives.push(Life {
                    from_us,
                    start,
                    end: LifeEnd::Running,
                }),
                (Some((from_us, start)), Some(false)) => {
                    let end = exit_seen_by_bot(&bot_events, from_us);
                    c.lives.push(Life {
                        from_us,
                        start,
                        end,
                    });
                }
                (None, Some(true)) => {
                    // Alive at the end although no event showed it start again.
                    let from_us = c.events.last().map_or(0, |e| e.at_us);
                    c.lives.push(Life {
                        from_us,
                        start: None,
                        end: LifeEnd::Running,
                    });
                }
                (None, Some(false)) if c.events.is_empty() => {
                    // Known only from the final state: it ran at some point, and exited.
                    let end = exit_seen_by_bot(&bot_events, 0);
                    c.lives.push(Life {
                        from_us: 0,
                        start: None,
                        end,
                    });
                }
                (None, _) => {}
            }
        }
    }

    pub fn meeting(&self, id: i64) -> Option<&MeetingLine<'h>> {
        self.meetings.get(&id)
    }

    pub fn containers_of(&self, meeting_id: i64) -> impl Iterator<Item = &ContainerLife<'h>> {
        self.containers
            .iter()
            .filter(move |c| c.meeting_id == Some(meeting_id))
    }

    /// When the meeting's container went away for good: every container of the meeting
    /// that ran (or died) is gone, from the latest of their gone times.
    pub fn meeting_gone(&self, meeting_id: i64) -> Gone<'h> {
        let mut latest: Option<(i64, &'h Event)> = None;
        let mut unknown_after: Option<i64> = None;
        for c in self.containers_of(meeting_id) {
            match c.gone() {
                Gone::Never if c.lives.is_empty() => {}
                Gone::Never => return Gone::Never,
                Gone::At { at_us, event } => {
                    if latest.is_none_or(|(t, _)| at_us > t) {
                        latest = Some((at_us, event));
                    }
                }
                Gone::Sometime { after_us } => {
                    unknown_after = Some(unknown_after.map_or(after_us, |t: i64| t.max(after_us)));
                }
            }
        }
        match (latest, unknown_after) {
            (_, Some(after_us)) => Gone::Sometime {
                after_us: after_us.max(latest.map_or(after_us, |(t, _)| t)),
            },
            (Some((at_us, event)), None) => Gone::At { at_us, event },
            (None, None) => Gone::Never,
        }
    }

    /// Every meeting id with a row or a container.
    pub fn meeting_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.meetings.keys().copied().collect();
        ids.extend(self.containers.iter().filter_map(|c| c.meeting_id));
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub fn label(&self, label: &str) -> Option<&MeetingLabel> {
        self.labels.iter().find(|l| l.label == label)
    }

    /// Every row of (platform, native id) the history saw inserted, oldest first: the
    /// rows sharing that meeting key's status channel. Without a platform, any platform.
    pub fn rows_of_key(&self, platform: Option<&str>, native: &str) -> Vec<i64> {
        let mut rows: Vec<(i64, u64, i64)> = self
            .meetings
            .iter()
            .filter(|(_, line)| line.native == Some(native))
            .filter(|(_, line)| platform.is_none() || line.platform == platform)
            .filter_map(|(id, line)| line.inserted.map(|e| (e.at_us, e.seq, *id)))
            .collect();
        rows.sort_unstable();
        rows.into_iter().map(|(_, _, id)| id).collect()
    }

    /// The latest row of (platform, native id) inserted at or before `t`. Without a
    /// platform, any platform.
    pub fn latest_row_at(&self, platform: Option<&str>, native: &str, t: i64) -> Option<i64> {
        self.meetings
            .iter()
            .filter(|(_, line)| line.native == Some(native))
            .filter(|(_, line)| platform.is_none() || line.platform == platform)
            .filter_map(|(id, line)| line.inserted.map(|e| (e, *id)))
            .filter(|(e, _)| e.at_us <= t)
            .max_by_key(|(e, _)| (e.at_us, e.seq))
            .map(|(_, id)| id)
    }

    /// The earliest row of (platform, native id) ever inserted.
    pub fn first_row(&self, platform: Option<&str>, native: &str) -> Option<i64> {
        self.meetings
            .iter()
            .filter(|(_, line)| line.native == Some(native))
            .filter(|(_, line)| platform.is_none() || line.platform == platform)
            .filter_map(|(id, line)| line.inserted.map(|e| (e, *id)))
            .min_by_key(|(e, _)| (e.at_us, e.seq))
            .map(|(_, id)| id)
    }

    /// The row a request about scenario meeting `label` at `t` addresses: the latest row
    /// of its key inserted at or before `t`, as the service picks it.
    pub fn row_for_label(&self, label: &str, t: i64) -> Option<i64> {
        match self.label(label) {
            Some(l) => self.latest_row_at(Some(&l.platform), &l.native_meeting_id, t),
            None => self.latest_row_at(None, label, t),
        }
    }

    /// Every row of scenario meeting `label`'s key inserted at or before `t`, oldest
    /// first: what a user stopping "the meeting" means.
    pub fn rows_for_label(&self, label: &str, t: i64) -> Vec<i64> {
        let (platform, native) = match self.label(label) {
            Some(l) => (Some(l.platform.as_str()), l.native_meeting_id.as_str()),
            None => (None, label),
        };
        let mut rows: Vec<(i64, i64, u64)> = self
            .meetings
            .iter()
            .filter(|(_, line)| line.native == Some(native))
            .filter(|(_, line)| platform.is_none() || line.platform == platform)
            .filter_map(|(id, line)| line.inserted.map(|e| (e.at_us, e.seq, *id)))
            .filter(|(at, _, _)| *at <= t)
            .map(|(at, seq, id)| (at, id, seq))
            .collect();
        rows.sort_by_key(|(at, _, seq)| (*at, *seq));
        rows.into_iter().map(|(_, id, _)| id).collect()
    }

    /// The meeting a session uid belongs to (session rows, then the bots' own logs).
    pub fn meeting_of_uid(&self, uid: &str) -> Option<i64> {
        self.uids.get(uid).copied()
    }

    pub fn bots_of(&self, meeting_id: i64) -> impl Iterator<Item = &BotLog<'h>> {
        self.bots
            .iter()
            .filter(move |b| b.meeting_id == Some(meeting_id))
    }

    /// Whether a bot's process was alive at `t`: its container's lifetime, or, without
    /// one, its log bracketing `t`.
    pub fn bot_alive_at(&self, bot: &BotLog<'_>, t: i64) -> Alive {
        if let Some(index) = bot.life {
            return self.containers[index].alive_at(t);
        }
        let before = bot.events.iter().any(|e| e.at_us <= t);
        let after = bot.events.iter().any(|e| e.at_us >= t);
        if before && after {
            Alive::Yes
        } else {
            Alive::Maybe
        }
    }

    /// Whether any container of the meeting was alive at `t`.
    pub fn meeting_container_alive_at(&self, meeting_id: i64, t: i64) -> Alive {
        let mut answer = Alive::No;
        for c in self.containers_of(meeting_id) {
            match c.alive_at(t) {
                Alive::Yes => return Alive::Yes,
                Alive::Maybe => answer = Alive::Maybe,
                Alive::No => {}
            }
        }
        answer
    }

    pub fn final_meeting(&self, id: i64) -> Option<&'h crate::history::FinalMeeting> {
        self.final_state?.meetings.iter().find(|m| m.id == id)
    }
}

/// The end of a life that the final state says exited without an event showing it:
/// at the bot's `exiting` (or `crashing`) line, else some time after its last line.
fn exit_seen_by_bot<'h>(bot_events: &[&'h Event], from_us: i64) -> LifeEnd<'h> {
    let exiting = bot_events.iter().copied().find(|e| {
        e.at_us >= from_us
            && matches!(&e.kind, EventKind::Bot { event, .. } if event == "exiting" || event == "crashing")
    });
    match exiting {
        Some(event) => LifeEnd::Died {
            at_us: event.at_us,
            event,
        },
        None => LifeEnd::Vanished {
            seen_us: bot_events
                .iter()
                .map(|e| e.at_us)
                .filter(|t| *t >= from_us)
                .max()
                .unwrap_or(from_us),
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::check::invariants::testkit::{H, container_name};

    #[test]
    fn service_time_skips_every_period_the_service_was_down() {
        let h = H::new().end();
        let mut tl = Timeline::new(&h);
        assert_eq!(tl.after_service_time(100, 50), 150, "never down");
        // Out of order and overlapping, as two faults of one scenario may be.
        tl.service_impaired = vec![
            (400, Some(450)),
            (200, Some(300)),
            (420, Some(430)),
            (900, None),
        ];
        assert_eq!(tl.after_service_time(100, 50), 150, "done before the first");
        assert_eq!(
            tl.after_service_time(100, 150),
            350,
            "100 before, 50 after it"
        );
        assert_eq!(tl.after_service_time(250, 100), 400, "from inside a period");
        assert_eq!(tl.after_service_time(100, 300), 550, "across two periods");
        assert_eq!(
            tl.after_service_time(500, 400),
            900,
            "up to the last one exactly"
        );
        assert_eq!(
            tl.after_service_time(500, 401),
            i64::MAX,
            "never: still down at the end"
        );
        assert_eq!(tl.after_service_time(1000, 1), i64::MAX);
    }

    const LONG_A: &str = "aaaa1111bbbb2222cccc";
    const LONG_B: &str = "dddd3333eeee4444ffff";

    /// Meeting 1's container under a long Docker id, meeting 2's under a short one; both
    /// started.
    fn two_containers(b_id: &str) -> H {
        H::new()
            .at(0)
            .insert(1, "aaa-aaaa-aaa", "active")
            .insert(2, "abc-defg-hij", "active")
            .at(10)
            .container_as(1, LONG_A, &container_name(1), "start")
            .container_as(2, b_id, &container_name(2), "start")
    }

    /// Which recorded container the final state's entry was attached to, and how many
    /// containers the timeline knows.
    fn attached(id: &str, name: &str) -> (Option<usize>, usize) {
        let h = two_containers(LONG_B)
            .at(5000)
            .final_container(id, name, None, "running")
            .end();
        let tl = Timeline::new(&h);
        let index = tl.containers.iter().position(|c| c.final_entry.is_some());
        (index, tl.containers.len())
    }

    #[test]
    fn a_final_state_entry_attaches_to_the_container_it_names_and_to_no_other() {
        // The final state is how a forgotten container is seen: attached to the wrong
        // container, it would keep the wrong meeting's container alive.
        assert_eq!(attached(LONG_B, ""), (Some(1), 2), "by its id");
        assert_eq!(attached("dddd3333eeee", ""), (Some(1), 2), "by a short id");
        assert_eq!(
            attached(&format!("{LONG_B}99"), ""),
            (Some(1), 2),
            "by a longer id"
        );
        assert_eq!(
            attached("", &format!("/{}", container_name(2))),
            (Some(1), 2),
            "by Docker's /name"
        );
        // Known only from the final state: a container of its own, its meeting from its
        // name.
        let h = two_containers(LONG_B)
            .at(5000)
            .final_container("9999", &container_name(3), None, "exited")
            .end();
        let tl = Timeline::new(&h);
        assert_eq!(tl.containers.len(), 3);
        assert!(tl.containers[2].final_entry.is_some());
        assert_eq!(tl.containers[2].meeting_id, Some(3));
        assert!(tl.containers[..2].iter().all(|c| c.final_entry.is_none()));
    }

    #[test]
    fn a_bot_log_belongs_to_the_container_it_names_by_name_id_or_twelve_character_id() {
        let refs = [
            container_name(2),
            format!("/{}", container_name(2)),
            "b2".to_owned(),
            LONG_A[..12].to_owned(),
            LONG_A[..11].to_owned(),
            String::new(),
        ];
        let mut h = two_containers("b2")
            .at(5000)
            .final_auto()
            // A container known only by its name (no id) in the final state.
            .final_container("", &container_name(3), None, "exited");
        for reference in &refs {
            h = h.bot_as(reference, None, "u", "started", json!({}));
        }
        let h = h.end();
        let tl = Timeline::new(&h);
        let linked: Vec<(&str, Option<usize>)> = tl
            .bots
            .iter()
            .map(|b| (b.container.as_str(), b.life))
            .collect();
        assert_eq!(
            linked,
            [
                (refs[0].as_str(), Some(1)),
                (refs[1].as_str(), Some(1)),
                (refs[2].as_str(), Some(1)),
                (refs[3].as_str(), Some(0)),
                // Shorter than Docker's short id: too ambiguous to name a container.
                (refs[4].as_str(), None),
                // A line naming no container is no container's.
                (refs[5].as_str(), None),
            ]
        );
        assert_eq!(tl.bots[0].meeting_id, Some(2));
    }

    #[test]
    fn a_restart_event_inside_a_life_does_not_begin_a_new_one() {
        // Docker reports a restart as die, start, restart: the life began at the start.
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(10)
            .start(1)
            .at(1000)
            .die(1)
            .at(1100)
            .container(1, "start")
            .at(1200)
            .container(1, "restart")
            .at(5000)
            .end();
        let tl = Timeline::new(&h);
        let froms: Vec<i64> = tl.containers[0].lives.iter().map(|l| l.from_us).collect();
        assert_eq!(froms, [10_000, 1_100_000]);
        assert_eq!(tl.containers[0].alive_at(1_150_000), Alive::Yes);
    }

    #[test]
    fn a_container_is_dead_from_the_instant_of_its_death() {
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(10)
            .start(1)
            .at(2000)
            .die(1)
            .at(5000)
            .end();
        let tl = Timeline::new(&h);
        let c = &tl.containers[0];
        assert_eq!(c.alive_at(9_999), Alive::No);
        assert_eq!(c.alive_at(10_000), Alive::Yes);
        assert_eq!(c.alive_at(1_999_999), Alive::Yes);
        assert_eq!(c.alive_at(2_000_000), Alive::No);
    }

    #[test]
    fn a_container_that_exited_unseen_lives_until_its_bots_last_line_then_maybe() {
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(10)
            .start(1)
            .at(20)
            .bot(1, "u1", "started", json!({}))
            .at(3000)
            .bot(1, "u1", "heartbeat", json!({}))
            .at(5000)
            .final_auto()
            .final_edit(|f| f.containers[0].state = "exited".into())
            .end();
        let tl = Timeline::new(&h);
        let c = &tl.containers[0];
        assert!(
            matches!(
                c.gone(),
                Gone::Sometime {
                    after_us: 3_000_000
                }
            ),
            "{:?}",
            c.gone()
        );
        assert_eq!(c.alive_at(3_000_000), Alive::Yes);
        assert_eq!(c.alive_at(3_000_001), Alive::Maybe);
    }
}
