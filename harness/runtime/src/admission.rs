//! What an API request may ask of the runtime.
//!
//! The runtime executes processes, so a request chooses a mapped image and nothing of what
//! that image runs: it may set no variable that changes what a process loads or executes,
//! override no part of the image's command, and ask for no more than can always be
//! started. All of it is checked at the request, before a container or a rule exists, and
//! refused with 400 naming what was refused. The operator's own `--env` and image-map
//! `env` are not checked: the operator chooses what runs.

use std::collections::BTreeMap;
use std::fmt;

/// Longest container name: its log file, `<name>.log`, must fit a file name (255 bytes).
pub const MAX_NAME_LEN: usize = 128;
/// Largest `KEY=VALUE` entry in bytes; Linux refuses to exec one of 128 KiB or more.
pub const MAX_VAR_BYTES: usize = 64 * 1024;
/// Most variables a create's `Env`, a rule's `env`, or the two merged may hold.
pub const MAX_VARS: usize = 256;
/// Most bytes of `KEY=VALUE` entries in all, in the same three places; far below the
/// smallest exec limit Linux allows (128 KiB per entry, 2 MiB in all by default).
pub const MAX_ENV_BYTES: usize = 256 * 1024;

/// Variables that choose code for a process to load or run, or where it finds programs.
/// The first group is glibc's own list of what it will not trust across a privilege
/// boundary (`elf/unsecvars.h`, apart from its `LD_*`, refused by prefix below); a create
/// request crosses such a boundary.
const REFUSED: &[&str] = &[
    // glibc: gconv modules and getconf programs are loaded or run from these paths, and
    // the rest steer the loader, locale and resolver data, traces and temporary files.
    "GCONV_PATH",
    "GETCONF_DIR",
    "GLIBC_TUNABLES",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "LOCPATH",
    "MALLOC_TRACE",
    "NIS_PATH",
    "NLSPATH",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "TMPDIR",
    "TZDIR",
    // Every program a script or execvp runs is looked up on it.
    "PATH",
    // Shells: a file sourced at startup, options (xtrace) and the trace prompt, which
    // expands command substitutions, and the field separator.
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "IFS",
    // JVMs: agents and class paths.
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
];

/// Whole families, refused by prefix with the few harmless members a bot may need.
const REFUSED_PREFIXES: &[(&str, &[&str])] = &[
    // The dynamic loader: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, and any later one.
    ("LD_", &[]),
    // Bash imports these as functions, which then shadow the commands a script runs.
    ("BASH_FUNC_", &[]),
    // PYTHONPATH, PYTHONHOME, PYTHONSTARTUP, PYTHONUSERBASE, PYTHONBREAKPOINT,
    // PYTHONWARNINGS (imports a category), PYTHONPYCACHEPREFIX (loads bytecode), ...
    (
        "PYTHON",
        &[
            "PYTHONUNBUFFERED",
            "PYTHONDONTWRITEBYTECODE",
            "PYTHONIOENCODING",
            "PYTHONUTF8",
            "PYTHONHASHSEED",
        ],
    ),
    // NODE_OPTIONS (--require, --import), NODE_PATH, NODE_REPL_EXTERNAL_MODULE, ...
    ("NODE_", &["NODE_ENV"]),
    // PERL5OPT, PERL5LIB, PERLLIB, PERL5DB (debugger code), PERLIO (layers are modules).
    ("PERL", &[]),
    // RUBYOPT, RUBYLIB.
    ("RUBY", &[]),
    // LUA_INIT (code run at startup), LUA_PATH, LUA_CPATH.
    ("LUA_", &[]),
    // OPENSSL_CONF, OPENSSL_MODULES, OPENSSL_ENGINES: configuration loads shared objects.
    ("OPENSSL_", &[]),
];

/// True when a request may not set `name`: it changes what a process loads or executes.
/// Names are case-sensitive, as the loader and interpreters read them.
pub fn steers_execution(name: &str) -> bool {
    REFUSED.contains(&name)
        || REFUSED_PREFIXES
            .iter()
            .any(|(prefix, harmless)| name.starts_with(prefix) && !harmless.contains(&name))
}

/// Where the variables being checked come from; names them in a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvScope {
    /// A create request's `Env`.
    Create,
    /// A rule's `env`.
    Rule,
    /// A create request's `Env` with the variables of the rules that match it.
    CreateWithRules,
}

