//! The `--images` file: which command each image name runs.
//!
//! ```toml
//! [images."vexa-bot:latest"]
//! command = ["mock-bot"]          # bare names: next to the runtime's executable, then PATH
//! env = { RUST_LOG = "info" }     # optional, added to every container of this image
//! ```
//! Every problem is reported with the file and the exact key, and programs are resolved
//! when the file is loaded, so a typo fails at startup rather than at the first start.

use std::collections::BTreeMap;
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
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
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

    /// Finds an image by reference; `name` and `name:latest` are the same image.
    pub fn get(&self, reference: &str) -> Option<&Image> {
        self.entries.get(&normalise_reference(reference))
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
    if let Some(unknown) = table.keys().find(|k| *k != "command" && *k != "env") {
        return Err((
            format!("{key}.{}", quoted(unknown)),
            "is not known (expected `command` and optionally `env`)".into(),
        ));
    }
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
    let program = resolve_program(program, base_dir, search)
        .map_err(|problem| (format!("{command_key}[0]"), problem))?;

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
    })
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

/// `name` -> `name:latest`; references with a tag or a digest are kept as they are.
pub(crate) fn normalise_reference(reference: &str) -> String {
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
    fn syntax_error_names_the_file() {
        let err = parse("[images.bot\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("parse images file /etc/images.toml")
        );
    }
}
