//! `signoff.md` and `signoff.html`: each criterion with its invariants, scenarios, runs
//! and verdicts, the witness of every failure, the time to converge against its bound,
//! and the commit, profile and command that reproduce the whole sign-off.

use std::fmt::Write;

use super::{CriterionEvidence, Failure, Provenance};
use crate::report::esc;
use crate::report::matrix::quantile;
use crate::results::{RunRecord, RunReport};

/// Time to converge of one scenario's runs: sorted worst-row times, runs that left a row
/// unconverged, and the bound.
struct Converge {
    times: Vec<f64>,
    never: usize,
    bound_ms: u64,
}

impl Converge {
    fn of(report: &RunReport, scenario: &str) -> Converge {
        let runs: Vec<&RunRecord> = report
            .records
            .iter()
            .filter(|r| r.scenario == scenario)
            .collect();
        let (times, never) = crate::results::convergence_times(runs.iter().copied());
        Converge {
            times,
            never,
            bound_ms: runs.first().map_or(0, |r| r.convergence_bound_ms),
        }
    }

    fn text(&self) -> String {
        let q = |q: f64| quantile(&self.times, q).map_or("-".into(), |v| format!("{v:.0}"));
        let mut text = if self.times.is_empty() {
            "no row had to end".to_owned()
        } else {
            format!("{} / {} / {} ms", q(0.5), q(0.99), q(1.0))
        };
        if self.never > 0 {
            let _ = write!(text, "; never in {} run(s)", self.never);
        }
        text
    }

    fn within(&self) -> &'static str {
        match quantile(&self.times, 0.99) {
            _ if self.never > 0 => "no",
            Some(p99) if p99 <= self.bound_ms as f64 => "yes",
            Some(_) => "no",
            None => "-",
        }
    }
}

