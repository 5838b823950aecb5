//! `summary.md`: counts first, then a table scenario x profile x verdict with the
//! expectation, then the evidence of every unexpected record (witness and rerun command),
//! the reproduced violations, and the pending records listed as such: pending is never
//! shown as a pass.

use std::fmt::Write as _;

use crate::results::{RunRecord, RunReport};
use crate::verdict::Verdict;

use super::{event_line, is_pending, not_run_label, pending_reason, unresolved, violations};
use crate::check::Outcome;

pub fn render_summary(report: &RunReport) -> String {
    let records = &report.records;
    let pending: Vec<&RunRecord> = records.iter().filter(|r| is_pending(r)).collect();
    let unexpected: Vec<&RunRecord> = records.iter().filter(|r| !r.as_expected).collect();
    let errors = records
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Error { .. }))
        .count();
    let inconclusive = records
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Inconclusive { .. }))
        .count();
    let passed = records.len() - pending.len() - unexpected.len();
    let reproduced: Vec<&RunRecord> = records
        .iter()
        .filter(|r| r.as_expected && matches!(r.verdict, Verdict::Violated { .. }))
        .collect();

    let mut md = String::new();
    let _ = writeln!(md, "# Chaos run `{}`\n", report.run_id);
    let _ = write!(
        md,
        "Started {}, finished {}",
        text(&report.started_at),
        text(&report.finished_at)
    );
    if let Some(commit) = &report.commit {
        let _ = write!(md, ", commit `{}`", commit.replace('`', "'"));
    }
    md.push_str(".\n\n");
    let _ = writeln!(
        md,
        "**{} records: {passed} as expected ({} reproducing the expected violation), {} not as expected ({inconclusive} inconclusive, {errors} harness or infra errors), {} pending or not applicable (not run, not counted as passed).** Exit code {}.\n",
        records.len(),
        reproduced.len(),
        unexpected.len(),
        pending.len(),
        report.exit_code()
    );

    let rates = crate::stats::rates(report);
    if !rates.is_empty() {
        md.push_str(
            "## Rates over the repetitions\n\nOf the runs judged of each scenario and profile: how many were as expected, and how many violated an invariant (reproduced the failure), each with its 95% Wilson score interval.\n\n",
        );
        md.push_str("| Scenario | Profile | Expectation | As expected | Violated |\n");
        md.push_str("|---|---|---|---|---|\n");
        for c in &rates {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                cell(&c.scenario),
                cell(&c.profile),
                cell(&c.expectation),
                c.as_expected,
                c.violated
            );
        }
        md.push_str("\n## Runs\n\n");
    }
    md.push_str(
        "| Scenario | Profile | Rep | Seed | Expectation | Verdict | Result | Timeline |\n",
    );
    md.push_str("|---|---|---|---|---|---|---|---|\n");
    for r in records {
        let result = if is_pending(r) {
            format!("⏸ {} (not run)", not_run_label(r))
        } else if r.as_expected {
            "✓ as expected".to_owned()
        } else {
            match r.verdict {
                Verdict::Inconclusive { .. } => "✗ inconclusive",
                Verdict::Error { .. } => "✗ harness error",
                _ => "✗ unexpected",
            }
            .to_owned()
        };
        let timeline = match &r.dir {
            Some(dir) => format!("[timeline]({})", link(&format!("{dir}/timeline.html"))),
            None => "—".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {result} | {timeline} |",
            cell(&r.scenario),
            cell(&r.profile),
            r.repetition,
            r.seed,
            cell(&r.expectation.to_string()),
            cell(&short_verdict(&r.verdict)),
        );
    }

    let _ = writeln!(md, "\n## Unexpected verdicts ({})\n", unexpected.len());
    if unexpected.is_empty() {
        md.push_str("None: every record that ran gave the expected verdict.\n");
    }
    for r in &unexpected {
        let _ = writeln!(md, "### ✗ {}\n", title(r));
        if !r.description.is_empty() {
            let _ = writeln!(md, "{}\n", text(&r.description));
        }
        let _ = writeln!(md, "- Expected: {}", text(&r.expectation.to_string()));
        let _ = writeln!(md, "- Got: {}", text(&r.verdict.to_string()));
        if let Some(dir) = &r.dir {
            let _ = writeln!(
                md,
                "- Timeline: [{dir}/timeline.html]({})",
                link(&format!("{dir}/timeline.html"))
            );
        }
        md.push('\n');
        problems_section(&mut md, r);
        checks_section(&mut md, r);
        let _ = writeln!(md, "Rerun:\n\n{}", fenced("sh", &r.rerun));
    }

    let _ = writeln!(md, "## Reproduced violations ({})\n", reproduced.len());
    if reproduced.is_empty() {
        md.push_str("None.\n\n");
    }
    for r in &reproduced {
        let _ = writeln!(md, "### ✓ {}\n", title(r));
        checks_section(&mut md, r);
        let _ = writeln!(md, "Rerun:\n\n{}", fenced("sh", &r.rerun));
    }

    let _ = writeln!(
        md,
        "## Pending or not applicable ({}): not run, not passed\n",
        pending.len()
    );
    if pending.is_empty() {
        md.push_str("None: every scenario ran under every profile asked for.\n");
    }
    for r in &pending {
        let _ = writeln!(
            md,
            "- ⏸ **{}** under **{}** (repetition {}, seed {}), {}: {}",
            text(&r.scenario),
            text(&r.profile),
            r.repetition,
            r.seed,
            not_run_label(r),
            text(&pending_reason(r))
        );
    }
    md
}

