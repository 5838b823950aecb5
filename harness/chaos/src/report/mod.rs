//! The reports of a run, written into its folder (`reports/<run-id>/`):
//!
//! - `results.json`: the [`RunReport`] itself, pretty JSON;
//! - `junit.xml`: one test suite per profile, one test case per scenario and repetition,
//!   the witness and the rerun command in each failure;
//! - `summary.md`: counts, a table scenario x profile x verdict with the expectation, the
//!   evidence of every unexpected record, and the pending records listed as such;
//! - `<record dir>/timeline.html` for every record that ran: a self-contained page (no
//!   network, no script): a message sequence chart, a lane per actor and every message an
//!   arrow, fault periods and the service's down periods as bars, the violating events marked.
//!
//! Every file is written to a temporary name in its folder and renamed into place, so a
//! reader never sees a half-written report.

mod json;
mod junit;
mod markdown;
pub mod matrix;
pub(crate) mod timeline;

#[cfg(test)]
mod fixture;

use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use crate::check::{CheckResult, Outcome};
use crate::history::{Event, EventKind, History, HttpPhase};
use crate::results::{RunRecord, RunReport};
use crate::verdict::Verdict;

pub use json::render_results_json;
pub use junit::render_junit;
pub use markdown::render_summary;
pub(crate) use timeline::esc;
pub use timeline::render_timeline;

/// Why writing the reports failed; each message reads after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("create folder {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("serialise results.json: {0}")]
    Json(#[source] serde_json::Error),
    #[error("serialise junit.xml: {0}")]
    Junit(#[source] quick_junit::SerializeError),
    #[error(
        "place the timeline of {scenario} under {profile}: record folder {dir:?} is not a relative path inside the run folder"
    )]
    RecordDir {
        scenario: String,
        profile: String,
        dir: String,
    },
}

/// Writes every report of `report` into `run_dir` (which must exist) and returns the
/// paths written. `histories` gives the history of a record that ran (`dir` is `Some`);
/// a record whose history is missing still gets a timeline page that says so.
pub fn write_all(
    run_dir: &Path,
    report: &RunReport,
    histories: &dyn Fn(&RunRecord) -> Option<History>,
) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = write_summaries(run_dir, report)?;
    for record in &report.records {
        let Some(dir) = &record.dir else { continue };
        let folder = record_folder(run_dir, record, dir)?;
        std::fs::create_dir_all(&folder).map_err(|source| ReportError::CreateDir {
            path: folder.clone(),
            source,
        })?;
        let history = histories(record);
        let html = render_timeline(record, history.as_ref());
        written.push(write_atomic(
            &folder.join("timeline.html"),
            html.as_bytes(),
        )?);
    }
    Ok(written)
}

/// Writes the reports of the run as a whole (`results.json`, `junit.xml`, `summary.md`)
/// into `run_dir`, not the records' timelines; answers the paths written.
pub fn write_summaries(run_dir: &Path, report: &RunReport) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();
    let results = render_results_json(report)?;
    written.push(write_atomic(
        &run_dir.join("results.json"),
        results.as_bytes(),
    )?);
    let junit = render_junit(report)?;
    written.push(write_atomic(&run_dir.join("junit.xml"), junit.as_bytes())?);
    let summary = render_summary(report);
    written.push(write_atomic(
        &run_dir.join("summary.md"),
        summary.as_bytes(),
    )?);
    Ok(written)
}

/// `run_dir/dir`, refusing anything that would land outside the run folder.
/// Writes `matrix.md` and `matrix.html` into the run folder; answers their paths.
pub fn write_matrix(
    run_dir: &Path,
    report: &RunReport,
    profiles: &[String],
) -> Result<Vec<PathBuf>, ReportError> {
    let m = matrix::Matrix::new(report, profiles);
    Ok(vec![
        write_atomic(
            &run_dir.join("matrix.md"),
            matrix::render_matrix_md(&m).as_bytes(),
        )?,
        write_atomic(
            &run_dir.join("matrix.html"),
            matrix::render_matrix_html(&m).as_bytes(),
        )?,
    ])
}

pub(crate) fn record_folder(
    run_dir: &Path,
    record: &RunRecord,
    dir: &str,
) -> Result<PathBuf, ReportError> {
    let relative = Path::new(dir);
    let inside = !dir.is_empty()
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if inside {
        Ok(run_dir.join(relative))
    } else {
        Err(ReportError::RecordDir {
            scenario: record.scenario.clone(),
            profile: record.profile.clone(),
            dir: dir.to_owned(),
        })
    }
}

