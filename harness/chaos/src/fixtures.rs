//! The data files the harness needs at run time, built into the binary so an installed
//! `chaos` works from any folder: the image map the runtime starts bots from, and the
//! acceptance criteria of the sign-off. `--fixtures DIR` (or `STOPFLOW_FIXTURES`) reads
//! them from a folder of the user's instead.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const IMAGES: &str = include_str!("../../../fixtures/images.toml");
const ACCEPTANCE: &str = include_str!("../../../fixtures/acceptance.toml");

static OVERRIDE: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Reads the fixtures from `dir` from now on (`--fixtures`); the first call wins.
pub fn set_dir(dir: Option<PathBuf>) {
    let _ = OVERRIDE.set(dir.or_else(|| std::env::var_os("STOPFLOW_FIXTURES").map(PathBuf::from)));
}

fn dir() -> Option<&'static Path> {
    OVERRIDE
        .get_or_init(|| std::env::var_os("STOPFLOW_FIXTURES").map(PathBuf::from))
        .as_deref()
}

#[derive(Debug, thiserror::Error)]
#[error("read fixture {path}: {source}")]
pub struct FixtureError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// A fixture's text: from the override folder when one is set, else the built-in copy.
fn text(name: &str, builtin: &'static str) -> Result<(String, PathBuf), FixtureError> {
    match dir() {
        Some(dir) => {
            let path = dir.join(name);
            std::fs::read_to_string(&path)
                .map(|t| (t, path.clone()))
                .map_err(|source| FixtureError { path, source })
        }
        None => Ok((
            builtin.to_owned(),
            PathBuf::from(format!("<built-in {name}>")),
        )),
    }
}

/// The image-to-command map (`images.toml`).
pub fn images() -> Result<(String, PathBuf), FixtureError> {
    text("images.toml", IMAGES)
}

/// The acceptance criteria (`acceptance.toml`).
pub fn acceptance() -> Result<(String, PathBuf), FixtureError> {
    text("acceptance.toml", ACCEPTANCE)
}
