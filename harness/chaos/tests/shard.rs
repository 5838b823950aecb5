//! One plan on several machines: `chaos run --partition K/N` runs shard K, and `chaos
//! merge` joins the shards' run folders into the report of the whole plan.

use std::path::{Path, PathBuf};

mod support;
use support::{chaos, text};

const SCENARIOS: [&str; 2] = ["scenarios/happy-path.toml", "scenarios/h1-leave-hangs.toml"];

/// The one run folder `chaos` made under `out`.
fn only_run_dir(out: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

fn results(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("results.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn two_shards_merge_into_every_run_of_the_plan_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut shards = Vec::new();
    for k in 1..=2 {
        let out = dir.path().join(format!("shard-{k}"));
        let output = chaos()
            .args([
                "run",
                "--profile",
                "legacy",
                "--repeat",
                "2",
                "--seed",
                "21",
            ])
            .args(["--partition", &format!("{k}/2"), "--out"])
            .arg(&out)
            .args(SCENARIOS)
            .output()
            .unwrap();
        let all = text(&output);
        assert_eq!(output.status.code(), Some(0), "{all}");
        assert!(
            all.contains(&format!("shard {k}/2: 2 of the plan's 4 runs")),
            "{all}"
        );
        let shard = only_run_dir(&out);
        let json = results(&shard);
        assert_eq!(json["plan"]["partition"], format!("{k}/2"), "{json}");
        assert_eq!(json["records"].as_array().unwrap().len(), 2, "{json}");
        shards.push(shard);
    }

    let merged = dir.path().join("merged");
    // The shards in any order.
    let output = chaos()
        .arg("merge")
        .args(shards.iter().rev())
        .arg("--out")
        .arg(&merged)
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(all.contains("4/4 verdicts as expected"), "{all}");

    let json = results(&merged);
    let runs: Vec<(String, u64, u64)> = json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["scenario"].as_str().unwrap().to_owned(),
                r["repetition"].as_u64().unwrap(),
                r["seed"].as_u64().unwrap(),
            )
        })
        .collect();
    // Every run of the plan once, in the plan's order, each with the seed the whole
    // plan gives it.
    assert_eq!(
        runs,
        [
            ("happy-path".to_owned(), 1, 21),
            ("happy-path".to_owned(), 2, 22),
            ("h1-leave-hangs".to_owned(), 1, 21),
            ("h1-leave-hangs".to_owned(), 2, 22),
        ],
        "{json}"
    );
    assert_eq!(json["plan"]["partition"], serde_json::Value::Null);
    for record in json["records"].as_array().unwrap() {
        let folder = merged.join(record["dir"].as_str().unwrap());
        assert!(folder.join("history.jsonl").is_file(), "{folder:?}");
        assert!(folder.join("timeline.html").is_file(), "{folder:?}");
    }
    // The rates of the union: each scenario ran twice.
    let rates = json["rates"].as_array().expect("rates");
    assert_eq!(rates.len(), 2, "{json}");
    assert_eq!(rates[1]["scenario"], "h1-leave-hangs");
    assert_eq!(rates[1]["violated"]["hits"], 2);
    assert_eq!(rates[1]["violated"]["trials"], 2);

    // One JUnit report whose counts are the union's.
    let xml = std::fs::read_to_string(merged.join("junit.xml")).unwrap();
    let junit = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    assert_eq!(junit.tests, 4, "{xml}");
    assert_eq!(junit.failures, 0, "{xml}");
    assert_eq!(junit.errors, 0, "{xml}");
    let cases: Vec<&str> = junit
        .test_suites
        .iter()
        .flat_map(|s| s.test_cases.iter())
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        cases,
        [
            "happy-path",
            "happy-path",
            "h1-leave-hangs",
            "h1-leave-hangs"
        ]
    );
    let md = std::fs::read_to_string(merged.join("summary.md")).unwrap();
    assert!(md.contains("**4 records: 4 as expected"), "{md}");

    // The merged folder is a run folder: `chaos report` judges it again.
    let output = chaos().arg("report").arg(&merged).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
}

#[test]
fn merging_a_folder_without_results_json_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("not-a-run");
    std::fs::create_dir(&empty).unwrap();
    let output = chaos()
        .arg("merge")
        .arg(&empty)
        .arg("--out")
        .arg(dir.path().join("merged"))
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(
        all.contains(&format!(
            "failed to read {}",
            empty.join("results.json").display()
        )),
        "{all}"
    );
    assert!(!dir.path().join("merged").exists(), "{all}");
}

#[test]
fn a_partition_that_names_no_shard_is_refused_before_anything_runs() {
    for (given, why) in [
        ("0/3", "there is no shard 0 of 3"),
        ("4/3", "there is no shard 4 of 3"),
        ("a/b", "\"a\" is not a whole number"),
    ] {
        let output = chaos()
            .args(["run", "--partition", given, SCENARIOS[0]])
            .output()
            .unwrap();
        let all = text(&output);
        assert_eq!(output.status.code(), Some(2), "{all}");
        assert!(all.contains(why), "{given}: {all}");
        assert!(!all.contains("seed"), "nothing ran: {all}");
    }
}