impl fmt::Display for EnvScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EnvScope::Create => "Env",
            EnvScope::Rule => "rule env",
            EnvScope::CreateWithRules => "Env with the variables of the rules that match it",
        })
    }
}

/// A request input the runtime refuses. Reads after "failed to"; the API answers it with
/// 400 and `failed to <this>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "accept {within} variable {name}: it changes what the process loads or executes, \
         which only the image map chooses"
    )]
    SteersExecution { within: EnvScope, name: String },
    #[error("accept {within} variable {name}: a variable name cannot hold '='")]
    NameHasEquals { within: EnvScope, name: String },
    #[error("accept {within} entry {entry}: it has no variable name")]
    NoName { within: EnvScope, entry: String },
    #[error(
        "accept {within} variable {name}: it holds a NUL byte, which no process \
         environment can carry"
    )]
    Nul { within: EnvScope, name: String },
    #[error(
        "accept {within} variable {name}: its {bytes} bytes exceed the limit of \
         {MAX_VAR_BYTES} bytes per variable"
    )]
    VarTooLarge {
        within: EnvScope,
        name: String,
        bytes: usize,
    },
    #[error("accept {within}: its {count} variables exceed the limit of {MAX_VARS}")]
    TooManyVars { within: EnvScope, count: usize },
    #[error("accept {within}: its {bytes} bytes exceed the limit of {MAX_ENV_BYTES} bytes in all")]
    EnvTooLarge { within: EnvScope, bytes: usize },
    #[error(
        "accept {field} {value}: the image map alone chooses the program, its arguments, \
         working directory and user, and this runtime takes no override"
    )]
    Override { field: &'static str, value: String },
    #[error(
        "accept container name {name}: its {length} characters exceed the limit of \
         {MAX_NAME_LEN}"
    )]
    NameTooLong { name: String, length: usize },
    #[error(
        "accept Cmd {cmd} for image {image}: the image map runs only the Cmds it lists \
         for that image (its `cmd` entries), and this is none of them"
    )]
    CmdNotListed { image: String, cmd: String },
    #[error("accept {field} {value}: {problem}")]
    Ports {
        field: &'static str,
        value: String,
        problem: &'static str,
    },
}

/// `text` quoted and escaped, and cut short when long, so a refusal stays readable
/// whatever it names.
pub(crate) fn shown(text: &str) -> String {
    format!("\"{}\"", cut_short(text))
}

/// `text` escaped as Rust's `Debug` would, without quotes, and cut after 64 characters.
pub(crate) fn cut_short(text: &str) -> String {
    const MAX_SHOWN: usize = 64;
    let mut out: String = text
        .chars()
        .take(MAX_SHOWN)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(MAX_SHOWN).is_some() {
        out.push_str("...");
    }
    out
}

/// Checks one variable; `entry_bytes` is the length of its `KEY=VALUE` entry.
fn check_var(
    within: EnvScope,
    name: &str,
    value: Option<&str>,
    entry_bytes: usize,
) -> Result<(), Refusal> {
    if name.contains('\0') || value.is_some_and(|value| value.contains('\0')) {
        return Err(Refusal::Nul {
            within,
            name: shown(name),
        });
    }
    if name.is_empty() {
        return Err(Refusal::NoName {
            within,
            entry: shown(&value.map_or_else(String::new, |value| format!("={value}"))),
        });
    }
    if name.contains('=') {
        // `A=B` set to `c` would reach the process as `A` set to `B=c`.
        return Err(Refusal::NameHasEquals {
            within,
            name: shown(name),
        });
    }
    if steers_execution(name) {
        return Err(Refusal::SteersExecution {
            within,
            name: shown(name),
        });
    }
    if entry_bytes > MAX_VAR_BYTES {
        return Err(Refusal::VarTooLarge {
            within,
            name: shown(name),
            bytes: entry_bytes,
        });
    }
    Ok(())
}

fn check_totals(within: EnvScope, count: usize, bytes: usize) -> Result<(), Refusal> {
    if count > MAX_VARS {
        return Err(Refusal::TooManyVars { within, count });
    }
    if bytes > MAX_ENV_BYTES {
        return Err(Refusal::EnvTooLarge { within, bytes });
    }
    Ok(())
}

