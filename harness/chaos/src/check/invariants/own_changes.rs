//! INV-OWN-CHANGES: a meeting's status, container and sessions change only by its own
//! bot or its own user.
//!
//! A forged request is one the harness sent as someone other than the meeting's user or
//! its own bot (`by` = `attacker` or `bot:<other meeting>`). Two things must not follow
//! one:
//! - **what it claims, stored**: while it is in flight (from its send to its answer; to
//!   the end of the run when no answer came), a row of its meeting stores the status it
//!   reports (`exited` claims completed for exit 0, else failed), the container it names
//!   (when not the meeting's own), or a session row with the uid it reports;
//! - **a bot stopped by someone else's word**: the service stops (a runtime `kill`) the
//!   container of a meeting whose user never asked for a stop and whose row was not
//!   terminal, while no scenario step acted on that meeting's bot.
//!
//! The invariant is judged only when a forged request was sent; without one it is unknown
//! ("precondition never occurred"), never a pass.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Findings;
use crate::check::timeline::{Exchange, Timeline, is_terminal, ms};
use crate::check::{CheckConfig, CheckResult, Invariant};
use crate::history::{Event, EventKind, History};

/// Steps that end a meeting's bot by the harness's hand (a pause or a resume ends none).
const BOT_STEPS: &[&str] = &["kill_bot", "restart_bot"];

pub fn own_changes(history: &History, _config: &CheckConfig) -> CheckResult {
    let tl = Timeline::new(history);
    let mut findings = Findings::new(Invariant::OwnChanges);
    let forged: Vec<&Exchange<'_>> = tl.exchanges.iter().filter(|x| x.forged()).collect();
    for exchange in &forged {
        findings.occurred();
        // A forgery whose claim cannot be read proves nothing either way.
        let Some(claim) = exchange
            .body
            .as_ref()
            .map(|body| Claim::of(&exchange.path, body))
            .filter(|claim| *claim != Claim::default())
        else {
            findings.unknown(format!(
                "The request forged by {} ({} {} at {}) claims nothing that could be looked for.",
                exchange.by.as_deref().unwrap_or("?"),
                exchange.method,
                exchange.path,
                ms(exchange.from_us)
            ));
            continue;
        };
        match stored_claim(&tl, history, exchange, &claim) {
            Some((what, change)) => findings.violated(
                format!(
                    "Meeting {}'s row took {what} at {}, while a request forged by {} ({} {}, sent at {}, {}) was in flight.",
                    exchange.label,
                    ms(change.at_us),
                    exchange.by.as_deref().unwrap_or("?"),
                    exchange.method,
                    exchange.path,
                    ms(exchange.from_us),
                    answered(exchange),
                ),
                [exchange.invoke, change],
            ),
            // Refused or answered without its claim stored: held. With no answer (failed
            // or timed out) nothing says it reached the service: not a pass.
            None if exchange.status.is_some() => findings.held(),
            None => findings.unknown(format!(
                "The request forged by {} ({} {} at {}) got no answer and nothing it claims was stored: whether it reached the service is unknown.",
                exchange.by.as_deref().unwrap_or("?"),
                exchange.method,
                exchange.path,
                ms(exchange.from_us)
            )),
        }
    }
    if !forged.is_empty() {
        stopped_by_others(&tl, history, &mut findings);
    }
    findings.finish(
        "no request came from anyone but a meeting's own bot or user",
        |n| {
            format!(
                "None of the {n} forged request(s) changed its meeting's status, container or sessions, and no bot was stopped but by its own meeting's word."
            )
        },
    )
}

fn answered(exchange: &Exchange<'_>) -> String {
    match exchange.status {
        Some(status) => format!("answered {status}"),
        None => "never answered".into(),
    }
}

