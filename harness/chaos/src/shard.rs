//! Running one plan on several machines: `--partition K/N` takes shard K of the plan's
//! runs, and `chaos merge` puts the shards' run folders back together as one run.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::results::{RunRecord, RunReport};

/// Shard `index` of `total` (`--partition K/N`, K from 1 to N, as nextest's
/// `--partition count:K/N`).
///
/// A shard takes every run whose position in the plan, counted from 0, is `K-1` modulo
/// `N`: the plan's runs come scenario by scenario, each scenario's profiles and
/// repetitions side by side, and a scenario's runs take alike time; dealt round robin,
/// a slow scenario's runs spread over every shard instead of making one shard late, as
/// splitting by scenario would. The plan's order comes from the scenario files, the
/// profiles and `--repeat` alone, and a run's seed from its repetition alone, so the
/// same command gives the same split and the same runs on any machine, and the shards
/// together are exactly the unsharded run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Partition {
    /// 1-based.
    pub index: u32,
    pub total: u32,
}

/// Why a `--partition` value was refused; reads after "failed to".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    #[error("read partition {given:?}: expected K/N, shard K of N shards (1/3, 2/3 or 3/3)")]
    Form { given: String },
    #[error("read partition {given:?}: {part:?} is not a whole number")]
    Number { given: String, part: String },
    #[error("use partition {given:?}: there must be at least 1 shard")]
    NoShards { given: String },
    #[error("use partition {given:?}: there is no shard {index} of {total}; K counts from 1 to N")]
    NoSuchShard {
        given: String,
        index: u32,
        total: u32,
    },
}

impl FromStr for Partition {
    type Err = PartitionError;

    fn from_str(given: &str) -> Result<Self, Self::Err> {
        let owned = || given.to_owned();
        let (k, n) = given
            .trim()
            .split_once('/')
            .ok_or_else(|| PartitionError::Form { given: owned() })?;
        let number = |part: &str| {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(PartitionError::Number {
                    given: owned(),
                    part: part.to_owned(),
                });
            }
            part.parse::<u32>().map_err(|_| PartitionError::Number {
                given: owned(),
                part: part.to_owned(),
            })
        };
        let (index, total) = (number(k)?, number(n)?);
        if total == 0 {
            return Err(PartitionError::NoShards { given: owned() });
        }
        if index == 0 || index > total {
            return Err(PartitionError::NoSuchShard {
                given: owned(),
                index,
                total,
            });
        }
        Ok(Partition { index, total })
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

/// As `"K/N"` in `results.json`.
impl Serialize for Partition {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Partition {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Partition {
    /// Whether the run at `position` (0-based, in the plan's order) is this shard's.
    pub fn takes(&self, position: usize) -> bool {
        position % self.total as usize == (self.index - 1) as usize
    }

