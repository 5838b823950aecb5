use serde_json::json;

use super::super::fixture::{sample_history, sample_report};
use super::chart::{self, Chart, HARNESS, Life, POSTGRES, REDIS, RUNTIME, SERVICE, Shape, Style};
use super::layout::{self, Layout};
use super::*;
use crate::check::{CheckResult, Invariant, Outcome, Violation};
use crate::history::{EventKind, FaultPhase, HttpPhase, MeetingLabel};

const BOT: &str = "vexa-bot-1-0a1b2c3d";
const UID: &str = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";

fn ev(seq: u64, at_us: i64, kind: EventKind) -> Event {
    Event { seq, at_us, kind }
}

fn http(op: u64, phase: HttpPhase, method: &str, path: &str, status: Option<u16>) -> EventKind {
    EventKind::Http {
        op,
        phase,
        method: method.into(),
        path: path.into(),
        meeting: Some("m1".into()),
        status,
        body: status.map(|_| json!({"message": "Stop request accepted and is being processed."})),
        error: (phase == HttpPhase::Fail).then(|| "connection refused".to_owned()),
        by: None,
    }
}

fn container(action: &str, exit_code: Option<i64>) -> EventKind {
    EventKind::Container {
        action: action.into(),
        container_id: "0a1b2c3d4e5f0a1b2c3d4e5f0a1b2c3d4e5f0a1b2c3d4e5f0a1b2c3d4e5f0a1b".into(),
        name: BOT.into(),
        meeting_id: Some(1),
        exit_code,
    }
}

fn bot(event: &str, fields: serde_json::Value) -> EventKind {
    EventKind::Bot {
        container: BOT.into(),
        meeting_id: Some(1),
        uid: Some(UID.into()),
        event: event.into(),
        fields,
    }
}

fn fault(name: &str, target: &str, phase: FaultPhase) -> EventKind {
    EventKind::Fault {
        name: name.into(),
        phase,
        target: target.into(),
        detail: json!(null),
    }
}

fn stored(from: &str, to: &str) -> EventKind {
    EventKind::StatusStored {
        meeting_id: 1,
        from: from.into(),
        to: to.into(),
        audit_len: 1,
        completion_reason: (to == "completed").then(|| "stopped".to_owned()),
        failure_stage: None,
        stop_requested: false,
        bot_container_id: None,
    }
}