/// The first stored change of the exchange's meeting that is what it claims, inside its
/// window: a description and the event.
fn stored_claim<'h>(
    tl: &Timeline<'h>,
    history: &'h History,
    exchange: &Exchange<'h>,
    claim: &Claim,
) -> Option<(String, &'h Event)> {
    // A request never answered is in flight to the end of the run (the timeline's own).
    let until = exchange.until_us;
    let rows = tl.rows_for_label(&exchange.label, until);
    let own_container = own_container(tl, &rows, exchange.from_us);
    let mut container_of: BTreeMap<i64, Option<&str>> = BTreeMap::new();
    for e in &history.events {
        if e.at_us > until {
            break;
        }
        let (id, status, container) = match &e.kind {
            EventKind::StatusStored {
                meeting_id,
                to,
                bot_container_id,
                ..
            } => (*meeting_id, Some(to.as_str()), bot_container_id.as_deref()),
            EventKind::MeetingUpdated {
                meeting_id,
                bot_container_id,
                ..
            } => (*meeting_id, None, bot_container_id.as_deref()),
            EventKind::SessionStored {
                meeting_id,
                session_uid,
                ..
            } => {
                if e.at_us >= exchange.from_us
                    && rows.contains(meeting_id)
                    && claim.session_uid.as_deref() == Some(session_uid)
                {
                    return Some((format!("the forged session {session_uid:?}"), e));
                }
                continue;
            }
            _ => continue,
        };
        let before = container_of.insert(id, container).flatten();
        if e.at_us < exchange.from_us || !rows.contains(&id) {
            continue;
        }
        if let (Some(claimed), Some(stored)) = (claim.status.as_deref(), status)
            && claimed == stored
        {
            return Some((format!("the forged status {stored}"), e));
        }
        if let (Some(claimed), Some(stored)) = (claim.container.as_deref(), container)
            && claimed == stored
            && before != Some(stored)
            && own_container.as_deref() != Some(claimed)
        {
            return Some((format!("the forged container {stored}"), e));
        }
    }
    None
}

/// The container the meeting's own bot ran in when the request was sent.
fn own_container(tl: &Timeline<'_>, rows: &[i64], at: i64) -> Option<String> {
    tl.containers
        .iter()
        .filter(|c| c.meeting_id.is_some_and(|id| rows.contains(&id)))
        .filter(|c| c.events.first().is_some_and(|e| e.at_us <= at))
        .map(|c| c.name.clone())
        .next_back()
}

/// What a forged request asks the service to store.
#[derive(Debug, Default, PartialEq)]
struct Claim {
    status: Option<String>,
    container: Option<String>,
    session_uid: Option<String>,
}

impl Claim {
    fn of(path: &str, body: &Value) -> Claim {
        let text = |key: &str| {
            body[key]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        if path.ends_with("/session_start") {
            return Claim {
                session_uid: text("session_uid"),
                ..Claim::default()
            };
        }
        let status = if path.ends_with("/exited") {
            body["exit_code"]
                .as_i64()
                .map(|code| if code == 0 { "completed" } else { "failed" }.to_owned())
        } else {
            text("status")
        };
        Claim {
            status,
            container: text("container_id"),
            session_uid: None,
        }
    }
}

/// Every runtime `kill` of a meeting's container that neither its user (a stop) nor its
/// row's end (terminal) explains, on a meeting whose bot no step touched.
fn stopped_by_others(tl: &Timeline<'_>, history: &History, findings: &mut Findings) {
    // What the harness does once the run is over (its cleanup) is no one's request.
    let end = tl.final_event.map_or(i64::MAX, |e| e.at_us);
    // A step is recorded once done, after the kill it made: any time of the run counts.
    let touched: Vec<&str> = history
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Step {
                action, meeting, ..
            } if BOT_STEPS.contains(&action.as_str()) => meeting.as_deref(),
            _ => None,
        })
        .collect();
    let mut judged = std::collections::BTreeSet::new();
    for e in history.events.iter().filter(|e| e.at_us < end) {
        let EventKind::Container {
            action,
            name,
            meeting_id: Some(id),
            ..
        } = &e.kind
        else {
            continue;
        };
        if action != "kill" || !judged.insert(name.clone()) {
            continue;
        }
        let Some(label) = label_of(tl, *id) else {
            continue;
        };
        if touched.contains(&label.as_str()) {
            continue;
        }
        // A stop the service refused (a 4xx) asked for nothing; one with no answer may
        // have been acted on.
        let asked = tl.exchanges.iter().any(|x| {
            x.by.is_none()
                && x.method == "DELETE"
                && x.label == label
                && x.from_us <= e.at_us
                && x.status.is_none_or(|s| (200..300).contains(&s))
        });
        let status = tl
            .meeting(*id)
            .and_then(|line| line.status_at(e.at_us))
            .map(|s| s.status);
        if asked || status.is_some_and(is_terminal) {
            continue;
        }
        findings.violated(
            format!(
                "Meeting {label}'s container {name} was stopped at {} while its row was {} and its user had asked for no stop: someone else's request stopped it.",
                ms(e.at_us),
                status.unwrap_or("unknown"),
            ),
            [e],
        );
    }
}

