//! `timeline.html`: one self-contained page per record that ran (inline CSS, no script,
//! no network; it reads and prints as it is). A header with the scenario, profile, seed,
//! expectation, verdict, the check results and every violation with its witness; then the
//! run as a message sequence chart, in the manner of ShiViz and Jepsen's timelines: time
//! flows down, one lane per actor (client/harness, service, Postgres, Redis, runtime, each
//! bot's container, and tracks for the faults), every message an arrow from its sender's
//! lane to its receiver's, labelled in place; then the full event list.
//!
//! [`chart`] decides what each event is (an arrow, and between whom, or a point),
//! [`layout`] where it goes (a row per event, quiet stretches cut and marked, label boxes
//! that never overlap), [`svg`] draws it. Hovering an event shows its whole JSON.

mod chart;
mod layout;
mod svg;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::violations;
use crate::check::{CheckResult, Outcome};
use crate::history::{Event, History};
use crate::results::RunRecord;

use super::{fmt_ms, is_pending, key_fields};

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn actor_name(event: &Event) -> &'static str {
    use crate::history::Actor;
    match event.kind.actor() {
        Actor::Harness => "harness",
        Actor::Client => "client",
        Actor::Service => "service",
        Actor::Redis => "redis",
        Actor::Database => "database",
        Actor::Container => "container",
        Actor::Bot => "bot",
        Actor::Fault => "fault",
    }
}

/// The hover text of an event: when, who, what, then the whole event as JSON.
fn tooltip(event: &Event) -> String {
    let json =
        serde_json::to_string_pretty(event).unwrap_or_else(|e| format!("(unserialisable: {e})"));
    format!(
        "{} ms · {} · {} (seq {})\n{}",
        fmt_ms(event.at_us),
        actor_name(event),
        event.kind.name(),
        event.seq,
        json
    )
}

/// The invariants each witness event proves violated, by seq. Only violations count: an
/// undecided check's events are evidence of nothing yet.
fn witness_tags(record: &RunRecord) -> BTreeMap<u64, Vec<&'static str>> {
    let mut tags: BTreeMap<u64, Vec<&'static str>> = BTreeMap::new();
    for check in &record.checks {
        for (_, witness) in violations(check) {
            for e in witness {
                let ids = tags.entry(e.seq).or_default();
                if !ids.contains(&check.invariant.id()) {
                    ids.push(check.invariant.id());
                }
            }
        }
    }
    tags
}

pub fn render_timeline(record: &RunRecord, history: Option<&History>) -> String {
    let events: &[Event] = history.map_or(&[], |h| h.events.as_slice());
    let tags = witness_tags(record);
    let chart = chart::chart(events);
    let tag_len: Vec<usize> = chart
        .glyphs
        .iter()
        .map(|g| {
            tags.get(&g.event.seq)
                .map_or(0, |ids| svg::tag_text(ids).chars().count())
        })
        .collect();
    let layout = layout::layout(&chart, &tag_len);

    let mut h = String::with_capacity(16 * 1024 + events.len() * 1200);
    let title = format!("timeline · {} · {}", record.scenario, record.profile);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    header(&mut h, record, events, chart.periods.len());
    violation_list(&mut h, record);
    if history.is_none() {
        h.push_str("<p class=\"notice\">No history was recorded for this record: there is no chart. The check results above are all there is.</p>\n");
    } else if events.is_empty() {
        h.push_str("<p class=\"notice\">The history of this record is empty.</p>\n");
    } else {
        h.push_str(LEGEND);
        h.push_str("<div class=\"chart\">\n");
        svg::render(&mut h, &chart, &layout, &tags);
        h.push_str("</div>\n");
    }
    event_table(&mut h, events, &tags);
    h.push_str("</body>\n</html>\n");
    h
}

/// Every violation of every check, each with its own witness.
fn violation_list(h: &mut String, record: &RunRecord) {
    let all: Vec<(&CheckResult, &str, &[Event])> = record
        .checks
        .iter()
        .flat_map(|c| violations(c).into_iter().map(move |(t, w)| (c, t, w)))
        .collect();
    if all.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<section class=\"violations\"><h2>Violations ({})</h2>\n<ol>\n",
        all.len()
    );
    for (check, text, witness) in all {
        let _ = write!(
            h,
            "<li><span class=\"inv\">{}</span> {}<ul class=\"witness\">",
            esc(check.invariant.id()),
            esc(text)
        );
        for e in witness {
            let _ = write!(
                h,
                "<li><a href=\"#ev-{}\" class=\"witness-link\">{} ms {} <span class=\"fields\">{}</span></a></li>",
                e.seq,
                esc(&fmt_ms(e.at_us)),
                esc(e.kind.name()),
                esc(&key_fields(&e.kind))
            );
        }
        h.push_str("</ul></li>\n");
    }
    h.push_str("</ol></section>\n");
}

