//! The `--images` file: which command each image name runs.
//!
//! ```toml
//! [images."vexa-bot:latest"]
//! command = ["mock-bot"]          # bare names: next to the runtime's executable, then PATH
//! env = { RUST_LOG = "info" }     # optional, added to every container of this image
//!
//! [images."redis:*"]              # `*`: any tag of the repository
//! command = ["redis-server", "--port", "{port:6379/tcp}"]
//! ports = ["6379/tcp"]            # the image's EXPOSE: published by `-P` / PublishAllPorts
//! optional = true                 # a missing program makes the image unknown, not the file bad
//! cmd = [{ match = ["--save", ""] }]  # Docker Cmds accepted: patterns, and what they run
//! ```
//! `{port:6379/tcp}` is the host port the container's port 6379 is published on (a free
//! loopback port when it is not published, the port itself on the host network); a
//! `cmd` entry's `args`, when given, replace the command's arguments and may use its
//! patterns' named groups (`{name}`). Every problem is reported with the file and the
//! exact key, and programs are resolved when the file is loaded, so a typo fails at
//! startup rather than at the first start.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The images a runtime can run, by normalised reference (`name:tag`).
#[derive(Debug, Clone)]
pub struct Images {
    entries: BTreeMap<String, Image>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The reference as written in the file.
    pub name: String,
    /// A Docker-style image id (`sha256:<64 hex>`), made up when the file is loaded.
    pub id: String,
    pub program: PathBuf,
    /// Arguments, possibly with `{port:N/proto}` placeholders ([`render`]).
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// The ports the image exposes (`6379/tcp`), as a Dockerfile's EXPOSE.
    pub ports: Vec<String>,
    /// The Docker `Cmd`s a create may give, in order; none: only an empty one.
    pub cmds: Vec<CmdRule>,
    /// Why containers of this image cannot run here (an `optional` image whose program
    /// is missing); `None` when they can.
    pub unavailable: Option<String>,
}

/// One accepted `Cmd`: a whole-word pattern per word, and what runs then.
#[derive(Debug, Clone)]
pub struct CmdRule {
    patterns: Vec<regex::Regex>,
    /// Replaces the command's arguments; `None` keeps them.
    args: Option<Vec<String>>,
}

impl PartialEq for CmdRule {
    fn eq(&self, other: &Self) -> bool {
        self.args == other.args
            && self
                .patterns
                .iter()
                .map(regex::Regex::as_str)
                .eq(other.patterns.iter().map(regex::Regex::as_str))
    }
}

impl Eq for CmdRule {}

impl Image {
    /// The arguments to run for a create's `Cmd` (empty: the image's own); `None` when
    /// the image map accepts no such `Cmd`. Port placeholders are left for [`render`].
    pub fn args_for(&self, cmd: &[String]) -> Option<Vec<String>> {
        if cmd.is_empty() {
            return Some(self.args.clone());
        }
        self.cmds
            .iter()
            .find_map(|rule| rule.apply(cmd, &self.args))
    }
}

impl CmdRule {
    fn apply(&self, cmd: &[String], image_args: &[String]) -> Option<Vec<String>> {
        if cmd.len() != self.patterns.len() {
            return None;
        }
        let mut groups: HashMap<String, String> = HashMap::new();
        for (pattern, word) in self.patterns.iter().zip(cmd) {
            let found = pattern.captures(word)?;
            for name in pattern.capture_names().flatten() {
                if let Some(value) = found.name(name) {
                    groups.insert(name.to_owned(), value.as_str().to_owned());
                }
            }
        }
        let Some(args) = &self.args else {
            return Some(image_args.to_vec());
        };
        Some(
            args.iter()
                .map(|arg| {
                    render(arg, |p| match p {
                        Placeholder::Group(name) => groups.get(name).cloned(),
                        Placeholder::Port(_) => None,
                    })
                })
                .collect(),
        )
    }
}

