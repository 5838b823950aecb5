//! Scenario actions against the running stack, and the faults' healing.

use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Caller, Client};
use super::world::Labels;
use super::{RunError, rule_body};
use crate::history::{EventKind, FaultPhase, Recorder};
use crate::scenario::{Action, Meeting, Scenario, Sender};
use crate::stack::Stack;

/// Everything a step needs.
pub struct Ctx {
    pub stack: Stack,
    pub client: Client,
    pub recorder: Recorder,
    pub labels: Labels,
    pub scenario: Arc<Scenario>,
    /// Faults applied and not healed yet: (name, target, how to heal).
    pub heals: tokio::sync::Mutex<Vec<(String, String, Heal)>>,
    /// Heals scheduled by `heal_after_ms`, still waiting.
    pub timed_heals: tokio::sync::Mutex<tokio::task::JoinSet<()>>,
    /// Held by a service restart from its SIGTERM to the new process answering: a second
    /// restart that fires meanwhile waits its turn, as an operator's second restart would,
    /// instead of finding no process to stop.
    pub restarts: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone)]
pub enum Heal {
    ResumeBot(String),
    ClearRuntimeFaults,
    StartService,
    ResumeRedis,
    RemoveToxic { link: String, toxic: String },
    LinkUp(String),
}

fn token(user: &str) -> &'static str {
    match user {
        "limited" => "stopflow-limited-token",
        _ => "stopflow-dev-token",
    }
}

impl Ctx {
    fn meeting(&self, label: &str) -> &Meeting {
        self.scenario
            .meeting(label)
            .expect("validated meeting label")
    }

    fn native(&self, label: &str) -> String {
        self.labels.native_id(label).unwrap_or_default().to_owned()
    }

    /// The meeting's bot behaviours and the links its bots dial, as a runtime rule.
    pub async fn set_bot_behaviour(&self, meeting: &Meeting) -> Result<(), RunError> {
        let mut env = meeting.bot_env.clone();
        env.extend(self.stack.bot_links(&meeting.label).await?);
        if env.is_empty() {
            return Ok(());
        }
        let body = rule_body(&self.native(&meeting.label), &env);
        self.stack
            .runtime_call(Method::POST, "/_runtime/rules", Some(&body))
            .await?;
        Ok(())
    }

    /// `POST /bots` for a scenario meeting; answers the status, if any answer came.
    pub async fn create(&self, label: &str) -> Option<u16> {
        let m = self.meeting(label);
        let body = json!({"platform": m.platform, "native_meeting_id": self.native(label)});
        let answer = self
            .client
            .call(
                Method::POST,
                "/bots",
                Some(token(&m.user)),
                Some(&body),
                Some(label),
            )
            .await;
        answer.map(|(s, _)| s)
    }

    /// Performs a step's action; answers its outcome for the history.
    pub async fn perform(self: &Arc<Self>, action: &Action, heal_after_ms: Option<u64>) -> String {
        // The service is down from the moment its SIGTERM is sent, not once it has exited.
        let began_us = self.recorder.now_us();
        let result = self.act(action).await;
        if let (Ok(Some(heal)), true) = (&result, action.is_fault()) {
            let target = match action {
                Action::Network { link, .. } | Action::LinkDown { link } => link.clone(),
                Action::StopService => "service".to_owned(),
                _ => action.meeting().unwrap_or("system").to_owned(),
            };
            let detail = json!({"heal_after_ms": heal_after_ms});
            if matches!(action, Action::StopService) {
                self.recorder.record_at(
                    began_us,
                    EventKind::Fault {
                        name: action.name().to_owned(),
                        phase: FaultPhase::Applied,
                        target: target.clone(),
                        detail,
                    },
                );
            } else {
                self.fault(action.name(), &target, FaultPhase::Applied, detail);
            }
            match heal_after_ms {
                Some(ms) => {
                    let ctx = self.clone();
                    let (name, heal) = (action.name(), heal.clone());
                    self.timed_heals.lock().await.spawn(async move {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        ctx.heal(name, &target, heal).await;
                    });
                }
                None => {
                    self.heals
                        .lock()
                        .await
                        .push((action.name().to_owned(), target, heal.clone()))
                }
            }
        }
        match result {
            Ok(_) => "ok".into(),
            Err(err) => format!("failed: {err}"),
        }
    }

