//! `load.json` (everything, for machines), `load.md` (a table per meeting count) and
//! `load.svg` (the plot), and the one-line verdicts.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::drive::Ended;
use super::figures::{Bound, Figures, Ms, Spread};
use super::procfs::Usage;
use super::spec::StopAt;

/// How one run is judged against the bound.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// p99 within the bound, every stop accepted, nothing lost or stuck, no orphan.
    Meets,
    Misses {
        reasons: Vec<String>,
    },
    /// The run cannot be judged (meetings that did not start, stops not sent, ...).
    Inconclusive {
        reasons: Vec<String>,
    },
    /// The run did not happen as planned (the stack did not start, ...).
    Error {
        reason: String,
    },
}

impl Verdict {
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Meets => "MEETS the bound",
            Verdict::Misses { .. } => "MISSES the bound",
            Verdict::Inconclusive { .. } => "INCONCLUSIVE",
            Verdict::Error { .. } => "HARNESS ERROR",
        }
    }
}

/// Judges figures against the bound.
pub fn judge(f: &Figures, bound_ms: u64) -> Verdict {
    if !f.problems.is_empty() {
        return Verdict::Inconclusive {
            reasons: f.problems.clone(),
        };
    }
    let mut reasons = Vec::new();
    match f.converge.p99 {
        Some(Ms::At(ms)) if ms <= bound_ms as f64 => {}
        Some(p99) => reasons.push(format!(
            "p99 {p99} is past the bound {}",
            Ms::At(bound_ms as f64)
        )),
        None => reasons.push("no stop was accepted".to_owned()),
    }
    for (count, what) in [
        (f.stops_not_accepted, "stops not accepted"),
        (f.lost_stops, "lost stops"),
        (f.stuck, "stuck meetings"),
        (f.orphans, "orphan containers"),
    ] {
        if count > 0 {
            reasons.push(format!("{count} {what}"));
        }
    }
    if reasons.is_empty() {
        Verdict::Meets
    } else {
        Verdict::Misses { reasons }
    }
}

/// One run's part of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunEntry {
    pub profile: String,
    pub meetings: usize,
    pub seed: u64,
    /// The run's folder, relative to the report's.
    pub dir: PathBuf,
    pub verdict: Verdict,
    pub required: bool,
    pub figures: Option<Figures>,
    pub usage: Vec<Usage>,
    pub ended: Option<Ended>,
    pub duration_s: Option<f64>,
    /// The machine when the run began (other work shares it).
    pub machine_before: String,
}

impl RunEntry {
    /// The one-line verdict.
    pub fn line(&self, bound_ms: u64) -> String {
        let head = format!(
            "{} N={}: {}",
            self.profile,
            self.meetings,
            self.verdict.word()
        );
        let figures = self.figures.as_ref().map(|f| {
            format!(
                "p99 {} vs bound {} (p50 {}, max {}); {}/{} converged, {} within the bound; {} lost, {} stuck, {} orphans",
                show(f.converge.p99),
                Ms::At(bound_ms as f64),
                show(f.converge.p50),
                show(f.converge.max),
                f.converged,
                f.stops_accepted,
                f.within_bound,
                f.lost_stops,
                f.stuck,
                f.orphans
            )
        });
        let why = match &self.verdict {
            Verdict::Meets => None,
            Verdict::Misses { reasons } | Verdict::Inconclusive { reasons } => {
                Some(reasons.join("; "))
            }
            Verdict::Error { reason } => Some(reason.clone()),
        };
        [Some(head), figures, why]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": ")
    }
}

fn show(ms: Option<Ms>) -> String {
    ms.map_or_else(|| "-".to_owned(), |m| m.to_string())
}

/// What the run was asked, and of what machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub command: String,
    pub seed: u64,
    pub profiles: Vec<String>,
    pub required: Vec<String>,
    pub meetings: Vec<usize>,
    pub stop_at: Vec<StopAt>,
    pub bot_env: Vec<(String, String)>,
    pub bound: Bound,
    pub bound_ms: u64,
    pub pre_active_window_ms: u64,
    pub window_s: f64,
    pub request_timeout_s: f64,
    /// What bounded the run, and what was raised (printed at the start).
    pub limits: Vec<String>,
    pub cores: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadReport {
    pub run_id: String,
    pub started_at: String,
    pub finished_at: String,
    pub settings: Settings,
    pub runs: Vec<RunEntry>,
}

