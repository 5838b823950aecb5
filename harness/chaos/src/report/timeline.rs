//! `timeline.html`: one self-contained page per record that ran (inline CSS and JS, no
//! network, viewable offline). A header with the scenario, profile, seed, expectation,
//! verdict and the check results; then a lane per actor with every event of the history
//! placed on a time axis (ms since the run started), fault periods shaded across all
//! lanes and the witness events marked in red; then the full event list.
//!
//! Marks are absolutely positioned divs whose position is `--t` (ms) times the page's
//! `--scale` (px per ms), so zooming is one CSS variable; hovering a mark shows its whole
//! event as JSON (`title`), clicking it copies that into the detail panel.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt::Write as _;

use crate::check::Outcome;
use crate::history::{Actor, Event, EventKind, FaultPhase, History, HttpPhase};
use crate::results::RunRecord;

use super::{fmt_ms, is_pending, key_fields};

/// The lanes, top to bottom.
const LANES: [Actor; 8] = [
    Actor::Harness,
    Actor::Client,
    Actor::Service,
    Actor::Redis,
    Actor::Database,
    Actor::Container,
    Actor::Bot,
    Actor::Fault,
];

/// Marks closer than this (px, at the initial zoom) go on separate rows of their lane.
const MIN_GAP_PX: f64 = 10.0;
const MAX_ROWS: usize = 4;
const ROW_PX: u32 = 10;
const AXIS_PX: u32 = 22;
/// The initial zoom fits the run into about this many pixels, within the bounds below.
const FIT_PX: f64 = 1400.0;
const MIN_SCALE: f64 = 0.05;
const MAX_SCALE: f64 = 4.0;

fn actor_name(actor: Actor) -> &'static str {
    match actor {
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

/// A fault between its `applied` and `healed` events (`to_us` is `None` when it was never
/// healed: shaded to the end of the run).
#[derive(Debug, Clone, PartialEq)]
struct FaultPeriod {
    name: String,
    target: String,
    from_us: i64,
    to_us: Option<i64>,
}

/// Pairs each `applied` with the next `healed` of the same fault name and target.
fn fault_periods(events: &[Event]) -> Vec<FaultPeriod> {
    let mut open: BTreeMap<(String, String), VecDeque<usize>> = BTreeMap::new();
    let mut periods: Vec<FaultPeriod> = Vec::new();
    for event in events {
        let EventKind::Fault {
            name,
            phase,
            target,
            ..
        } = &event.kind
        else {
            continue;
        };
        let key = (name.clone(), target.clone());
        match phase {
            FaultPhase::Applied => {
                periods.push(FaultPeriod {
                    name: name.clone(),
                    target: target.clone(),
                    from_us: event.at_us,
                    to_us: None,
                });
                open.entry(key).or_default().push_back(periods.len() - 1);
            }
            FaultPhase::Healed => {
                if let Some(i) = open.get_mut(&key).and_then(VecDeque::pop_front) {
                    periods[i].to_us = Some(event.at_us);
                }
            }
        }
    }
    periods
}

/// Time to position: ms since `origin_us`, as a CSS number.
fn t_ms(at_us: i64, origin_us: i64) -> f64 {
    (at_us - origin_us) as f64 / 1000.0
}

/// A tick interval of 1, 2 or 5 times a power of ten ms, at least `min_ms`.
fn nice_step(min_ms: f64) -> f64 {
    let mut power = 0.001;
    loop {
        for m in [1.0, 2.0, 5.0] {
            if m * power >= min_ms {
                return m * power;
            }
        }
        power *= 10.0;
    }
}

fn tick_label(t: f64, step: f64) -> String {
    if step >= 1000.0 {
        format!("{} s", (t / 1000.0 * 1000.0).round() / 1000.0)
    } else {
        format!("{} ms", (t * 1000.0).round() / 1000.0)
    }
}

struct Mark<'a> {
    event: &'a Event,
    row: usize,
}

