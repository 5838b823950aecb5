//! `junit.xml`: one test suite per profile, one test case per scenario and repetition
//! (name = scenario, classname = profile). A record that is not as expected is a
//! `<failure>` (an `<error>` when the harness or its infrastructure failed) whose message
//! is "expected <expectation>, got <verdict>" and whose text holds the witness and the
//! rerun command; a pending record is `<skipped>` with its reason.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::results::{RunRecord, RunReport};
use crate::verdict::Verdict;

use super::{ReportError, evidence_text, is_pending, not_run_label, pending_reason, unresolved};

pub fn render_junit(report: &RunReport) -> Result<String, ReportError> {
    let mut junit = Report::new(format!("chaos {}", report.run_id));
    if let Ok(started) = chrono::DateTime::parse_from_rfc3339(&report.started_at) {
        junit.set_timestamp(started);
        if let Ok(finished) = chrono::DateTime::parse_from_rfc3339(&report.finished_at)
            && let Ok(wall) = (finished - started).to_std()
        {
            junit.set_time(wall);
        }
    }
    let mut profiles: Vec<&str> = Vec::new();
    for record in &report.records {
        if !profiles.contains(&record.profile.as_str()) {
            profiles.push(&record.profile);
        }
    }
    for profile in profiles {
        let mut suite = TestSuite::new(profile);
        let mut total = Duration::ZERO;
        for record in report.records.iter().filter(|r| r.profile == profile) {
            total += Duration::from_millis(record.duration_ms);
            suite.add_test_case(test_case(record));
        }
        suite.set_time(total);
        junit.add_test_suite(suite);
    }
    junit.to_string().map_err(ReportError::Junit)
}

fn test_case(record: &RunRecord) -> TestCase {
    let status = if is_pending(record) {
        let label = not_run_label(record);
        let mut status = TestCaseStatus::skipped();
        status
            .set_type(label)
            .set_message(format!("{label}: {}", pending_reason(record)))
            .set_description(format!(
                "not run under profile {} ({label}: {}). This is not a pass.\nrerun: {}",
                record.profile,
                pending_reason(record),
                record.rerun
            ));
        status
    } else if record.as_expected {
        TestCaseStatus::success()
    } else {
        let kind = if matches!(record.verdict, Verdict::Error { .. }) {
            NonSuccessKind::Error
        } else {
            NonSuccessKind::Failure
        };
        let mut status = TestCaseStatus::non_success(kind);
        status
            .set_type(match &record.verdict {
                Verdict::Error { .. } => "harness error",
                Verdict::Inconclusive { .. } => "inconclusive",
                _ => "unexpected verdict",
            })
            .set_message(format!(
                "expected {}, got {}",
                record.expectation, record.verdict
            ))
            .set_description(evidence_text(record));
        status
    };
    let mut case = TestCase::new(record.scenario.as_str(), status);
    case.set_classname(record.profile.as_str())
        .set_time(Duration::from_millis(record.duration_ms))
        .add_properties([
            Property::new("seed", record.seed.to_string()),
            Property::new("repetition", record.repetition.to_string()),
            Property::new("expectation", record.expectation.to_string()),
            Property::new("verdict", record.verdict.to_string()),
            Property::new("rerun", record.rerun.as_str()),
        ]);
    if let Some(dir) = &record.dir {
        case.add_property(Property::new("timeline", format!("{dir}/timeline.html")));
    }
    // A reproduced violation passes, but its evidence is still worth keeping in CI.
    if record.as_expected && !is_pending(record) && unresolved(record).next().is_some() {
        case.set_system_out(evidence_text(record));
    }
    case
}

#[cfg(test)]
mod tests {
    use super::super::fixture::sample_report;
    use super::*;

    fn element_count(xml: &str, tag: &str) -> usize {
        xml.matches(&format!("<{tag}>")).count() + xml.matches(&format!("<{tag} ")).count()
    }