/// A stop flow as the legacy service runs it, with everything the chart must show: the
/// leave through Redis (the bot logging its receipt a little before the recorder saw the
/// publish), a service restart with a request refused while it is down, two concurrent
/// faults, a docker stop whose SIGTERM is ignored, the container gone (the witness), and
/// a late completion after it.
fn stop_flow() -> History {
    let leave = format!("bot_commands:{UID}");
    History::new(vec![
        ev(
            0,
            1_000,
            EventKind::RunStarted {
                scenario: "stop-flow".into(),
                profile: "legacy".into(),
                seed: 1,
                wire: Default::default(),
                meetings: vec![MeetingLabel {
                    label: "m1".into(),
                    platform: "google_meet".into(),
                    native_meeting_id: "abc-defg-hij".into(),
                }],
            },
        ),
        ev(1, 2_000, http(1, HttpPhase::Invoke, "POST", "/bots", None)),
        ev(
            2,
            3_000,
            EventKind::MeetingInserted {
                meeting_id: 1,
                platform: "google_meet".into(),
                native_meeting_id: "abc-defg-hij".into(),
                status: "requested".into(),
            },
        ),
        ev(3, 4_000, container("create", None)),
        ev(4, 5_000, container("start", None)),
        ev(5, 6_000, bot("started", json!({}))),
        ev(6, 6_500, bot("subscribed", json!({ "channel": leave }))),
        ev(7, 7_000, http(1, HttpPhase::Ok, "POST", "/bots", Some(201))),
        ev(8, 100_000, stored("awaiting_admission", "active")),
        ev(
            9,
            1_000_000,
            http(
                2,
                HttpPhase::Invoke,
                "DELETE",
                "/bots/google_meet/abc-defg-hij",
                None,
            ),
        ),
        ev(
            10,
            1_005_000,
            EventKind::Published {
                channel: leave.clone(),
                payload: json!({"action": "leave"}),
            },
        ),
        ev(
            11,
            1_004_600,
            bot(
                "command_received",
                json!({"channel": leave, "action": "leave", "accepted": true}),
            ),
        ),
        ev(
            12,
            1_004_700,
            bot("leave_started", json!({"trigger": "command"})),
        ),
        ev(13, 1_004_800, bot("leave_hung", json!({}))),
        ev(
            14,
            1_006_000,
            http(
                2,
                HttpPhase::Ok,
                "DELETE",
                "/bots/google_meet/abc-defg-hij",
                Some(202),
            ),
        ),
        ev(
            15,
            1_010_000,
            bot(
                "callback_attempt",
                json!({"path": "status_change", "status": "completed", "completion_reason": "stopped", "attempt": 1, "copy": 0}),
            ),
        ),
        ev(
            16,
            1_200_000,
            fault("restart_service", "service", FaultPhase::Applied),
        ),
        ev(
            17,
            1_250_000,
            http(
                3,
                HttpPhase::Invoke,
                "DELETE",
                "/bots/google_meet/abc-defg-hij",
                None,
            ),
        ),
        ev(
            18,
            1_251_000,
            http(
                3,
                HttpPhase::Fail,
                "DELETE",
                "/bots/google_meet/abc-defg-hij",
                None,
            ),
        ),
        ev(
            19,
            1_500_000,
            fault("restart_service", "service", FaultPhase::Healed),
        ),
        ev(
            20,
            1_600_000,
            fault("network", "service:postgres", FaultPhase::Applied),
        ),
        ev(
            21,
            1_610_000,
            fault("pause_redis", "system", FaultPhase::Applied),
        ),
        ev(22, 2_000_000, container("kill", None)),
        ev(23, 1_999_900, bot("sigterm_received", json!({"count": 1}))),
        ev(24, 2_000_000, bot("sigterm_ignored", json!({}))),
        ev(25, 3_000_000, container("kill", None)),
        ev(26, 3_001_000, container("die", Some(137))),
        ev(27, 3_001_000, container("stop", None)),
        ev(28, 3_002_000, container("destroy", None)),
        ev(
            29,
            3_500_000,
            fault("network", "service:postgres", FaultPhase::Healed),
        ),
        ev(
            30,
            3_600_000,
            fault("pause_redis", "system", FaultPhase::Healed),
        ),
        ev(31, 6_000_000, stored("active", "completed")),
        ev(
            32,
            7_000_000,
            EventKind::Final(crate::history::FinalState {
                meetings: vec![],
                sessions: vec![],
                containers: vec![],
            }),
        ),
    ])
}

fn find(history: &History, seq: u64) -> Event {
    history
        .events
        .iter()
        .find(|e| e.seq == seq)
        .unwrap()
        .clone()
}

/// The first sample record, judged over [`stop_flow`]: INV-TERMINAL violated twice (each
/// with its own witness), INV-NO-ACTIVE-WITHOUT-CONTAINER once, witnessed by the
/// container's exit.
fn stop_flow_record(history: &History) -> RunRecord {
    let mut record = sample_report().records[0].clone();
    let terminal = vec![
        Violation {
            text: "stop accepted at 1006.0 ms, still active at the deadline".into(),
            witness: vec![find(history, 14), find(history, 8)],
        },
        Violation {
            text: "the second stop was refused while the service was down".into(),
            witness: vec![find(history, 18)],
        },
    ];
    let gone = vec![Violation {
        text: "meeting 1 active 1500 ms after its container went away".into(),
        witness: vec![find(history, 8), find(history, 26)],
    }];
    record.checks = vec![
        CheckResult {
            invariant: Invariant::Terminal,
            outcome: Outcome::Violated,
            precondition_met: true,
            summary: terminal[0].text.clone(),
            witness: terminal[0].witness.clone(),
            violations: terminal,
        },
        CheckResult {
            invariant: Invariant::NoActiveWithoutContainer,
            outcome: Outcome::Violated,
            precondition_met: true,
            summary: gone[0].text.clone(),
            witness: gone[0].witness.clone(),
            violations: gone,
        },
    ];
    record
}

