//! Service profiles as data (`fixtures/profiles/*.toml`): which fixes are on. `legacy`
//! is the incident's code, bugs included; `fixed` turns on every fix; each single-fix
//! profile adds one fix to legacy, so the harness can show which fix closes which
//! failure. `a+b+c` combines profiles: later ones override the fields they set.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;

/// Where `DELETE` sends the leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteLeave {
    /// Legacy: the earliest `meeting_sessions` row.
    Earliest,
    /// Redis `current_uid`, else the latest session; kept current when a bot calls back
    /// under a new uid.
    CurrentUid,
    /// `bot_commands:meeting:{id}` with `meeting_id` in the payload.
    MeetingChannel,
}

/// One switch per fix of protocol.md section 10.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixes {
    pub route_leave: RouteLeave,
    pub persist_stopping: bool,
    pub finalize_after_forced_stop: bool,
    pub durable_stop: bool,
    pub reconcile: bool,
    pub idempotent_callbacks: bool,
    pub row_locks: bool,
    pub stop_all_rows: bool,
    pub runtime_exit_evidence: bool,
    /// A container that fails to start fails its row (stage `requested`) instead of
    /// leaving it in `error`, outside the status machine.
    pub start_failure_fails: bool,
    /// The connectionId session row is written, and waited for, before the container
    /// starts, so the bot's first callback always finds it (legacy writes it after the
    /// start, fire-and-forget, and a fast bot's first report is lost).
    pub session_before_start: bool,
    /// Each bot gets a secret of its own (`BOT_CONFIG.callbackSecret`), and every
    /// internal callback must carry it (`Authorization: Bearer`), bound to the meeting
    /// and container it is about (legacy: no auth at all, anyone can finish anyone's
    /// meeting).
    pub callback_auth: bool,
}

impl Fixes {
    pub const LEGACY: Fixes = Fixes {
        route_leave: RouteLeave::Earliest,
        persist_stopping: false,
        finalize_after_forced_stop: false,
        durable_stop: false,
        reconcile: false,
        idempotent_callbacks: false,
        row_locks: false,
        stop_all_rows: false,
        runtime_exit_evidence: false,
        start_failure_fails: false,
        session_before_start: false,
        callback_auth: false,
    };
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub fixes: Fixes,
}

/// A profile file: every field optional, applied over its `base` (legacy by default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    #[allow(dead_code)]
    description: Option<String>,
    base: Option<String>,
    route_leave: Option<RouteLeave>,
    persist_stopping: Option<bool>,
    finalize_after_forced_stop: Option<bool>,
    durable_stop: Option<bool>,
    reconcile: Option<bool>,
    idempotent_callbacks: Option<bool>,
    row_locks: Option<bool>,
    stop_all_rows: Option<bool>,
    runtime_exit_evidence: Option<bool>,
    start_failure_fails: Option<bool>,
    session_before_start: Option<bool>,
    callback_auth: Option<bool>,
}

impl ProfileFile {
    fn apply(&self, fixes: &mut Fixes) {
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = self.$field { fixes.$field = v; } )* };
        }
        set!(
            route_leave,
            persist_stopping,
            finalize_after_forced_stop,
            durable_stop,
            reconcile,
            idempotent_callbacks,
            row_locks,
            stop_all_rows,
            runtime_exit_evidence,
            start_failure_fails,
            session_before_start,
            callback_auth
        );
    }
}

macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        /// The profiles of `fixtures/profiles/`, built in so the binary needs no files.
        pub const BUILTIN: &[(&str, &str)] = &[
            $(($name, include_str!(concat!("../../../fixtures/profiles/", $name, ".toml")))),*
        ];
    };
}

builtin!(
    "legacy",
    "fixed",
    "route-current-uid",
    "route-meeting-channel",
    "persist-stopping",
    "finalize-after-forced-stop",
    "durable-stop",
    "reconcile",
    "idempotent-callbacks",
    "row-locks",
    "stop-all-rows",
    "runtime-exit-evidence",
    "start-failure-fails",
    "session-before-start",
    "callback-auth",
);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error(
        "select profile {name:?}: not one of {known} (combine them with '+', or give --profile-file)"
    )]
    Unknown { name: String, known: String },
    #[error("parse profile {name:?}: {message}")]
    Parse { name: String, message: String },
    #[error("read profile file {path}: {message}")]
    Read { path: String, message: String },
    #[error("resolve profile {name:?}: its bases form a cycle")]
    Cycle { name: String },
}

fn parse_file(name: &str, text: &str) -> Result<ProfileFile, ProfileError> {
    toml::from_str(text).map_err(|e| ProfileError::Parse {
        name: name.to_owned(),
        message: e.to_string(),
    })
}

