//! The bot's life, as protocol.md section 7 tells it, with the scripted faults.
//!
//! `joining` -> `awaiting_admission` (repeated) -> `active` + transcription sessions, until
//! a `leave` command, a graceful SIGTERM, `MOCK_BOT_ACTIVE_FOR_MS` or, still in the waiting
//! room, `automaticLeave.waitingRoomTimeout` after the first `awaiting_admission` report;
//! then the leave step
//! (a UI step that may hang), the terminal callback, and the exit. A scripted crash and the
//! expiry of a graceful SIGTERM's grace cut any of that short.

use std::convert::Infallible;
use std::future::{Future, pending};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::signal::unix::Signal;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until};

use protocol::{BotCommand, BotConfig, CallbackStatus, ExitedPayload, StatusChangePayload};

use crate::behaviour::{Behaviour, CallbackMode, CallbackPath, LeaveMode, Phase, SigtermMode};
use crate::callbacks::Callbacks;
use crate::commands::{Received, Subscription};
use crate::events::{EventLog, rfc3339};

/// The exit code of a bot that stopped on SIGTERM (128 + 15), as Docker reports it.
pub const SIGTERM_EXIT_CODE: u8 = 143;

/// What made the bot leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveTrigger {
    Command,
    Sigterm,
    ActiveFor,
    WaitingRoomTimeout,
}

impl LeaveTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveTrigger::Command => "command",
            LeaveTrigger::Sigterm => "sigterm",
            LeaveTrigger::ActiveFor => "active_for",
            LeaveTrigger::WaitingRoomTimeout => "waiting_room_timeout",
        }
    }

    /// The callback's free-text `reason`.
    fn reason(self) -> &'static str {
        match self {
            LeaveTrigger::Command => "self_initiated_leave",
            LeaveTrigger::Sigterm => "sigterm",
            LeaveTrigger::ActiveFor => "left_alone",
            LeaveTrigger::WaitingRoomTimeout => "awaiting_admission_timeout",
        }
    }

    fn default_completion_reason(self) -> &'static str {
        match self {
            LeaveTrigger::Command | LeaveTrigger::Sigterm => "stopped",
            LeaveTrigger::ActiveFor => "left_alone",
            LeaveTrigger::WaitingRoomTimeout => "awaiting_admission_timeout",
        }
    }
}

pub struct Bot {
    config: BotConfig,
    behaviour: Behaviour,
    events: EventLog,
    callbacks: Callbacks,
    /// The current connection uid: the subscription and the event log follow it.
    uid: watch::Sender<String>,
    /// When the scripted crash fires, once its phase has been entered.
    crash_at: watch::Sender<Option<Instant>>,
    /// Set by the first SIGTERM under `graceful`: the bot exits 143 by then.
    grace_deadline: watch::Sender<Option<Instant>>,
    /// When the bot started: its first report comes `start_delay` after this at the
    /// earliest.
    started_at: Instant,
}

impl Bot {
    pub fn new(
        config: BotConfig,
        behaviour: Behaviour,
        events: EventLog,
        callbacks: Callbacks,
        uid: watch::Sender<String>,
    ) -> Self {
        Bot {
            config,
            behaviour,
            events,
            callbacks,
            uid,
            crash_at: watch::Sender::new(None),
            grace_deadline: watch::Sender::new(None),
            started_at: Instant::now(),
        }
    }

    /// Lives until an exit and returns its code.
    pub async fn run(&self, subscription: Subscription, sigterm: Signal) -> u8 {
        tokio::select! {
            code = self.live(subscription) => code,
            code = self.crash_when_due() => code,
            code = self.exit_when_grace_expires() => code,
            never = self.watch_sigterm(sigterm) => match never {},
        }
    }

    async fn live(&self, subscription: Subscription) -> u8 {
        let Subscription {
            mut messages,
            settled,
        } = subscription;
        // The bot subscribes first; it goes on whatever came of it.
        let _ = settled.await;
        let trigger = tokio::select! {
            trigger = self.join_and_stay() => trigger,
            trigger = self.leave_command(&mut messages) => trigger,
            () = self.sigterm_requested() => LeaveTrigger::Sigterm,
        };
        self.leave(trigger).await
    }

    fn current_uid(&self) -> String {
        self.uid.borrow().clone()
    }