fn glyph<'c, 'a>(chart: &'c Chart<'a>, seq: u64) -> &'c chart::Glyph<'a> {
    chart
        .glyphs
        .iter()
        .find(|g| g.event.seq == seq)
        .unwrap_or_else(|| panic!("no glyph for seq {seq}"))
}

fn position(chart: &Chart<'_>, seq: u64) -> usize {
    chart
        .glyphs
        .iter()
        .position(|g| g.event.seq == seq)
        .unwrap()
}

fn laid_out(chart: &Chart<'_>) -> Layout {
    layout::layout(chart, &vec![0; chart.glyphs.len()])
}

/// The element with this id, up to its closing tag.
fn element<'h>(html: &'h str, id: &str) -> &'h str {
    let at = html.find(&format!("id=\"{id}\"")).expect(id);
    let start = html[..at].rfind('<').unwrap();
    let end = at + html[at..].find("</g>").unwrap();
    &html[start..end]
}

/// The opening tag of the element with this id.
fn tag_with_id<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html.find(&format!("id=\"{id}\"")).expect(id);
    let start = html[..at].rfind('<').unwrap();
    let end = at + html[at..].find('>').unwrap();
    &html[start..=end]
}

fn attr(tag: &str, name: &str) -> f64 {
    let key = format!(" {name}=\"");
    let at = tag.find(&key).unwrap_or_else(|| panic!("{name} in {tag}")) + key.len();
    let end = at + tag[at..].find('"').unwrap();
    tag[at..end].parse().unwrap()
}

fn assert_no_label_overlaps(layout: &Layout) {
    let boxes = layout.boxes();
    assert!(!boxes.is_empty());
    for (i, (a, ra)) in boxes.iter().enumerate() {
        assert!(ra.w > 0.0 && ra.h > 0.0, "{a} has no size");
        for (b, rb) in &boxes[i + 1..] {
            assert!(!ra.overlaps(rb), "{a} {ra:?} overlaps {b} {rb:?}");
        }
    }
}

#[test]
fn docker_stop_is_an_arrow_from_the_service_through_the_runtime_to_the_container() {
    let history = stop_flow();
    let chart = chart::chart(&history.events);
    let bot = chart.lane_of_key(&format!("bot:{BOT}")).unwrap();
    let stop = glyph(&chart, 22);
    assert_eq!(
        stop.shape,
        Shape::Arrow {
            from: SERVICE,
            via: Some(RUNTIME),
            to: bot,
            style: Style::Call
        }
    );
    assert_eq!(stop.label, format!("docker stop {BOT} → signal"));
    // The grace's SIGKILL is the runtime's own; the stop's end answers the service.
    assert_eq!(
        glyph(&chart, 25).shape,
        Shape::Arrow {
            from: RUNTIME,
            via: None,
            to: bot,
            style: Style::Call
        }
    );
    assert_eq!(
        glyph(&chart, 27).shape,
        Shape::Arrow {
            from: RUNTIME,
            via: None,
            to: SERVICE,
            style: Style::Reply
        }
    );
    assert_eq!(
        glyph(&chart, 26).shape,
        Shape::Arrow {
            from: bot,
            via: None,
            to: RUNTIME,
            style: Style::Call
        }
    );
    assert_eq!(
        glyph(&chart, 3).shape,
        Shape::Arrow {
            from: SERVICE,
            via: None,
            to: RUNTIME,
            style: Style::Call
        },
        "docker create"
    );
    // The bot's SIGTERM, logged a hair before the runtime's kill, is drawn after it.
    assert!(position(&chart, 23) > position(&chart, 22));
    assert!(position(&chart, 24) > position(&chart, 23));

    let html = render_timeline(&stop_flow_record(&history), Some(&history));
    let line = element(&html, "ev-22");
    assert!(
        line.contains(&format!(
            "class=\"arrow call\" data-from=\"service\" data-to=\"bot:{BOT}\" data-via=\"runtime\""
        )),
        "{line}"
    );
    assert!(line.contains("<circle class=\"relay\""), "{line}");
}