fn verdicts(runs: &[&RunRecord]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for r in runs {
        let v = r.verdict.to_string();
        match counts.iter_mut().find(|(seen, _)| *seen == v) {
            Some((_, n)) => *n += 1,
            None => counts.push((v, 1)),
        }
    }
    counts
        .iter()
        .map(|(v, n)| format!("{v} x{n}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn witness_lines(failure: &Failure<'_>) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(check) = failure.check {
        lines.push(check.summary.clone());
        for e in &check.witness {
            let kind = serde_json::to_string(&e.kind).unwrap_or_default();
            lines.push(format!("{:>9.1} ms  {kind}", e.at_us as f64 / 1000.0));
        }
    }
    lines
}

fn headline(evidence: &[CriterionEvidence<'_>]) -> String {
    let failing: Vec<&str> = evidence
        .iter()
        .filter(|e| !e.holds())
        .map(|e| e.criterion.id.as_str())
        .collect();
    if failing.is_empty() {
        "SIGNED OFF: every criterion holds on every run".into()
    } else {
        format!("NOT SIGNED OFF: {} fail(s)", failing.join(", "))
    }
}

/// Records whose overall verdict is not the scenario's expectation, though no criterion
/// asks about the invariant involved: listed so that nothing is hidden.
fn unexpected(report: &RunReport) -> Vec<&RunRecord> {
    report.records.iter().filter(|r| !r.as_expected).collect()
}

pub fn render_signoff_md(
    evidence: &[CriterionEvidence<'_>],
    report: &RunReport,
    provenance: &Provenance,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Acceptance sign-off: the stuck-active meeting\n");
    let _ = writeln!(md, "**{}**\n", headline(evidence));
    let _ = writeln!(
        md,
        "Profile `{}`, commit `{}`, run `{}` ({} to {}), {} run(s) of each scenario, first \
         seed {}. Criteria from `{}`. Reproduce:\n\n```sh\n{}\n```\n",
        provenance.profile,
        report.commit.as_deref().unwrap_or("unknown"),
        report.run_id,
        report.started_at,
        report.finished_at,
        provenance.repeat,
        provenance.seed,
        provenance.criteria_file,
        provenance.command()
    );
    let _ = writeln!(
        md,
        "A criterion holds when each of its invariants holds, decided and with its \
         precondition met, on every run of every scenario behind it. Time to converge: the \
         slowest row's time from its obligation (the accepted stop, or its container's end) \
         to its terminal status, p50 / p99 / max over the runs, against the bound delayed \
         stop + stop grace + finalizer grace + one reconcile sweep.\n"
    );
    for e in evidence {
        let c = e.criterion;
        let _ = writeln!(
            md,
            "## {} {}: {}\n",
            c.id,
            if e.holds() { "holds" } else { "FAILS" },
            c.text
        );
        let invariants: Vec<&str> = c.invariants.iter().map(|i| i.id()).collect();
        let _ = writeln!(
            md,
            "Invariants: {}. Runs supporting it: {}/{}.\n",
            invariants.join(", "),
            e.held_runs(),
            e.runs()
        );
        let _ = writeln!(
            md,
            "| scenario | runs holding | verdicts | converge p50 / p99 / max | bound | p99 within |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|");
        for s in &e.scenarios {
            let conv = Converge::of(report, &s.scenario);
            let _ = writeln!(
                md,
                "| `{}` | {}/{} | {} | {} | {} ms | {} |",
                s.scenario,
                s.held_runs(),
                s.runs.len(),
                verdicts(&s.runs).replace('|', "\\|"),
                conv.text(),
                conv.bound_ms,
                conv.within()
            );
        }
        for s in &e.scenarios {
            if s.runs.is_empty() {
                let _ = writeln!(md, "\n`{}` did not run.", s.scenario);
            }
            for f in &s.failures {
                let _ = writeln!(
                    md,
                    "\n**`{}` run {} (seed {}): {}.** Rerun: `{}`\n",
                    s.scenario, f.record.repetition, f.record.seed, f.why, f.record.rerun
                );
                let lines = witness_lines(f);
                if !lines.is_empty() {
                    let _ = writeln!(md, "```\n{}\n```", lines.join("\n"));
                }
            }
        }
        md.push('\n');
    }
    let others = unexpected(report);
    if !others.is_empty() {
        let _ = writeln!(md, "## Runs not as their scenario expects\n");
        for r in others {
            let _ = writeln!(
                md,
                "- `{}` run {}: expected {}, got {}. Rerun: `{}`",
                r.scenario, r.repetition, r.expectation, r.verdict, r.rerun
            );
        }
    }
    md
}

pub fn render_signoff_html(
    evidence: &[CriterionEvidence<'_>],
    report: &RunReport,
    provenance: &Provenance,
) -> String {
    let mut h = String::new();
    let signed = evidence.iter().all(CriterionEvidence::holds);
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Acceptance sign-off</title><style>\
         body{{font:14px system-ui,sans-serif;margin:1.5em;max-width:70em}}\
         table{{border-collapse:collapse}}th,td{{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}}\
         .ok{{color:#1a7f1a}}.bad{{color:#b00}}.banner{{font-size:1.3em;padding:.5em;border-radius:4px}}\
         .banner.ok{{background:#e6f4e6}}.banner.bad{{background:#fbe3e3}}pre{{background:#f5f5f5;padding:.5em;overflow-x:auto}}\
         </style></head><body><h1>Acceptance sign-off: the stuck-active meeting</h1>\
         <p class=\"banner {cls}\"><b>{headline}</b></p>\
         <p>Profile <code>{profile}</code>, commit <code>{commit}</code>, run <code>{run}</code> \
         ({start} to {end}), {repeat} run(s) of each scenario, first seed {seed}. Criteria from \
         <code>{file}</code>. Reproduce:</p><pre>{command}</pre>\
         <p>A criterion holds when each of its invariants holds, decided and with its precondition \
         met, on every run of every scenario behind it. Time to converge: p50 / p99 / max of the \
         slowest row's time from its obligation to its terminal status, against the bound.</p>",
        cls = if signed { "ok" } else { "bad" },
        headline = esc(&headline(evidence)),
        profile = esc(&provenance.profile),
        commit = esc(report.commit.as_deref().unwrap_or("unknown")),
        run = esc(&report.run_id),
        start = esc(&report.started_at),
        end = esc(&report.finished_at),
        repeat = provenance.repeat,
        seed = provenance.seed,
        file = esc(&provenance.criteria_file),
        command = esc(&provenance.command()),
    );
    for e in evidence {
        let c = e.criterion;
        let (cls, word) = if e.holds() {
            ("ok", "holds")
        } else {
            ("bad", "FAILS")
        };
        let invariants: Vec<&str> = c.invariants.iter().map(|i| i.id()).collect();
        let _ = write!(
            h,
            "<h2>{id} <span class=\"{cls}\">{word}</span></h2><p>{text}</p>\
             <p>Invariants: {inv}. Runs supporting it: {held}/{runs}.</p>\
             <table><tr><th>scenario</th><th>runs holding</th><th>verdicts</th>\
             <th>converge p50 / p99 / max</th><th>bound</th><th>p99 within</th></tr>",
            id = esc(&c.id),
            text = esc(&c.text),
            inv = esc(&invariants.join(", ")),
            held = e.held_runs(),
            runs = e.runs(),
        );
        for s in &e.scenarios {
            let conv = Converge::of(report, &s.scenario);
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td>{}/{}</td><td>{}</td><td>{}</td><td>{} ms</td><td>{}</td></tr>",
                esc(&s.scenario),
                s.held_runs(),
                s.runs.len(),
                esc(&verdicts(&s.runs)),
                esc(&conv.text()),
                conv.bound_ms,
                conv.within()
            );
        }
        h.push_str("</table>");
        for s in &e.scenarios {
            if s.runs.is_empty() {
                let _ = write!(
                    h,
                    "<p class=\"bad\"><code>{}</code> did not run.</p>",
                    esc(&s.scenario)
                );
            }
            for f in &s.failures {
                let _ = write!(
                    h,
                    "<p class=\"bad\"><b><code>{}</code> run {} (seed {}): {}.</b> Rerun: <code>{}</code></p>",
                    esc(&s.scenario),
                    f.record.repetition,
                    f.record.seed,
                    esc(&f.why),
                    esc(&f.record.rerun)
                );
                let lines = witness_lines(f);
                if !lines.is_empty() {
                    let _ = write!(h, "<pre>{}</pre>", esc(&lines.join("\n")));
                }
            }
        }
    }
    let others = unexpected(report);
    if !others.is_empty() {
        h.push_str("<h2>Runs not as their scenario expects</h2><ul>");
        for r in others {
            let _ = write!(
                h,
                "<li><code>{}</code> run {}: expected {}, got {}. Rerun: <code>{}</code></li>",
                esc(&r.scenario),
                r.repetition,
                esc(&r.expectation.to_string()),
                esc(&r.verdict.to_string()),
                esc(&r.rerun)
            );
        }
        h.push_str("</ul>");
    }
    h.push_str("</body></html>\n");
    h
}