    fn fault(&self, name: &str, target: &str, phase: FaultPhase, detail: Value) {
        self.recorder.record(EventKind::Fault {
            name: name.to_owned(),
            phase,
            target: target.to_owned(),
            detail,
        });
    }

    /// Heals every fault still in force: the end of the fault phase. Timed heals run
    /// out their time first.
    pub async fn heal_all(&self) {
        let mut timed = std::mem::take(&mut *self.timed_heals.lock().await);
        while timed.join_next().await.is_some() {}
        let pending: Vec<_> = self.heals.lock().await.drain(..).collect();
        for (name, target, heal) in pending {
            self.heal(&name, &target, heal).await;
        }
    }

    async fn heal(&self, name: &str, target: &str, heal: Heal) {
        let result = match &heal {
            Heal::ResumeBot(container) => {
                match self.stack.runtime_call(Method::POST, &format!("/_runtime/containers/{container}/resume"), Some(&json!({}))).await {
                    Ok((status, _)) if (200..300).contains(&status) => Ok(()),
                    // A paused container that was since stopped and removed is no longer
                    // frozen: the fault ended with it.
                    Ok((404, _)) => {
                        self.fault(name, target, FaultPhase::Healed, json!({"outcome": "moot: the container is gone"}));
                        return;
                    }
                    Ok((status, body)) => Err(format!("resume {container} answered {status}: {body}")),
                    Err(err) => Err(err.to_string()),
                }
            }
            Heal::ClearRuntimeFaults => self
                .stack
                .runtime_call(
                    Method::PUT,
                    "/_runtime/faults",
                    Some(&json!({"stop_delay_ms": 0, "stop_answers_404": false, "start_fails": false, "start_delay_ms": 0})),
                )
                .await
                .map_err(|e| e.to_string())
                .and_then(|(status, body)| {
                    (200..300)
                        .contains(&status)
                        .then_some(())
                        .ok_or_else(|| format!("/_runtime/faults answered {status}: {body}"))
                }),
            Heal::StartService => self.stack.start_manager().await.map_err(|e| e.to_string()),
            Heal::ResumeRedis => self.stack.signal_redis(Signal::SIGCONT).map_err(|e| e.to_string()),
            Heal::RemoveToxic { link, toxic } => match &self.stack.links {
                Some(links) => links.remove_toxic(link, toxic).await.map_err(|e| e.to_string()),
                None => Err("this run has no links".into()),
            },
            Heal::LinkUp(link) => match &self.stack.links {
                Some(links) => links.set_up(link, true).await.map_err(|e| e.to_string()),
                None => Err("this run has no links".into()),
            },
        };
        let detail = match result {
            Ok(()) => json!({"outcome": "ok"}),
            Err(err) => json!({"outcome": format!("failed: {err}")}),
        };
        self.fault(name, target, FaultPhase::Healed, detail);
    }

    async fn control(&self, path: &str, body: Value) -> Result<(), String> {
        match self
            .stack
            .runtime_call(Method::POST, path, Some(&body))
            .await
        {
            Ok((status, _)) if (200..300).contains(&status) => Ok(()),
            Ok((status, body)) => Err(format!("{path} answered {status}: {body}")),
            Err(err) => Err(err.to_string()),
        }
    }

    fn container(&self, label: &str) -> Result<String, String> {
        let (events, _) = self.recorder.since(0);
        self.labels
            .container(label, &events)
            .ok_or_else(|| format!("meeting {label:?} has no container yet"))
    }

