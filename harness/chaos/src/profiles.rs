//! The service profiles a scenario can expect something of: the files of
//! `fixtures/profiles/` (`legacy`, `fixed`, one per fix) and `a+b` combinations of them,
//! as the bot-manager's `--profile` takes them.

use std::path::PathBuf;
use std::sync::OnceLock;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProfileListError {
    #[error("read the profiles in {path}: {message}")]
    Read { path: PathBuf, message: String },
}

/// The profiles the reference bot-manager has built in (`fixtures/profiles/*.toml`; a
/// test keeps this list and that folder the same), so an installed `chaos` needs no files.
const NAMES: &[&str] = &[
    "callback-auth",
    "durable-stop",
    "finalize-after-forced-stop",
    "fixed",
    "idempotent-callbacks",
    "legacy",
    "persist-stopping",
    "reconcile",
    "route-current-uid",
    "route-meeting-channel",
    "row-locks",
    "runtime-exit-evidence",
    "session-before-start",
    "start-failure-fails",
    "stop-all-rows",
];

/// Every built-in profile, in matrix order: `legacy`, each single fix by name, `fixed`.
pub fn builtin() -> Result<&'static [String], ProfileListError> {
    static BUILTIN: OnceLock<Vec<String>> = OnceLock::new();
    Ok(BUILTIN.get_or_init(|| ordered(NAMES.iter().map(|n| (*n).to_owned()).collect())))
}

/// `legacy` first, the single fixes by name, `fixed` last.
fn ordered(names: Vec<String>) -> Vec<String> {
    let mut singles: Vec<String> = names
        .into_iter()
        .filter(|n| n != "legacy" && n != "fixed")
        .collect();
    singles.sort();
    let mut all = vec!["legacy".to_owned()];
    all.append(&mut singles);
    all.push("fixed".to_owned());
    all
}

#[cfg(test)]
fn read(dir: &std::path::Path) -> Result<Vec<String>, ProfileListError> {
    let error = |message: String| ProfileListError::Read {
        path: dir.to_owned(),
        message,
    };
    let mut singles: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| error(e.to_string()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|n| n != "legacy" && n != "fixed")
        .collect();
    singles.sort();
    let mut all = vec!["legacy".to_owned()];
    all.append(&mut singles);
    all.push("fixed".to_owned());
    for base in ["legacy", "fixed"] {
        if !dir.join(format!("{base}.toml")).is_file() {
            return Err(error(format!("{base}.toml is missing")));
        }
    }
    Ok(all)
}

/// One fix on top of legacy: neither `legacy`, `fixed` nor a combination.
pub fn is_single_fix(profile: &str) -> bool {
    profile != "legacy" && profile != "fixed" && !profile.contains('+')
}

/// Checks a profile name or `a+b` combination against the built-in profiles.
pub fn check(spec: &str) -> Result<(), String> {
    let known = builtin().map_err(|e| e.to_string())?;
    for part in spec.split('+') {
        if !known.iter().any(|k| k == part) {
            return Err(format!(
                "unknown profile {part:?}; profiles are {} (combine them with '+')",
                known.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_names_are_the_profiles_of_fixtures() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/profiles");
        assert_eq!(read(&dir).unwrap(), builtin().unwrap());
    }

    #[test]
    fn builtin_profiles_start_with_legacy_and_end_with_fixed() {
        let all = builtin().unwrap();
        assert_eq!(all.first().map(String::as_str), Some("legacy"));
        assert_eq!(all.last().map(String::as_str), Some("fixed"));
        assert!(all.iter().any(|p| p == "reconcile"), "{all:?}");
    }

    #[test]
    fn combination_of_known_profiles_is_accepted_and_a_typo_named() {
        assert_eq!(check("reconcile+row-locks"), Ok(()));
        let err = check("reconcile+row-lock").unwrap_err();
        assert!(err.contains("\"row-lock\""), "{err}");
    }
}