    /// Reports a phase, then arms the crash scripted for it. A crash due at once wins over
    /// anything the phase would do next.
    async fn enter(&self, phase: Phase) {
        let Some(crash) = self.behaviour.crash.filter(|c| c.phase == phase) else {
            return;
        };
        let armed = self
            .crash_at
            .send_if_modified(|at| set_once(at, self.behaviour.crash_after));
        if armed && self.behaviour.crash_after.is_zero() {
            tracing::debug!(phase = %crash.phase, "crash due now");
            pending::<()>().await;
        }
    }

    async fn join_and_stay(&self) -> LeaveTrigger {
        // The first report comes no earlier than the start delay (a leave or a SIGTERM
        // meanwhile is handled as in any phase).
        sleep_until(later(self.started_at, self.behaviour.start_delay)).await;
        self.report(CallbackStatus::Joining).await;
        self.enter(Phase::Joining).await;
        sleep(self.behaviour.join_delay).await;
        if let Err(trigger) = self.wait_for_admission().await {
            return trigger;
        }
        self.report(CallbackStatus::Active).await;
        self.enter(Phase::Active).await;
        let meanwhile = async {
            tokio::join!(self.transcribe(), self.restart_under_new_uid());
        };
        tokio::select! {
            trigger = self.stay_active() => trigger,
            never = then_idle(meanwhile) => match never {},
        }
    }

    /// The waiting room: each `awaiting_admission` report is followed by the admission
    /// delay. Still waiting `waitingRoomTimeout` after the first report, the bot gives up,
    /// as the production bot does.
    async fn wait_for_admission(&self) -> Result<(), LeaveTrigger> {
        let timeout = Duration::from_millis(self.config.automatic_leave.waiting_room_timeout);
        // `None`: so far off that it never comes.
        let mut give_up_at = None;
        for repeat in 0..self.behaviour.awaiting_admission_repeats {
            self.report(CallbackStatus::AwaitingAdmission).await;
            if repeat == 0 {
                give_up_at = Instant::now().checked_add(timeout);
                self.enter(Phase::AwaitingAdmission).await;
            }
            let admitted_at = Instant::now().checked_add(self.behaviour.admission_delay);
            match (give_up_at, admitted_at) {
                (Some(give_up_at), Some(admitted_at)) if admitted_at < give_up_at => {
                    sleep_until(admitted_at).await;
                }
                // Not admitted by then: the bot stops waiting.
                (Some(give_up_at), _) => {
                    sleep_until(give_up_at).await;
                    tracing::info!(?timeout, "not admitted within the waiting-room timeout");
                    return Err(LeaveTrigger::WaitingRoomTimeout);
                }
                (None, _) => sleep(self.behaviour.admission_delay).await,
            }
        }
        Ok(())
    }

    async fn stay_active(&self) -> LeaveTrigger {
        match self.behaviour.active_for {
            Some(active_for) => {
                sleep(active_for).await;
                LeaveTrigger::ActiveFor
            }
            None => pending().await,
        }
    }

    /// The first transcription session uses the connectionId; each reconnect a fresh uid
    /// and the skewed client clock.
    async fn transcribe(&self) {
        self.open_session(self.config.connection_id.clone(), None)
            .await;
        for _ in 0..self.behaviour.reconnects {
            sleep(self.behaviour.reconnect_interval).await;
            let uid = uuid::Uuid::new_v4().to_string();
            self.open_session(uid, Some(self.behaviour.reconnect_skew_ms))
                .await;
        }
    }

    async fn restart_under_new_uid(&self) {
        let Some(after) = self.behaviour.restart_new_uid_after else {
            return;
        };
        sleep(after).await;
        let new_uid = uuid::Uuid::new_v4().to_string();
        let old_uid = self.uid.send_replace(new_uid.clone());
        self.events.emit(
            "uid_changed",
            json!({"old_uid": old_uid, "new_uid": new_uid}),
        );
        self.open_session(new_uid, None).await;
    }

    async fn open_session(&self, session_uid: String, reconnect_skew_ms: Option<i64>) {
        let payload = protocol::SessionStartPayload {
            meeting_id: self.config.meeting_id,
            session_uid,
            session_start_time: rfc3339(skewed(Utc::now(), reconnect_skew_ms.unwrap_or(0))),
        };
        let delivery = self
            .callbacks
            .post(&self.callbacks.session_start_url, &to_json(&payload), None)
            .await;
        let mut fields = json!({
            "session_uid": payload.session_uid,
            "session_start_time": payload.session_start_time,
            "reconnect": reconnect_skew_ms.is_some(),
        });
        merge(&mut fields, delivery.fields());
        self.events.emit("session_started", fields);
    }