const LEGEND: &str = "<p class=\"legend\"><b>Reading the chart.</b> Time flows down, one row per event, its time (ms since the run started) on the left; a quiet stretch longer than 0.3 s is cut to a fixed gap marked <span class=\"mono\">⋯ 1.5 s</span>. <svg width=\"34\" height=\"10\"><line x1=\"1\" y1=\"5\" x2=\"30\" y2=\"5\" stroke=\"#333\" stroke-width=\"1.4\"/><path d=\"M24,1 L32,5 L24,9 z\" fill=\"#333\"/></svg> a message or call from its sender's lane to its receiver's (a dot on the way: relayed, <span class=\"mono\">docker stop</span> service → runtime → container); <svg width=\"34\" height=\"10\"><line x1=\"1\" y1=\"5\" x2=\"30\" y2=\"5\" stroke=\"#333\" stroke-width=\"1.4\" stroke-dasharray=\"5 3\"/><path d=\"M24,1 L32,5 L24,9\" fill=\"none\" stroke=\"#333\" stroke-width=\"1.4\"/></svg> an answer; <svg width=\"34\" height=\"10\"><line x1=\"1\" y1=\"5\" x2=\"22\" y2=\"5\" stroke=\"#333\" stroke-width=\"1.4\"/><path d=\"M22,1 l8 8 M30,1 l-8 8\" stroke=\"#333\" stroke-width=\"1.6\"/></svg> certainly not delivered; <svg width=\"10\" height=\"10\"><circle cx=\"5\" cy=\"5\" r=\"3.5\" fill=\"#333\"/></svg> an event of that lane alone (where who caused it is not in the history, no arrow is drawn). A bot's line is solid while its container runs, dashed while it exists stopped, dotted while paused, and ends in a cross when removed. <svg width=\"12\" height=\"14\"><rect x=\"1\" y=\"0\" width=\"10\" height=\"14\" fill=\"url(#legend-hatch)\" stroke=\"#8e24aa\"/><defs><pattern id=\"legend-hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#8e24aa\" stroke-width=\"3\"/></pattern></defs></svg> the service is down; <svg width=\"10\" height=\"14\"><rect x=\"1\" y=\"0\" width=\"8\" height=\"14\" rx=\"2\" fill=\"#ffcc80\" stroke=\"#e65100\"/></svg> a fault in force (from applied to healed; on its own track, so concurrent faults sit side by side); rows shaded red are the witness of a violation, tagged with the invariant. A bot's receipt logged a fraction before its send (two clocks) is drawn just after it. Hover an event for its whole record.</p>\n";

