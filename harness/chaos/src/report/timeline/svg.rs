//! Draws a laid-out chart as inline SVG: readable without script, printable, every
//! event a group `id="ev-<seq>"` with its whole JSON as the hover title.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::chart::{Chart, Life, SERVICE, Shape, Style};
use super::layout::{Anchor, Layout, TRACK_W, Text};
use super::{esc, tooltip};

/// Colour classes and their colours (arrow heads need one marker each).
const KINDS: [(&str, &str); 9] = [
    ("http", "#1565c0"),
    ("redis", "#00796b"),
    ("db", "#3949ab"),
    ("docker", "#6d4c41"),
    ("bot", "#2e7d32"),
    ("fault", "#e65100"),
    ("harness", "#546e7a"),
    ("gap", "#b28704"),
    ("witness", "#d50000"),
];

fn f(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

fn text(h: &mut String, class: &str, t: &Text) {
    let anchor = match t.anchor {
        Anchor::Start => "start",
        Anchor::Middle => "middle",
        Anchor::End => "end",
    };
    let _ = write!(
        h,
        "<text class=\"{class}\" x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
        f(t.x),
        f(t.y),
        esc(&t.text)
    );
}

/// `tags`: the witness tags of each glyph, by its event's seq.
pub(super) fn render(
    h: &mut String,
    chart: &Chart<'_>,
    layout: &Layout,
    tags: &BTreeMap<u64, Vec<&'static str>>,
) {
    let w = f(layout.width);
    // Markers and patterns, once for the document.
    h.push_str("<svg class=\"defs\" width=\"0\" height=\"0\" aria-hidden=\"true\"><defs>");
    for (kind, colour) in KINDS {
        let _ = write!(
            h,
            "<marker id=\"h-{kind}\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerUnits=\"userSpaceOnUse\" markerWidth=\"10\" markerHeight=\"10\" orient=\"auto-start-reverse\"><path d=\"M0,1 L10,5 L0,9 z\" fill=\"{colour}\"/></marker><marker id=\"o-{kind}\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerUnits=\"userSpaceOnUse\" markerWidth=\"10\" markerHeight=\"10\" orient=\"auto-start-reverse\"><path d=\"M0,1 L10,5 L0,9\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"/></marker>"
        );
    }
    h.push_str("<pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#fff\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#8e24aa\" stroke-width=\"3\"/></pattern>");
    h.push_str("</defs></svg>\n");
    for (i, part) in layout.parts.iter().enumerate() {
        let ht = f(part.bottom - part.top);
        let _ = writeln!(
            h,
            "<svg class=\"msc\" width=\"{w}\" height=\"{ht}\" viewBox=\"0 {} {w} {ht}\" role=\"img\" aria-label=\"sequence chart of the run, part {} of {}: time flows down, one lane per actor\">",
            f(part.top),
            i + 1,
            layout.parts.len()
        );
        let _ = writeln!(
            h,
            "<rect class=\"bg\" x=\"0\" y=\"{}\" width=\"{w}\" height=\"{ht}\"/>",
            f(part.top)
        );
        render_part(h, chart, layout, tags, part.top, part.bottom);
        h.push_str("</svg>\n");
    }
}

/// Everything between `top` and `bottom`; what spans parts (lifelines, fault periods) is
/// drawn whole in each and cut by the picture's edges.
fn render_part(
    h: &mut String,
    chart: &Chart<'_>,
    layout: &Layout,
    tags: &BTreeMap<u64, Vec<&'static str>>,
    top: f64,
    bottom: f64,
) {
    let w = f(layout.width);
    let inside = |y: f64| top <= y && y < bottom;
    // Witness rows: a band under everything else.
    for (glyph, row) in chart.glyphs.iter().zip(&layout.rows) {
        if tags.contains_key(&glyph.event.seq) && inside(row.y) {
            let _ = writeln!(
                h,
                "<rect class=\"wband\" x=\"0\" y=\"{}\" width=\"{w}\" height=\"23\"/>",
                f(row.y - 16.0)
            );
        }
    }

    // Quiet stretches left out.
    for b in layout.breaks.iter().filter(|b| inside(b.y)) {
        let _ = write!(
            h,
            "<g class=\"gap-break\"><line x1=\"{}\" y1=\"{y}\" x2=\"{w}\" y2=\"{y}\"/>",
            f(super::layout::GUTTER),
            y = f(b.y)
        );
        text(h, "gap-text", &b.text);
        h.push_str("</g>\n");
    }

    // Lifelines: fixed lanes from top to bottom, bots by their containers' lives.
    let y_of = |seq: Option<u64>, default: f64| seq.and_then(|s| layout.y_of(s)).unwrap_or(default);
    for (i, lane) in chart.lanes.iter().enumerate().take(super::chart::FIRST_BOT) {
        let class = if i == SERVICE { "life service" } else { "life" };
        let _ = writeln!(
            h,
            "<line class=\"{class}\" data-lane=\"{}\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\"/>",
            esc(&lane.key),
            f(layout.top),
            f(layout.bottom),
            x = f(layout.lane_x[i])
        );
    }
    for s in &chart.segments {
        let class = match s.life {
            Life::Idle => "life idle",
            Life::Running => "life running",
            Life::Paused => "life paused",
        };
        let _ = writeln!(
            h,
            "<line class=\"{class}\" data-lane=\"{}\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\"/>",
            esc(&chart.lanes[s.lane].key),
            f(y_of(s.from_seq, layout.top)),
            f(y_of(s.to_seq, layout.bottom)),
            x = f(layout.lane_x[s.lane])
        );
    }
    for &(lane, seq) in &chart.removals {
        if let Some(y) = layout.y_of(seq).filter(|&y| inside(y)) {
            let x = layout.lane_x[lane];
            let _ = writeln!(
                h,
                "<path class=\"removed\" d=\"M{} {} l10 10 M{} {} l-10 10\"/>",
                f(x - 5.0),
                f(y - 5.0),
                f(x + 5.0),
                f(y - 5.0)
            );
        }
    }

    // Fault periods: down periods on their lane, the others on their tracks.
    for (i, p) in chart.periods.iter().enumerate() {
        let Some(from) = layout.y_of(p.from_seq) else {
            continue;
        };
        let to = p.to_seq.and_then(|s| layout.y_of(s));
        let end = to.unwrap_or(layout.bottom);
        let until = match to {
            Some(_) => "healed",
            None => "never healed",
        };
        let title = format!(
            "{} on {}: applied (seq {}), {until}",
            p.name, p.target, p.from_seq
        );
        let open = if to.is_none() { " open" } else { "" };
        match (p.lane, layout.period_track[i]) {
            (Some(lane), _) => {
                let _ = writeln!(
                    h,
                    "<rect class=\"down{open}\" data-lane=\"{}\" data-fault=\"{}\" x=\"{}\" y=\"{}\" width=\"12\" height=\"{}\"><title>{}</title></rect>",
                    esc(&chart.lanes[lane].key),
                    esc(&p.name),
                    f(layout.lane_x[lane] - 6.0),
                    f(from),
                    f((end - from).max(2.0)),
                    esc(&format!("{title}: the service is down"))
                );
            }
            (None, Some(track)) => {
                let x = layout.track_x(track);
                let _ = writeln!(
                    h,
                    "<rect class=\"fault-bar{open}\" data-track=\"{track}\" data-fault=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"2\"><title>{}</title></rect>",
                    esc(&p.name),
                    f(x - 4.0),
                    f(from),
                    f(TRACK_W / 2.0),
                    f((end - from).max(2.0)),
                    esc(&title)
                );
            }
            (None, None) => {}
        }
    }

    // Lane titles, repeated.
    for header in layout.headers.iter().filter(|h| inside(h.top)) {
        let _ = write!(
            h,
            "<g class=\"lanehead\"><rect x=\"0\" y=\"{}\" width=\"{w}\" height=\"{}\"/>",
            f(header.top - 6.0),
            f(super::layout::HEADER_H + 2.0)
        );
        for (i, t) in header.texts.iter().enumerate() {
            // "ms", then each lane's title and subtitle, then "faults" (a title).
            text(h, if i % 2 == 1 { "title" } else { "sub" }, t);
        }
        h.push_str("</g>\n");
    }

    // The events.
    for (glyph, row) in chart.glyphs.iter().zip(&layout.rows) {
        if !inside(row.y) {
            continue;
        }
        let e = glyph.event;
        let witness = tags.get(&e.seq);
        let kind = if witness.is_some() {
            "witness"
        } else {
            glyph.kind
        };
        let _ = write!(
            h,
            "<g class=\"ev k-{}{}\" id=\"ev-{}\"><title>{}</title>",
            glyph.kind,
            if witness.is_some() { " witness" } else { "" },
            e.seq,
            esc(&tooltip(e))
        );
        let y = f(row.y);
        match glyph.shape {
            Shape::Arrow {
                from,
                via,
                to,
                style,
            } => {
                let (x0, x1) = (layout.lane_x[from], layout.lane_x[to]);
                let dir = if x1 >= x0 { 1.0 } else { -1.0 };
                let (class, head) = match style {
                    Style::Call => ("arrow call", format!("url(#h-{kind})")),
                    Style::Reply => ("arrow reply", format!("url(#o-{kind})")),
                    Style::Lost => ("arrow lost", String::new()),
                };
                let end = match style {
                    Style::Lost => x1 - dir * 24.0,
                    _ => x1 - dir * 2.0,
                };
                let mut attrs = format!(
                    "data-from=\"{}\" data-to=\"{}\"",
                    esc(&chart.lanes[from].key),
                    esc(&chart.lanes[to].key)
                );
                if let Some(v) = via {
                    let _ = write!(attrs, " data-via=\"{}\"", esc(&chart.lanes[v].key));
                }
                let marker = if head.is_empty() {
                    String::new()
                } else {
                    format!(" marker-end=\"{head}\"")
                };
                let _ = write!(
                    h,
                    "<line class=\"{class}\" {attrs} x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\"{marker}/>",
                    f(x0 + dir * 2.0),
                    f(end)
                );
                if let Some(v) = via {
                    let _ = write!(
                        h,
                        "<circle class=\"relay\" cx=\"{}\" cy=\"{y}\" r=\"3\"/>",
                        f(layout.lane_x[v])
                    );
                }
                if style == Style::Lost {
                    let _ = write!(
                        h,
                        "<path class=\"cross\" d=\"M{} {} l8 8 M{} {} l-8 8\"/>",
                        f(end - 4.0),
                        f(row.y - 4.0),
                        f(end + 4.0),
                        f(row.y - 4.0)
                    );
                }
            }
            Shape::Point { lane } => {
                let _ = write!(
                    h,
                    "<circle class=\"point\" data-lane=\"{}\" cx=\"{}\" cy=\"{y}\" r=\"3.5\"/>",
                    esc(&chart.lanes[lane].key),
                    f(layout.lane_x[lane])
                );
            }
            Shape::Fault { period } => {
                if let Some(track) = layout.period_track[period] {
                    let x = layout.track_x(track);
                    let label_x = row.label.rect.x;
                    let _ = write!(
                        h,
                        "<line class=\"leader\" x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\"/><rect class=\"point fault-end\" x=\"{}\" y=\"{}\" width=\"7\" height=\"7\" transform=\"rotate(45 {} {y})\"/>",
                        f(x + 5.0),
                        f(label_x - 3.0),
                        f(x - 3.5),
                        f(row.y - 3.5),
                        f(x)
                    );
                }
            }
        }
        text(h, "t", &row.time);
        let anchor_x = f(row.label.x);
        let _ = write!(
            h,
            "<text class=\"lbl\" x=\"{anchor_x}\" y=\"{}\">{}",
            f(row.label.y),
            esc(&row.label.text)
        );
        if let Some(ids) = witness {
            let _ = write!(h, "<tspan class=\"tag\">{}</tspan>", esc(&tag_text(ids)));
        }
        h.push_str("</text></g>\n");
    }
}

/// What follows a witness event's label: the invariants it proves violated.
pub(super) fn tag_text(ids: &[&str]) -> String {
    format!("  ◀ {}", ids.join(", "))
}