/// A `{...}` in an image's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder<'a> {
    /// `{port:6379/tcp}`: the port key, normalised (`6379/tcp`).
    Port(&'a str),
    /// `{name}`: a named group of the `cmd` patterns.
    Group(&'a str),
}

/// Replaces each placeholder `value` answers for; the others stay as written.
pub fn render<'a>(arg: &'a str, value: impl Fn(Placeholder<'a>) -> Option<String>) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        match placeholder_at(after) {
            Some((placeholder, len)) => {
                match value(placeholder) {
                    Some(text) => out.push_str(&text),
                    None => out.push_str(&after[..len]),
                }
                rest = &after[len..];
            }
            None => {
                out.push('{');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The ports `arg`'s placeholders name, normalised.
pub(crate) fn port_placeholders(arg: &str) -> Vec<String> {
    placeholders(arg)
        .into_iter()
        .filter_map(|placeholder| match placeholder {
            Placeholder::Port(port) => normalise_port(port),
            Placeholder::Group(_) => None,
        })
        .collect()
}

/// Every placeholder of `arg`.
fn placeholders(arg: &str) -> Vec<Placeholder<'_>> {
    let mut found = Vec::new();
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let after = &rest[open..];
        match placeholder_at(after) {
            Some((placeholder, len)) => {
                found.push(placeholder);
                rest = &after[len..];
            }
            None => rest = &after[1..],
        }
    }
    found
}

/// The placeholder `text` starts with (at its `{`) and its length.
fn placeholder_at(text: &str) -> Option<(Placeholder<'_>, usize)> {
    let close = text.find('}')?;
    let inner = &text[1..close];
    if let Some(port) = inner.strip_prefix("port:") {
        return Some((Placeholder::Port(port), close + 1));
    }
    let mut chars = inner.chars();
    let word = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    word.then_some((Placeholder::Group(inner), close + 1))
}

/// `6379` -> `6379/tcp`; `6379/udp` stays; anything else is `None`.
pub fn normalise_port(text: &str) -> Option<String> {
    let (number, proto) = text.split_once('/').unwrap_or((text, "tcp"));
    let number: u16 = number.parse().ok().filter(|n| *n > 0)?;
    matches!(proto, "tcp" | "udp" | "sctp").then(|| format!("{number}/{proto}"))
}

#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    #[error("read images file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("parse images file {}: {source}", path.display())]
    Syntax {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("load images file {}: key `{key}` {problem}", path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        problem: String,
    },
}

/// Where bare program names are looked up, in order, before `PATH`.
#[derive(Debug, Clone)]
pub struct ProgramSearch {
    pub dirs: Vec<PathBuf>,
    pub path_var: Option<std::ffi::OsString>,
}

impl ProgramSearch {
    /// The directory of the running executable (and, for a test binary under
    /// `target/<profile>/deps`, the profile directory where cargo puts binaries), then `PATH`.
    pub fn beside_current_exe() -> Self {
        let mut dirs = Vec::new();
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
        {
            if dir.file_name() == Some(OsStr::new("deps"))
                && let Some(profile_dir) = dir.parent()
            {
                dirs.push(dir.clone());
                dirs.push(profile_dir.to_path_buf());
            } else {
                dirs.push(dir);
            }
        }
        ProgramSearch {
            dirs,
            path_var: std::env::var_os("PATH"),
        }
    }

    fn find(&self, program: &str) -> Option<PathBuf> {
        let path_dirs = self
            .path_var
            .as_deref()
            .map(|var| std::env::split_paths(var).collect::<Vec<_>>())
            .unwrap_or_default();
        self.dirs
            .iter()
            .chain(path_dirs.iter())
            .map(|dir| dir.join(program))
            .find(|candidate| is_executable(candidate))
    }
}

impl Images {
    /// Loads the file, resolving bare program names with [`ProgramSearch::beside_current_exe`].
    pub fn load(path: &Path) -> Result<Self, ImagesError> {
        Self::load_with(path, &ProgramSearch::beside_current_exe())
    }

    pub fn load_with(path: &Path, search: &ProgramSearch) -> Result<Self, ImagesError> {
        let text = std::fs::read_to_string(path).map_err(|source| ImagesError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path, search)
    }

    /// Parses the file's text; `path` names it in errors and anchors relative programs.
    pub fn parse(text: &str, path: &Path, search: &ProgramSearch) -> Result<Self, ImagesError> {
        let invalid = |key: String, problem: String| ImagesError::Invalid {
            path: path.to_path_buf(),
            key,
            problem,
        };
        let document: toml::Table = toml::from_str(text).map_err(|source| ImagesError::Syntax {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
        if let Some(unknown) = document.keys().find(|key| *key != "images") {
            return Err(invalid(
                unknown.clone(),
                "is not known (the file holds one `images` table)".into(),
            ));
        }
        let Some(table) = document.get("images") else {
            return Err(invalid("images".into(), "is missing".into()));
        };
        let Some(table) = table.as_table() else {
            return Err(invalid("images".into(), "must be a table".into()));
        };
        if table.is_empty() {
            return Err(invalid("images".into(), "defines no image".into()));
        }
        let base_dir = path.parent().unwrap_or(Path::new("."));
        let mut entries = BTreeMap::new();
        for (name, value) in table {
            let key = format!("images.{}", quoted(name));
            let image = parse_image(name, value, &key, base_dir, search)
                .map_err(|(key, problem)| invalid(key, problem))?;
            let normalised = normalise_reference(name);
            if let Some(previous) = entries.insert(normalised.clone(), image) {
                return Err(invalid(
                    key,
                    format!(
                        "names the same image as `images.{}` ({normalised})",
                        quoted(&previous.name)
                    ),
                ));
            }
        }
        Ok(Images { entries })
    }

    /// Finds an image by reference; `name` and `name:latest` are the same image, and an
    /// entry `name:*` takes every tag of `name` that has no entry of its own.
    pub fn get(&self, reference: &str) -> Option<&Image> {
        let normalised = normalise_reference(reference);
        self.entries.get(&normalised).or_else(|| {
            let (repository, tag) = split_tag(&normalised)?;
            // Only a tag Docker would take: `redis:7\0` is no image.
            valid_tag(tag).then(|| self.entries.get(&format!("{repository}:*")))?
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Image> {
        self.entries.values()
    }
}

fn parse_image(
    name: &str,
    value: &toml::Value,
    key: &str,
    base_dir: &Path,
    search: &ProgramSearch,
) -> Result<Image, (String, String)> {
    if name.trim().is_empty() {
        return Err((key.into(), "is an empty image name".into()));
    }
    let Some(table) = value.as_table() else {
        return Err((key.into(), "must be a table with a `command`".into()));
    };
    const KEYS: &[&str] = &["command", "env", "ports", "cmd", "optional"];
    if let Some(unknown) = table.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err((
            format!("{key}.{}", quoted(unknown)),
            "is not known (expected `command`, and optionally `env`, `ports`, `cmd`, `optional`)"
                .into(),
        ));
    }
    let optional = match table.get("optional") {
        None => false,
        Some(value) => value
            .as_bool()
            .ok_or_else(|| (format!("{key}.optional"), "must be true or false".into()))?,
    };
    let command_key = format!("{key}.command");
    let Some(command) = table.get("command") else {
        return Err((command_key, "is missing".into()));
    };
    let words = command
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| (command_key.clone(), "must be an array of strings".into()))?;
    if let Some(at) = words.iter().position(|word| word.contains('\0')) {
        return Err((
            format!("{command_key}[{at}]"),
            "holds a NUL byte, which no command line can carry".into(),
        ));
    }
    let Some((program, args)) = words.split_first() else {
        return Err((command_key, "is empty: it needs at least a program".into()));
    };
    if program.trim().is_empty() {
        return Err((
            format!("{command_key}[0]"),
            "is an empty program name".into(),
        ));
    }
    let (program, unavailable) = match resolve_program(program, base_dir, search) {
        Ok(path) => (path, None),
        Err(problem) if optional => (PathBuf::from(program), Some(problem)),
        Err(problem) => return Err((format!("{command_key}[0]"), problem)),
    };
    let ports = parse_ports(table.get("ports"), key)?;
    check_placeholders(args, &command_key, 1, &ports, &[])?;
    let cmds = parse_cmds(table.get("cmd"), key, &ports)?;

    let mut env = BTreeMap::new();
    if let Some(value) = table.get("env") {
        let env_key = format!("{key}.env");
        let Some(vars) = value.as_table() else {
            return Err((env_key, "must be a table of strings".into()));
        };
        for (var, value) in vars {
            let var_key = format!("{env_key}.{}", quoted(var));
            if var.is_empty() || var.contains(['=', '\0']) {
                return Err((var_key, "is not a valid variable name".into()));
            }
            let Some(value) = value.as_str() else {
                return Err((var_key, "must be a string".into()));
            };
            if value.contains('\0') {
                return Err((
                    var_key,
                    "holds a NUL byte, which no environment can carry".into(),
                ));
            }
            env.insert(var.clone(), value.to_owned());
        }
    }
    Ok(Image {
        name: name.to_owned(),
        id: format!("sha256:{}", random_hex(32)),
        program,
        args: args.to_vec(),
        env,
        ports,
        cmds,
        unavailable,
    })
}

fn parse_ports(value: Option<&toml::Value>, key: &str) -> Result<Vec<String>, (String, String)> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let ports_key = format!("{key}.ports");
    let items = value.as_array().ok_or_else(|| {
        (
            ports_key.clone(),
            "must be an array of ports (\"6379/tcp\")".into(),
        )
    })?;
    let mut ports: Vec<String> = Vec::new();
    for (at, item) in items.iter().enumerate() {
        let port = item.as_str().and_then(normalise_port).ok_or_else(|| {
            (
                format!("{ports_key}[{at}]"),
                "must be a port as Docker writes it: 1 to 65535, then /tcp, /udp or /sctp".into(),
            )
        })?;
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    Ok(ports)
}

/// Every placeholder of `args` names an exposed port or one of `groups`.
fn check_placeholders(
    args: &[String],
    key: &str,
    first_index: usize,
    ports: &[String],
    groups: &[String],
) -> Result<(), (String, String)> {
    for (at, arg) in args.iter().enumerate() {
        for placeholder in placeholders(arg) {
            let problem = match placeholder {
                Placeholder::Port(port) => match normalise_port(port) {
                    Some(port) if ports.contains(&port) => continue,
                    Some(port) => format!("names port {port}, which `ports` does not list"),
                    None => format!("names {port:?}, which is not a port (6379/tcp)"),
                },
                Placeholder::Group(name) if groups.iter().any(|g| g == name) => continue,
                Placeholder::Group(name) => format!(
                    "names {{{name}}}, which is neither {{port:N/tcp}} nor a named group of \
                     the `cmd` patterns"
                ),
            };
            return Err((format!("{key}[{}]", at + first_index), problem));
        }
    }
    Ok(())
}

fn parse_cmds(
    value: Option<&toml::Value>,
    key: &str,
    ports: &[String],
) -> Result<Vec<CmdRule>, (String, String)> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let cmd_key = format!("{key}.cmd");
    let items = value.as_array().ok_or_else(|| {
        (
            cmd_key.clone(),
            "must be an array of tables with `match` and optionally `args`".into(),
        )
    })?;
    let strings = |value: &toml::Value| -> Option<Vec<String>> {
        value
            .as_array()?
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect()
    };
    let mut rules = Vec::new();
    for (at, item) in items.iter().enumerate() {
        let rule_key = format!("{cmd_key}[{at}]");
        let Some(table) = item.as_table() else {
            return Err((rule_key, "must be a table with `match`".into()));
        };
        if let Some(unknown) = table.keys().find(|k| *k != "match" && *k != "args") {
            return Err((
                format!("{rule_key}.{}", quoted(unknown)),
                "is not known (expected `match` and optionally `args`)".into(),
            ));
        }
        let match_key = format!("{rule_key}.match");
        let words = table
            .get("match")
            .and_then(strings)
            .filter(|words| !words.is_empty())
            .ok_or_else(|| {
                (
                    match_key.clone(),
                    "must be a non-empty array of patterns, one per Cmd word".into(),
                )
            })?;
        let mut patterns = Vec::new();
        let mut groups = Vec::new();
        for (index, word) in words.iter().enumerate() {
            let pattern = regex::Regex::new(&format!("^(?:{word})$")).map_err(|err| {
                (
                    format!("{match_key}[{index}]"),
                    format!("is not a regular expression: {err}"),
                )
            })?;
            groups.extend(pattern.capture_names().flatten().map(str::to_owned));
            patterns.push(pattern);
        }
        let args = match table.get("args") {
            None => None,
            Some(value) => {
                let args = strings(value).ok_or_else(|| {
                    (
                        format!("{rule_key}.args"),
                        "must be an array of strings".into(),
                    )
                })?;
                check_placeholders(&args, &format!("{rule_key}.args"), 0, ports, &groups)?;
                Some(args)
            }
        };
        rules.push(CmdRule { patterns, args });
    }
    Ok(rules)
}

fn resolve_program(
    program: &str,
    base_dir: &Path,
    search: &ProgramSearch,
) -> Result<PathBuf, String> {
    if program.contains('/') {
        let path = base_dir.join(program);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(format!(
                "names `{}`, which is not an executable file",
                path.display()
            ))
        };
    }
    search.find(program).ok_or_else(|| {
        let dirs: Vec<String> = search
            .dirs
            .iter()
            .map(|dir| dir.display().to_string())
            .collect();
        format!(
            "names program `{program}`, which is neither in {} nor on PATH",
            if dirs.is_empty() {
                "the runtime's directory".to_owned()
            } else {
                dirs.join(", ")
            }
        )
    })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Docker's tag grammar: a word character, then up to 127 of word characters, `.` and `-`.
fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `name:tag` -> (`name`, `tag`); `None` for a digest or no tag.
pub(crate) fn split_tag(reference: &str) -> Option<(&str, &str)> {
    if reference.contains('@') {
        return None;
    }
    let (repository, tag) = reference.rsplit_once(':')?;
    (!tag.contains('/')).then_some((repository, tag))
}

/// `name` -> `name:latest`; references with a tag or a digest are kept as they are.
/// Docker Hub's full names are its short ones (`docker.io/library/redis` is `redis`).
pub(crate) fn normalise_reference(reference: &str) -> String {
    let reference = [
        "docker.io/library/",
        "index.docker.io/library/",
        "docker.io/",
        "index.docker.io/",
    ]
    .iter()
    .find_map(|prefix| reference.strip_prefix(prefix))
    .unwrap_or(reference);
    let last_component = reference.rsplit('/').next().unwrap_or(reference);
    if reference.contains('@') || last_component.contains(':') {
        reference.to_owned()
    } else {
        format!("{reference}:latest")
    }
}

fn quoted(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

pub(crate) fn random_hex(bytes: usize) -> String {
    use std::fmt::Write;
    (0..bytes).fold(String::with_capacity(bytes * 2), |mut out, _| {
        let _ = write!(out, "{:02x}", rand::random::<u8>());
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search() -> ProgramSearch {
        ProgramSearch {
            dirs: vec![],
            path_var: Some("/bin:/usr/bin".into()),
        }
    }

    fn parse(text: &str) -> Result<Images, ImagesError> {
        Images::parse(text, Path::new("/etc/images.toml"), &search())
    }

    #[test]
    fn bare_program_is_resolved_on_path_and_tag_defaults_to_latest() {
        let images = parse(
            r#"
            [images."bot"]
            command = ["sh", "-c", "exit 0"]
            env = { A = "1" }
            "#,
        )
        .unwrap();
        let image = images.get("bot:latest").unwrap();
        assert!(image.program.ends_with("sh"), "{:?}", image.program);
        assert_eq!(image.args, ["-c", "exit 0"]);
        assert_eq!(image.env["A"], "1");
        assert!(images.get("bot").is_some());
        assert!(images.get("other").is_none());
    }

    #[test]
    fn missing_command_names_file_and_key() {
        let err = parse("[images.\"vexa-bot:latest\"]\nenv = {}\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/etc/images.toml"), "{text}");
        assert!(
            text.contains(r#"images."vexa-bot:latest".command"#),
            "{text}"
        );
    }

    #[test]
    fn unknown_program_names_the_command_key() {
        let err = parse("[images.bot]\ncommand = [\"no-such-program-here\"]\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("images.bot.command[0]"), "{text}");
        assert!(text.contains("no-such-program-here"), "{text}");
    }

    #[test]
    fn misspelt_keys_and_wrong_types_are_named() {
        let err = parse("[images.bot]\ncommand = [\"sh\"]\nenvs = {}\n").unwrap_err();
        assert!(err.to_string().contains("images.bot.envs"), "{err}");
        let err = parse("[images.bot]\ncommand = \"sh\"\n").unwrap_err();
        assert!(err.to_string().contains("array of strings"), "{err}");
        let err = parse("[images.bot]\ncommand = [\"sh\"]\nenv = { A = 1 }\n").unwrap_err();
        assert!(err.to_string().contains("images.bot.env.A"), "{err}");
        let err = parse("[image.bot]\ncommand = [\"sh\"]\n").unwrap_err();
        assert!(err.to_string().contains("`image`"), "{err}");
    }

    // Regression: a NUL in an image's command or env was loaded, and then every start of
    // that image failed with a 500.
    #[test]
    fn a_nul_in_an_images_command_or_env_fails_the_load_naming_the_key() {
        let err = parse("[images.bot]\ncommand = [\"sh\", \"-c\", \"a\\u0000b\"]\n").unwrap_err();
        assert!(err.to_string().contains("images.bot.command[2]"), "{err}");
        assert!(err.to_string().contains("NUL"), "{err}");
        let err =
            parse("[images.bot]\ncommand = [\"sh\"]\nenv = { A = \"x\\u0000\" }\n").unwrap_err();
        assert!(err.to_string().contains("images.bot.env.A"), "{err}");
    }

    #[test]
    fn duplicate_image_after_normalisation_is_rejected() {
        let err = parse(
            "[images.bot]\ncommand = [\"sh\"]\n[images.\"bot:latest\"]\ncommand = [\"sh\"]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("same image"), "{err}");
    }

    #[test]
    fn a_star_tag_takes_every_tag_and_docker_hubs_long_names_are_the_short_ones() {
        let images = parse(
            "[images.\"redis:*\"]\ncommand = [\"sh\"]\n[images.\"redis:7\"]\ncommand = [\"true\"]\n",
        )
        .unwrap();
        assert!(images.get("redis:5.0").unwrap().program.ends_with("sh"));
        assert!(images.get("redis").unwrap().program.ends_with("sh"));
        assert!(images.get("redis:7").unwrap().program.ends_with("true"));
        assert!(
            images
                .get("docker.io/library/redis:5.0")
                .unwrap()
                .program
                .ends_with("sh")
        );
        assert!(images.get("other/redis:5.0").is_none());
    }

    #[test]
    fn the_toxiproxy_image_takes_only_ports_a_listener_can_have() {
        // Regression: `-port=99999` matched the map's Cmd and was accepted, and the
        // container then exited 2 at start.
        // Stand-ins for the programs the map requires; the optional ones are left out.
        let bin = tempfile::tempdir().unwrap();
        for name in ["fault-proxy", "mock-bot"] {
            let program = bin.path().join(name);
            std::fs::write(&program, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let search = ProgramSearch {
            dirs: vec![bin.path().to_path_buf()],
            path_var: None,
        };
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/images.toml");
        let images = Images::load_with(&fixtures, &search).unwrap();
        let toxiproxy = images.get("ghcr.io/shopify/toxiproxy:2.12.0").unwrap();
        let cmd = |port: &str| vec!["-host=127.0.0.1".to_owned(), format!("-port={port}")];
        for port in ["0", "1", "8474", "59999", "65535"] {
            assert!(toxiproxy.args_for(&cmd(port)).is_some(), "{port}");
        }
        for port in ["65536", "99999", "65540", "70000", "123456", "-1", ""] {
            assert_eq!(toxiproxy.args_for(&cmd(port)), None, "{port}");
        }
    }

    #[test]
    fn a_star_tag_takes_no_tag_docker_would_refuse() {
        // Regression: `redis:7\0` was accepted as a tag of `redis:*` and ran with a NUL
        // in its Config.Image; Docker answers "invalid reference format".
        let images = parse("[images.\"redis:*\"]\ncommand = [\"sh\"]\n").unwrap();
        for bad in ["redis:7\0", "redis:.7", "redis:-7", "redis:7 ", "redis:é"] {
            assert!(images.get(bad).is_none(), "{bad:?}");
        }
        let longest = format!("redis:{}", "7".repeat(128));
        assert!(images.get(&longest).is_some());
        assert!(images.get(&format!("{longest}7")).is_none());
        assert!(images.get("redis:7.2-alpine_x").is_some());
    }

    #[test]
    fn ports_fill_their_placeholders_and_a_placeholder_must_name_a_listed_port() {
        let images = parse(
            "[images.db]\ncommand = [\"sh\", \"-c\", \"serve --port={port:5432}\"]\nports = [\"5432\"]\n",
        )
        .unwrap();
        let image = images.get("db").unwrap();
        assert_eq!(image.ports, ["5432/tcp"]);
        let rendered = render(&image.args[1], |p| match p {
            Placeholder::Port("5432") => Some("40001".to_owned()),
            _ => None,
        });
        assert_eq!(rendered, "serve --port=40001");
        let err = parse("[images.db]\ncommand = [\"sh\", \"{port:6379/tcp}\"]\n").unwrap_err();
        assert!(err.to_string().contains("images.db.command[1]"), "{err}");
        assert!(err.to_string().contains("6379/tcp"), "{err}");
        let err = parse("[images.db]\ncommand = [\"sh\"]\nports = [\"99999/tcp\"]\n").unwrap_err();
        assert!(err.to_string().contains("images.db.ports[0]"), "{err}");
    }

    #[test]
    fn a_cmd_runs_only_as_a_listed_rule_with_its_named_groups() {
        let images = parse(
            r#"
            [images.proxy]
            command = ["sh", "--port", "{port:8474/tcp}"]
            ports = ["8474/tcp"]
            cmd = [
                { match = ['-port=(?<port>[0-9]+)'], args = ["--port", "{port}"] },
                { match = ["-v"] },
            ]
            "#,
        )
        .unwrap();
        let image = images.get("proxy").unwrap();
        let words = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(image.args_for(&[]).unwrap(), image.args);
        assert_eq!(
            image.args_for(&words(&["-port=9000"])).unwrap(),
            ["--port", "9000"]
        );
        assert_eq!(image.args_for(&words(&["-v"])).unwrap(), image.args);
        assert_eq!(image.args_for(&words(&["-port=x"])), None);
        assert_eq!(image.args_for(&words(&["-port=1", "-v"])), None);
        let err = parse(
            "[images.p]\ncommand = [\"sh\"]\ncmd = [{ match = [\"a\"], args = [\"{nope}\"] }]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("images.p.cmd[0].args[0]"), "{err}");
        let err =
            parse("[images.p]\ncommand = [\"sh\"]\ncmd = [{ match = [\"(\"] }]\n").unwrap_err();
        assert!(
            err.to_string().contains("images.p.cmd[0].match[0]"),
            "{err}"
        );
    }

    #[test]
    fn an_optional_image_without_its_program_is_unavailable_not_an_error() {
        let images =
            parse("[images.db]\ncommand = [\"no-such-program-here\"]\noptional = true\n").unwrap();
        let reason = images.get("db").unwrap().unavailable.clone().unwrap();
        assert!(reason.contains("no-such-program-here"), "{reason}");
        let err = parse("[images.db]\ncommand = [\"sh\"]\noptional = \"yes\"\n").unwrap_err();
        assert!(err.to_string().contains("images.db.optional"), "{err}");
    }

    #[test]
    fn syntax_error_names_the_file() {
        let err = parse("[images.bot\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("parse images file /etc/images.toml")
        );
    }
}