fn header(h: &mut String, record: &RunRecord, events: &[Event], periods: usize) {
    let (badge_class, badge) = if is_pending(record) {
        ("pending", "pending: not run, not a pass")
    } else if record.as_expected {
        ("ok", "as expected")
    } else {
        ("bad", "NOT as expected")
    };
    let _ = write!(
        h,
        "<header>\n<h1>{} <span class=\"profile\">{}</span> <span class=\"badge {badge_class}\">{badge}</span></h1>\n",
        esc(&record.scenario),
        esc(&record.profile)
    );
    if !record.description.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"description\">{}</p>",
            esc(&record.description)
        );
    }
    h.push_str("<dl class=\"meta\">");
    let focus: Vec<&str> = record.focus.iter().map(|i| i.id()).collect();
    let rows: [(&str, String); 10] = [
        ("scenario", record.scenario.clone()),
        ("profile", record.profile.clone()),
        ("seed", record.seed.to_string()),
        ("repetition", record.repetition.to_string()),
        ("expectation", record.expectation.to_string()),
        ("verdict", record.verdict.to_string()),
        ("focus", focus.join(", ")),
        ("covers", record.covers.join(", ")),
        (
            "duration",
            format!(
                "{} ms, {} events, {} fault periods",
                record.duration_ms,
                events.len(),
                periods
            ),
        ),
        ("rerun", record.rerun.clone()),
    ];
    for (key, value) in rows {
        let _ = write!(
            h,
            "<dt>{key}</dt><dd class=\"m-{key}\">{}</dd>",
            esc(&value)
        );
    }
    h.push_str("</dl>\n");

    h.push_str("<table class=\"checks\">\n<thead><tr><th>invariant</th><th>outcome</th><th>precondition met</th><th>summary</th><th>witness</th></tr></thead>\n<tbody>\n");
    if record.checks.is_empty() {
        h.push_str("<tr><td colspan=\"5\">no checks ran</td></tr>\n");
    }
    for check in &record.checks {
        let outcome = check.outcome.to_string();
        let focus = if record.focus.contains(&check.invariant) {
            " <span class=\"focus\">focus</span>"
        } else {
            ""
        };
        let _ = write!(
            h,
            "<tr class=\"o-{outcome}\"><td title=\"{}\">{}{focus}</td><td class=\"outcome\">{outcome}</td><td>{}</td><td>{}</td><td>",
            esc(check.invariant.statement()),
            esc(check.invariant.id()),
            if check.precondition_met { "yes" } else { "no" },
            esc(&check.summary)
        );
        if check.witness.is_empty() && check.outcome != Outcome::Holds {
            h.push_str("none");
        }
        let items: Vec<String> = check
            .witness
            .iter()
            .map(|e| {
                format!(
                    "<a href=\"#ev-{}\" class=\"witness-link\">{} ms {} <span class=\"fields\">{}</span></a>",
                    e.seq,
                    esc(&fmt_ms(e.at_us)),
                    esc(e.kind.name()),
                    esc(&key_fields(&e.kind))
                )
            })
            .collect();
        h.push_str(&items.join("<br>"));
        h.push_str("</td></tr>\n");
    }
    h.push_str("</tbody>\n</table>\n</header>\n");
}

fn event_table(h: &mut String, events: &[Event], witness: &BTreeMap<u64, Vec<&'static str>>) {
    if events.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<details class=\"events\"><summary>All {} events</summary>\n<table>\n<thead><tr><th>seq</th><th>ms</th><th>actor</th><th>type</th><th>fields</th></tr></thead>\n<tbody>\n",
        events.len()
    );
    for e in events {
        let class = if witness.contains_key(&e.seq) {
            " class=\"witness-row\""
        } else {
            ""
        };
        let _ = writeln!(
            h,
            "<tr{class}><td><a href=\"#ev-{0}\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td><td>{4}</td></tr>",
            e.seq,
            esc(&fmt_ms(e.at_us)),
            actor_name(e),
            esc(e.kind.name()),
            esc(&key_fields(&e.kind))
        );
    }
    h.push_str("</tbody>\n</table>\n</details>\n");
}