    /// The text from `<tag` to its closing tag (or the end of a self-closing one).
    fn element<'a>(xml: &'a str, tag: &str) -> &'a str {
        let start = xml.find(&format!("<{tag}")).expect(tag);
        let rest = &xml[start..];
        let close = format!("</{tag}>");
        let end = rest
            .find(&close)
            .map(|i| i + close.len())
            .or_else(|| rest.find("/>").map(|i| i + 2))
            .expect("element end");
        &rest[..end]
    }

    #[test]
    fn junit_has_one_suite_per_profile_and_one_case_per_record() {
        let xml = render_junit(&sample_report()).unwrap();
        assert!(xml.starts_with("<?xml"), "{xml}");
        assert_eq!(element_count(&xml, "testsuite"), 2, "{xml}");
        assert!(xml.contains("<testsuite name=\"legacy\""), "{xml}");
        assert!(xml.contains("<testsuite name=\"fixed\""), "{xml}");
        assert_eq!(element_count(&xml, "testcase"), 3, "{xml}");
        assert!(
            xml.contains("<testcase name=\"restart-during-stop\" classname=\"legacy\""),
            "{xml}"
        );
        assert!(xml.contains("time=\"9.100\""), "{xml}");
    }

    #[test]
    fn unexpected_record_fails_naming_expectation_and_verdict() {
        let xml = render_junit(&sample_report()).unwrap();
        assert_eq!(element_count(&xml, "failure"), 1, "{xml}");
        let failure = element(&xml, "failure");
        assert!(
            failure.contains("message=\"expected violates INV-STATUS-AGREES, got holds\""),
            "{failure}"
        );
        assert!(
            failure.contains(
                "INV-LEAVE-ROUTED unknown (precondition not met): no leave was published"
            ),
            "{failure}"
        );
        assert!(
            failure.contains("5000.0 ms  published  bot_commands:meeting:1"),
            "witness line: {failure}"
        );
        assert!(
            failure.contains(
                "rerun: chaos run scenarios/late-callback.toml --profile legacy --seed 7"
            ),
            "{failure}"
        );
        assert!(
            failure.contains("&lt;script&gt;"),
            "payload escaped: {failure}"
        );
    }

    #[test]
    fn pending_record_is_skipped_with_its_reason_not_passed() {
        let xml = render_junit(&sample_report()).unwrap();
        assert_eq!(element_count(&xml, "skipped"), 1, "{xml}");
        let skipped = element(&xml, "skipped");
        assert!(
            skipped.contains("pending: needs the fixed profile"),
            "{skipped}"
        );
        assert!(skipped.contains("not a pass"), "{skipped}");
    }

    #[test]
    fn reproduced_violation_passes_and_keeps_its_witness_in_system_out() {
        let xml = render_junit(&sample_report()).unwrap();
        let out = element(&xml, "system-out");
        assert!(
            out.contains("INV-NO-ACTIVE-WITHOUT-CONTAINER violated"),
            "{out}"
        );
        assert!(
            out.contains("6000.0 ms  container  die vexa-bot-1-deadbeef"),
            "{out}"
        );
    }

    #[test]
    fn harness_error_is_a_junit_error() {
        let mut report = sample_report();
        report.records[1].verdict = Verdict::Error {
            reason: "postgres did not start".into(),
        };
        let xml = render_junit(&report).unwrap();
        assert_eq!(element_count(&xml, "failure"), 0, "{xml}");
        let error = element(&xml, "error");
        assert!(
            error.contains("got error (postgres did not start)"),
            "{error}"
        );
    }

    #[test]
    fn junit_parses_back_with_the_same_cases() {
        let xml = render_junit(&sample_report()).unwrap();
        let parsed = Report::deserialize_from_str(&xml).unwrap();
        let cases: Vec<(String, String)> = parsed
            .test_suites
            .iter()
            .flat_map(|s| s.test_cases.iter())
            .map(|c| {
                (
                    c.name.as_str().to_owned(),
                    c.classname
                        .as_ref()
                        .map(|n| n.as_str().to_owned())
                        .unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            cases,
            [
                ("restart-during-stop".to_owned(), "legacy".to_owned()),
                ("late-callback".to_owned(), "legacy".to_owned()),
                ("restart-during-stop".to_owned(), "fixed".to_owned()),
            ]
        );
    }
}
