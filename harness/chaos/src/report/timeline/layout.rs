//! Where everything goes. Time flows down; every event gets a row of its own, so no two
//! labels can share a line, and the label boxes are computed here (monospace text, so a
//! label's width is its length) for the tests to check that none overlap. The time axis
//! is not linear: close events are spread to one row apart, a quiet stretch adds a little
//! space in proportion, and a long one is cut to a fixed gap marked with its duration.
//! Fault periods get tracks of their own, so concurrent ones sit side by side; the lane
//! titles are repeated every so many rows, so every printed page has them.

use std::collections::HashMap;

use super::chart::{Chart, FIRST_BOT, Shape};

/// The time gutter on the left.
pub(super) const GUTTER: f64 = 66.0;
const FIRST_LANE_X: f64 = GUTTER + 72.0;
pub(super) const LANE_GAP: f64 = 140.0;
/// Label text: 11 px monospace, advance 0.6 em (rounded up).
pub(super) const CHAR_W: f64 = 6.7;
const ASCENT: f64 = 10.0;
const DESCENT: f64 = 3.0;
/// Space above a row's line for an arrow's label, and below it for a point's.
const ABOVE: f64 = 16.0;
const BELOW: f64 = 7.0;
/// Quiet time drawn to scale (px per ms), up to `MAX_QUIET_PX`.
const PX_PER_MS: f64 = 0.05;
const MAX_QUIET_PX: f64 = 14.0;
/// Quieter than this is cut to `BREAK_PX` and marked with its duration.
pub(super) const BREAK_US: i64 = 300_000;
const BREAK_PX: f64 = 26.0;
pub(super) const HEADER_H: f64 = 40.0;
/// The tallest part: an A4 landscape page is about 725 px high within its margins, and a
/// part is printed at most at its own size (wider charts are scaled down to the page).
const PART_MAX: f64 = 690.0;
pub(super) const TRACK_W: f64 = 16.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    #[cfg(test)]
    pub fn overlaps(&self, other: &Rect) -> bool {
        self.x < other.x + other.w
            && other.x < self.x + self.w
            && self.y < other.y + other.h
            && other.y < self.y + self.h
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Anchor {
    Start,
    Middle,
    End,
}

/// One line of text: where its baseline starts (or is centred or ends) and its box.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Text {
    pub x: f64,
    pub y: f64,
    pub anchor: Anchor,
    pub text: String,
    pub rect: Rect,
}

fn width(text: &str) -> f64 {
    text.chars().count() as f64 * CHAR_W
}

impl Text {
    pub fn new(x: f64, y: f64, anchor: Anchor, text: impl Into<String>) -> Self {
        Text::sized(x, y, anchor, text.into(), 0)
    }

