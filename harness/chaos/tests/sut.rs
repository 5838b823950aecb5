//! The system under test as data: the reference bot-manager driven only through an
//! adapter gives the catalogue's verdicts, and a scenario an adapter cannot take is
//! reported as not applicable, never as a pass.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use chaos::engine::{self, Plan};
use chaos::verdict::Verdict;

mod support;
use support::{catalogue, chaos, root, text};

/// Runs the whole catalogue through `sut` under `profiles`; answers every run that was not
/// as expected (or not applicable), and how many runs there were.
async fn catalogue_through(sut: &str, profiles: &[&str]) -> (Vec<String>, usize) {
    let out = tempfile::tempdir().unwrap();
    let plan = Plan {
        scenarios: catalogue(),
        profiles: Some(profiles.iter().map(|p| p.to_string()).collect()),
        skip_unstated_combinations: true,
        seed: 7,
        repeat: 1,
        jobs: support::CATALOGUE_JOBS,
        out: out.path().to_owned(),
        progress: false,
        run_timeout: None,
        rerun_prefix: "chaos run".into(),
        sut: Arc::new(chaos::sut::Sut::resolve(sut).unwrap()),
        sut_dir: None,
    };
    let (report, _) = engine::execute(plan).await.unwrap();
    let unexpected = report
        .records
        .iter()
        .filter(|r| !r.as_expected || matches!(r.verdict, Verdict::NotApplicable { .. }))
        .map(|r| {
            format!(
                "{} [{}]: expected {}, got {}",
                r.scenario, r.profile, r.expectation, r.verdict
            )
        })
        .collect();
    (unexpected, report.records.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_external_gives_the_catalogues_verdicts_under_legacy_and_fixed() {
    let (unexpected, runs) = catalogue_through("reference-external", &["legacy", "fixed"]).await;
    assert!(
        unexpected.is_empty(),
        "through the adapter:\n{}",
        unexpected.join("\n")
    );
    assert_eq!(runs, 2 * catalogue().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_wire_described_in_its_adapter_gives_the_catalogues_fixed_verdicts() {
    // One catalogue judges every version of the service: the checkers read the leave and
    // the statuses on the channels the adapter's [protocol] names, not on constants.
    let (unexpected, runs) = catalogue_through("reference-later", &["fixed"]).await;
    assert!(
        unexpected.is_empty(),
        "through the later wire:\n{}",
        unexpected.join("\n")
    );
    assert_eq!(runs, catalogue().len());
}

#[test]
fn a_protocol_description_that_does_not_fit_the_service_never_passes() {
    // A service on the later wire described with the incident's channels: the checkers
    // see no status at all, and "nothing dangerous seen" must not read as a pass.
    let dir = tempfile::tempdir().unwrap();
    let later = std::fs::read_to_string(root().join("fixtures/sut/reference-later.toml")).unwrap();
    let without = &later[..later.find("\n[protocol]").expect("a [protocol] table")];
    let adapter = dir.path().join("undescribed.toml");
    std::fs::write(&adapter, without).unwrap();
    let output = chaos()
        .args(["run", "--seed", "4", "--profile", "fixed", "--sut"])
        .arg(&adapter)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg(root().join("scenarios/happy-path.toml"))
        .output()
        .unwrap();
    let stdout = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("INCONCLUSIVE happy-path [fixed]")
            && stdout.contains("`bm:meeting:1:status`")
            && stdout.contains("protocol description does not declare"),
        "{stdout}"
    );
}

/// The reference as a service without profiles whose delayed stop is a literal of its
/// code and whose runtime link is a unix socket, judged by the legacy column.
fn production_like(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("fixtures/sut/reference-external.toml"))
        .unwrap()
        .replace("expect_as = \"profile\"", "expect_as = \"legacy\"")
        .replace("profiles = true", "profiles = false")
        .replace(
            "\"{profile}\"",
            "\"legacy\", \"--delayed-stop-ms\", \"1000\"",
        )
        .replace("transport = \"tcp\"", "transport = \"unix\"")
        .replace(
            "delayed_stop_ms = { flag = \"--delayed-stop-ms\" }",
            "delayed_stop_ms = { fixed = 1000 }",
        );
    let path = dir.join("fixed-timers.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_scenario_the_service_cannot_take_is_not_applicable_and_the_rest_run() {
    // A scenario run against a service that cannot take its timers, or whose runtime
    // link cannot be faulted, would be judged on a timeline it never had.
    let dir = tempfile::tempdir().unwrap();
    let adapter = production_like(dir.path());
    let output = chaos()
        .args(["run", "--seed", "4", "--sut"])
        .arg(&adapter)
        .arg("--out")
        .arg(dir.path().join("reports"))
        .args([
            "scenarios/h1-leave-hangs.toml",
            "scenarios/net-latency-everywhere.toml",
            "scenarios/service-restart-loses-delayed-stop.toml",
        ])
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    // Its delayed stop (1000 ms) is the scenario's: h1 runs, judged by legacy's column.
    assert!(
        all.contains("PASS h1-leave-hangs [legacy] violates INV-TERMINAL"),
        "{all}"
    );
    // The latency scenario faults service:runtime, which a unix socket does not have.
    assert!(
        all.contains("net-latency-everywhere [legacy] not applicable")
            && all.contains("unix socket"),
        "{all}"
    );
    let results = std::fs::read_dir(dir.path().join("reports"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("summary.md");
    let summary = std::fs::read_to_string(results).unwrap();
    assert!(summary.contains("not applicable"), "{summary}");
}

#[test]
fn a_bad_adapter_is_refused_with_its_line_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = dir.path().join("bad.toml");
    std::fs::write(
        &adapter,
        std::fs::read_to_string(root().join("fixtures/sut/reference-external.toml"))
            .unwrap()
            .replace("{database_url}", "{databse_url}"),
    )
    .unwrap();
    let output = chaos()
        .args(["run", "--sut"])
        .arg(&adapter)
        .arg("scenarios/happy-path.toml")
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(
        all.contains(&format!("{}:", adapter.display())) && all.contains("{databse_url}"),
        "{all}"
    );
    let output = chaos()
        .args(["run", "--sut", "vexa", "scenarios/happy-path.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("reference-external"));
}

#[tokio::test]
async fn the_collectors_stand_in_records_each_session_a_bot_reports_as_production_does() {
    let db = infra::postgres::test_database().await.unwrap();
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE meetings (id serial PRIMARY KEY);
         CREATE TABLE meeting_sessions (id serial PRIMARY KEY,
           meeting_id int NOT NULL REFERENCES meetings(id), session_uid text NOT NULL,
           session_start_time timestamptz NOT NULL DEFAULT now(),
           UNIQUE (meeting_id, session_uid));
         INSERT INTO meetings DEFAULT VALUES;",
    )
    .execute(&pool)
    .await
    .unwrap();
    let standin = chaos::sut::standin::start(pool.clone()).await.unwrap();
    let url = format!("http://{}/bots/internal/session_start", standin.addr);
    let client = reqwest::Client::new();
    let report = |uid: &str, at: &str, meeting: i64| {
        client
            .post(&url)
            .json(&serde_json::json!({"meeting_id": meeting, "session_uid": uid, "session_start_time": at}))
            .send()
    };
    assert_eq!(
        report("u1", "2026-11-30T10:00:00Z", 1)
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(
        report("u2", "2026-11-30T09:00:00Z", 1)
            .await
            .unwrap()
            .status(),
        201
    );
    // The collector upserts: a reconnect under the same uid moves its start time.
    assert_eq!(
        report("u1", "2026-11-30T08:00:00Z", 1)
            .await
            .unwrap()
            .status(),
        201
    );
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT session_uid, to_char(session_start_time AT TIME ZONE 'UTC', 'HH24') \
         FROM meeting_sessions ORDER BY session_start_time",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            ("u1".to_owned(), "08".to_owned()),
            ("u2".to_owned(), "09".to_owned())
        ]
    );
    // A meeting that does not exist, or a body that is not a session: refused, nothing written.
    assert_eq!(
        report("u3", "2026-11-30T08:00:00Z", 99)
            .await
            .unwrap()
            .status(),
        422
    );
    let bad = client
        .post(&url)
        .body("{")
        .header("content-type", "application/json")
        .send();
    assert_eq!(bad.await.unwrap().status(), 422);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM meeting_sessions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 2);
}

#[test]
fn the_reference_passes_every_conformance_check_and_the_table_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let output = chaos()
        .args(["conform", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rows = stdout
        .lines()
        .filter(|l| l.starts_with("| 4 |") || l.starts_with("| 5 |"))
        .count();
    assert!(rows >= 20, "{all}");
    assert!(
        stdout.contains(&format!("{rows}/{rows} checks match")),
        "{all}"
    );
    assert!(!stdout.contains('✗'), "{all}");
}
