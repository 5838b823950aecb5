//! Finding the workspace's own binaries from a test or tool binary.

use std::path::{Path, PathBuf};

use crate::InfraError;

/// Path of a workspace binary, `target/<profile>/<name>`, found from the current
/// executable (tests live in `target/<profile>/deps/`, examples in `.../examples/`).
pub fn workspace_bin(name: &str) -> Result<PathBuf, InfraError> {
    let exe = std::env::current_exe().map_err(|source| InfraError::Io {
        action: "locate the current executable",
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    find_from(&exe, name)
}

fn find_from(exe: &Path, name: &str) -> Result<PathBuf, InfraError> {
    let mut dir = exe.parent().unwrap_or(Path::new("."));
    if dir
        .file_name()
        .is_some_and(|d| d == "deps" || d == "examples")
    {
        dir = dir.parent().unwrap_or(dir);
    }
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.is_file() {
        return Ok(path);
    }
    // An installed harness may have its programs elsewhere on PATH.
    on_path(name).ok_or(InfraError::MissingBinary {
        name: name.to_owned(),
        path,
    })
}

fn on_path(name: &str) -> Option<PathBuf> {
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(&file))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn a_binary_next_to_the_deps_dir_is_found_from_a_test_executable() {
        let target = tempfile::tempdir().unwrap();
        let profile = target.path().join("debug");
        fs::create_dir_all(profile.join("deps")).unwrap();
        fs::write(profile.join("mock-bot"), b"").unwrap();

        let found = find_from(&profile.join("deps").join("infra-0123abcd"), "mock-bot").unwrap();

        assert_eq!(found, profile.join("mock-bot"));
    }

    #[test]
    fn a_missing_binary_is_named_with_how_to_build_it() {
        let target = tempfile::tempdir().unwrap();
        let exe = target
            .path()
            .join("debug")
            .join("deps")
            .join("infra-0123abcd");

        let message = find_from(&exe, "no-such-bin").unwrap_err().to_string();

        assert!(message.contains("`no-such-bin`"), "{message}");
        assert!(message.contains("cargo build --workspace"), "{message}");
    }

    #[test]
    fn workspace_bin_looks_next_to_this_test_binary() {
        let err = workspace_bin("stopflow-no-such-bin").unwrap_err();
        let InfraError::MissingBinary { path, .. } = err else {
            panic!("unexpected error: {err}");
        };
        let exe = std::env::current_exe().unwrap();
        assert_eq!(Some(path.parent().unwrap()), exe.parent().unwrap().parent());
    }
}