    /// How many of a plan's `planned` runs this shard takes.
    pub fn len_of(&self, planned: usize) -> usize {
        (0..planned).filter(|&p| self.takes(p)).count()
    }
}

/// The items of `plan` (in its order) that `partition` takes; all of them without one.
pub fn split<T>(plan: Vec<T>, partition: Option<Partition>) -> Vec<T> {
    match partition {
        None => plan,
        Some(p) => plan
            .into_iter()
            .enumerate()
            .filter(|(position, _)| p.takes(*position))
            .map(|(_, item)| item)
            .collect(),
    }
}

/// In `results.json`: the plan a run folder came from, so that `chaos merge` puts
/// together only shards of one plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanInfo {
    /// The seed of the first repetition (`--seed`).
    pub seed: u64,
    /// The system under test, by name.
    pub sut: String,
    /// Runs in the whole plan, every shard's.
    pub planned: usize,
    /// Of the plan's runs, in order (scenario, profile, repetition, expectation): shards
    /// of one plan share it.
    pub fingerprint: String,
    /// The shard this folder holds; `None`: the whole plan.
    pub partition: Option<Partition>,
    /// `chaos matrix`'s columns, when the run was the matrix.
    #[serde(default)]
    pub matrix_columns: Option<Vec<String>>,
}

/// FNV-1a over the plan's runs, one line each: stable across builds and machines (the
/// standard library's hasher is not).
pub fn fingerprint<S: AsRef<str>>(runs: impl IntoIterator<Item = S>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for run in runs {
        for byte in run.as_ref().bytes().chain([b'\n']) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// Why `chaos merge` failed; each message reads after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("merge: give at least one run folder")]
    Nothing,
    #[error("{0}")]
    Read(#[from] crate::engine::RejudgeError),
    #[error(
        "merge {}: its results.json does not say which plan it ran (written before --partition existed)",
        path.display()
    )]
    NoPlan { path: PathBuf },
    #[error(
        "merge {} with {}: they ran with different seeds ({other_seed} and {first_seed}); shards of one run share --seed",
        other.display(),
        first.display()
    )]
    Seed {
        first: PathBuf,
        first_seed: u64,
        other: PathBuf,
        other_seed: u64,
    },
    #[error(
        "merge {} with {}: they ran against different systems under test ({other_sut} and {first_sut})",
        other.display(),
        first.display()
    )]
    Sut {
        first: PathBuf,
        first_sut: String,
        other: PathBuf,
        other_sut: String,
    },
    #[error(
        "merge {} with {}: they planned different runs ({other_planned} and {first_planned} runs, or other scenarios, profiles or --repeat)",
        other.display(),
        first.display()
    )]
    Plan {
        first: PathBuf,
        first_planned: usize,
        other: PathBuf,
        other_planned: usize,
    },
    #[error(
        "merge {} with {}: they split the plan differently ({other_shard} and {first_shard})",
        other.display(),
        first.display()
    )]
    Split {
        first: PathBuf,
        first_shard: String,
        other: PathBuf,
        other_shard: String,
    },
    #[error(
        "merge {} with {}: both hold shard {shard}",
        other.display(),
        first.display()
    )]
    Twice {
        first: PathBuf,
        other: PathBuf,
        shard: String,
    },
    #[error("merge: shard {missing} of the plan is missing (given: {given})")]
    Missing { missing: String, given: String },
    #[error(
        "merge {}: it holds {found} runs where shard {shard} of {planned} planned runs has {expected}",
        path.display()
    )]
    Incomplete {
        path: PathBuf,
        shard: String,
        planned: usize,
        found: usize,
        expected: usize,
    },
    #[error("move the merged run into {}: {source}", path.display())]
    Place {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("merge into {}: the folder is not empty", path.display())]
    OutNotEmpty { path: PathBuf },
    #[error("copy {} to {}: {source}", from.display(), to.display())]
    Copy {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Report(#[from] crate::report::ReportError),
}

/// `chaos merge DIR... --out OUT`: the run folders of every shard of one plan, as one run
/// folder `out` (created; it must be empty if it exists): the records in the plan's order,
/// each record's folder (history, timeline, logs) copied, and results.json, junit.xml and
/// summary.md (and the matrix, for shards of `chaos matrix`) written for the union.
/// Answers the merged report and the paths written.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<(RunReport, Vec<PathBuf>), MergeError> {
    if dirs.is_empty() {
        return Err(MergeError::Nothing);
    }
    let mut shards: Vec<(&PathBuf, RunReport, PlanInfo)> = Vec::new();
    for dir in dirs {
        let report = crate::engine::read_report(dir)?;
        let Some(plan) = report.plan.clone() else {
            return Err(MergeError::NoPlan {
                path: dir.join("results.json"),
            });
        };
        shards.push((dir, report, plan));
    }
    let (first, _, plan) = &shards[0];
    let whole = |p: &PlanInfo| p.partition.unwrap_or(Partition { index: 1, total: 1 });
    let total = whole(plan).total;
    for (other, _, p) in &shards[1..] {
        let (first, other) = ((*first).clone(), (*other).clone());
        if p.seed != plan.seed {
            return Err(MergeError::Seed {
                first,
                first_seed: plan.seed,
                other,
                other_seed: p.seed,
            });
        }
        if p.sut != plan.sut {
            return Err(MergeError::Sut {
                first,
                first_sut: plan.sut.clone(),
                other,
                other_sut: p.sut.clone(),
            });
        }
        if p.planned != plan.planned || p.fingerprint != plan.fingerprint {
            return Err(MergeError::Plan {
                first,
                first_planned: plan.planned,
                other,
                other_planned: p.planned,
            });
        }
        if whole(p).total != total {
            return Err(MergeError::Split {
                first,
                first_shard: whole(plan).to_string(),
                other,
                other_shard: whole(p).to_string(),
            });
        }
    }
    // Each shard once, every shard there, each whole.
    let mut by_index: Vec<Option<usize>> = vec![None; total as usize];
    for (i, (dir, report, p)) in shards.iter().enumerate() {
        let shard = whole(p);
        let slot = &mut by_index[(shard.index - 1) as usize];
        if let Some(earlier) = *slot {
            return Err(MergeError::Twice {
                first: shards[earlier].0.clone(),
                other: (*dir).clone(),
                shard: shard.to_string(),
            });
        }
        *slot = Some(i);
        let expected = shard.len_of(p.planned);
        if report.records.len() != expected {
            return Err(MergeError::Incomplete {
                path: dir.join("results.json"),
                shard: shard.to_string(),
                planned: p.planned,
                found: report.records.len(),
                expected,
            });
        }
    }
    let missing: Vec<String> = by_index
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(i, _)| format!("{}/{total}", i + 1))
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing {
            missing: missing.join(", "),
            given: dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
        });
    }

    if out.exists()
        && std::fs::read_dir(out)
            .map(|mut entries| entries.next().is_some())
            .unwrap_or(true)
    {
        return Err(MergeError::OutNotEmpty {
            path: out.to_owned(),
        });
    }
    // Everything is written into a folder beside `out` and renamed into place at the end:
    // a merge that fails leaves no half-written `out` (which a rerun would refuse).
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(crate::engine::run_id);
    let staging = out.with_file_name(format!(".{name}.merging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|source| crate::report::ReportError::CreateDir {
        path: staging.clone(),
        source,
    })?;
    let merged = write_merged(&shards, &by_index, plan, total, &name, &staging);
    let placed = merged.and_then(|(report, written)| {
        if out.exists() {
            // Checked empty above.
            std::fs::remove_dir(out).map_err(|source| MergeError::Place {
                path: out.to_owned(),
                source,
            })?;
        }
        std::fs::rename(&staging, out).map_err(|source| MergeError::Place {
            path: out.to_owned(),
            source,
        })?;
        let written = written
            .into_iter()
            .map(|p| match p.strip_prefix(&staging) {
                Ok(rest) => out.join(rest),
                Err(_) => p,
            })
            .collect();
        Ok((report, written))
    });
    if placed.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    placed
}