#[test]
fn the_leave_goes_from_the_service_to_redis_and_from_redis_to_the_bot() {
    let history = stop_flow();
    let chart = chart::chart(&history.events);
    let bot = chart.lane_of_key(&format!("bot:{BOT}")).unwrap();
    let publish = glyph(&chart, 10);
    assert_eq!(
        publish.shape,
        Shape::Arrow {
            from: SERVICE,
            via: None,
            to: REDIS,
            style: Style::Call
        }
    );
    assert_eq!(publish.label, "leave → bot_commands:6f1c2d3e…");
    let receipt = glyph(&chart, 11);
    assert_eq!(
        receipt.shape,
        Shape::Arrow {
            from: REDIS,
            via: None,
            to: bot,
            style: Style::Call
        }
    );
    assert_eq!(receipt.label, "leave received on bot_commands:6f1c2d3e…");
    // Logged 0.4 ms before the recorder saw the publish, drawn after it, and what the
    // bot logged next after that.
    let (p, r) = (position(&chart, 10), position(&chart, 11));
    assert!(r > p, "receipt at {r}, publish at {p}");
    assert!(position(&chart, 12) > r && position(&chart, 13) > position(&chart, 12));
}

#[test]
fn a_publish_no_bot_logged_receiving_says_so_and_points_nowhere_further() {
    let history = sample_history();
    let chart = chart::chart(&history.events);
    let publish = glyph(&chart, 8);
    assert!(
        publish
            .label
            .ends_with("bot_commands:meeting:1 (no bot logged receiving it)"),
        "{}",
        publish.label
    );
    assert!(matches!(publish.shape, Shape::Arrow { to: REDIS, .. }));
    // Nothing goes from Redis to a bot in that history.
    assert!(
        !chart
            .glyphs
            .iter()
            .any(|g| matches!(g.shape, Shape::Arrow { from: REDIS, .. }))
    );
}

#[test]
fn http_exchanges_are_requests_and_answers_between_client_and_service() {
    let history = stop_flow();
    let chart = chart::chart(&history.events);
    let request = glyph(&chart, 9);
    assert_eq!(
        request.shape,
        Shape::Arrow {
            from: HARNESS,
            via: None,
            to: SERVICE,
            style: Style::Call
        }
    );
    assert_eq!(request.label, "DELETE /bots/google_meet/abc-defg-hij");
    let answer = glyph(&chart, 14);
    assert_eq!(
        answer.shape,
        Shape::Arrow {
            from: SERVICE,
            via: None,
            to: HARNESS,
            style: Style::Reply
        }
    );
    assert_eq!(
        answer.label,
        "202 to DELETE /bots/google_meet/abc-defg-hij: Stop request accepted and is being processed."
    );
    // Refused while the service was down: the request is drawn lost, the failure a point.
    assert!(matches!(
        glyph(&chart, 17).shape,
        Shape::Arrow {
            style: Style::Lost,
            ..
        }
    ));
    assert_eq!(glyph(&chart, 18).shape, Shape::Point { lane: HARNESS });
    assert!(
        glyph(&chart, 18)
            .label
            .contains("not sent: connection refused")
    );
}

#[test]
fn stored_changes_go_from_the_service_to_postgres_and_callbacks_from_the_bot() {
    let history = stop_flow();
    let chart = chart::chart(&history.events);
    let bot = chart.lane_of_key(&format!("bot:{BOT}")).unwrap();
    let active = glyph(&chart, 8);
    assert_eq!(
        active.shape,
        Shape::Arrow {
            from: SERVICE,
            via: None,
            to: POSTGRES,
            style: Style::Call
        }
    );
    assert_eq!(
        active.label,
        "meeting 1: status active stored (was awaiting_admission)"
    );
    let callback = glyph(&chart, 15);
    assert_eq!(
        callback.shape,
        Shape::Arrow {
            from: bot,
            via: None,
            to: SERVICE,
            style: Style::Call
        }
    );
    assert_eq!(
        callback.label,
        "status_change callback: completed (stopped), attempt 1 (no answer logged)"
    );
    // What the bot did alone is a point on its lane.
    assert_eq!(glyph(&chart, 13).shape, Shape::Point { lane: bot });
    assert_eq!(glyph(&chart, 13).label, "leave hangs");
}

