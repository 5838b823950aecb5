//! `results.json`: the run report as pretty JSON, the input of every other report and of
//! `chaos report`.

use crate::results::RunReport;

use super::ReportError;

pub fn render_results_json(report: &RunReport) -> Result<String, ReportError> {
    let mut text = serde_json::to_string_pretty(report).map_err(ReportError::Json)?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::super::fixture::sample_report;
    use super::*;

    #[test]
    fn results_json_round_trips_to_an_equal_report() {
        let report = sample_report();
        let text = render_results_json(&report).unwrap();
        let parsed: RunReport = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, report);
    }

    #[test]
    fn results_json_is_indented_for_people_reading_it() {
        let text = render_results_json(&sample_report()).unwrap();
        assert!(
            text.contains("\n  \"run_id\": \"20250101-120000-abcd\""),
            "{text}"
        );
        assert!(text.ends_with("}\n"));
    }
}