fn builtin_file(name: &str) -> Result<ProfileFile, ProfileError> {
    let (_, text) =
        BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| ProfileError::Unknown {
                name: name.to_owned(),
                known: BUILTIN
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
    parse_file(name, text)
}

/// The fixes of one named file, its bases applied first.
fn resolve_file(name: &str, file: &ProfileFile, depth: usize) -> Result<Fixes, ProfileError> {
    if depth > 8 {
        return Err(ProfileError::Cycle {
            name: name.to_owned(),
        });
    }
    let mut fixes = match &file.base {
        Some(base) => resolve_file(base, &builtin_file(base)?, depth + 1)?,
        None => Fixes::LEGACY,
    };
    file.apply(&mut fixes);
    Ok(fixes)
}

impl Profile {
    pub fn legacy() -> Profile {
        Profile {
            name: "legacy".into(),
            fixes: Fixes::LEGACY,
        }
    }

    /// `fixed`, `legacy+route-current-uid+row-locks`, ...
    pub fn resolve(spec: &str) -> Result<Profile, ProfileError> {
        let mut fixes = Fixes::LEGACY;
        for (i, part) in spec.split('+').map(str::trim).enumerate() {
            let file = builtin_file(part)?;
            if i == 0 {
                fixes = resolve_file(part, &file, 0)?;
            } else {
                file.apply(&mut fixes);
            }
        }
        Ok(Profile {
            name: spec.to_owned(),
            fixes,
        })
    }

    /// This profile with single switches set over it (`reconcile=true`,
    /// `route_leave=current_uid`: a profile file's fields, one at a time).
    pub fn with_switches(mut self, switches: &[String]) -> Result<Profile, ProfileError> {
        for switch in switches {
            let bad = |message: String| ProfileError::Parse {
                name: format!("--fix {switch}"),
                message,
            };
            let (name, value) = switch
                .split_once('=')
                .ok_or_else(|| bad("expected NAME=VALUE".into()))?;
            let (name, value) = (name.trim(), value.trim());
            let value = match value {
                "true" | "false" => value.to_owned(),
                word => format!("{word:?}"),
            };
            let file: ProfileFile = toml::from_str(&format!("{name} = {value}"))
                .map_err(|e| bad(e.message().to_owned()))?;
            if file.base.is_some() || file.description.is_some() {
                return Err(bad(format!("{name} is not a fix switch")));
            }
            file.apply(&mut self.fixes);
            self.name = format!("{}+{name}={}", self.name, value.trim_matches('"'));
        }
        Ok(self)
    }

    /// A profile from a file of the same format (its `base` names a built-in profile).
    pub fn from_file(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|e| ProfileError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = parse_file(&name, &text)?;
        Ok(Profile {
            fixes: resolve_file(&name, &file, 0)?,
            name,
        })
    }
}

impl FromStr for Profile {
    type Err = ProfileError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::resolve(s)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn switches_set_single_fixes_over_a_profile_and_name_a_bad_one() {
        let p = Profile::legacy()
            .with_switches(&["reconcile=true".into(), "route_leave=current_uid".into()])
            .unwrap();
        assert!(p.fixes.reconcile);
        assert_eq!(p.fixes.route_leave, RouteLeave::CurrentUid);
        assert!(!p.fixes.durable_stop);
        let err = Profile::legacy()
            .with_switches(&["reconcil=true".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--fix reconcil=true") && err.contains("reconcil"),
            "{err}"
        );
        let err = Profile::legacy()
            .with_switches(&["route_leave=latest".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("latest"), "{err}");
    }

    use super::*;

    #[test]
    fn legacy_has_every_fix_off_and_fixed_every_fix_on() {
        assert_eq!(Profile::resolve("legacy").unwrap().fixes, Fixes::LEGACY);
        let fixed = Profile::resolve("fixed").unwrap().fixes;
        assert_eq!(fixed.route_leave, RouteLeave::MeetingChannel);
        assert!(fixed.persist_stopping && fixed.durable_stop && fixed.reconcile && fixed.row_locks);
        assert!(fixed.idempotent_callbacks && fixed.stop_all_rows && fixed.runtime_exit_evidence);
        assert!(fixed.finalize_after_forced_stop && fixed.start_failure_fails);
        assert!(fixed.session_before_start && fixed.callback_auth);
    }

    #[test]
    fn every_single_fix_profile_differs_from_legacy_in_one_switch() {
        for (name, _) in BUILTIN
            .iter()
            .filter(|(n, _)| !matches!(*n, "legacy" | "fixed"))
        {
            let fixes = Profile::resolve(name).unwrap().fixes;
            let l = Fixes::LEGACY;
            let differences = [
                fixes.route_leave != l.route_leave,
                fixes.persist_stopping != l.persist_stopping,
                fixes.finalize_after_forced_stop != l.finalize_after_forced_stop,
                fixes.durable_stop != l.durable_stop,
                fixes.reconcile != l.reconcile,
                fixes.idempotent_callbacks != l.idempotent_callbacks,
                fixes.row_locks != l.row_locks,
                fixes.stop_all_rows != l.stop_all_rows,
                fixes.runtime_exit_evidence != l.runtime_exit_evidence,
                fixes.start_failure_fails != l.start_failure_fails,
                fixes.session_before_start != l.session_before_start,
                fixes.callback_auth != l.callback_auth,
            ];
            assert_eq!(differences.iter().filter(|d| **d).count(), 1, "{name}");
        }
    }

    #[test]
    fn combinations_apply_left_to_right() {
        let p = Profile::resolve("legacy+persist-stopping+route-current-uid").unwrap();
        assert!(p.fixes.persist_stopping);
        assert_eq!(p.fixes.route_leave, RouteLeave::CurrentUid);
        assert!(!p.fixes.reconcile);
    }

    #[test]
    fn unknown_profile_names_the_known_ones() {
        let err = Profile::resolve("fixd").unwrap_err().to_string();
        assert!(
            err.contains("fixd") && err.contains("legacy") && err.contains("fixed"),
            "{err}"
        );
    }
}