struct Lane<'a> {
    actor: Actor,
    marks: Vec<Mark<'a>>,
    rows: usize,
}

impl Lane<'_> {
    fn height(&self) -> u32 {
        (self.rows.max(1) as u32 * ROW_PX + 14).max(28)
    }

    /// The vertical centre of a row, in px from the lane's top.
    fn row_y(&self, row: usize) -> u32 {
        let rows = self.rows.max(1) as u32;
        (self.height() - (rows - 1) * ROW_PX) / 2 + row as u32 * ROW_PX
    }
}

/// Spreads each lane's marks over a few rows so close events stay apart.
fn lanes(events: &[Event], origin_us: i64, scale: f64) -> Vec<Lane<'_>> {
    LANES
        .into_iter()
        .map(|actor| {
            let mut last: Vec<f64> = Vec::new();
            let mut marks = Vec::new();
            for event in events.iter().filter(|e| e.kind.actor() == actor) {
                let x = t_ms(event.at_us, origin_us) * scale;
                let row = match last.iter().position(|&l| x - l >= MIN_GAP_PX) {
                    Some(row) => row,
                    None if last.len() < MAX_ROWS => {
                        last.push(f64::NEG_INFINITY);
                        last.len() - 1
                    }
                    None => last
                        .iter()
                        .enumerate()
                        .min_by(|a, b| a.1.total_cmp(b.1))
                        .map_or(0, |(i, _)| i),
                };
                last[row] = x;
                marks.push(Mark { event, row });
            }
            Lane {
                actor,
                marks,
                rows: last.len(),
            }
        })
        .collect()
}

/// The mark's extra classes: the HTTP phase, recorder gaps.
fn kind_class(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Http { phase, .. } => match phase {
            HttpPhase::Invoke => " ph-invoke",
            HttpPhase::Ok => " ph-ok",
            HttpPhase::Fail => " ph-fail",
            HttpPhase::Info => " ph-info",
        },
        EventKind::RecorderGap { .. } => " gap",
        EventKind::Fault { phase, .. } => match phase {
            FaultPhase::Applied => " f-applied",
            FaultPhase::Healed => " f-healed",
        },
        _ => "",
    }
}

/// The hover text of a mark: when, who, what, then the whole event as JSON.
fn tooltip(event: &Event) -> String {
    let json =
        serde_json::to_string_pretty(event).unwrap_or_else(|e| format!("(unserialisable: {e})"));
    format!(
        "{} ms · {} · {} (seq {})\n{}",
        fmt_ms(event.at_us),
        actor_name(event.kind.actor()),
        event.kind.name(),
        event.seq,
        json
    )
}