/// Writes the union of the shards into `out`: each record's folder, then the reports.
fn write_merged(
    shards: &[(&PathBuf, RunReport, PlanInfo)],
    by_index: &[Option<usize>],
    plan: &PlanInfo,
    total: u32,
    run_id: &str,
    out: &Path,
) -> Result<(RunReport, Vec<PathBuf>), MergeError> {
    // The plan's order: run p is shard (p mod N)'s (p div N)-th.
    let mut records: Vec<RunRecord> = Vec::with_capacity(plan.planned);
    for position in 0..plan.planned {
        let shard = by_index[position % total as usize].expect("every shard is there");
        let (dir, report, _) = &shards[shard];
        let record = &report.records[position / total as usize];
        if let Some(folder) = &record.dir {
            let from = crate::report::record_folder(dir, record, folder)?;
            let to = crate::report::record_folder(out, record, folder)?;
            copy_dir(&from, &to)?;
        }
        records.push(record.clone());
    }

    let commits: Vec<&Option<String>> = shards.iter().map(|(_, r, _)| &r.commit).collect();
    let commit = if commits.iter().all(|c| *c == commits[0]) {
        commits[0].clone()
    } else {
        eprintln!(
            "chaos: warning: the shards were run by different builds ({}); results.json names none",
            commits
                .iter()
                .map(|c| c.as_deref().unwrap_or("unknown"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        None
    };
    let report = RunReport {
        run_id: run_id.to_owned(),
        started_at: earliest(shards.iter().map(|(_, r, _)| r.started_at.as_str()), false),
        finished_at: earliest(shards.iter().map(|(_, r, _)| r.finished_at.as_str()), true),
        commit,
        records,
        plan: Some(PlanInfo {
            partition: None,
            ..plan.clone()
        }),
    };
    let mut written = crate::report::write_summaries(out, &report)?;
    if let Some(columns) = &plan.matrix_columns {
        written.extend(crate::report::write_matrix(out, &report, columns)?);
    }
    Ok((report, written))
}

/// The earliest (or, with `last`, the latest) of RFC 3339 times; unreadable ones last.
fn earliest<'a>(times: impl Iterator<Item = &'a str>, last: bool) -> String {
    let mut parsed: Vec<(chrono::DateTime<chrono::FixedOffset>, &str)> = times
        .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok().map(|d| (d, t)))
        .collect();
    parsed.sort_by_key(|(d, _)| *d);
    let pick = if last { parsed.last() } else { parsed.first() };
    pick.map(|(_, t)| (*t).to_owned()).unwrap_or_default()
}

/// Copies a record's folder: its files and subfolders (sockets and other special files
/// a run may leave are not results, and are skipped).
fn copy_dir(from: &Path, to: &Path) -> Result<(), MergeError> {
    let err = |source| MergeError::Copy {
        from: from.to_owned(),
        to: to.to_owned(),
        source,
    };
    std::fs::create_dir_all(to).map_err(err)?;
    for entry in std::fs::read_dir(from).map_err(err)? {
        let entry = entry.map_err(err)?;
        let kind = entry.file_type().map_err(err)?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if kind.is_dir() {
            copy_dir(&src, &dst)?;
        } else if kind.is_file() {
            std::fs::copy(&src, &dst).map_err(|source| MergeError::Copy {
                from: src.clone(),
                to: dst.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Partition, PartitionError> {
        text.parse()
    }

    #[test]
    fn k_of_n_parses_with_k_counted_from_one() {
        assert_eq!(p("1/3"), Ok(Partition { index: 1, total: 3 }));
        assert_eq!(p("3/3"), Ok(Partition { index: 3, total: 3 }));
        assert_eq!(p("1/1"), Ok(Partition { index: 1, total: 1 }));
        assert_eq!(p("2/3").unwrap().to_string(), "2/3");
    }

    #[test]
    fn shard_zero_is_refused_naming_the_range() {
        let err = p("0/3").unwrap_err();
        assert!(matches!(
            err,
            PartitionError::NoSuchShard {
                index: 0,
                total: 3,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "use partition \"0/3\": there is no shard 0 of 3; K counts from 1 to N"
        );
    }

    #[test]
    fn a_shard_past_the_last_is_refused() {
        assert!(matches!(
            p("4/3"),
            Err(PartitionError::NoSuchShard {
                index: 4,
                total: 3,
                ..
            })
        ));
    }

    #[test]
    fn zero_shards_are_refused() {
        assert!(matches!(p("0/0"), Err(PartitionError::NoShards { .. })));
    }

    #[test]
    fn words_signs_and_missing_parts_are_not_numbers() {
        for (given, part) in [
            ("a/b", "a"),
            ("1/b", "b"),
            ("-1/3", "-1"),
            ("+1/3", "+1"),
            ("/3", ""),
        ] {
            let err = p(given).unwrap_err();
            assert_eq!(
                err,
                PartitionError::Number {
                    given: given.into(),
                    part: part.into()
                },
                "{given}"
            );
            assert!(err.to_string().contains("is not a whole number"), "{err}");
        }
    }

    #[test]
    fn text_without_a_slash_asks_for_k_of_n() {
        for given in ["", "3", "count:1-3"] {
            let err = p(given).unwrap_err();
            assert!(matches!(err, PartitionError::Form { .. }), "{given}: {err}");
            assert!(err.to_string().contains("expected K/N"), "{err}");
        }
    }

    #[test]
    fn a_partition_reads_back_from_json_as_k_of_n() {
        let part = Partition { index: 2, total: 5 };
        let json = serde_json::to_string(&part).unwrap();
        assert_eq!(json, "\"2/5\"");
        assert_eq!(serde_json::from_str::<Partition>(&json).unwrap(), part);
        assert!(serde_json::from_str::<Partition>("\"6/5\"").is_err());
    }

    #[test]
    fn every_run_of_the_plan_is_in_exactly_one_shard() {
        for planned in [0, 1, 2, 5, 17, 70] {
            for total in 1..=8u32 {
                let plan: Vec<usize> = (0..planned).collect();
                let mut seen = vec![0; planned];
                for index in 1..=total {
                    let part = Partition { index, total };
                    let shard = split(plan.clone(), Some(part));
                    assert_eq!(shard.len(), part.len_of(planned));
                    // In the plan's order.
                    assert!(shard.windows(2).all(|w| w[0] < w[1]));
                    for run in shard {
                        seen[run] += 1;
                    }
                }
                assert!(
                    seen.iter().all(|&n| n == 1),
                    "{planned} runs in {total} shards: {seen:?}"
                );
            }
        }
    }

    #[test]
    fn the_same_plan_splits_the_same_way_every_time() {
        let plan: Vec<String> = (0..23).map(|i| format!("scenario-{}", i / 4)).collect();
        let part = Partition { index: 2, total: 3 };
        assert_eq!(
            split(plan.clone(), Some(part)),
            split(plan.clone(), Some(part))
        );
        let taken: Vec<usize> = (0..plan.len()).filter(|&i| part.takes(i)).collect();
        assert_eq!(taken, [1, 4, 7, 10, 13, 16, 19, 22]);
    }

    #[test]
    fn shards_differ_in_size_by_at_most_one_run() {
        let sizes: Vec<usize> = (1..=4)
            .map(|index| Partition { index, total: 4 }.len_of(10))
            .collect();
        assert_eq!(sizes, [3, 3, 2, 2]);
    }

    #[test]
    fn no_partition_takes_the_whole_plan() {
        assert_eq!(split(vec![1, 2, 3], None), [1, 2, 3]);
    }

    #[test]
    fn the_fingerprint_is_fixed_by_the_runs_and_their_order() {
        let a = fingerprint(["s1\tlegacy\t1", "s1\tlegacy\t2"]);
        assert_eq!(a, fingerprint(["s1\tlegacy\t1", "s1\tlegacy\t2"]));
        assert_ne!(a, fingerprint(["s1\tlegacy\t2", "s1\tlegacy\t1"]));
        // Not ambiguous across run boundaries.
        assert_ne!(fingerprint(["ab", "c"]), fingerprint(["a", "bc"]));
        // FNV-1a of the empty plan is its offset basis.
        assert_eq!(fingerprint::<&str>([]), "cbf29ce484222325");
    }

    /// Writes shard `index/total` of a plan of `planned` runs (scenario `s<p>`, record
    /// folder with a file) into `root/<name>`; answers its folder.
    fn shard(
        root: &Path,
        name: &str,
        index: u32,
        total: u32,
        planned: usize,
        seed: u64,
    ) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let part = Partition { index, total };
        let records: Vec<RunRecord> = (0..planned)
            .filter(|&p| part.takes(p))
            .map(|p| {
                let folder = format!("s{p}/legacy-1");
                std::fs::create_dir_all(dir.join(&folder)).unwrap();
                std::fs::write(dir.join(&folder).join("history.jsonl"), format!("run {p}"))
                    .unwrap();
                RunRecord {
                    dir: Some(folder),
                    ..RunRecord::sample(&format!("s{p}"), "legacy")
                }
            })
            .collect();
        let report = RunReport {
            plan: Some(PlanInfo {
                seed,
                sut: "reference".into(),
                planned,
                fingerprint: "f".into(),
                partition: Some(part),
                matrix_columns: None,
            }),
            ..RunReport::sample(records)
        };
        crate::report::write_summaries(&dir, &report).unwrap();
        dir
    }

    #[test]
    fn a_merge_that_fails_midway_leaves_no_half_written_folder() {
        // A copy that failed left `out` half-written, and the rerun was refused as "not
        // empty".
        let root = tempfile::tempdir().unwrap();
        let a = shard(root.path(), "a", 1, 2, 5, 7);
        let b = shard(root.path(), "b", 2, 2, 5, 7);
        std::fs::remove_dir_all(b.join("s3")).unwrap();
        let out = root.path().join("merged");
        assert!(merge(&[a.clone(), b.clone()], &out).is_err());
        assert!(!out.exists());
        let left: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(left.iter().all(|n| !n.contains("merging")), "{left:?}");
    }

    #[test]
    fn merged_shards_hold_every_run_once_in_the_plans_order_with_their_folders() {
        let root = tempfile::tempdir().unwrap();
        let a = shard(root.path(), "a", 1, 2, 5, 7);
        let b = shard(root.path(), "b", 2, 2, 5, 7);
        let out = root.path().join("merged");
        // Given in any order.
        let (report, written) = merge(&[b, a], &out).unwrap();
        let names: Vec<&str> = report.records.iter().map(|r| r.scenario.as_str()).collect();
        assert_eq!(names, ["s0", "s1", "s2", "s3", "s4"]);
        assert_eq!(report.plan.as_ref().unwrap().partition, None);
        assert!(written.contains(&out.join("junit.xml")), "{written:?}");
        let back = crate::engine::read_report(&out).unwrap();
        assert_eq!(back, report);
        assert_eq!(
            std::fs::read_to_string(out.join("s3/legacy-1/history.jsonl")).unwrap(),
            "run 3"
        );
    }

    #[test]
    fn shards_of_different_seeds_are_refused_naming_both() {
        let root = tempfile::tempdir().unwrap();
        let a = shard(root.path(), "a", 1, 2, 4, 7);
        let b = shard(root.path(), "b", 2, 2, 4, 8);
        let err = merge(&[a.clone(), b.clone()], &root.path().join("m")).unwrap_err();
        assert!(matches!(err, MergeError::Seed { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&a.display().to_string()) && text.contains(&b.display().to_string()),
            "{text}"
        );
        assert!(text.contains("different seeds (8 and 7)"), "{text}");
        assert!(!root.path().join("m").exists());
    }

    #[test]
    fn shards_against_different_systems_under_test_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let a = shard(root.path(), "a", 1, 2, 4, 7);
        let b = shard(root.path(), "b", 2, 2, 4, 7);
        let mut report = crate::engine::read_report(&b).unwrap();
        report.plan.as_mut().unwrap().sut = "vexa-bot-manager".into();
        crate::report::write_summaries(&b, &report).unwrap();
        let err = merge(&[a, b], &root.path().join("m")).unwrap_err();
        assert!(
            err.to_string()
                .contains("different systems under test (vexa-bot-manager and reference)"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_shard_is_named() {
        let root = tempfile::tempdir().unwrap();
        let a = shard(root.path(), "a", 1, 3, 6, 7);
        let c = shard(root.path(), "c", 3, 3, 6, 7);
        let err = merge(&[a, c], &root.path().join("m")).unwrap_err();
        assert!(
            err.to_string().contains("shard 2/3 of the plan is missing"),
            "{err}"
        );
    }

    #[test]
    fn the_same_shard_twice_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let a = shard(root.path(), "a", 1, 2, 4, 7);
        let again = shard(root.path(), "again", 1, 2, 4, 7);
        let err = merge(&[a, again], &root.path().join("m")).unwrap_err();
        assert!(matches!(err, MergeError::Twice { .. }), "{err}");
        assert!(err.to_string().contains("both hold shard 1/2"), "{err}");
    }

    #[test]
    fn a_folder_without_results_json_is_named_with_its_path() {
        let root = tempfile::tempdir().unwrap();
        let empty = root.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let err = merge(std::slice::from_ref(&empty), &root.path().join("m")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("read {}", empty.join("results.json").display())),
            "{err}"
        );
    }

    #[test]
    fn merging_into_a_folder_that_is_not_empty_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let a = shard(root.path(), "a", 1, 1, 2, 7);
        let err = merge(std::slice::from_ref(&a), &a).unwrap_err();
        assert!(matches!(err, MergeError::OutNotEmpty { .. }), "{err}");
    }
}
