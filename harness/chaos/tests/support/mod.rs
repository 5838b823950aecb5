//! What the `chaos` integration tests share: the binary as a user runs it, its output as
//! one text, scenario files in a temp folder, and the catalogue.
//! (Each test binary uses a part of it.)
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

/// The repository's root, where `scenarios/` and `fixtures/` are.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `chaos`, run from the repository's root as in CI (one line per run).
pub fn chaos() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chaos"));
    cmd.current_dir(root());
    cmd.env("CI", "1");
    cmd
}

/// Exit code, stdout and stderr, for assertion messages and searches.
pub fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Writes `<dir>/<name>.toml`.
pub fn scenario(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, body).unwrap();
    path
}

/// Every scenario of `scenarios/`, loaded.
pub fn catalogue() -> Vec<(PathBuf, Arc<chaos::scenario::Scenario>)> {
    chaos::scenario::discover(&[root().join("scenarios")])
        .unwrap()
        .into_iter()
        .map(|path| {
            let s = chaos::scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            (path, Arc::new(s))
        })
        .collect()
}