/// Why the run is inconclusive: steps that did not happen, failed heals, recording gaps.
fn problems_section(md: &mut String, r: &RunRecord) {
    if r.problems.is_empty() {
        return;
    }
    md.push_str("Why the run proves nothing (inconclusive):\n\n");
    for p in &r.problems {
        let _ = writeln!(md, "- {}", text(p));
    }
    md.push('\n');
}

/// Each check that did not hold, and every violated case with its own witness events
/// in a code block.
fn checks_section(md: &mut String, r: &RunRecord) {
    for check in unresolved(r) {
        let cases = violations(check);
        let _ = writeln!(
            md,
            "**{}** {} (precondition {}){}\n",
            check.invariant,
            check.outcome,
            if check.precondition_met {
                "met"
            } else {
                "not met"
            },
            if check.outcome == Outcome::Violated {
                if cases.len() > 1 {
                    format!(", {} cases:", cases.len())
                } else {
                    ":".into()
                }
            } else {
                format!(": {}", text(&check.summary))
            }
        );
        if check.outcome != Outcome::Violated {
            if !check.witness.is_empty() {
                let lines: Vec<String> = check.witness.iter().map(event_line).collect();
                let _ = writeln!(md, "{}", fenced("text", &lines.join("\n")));
            }
            continue;
        }
        for (case, witness) in cases {
            let _ = writeln!(md, "- {}\n", text(case));
            if !witness.is_empty() {
                let lines: Vec<String> = witness.iter().map(event_line).collect();
                let _ = writeln!(md, "{}", fenced("text", &lines.join("\n")));
            }
        }
    }
}

fn title(r: &RunRecord) -> String {
    format!(
        "{} under {} (repetition {}, seed {})",
        text(&r.scenario),
        text(&r.profile),
        r.repetition,
        r.seed
    )
}

/// The verdict without its reason (the reason is in the sections below the table).
fn short_verdict(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Violated { .. } | Verdict::Holds => verdict.to_string(),
        Verdict::Inconclusive { .. } => "inconclusive".into(),
        Verdict::Error { .. } => "harness error".into(),
        Verdict::Pending { .. } => "pending".into(),
        Verdict::NotApplicable { .. } => "not applicable".into(),
    }
}

/// Prose: no raw HTML, on one line.
fn text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\r', '\n'], " ")
}

/// A table cell: prose without pipes.
fn cell(s: &str) -> String {
    text(s).replace('|', "\\|")
}

/// A relative link target: spaces and parentheses would end it early.
fn link(target: &str) -> String {
    target
        .replace(' ', "%20")
        .replace('(', "%28")
        .replace(')', "%29")
}

/// A fenced code block whose fence is longer than any run of backticks inside.
fn fenced(lang: &str, body: &str) -> String {
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}{lang}\n{}\n{fence}\n", body.trim_end())
}

#[cfg(test)]
mod tests {
    use super::super::fixture::sample_report;
    use super::*;

    #[test]
    fn summary_starts_with_the_counts() {
        let md = render_summary(&sample_report());
        let counts = md.lines().find(|l| l.starts_with("**")).unwrap();
        assert!(counts.contains("3 records: 1 as expected"), "{counts}");
        assert!(
            counts.contains("1 not as expected (0 inconclusive, 0 harness or infra errors)"),
            "{counts}"
        );
        assert!(
            counts.contains("1 pending or not applicable (not run, not counted as passed)"),
            "{counts}"
        );
        assert!(md.find(counts).unwrap() < md.find("| Scenario |").unwrap());
    }