    /// Reads commands until an accepted `leave`. Without a subscription this never returns.
    async fn leave_command(&self, messages: &mut mpsc::Receiver<Received>) -> LeaveTrigger {
        while let Some(received) = messages.recv().await {
            if self.accepts(&received) {
                return LeaveTrigger::Command;
            }
        }
        pending().await
    }

    fn accepts(&self, received: &Received) -> bool {
        let raw: Value = serde_json::from_str(&received.payload)
            .unwrap_or_else(|_| Value::String(received.payload.clone()));
        let ignored = match serde_json::from_str::<BotCommand>(&received.payload) {
            Err(error) => Some(format!("not a known command: {error}")),
            Ok(command)
                if command
                    .meeting_id()
                    .is_some_and(|id| id != self.config.meeting_id) =>
            {
                Some(format!(
                    "for meeting {}, not {}",
                    command.meeting_id().unwrap_or_default(),
                    self.config.meeting_id
                ))
            }
            Ok(BotCommand::Reconfigure { .. }) => Some("reconfigure is only logged".to_owned()),
            Ok(BotCommand::Leave { .. }) => None,
        };
        let mut fields = json!({
            "channel": received.channel,
            "payload": raw,
            "action": raw.get("action"),
            "accepted": ignored.is_none(),
        });
        if let Some(why) = &ignored {
            fields["ignored_because"] = why.as_str().into();
        }
        self.events.emit("command_received", fields);
        ignored.is_none()
    }

    async fn leave(&self, trigger: LeaveTrigger) -> u8 {
        self.events
            .emit("leave_started", json!({"trigger": trigger.as_str()}));
        self.enter(Phase::Leaving).await;
        match self.behaviour.leave {
            LeaveMode::Normal => sleep(self.behaviour.leave_delay).await,
            LeaveMode::Hang => {
                self.events.emit("leave_hung", json!({}));
                pending::<()>().await;
            }
        }
        if self.behaviour.late_joining_after_leave {
            self.report(CallbackStatus::Joining).await;
        }
        for copy in 0..=self.behaviour.duplicate_terminal {
            self.send_terminal(trigger, copy).await;
        }
        sleep(self.behaviour.exit_delay).await;
        if self.grace_deadline.borrow().is_some() {
            SIGTERM_EXIT_CODE
        } else {
            0
        }
    }

    /// One non-terminal `status_change`: a single attempt, no timeout, answer ignored.
    async fn report(&self, status: CallbackStatus) {
        let mut payload = StatusChangePayload::new(self.current_uid(), status);
        payload.container_id = Some(self.config.container_name.clone());
        payload.timestamp = Some(rfc3339(Utc::now()));
        let delivery = self
            .callbacks
            .post(&self.callbacks.status_change_url, &to_json(&payload), None)
            .await;
        let mut fields = json!({ "status": status });
        merge(&mut fields, delivery.fields());
        self.events.emit("status_sent", fields);
    }

    /// The terminal callback (`copy` > 0 for scripted duplicates), delivered per the
    /// callback policy.
    async fn send_terminal(&self, trigger: LeaveTrigger, copy: u32) {
        let policy = &self.behaviour.callback;
        let completion_reason = self
            .behaviour
            .completion_reason
            .as_deref()
            .unwrap_or(trigger.default_completion_reason());
        let (url, mut body) = match policy.path {
            CallbackPath::StatusChange => {
                let mut payload =
                    StatusChangePayload::new(self.current_uid(), CallbackStatus::Completed);
                payload.container_id = Some(self.config.container_name.clone());
                payload.reason = Some(trigger.reason().to_owned());
                payload.exit_code = Some(0);
                payload.timestamp = Some(rfc3339(Utc::now()));
                (&self.callbacks.status_change_url, to_json(&payload))
            }
            CallbackPath::Exited => {
                let payload = ExitedPayload {
                    connection_id: self.current_uid(),
                    exit_code: 0,
                    reason: Some(trigger.reason().to_owned()),
                    error_details: None,
                    completion_reason: None,
                    failure_stage: None,
                };
                (&self.callbacks.exited_url, to_json(&payload))
            }
        };
        // By hand: the protocol enum cannot carry values the server rejects, and sending
        // those is the point of the behaviour.
        body["completion_reason"] = completion_reason.into();
        let about = json!({
            "path": policy.path.as_str(),
            "status": "completed",
            "completion_reason": completion_reason,
            "copy": copy,
        });
        if policy.mode == CallbackMode::Drop {
            self.events.emit("callback_dropped", about);
            return;
        }
        let attempts = policy.attempts();
        for attempt in 1..=attempts {
            let mut fields = about.clone();
            fields["attempt"] = attempt.into();
            fields["url"] = url.as_str().into();
            self.events.emit("callback_attempt", fields.clone());
            let delivery = self
                .callbacks
                .post(url, &body, policy.attempt_timeout())
                .await;
            fields["ok"] = delivery.is_success().into();
            merge(&mut fields, delivery.fields());
            self.events.emit("callback_result", fields);
            if delivery.is_success() || attempt == attempts {
                return;
            }
            sleep(policy.backoff_after(attempt)).await;
        }
    }