/// Writes `bytes` to a temporary file next to `path`, flushes it to disk and renames it
/// over `path`: readers see the old file or the whole new one, never a part.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<PathBuf, ReportError> {
    let err = |source| ReportError::Write {
        path: path.to_owned(),
        source,
    };
    let folder = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".report-")
        .suffix(".tmp")
        .tempfile_in(folder)
        .map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(err)?;
    }
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(path.to_owned())
}

/// A record that was not run because its scenario marks the profile pending (and that is
/// what the scenario expected). Never counted as a pass.
pub(crate) fn is_pending(record: &RunRecord) -> bool {
    record.as_expected && !record.judged()
}

/// Why a record that was not run was not: `pending` (the scenario says so) or `not
/// applicable` (the system under test lacks what the scenario needs).
pub(crate) fn not_run_label(record: &RunRecord) -> &'static str {
    match record.verdict {
        Verdict::NotApplicable { .. } => "not applicable",
        _ => "pending",
    }
}

/// Why a pending record was not run.
pub(crate) fn pending_reason(record: &RunRecord) -> String {
    match (&record.verdict, &record.expectation) {
        (Verdict::Pending { reason }, _) => reason.clone(),
        (Verdict::NotApplicable { reason }, _) => reason.clone(),
        (_, crate::verdict::Expectation::Pending { reason }) => reason.clone(),
        _ => String::new(),
    }
}

/// The checks that did not hold: violated or undecided.
pub(crate) fn unresolved(record: &RunRecord) -> impl Iterator<Item = &CheckResult> {
    record.checks.iter().filter(|c| c.outcome != Outcome::Holds)
}

/// Every violated case of a check, each with its own witness (a record stored before
/// checks kept them all has its one summary and witness); none when it did not fail.
pub(crate) fn violations(check: &CheckResult) -> Vec<(&str, &[Event])> {
    if check.outcome != Outcome::Violated {
        Vec::new()
    } else if check.violations.is_empty() {
        vec![(check.summary.as_str(), check.witness.as_slice())]
    } else {
        check
            .violations
            .iter()
            .map(|v| (v.text.as_str(), v.witness.as_slice()))
            .collect()
    }
}

/// Microseconds as milliseconds since the run started, e.g. `1234.5`.
pub(crate) fn fmt_ms(at_us: i64) -> String {
    format!("{:.1}", at_us as f64 / 1000.0)
}

/// One line for an event: time in ms, type, key fields and its sequence number.
pub(crate) fn event_line(event: &Event) -> String {
    format!(
        "{} ms  {}  {}  [seq {}]",
        fmt_ms(event.at_us),
        event.kind.name(),
        key_fields(&event.kind),
        event.seq
    )
}

/// A compact rendering of a JSON value, cut to `max` characters.
fn compact(value: &Value, max: usize) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    truncate(&text, max)
}

pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The few fields that identify an event, on one line.
pub(crate) fn key_fields(kind: &EventKind) -> String {
    let mut parts: Vec<String> = Vec::new();
    match kind {
        EventKind::RunStarted {
            scenario,
            profile,
            seed,
            meetings,
            ..
        } => {
            parts.push(format!("scenario={scenario} profile={profile} seed={seed}"));
            if !meetings.is_empty() {
                let labels: Vec<String> = meetings
                    .iter()
                    .map(|m| format!("{}={}/{}", m.label, m.platform, m.native_meeting_id))
                    .collect();
                parts.push(format!("meetings={}", labels.join(",")));
            }
        }
        EventKind::Step {
            name,
            action,
            meeting,
            outcome,
        } => {
            parts.push(format!("{name}: {action}"));
            if let Some(m) = meeting {
                parts.push(format!("meeting={m}"));
            }
            parts.push(format!("outcome={outcome}"));
        }
        EventKind::Http {
            op,
            phase,
            method,
            path,
            meeting,
            status,
            body: _,
            error,
            by,
        } => {
            let phase = match phase {
                HttpPhase::Invoke => "invoke",
                HttpPhase::Ok => "ok",
                HttpPhase::Fail => "fail",
                HttpPhase::Info => "info (outcome unknown)",
            };
            parts.push(format!("op={op} {phase} {method} {path}"));
            if let Some(m) = meeting {
                parts.push(format!("meeting={m}"));
            }
            if let Some(by) = by {
                parts.push(format!("by={by}"));
            }
            if let Some(s) = status {
                parts.push(format!("status={s}"));
            }
            if let Some(e) = error {
                parts.push(format!("error={}", truncate(e, 120)));
            }
        }
        EventKind::Published { channel, payload } => {
            parts.push(format!("{channel} {}", compact(payload, 160)));
        }
        EventKind::RecorderGap { source, detail } => {
            parts.push(format!("{source}: {}", truncate(detail, 160)));
        }
        EventKind::MeetingInserted {
            meeting_id,
            platform,
            native_meeting_id,
            status,
        } => {
            parts.push(format!(
                "meeting {meeting_id} {platform}/{native_meeting_id} status={status}"
            ));
        }
        EventKind::StatusStored {
            meeting_id,
            from,
            to,
            audit_len,
            completion_reason,
            failure_stage,
            stop_requested,
            ..
        } => {
            parts.push(format!("meeting {meeting_id}: {from} -> {to}"));
            if let Some(r) = completion_reason {
                parts.push(format!("reason={r}"));
            }
            if let Some(s) = failure_stage {
                parts.push(format!("stage={s}"));
            }
            if *stop_requested {
                parts.push("stop_requested".into());
            }
            parts.push(format!("audit_len={audit_len}"));
        }
        EventKind::MeetingUpdated {
            meeting_id,
            status,
            audit_len,
            stop_requested,
            bot_container_id,
        } => {
            parts.push(format!("meeting {meeting_id} status={status}"));
            if let Some(c) = bot_container_id {
                parts.push(format!("container={}", truncate(c, 12)));
            }
            if *stop_requested {
                parts.push("stop_requested".into());
            }
            parts.push(format!("audit_len={audit_len}"));
        }
        EventKind::RowDeleted {
            table,
            meeting_id,
            detail,
        } => {
            parts.push(format!(
                "{table} meeting {meeting_id} {}",
                compact(detail, 120)
            ));
        }
        EventKind::SessionStored {
            meeting_id,
            session_uid,
            session_start_time,
        } => {
            parts.push(format!(
                "meeting {meeting_id} uid={session_uid} start={session_start_time}"
            ));
        }
        EventKind::Container {
            action,
            container_id,
            name,
            meeting_id,
            exit_code,
        } => {
            parts.push(format!("{action} {name} ({})", truncate(container_id, 12)));
            if let Some(m) = meeting_id {
                parts.push(format!("meeting={m}"));
            }
            if let Some(c) = exit_code {
                parts.push(format!("exit={c}"));
            }
        }
        EventKind::Bot {
            container,
            meeting_id,
            uid,
            event,
            fields,
        } => {
            parts.push(format!("{event} from {container}"));
            if let Some(m) = meeting_id {
                parts.push(format!("meeting={m}"));
            }
            if let Some(u) = uid {
                parts.push(format!("uid={u}"));
            }
            if !fields.is_null() && fields.as_object().is_none_or(|o| !o.is_empty()) {
                parts.push(compact(fields, 120));
            }
        }
        EventKind::Fault {
            name,
            phase,
            target,
            detail,
        } => {
            let phase = match phase {
                crate::history::FaultPhase::Applied => "applied",
                crate::history::FaultPhase::Healed => "healed",
            };
            parts.push(format!("{name} {phase} on {target}"));
            if !detail.is_null() && detail.as_object().is_none_or(|o| !o.is_empty()) {
                parts.push(compact(detail, 120));
            }
        }
        EventKind::Final(state) => {
            let meetings: Vec<String> = state
                .meetings
                .iter()
                .map(|m| format!("{}={}", m.id, m.status))
                .collect();
            let running = state
                .containers
                .iter()
                .filter(|c| c.state == "running" || c.state == "paused")
                .count();
            parts.push(format!(
                "meetings [{}], {} sessions, {} containers ({running} running or paused)",
                meetings.join(", "),
                state.sessions.len(),
                state.containers.len()
            ));
        }
    }
    parts.join(" ")
}

