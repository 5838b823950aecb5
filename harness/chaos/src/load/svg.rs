//! The plot of a load run: time to converge against the number of meetings, one colour
//! per profile, its p50, p99 and worst as three line styles, and the bound.
//!
//! Written by hand: three polylines, a horizontal line and two axes are about a hundred
//! lines of SVG text, deterministic to the byte (so a snapshot test can hold it), while
//! `plotters`, the one well-kept plotting crate, would bring a font stack for its text
//! layout and a few dozen crates for the same picture.

use std::fmt::Write;

use super::figures::{Ms, Spread};

/// One profile's line: (meetings, its spread) in the order of the runs.
pub struct Series {
    pub profile: String,
    pub points: Vec<(usize, Spread)>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
/// Which statistic of a spread a line draws.
type Pick = fn(&Spread) -> Option<Ms>;
/// Profile colours, in order (legible on white and to most colour-blind readers).
const COLOURS: [&str; 4] = ["#d55e00", "#0072b2", "#009e73", "#cc79a7"];

/// A tidy axis top at or above `max`: 1, 2 or 5 times a power of ten.
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * magnitude)
}

fn seconds(ms: f64) -> String {
    let s = ms / 1000.0;
    if s >= 10.0 || s == s.round() {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

/// The SVG document. A stop that never converged is drawn at the top edge, marked
/// "never".
pub fn plot(title: &str, bound_ms: u64, series: &[Series]) -> String {
    let counts: Vec<usize> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(n, _)| *n))
        .collect();
    // N on a log scale: 100, 300 and 1000 spread evenly, not crowded at the left.
    let log_n = |n: usize| (n.max(1) as f64).log10();
    let (lo, hi) = match (counts.iter().min(), counts.iter().max()) {
        (Some(&min), Some(&max)) if min < max => (log_n(min) - 0.15, log_n(max) + 0.15),
        (Some(&n), _) => (log_n(n) - 0.5, log_n(n) + 0.5),
        _ => (0.0, 1.0),
    };
    let finite_max = series
        .iter()
        .flat_map(|s| s.points.iter())
        .flat_map(|(_, sp)| [sp.p50, sp.p99, sp.max])
        .filter_map(|m| m.and_then(Ms::at))
        .fold(bound_ms as f64, f64::max);
    let y_top = nice_ceiling(finite_max * 1.1);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |n: f64| LEFT + (n.max(1.0).log10() - lo) / (hi - lo) * plot_w;
    let y = |ms: f64| TOP + plot_h - ms.min(y_top) / y_top * plot_h;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        LEFT + plot_w / 2.0,
        escape(title)
    );
    // Axes, with ticks at fifths of the height and at every count measured.
    let _ = writeln!(
        svg,
        r#"<path d="M{LEFT},{TOP} V{} H{}" fill="none" stroke="black"/>"#,
        TOP + plot_h,
        LEFT + plot_w
    );
    for i in 0..=5 {
        let ms = y_top * f64::from(i) / 5.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT,
            y(ms),
            LEFT + plot_w,
            y(ms),
            LEFT - 6.0,
            y(ms) + 4.0,
            seconds(ms)
        );
    }
    let mut ticks = counts.clone();
    ticks.sort_unstable();
    ticks.dedup();
    for n in &ticks {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{n}</text>"#,
            x(*n as f64),
            TOP + plot_h + 18.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">meetings started at once (log scale)</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 10.0
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(16,{}) rotate(-90)" text-anchor="middle">time to converge after the stop</text>"#,
        TOP + plot_h / 2.0
    );
    // The bound.
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="#c00" stroke-dasharray="8,4"/>"##,
        y(bound_ms as f64),
        LEFT + plot_w,
        y(bound_ms as f64)
    );
    let styles: [(&str, &str, Pick); 3] = [
        ("p50", "2,3", |s| s.p50),
        ("p99", "", |s| s.p99),
        ("max", "6,3", |s| s.max),
    ];
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        for (stat, dash, pick) in styles {
            let points: Vec<(f64, f64, bool)> = s
                .points
                .iter()
                .filter_map(|(n, sp)| {
                    pick(sp).map(|m| match m {
                        Ms::At(ms) => (x(*n as f64), y(ms), false),
                        Ms::Never => (x(*n as f64), y(y_top), true),
                    })
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            let path: Vec<String> = points
                .iter()
                .map(|(px, py, _)| format!("{px:.1},{py:.1}"))
                .collect();
            let dash = if dash.is_empty() {
                String::new()
            } else {
                format!(r#" stroke-dasharray="{dash}""#)
            };
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
                path.join(" ")
            );
            for (px, py, never) in points {
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{px:.1}" cy="{py:.1}" r="3" fill="{colour}"/>"#
                );
                if never {
                    let _ = writeln!(
                        svg,
                        r#"<text x="{:.1}" y="{:.1}" fill="{colour}" text-anchor="middle">never ({stat})</text>"#,
                        px,
                        py - 6.0
                    );
                }
            }
        }
    }
    // The legend: one row per profile and statistic, then the bound.
    let lx = LEFT + plot_w + 20.0;
    let mut ly = TOP + 10.0;
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        for (stat, dash, _) in styles {
            let dash = if dash.is_empty() {
                String::new()
            } else {
                format!(r#" stroke-dasharray="{dash}""#)
            };
            let _ = writeln!(
                svg,
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/><text x="{}" y="{}">{} {stat}</text>"#,
                lx + 28.0,
                lx + 34.0,
                ly + 4.0,
                escape(&s.profile)
            );
            ly += 18.0;
        }
        ly += 6.0;
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="#c00" stroke-dasharray="8,4"/><text x="{}" y="{}">bound {}</text>"##,
        lx + 28.0,
        lx + 34.0,
        ly + 4.0,
        seconds(bound_ms as f64)
    );
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(p50: f64, p99: f64, max: Option<f64>) -> Spread {
        Spread {
            p50: Some(Ms::At(p50)),
            p99: Some(Ms::At(p99)),
            max: Some(max.map_or(Ms::Never, Ms::At)),
        }
    }

    #[test]
    fn the_plot_draws_each_profiles_percentiles_against_the_count_and_the_bound() {
        let svg = plot(
            "legacy & fixed",
            2700,
            &[
                Series {
                    profile: "legacy".into(),
                    points: vec![
                        (100, spread(120.0, 900.0, Some(1500.0))),
                        (300, spread(150.0, 1800.0, None)),
                    ],
                },
                Series {
                    profile: "fixed".into(),
                    points: vec![
                        (100, spread(100.0, 1400.0, Some(1450.0))),
                        (300, spread(110.0, 2100.0, Some(2600.0))),
                    ],
                },
            ],
        );
        insta::assert_snapshot!(svg);
    }

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_ceiling(2970.0), 5000.0);
        assert_eq!(nice_ceiling(1000.0), 1000.0);
        assert_eq!(nice_ceiling(1001.0), 2000.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
    }
}
