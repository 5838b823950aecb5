//! INV-LEAVE-ROUTED: a leave reaches the channel the live bot listens on.
//!
//! A leave is a message on one of the service's command channels whose payload has its
//! leave fields (the service's wire, from the history: legacy's `bot_commands:<uid>` with
//! `{"action":"leave"}`, later versions' `bot_commands:meeting:<id>` with `meeting_id`).
//! Its meeting comes from the channel (the id, or the uid's session row or bot log), the
//! payload's meeting, failing those the DELETE about a scenario meeting in flight at that
//! moment. At the publish, some bot of that meeting whose container was alive must listen
//! on exactly that channel, per its log at or before the publish (and a payload naming
//! another meeting is ignored by the bot, so it reaches none): the
//! last `subscribed` sets the channel, `subscribe_failed` and `subscription_lost` leave it
//! listening nowhere, `uid_changed` moves a subscription on `bot_commands:<old_uid>` to
//! `bot_commands:<new_uid>`. A leave published while no bot of its meeting was alive
//! (container gone, not started yet, or meeting unknown) is ignored, and so is one whose
//! live bots listened nowhere (subscription failed, late or lost: H3, the bot's failure,
//! which no routing can reach; the other invariants judge what the stop does next).

use super::Findings;
use protocol::wire::{Captures, Published};

use crate::check::timeline::{Alive, BotLog, Timeline, ms};
use crate::check::{CheckConfig, CheckResult, Invariant};
use crate::history::{Event, EventKind, History};

pub fn leave_routed(history: &History, _config: &CheckConfig) -> CheckResult {
    let tl = Timeline::new(history);
    let mut findings = Findings::new(Invariant::LeaveRouted);
    let mut ignored = 0usize;
    for (publish, channel, names) in history.events.iter().filter_map(|e| leave(&tl.wire, e)) {
        let decided = match target_meeting(&tl, &names, publish.at_us) {
            Some(id) => check_leave(&tl, publish, channel, &names, id, &mut findings),
            None => false,
        };
        if !decided {
            ignored += 1;
        }
    }
    findings.finish("no leave was published while its meeting's bot was alive", move |n| {
        format!(
            "All {n} leave(s) published while the meeting's bot was alive reached the channel it listened on ({ignored} other leave(s) found no live bot and were ignored)."
        )
    })
}

/// A published leave, its channel and what the channel and payload name.
fn leave<'h>(wire: &protocol::Wire, e: &'h Event) -> Option<(&'h Event, &'h str, Captures)> {
    let EventKind::Published { channel, payload } = &e.kind else {
        return None;
    };
    match wire.read(channel, payload) {
        Published::Leave(names) => Some((e, channel.as_str(), names)),
        _ => None,
    }
}

fn target_meeting(tl: &Timeline<'_>, names: &Captures, t: i64) -> Option<i64> {
    names
        .meeting_id
        .or_else(|| names.uid.as_deref().and_then(|uid| tl.meeting_of_uid(uid)))
        .or(names.payload_meeting_id)
        .or_else(|| {
            tl.exchanges
                .iter()
                .filter(|x| {
                    x.method.eq_ignore_ascii_case("DELETE") && x.from_us <= t && t <= x.until_us
                })
                .find_map(|x| tl.row_for_label(&x.label, t))
        })
}