#[test]
fn the_services_down_period_is_a_bar_on_its_lane_from_sigterm_to_ready() {
    let history = stop_flow();
    let chart = chart::chart(&history.events);
    let layout = laid_out(&chart);
    let html = render_timeline(&stop_flow_record(&history), Some(&history));
    let at = html
        .find("<rect class=\"down\" data-lane=\"service\" data-fault=\"restart_service\"")
        .expect("a down period on the service lane");
    let tag = &html[at..at + html[at..].find('>').unwrap()];
    let (from, to) = (layout.y_of(16).unwrap(), layout.y_of(19).unwrap());
    assert!((attr(tag, "y") - from).abs() < 0.06, "{tag} vs {from}");
    assert!((attr(tag, "height") - (to - from)).abs() < 0.11, "{tag}");
    let x = layout.lane_x[SERVICE];
    assert!(attr(tag, "x") < x && attr(tag, "x") + attr(tag, "width") > x);
    // Its ends are labelled on the service lane, and the refused request lies inside it.
    assert_eq!(glyph(&chart, 16).shape, Shape::Point { lane: SERVICE });
    assert_eq!(
        glyph(&chart, 16).label,
        "restart_service: service goes down"
    );
    assert_eq!(glyph(&chart, 19).label, "restart_service: service up again");
    let refused = layout.y_of(18).unwrap();
    assert!(from < refused && refused < to);
}

#[test]
fn stop_service_is_healed_by_start_service() {
    let events = [
        ev(0, 10, fault("stop_service", "service", FaultPhase::Applied)),
        ev(
            1,
            20,
            fault("network", "service:redis", FaultPhase::Applied),
        ),
        ev(2, 30, fault("start_service", "service", FaultPhase::Healed)),
    ];
    let periods = chart::fault_periods(&events);
    assert_eq!(periods.len(), 2);
    assert_eq!(
        (periods[0].to_seq, periods[0].lane),
        (Some(2), Some(SERVICE))
    );
    assert_eq!((periods[1].to_seq, periods[1].lane), (None, None));
}

#[test]
fn concurrent_faults_get_tracks_of_their_own_and_labels_that_do_not_overlap() {
    let history = stop_flow();
    let chart = chart::chart(&history.events);
    let layout = laid_out(&chart);
    let track = |name: &str| {
        let i = chart.periods.iter().position(|p| p.name == name).unwrap();
        layout.period_track[i]
    };
    assert_eq!(track("restart_service"), None, "drawn on the service lane");
    let (network, redis) = (track("network").unwrap(), track("pause_redis").unwrap());
    assert_ne!(network, redis, "concurrent faults share no track");
    assert_eq!(layout.tracks, 2);
    // Labels of the faults' ends, all clear of each other and of everything else.
    let labels: Vec<_> = [20u64, 21, 29, 30]
        .iter()
        .map(|&seq| layout.rows[position(&chart, seq)].label.rect)
        .collect();
    for (i, a) in labels.iter().enumerate() {
        for b in &labels[i + 1..] {
            assert!(!a.overlaps(b), "{a:?} {b:?}");
        }
    }
    assert_no_label_overlaps(&layout);
    let html = render_timeline(&stop_flow_record(&history), Some(&history));
    assert!(html.contains(&format!(
        "<rect class=\"fault-bar\" data-track=\"{network}\" data-fault=\"network\""
    )));
    assert!(html.contains(&format!(
        "<rect class=\"fault-bar\" data-track=\"{redis}\" data-fault=\"pause_redis\""
    )));
}

#[test]
fn no_two_labels_overlap_even_when_everything_happens_at_once() {
    // Forty events in the same microsecond, on every lane, with faults among them.
    let mut events: Vec<Event> = stop_flow().events;
    let base = events.len() as u64;
    for i in 0..40u64 {
        let kind = match i % 5 {
            0 => bot(
                "status_sent",
                json!({"status": "active", "http_status": 200}),
            ),
            1 => fault("network", &format!("link-{i}"), FaultPhase::Applied),
            2 => container("kill", None),
            3 => stored("active", "stopping"),
            _ => EventKind::Published {
                channel: "bm:meeting:1:status".into(),
                payload: json!({"payload": {"status": "stopping"}}),
            },
        };
        events.push(ev(base + i, 2_500_000, kind));
    }
    let history = History::new(events);
    let chart = chart::chart(&history.events);
    let tags: Vec<usize> = (0..chart.glyphs.len()).map(|i| i % 3 * 20).collect();
    let layout = layout::layout(&chart, &tags);
    assert!(layout.tracks >= 8, "{} tracks", layout.tracks);
    assert_no_label_overlaps(&layout);
    let ys: Vec<f64> = layout.rows.iter().map(|r| r.y).collect();
    assert!(ys.windows(2).all(|w| w[1] > w[0]), "one row per event");
    assert_no_label_overlaps(&laid_out(&chart::chart(&sample_history().events)));
}