pub fn render_timeline(record: &RunRecord, history: Option<&History>) -> String {
    let events: &[Event] = history.map_or(&[], |h| h.events.as_slice());
    let witness: HashSet<u64> = record
        .checks
        .iter()
        .flat_map(|c| c.witness.iter().map(|e| e.seq))
        .collect();
    let periods = fault_periods(events);
    let origin_us = events.iter().map(|e| e.at_us).min().unwrap_or(0).min(0);
    let end_us = events.iter().map(|e| e.at_us).max().unwrap_or(0);
    let span_ms = t_ms(end_us, origin_us).max(1.0);
    let scale = (FIT_PX / span_ms).clamp(MIN_SCALE, MAX_SCALE);
    let lanes = lanes(events, origin_us, scale);

    let mut h = String::with_capacity(16 * 1024 + events.len() * 900);
    let title = format!("timeline · {} · {}", record.scenario, record.profile);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    header(&mut h, record, events, &periods);

    // Controls and legend.
    h.push_str("<div class=\"controls\"><button type=\"button\" data-zoom=\"out\" title=\"zoom out\">−</button><button type=\"button\" data-zoom=\"in\" title=\"zoom in\">+</button><button type=\"button\" data-zoom=\"fit\" title=\"fit the whole run\">fit</button><span class=\"legend\">");
    for actor in LANES {
        let name = actor_name(actor);
        let _ = write!(h, "<span><i class=\"dot a-{name}\"></i>{name}</span>");
    }
    h.push_str("<span><i class=\"dot witness-dot\"></i>witness (violating event)</span><span><i class=\"swatch\"></i>fault period</span><span>○ HTTP outcome unknown · ■ HTTP failed</span></span></div>\n");

    // The lanes.
    h.push_str("<div class=\"timeline\">\n<div class=\"labels\">");
    let _ = write!(
        h,
        "<div class=\"axis-label\" style=\"height:{AXIS_PX}px\">ms</div>"
    );
    for lane in &lanes {
        let name = actor_name(lane.actor);
        let _ = write!(
            h,
            "<div class=\"lane-label\" style=\"height:{}px\">{name}</div>",
            lane.height()
        );
    }
    h.push_str("<div class=\"fault-strip\"></div></div>\n<div class=\"scroll\" id=\"scroll\">\n");
    let _ = writeln!(
        h,
        "<div class=\"plot\" id=\"plot\" data-span=\"{span_ms:.3}\" data-scale=\"{scale:.5}\" style=\"--span:{span_ms:.3};--scale:{scale:.5}\">"
    );
    let _ = write!(
        h,
        "<div class=\"axis\" id=\"axis\" style=\"height:{AXIS_PX}px\">"
    );
    let step = nice_step(90.0 / scale);
    let mut i = 0u32;
    loop {
        let t = f64::from(i) * step;
        if t > span_ms + 1e-9 {
            break;
        }
        let _ = write!(
            h,
            "<div class=\"tick\" style=\"--t:{t:.3}\">{}</div>",
            esc(&tick_label(t, step))
        );
        i += 1;
    }
    h.push_str("</div>\n");
    for p in &periods {
        let from = t_ms(p.from_us, origin_us);
        let (to, class, until) = match p.to_us {
            Some(to) => (
                t_ms(to, origin_us),
                "fault",
                format!("healed at {} ms", fmt_ms(to)),
            ),
            None => (span_ms, "fault unhealed", "never healed".to_owned()),
        };
        let tip = format!(
            "fault {} on {}: applied at {} ms, {until}",
            p.name,
            p.target,
            fmt_ms(p.from_us)
        );
        let _ = writeln!(
            h,
            "<div class=\"{class}\" style=\"--t:{from:.3};--w:{:.3}\" title=\"{}\"><span>{}</span></div>",
            (to - from).max(0.0),
            esc(&tip),
            esc(&format!("{} · {}", p.name, p.target))
        );
    }
    for (i, lane) in lanes.iter().enumerate() {
        let name = actor_name(lane.actor);
        let alt = if i % 2 == 1 { " alt" } else { "" };
        let _ = write!(
            h,
            "<div class=\"lane{alt}\" data-actor=\"{name}\" style=\"height:{}px\">",
            lane.height()
        );
        for mark in &lane.marks {
            let e = mark.event;
            let w = if witness.contains(&e.seq) {
                " witness"
            } else {
                ""
            };
            let _ = write!(
                h,
                "<div class=\"ev a-{name}{}{w}\" id=\"ev-{}\" tabindex=\"0\" style=\"--t:{:.3};top:{}px\" title=\"{}\"></div>",
                kind_class(&e.kind),
                e.seq,
                t_ms(e.at_us, origin_us),
                lane.row_y(mark.row),
                esc(&tooltip(e))
            );
        }
        h.push_str("</div>\n");
    }
    h.push_str("</div>\n</div>\n</div>\n");
    if history.is_none() {
        h.push_str("<p class=\"notice\">No history was recorded for this record: the lanes are empty. The check results above are all there is.</p>\n");
    } else if events.is_empty() {
        h.push_str("<p class=\"notice\">The history of this record is empty.</p>\n");
    }
    h.push_str("<pre id=\"detail\" class=\"detail\">Hover a mark for its event; click it to show the event here.</pre>\n");
    event_table(&mut h, events, &witness);
    let _ = write!(h, "<script>{JS}</script>\n</body>\n</html>\n");
    h
}

