//! The ablation matrix (`chaos matrix`): scenarios as rows, profiles as columns, each
//! cell the verdicts of its runs against the scenario's expectation and the time the rows
//! took to converge; then what the matrix shows: which single fix closes which failure,
//! and where only fixes together do.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::timeline::esc;
use crate::results::{RunRecord, RunReport};
use crate::verdict::{Expectation, Verdict};

/// One scenario under one profile, over its repetitions.
#[derive(Debug, Clone)]
pub struct Cell<'r> {
    pub records: Vec<&'r RunRecord>,
}

impl Cell<'_> {
    pub fn expectation(&self) -> &Expectation {
        &self.records[0].expectation
    }

    /// The runs carried out and judged (not pending, not applicable).
    pub fn judged(&self) -> usize {
        self.records.iter().filter(|r| r.judged()).count()
    }

    /// The judged runs that gave what the scenario states: a run that was not carried
    /// out is neither.
    pub fn as_expected(&self) -> usize {
        self.records
            .iter()
            .filter(|r| r.judged() && r.as_expected)
            .count()
    }

    pub fn all_as_expected(&self) -> bool {
        self.as_expected() == self.judged()
    }

    pub fn all_hold(&self) -> bool {
        self.records.iter().all(|r| r.verdict == Verdict::Holds)
    }

    pub fn any_violated(&self) -> bool {
        self.records
            .iter()
            .any(|r| matches!(r.verdict, Verdict::Violated { .. }))
    }

    /// The verdicts seen, most frequent first, with their counts.
    pub fn verdicts(&self) -> Vec<(String, usize)> {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for r in &self.records {
            *counts.entry(short(&r.verdict)).or_default() += 1;
        }
        let mut seen: Vec<_> = counts.into_iter().collect();
        seen.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        seen
    }

    /// Worst-row times to converge of the runs that converged, sorted, and how many
    /// runs left a row unconverged.
    pub fn convergence(&self) -> (Vec<f64>, usize) {
        crate::results::convergence_times(self.records.iter().copied())
    }

    pub fn bound_ms(&self) -> u64 {
        self.records[0].convergence_bound_ms
    }
}

/// The value at quantile `q` (nearest rank) of sorted `values`.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let rank = (q * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

/// A verdict without its reason, invariant ids without their `INV-` prefix.
fn short(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Holds => "holds".into(),
        Verdict::Violated { invariants } => format!(
            "violates {}",
            invariants
                .iter()
                .map(|i| i.id().trim_start_matches("INV-"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Verdict::Inconclusive { .. } => "inconclusive".into(),
        Verdict::Error { .. } => "error".into(),
        Verdict::Pending { .. } => "pending".into(),
        Verdict::NotApplicable { .. } => "not applicable".into(),
    }
}

pub struct Row<'r> {
    pub scenario: String,
    pub covers: Vec<String>,
    pub cells: BTreeMap<String, Cell<'r>>,
}

pub struct Matrix<'r> {
    pub run_id: String,
    pub commit: Option<String>,
    pub profiles: Vec<String>,
    pub rows: Vec<Row<'r>>,
}

/// What the matrix shows about one scenario that fails under legacy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closure {
    /// Each of these single fixes alone makes every run hold.
    BySingle(Vec<String>),
    /// No single fix does; these combinations (or `fixed`) do.
    Together(Vec<String>),
    /// No profile run here makes it hold.
    Open,
}

impl<'r> Matrix<'r> {
    /// Columns in `profiles` order, rows in the report's scenario order.
    pub fn new(report: &'r RunReport, profiles: &[String]) -> Matrix<'r> {
        let mut rows: Vec<Row<'r>> = Vec::new();
        for record in &report.records {
            let index = match rows.iter().position(|r| r.scenario == record.scenario) {
                Some(i) => i,
                None => {
                    rows.push(Row {
                        scenario: record.scenario.clone(),
                        covers: record.covers.clone(),
                        cells: BTreeMap::new(),
                    });
                    rows.len() - 1
                }
            };
            rows[index]
                .cells
                .entry(record.profile.clone())
                .or_insert_with(|| Cell {
                    records: Vec::new(),
                })
                .records
                .push(record);
        }
        let mut columns: Vec<String> = profiles.to_vec();
        for row in &rows {
            for profile in row.cells.keys() {
                if !columns.contains(profile) {
                    columns.push(profile.clone());
                }
            }
        }
        Matrix {
            run_id: report.run_id.clone(),
            commit: report.commit.clone(),
            profiles: columns,
            rows,
        }
    }

    pub fn cells(&self) -> impl Iterator<Item = &Cell<'r>> {
        self.rows.iter().flat_map(|r| r.cells.values())
    }