/// The scenario label of meeting row `id`.
fn label_of(tl: &Timeline<'_>, id: i64) -> Option<String> {
    let line = tl.meeting(id)?;
    tl.labels
        .iter()
        .find(|l| {
            Some(l.native_meeting_id.as_str()) == line.native
                && Some(l.platform.as_str()) == line.platform
        })
        .map(|l| l.label.clone())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testkit::{H, config, container_name};
    use super::*;
    use crate::check::Outcome;
    use crate::history::HttpPhase;

    fn forged(h: H, by: &str, path: &str, body: Value, status: Option<u16>) -> H {
        let http = |phase, status| EventKind::Http {
            op: 77,
            phase,
            method: "POST".into(),
            path: path.into(),
            meeting: Some("m1".into()),
            status,
            body: (phase == HttpPhase::Invoke).then(|| body.clone()),
            error: None,
            by: Some(by.into()),
        };
        let h = h.push(http(HttpPhase::Invoke, None));
        match status {
            Some(s) => h.push(http(HttpPhase::Ok, Some(s))),
            None => h,
        }
    }

    /// A status_change about m1 from `by`, 500 ms in, answered `answer` (`None`: still in
    /// flight).
    fn status_change(by: &str, body: Value, answer: Option<u16>) -> H {
        forged(
            active_meeting().at(500),
            by,
            "/bots/internal/callback/status_change",
            body,
            answer,
        )
    }

    fn active_meeting() -> H {
        H::new()
            .label("m1", "abc-defg-hij")
            .label("m2", "xyz-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "requested")
            .insert(2, "xyz-defg-hij", "requested")
            .start(1)
            .start(2)
            .at(100)
            .status(1, "requested", "active")
            .status(2, "requested", "active")
    }

    fn completed(id: i64) -> EventKind {
        EventKind::StatusStored {
            meeting_id: id,
            from: "active".into(),
            to: "completed".into(),
            audit_len: 2,
            completion_reason: Some("stopped".into()),
            failure_stage: None,
            stop_requested: false,
            bot_container_id: Some(container_name(id)),
        }
    }

    #[test]
    fn a_forged_completed_stored_while_in_flight_violates_own_changes() {
        // Pins: legacy let anyone on the network finish another user's meeting with one
        // unauthenticated status_change.
        let body = json!({"connection_id": "u1", "status": "completed", "container_id": container_name(1)});
        let h = status_change("attacker", body, None)
            .at(510)
            .push(completed(1))
            .end();
        let r = own_changes(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(
            r.summary.contains("forged status completed"),
            "{}",
            r.summary
        );
        assert!(r.summary.contains("attacker"), "{}", r.summary);
        assert_eq!(r.witness.len(), 2);
    }

    #[test]
    fn a_forgery_that_got_no_answer_and_changed_nothing_is_unknown_not_held() {
        // A request that failed may never have reached the service: it tested nothing.
        let body = json!({"connection_id": "u1", "status": "completed"});
        let h = status_change("attacker", body, None)
            .at(3000)
            .final_auto()
            .end();
        let r = own_changes(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
        assert!(r.summary.contains("got no answer"), "{}", r.summary);
    }

    #[test]
    fn a_refused_forgery_that_changed_nothing_holds_own_changes() {
        let body = json!({"connection_id": "u1", "status": "completed", "container_id": container_name(1)});
        let h = status_change("attacker", body, Some(401))
            .at(3000)
            .final_auto()
            .end();
        let r = own_changes(&h, &config());
        assert_eq!(r.outcome, Outcome::Holds, "{r:?}");
        assert!(r.precondition_met);
    }

    #[test]
    fn the_same_status_stored_after_the_forgery_was_answered_is_not_its_doing() {
        // The user's stop later completes the meeting: not the refused forgery's change.
        let body = json!({"connection_id": "u1", "status": "completed"});
        let h = status_change("bot:m2", body, Some(403))
            .at(900)
            .delete_accepted("m1")
            .at(1500)
            .container(1, "kill")
            .push(completed(1))
            .end();
        let r = own_changes(&h, &config());
        assert_eq!(r.outcome, Outcome::Holds, "{r:?}");
    }

    #[test]
    fn another_meetings_container_taken_by_a_forged_active_violates_own_changes() {
        // Pins: a forged `active` pointed one user's meeting at another user's container.
        let body =
            json!({"connection_id": "u1", "status": "active", "container_id": container_name(2)});
        let h = status_change("bot:m2", body, None)
            .at(505)
            .push(EventKind::MeetingUpdated {
                meeting_id: 1,
                status: "active".into(),
                audit_len: 1,
                stop_requested: false,
                bot_container_id: Some(container_name(2)),
            })
            .end();
        let r = own_changes(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(r.summary.contains("forged container"), "{}", r.summary);
    }

    #[test]
    fn a_forged_session_row_of_the_meeting_violates_own_changes() {
        let body = json!({"meeting_id": 1, "session_uid": "forged-1", "session_start_time": "2026-01-01T00:00:00Z"});
        let h = forged(
            active_meeting().at(500),
            "attacker",
            "/bots/internal/session_start",
            body,
            None,
        )
        .at(502)
        .session(1, "forged-1")
        .end();
        let r = own_changes(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(r.summary.contains("forged session"), "{}", r.summary);
    }

    #[test]
    fn a_bot_stopped_though_its_user_never_asked_violates_own_changes() {
        // Pins: user 3's stop, after a forged `active` pointed its meeting at user 1's
        // container, killed user 1's bot.
        let body =
            json!({"connection_id": "u2", "status": "active", "container_id": container_name(1)});
        let h = status_change("attacker", body, Some(200))
            .at(800)
            .delete_accepted("m2")
            .at(1200)
            .container(1, "kill")
            .end();
        let r = own_changes(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(r.summary.contains(&container_name(1)), "{}", r.summary);
        assert!(r.summary.contains("m1"), "{}", r.summary);
    }

    #[test]
    fn the_harness_speaking_as_the_meetings_own_bot_is_no_forgery() {
        let body = json!({"connection_id": "u1", "status": "completed"});
        let h = status_change("bot", body, Some(200))
            .at(505)
            .push(completed(1))
            .end();
        let r = own_changes(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
        assert!(!r.precondition_met);
        assert!(
            r.summary.contains("Precondition never occurred"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn a_forgery_that_claims_nothing_leaves_own_changes_unknown_not_held() {
        let h = forged(
            active_meeting().at(500),
            "attacker",
            "/bots/internal/callback/status_change",
            json!({"connection_id": "u1"}),
            Some(422),
        )
        .end();
        let r = own_changes(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
        assert!(r.summary.contains("claims nothing"), "{}", r.summary);
    }

    #[test]
    fn a_claim_reads_exit_codes_statuses_containers_and_session_uids() {
        let exited = Claim::of("/bots/internal/callback/exited", &json!({"exit_code": 2}));
        assert_eq!(exited.status.as_deref(), Some("failed"));
        let ok = Claim::of("/bots/internal/callback/exited", &json!({"exit_code": 0}));
        assert_eq!(ok.status.as_deref(), Some("completed"));
        let change = Claim::of(
            "/bots/internal/callback/status_change",
            &json!({"status": "active", "container_id": ""}),
        );
        assert_eq!(change.container, None, "an empty container claims nothing");
        let session = Claim::of("/bots/internal/session_start", &json!({"session_uid": "s"}));
        assert_eq!(session.session_uid.as_deref(), Some("s"));
    }
}