    async fn crash_when_due(&self) -> u8 {
        let Some(crash) = self.behaviour.crash else {
            return pending().await;
        };
        let Some(at) = wait_until_set(&self.crash_at).await else {
            return pending().await;
        };
        sleep_until(at).await;
        self.events.emit(
            "crashing",
            json!({"phase": crash.phase.as_str(), "exit_code": crash.exit_code}),
        );
        crash.exit_code
    }

    async fn sigterm_requested(&self) {
        if wait_until_set(&self.grace_deadline).await.is_none() {
            pending::<()>().await;
        }
    }

    async fn exit_when_grace_expires(&self) -> u8 {
        let Some(deadline) = wait_until_set(&self.grace_deadline).await else {
            return pending().await;
        };
        sleep_until(deadline).await;
        self.events.emit(
            "grace_expired",
            json!({"grace_ms": millis(self.behaviour.sigterm_grace)}),
        );
        SIGTERM_EXIT_CODE
    }

    async fn watch_sigterm(&self, mut sigterm: Signal) -> Infallible {
        let mut received = 0u64;
        while sigterm.recv().await.is_some() {
            received += 1;
            self.events
                .emit("sigterm_received", json!({"count": received}));
            match self.behaviour.sigterm {
                SigtermMode::Ignore => self.events.emit("sigterm_ignored", json!({})),
                SigtermMode::Graceful => {
                    let grace = self.behaviour.sigterm_grace;
                    // Only the first SIGTERM starts the grace.
                    self.grace_deadline
                        .send_if_modified(|deadline| set_once(deadline, grace));
                }
            }
        }
        pending().await
    }
}

/// Runs `work`, then stays pending: for side work that must not end the phase it runs in.
async fn then_idle(work: impl Future<Output = ()>) -> Infallible {
    work.await;
    pending().await
}

/// Sets `cell` to `after` from now unless already set; whether it did.
fn set_once(cell: &mut Option<Instant>, after: Duration) -> bool {
    if cell.is_some() {
        return false;
    }
    *cell = Some(later(Instant::now(), after));
    true
}

/// How far off a time that would overflow lands: far enough never to come.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `at + after`, or a time that never comes if that overflows. The parser bounds every
/// delay (`Behaviour::MAX_MS`), so this is a guard, not a path a run takes.
fn later(at: Instant, after: Duration) -> Instant {
    at.checked_add(after)
        .or_else(|| at.checked_add(FAR_FUTURE))
        .unwrap_or(at)
}

/// `now` moved by `skew_ms`, the client clock of a reconnect session. The parser bounds
/// the skew (`Behaviour::MAX_SKEW_MS`) so that this never overflows; were it to, the
/// unskewed time is sent rather than the bot panicking.
fn skewed(now: DateTime<Utc>, skew_ms: i64) -> DateTime<Utc> {
    TimeDelta::try_milliseconds(skew_ms)
        .and_then(|skew| now.checked_add_signed(skew))
        .unwrap_or(now)
}

/// The value once it is set; `None` if the sender is gone (it lives as long as the bot).
async fn wait_until_set(cell: &watch::Sender<Option<Instant>>) -> Option<Instant> {
    let mut rx = cell.subscribe();
    let value = rx.wait_for(Option::is_some).await.ok()?;
    *value
}

fn to_json(value: &impl Serialize) -> Value {
    serde_json::to_value(value).expect("protocol payloads serialise to JSON")
}

fn merge(into: &mut Value, fields: Value) {
    if let (Value::Object(into), Value::Object(fields)) = (into, fields) {
        into.extend(fields);
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