    /// For a scenario whose legacy runs violate something: what closes it.
    pub fn closure(&self, row: &Row<'_>) -> Option<Closure> {
        if !row.cells.get("legacy")?.any_violated() {
            return None;
        }
        let holding: Vec<&String> = self
            .profiles
            .iter()
            .filter(|p| row.cells.get(*p).is_some_and(Cell::all_hold))
            .collect();
        let singles: Vec<String> = holding
            .iter()
            .filter(|p| crate::profiles::is_single_fix(p))
            .map(|p| (*p).clone())
            .collect();
        Some(if !singles.is_empty() {
            Closure::BySingle(singles)
        } else if holding.is_empty() {
            Closure::Open
        } else {
            Closure::Together(holding.into_iter().cloned().collect())
        })
    }

    /// Hypotheses (`H1`..) the rows cover, each with its rows.
    pub fn hypotheses(&self) -> BTreeMap<String, Vec<&Row<'r>>> {
        let mut by: BTreeMap<String, Vec<&Row<'r>>> = BTreeMap::new();
        for row in &self.rows {
            for c in &row.covers {
                if c.len() >= 2 && c.starts_with('H') && c[1..].chars().all(|d| d.is_ascii_digit())
                {
                    by.entry(c.clone()).or_default().push(row);
                }
            }
        }
        by
    }

    /// Per hypothesis: the single fixes that close every one of its failing scenarios,
    /// and those failing scenarios.
    pub fn hypothesis_findings(&self) -> Vec<(String, Vec<String>, Vec<String>)> {
        let mut out = Vec::new();
        for (h, rows) in self.hypotheses() {
            let failing: Vec<&Row<'_>> = rows
                .into_iter()
                .filter(|r| self.closure(r).is_some())
                .collect();
            let mut common: Option<BTreeSet<String>> = None;
            for row in &failing {
                let closes: BTreeSet<String> = match self.closure(row) {
                    Some(Closure::BySingle(s)) => s.into_iter().collect(),
                    _ => BTreeSet::new(),
                };
                common = Some(match common {
                    Some(c) => c.intersection(&closes).cloned().collect(),
                    None => closes,
                });
            }
            let order = |s: BTreeSet<String>| -> Vec<String> {
                self.profiles
                    .iter()
                    .filter(|p| s.contains(*p))
                    .cloned()
                    .collect()
            };
            out.push((
                h,
                order(common.unwrap_or_default()),
                failing.iter().map(|r| r.scenario.clone()).collect(),
            ));
        }
        out
    }
}