/// Checks Docker-style `KEY=VALUE` entries (a bare `KEY` unsets, as in Docker).
pub(crate) fn check_env_entries(within: EnvScope, entries: &[String]) -> Result<(), Refusal> {
    for entry in entries {
        let (name, value) = match entry.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (entry.as_str(), None),
        };
        check_var(within, name, value, entry.len())?;
    }
    check_totals(within, entries.len(), entries.iter().map(String::len).sum())
}

/// Checks a rule's variables.
pub(crate) fn check_env_map(
    within: EnvScope,
    vars: &BTreeMap<String, String>,
) -> Result<(), Refusal> {
    let entry_bytes = |name: &str, value: &str| name.len() + 1 + value.len();
    for (name, value) in vars {
        check_var(within, name, Some(value), entry_bytes(name, value))?;
    }
    let bytes = vars
        .iter()
        .map(|(name, value)| entry_bytes(name, value))
        .sum();
    check_totals(within, vars.len(), bytes)
}

/// Refuses a create field that would change what the image runs, unless it is absent or
/// empty (the docker CLI sends `"Cmd": null`, `"WorkingDir": ""`).
/// A `Cmd` as a list of words: absent, null, "" and [] are none. Docker's old string
/// form (run by a shell) is refused as any other override.
pub(crate) fn cmd_words(value: Option<&serde_json::Value>) -> Result<Vec<String>, Refusal> {
    use serde_json::Value;
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Refusal::Override {
                field: "Cmd",
                value: shown(&value.map(ToString::to_string).unwrap_or_default()),
            }),
        other => check_no_override("Cmd", other).map(|()| Vec::new()),
    }
}

pub(crate) fn check_no_override(
    field: &'static str,
    value: Option<&serde_json::Value>,
) -> Result<(), Refusal> {
    use serde_json::Value;
    let empty = match value {
        None | Some(Value::Null) => true,
        Some(Value::String(text)) => text.is_empty(),
        Some(Value::Array(items)) => items.is_empty(),
        Some(_) => false,
    };
    if empty {
        return Ok(());
    }
    let value = value.map(ToString::to_string).unwrap_or_default();
    Err(Refusal::Override {
        field,
        value: shown(&value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_and_interpreter_hooks_are_refused_and_what_bots_use_is_not() {
        for name in [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "LD_AUDIT",
            "LD_SOMETHING_NEW",
            "GCONV_PATH",
            "GLIBC_TUNABLES",
            "PATH",
            "BASH_ENV",
            "ENV",
            "BASH_FUNC_sleep%%",
            "PYTHONPATH",
            "PYTHONSTARTUP",
            "PYTHONHOME",
            "NODE_OPTIONS",
            "PERL5OPT",
            "PERL5LIB",
            "RUBYOPT",
            "JAVA_TOOL_OPTIONS",
            "OPENSSL_CONF",
        ] {
            assert!(steers_execution(name), "{name} must be refused");
        }
        for name in [
            "BOT_CONFIG",
            "WHISPER_LIVE_URL",
            "LOG_LEVEL",
            "MOCK_BOT_LEAVE",
            "NODE_ENV",
            "PYTHONUNBUFFERED",
            "HOME",
            "ld_preload",
            "XLD_PRELOAD",
        ] {
            assert!(!steers_execution(name), "{name} must be accepted");
        }
    }

    #[test]
    fn refusals_name_the_variable_escaped_and_cut_short() {
        let err = check_env_entries(EnvScope::Create, &["A=1".into(), "B\0=2".into()]).unwrap_err();
        assert!(err.to_string().contains(r#""B\0""#), "{err}");
        let long = format!("LD_{}=1", "K".repeat(1000));
        let err = check_env_entries(EnvScope::Create, &[long]).unwrap_err();
        assert!(err.to_string().len() < 300, "{err}");
    }

    #[test]
    fn overrides_are_refused_unless_absent_or_empty() {
        use serde_json::json;
        for empty in [None, Some(json!(null)), Some(json!("")), Some(json!([]))] {
            assert_eq!(check_no_override("Cmd", empty.as_ref()), Ok(()));
        }
        let err = check_no_override("Entrypoint", Some(&json!(["/bin/sh"]))).unwrap_err();
        assert!(err.to_string().starts_with("accept Entrypoint "), "{err}");
    }
}
