//! `results.json`: the run report as pretty JSON, the input of every other report and of
//! `chaos report`; with `rates`, what the repetitions of each scenario and profile gave
//! (derived from the records, so ignored when read back).

use crate::results::RunReport;
use crate::stats::CellRates;

use super::ReportError;

#[derive(serde::Serialize)]
struct WithRates<'r> {
    #[serde(flatten)]
    report: &'r RunReport,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rates: Vec<CellRates>,
}

pub fn render_results_json(report: &RunReport) -> Result<String, ReportError> {
    let with_rates = WithRates {
        report,
        rates: crate::stats::rates(report),
    };
    let mut text = serde_json::to_string_pretty(&with_rates).map_err(ReportError::Json)?;
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

    #[test]
    fn repeated_runs_carry_their_rates_and_still_read_back_as_the_report() {
        let mut report = sample_report();
        let mut again = report.records[0].clone();
        again.repetition = 2;
        report.records.push(again);
        let text = render_results_json(&report).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let rates = json["rates"].as_array().expect("rates");
        assert_eq!(rates.len(), 1, "{text}");
        assert_eq!(rates[0]["scenario"], "restart-during-stop");
        assert_eq!(rates[0]["violated"]["hits"], 2);
        assert_eq!(rates[0]["violated"]["trials"], 2);
        assert!(rates[0]["violated"]["ci95_low"].as_f64().unwrap() > 0.0);
        let parsed: RunReport = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, report);
    }

    #[test]
    fn single_runs_have_no_rates() {
        let text = render_results_json(&sample_report()).unwrap();
        assert!(!text.contains("\"rates\""), "{text}");
    }
}