fn seconds(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

/// "1.25 s" for one run; "p50 1.2 s, p99 1.3 s" for several; "never" when a row did not
/// converge in any run; empty when no row had to end.
fn convergence_text(cell: &Cell<'_>) -> String {
    let (times, never) = cell.convergence();
    let mut parts = Vec::new();
    match times.len() {
        0 => {}
        1 => parts.push(seconds(times[0])),
        _ => parts.push(format!(
            "p50 {}, p99 {}",
            seconds(quantile(&times, 0.5).unwrap_or_default()),
            seconds(quantile(&times, 0.99).unwrap_or_default())
        )),
    }
    if never > 0 {
        parts.push(format!("never in {never}/{}", cell.records.len()));
    }
    parts.join("; ")
}

fn cell_text(cell: &Cell<'_>) -> String {
    let verdicts = cell.verdicts();
    let runs = cell.records.len();
    let verdict = if verdicts.len() == 1 {
        if runs == 1 {
            verdicts[0].0.clone()
        } else {
            format!("{} ({runs}/{runs})", verdicts[0].0)
        }
    } else {
        verdicts
            .iter()
            .map(|(v, n)| format!("{v} {n}/{runs}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mark = if cell.judged() == 0 {
        "—"
    } else if cell.all_as_expected() {
        "✓"
    } else {
        "✗"
    };
    let converge = convergence_text(cell);
    if converge.is_empty() {
        format!("{mark} {verdict}")
    } else {
        format!("{mark} {verdict} · {converge}")
    }
}

fn closure_text(closure: &Closure) -> String {
    match closure {
        Closure::BySingle(fixes) => format!(
            "closed by any one of: {}",
            fixes
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Closure::Together(profiles) => format!(
            "no single fix closes it; closed by fixes together: {}",
            profiles
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Closure::Open => "open under every profile run".into(),
    }
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\r', '\n'], " ")
}

pub fn render_matrix_md(m: &Matrix<'_>) -> String {
    let mut md = String::new();
    let cells: Vec<&Cell<'_>> = m.cells().collect();
    let runs: usize = cells.iter().map(|c| c.judged()).sum();
    let not_run: usize = cells.iter().map(|c| c.records.len() - c.judged()).sum();
    let expected: usize = cells.iter().map(|c| c.as_expected()).sum();
    let _ = writeln!(md, "# Ablation matrix `{}`\n", m.run_id);
    let _ = writeln!(
        md,
        "Commit `{}`. {} scenarios x {} profiles, {runs} runs judged: **{expected}/{runs} as the scenarios expect** ({not_run} not run: pending or not applicable, marked —).\n",
        m.commit.as_deref().unwrap_or("unknown"),
        m.rows.len(),
        m.profiles.len()
    );
    let _ = writeln!(
        md,
        "Each cell: ✓/✗ against the scenario's expectation (a single fix the scenario does not \
         name is expected to change nothing: legacy's expectation), the verdict (invariant ids \
         without `INV-`), and the time the slowest row took to end once it had to (from the \
         accepted stop or its container's end, after the last fault healed).\n"
    );
    let _ = write!(md, "| scenario |");
    for p in &m.profiles {
        let _ = write!(md, " {} |", md_cell(p));
    }
    let _ = write!(md, "\n|---|");
    for _ in &m.profiles {
        let _ = write!(md, "---|");
    }
    md.push('\n');
    for row in &m.rows {
        let _ = write!(md, "| `{}` |", row.scenario);
        for p in &m.profiles {
            let text = row.cells.get(p).map(cell_text).unwrap_or_default();
            let _ = write!(md, " {} |", md_cell(&text));
        }
        md.push('\n');
    }

    let _ = writeln!(md, "\n## What closes what\n");
    let mut any = false;
    for row in &m.rows {
        if let Some(closure) = m.closure(row) {
            any = true;
            let _ = writeln!(
                md,
                "- `{}` ({}): {}",
                row.scenario,
                row.covers.join(", "),
                closure_text(&closure)
            );
        }
    }
    if !any {
        let _ = writeln!(md, "No scenario fails under legacy in this run.");
    }
    let findings = m.hypothesis_findings();
    if !findings.is_empty() {
        let _ = writeln!(md, "\n## By hypothesis of the incident report\n");
        for (h, common, failing) in findings {
            let closes = if failing.is_empty() {
                "no scenario of it fails under legacy here".to_owned()
            } else if common.is_empty() {
                "no single fix closes all of its scenarios".to_owned()
            } else {
                format!(
                    "closed in all of its failing scenarios by any one of: {}",
                    common
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let _ = writeln!(
                md,
                "- **{h}** ({} failing under legacy: {}): {closes}.",
                failing.len(),
                failing
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }

    let unexpected: Vec<&RunRecord> = m
        .cells()
        .flat_map(|c| c.records.iter().copied())
        .filter(|r| !r.as_expected)
        .collect();
    if !unexpected.is_empty() {
        let _ = writeln!(md, "\n## Unexpected cells\n");
        for r in unexpected {
            let _ = writeln!(
                md,
                "- `{}` under `{}`: expected {}, got {}. Rerun: `{}`",
                r.scenario, r.profile, r.expectation, r.verdict, r.rerun
            );
        }
    }
    md
}

pub fn render_matrix_html(m: &Matrix<'_>) -> String {
    let mut h = String::new();
    let cells: Vec<&Cell<'_>> = m.cells().collect();
    let runs: usize = cells.iter().map(|c| c.judged()).sum();
    let expected: usize = cells.iter().map(|c| c.as_expected()).sum();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Ablation matrix {id}</title><style>\
         body{{font:13px system-ui,sans-serif;margin:1.5em}}table{{border-collapse:collapse}}\
         th,td{{border:1px solid #ccc;padding:3px 5px;vertical-align:top}}\
         th{{background:#f3f3f3;position:sticky;top:0}}td.hold{{background:#e6f4e6}}\
         td.viol{{background:#fbe3e3}}td.other{{background:#fff4d6}}td.bad{{outline:3px solid #c00;outline-offset:-3px}}\
         td small{{color:#555}}code{{background:#f5f5f5}}\
         </style></head><body><h1>Ablation matrix <code>{id}</code></h1>\
         <p>Commit <code>{commit}</code>. {rows} scenarios × {cols} profiles, {runs} runs judged: \
         <b>{expected}/{runs} as the scenarios expect</b> (runs not carried out, pending or \
         not applicable, are not counted). Green: every run holds; red: a run \
         violates an invariant; a red frame: not what the scenario expects. Time: the slowest \
         row's time to end once it had to.</p><table><tr><th>scenario</th>",
        id = esc(&m.run_id),
        commit = esc(m.commit.as_deref().unwrap_or("unknown")),
        rows = m.rows.len(),
        cols = m.profiles.len(),
    );
    for p in &m.profiles {
        let _ = write!(h, "<th>{}</th>", esc(p));
    }
    h.push_str("</tr>");
    for row in &m.rows {
        let _ = write!(
            h,
            "<tr><th style=\"text-align:left\"><code>{}</code><br><small>{}</small></th>",
            esc(&row.scenario),
            esc(&row.covers.join(", "))
        );
        for p in &m.profiles {
            let Some(cell) = row.cells.get(p) else {
                h.push_str("<td></td>");
                continue;
            };
            let class = if cell.all_hold() {
                "hold"
            } else if cell.any_violated() {
                "viol"
            } else {
                "other"
            };
            let bad = if cell.all_as_expected() { "" } else { " bad" };
            let verdicts = cell
                .verdicts()
                .iter()
                .map(|(v, n)| format!("{} {n}/{}", esc(v), cell.records.len()))
                .collect::<Vec<_>>()
                .join("<br>");
            let _ = write!(
                h,
                "<td class=\"{class}{bad}\" title=\"expected: {}\">{verdicts}<br><small>{}</small></td>",
                esc(&cell.expectation().to_string()),
                esc(&convergence_text(cell))
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("</table><h2>What closes what</h2><ul>");
    for row in &m.rows {
        if let Some(closure) = m.closure(row) {
            let _ = write!(
                h,
                "<li><code>{}</code> ({}): {}</li>",
                esc(&row.scenario),
                esc(&row.covers.join(", ")),
                esc(&closure_text(&closure).replace('`', ""))
            );
        }
    }
    h.push_str("</ul></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Invariant;
    use crate::check::convergence::Convergence;
    use std::collections::BTreeSet;

    fn record(scenario: &str, profile: &str, verdict: Verdict, expected: bool) -> RunRecord {
        let expectation = match &verdict {
            Verdict::Violated { invariants } if expected => Expectation::Violates {
                invariants: invariants.clone(),
            },
            _ => Expectation::Holds,
        };
        RunRecord {
            covers: vec!["H1".into()],
            expectation,
            as_expected: expected,
            verdict,
            convergence: Some(Convergence {
                worst_ms: Some(1250.0),
                rows: 1,
                unconverged: 0,
            }),
            convergence_bound_ms: 2700,
            ..RunRecord::sample(scenario, profile)
        }
    }

    fn violated() -> Verdict {
        Verdict::Violated {
            invariants: BTreeSet::from([Invariant::Terminal]),
        }
    }

    fn report(records: Vec<RunRecord>) -> RunReport {
        RunReport::sample(records)
    }

    fn profiles() -> Vec<String> {
        ["legacy", "reconcile", "row-locks", "fixed"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn scenario_held_by_one_single_fix_is_closed_by_it() {
        let r = report(vec![
            record("a", "legacy", violated(), true),
            record("a", "reconcile", Verdict::Holds, true),
            record("a", "row-locks", violated(), true),
            record("a", "fixed", Verdict::Holds, true),
        ]);
        let m = Matrix::new(&r, &profiles());
        assert_eq!(
            m.closure(&m.rows[0]),
            Some(Closure::BySingle(vec!["reconcile".into()]))
        );
        assert_eq!(
            m.hypothesis_findings(),
            [("H1".into(), vec!["reconcile".into()], vec!["a".into()])]
        );
    }

    #[test]
    fn scenario_no_single_fix_holds_needs_fixes_together() {
        let r = report(vec![
            record("a", "legacy", violated(), true),
            record("a", "reconcile", violated(), true),
            record("a", "fixed", Verdict::Holds, true),
        ]);
        let m = Matrix::new(&r, &profiles());
        assert_eq!(
            m.closure(&m.rows[0]),
            Some(Closure::Together(vec!["fixed".into()]))
        );
    }

    #[test]
    fn unexpected_cell_is_marked_and_listed_with_its_rerun_command() {
        let r = report(vec![
            record("a", "legacy", violated(), true),
            record("a", "reconcile", violated(), false),
        ]);
        let m = Matrix::new(&r, &profiles());
        let md = render_matrix_md(&m);
        assert!(md.contains("**1/2 as the scenarios expect**"), "{md}");
        assert!(md.contains("✗ violates TERMINAL · 1.25 s"), "{md}");
        assert!(
            md.contains("Rerun: `chaos run a --profile reconcile`"),
            "{md}"
        );
        let html = render_matrix_html(&m);
        assert!(html.contains("class=\"viol bad\""), "{html}");
    }

    #[test]
    fn quantile_is_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.5), Some(2.0));
        assert_eq!(quantile(&v, 0.99), Some(4.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