#[test]
fn the_witness_is_red_with_its_invariant_and_what_came_after_is_still_drawn() {
    let history = stop_flow();
    let record = stop_flow_record(&history);
    let html = render_timeline(&record, Some(&history));
    let witness = element(&html, "ev-26");
    assert!(
        witness.starts_with("<g class=\"ev k-docker witness\""),
        "{witness}"
    );
    assert!(
        witness.contains("<tspan class=\"tag\">  ◀ INV-NO-ACTIVE-WITHOUT-CONTAINER</tspan>"),
        "{witness}"
    );
    assert!(
        element(&html, "ev-8").contains("◀ INV-TERMINAL, INV-NO-ACTIVE-WITHOUT-CONTAINER"),
        "a witness of two invariants names both"
    );
    // The late completion, after every witness event: drawn, below them, not red.
    let late = element(&html, "ev-31");
    assert!(late.starts_with("<g class=\"ev k-db\""), "{late}");
    assert!(late.contains("meeting 1: status completed stored (was active), reason stopped"));
    let chart = chart::chart(&history.events);
    let layout = laid_out(&chart);
    assert!(layout.y_of(31).unwrap() > layout.y_of(26).unwrap());
    for e in &history.events {
        assert!(
            html.contains(&format!("id=\"ev-{}\"", e.seq)),
            "event {} drawn",
            e.seq
        );
    }
    assert_eq!(html.matches("<g class=\"ev ").count(), history.events.len());
}

#[test]
fn every_violation_is_listed_with_its_own_witness() {
    let history = stop_flow();
    let html = render_timeline(&stop_flow_record(&history), Some(&history));
    let at = html.find("<section class=\"violations\">").unwrap();
    let section = &html[at..at + html[at..].find("</section>").unwrap()];
    assert!(section.contains("<h2>Violations (3)</h2>"), "{section}");
    let items: Vec<&str> = section.split("<li><span class=\"inv\">").skip(1).collect();
    assert_eq!(items.len(), 3);
    assert!(items[0].starts_with("INV-TERMINAL</span> stop accepted at 1006.0 ms"));
    assert!(items[0].contains("href=\"#ev-14\"") && items[0].contains("href=\"#ev-8\""));
    assert!(items[1].starts_with("INV-TERMINAL</span> the second stop was refused"));
    assert!(items[1].contains("href=\"#ev-18\"") && !items[1].contains("href=\"#ev-14\""));
    assert!(items[2].starts_with("INV-NO-ACTIVE-WITHOUT-CONTAINER</span>"));
    assert!(items[2].contains("href=\"#ev-26\""));
    // The second violation's witness is red too, though `witness` names only the first's.
    assert!(element(&html, "ev-18").contains(" witness\""));
}

#[test]
fn quiet_stretches_are_cut_and_marked_with_their_duration() {
    let history = stop_flow();
    let chart = chart::chart(&history.events);
    let layout = laid_out(&chart);
    // 3.6 s (the last heal) to 6.0 s (the late completion): one mark between them.
    let (before, after) = (layout.y_of(30).unwrap(), layout.y_of(31).unwrap());
    let marks: Vec<_> = layout
        .breaks
        .iter()
        .filter(|b| before < b.y && b.y < after)
        .collect();
    assert_eq!(marks.len(), 1);
    assert_eq!(marks[0].text.text, "⋯ 2.4 s");
    // Close events are not marked: 1.0 ms between the DELETE's answer and the receipt.
    let (a, b) = (layout.y_of(9).unwrap(), layout.y_of(14).unwrap());
    assert!(!layout.breaks.iter().any(|m| a < m.y && m.y < b));
    assert_eq!(layout::duration(450_000), "450 ms");
    assert_eq!(layout::duration(12_300_000), "12 s");
}