/// Checks one leave for meeting `id`; answers whether it counted (a bot was alive).
fn check_leave(
    tl: &Timeline<'_>,
    publish: &Event,
    channel: &str,
    names: &Captures,
    id: i64,
    findings: &mut Findings,
) -> bool {
    let t = publish.at_us;
    let bots: Vec<&BotLog<'_>> = tl.bots_of(id).collect();
    let live: Vec<&BotLog<'_>> = bots
        .iter()
        .copied()
        .filter(|b| tl.bot_alive_at(b, t) == Alive::Yes)
        .collect();
    if live.is_empty() {
        if bots.is_empty() && tl.meeting_container_alive_at(id, t) == Alive::Yes {
            findings.occurred();
            findings.unknown(format!(
                "Leave for meeting {id} published at {} on {channel} while its container ran, but no log of its bot was recorded.",
                ms(t)
            ));
            return true;
        }
        return false;
    }
    // A bot listening nowhere (its subscription failed or is not made yet) loses any
    // leave, however it is routed: that is the bot's failure (H3), judged by what the
    // stop does next, not a routing error.
    if live.iter().all(|b| b.listening_at(t).0.is_empty()) {
        return false;
    }
    findings.occurred();
    // The bot drops a command for another meeting, wherever it was published.
    if let Some(other) = names.payload_meeting_id.filter(|other| *other != id) {
        findings.violated(
            format!(
                "Leave for meeting {id} published at {} on {channel} names meeting {other} in its payload: its bot ignores it.",
                ms(t)
            ),
            [publish],
        );
        return true;
    }
    let mut heard = Vec::new();
    for bot in &live {
        let (listening, last) = bot.listening_at(t);
        if listening.contains(channel) {
            findings.held();
            return true;
        }
        heard.push((bot, listening, last));
    }
    let (bot, listening, last) = &heard[0];
    let place = match listening {
        l if l.is_empty() => "listened nowhere".to_owned(),
        l => format!(
            "listened on {}",
            l.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
    };
    findings.violated(
        format!(
            "Leave for meeting {id} published at {} on {channel} reached no live bot: its bot {} {place}.",
            ms(t),
            bot.container
        ),
        [Some(publish), *last].into_iter().flatten(),
    );
    true
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testkit::{H, config};
    use super::*;
    use crate::check::Outcome;

    fn running_bot(uid: &str) -> H {
        H::new()
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "abc-defg-hij", "requested")
            .at(10)
            .start(1)
            .session(1, uid)
            .at(20)
            .bot(1, uid, "started", json!({}))
    }

    #[test]
    fn leave_to_the_earliest_session_uid_violates_leave_routed() {
        // H2: an extra session row with an earlier client timestamp gets the leave.
        let h = running_bot("live")
            .at(30)
            .subscribed(1, "live")
            .at(500)
            .session(1, "stale")
            .at(1000)
            .leave("stale")
            .at(5000)
            .end();
        let r = leave_routed(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(
            r.summary.contains("listened on bot_commands:live"),
            "{}",
            r.summary
        );
        let kinds: Vec<&str> = r.witness.iter().map(|e| e.kind.name()).collect();
        assert_eq!(kinds, ["bot", "published"]);
    }

    #[test]
    fn leave_on_the_subscribed_channel_holds_leave_routed() {
        let h = running_bot("live")
            .at(30)
            .subscribed(1, "live")
            .at(1000)
            .leave("live")
            .at(5000)
            .end();
        let r = leave_routed(&h, &config());
        assert_eq!(r.outcome, Outcome::Holds, "{r:?}");
    }

    #[test]
    fn no_leave_published_is_unknown_for_leave_routed() {
        let h = running_bot("live")
            .at(30)
            .subscribed(1, "live")
            .at(5000)
            .end();
        let r = leave_routed(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown);
        assert!(!r.precondition_met);
    }

    #[test]
    fn leave_after_the_container_died_is_ignored() {
        let h = running_bot("live")
            .at(30)
            .subscribed(1, "live")
            .at(800)
            .die(1)
            .at(1000)
            .leave("stale-or-not")
            .leave("live")
            .at(5000)
            .end();
        let r = leave_routed(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
        assert!(!r.precondition_met);
    }

    #[test]
    fn subscription_logged_at_the_same_instant_as_the_leave_counts_as_listening() {
        let h = running_bot("live")
            .at(1000)
            .leave("live")
            .subscribed(1, "live")
            .at(5000)
            .end();
        assert_eq!(leave_routed(&h, &config()).outcome, Outcome::Holds);
    }

    // H3 is the bot's failure, not a routing error: with nowhere to listen, no routing
    // could reach it; the stop's outcome is judged by the other invariants.
    #[test]
    fn leave_before_a_late_subscription_is_not_a_routing_error() {
        let h = running_bot("live")
            .at(1000)
            .leave("live")
            .at(2000)
            .subscribed(1, "live")
            .at(5000)
            .end();
        let r = leave_routed(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
        assert!(!r.precondition_met);
    }

    #[test]
    fn leave_during_a_lost_subscription_is_not_a_routing_error() {
        let h = running_bot("live")
            .at(30)
            .subscribed(1, "live")
            .at(900)
            .bot(
                1,
                "live",
                "subscription_lost",
                json!({"channel": "bot_commands:live", "resubscribe": true}),
            )
            .at(1000)
            .leave("live")
            .at(1500)
            .subscribed(1, "live")
            .at(5000)
            .end();
        assert_eq!(leave_routed(&h, &config()).outcome, Outcome::Unknown);
    }

    #[test]
    fn leave_to_the_old_uid_after_a_uid_change_violates_leave_routed() {
        let h = running_bot("first")
            .at(30)
            .subscribed(1, "first")
            .at(500)
            .bot(
                1,
                "second",
                "uid_changed",
                json!({"old_uid": "first", "new_uid": "second"}),
            )
            .at(1000)
            .leave("first")
            .at(5000)
            .end();
        let r = leave_routed(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(
            r.summary.contains("listened on bot_commands:second"),
            "{}",
            r.summary
        );
        assert!(
            matches!(&r.witness[0].kind, EventKind::Bot { event, .. } if event == "uid_changed")
        );
    }

    #[test]
    fn leave_to_the_new_uid_after_a_uid_change_holds_leave_routed() {
        let h = running_bot("first")
            .at(30)
            .subscribed(1, "first")
            .at(500)
            .bot(
                1,
                "second",
                "uid_changed",
                json!({"old_uid": "first", "new_uid": "second"}),
            )
            .at(1000)
            .leave("second")
            .at(5000)
            .end();
        assert_eq!(leave_routed(&h, &config()).outcome, Outcome::Holds);
    }

    #[test]
    fn leave_on_the_meeting_channel_needs_a_bot_listening_there() {
        let h = running_bot("live")
            .at(30)
            .subscribed(1, "live")
            .at(1000)
            .published(
                "bot_commands:meeting:1",
                json!({"action": "leave", "meeting_id": 1}),
            )
            .at(5000)
            .end();
        assert_eq!(leave_routed(&h, &config()).outcome, Outcome::Violated);
        let h = running_bot("live")
            .at(30)
            .bot(
                1,
                "live",
                "subscribed",
                json!({"channel": "bot_commands:meeting:1"}),
            )
            .at(1000)
            .published(
                "bot_commands:meeting:1",
                json!({"action": "leave", "meeting_id": 1}),
            )
            .at(5000)
            .end();
        assert_eq!(leave_routed(&h, &config()).outcome, Outcome::Holds);
    }

    #[test]
    fn leave_to_an_unknown_uid_during_a_stop_counts_for_that_meeting() {
        let h = running_bot("live")
            .at(30)
            .subscribed(1, "live")
            .at(1000)
            .delete_invoked("m1")
            .at(1010)
            .leave("nobody-knows")
            .at(1020)
            .answered("m1", 202)
            .at(5000)
            .end();
        let r = leave_routed(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(r.summary.contains("meeting 1"), "{}", r.summary);
    }

    #[test]
    fn reconfigure_commands_are_not_leaves() {
        let h = running_bot("live")
            .at(1000)
            .published(
                "bot_commands:stale",
                json!({"action": "reconfigure", "uid": "stale"}),
            )
            .at(5000)
            .end();
        assert!(!leave_routed(&h, &config()).precondition_met);
    }

    // Pins a restart in the same container (runtime control API): the killed process
    // logs no loss, so the new process's `started` must end the old subscriptions, or a
    // leave to the old uid would look heard.
    #[test]
    fn leave_to_the_uid_of_a_restarted_process_violates_leave_routed() {
        let h = running_bot("first")
            .at(30)
            .subscribed(1, "first")
            .at(500)
            .bot(1, "second", "started", json!({}))
            .at(530)
            .subscribed(1, "second")
            .at(1000)
            .leave("first")
            .at(5000)
            .end();
        let r = leave_routed(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(r.summary.contains("bot_commands:second"), "{}", r.summary);
    }

    #[test]
    fn leave_published_at_the_instant_the_container_died_finds_no_live_bot() {
        let h = running_bot("live")
            .at(30)
            .subscribed(1, "live")
            .session(1, "stale")
            .at(1000)
            .die(1)
            .leave("stale")
            .at(5000)
            .end();
        let r = leave_routed(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
        assert!(!r.precondition_met, "{r:?}");
    }

    #[test]
    fn a_bot_whose_container_is_unknown_is_alive_while_its_log_runs() {
        // No container event and no final state: the bot's own lines bracket its life.
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .session(1, "live")
            .session(1, "stale")
            .at(100)
            .bot(1, "live", "started", json!({}))
            .subscribed(1, "live")
            .at(1000)
            .leave("stale")
            .at(3000)
            .leave("stale")
            .bot(1, "live", "heartbeat", json!({}))
            .at(4000)
            .leave("stale")
            .at(5000)
            .end();
        let r = leave_routed(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        let at: Vec<i64> = r
            .violations
            .iter()
            .map(|v| v.witness.last().expect("the publish").at_us)
            .collect();
        assert_eq!(at, [1_000_000, 3_000_000], "{r:?}");
    }

    /// Meeting 1 (`m0`) and meeting 2 (`m1`), each with its container and its bot
    /// subscribed on its own uid; meeting 2's sessions also hold a stale uid.
    fn two_meetings() -> H {
        H::new()
            .label("m0", "aaa-aaaa-aaa")
            .label("m1", "abc-defg-hij")
            .at(0)
            .insert(1, "aaa-aaaa-aaa", "active")
            .insert(2, "abc-defg-hij", "active")
            .at(10)
            .start(1)
            .start(2)
            .session(1, "u1")
            .session(2, "u2")
            .at(20)
            .subscribed(1, "u1")
            .subscribed(2, "u2")
            .at(500)
            .session(2, "stale2")
    }

    #[test]
    fn a_leave_is_judged_against_the_bots_of_its_own_meeting() {
        let h = two_meetings().at(1000).leave("stale2").at(5000).end();
        let r = leave_routed(&h, &config());
        assert_eq!(
            r.summary,
            "Leave for meeting 2 published at 1000 ms on bot_commands:stale2 reached no live bot: its bot vexa-bot-2-0000abcd listened on bot_commands:u2."
        );
    }

    #[test]
    fn a_bots_liveness_is_that_of_its_own_container() {
        // Meeting 2's container died; meeting 1's still runs and must not lend it life.
        let h = two_meetings()
            .at(800)
            .die(2)
            .at(1000)
            .leave("stale2")
            .at(5000)
            .end();
        let r = leave_routed(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
        assert!(!r.precondition_met, "{r:?}");
    }

    #[test]
    fn a_leave_to_an_unknown_uid_counts_only_while_a_delete_is_in_flight_for_the_row_it_addresses()
    {
        let h = two_meetings()
            .at(900)
            .leave("nobody-knows")
            .at(1000)
            .delete_invoked("m1")
            .at(1010)
            .leave("nobody-knows")
            .at(1020)
            .answered("m1", 202)
            .at(1100)
            .leave("nobody-knows")
            .at(5000)
            .end();
        let r = leave_routed(&h, &config());
        assert_eq!(r.violations.len(), 1, "{r:?}");
        assert!(
            r.summary
                .starts_with("Leave for meeting 2 published at 1010 ms"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn a_leave_while_a_container_runs_without_any_bot_log_is_undecided() {
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .session(1, "u1")
            .at(10)
            .start(1)
            .at(1000)
            .leave("u1")
            .at(5000)
            .end();
        let r = leave_routed(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
        assert!(r.precondition_met, "{r:?}");
        assert!(r.summary.contains("no log of its bot"), "{}", r.summary);
    }

    #[test]
    fn a_leave_after_a_container_without_bot_logs_died_is_ignored() {
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .session(1, "u1")
            .at(10)
            .start(1)
            .at(800)
            .die(1)
            .at(1000)
            .leave("u1")
            .at(5000)
            .end();
        let r = leave_routed(&h, &config());
        assert_eq!(r.outcome, Outcome::Unknown, "{r:?}");
        assert!(!r.precondition_met, "{r:?}");
    }

    #[test]
    fn a_uid_named_only_by_its_bots_log_belongs_to_the_meeting_of_the_bots_container() {
        // No session row names `solo`, and the bot's lines carry no meeting id: the
        // meeting comes from the container name the lines are logged under.
        let name = super::super::testkit::container_name(1);
        let h = H::new()
            .at(0)
            .insert(1, "abc-defg-hij", "active")
            .at(10)
            .start(1)
            .at(20)
            .bot_as(&name, None, "solo", "started", json!({}))
            .bot_as(
                &name,
                None,
                "solo",
                "subscribed",
                json!({"channel": "bot_commands:meeting:1"}),
            )
            .at(1000)
            .leave("solo")
            .at(5000)
            .end();
        let r = leave_routed(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(
            r.summary.starts_with("Leave for meeting 1"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn a_held_summary_counts_the_leaves_that_found_no_live_bot() {
        let h = running_bot("live")
            .at(30)
            .subscribed(1, "live")
            .at(1000)
            .leave("live")
            .at(2000)
            .die(1)
            .at(3000)
            .leave("live")
            .leave("live")
            .at(5000)
            .end();
        let r = leave_routed(&h, &config());
        assert_eq!(r.outcome, Outcome::Holds, "{r:?}");
        assert_eq!(
            r.summary,
            "All 1 leave(s) published while the meeting's bot was alive reached the channel it listened on (2 other leave(s) found no live bot and were ignored)."
        );
    }

    #[test]
    fn a_violation_names_a_live_bot_listening_nowhere_as_such() {
        // Two live bots of one meeting: one never subscribed, the other on its own uid.
        let h = running_bot("first")
            .at(25)
            .container_as(1, "c1b", "vexa-bot-1-1111abcd", "start")
            .session(1, "second")
            .at(30)
            .bot_as(
                "vexa-bot-1-1111abcd",
                Some(1),
                "second",
                "started",
                json!({}),
            )
            .bot_as(
                "vexa-bot-1-1111abcd",
                Some(1),
                "second",
                "subscribed",
                json!({"channel": "bot_commands:second"}),
            )
            .at(1000)
            .leave("first")
            .at(5000)
            .end();
        let r = leave_routed(&h, &config());
        assert_eq!(r.outcome, Outcome::Violated, "{r:?}");
        assert!(
            r.summary
                .ends_with("its bot vexa-bot-1-0000abcd listened nowhere."),
            "{}",
            r.summary
        );
    }
}