    /// With `extra` more characters drawn after the text (the witness tags).
    pub fn sized(x: f64, y: f64, anchor: Anchor, text: String, extra: usize) -> Self {
        let w = width(&text) + extra as f64 * CHAR_W;
        let left = match anchor {
            Anchor::Start => x,
            Anchor::Middle => x - w / 2.0,
            Anchor::End => x - w,
        };
        Text {
            x,
            y,
            anchor,
            text,
            rect: Rect {
                x: left,
                y: y - ASCENT,
                w,
                h: ASCENT + DESCENT,
            },
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Row {
    /// The row's line: arrows are drawn on it, points centred on it.
    pub y: f64,
    /// The event's label (its box includes the witness tags drawn after it).
    pub label: Text,
    pub time: Text,
}

#[derive(Debug, Clone)]
pub(super) struct Break {
    pub y: f64,
    pub text: Text,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Part {
    pub top: f64,
    pub bottom: f64,
}

#[derive(Debug, Clone)]
pub(super) struct Header {
    pub top: f64,
    pub texts: Vec<Text>,
}

#[derive(Debug, Clone)]
pub(super) struct Layout {
    pub width: f64,
    /// Where the lifelines start and end.
    pub top: f64,
    pub bottom: f64,
    pub lane_x: Vec<f64>,
    /// Each period's track (`None`: drawn on a lane, the service's down periods).
    pub period_track: Vec<Option<usize>>,
    #[cfg_attr(not(test), allow(dead_code))]
    pub tracks: usize,
    pub tracks_x: f64,
    pub rows: Vec<Row>,
    pub breaks: Vec<Break>,
    pub headers: Vec<Header>,
    /// Horizontal slices drawn as separate pictures, each starting with the lane titles and
    /// at most `PART_MAX` tall, so a printed page never cuts through a row.
    pub parts: Vec<Part>,
    row_of_seq: HashMap<u64, usize>,
}

impl Layout {
    pub fn track_x(&self, track: usize) -> f64 {
        self.tracks_x + track as f64 * TRACK_W
    }

    /// The line of the event with this sequence number.
    pub fn y_of(&self, seq: u64) -> Option<f64> {
        self.row_of_seq.get(&seq).map(|&r| self.rows[r].y)
    }

    /// Every piece of text drawn, named for error messages.
    #[cfg(test)]
    pub fn boxes(&self) -> Vec<(String, Rect)> {
        let mut out = Vec::new();
        for (i, row) in self.rows.iter().enumerate() {
            out.push((format!("label of row {i}"), row.label.rect));
            out.push((format!("time of row {i}"), row.time.rect));
        }
        for b in &self.breaks {
            out.push((format!("gap mark {:?}", b.text.text), b.text.rect));
        }
        for h in &self.headers {
            for t in &h.texts {
                out.push((format!("header {:?} at {}", t.text, h.top), t.rect));
            }
        }
        out
    }
}

/// "450 ms", "1.5 s", "12 s".
pub(super) fn duration(us: i64) -> String {
    let ms = us as f64 / 1000.0;
    if ms < 1000.0 {
        format!("{} ms", ms.round())
    } else if ms < 10_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{} s", (ms / 1000.0).round())
    }
}

/// Places a chart; `tags[i]` is the number of characters of witness tags drawn after
/// glyph `i`'s label.
pub(super) fn layout(chart: &Chart<'_>, tags: &[usize]) -> Layout {
    let lane_x: Vec<f64> = (0..chart.lanes.len())
        .map(|i| FIRST_LANE_X + i as f64 * LANE_GAP)
        .collect();
    let last_lane = *lane_x.last().expect("fixed lanes");
    let tracks_x = last_lane + LANE_GAP / 2.0 + 24.0;

    let row_of_seq: HashMap<u64, usize> = chart
        .glyphs
        .iter()
        .enumerate()
        .map(|(i, g)| (g.event.seq, i))
        .collect();
    let rows_n = chart.glyphs.len();

    // Tracks: each period not drawn on a lane takes the lowest track free since its start.
    let mut period_track = vec![None; chart.periods.len()];
    let mut track_end: Vec<usize> = Vec::new();
    let mut order: Vec<usize> = (0..chart.periods.len())
        .filter(|&i| chart.periods[i].lane.is_none())
        .collect();
    let span = |i: usize| {
        let p = &chart.periods[i];
        let from = row_of_seq.get(&p.from_seq).copied().unwrap_or(0);
        let to = p
            .to_seq
            .and_then(|s| row_of_seq.get(&s).copied())
            .unwrap_or(rows_n);
        (from, to)
    };
    order.sort_by_key(|&i| span(i));
    for i in order {
        let (from, to) = span(i);
        let track = match track_end.iter().position(|&end| end < from) {
            Some(t) => t,
            None => {
                track_end.push(0);
                track_end.len() - 1
            }
        };
        track_end[track] = to;
        period_track[i] = Some(track);
    }
    let tracks = track_end.len();
    let fault_label_x = tracks_x + tracks as f64 * TRACK_W + 6.0;

    let header = |top: f64| {
        let mut texts = vec![Text::new(GUTTER - 8.0, top + 15.0, Anchor::End, "ms")];
        // Centred on their lanes and cut (with "…") to stay clear of the next ones.
        let max = ((LANE_GAP - 8.0) / CHAR_W) as usize;
        for (lane, &x) in chart.lanes.iter().zip(&lane_x) {
            let title = super::super::truncate(&lane.title, max);
            texts.push(Text::new(x, top + 15.0, Anchor::Middle, title));
            let subtitle = super::super::truncate(&lane.subtitle, max);
            texts.push(Text::new(x, top + 29.0, Anchor::Middle, subtitle));
        }
        if tracks > 0 {
            texts.push(Text::new(
                tracks_x - 4.0,
                top + 15.0,
                Anchor::Start,
                "faults",
            ));
        }
        Header { top, texts }
    };

    let mut headers = Vec::new();
    let mut parts = Vec::new();
    let mut part_top = 0.0;
    headers.push(header(part_top + 6.0));
    let top = part_top + 6.0 + HEADER_H;
    let mut cursor = top;
    let mut rows = Vec::with_capacity(rows_n);
    let mut breaks = Vec::new();
    for (i, glyph) in chart.glyphs.iter().enumerate() {
        let quiet = if i > 0 {
            glyph.order_us() - chart.glyphs[i - 1].order_us()
        } else {
            0
        };
        let space = if quiet >= BREAK_US {
            BREAK_PX
        } else {
            (quiet as f64 / 1000.0 * PX_PER_MS).clamp(0.0, MAX_QUIET_PX)
        };
        // A new part (with the lane titles again) where this row would not fit a page.
        if i > 0 && cursor + space + ABOVE + BELOW - part_top > PART_MAX {
            parts.push(Part {
                top: part_top,
                bottom: cursor + 6.0,
            });
            part_top = cursor + 6.0;
            headers.push(header(part_top + 6.0));
            cursor = part_top + 6.0 + HEADER_H;
        }
        if quiet >= BREAK_US {
            let mid = cursor + BREAK_PX / 2.0 + 1.0;
            breaks.push(Break {
                y: mid,
                text: Text::new(
                    6.0,
                    mid + 4.0,
                    Anchor::Start,
                    format!("⋯ {}", duration(quiet)),
                ),
            });
        }
        cursor += space;
        let y = cursor + ABOVE;
        cursor = y + BELOW;
        let extra = tags.get(i).copied().unwrap_or(0);
        let label = glyph.label.clone();
        let label = match glyph.shape {
            Shape::Arrow { from, via, to, .. } => {
                let left = [Some(from), via, Some(to)]
                    .into_iter()
                    .flatten()
                    .map(|l| lane_x[l])
                    .fold(f64::INFINITY, f64::min);
                Text::sized(left + 9.0, y - 5.0, Anchor::Start, label, extra)
            }
            Shape::Point { lane } => {
                Text::sized(lane_x[lane] + 9.0, y + 4.0, Anchor::Start, label, extra)
            }
            Shape::Fault { .. } => Text::sized(fault_label_x, y + 4.0, Anchor::Start, label, extra),
        };
        let time = Text::new(
            GUTTER - 8.0,
            y + 4.0,
            Anchor::End,
            format!("{:.1}", glyph.event.at_us as f64 / 1000.0),
        );
        rows.push(Row { y, label, time });
    }
    let bottom = cursor + 12.0;
    parts.push(Part {
        top: part_top,
        bottom: bottom + 6.0,
    });
    let right = rows
        .iter()
        .map(|r| r.label.rect.x + r.label.rect.w)
        .chain(
            headers
                .iter()
                .flat_map(|h| h.texts.iter().map(|t| t.rect.x + t.rect.w)),
        )
        .fold(fault_label_x + 40.0, f64::max);
    debug_assert!(chart.lanes.len() >= FIRST_BOT);
    Layout {
        width: (right + 16.0).ceil(),
        top,
        bottom,
        lane_x,
        period_track,
        tracks,
        tracks_x,
        rows,
        breaks,
        headers,
        parts,
        row_of_seq,
    }
}