    /// Answers how to heal the fault it applied, if it is one.
    async fn act(&self, action: &Action) -> Result<Option<Heal>, String> {
        match action {
            Action::Create { meeting } => expect_answer(self.create(meeting).await),
            Action::Stop { meeting } => {
                let m = self.meeting(meeting);
                let path = format!("/bots/{}/{}", m.platform, self.native(meeting));
                let answer = self
                    .client
                    .call(
                        Method::DELETE,
                        &path,
                        Some(token(&m.user)),
                        None,
                        Some(meeting),
                    )
                    .await;
                expect_answer(answer.map(|(s, _)| s))
            }
            Action::Reconfigure { meeting } => {
                let m = self.meeting(meeting);
                let path = format!("/bots/{}/{}/config", m.platform, self.native(meeting));
                let body = json!({"language": "de"});
                let answer = self
                    .client
                    .call(
                        Method::PUT,
                        &path,
                        Some(token(&m.user)),
                        Some(&body),
                        Some(meeting),
                    )
                    .await;
                expect_answer(answer.map(|(s, _)| s))
            }
            Action::RestartBot { meeting, new_uid } => {
                let c = self.container(meeting)?;
                self.control(
                    &format!("/_runtime/containers/{c}/restart"),
                    json!({"new_uid": new_uid}),
                )
                .await
                .map(|()| None)
            }
            Action::KillBot { meeting, signal } => {
                let c = self.container(meeting)?;
                self.control(
                    &format!("/_runtime/containers/{c}/signal"),
                    json!({"signal": signal}),
                )
                .await
                .map(|()| None)
            }
            Action::PauseBot { meeting } => {
                let c = self.container(meeting)?;
                self.control(&format!("/_runtime/containers/{c}/pause"), json!({}))
                    .await?;
                Ok(Some(Heal::ResumeBot(c)))
            }
            Action::ResumeBot { meeting } => {
                let c = self.container(meeting)?;
                self.control(&format!("/_runtime/containers/{c}/resume"), json!({}))
                    .await
                    .map(|()| None)
            }
            Action::RuntimeFaults {
                stop_delay_ms,
                stop_answers_404,
                start_fails,
                start_delay_ms,
            } => {
                let mut body = serde_json::Map::new();
                if let Some(v) = stop_delay_ms {
                    body.insert("stop_delay_ms".into(), json!(v));
                }
                if let Some(v) = stop_answers_404 {
                    body.insert("stop_answers_404".into(), json!(v));
                }
                if let Some(v) = start_fails {
                    body.insert("start_fails".into(), json!(v));
                }
                if let Some(v) = start_delay_ms {
                    body.insert("start_delay_ms".into(), json!(v));
                }
                match self
                    .stack
                    .runtime_call(Method::PUT, "/_runtime/faults", Some(&Value::Object(body)))
                    .await
                {
                    Ok((200, _)) => Ok(Some(Heal::ClearRuntimeFaults)),
                    Ok((status, body)) => {
                        Err(format!("/_runtime/faults answered {status}: {body}"))
                    }
                    Err(err) => Err(err.to_string()),
                }
            }
            Action::ForgetContainers => self
                .control("/_runtime/forget", json!({}))
                .await
                .map(|()| None),
            Action::RestartService { down_ms } => {
                let _turn = self.restarts.lock().await;
                // The down period is a fault period with both ends: from the SIGTERM to
                // the new process answering, so a callback lost meanwhile has its cause.
                self.fault(
                    "restart_service",
                    "service",
                    FaultPhase::Applied,
                    json!({"down_ms": down_ms}),
                );
                let restarted = async {
                    self.stack.stop_manager().await.map_err(|e| e.to_string())?;
                    tokio::time::sleep(Duration::from_millis(*down_ms)).await;
                    self.stack.start_manager().await.map_err(|e| e.to_string())
                }
                .await;
                let outcome = match &restarted {
                    Ok(()) => "ok".to_owned(),
                    Err(err) => format!("failed: {err}"),
                };
                self.fault(
                    "restart_service",
                    "service",
                    FaultPhase::Healed,
                    json!({"outcome": outcome}),
                );
                restarted.map(|()| None)
            }
            Action::StopService => {
                self.stack.stop_manager().await.map_err(|e| e.to_string())?;
                Ok(Some(Heal::StartService))
            }
            Action::StartService => self
                .stack
                .start_manager()
                .await
                .map(|()| None)
                .map_err(|e| e.to_string()),
            Action::PauseRedis => {
                self.stack
                    .signal_redis(Signal::SIGSTOP)
                    .map_err(|e| e.to_string())?;
                Ok(Some(Heal::ResumeRedis))
            }
            Action::Network {
                link,
                toxic,
                kind,
                stream,
                toxicity,
            } => {
                let links = self.stack.links.as_ref().ok_or("this run has no links")?;
                let name = links
                    .add_toxic(link, toxic, *kind, *stream, *toxicity)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Some(Heal::RemoveToxic {
                    link: link.clone(),
                    toxic: name,
                }))
            }
            Action::LinkDown { link } => {
                let links = self.stack.links.as_ref().ok_or("this run has no links")?;
                links.set_up(link, false).await.map_err(|e| e.to_string())?;
                Ok(Some(Heal::LinkUp(link.clone())))
            }
            Action::Callback {
                meeting,
                status,
                completion_reason,
                exit_code,
                path,
                from,
                container,
            } => {
                let (events, _) = self.recorder.since(0);
                let uid = self
                    .labels
                    .bot_uid(meeting, &events)
                    .ok_or_else(|| format!("meeting {meeting:?} has no bot uid yet"))?;
                let container = match container {
                    // Another meeting's container: the claim the step exists to make.
                    Some(named) => self
                        .labels
                        .container(named, &events)
                        .ok_or_else(|| format!("meeting {named:?} has no container yet"))?,
                    None => self.labels.container(meeting, &events).unwrap_or_default(),
                };
                let body = if path == "exited" {
                    let mut b = json!({"connection_id": uid, "exit_code": exit_code.unwrap_or(0), "reason": "harness"});
                    if let Some(r) = completion_reason {
                        b["completion_reason"] = json!(r);
                    }
                    b
                } else {
                    let mut b =
                        json!({"connection_id": uid, "status": status, "container_id": container});
                    if let Some(r) = completion_reason {
                        b["completion_reason"] = json!(r);
                    }
                    if let Some(c) = exit_code {
                        b["exit_code"] = json!(c);
                    }
                    b
                };
                let caller = self.caller(from, meeting, &events).await?;
                let answer = self
                    .client
                    .call_as(
                        &caller,
                        Method::POST,
                        None,
                        &format!("/bots/internal/callback/{path}"),
                        Some(&body),
                        Some(meeting),
                    )
                    .await;
                expect_answer(answer.map(|(s, _)| s))
            }
            Action::ForgeSession {
                meeting,
                from,
                session_uid,
                earlier_ms,
            } => {
                let (events, _) = self.recorder.since(0);
                let id = self
                    .labels
                    .meeting_ids(meeting, &events)
                    .last()
                    .copied()
                    .ok_or_else(|| format!("meeting {meeting:?} has no row yet"))?;
                // Bounded at load (a year); a plan built in code fails the step, not the run.
                let start = i64::try_from(*earlier_ms)
                    .ok()
                    .and_then(chrono::Duration::try_milliseconds)
                    .and_then(|ago| chrono::Utc::now().checked_sub_signed(ago))
                    .ok_or_else(|| format!("earlier_ms {earlier_ms} is out of range"))?;
                let body = json!({
                    "meeting_id": id,
                    "session_uid": session_uid,
                    "session_start_time": start.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                });
                let caller = self.caller(from, meeting, &events).await?;
                let base = self.stack.session_base();
                let answer = self
                    .client
                    .call_as(
                        &caller,
                        Method::POST,
                        base.as_deref(),
                        "/bots/internal/session_start",
                        Some(&body),
                        Some(meeting),
                    )
                    .await;
                expect_answer(answer.map(|(s, _)| s))
            }
        }
    }

    /// Who a callback is from, with the credentials that sender holds: a bot's own
    /// (its `BOT_CONFIG`'s `callbackSecret`, read from its container as the runtime holds
    /// it; none when the service gives bots no secret), or none for an attacker.
    async fn caller(
        &self,
        from: &Sender,
        meeting: &str,
        events: &[crate::history::Event],
    ) -> Result<Caller, String> {
        let bot = match from {
            Sender::Attacker => None,
            Sender::OwnBot => Some(meeting),
            Sender::Bot(label) => Some(label.as_str()),
        };
        let secret = match bot {
            None => None,
            Some(label) => {
                let container = self
                    .labels
                    .container(label, events)
                    .ok_or_else(|| format!("meeting {label:?} has no container yet"))?;
                self.bot_secret(&container).await?
            }
        };
        Ok(Caller {
            by: from.by(),
            secret,
        })
    }

    /// The `callbackSecret` of the bot in `container`, if its service gave it one.
    async fn bot_secret(&self, container: &str) -> Result<Option<String>, String> {
        let (status, body) = self
            .stack
            .runtime_call(Method::GET, &format!("/containers/{container}/json"), None)
            .await
            .map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!(
                "read container {container}'s config: the runtime answered {status}"
            ));
        }
        bot_secret_in(&body)
    }

    /// Every meeting row terminal and no container running for any of them.
    pub async fn settled(&self) -> bool {
        let rows: Result<Vec<(i32, String)>, _> = sqlx::query_as("SELECT id, status FROM meetings")
            .fetch_all(&self.stack.pool)
            .await;
        let Ok(rows) = rows else { return false };
        if rows.iter().any(|(_, s)| s != "completed" && s != "failed") {
            return false;
        }
        let Ok(containers) = self.stack.runtime_containers().await else {
            return false;
        };
        !containers.iter().any(|c| {
            matches!(
                c["state"].as_str(),
                Some("running" | "paused" | "created" | "restarting")
            )
        })
    }
}