#[derive(Debug, thiserror::Error)]
#[error("write {path}: {source}")]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Writes `load.json`, `load.md` and `load.svg` into `dir`; answers their paths.
pub fn write(dir: &Path, report: &LoadReport) -> Result<Vec<PathBuf>, WriteError> {
    let mut written = Vec::new();
    let files = [
        (
            "load.json",
            serde_json::to_string_pretty(report).expect("the report serialises"),
        ),
        ("load.md", markdown(report)),
        ("load.svg", plot(report)),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| WriteError {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// The plot of every profile's convergence against N.
pub fn plot(report: &LoadReport) -> String {
    let series: Vec<super::svg::Series> = report
        .settings
        .profiles
        .iter()
        .map(|profile| {
            let mut points: Vec<(usize, Spread)> = report
                .runs
                .iter()
                .filter(|r| &r.profile == profile)
                .filter_map(|r| Some((r.meetings, r.figures.as_ref()?.converge)))
                .collect();
            points.sort_by_key(|(n, _)| *n);
            super::svg::Series {
                profile: profile.clone(),
                points,
            }
        })
        .collect();
    let title = format!(
        "Time to converge against meetings at once (stops {})",
        report
            .settings
            .stop_at
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    super::svg::plot(&title, report.settings.bound_ms, &series)
}

fn cell(f: Option<&Figures>, pick: impl Fn(&Figures) -> String) -> String {
    f.map_or_else(|| "-".to_owned(), pick)
}

/// `load.md`: the settings, one table per meeting count (profiles as columns), the
/// parts of the stop mix, what happened to what went wrong, the verdicts.
pub fn markdown(report: &LoadReport) -> String {
    let s = &report.settings;
    let mut md = String::new();
    let _ = writeln!(md, "# Load: {}\n", report.run_id);
    let _ = writeln!(md, "`{}`\n", s.command);
    let _ = writeln!(
        md,
        "- Started {}, finished {}, seed {}, on {} cores.",
        report.started_at, report.finished_at, s.seed, s.cores
    );
    let _ = writeln!(
        md,
        "- Stops, after each meeting's `POST /bots` was answered 201: {}.",
        s.stop_at
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        md,
        "- Bound: {}; pre-active window {} ms. What has not ended {} s past the last stop's bound is stuck.",
        s.bound, s.pre_active_window_ms, s.window_s
    );
    if !s.bot_env.is_empty() {
        let env: Vec<String> = s.bot_env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(md, "- Bots: `{}`.", env.join(" "));
    }
    for limit in &s.limits {
        let _ = writeln!(md, "- {limit}");
    }
    let _ = writeln!(md);
    let mut counts: Vec<usize> = report.runs.iter().map(|r| r.meetings).collect();
    counts.dedup();
    for n in counts {
        let runs: Vec<&RunEntry> = report.runs.iter().filter(|r| r.meetings == n).collect();
        let _ = writeln!(md, "## {n} meetings at once\n");
        let header: Vec<String> = runs.iter().map(|r| format!("`{}`", r.profile)).collect();
        let _ = writeln!(md, "| | {} |", header.join(" | "));
        let _ = writeln!(md, "|---|{}", "---|".repeat(runs.len()));
        let row = |md: &mut String, name: &str, f: &dyn Fn(&RunEntry) -> String| {
            let cells: Vec<String> = runs.iter().map(|r| f(r)).collect();
            let _ = writeln!(md, "| {name} | {} |", cells.join(" | "));
        };
        let bound = Ms::At(s.bound_ms as f64);
        row(&mut md, "verdict", &|r| r.verdict.word().to_owned());
        row(&mut md, "meetings started", &|r| {
            cell(r.figures.as_ref(), |f| {
                format!("{}/{}", f.started, f.meetings)
            })
        });
        row(
            &mut md,
            &format!("converge p50 / p99 / max (bound {bound})"),
            &|r| {
                cell(r.figures.as_ref(), |f| {
                    format!(
                        "{} / **{}** / {}",
                        show(f.converge.p50),
                        show(f.converge.p99),
                        show(f.converge.max)
                    )
                })
            },
        );
        row(&mut md, "converged within the bound", &|r| {
            cell(r.figures.as_ref(), |f| {
                format!("{}/{}", f.within_bound, f.stops_accepted)
            })
        });
        row(&mut md, "lost stops (202, never ended)", &|r| {
            cell(r.figures.as_ref(), |f| f.lost_stops.to_string())
        });
        row(&mut md, "stuck meetings (of them, bot running)", &|r| {
            cell(r.figures.as_ref(), |f| {
                format!("{} ({})", f.stuck, f.stuck_running)
            })
        });
        row(&mut md, "orphan containers", &|r| {
            cell(r.figures.as_ref(), |f| f.orphans.to_string())
        });
        row(&mut md, "stops not accepted", &|r| {
            cell(r.figures.as_ref(), |f| f.stops_not_accepted.to_string())
        });
        row(&mut md, "POST /bots p50 / p99", &|r| {
            cell(r.figures.as_ref(), |f| {
                format!(
                    "{} / {}",
                    show(f.post_latency.p50),
                    show(f.post_latency.p99)
                )
            })
        });
        row(&mut md, "DELETE p50 / p99", &|r| {
            cell(r.figures.as_ref(), |f| {
                format!(
                    "{} / {}",
                    show(f.stop_latency.p50),
                    show(f.stop_latency.p99)
                )
            })
        });
        let programs: Vec<String> = runs
            .iter()
            .flat_map(|r| r.usage.iter().map(|u| u.program.clone()))
            .fold(Vec::new(), |mut all, p| {
                if !all.contains(&p) {
                    all.push(p);
                }
                all
            });
        for program in &programs {
            row(&mut md, &format!("{program}: CPU s / peak MiB"), &|r| {
                r.usage.iter().find(|u| &u.program == program).map_or_else(
                    || "-".to_owned(),
                    |u| {
                        let cpu = u.cpu_s.map_or("-".into(), |c| format!("{c:.1}"));
                        let rss = u.peak_rss_mib.map_or("-".into(), |m| format!("{m:.0}"));
                        if u.peak_processes > 1 {
                            format!("{cpu} / {rss} ({} processes)", u.peak_processes)
                        } else {
                            format!("{cpu} / {rss}")
                        }
                    },
                )
            });
        }
        row(
            &mut md,
            "wall time (first POST to the end of watching)",
            &|r| r.duration_s.map_or("-".into(), |d| format!("{d:.1} s")),
        );
        row(&mut md, "machine at the start", &|r| {
            r.machine_before.clone()
        });
        let _ = writeln!(md);
        for r in &runs {
            let Some(f) = &r.figures else { continue };
            let _ = writeln!(md, "`{}`, by part of the stop mix:\n", r.profile);
            let _ = writeln!(
                md,
                "| stopped at | meetings | converge p50 / p99 / max | within the bound | lost |"
            );
            let _ = writeln!(md, "|---|---|---|---|---|");
            for p in &f.parts {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} / {} / {} | {}/{} | {} |",
                    p.stop_at,
                    p.meetings,
                    show(p.converge.p50),
                    show(p.converge.p99),
                    show(p.converge.max),
                    p.within_bound,
                    p.accepted,
                    p.lost_stops
                );
            }
            let at_stop: Vec<String> = f
                .status_at_stop
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect();
            let ended: Vec<String> = f.ended.iter().map(|(s, n)| format!("{s} {n}")).collect();
            let _ = writeln!(
                md,
                "\nStatus met by the stops: {}. Rows at the end: {}.\n",
                at_stop.join(", "),
                ended.join(", ")
            );
            if !f.mechanisms.is_empty() {
                let _ = writeln!(
                    md,
                    "What the history shows for each lost, stuck or orphaned one:\n"
                );
                for (m, count) in &f.mechanisms {
                    let _ = writeln!(md, "- {count} x {m}");
                }
                let _ = writeln!(md);
            }
        }
    }
    let _ = writeln!(md, "## Verdicts\n");
    for r in &report.runs {
        let required = if r.required {
            ""
        } else {
            " (measured, not required)"
        };
        let _ = writeln!(md, "- {}{required}", r.line(s.bound_ms));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> Figures {
        Figures {
            meetings: 10,
            started: 10,
            stops_sent: 10,
            stops_accepted: 10,
            stops_not_accepted: 0,
            converged: 10,
            within_bound: 10,
            converge: Spread {
                p50: Some(Ms::At(100.0)),
                p99: Some(Ms::At(2000.0)),
                max: Some(Ms::At(2000.0)),
            },
            lost_stops: 0,
            stuck: 0,
            stuck_running: 0,
            orphans: 0,
            post_latency: Spread::default(),
            stop_latency: Spread::default(),
            ended: Default::default(),
            status_at_stop: Default::default(),
            parts: Vec::new(),
            mechanisms: Default::default(),
            problems: Vec::new(),
        }
    }

    #[test]
    fn a_run_meets_the_bound_only_with_its_p99_within_and_nothing_lost_stuck_or_orphaned() {
        assert_eq!(judge(&figures(), 2700), Verdict::Meets);
        assert_eq!(
            judge(&figures(), 2000),
            Verdict::Meets,
            "at the bound is within"
        );
        let late = judge(&figures(), 1999);
        assert!(
            matches!(&late, Verdict::Misses { reasons } if reasons[0].contains("p99 2.00 s is past the bound")),
            "{late:?}"
        );
        for edit in [
            |f: &mut Figures| f.lost_stops = 1,
            |f: &mut Figures| f.stuck = 1,
            |f: &mut Figures| f.orphans = 1,
            |f: &mut Figures| f.stops_not_accepted = 1,
        ] {
            let mut f = figures();
            edit(&mut f);
            assert!(matches!(judge(&f, 2700), Verdict::Misses { .. }), "{f:?}");
        }
        let mut never = figures();
        never.converge.p99 = Some(Ms::Never);
        assert!(
            matches!(judge(&never, 2700), Verdict::Misses { reasons } if reasons[0].contains("p99 never"))
        );
    }

    #[test]
    fn a_run_with_a_problem_is_inconclusive_whatever_its_figures() {
        let mut f = figures();
        f.problems.push("only 9 of 10 meetings started".into());
        assert_eq!(
            judge(&f, 2700),
            Verdict::Inconclusive {
                reasons: vec!["only 9 of 10 meetings started".into()]
            }
        );
    }
}