    #[test]
    fn summary_table_has_a_row_per_record_with_expectation_and_result() {
        let md = render_summary(&sample_report());
        assert!(md.contains("| restart-during-stop | legacy | 1 | 42 | violates INV-NO-ACTIVE-WITHOUT-CONTAINER | violates INV-NO-ACTIVE-WITHOUT-CONTAINER | ✓ as expected | [timeline](restart-during-stop/legacy-1/timeline.html) |"), "{md}");
        assert!(md.contains("| late-callback | legacy | 1 | 7 | violates INV-STATUS-AGREES | holds | ✗ unexpected |"), "{md}");
        assert!(md.contains("| restart-during-stop | fixed | 1 | 42 | pending: needs the fixed profile | pending | ⏸ pending (not run) | — |"), "{md}");
    }

    #[test]
    fn pending_rows_never_carry_a_pass_mark() {
        let md = render_summary(&sample_report());
        let row = md.lines().find(|l| l.contains("| fixed |")).unwrap();
        assert!(!row.contains('✓'), "{row}");
    }

    #[test]
    fn unexpected_record_has_its_witness_and_rerun_command() {
        let md = render_summary(&sample_report());
        let start = md.find("## Unexpected verdicts (1)").unwrap();
        let end = md.find("## Reproduced violations").unwrap();
        let section = &md[start..end];
        assert!(
            section.contains("### ✗ late-callback under legacy (repetition 1, seed 7)"),
            "{section}"
        );
        assert!(
            section.contains("- Expected: violates INV-STATUS-AGREES"),
            "{section}"
        );
        assert!(section.contains("- Got: holds"), "{section}");
        assert!(
            section.contains(
                "**INV-LEAVE-ROUTED** unknown (precondition not met): no leave was published"
            ),
            "{section}"
        );
        assert!(
            section.contains("```text\n5000.0 ms  published  bot_commands:meeting:1"),
            "{section}"
        );
        assert!(
            section.contains(
                "```sh\nchaos run scenarios/late-callback.toml --profile legacy --seed 7\n```"
            ),
            "{section}"
        );
        assert!(
            section.contains("A late | duplicated callback &lt;b&gt;after&lt;/b&gt; completion."),
            "{section}"
        );
    }

    #[test]
    fn reproduced_violation_shows_its_witness() {
        let md = render_summary(&sample_report());
        let start = md.find("## Reproduced violations (1)").unwrap();
        let section = &md[start..md.find("## Pending or not applicable").unwrap()];
        assert!(
            section.contains("6000.0 ms  container  die vexa-bot-1-deadbeef"),
            "{section}"
        );
    }

    #[test]
    fn pending_section_lists_each_pending_record_with_its_reason() {
        let md = render_summary(&sample_report());
        let section = &md[md
            .find("## Pending or not applicable (1): not run, not passed")
            .unwrap()..];
        assert!(section.contains("- ⏸ **restart-during-stop** under **fixed** (repetition 1, seed 42), pending: needs the fixed profile"), "{section}");
    }

    #[test]
    fn table_cells_escape_pipes_and_markup() {
        assert_eq!(cell("a | <b>\nc"), "a \\| &lt;b&gt; c");
    }

    #[test]
    fn code_fences_outgrow_backticks_inside() {
        assert_eq!(fenced("sh", "a ``` b"), "````sh\na ``` b\n````\n");
    }

    #[test]
    fn repeated_runs_read_as_rates_with_their_interval_before_the_runs() {
        let mut report = sample_report();
        for rep in 2..=4 {
            let mut again = report.records[0].clone();
            again.repetition = rep;
            if rep == 4 {
                again.verdict = Verdict::Holds;
                again.as_expected = false;
            }
            report.records.push(again);
        }
        let md = render_summary(&report);
        let rates = md
            .find("## Rates over the repetitions")
            .expect("rates section");
        assert!(rates < md.find("| Scenario | Profile | Rep |").unwrap());
        assert!(md.contains("| restart-during-stop | legacy | violates INV-NO-ACTIVE-WITHOUT-CONTAINER | 3/4 (75%, 95% CI 30-95%) | 3/4 (75%, 95% CI 30-95%) |"), "{md}");
    }

    #[test]
    fn single_runs_have_no_rates_section() {
        assert!(!render_summary(&sample_report()).contains("## Rates"));
    }
}