#[test]
fn a_bots_line_follows_its_container() {
    let history = stop_flow();
    let chart = chart::chart(&history.events);
    let bot = chart.lane_of_key(&format!("bot:{BOT}")).unwrap();
    let lives: Vec<(Option<u64>, Option<u64>, Life)> = chart
        .segments
        .iter()
        .filter(|s| s.lane == bot)
        .map(|s| (s.from_seq, s.to_seq, s.life))
        .collect();
    assert_eq!(
        lives,
        [
            (Some(3), Some(4), Life::Idle),
            (Some(4), Some(26), Life::Running),
            (Some(26), Some(28), Life::Idle),
        ]
    );
    assert_eq!(chart.removals, [(bot, 28)]);
    assert_eq!(chart.lanes[bot].title, "bot m1 (meeting 1)");
    assert_eq!(chart.lanes[bot].subtitle, BOT);
}

#[test]
fn long_runs_are_drawn_in_parts_that_each_fit_a_page_and_repeat_the_lane_titles() {
    let history = sample_history();
    let template = &history.events[9];
    let events: Vec<Event> = (0..3000)
        .map(|i| Event {
            seq: i,
            at_us: i as i64 * 10_000,
            kind: template.kind.clone(),
        })
        .collect();
    let big = History::new(events);
    let chart = chart::chart(&big.events);
    let layout = laid_out(&chart);
    assert!(layout.parts.len() > 10, "{} parts", layout.parts.len());
    assert_eq!(layout.headers.len(), layout.parts.len());
    for (part, header) in layout.parts.iter().zip(&layout.headers) {
        assert!(part.bottom - part.top <= 700.0, "{part:?}");
        assert!(part.top < header.top && header.top < part.bottom);
    }
    for row in &layout.rows {
        let within = |p: &&layout::Part| p.top <= row.label.rect.y && row.y + 8.0 <= p.bottom;
        assert_eq!(layout.parts.iter().filter(within).count(), 1, "{row:?}");
    }
    let html = render_timeline(&sample_report().records[0], Some(&big));
    assert_eq!(html.matches("<g class=\"ev ").count(), 3000);
    assert_eq!(
        html.matches("<svg class=\"msc\"").count(),
        layout.parts.len()
    );
    assert!(html.len() < 3000 * 1500, "{} bytes", html.len());
}

#[test]
fn ids_are_shortened_in_labels() {
    assert_eq!(
        chart::shorten_ids(&format!("bot_commands:{UID}")),
        "bot_commands:6f1c2d3e…"
    );
    assert_eq!(
        chart::shorten_ids(
            "container 0a1b2c3d4e5f0a1b2c3d4e5f0a1b2c3d4e5f0a1b2c3d4e5f0a1b2c3d4e5f0a1b)"
        ),
        "container 0a1b2c3d4e5f…)"
    );
    assert_eq!(
        chart::shorten_ids("vexa-bot-1-852992af"),
        "vexa-bot-1-852992af"
    );
    assert_eq!(
        chart::shorten_ids("bm:meeting:1:status"),
        "bm:meeting:1:status"
    );
}

#[test]
fn faults_pair_by_name_and_target_in_order() {
    let events = [
        ev(0, 10, fault("kill", "a", FaultPhase::Applied)),
        ev(1, 20, fault("kill", "b", FaultPhase::Applied)),
        ev(2, 30, fault("kill", "b", FaultPhase::Healed)),
        ev(3, 40, fault("kill", "a", FaultPhase::Healed)),
        ev(4, 50, fault("kill", "a", FaultPhase::Healed)),
    ];
    let periods = chart::fault_periods(&events);
    let spans: Vec<(&str, u64, Option<u64>)> = periods
        .iter()
        .map(|p| (p.target.as_str(), p.from_seq, p.to_seq))
        .collect();
    assert_eq!(spans, [("a", 0, Some(3)), ("b", 1, Some(2))]);
}