/// The evidence of a record, as plain text: each check that did not hold with its
/// witness events (one per line), then the rerun command.
pub(crate) fn evidence_text(record: &RunRecord) -> String {
    let mut out = format!(
        "{} under {}, seed {}, repetition {}: expected {}, got {}\n",
        record.scenario,
        record.profile,
        record.seed,
        record.repetition,
        record.expectation,
        record.verdict
    );
    if !record.description.is_empty() {
        out.push_str(&record.description);
        out.push('\n');
    }
    if !record.problems.is_empty() {
        out.push_str("\nwhy the run proves nothing (inconclusive):\n");
        for p in &record.problems {
            out.push_str(&format!("  {p}\n"));
        }
    }
    for check in unresolved(record) {
        out.push('\n');
        let head = format!(
            "{} {} (precondition {})",
            check.invariant,
            check.outcome,
            if check.precondition_met {
                "met"
            } else {
                "not met"
            }
        );
        if check.outcome != Outcome::Violated {
            out.push_str(&format!("{head}: {}\n", check.summary));
            for event in &check.witness {
                out.push_str(&format!("    {}\n", event_line(event)));
            }
            continue;
        }
        let cases = violations(check);
        if cases.len() > 1 {
            out.push_str(&format!("{head}, {} cases:\n", cases.len()));
        } else {
            out.push_str(&format!("{head}:\n"));
        }
        for (text, witness) in cases {
            out.push_str(&format!("  {text}\n"));
            if witness.is_empty() {
                out.push_str("    no witness events\n");
            } else {
                out.push_str("    witness:\n");
                for event in witness {
                    out.push_str(&format!("      {}\n", event_line(event)));
                }
            }
        }
    }
    out.push_str(&format!("\nrerun: {}\n", record.rerun));
    out
}

#[cfg(test)]
mod tests {
    use super::fixture::{sample_history, sample_report};
    use super::*;

    #[test]
    fn write_all_writes_every_report_and_a_timeline_per_record_that_ran() {
        let dir = tempfile::tempdir().unwrap();
        let report = sample_report();
        let written = write_all(dir.path(), &report, &|_| Some(sample_history())).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "results.json",
                "junit.xml",
                "summary.md",
                "restart-during-stop/legacy-1/timeline.html",
                "late-callback/legacy-1/timeline.html",
            ]
        );
        for path in &written {
            assert!(path.is_file(), "{}", path.display());
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        // For looking at the output: copies the reports to that folder.
        if let Some(out) = std::env::var_os("CHAOS_SAVE_SAMPLE_REPORTS") {
            let out = std::path::PathBuf::from(out);
            std::fs::create_dir_all(&out).unwrap();
            for (path, name) in written.iter().zip(&names) {
                std::fs::copy(path, out.join(name.replace('/', "-"))).unwrap();
            }
        }
    }

    #[test]
    fn results_json_on_disk_reads_back_as_the_same_report() {
        let dir = tempfile::tempdir().unwrap();
        let report = sample_report();
        write_all(dir.path(), &report, &|_| None).unwrap();
        let text = std::fs::read_to_string(dir.path().join("results.json")).unwrap();
        let parsed: RunReport = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, report);
    }

    #[test]
    fn missing_history_still_gets_a_timeline_that_says_so() {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path(), &sample_report(), &|_| None).unwrap();
        let html = std::fs::read_to_string(dir.path().join("late-callback/legacy-1/timeline.html"))
            .unwrap();
        assert!(html.contains("No history was recorded"), "{html}");
    }

    #[test]
    fn unwritable_run_folder_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-folder");
        let err = write_all(&missing, &sample_report(), &|_| None).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("write "), "{text}");
        assert!(text.contains("no-such-folder/results.json"), "{text}");
    }

    #[test]
    fn record_folder_outside_the_run_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../escape", "/abs/olute", ""] {
            let mut report = sample_report();
            report.records[0].dir = Some(bad.into());
            let err = write_all(dir.path(), &report, &|_| None).unwrap_err();
            assert!(
                matches!(err, ReportError::RecordDir { .. }),
                "{bad:?}: {err}"
            );
            assert!(err.to_string().contains("restart-during-stop"), "{err}");
        }
    }

    #[test]
    fn rewriting_replaces_the_previous_reports_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = sample_report();
        write_all(dir.path(), &report, &|_| None).unwrap();
        report.run_id = "second".into();
        write_all(dir.path(), &report, &|_| None).unwrap();
        let text = std::fs::read_to_string(dir.path().join("results.json")).unwrap();
        let parsed: RunReport = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed.run_id, "second");
    }

    #[test]
    fn event_lines_give_time_in_ms_type_and_key_fields() {
        let history = sample_history();
        let stored = history
            .events
            .iter()
            .find(|e| e.kind.name() == "status_stored")
            .unwrap();
        let line = event_line(stored);
        assert!(
            line.starts_with("5400.0 ms  status_stored  meeting 1: active -> stopping"),
            "{line}"
        );
        assert!(line.ends_with("[seq 9]"), "{line}");
    }

    #[test]
    fn truncation_respects_character_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hé", 5), "hé");
    }
}