fn header(h: &mut String, record: &RunRecord, events: &[Event], periods: &[FaultPeriod]) {
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
                periods.len()
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

fn event_table(h: &mut String, events: &[Event], witness: &HashSet<u64>) {
    if events.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<details class=\"events\"><summary>All {} events</summary>\n<table>\n<thead><tr><th>seq</th><th>ms</th><th>actor</th><th>type</th><th>fields</th></tr></thead>\n<tbody>\n",
        events.len()
    );
    for e in events {
        let class = if witness.contains(&e.seq) {
            " class=\"witness-row\""
        } else {
            ""
        };
        let _ = writeln!(
            h,
            "<tr{class}><td><a href=\"#ev-{0}\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td><td>{4}</td></tr>",
            e.seq,
            esc(&fmt_ms(e.at_us)),
            actor_name(e.kind.actor()),
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
.controls{margin:12px 0 4px;display:flex;gap:6px;align-items:center;flex-wrap:wrap}
.controls button{min-width:34px;padding:2px 8px;font-size:1em;cursor:pointer}
.legend{display:flex;gap:12px;flex-wrap:wrap;margin-left:10px;font-size:.85em;color:#444}
.legend span{display:inline-flex;align-items:center;gap:4px}
.dot{display:inline-block;width:9px;height:9px;border-radius:50%}
.witness-dot{background:#e00000;box-shadow:0 0 0 2px #fff,0 0 0 3px #e00000}
.swatch{display:inline-block;width:16px;height:10px;background:rgba(255,152,0,.22);border:1px solid #ef6c00}
.timeline{display:flex;border:1px solid #ccc}
.labels{flex:none;width:84px;border-right:1px solid #ccc;background:#fafafa}
.labels div{box-sizing:border-box;padding:0 8px;display:flex;align-items:center;font-size:.85em;font-weight:600;border-bottom:1px solid #eee}
.fault-strip{height:16px;border-bottom:none !important}
.axis-label{color:#888;font-weight:400 !important;border-bottom:1px solid #ccc !important}
.scroll{overflow-x:auto;flex:1;min-width:0}
.plot{--pad:24px;position:relative;padding-bottom:16px;width:calc(var(--span)*var(--scale)*1px + 2*var(--pad))}
.axis{position:relative;border-bottom:1px solid #ccc;box-sizing:border-box}
.tick{position:absolute;top:0;bottom:0;left:calc(var(--t)*var(--scale)*1px + var(--pad));border-left:1px solid #ccc;font-size:10px;padding:5px 0 0 3px;color:#666;white-space:nowrap}
.lane{position:relative;border-bottom:1px solid #eee;box-sizing:border-box}
.lane.alt{background:rgba(0,0,0,.022)}
.ev{position:absolute;left:calc(var(--t)*var(--scale)*1px + var(--pad));width:8px;height:8px;border-radius:50%;transform:translate(-50%,-50%);cursor:pointer;z-index:2;box-sizing:border-box}
.ev:hover,.ev:focus,.ev.sel{outline:2px solid #000;outline-offset:1px;z-index:5}
.ev.ph-info{background:#fff !important;border:2px solid currentColor}
.ev.ph-fail{border-radius:0}
.ev.gap{border-radius:0;width:4px;height:22px;background:#f9a825 !important}
.ev.f-healed{border-radius:0;transform:translate(-50%,-50%) rotate(45deg)}
.ev.witness{width:15px;height:15px;background:#e00000 !important;color:#e00000;border:none;box-shadow:0 0 0 2px #fff,0 0 0 4px #e00000;z-index:4}
.a-harness{background:#607d8b;color:#607d8b}
.a-client{background:#1e88e5;color:#1e88e5}
.a-service{background:#8e24aa;color:#8e24aa}
.a-redis{background:#00897b;color:#00897b}
.a-database{background:#3949ab;color:#3949ab}
.a-container{background:#6d4c41;color:#6d4c41}
.a-bot{background:#43a047;color:#43a047}
.a-fault{background:#ef6c00;color:#ef6c00}
.fault{position:absolute;top:0;bottom:0;left:calc(var(--t)*var(--scale)*1px + var(--pad));width:max(calc(var(--w)*var(--scale)*1px),2px);background:rgba(255,152,0,.16);border-left:1px solid #ef6c00;border-right:1px solid #ef6c00;z-index:1;box-sizing:border-box}
.fault.unhealed{border-right:2px dashed #ef6c00;background:repeating-linear-gradient(135deg,rgba(255,152,0,.16) 0 8px,rgba(255,152,0,.26) 8px 16px)}
.fault span{position:absolute;bottom:3px;left:3px;font-size:10px;color:#a35200;white-space:nowrap;pointer-events:none}
.notice{background:#fff3cd;border:1px solid #e0c36a;padding:6px 10px}
.detail{background:#f6f8fa;border:1px solid #ddd;padding:8px;max-height:260px;overflow:auto;font-size:.85em;white-space:pre-wrap}
.events summary{cursor:pointer;margin:10px 0 6px;font-weight:600}
.events td{font-family:ui-monospace,monospace;font-size:.92em}
.witness-row td{background:#fde2e1}
"#;

const JS: &str = r#"
(function(){
  var plot=document.getElementById('plot'),scroll=document.getElementById('scroll'),
      axis=document.getElementById('axis'),detail=document.getElementById('detail');
  var span=parseFloat(plot.getAttribute('data-span')),scale=parseFloat(plot.getAttribute('data-scale'));
  function niceStep(min){for(var p=0.001;;p*=10){var ms=[1,2,5];for(var i=0;i<3;i++){if(ms[i]*p>=min)return ms[i]*p;}}}
  function label(t,step){return step>=1000?(Math.round(t)/1000)+' s':(Math.round(t*1000)/1000)+' ms';}
  function ticks(){
    axis.textContent='';var step=niceStep(90/scale);
    for(var i=0;i*step<=span+1e-9;i++){var d=document.createElement('div');d.className='tick';
      d.style.setProperty('--t',(i*step).toFixed(3));d.textContent=label(i*step,step);axis.appendChild(d);}
  }
  function setScale(s){
    s=Math.max(0.0005,Math.min(50,s));
    var centre=(scroll.scrollLeft+scroll.clientWidth/2)/scale;
    scale=s;plot.style.setProperty('--scale',s);ticks();
    scroll.scrollLeft=centre*s-scroll.clientWidth/2;
  }
  document.querySelectorAll('[data-zoom]').forEach(function(b){b.addEventListener('click',function(){
    var z=b.getAttribute('data-zoom');
    if(z==='in')setScale(scale*2);else if(z==='out')setScale(scale/2);
    else setScale(Math.max(0.0005,(scroll.clientWidth-60)/Math.max(span,1)));
  });});
  var selected=null;
  function select(el){
    if(!el)return;if(selected)selected.classList.remove('sel');selected=el;el.classList.add('sel');
    detail.textContent=el.getAttribute('title');
    el.scrollIntoView({block:'nearest',inline:'center'});
  }
  plot.addEventListener('click',function(e){var t=e.target;if(t.classList&&t.classList.contains('ev'))select(t);});
  plot.addEventListener('keydown',function(e){if(e.key==='Enter'&&e.target.classList.contains('ev'))select(e.target);});
  function fromHash(){if(location.hash.indexOf('#ev-')===0)select(document.getElementById(location.hash.slice(1)));}
  window.addEventListener('hashchange',fromHash);fromHash();
})();
"#;

#[cfg(test)]
mod tests {
    use super::super::fixture::{sample_history, sample_report};
    use super::*;

    fn sample() -> String {
        let report = sample_report();
        render_timeline(&report.records[0], Some(&sample_history()))
    }

    /// The opening tag of the element with this id.
    fn tag_with_id<'a>(html: &'a str, id: &str) -> &'a str {
        let at = html.find(&format!("id=\"{id}\"")).expect(id);
        let start = html[..at].rfind('<').unwrap();
        let end = at + html[at..].find('>').unwrap();
        &html[start..=end]
    }

    #[test]
    fn timeline_has_a_labelled_lane_for_every_actor() {
        let html = sample();
        for name in [
            "harness",
            "client",
            "service",
            "redis",
            "database",
            "container",
            "bot",
            "fault",
        ] {
            assert!(
                html.contains(&format!("px\">{name}</div>")),
                "lane label {name}"
            );
            assert!(
                html.contains(&format!("data-actor=\"{name}\"")),
                "lane {name}"
            );
        }
    }

    #[test]
    fn every_event_is_a_mark_in_its_actors_lane() {
        let html = sample();
        let history = sample_history();
        assert_eq!(
            html.matches("<div class=\"ev ").count(),
            history.events.len()
        );
        assert!(tag_with_id(&html, "ev-2").contains("a-client ph-invoke"));
        assert!(
            tag_with_id(&html, "ev-8").contains("a-service"),
            "bot_commands publish is the service's"
        );
        assert!(tag_with_id(&html, "ev-10").contains("a-redis"));
        assert!(tag_with_id(&html, "ev-9").contains("a-database"));
        assert!(
            tag_with_id(&html, "ev-11").contains("--t:6000.000"),
            "time axis in ms"
        );
    }

    #[test]
    fn witness_events_are_marked_distinctly() {
        let html = sample();
        assert!(
            tag_with_id(&html, "ev-11").contains(" witness\""),
            "{}",
            tag_with_id(&html, "ev-11")
        );
        assert!(tag_with_id(&html, "ev-14").contains(" witness\""));
        assert!(!tag_with_id(&html, "ev-9").contains("witness"));
        assert!(html.contains("<a href=\"#ev-11\" class=\"witness-link\">6000.0 ms container"));
        assert!(html.contains("<tr class=\"witness-row\"><td><a href=\"#ev-11\">11</a>"));
    }

    #[test]
    fn hovering_a_mark_gives_its_full_event_json() {
        let html = sample();
        let tag = tag_with_id(&html, "ev-11");
        assert!(
            tag.contains("title=\"6000.0 ms · container · container (seq 11)\n{"),
            "{tag}"
        );
        assert!(tag.contains("&quot;exit_code&quot;: 137"), "{tag}");
    }

    #[test]
    fn fault_periods_are_shaded_across_all_lanes() {
        let html = sample();
        assert!(
            html.contains("<div class=\"fault\" style=\"--t:2000.000;--w:5000.000\" title=\"fault bot_restart_new_uid on m1: applied at 2000.0 ms, healed at 7000.0 ms\">"),
            "{html}"
        );
        assert!(
            html.contains("<div class=\"fault unhealed\" style=\"--t:7100.000;--w:1900.000\" title=\"fault redis_down on service-&gt;redis: applied at 7100.0 ms, never healed\">"),
            "{html}"
        );
        assert!(CSS.contains(".fault{position:absolute;top:0;bottom:0;"));
    }

    #[test]
    fn faults_pair_by_name_and_target_in_order() {
        let fault = |seq, at_us, name: &str, target: &str, phase| Event {
            seq,
            at_us,
            kind: EventKind::Fault {
                name: name.into(),
                phase,
                target: target.into(),
                detail: serde_json::Value::Null,
            },
        };
        let events = [
            fault(0, 10, "kill", "a", FaultPhase::Applied),
            fault(1, 20, "kill", "b", FaultPhase::Applied),
            fault(2, 30, "kill", "b", FaultPhase::Healed),
            fault(3, 40, "kill", "a", FaultPhase::Healed),
            fault(4, 50, "kill", "a", FaultPhase::Healed),
        ];
        let periods = fault_periods(&events);
        let spans: Vec<(&str, i64, Option<i64>)> = periods
            .iter()
            .map(|p| (p.target.as_str(), p.from_us, p.to_us))
            .collect();
        assert_eq!(spans, [("a", 10, Some(40)), ("b", 20, Some(30))]);
    }

    #[test]
    fn header_names_scenario_profile_seed_expectation_verdict_and_checks() {
        let html = sample();
        assert!(html.contains("<dt>seed</dt><dd class=\"m-seed\">42</dd>"));
        assert!(
            html.contains(
                "<dd class=\"m-expectation\">violates INV-NO-ACTIVE-WITHOUT-CONTAINER</dd>"
            )
        );
        assert!(
            html.contains("<dd class=\"m-verdict\">violates INV-NO-ACTIVE-WITHOUT-CONTAINER</dd>")
        );
        assert!(html.contains("<h1>restart-during-stop <span class=\"profile\">legacy</span> <span class=\"badge ok\">as expected</span></h1>"));
        assert!(html.contains("<tr class=\"o-violated\"><td title=\"no meeting is non-terminal"));
        assert!(html.contains(">INV-NO-ACTIVE-WITHOUT-CONTAINER <span class=\"focus\">focus</span></td><td class=\"outcome\">violated</td><td>yes</td><td>meeting 1 stayed stopping"));
        assert!(html.contains(
            "<td class=\"outcome\">holds</td><td>yes</td><td>all 1 status changes allowed</td>"
        ));
    }

    #[test]
    fn timeline_is_self_contained() {
        let html = sample();
        assert!(!html.contains("http://"), "no network references");
        assert!(!html.contains("https://"), "no network references");
        assert!(!html.contains(" src="), "no external scripts or images");
        assert!(!html.contains("<link"), "no external stylesheets");
        assert!(html.contains("<style>") && html.contains("<script>"));
        assert_eq!(
            html.matches("<script>").count(),
            1,
            "only our inline script"
        );
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
        let pending = render_timeline(&report.records[2], None);
        assert!(
            pending.contains("<span class=\"badge pending\">pending: not run, not a pass</span>")
        );
        assert!(pending.contains("No history was recorded"));
        assert!(pending.contains("no checks ran"));
    }

    #[test]
    fn close_events_spread_over_rows_within_their_lane() {
        let events: Vec<Event> = (0..6)
            .map(|seq| Event {
                seq,
                at_us: 1000 + seq as i64,
                kind: EventKind::RecorderGap {
                    source: "redis".into(),
                    detail: String::new(),
                },
            })
            .collect();
        let lanes = lanes(&events, 0, 1.0);
        let redis = lanes.iter().find(|l| l.actor == Actor::Redis).unwrap();
        let rows: Vec<usize> = redis.marks.iter().map(|m| m.row).collect();
        assert_eq!(redis.rows, MAX_ROWS);
        assert_eq!(&rows[..4], &[0, 1, 2, 3]);
        assert!(redis.height() > 28);
        let ys: Vec<u32> = (0..redis.rows).map(|r| redis.row_y(r)).collect();
        assert!(ys.windows(2).all(|w| w[1] > w[0]) && *ys.last().unwrap() < redis.height());
    }

    #[test]
    fn tick_steps_are_round_numbers() {
        assert_eq!(nice_step(90.0), 100.0);
        assert_eq!(nice_step(101.0), 200.0);
        assert_eq!(nice_step(1800.0), 2000.0);
        assert_eq!(tick_label(2000.0, 1000.0), "2 s");
        assert_eq!(tick_label(250.0, 50.0), "250 ms");
    }

    #[test]
    fn a_few_thousand_events_render_one_mark_each_compactly() {
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
        let html = render_timeline(&sample_report().records[0], Some(&big));
        assert_eq!(html.matches("<div class=\"ev ").count(), 3000);
        assert!(html.len() < 3000 * 1500, "{} bytes", html.len());
    }
}