fn sample() -> String {
    let report = sample_report();
    render_timeline(&report.records[0], Some(&sample_history()))
}

#[test]
fn hovering_an_event_gives_its_full_json() {
    let html = sample();
    let group = element(&html, "ev-11");
    assert!(
        group.contains("<title>6000.0 ms · container · container (seq 11)\n{"),
        "{group}"
    );
    assert!(group.contains("&quot;exit_code&quot;: 137"), "{group}");
}

#[test]
fn an_unhealed_fault_runs_to_the_end_and_says_so() {
    let html = sample();
    assert!(
        html.contains("<rect class=\"fault-bar open\" data-track=\"0\" data-fault=\"redis_down\""),
        "{html}"
    );
    assert!(html.contains("redis_down on service-&gt;redis: applied (seq 13), never healed"));
    // One after the other, the two faults share a track.
    assert!(
        html.contains(
            "<rect class=\"fault-bar\" data-track=\"0\" data-fault=\"bot_restart_new_uid\""
        )
    );
}

#[test]
fn header_names_scenario_profile_seed_expectation_verdict_and_checks() {
    let html = sample();
    assert!(html.contains("<dt>seed</dt><dd class=\"m-seed\">42</dd>"));
    assert!(
        html.contains("<dd class=\"m-expectation\">violates INV-NO-ACTIVE-WITHOUT-CONTAINER</dd>")
    );
    assert!(html.contains("<dd class=\"m-verdict\">violates INV-NO-ACTIVE-WITHOUT-CONTAINER</dd>"));
    assert!(html.contains("<h1>restart-during-stop <span class=\"profile\">legacy</span> <span class=\"badge ok\">as expected</span></h1>"));
    assert!(html.contains("<tr class=\"o-violated\"><td title=\"no meeting is non-terminal"));
    assert!(html.contains(">INV-NO-ACTIVE-WITHOUT-CONTAINER <span class=\"focus\">focus</span></td><td class=\"outcome\">violated</td><td>yes</td><td>meeting 1 stayed stopping"));
    assert!(html.contains(
        "<td class=\"outcome\">holds</td><td>yes</td><td>all 1 status changes allowed</td>"
    ));
    assert!(html.contains("<a href=\"#ev-11\" class=\"witness-link\">6000.0 ms container"));
    assert!(html.contains("<tr class=\"witness-row\"><td><a href=\"#ev-11\">11</a>"));
}

#[test]
fn timeline_is_self_contained_and_needs_no_script() {
    let html = sample();
    assert!(!html.contains("http://"), "no network references");
    assert!(!html.contains("https://"), "no network references");
    assert!(!html.contains(" src="), "no external scripts or images");
    assert!(!html.contains("<link"), "no external stylesheets");
    assert!(!html.contains("<script"), "readable without script");
    assert!(html.contains("<style>") && html.contains("@media print"));
}

#[test]
fn markup_in_event_payloads_is_escaped() {
    let html = sample();
    assert!(!html.contains("<script>alert"), "payload not escaped");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let mut record = sample_report().records[0].clone();
    record.scenario = "<img onerror=x>".into();
    record.checks[0].summary = "a \"quoted\" & <b>bold</b> summary".into();
    let html = render_timeline(&record, Some(&sample_history()));
    assert!(!html.contains("<img"));
    assert!(html.contains("a &quot;quoted&quot; &amp; &lt;b&gt;bold&lt;/b&gt; summary"));
}

#[test]
fn pending_and_unexpected_records_never_look_like_a_pass() {
    let report = sample_report();
    let unexpected = render_timeline(&report.records[1], Some(&sample_history()));
    assert!(unexpected.contains("<span class=\"badge bad\">NOT as expected</span>"));
    // An undecided check's events are not a violation's witness.
    assert!(!unexpected.contains("<section class=\"violations\">"));
    assert!(!tag_with_id(&unexpected, "ev-8").contains("witness"));
    let pending = render_timeline(&report.records[2], None);
    assert!(pending.contains("<span class=\"badge pending\">pending: not run, not a pass</span>"));
    assert!(pending.contains("No history was recorded"));
    assert!(pending.contains("no checks ran"));
    assert!(!pending.contains("<svg class=\"msc\""));
}