const CSS: &str = r#"
:root{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;background:#fff;font-size:14px}
body{margin:0;padding:14px 18px}
h1{font-size:1.35em;margin:0 0 6px}
h1 .profile{color:#555;font-weight:500}
h2{font-size:1.1em;margin:14px 0 6px}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-size:.7em;vertical-align:middle}
.badge.ok{background:#d8f3dc;color:#1b5e20}
.badge.bad{background:#fde2e1;color:#b71c1c}
.badge.pending{background:#fff3cd;color:#7a5a00}
.description{margin:0 0 8px;color:#333}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:1px 12px;margin:0 0 10px}
.meta dt{font-weight:600;color:#555}
.meta dd{margin:0;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.92em;overflow-wrap:anywhere}
table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f5f7}
.checks .outcome{font-weight:600}
.o-violated .outcome{color:#c62828}
.o-unknown .outcome{color:#8a6d00}
.o-holds .outcome{color:#2e7d32}
.focus{font-size:.75em;background:#e3e8f0;border-radius:6px;padding:0 5px}
.witness-link{color:#c62828;text-decoration:none;font-family:ui-monospace,monospace;font-size:.95em}
.witness-link:hover{text-decoration:underline}
.fields{color:#444}
.violations ol{margin:0;padding-left:22px}
.violations li{margin:2px 0}
.violations .inv{font-weight:700;color:#c62828;font-family:ui-monospace,monospace}
.violations ul.witness{margin:2px 0 6px;padding-left:18px;list-style:square}
.legend{font-size:.85em;color:#333;line-height:1.6;margin:12px 0 8px;max-width:1200px}
.legend svg{vertical-align:middle}
.mono{font-family:ui-monospace,monospace}
.chart{overflow-x:auto;border:1px solid #ccc}
.chart svg.msc{display:block}
.chart svg.defs{position:absolute;width:0;height:0;overflow:hidden}
.msc{font-family:"DejaVu Sans Mono",Menlo,Consolas,"Liberation Mono",monospace;font-size:11px}
.msc .bg{fill:#fff}
.msc text{paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round;fill:#1d2330}
.msc .lanehead rect{fill:#f4f5f7}
.msc .lanehead text{stroke:#f4f5f7}
.msc .lanehead .title{font-weight:700}
.msc .lanehead .sub{fill:#666}
.msc .t{fill:#777}
.msc .life{stroke:#b0b4bb;stroke-width:1}
.msc .life.service{stroke:#8e24aa;stroke-width:2}
.msc .life.running{stroke:#2e7d32;stroke-width:2.5}
.msc .life.idle{stroke:#9e9e9e;stroke-width:1.2;stroke-dasharray:4 3}
.msc .life.paused{stroke:#1565c0;stroke-width:2.5;stroke-dasharray:1 3}
.msc .removed{stroke:#333;stroke-width:2}
.msc .down{fill:url(#hatch);stroke:#8e24aa;stroke-width:1}
.msc .down.open{stroke-dasharray:4 2}
.msc .fault-bar{fill:#ffcc80;stroke:#e65100;stroke-width:1}
.msc .fault-bar.open{stroke-dasharray:4 2;fill:#ffe0b2}
.msc .leader{stroke:#e65100;stroke-width:.8;stroke-dasharray:1 2}
.msc .gap-break line{stroke:#bbb;stroke-width:1;stroke-dasharray:2 4}
.msc .gap-text{fill:#555;font-style:italic}
.msc .wband{fill:#ffebee}
.msc .arrow{stroke-width:1.4;fill:none}
.msc .arrow.reply{stroke-dasharray:5 3}
.msc .cross{stroke-width:2;fill:none}
.msc .relay{stroke:none}
.msc .k-http .arrow,.msc .k-http .cross{stroke:#1565c0}.msc .k-http .point,.msc .k-http .relay{fill:#1565c0}
.msc .k-redis .arrow,.msc .k-redis .cross{stroke:#00796b}.msc .k-redis .point,.msc .k-redis .relay{fill:#00796b}
.msc .k-db .arrow,.msc .k-db .cross{stroke:#3949ab}.msc .k-db .point,.msc .k-db .relay{fill:#3949ab}
.msc .k-docker .arrow,.msc .k-docker .cross{stroke:#6d4c41}.msc .k-docker .point,.msc .k-docker .relay{fill:#6d4c41}
.msc .k-bot .arrow,.msc .k-bot .cross{stroke:#2e7d32}.msc .k-bot .point,.msc .k-bot .relay{fill:#2e7d32}
.msc .k-fault .arrow{stroke:#e65100}.msc .k-fault .point{fill:#e65100}
.msc .k-harness .point{fill:#546e7a}
.msc .k-gap .point{fill:#b28704}
.msc .ev.witness .arrow,.msc .ev.witness .cross{stroke:#d50000;stroke-width:2.2}
.msc .ev.witness .point,.msc .ev.witness .relay{fill:#d50000}
.msc .ev.witness .lbl{fill:#b71c1c;font-weight:700}
.msc .tag{fill:#d50000;font-weight:700}
.msc .ev:hover .lbl{text-decoration:underline}
.msc .ev:target .lbl{fill:#000;font-weight:700;text-decoration:underline}
.msc .ev:target .t{fill:#000;font-weight:700}
.notice{background:#fff3cd;border:1px solid #e0c36a;padding:6px 10px}
.events summary{cursor:pointer;margin:10px 0 6px;font-weight:600}
.events td{font-family:ui-monospace,monospace;font-size:.92em}
.witness-row td{background:#fde2e1}
@page{size:A4 landscape;margin:9mm}
@media print{
  body{padding:0;font-size:11px}
  .chart{overflow:visible;border:none}
  .chart svg.msc{max-width:100%;height:auto;break-inside:avoid}
  .msc .wband,.msc .lanehead rect,.msc .fault-bar,.msc .down{print-color-adjust:exact;-webkit-print-color-adjust:exact}
  .checks,.violations{break-inside:avoid}
  details.events{display:none}
}
"#;