/// The `callbackSecret` in a container inspect's `BOT_CONFIG` variable (`None`: a config
/// without one, as a service without callback authentication gives). A container with
/// no readable `BOT_CONFIG` is an error: a bot's request sent without its credentials
/// would test nothing the step says.
fn bot_secret_in(inspect: &Value) -> Result<Option<String>, String> {
    let config = inspect["Config"]["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|var| var.strip_prefix("BOT_CONFIG="))
        .ok_or("its container has no BOT_CONFIG")?;
    let config: Value = serde_json::from_str(config)
        .map_err(|err| format!("its container's BOT_CONFIG is not JSON: {err}"))?;
    Ok(config["callbackSecret"].as_str().map(str::to_owned))
}

/// Any answer counts as the action done (a 409 or 500 is the system's behaviour, kept in
/// the history); no answer at all is a failed step.
fn expect_answer(status: Option<u16>) -> Result<Option<Heal>, String> {
    match status {
        Some(_) => Ok(None),
        None => Err("no answer".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bots_secret_is_read_from_the_bot_config_its_container_was_given() {
        let config = json!({"meeting_id": 1, "callbackSecret": "s3cret"}).to_string();
        let inspect = json!({"Config": {"Env": ["A=1", format!("BOT_CONFIG={config}")]}});
        assert_eq!(bot_secret_in(&inspect), Ok(Some("s3cret".to_owned())));
        let without =
            json!({"Config": {"Env": [format!("BOT_CONFIG={}", json!({"meeting_id": 1}))]}});
        assert_eq!(
            bot_secret_in(&without),
            Ok(None),
            "a service that gives no secret"
        );
    }

    #[test]
    fn a_container_without_a_readable_bot_config_is_an_error_not_a_bot_without_a_secret() {
        // Pins: a missing or broken BOT_CONFIG read as "no secret", and the step sent the
        // bot's request with no credentials: a 401 where the scenario meant to test a 403.
        let broken = bot_secret_in(&json!({"Config": {"Env": ["BOT_CONFIG=not json"]}}));
        assert!(broken.unwrap_err().contains("not JSON"));
        let missing = bot_secret_in(&json!({"Config": {"Env": ["A=1"]}}));
        assert!(missing.unwrap_err().contains("no BOT_CONFIG"));
        assert!(bot_secret_in(&json!({})).is_err());
    }
}
