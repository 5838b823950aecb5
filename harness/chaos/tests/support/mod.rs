//! What the `chaos` integration tests share: the binary as a user runs it, its output as
//! one text, scenario files in a temp folder, and the catalogue.
//! (Each test binary uses a part of it.)
#![allow(dead_code)]

use std::io::BufRead;
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

/// Runs at once of a test that runs a whole catalogue (a matrix column, the catalogue
/// through an adapter). `.config/nextest.toml` gives those tests as many slots: a slot is
/// one run's stack, and the suite's slots are what `chaos` holds on 2 cores.
#[allow(dead_code)]
pub const CATALOGUE_JOBS: usize = 8;

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

/// The standalone `fault-proxy` (a Toxiproxy of our own), killed when dropped, even if
/// the test fails while starting it.
pub struct ExternalProxy {
    _child: infra::process::ChildGuard,
    pub url: String,
    /// Its log (`RUST_LOG=info`).
    pub log: PathBuf,
}

impl ExternalProxy {
    pub fn start(dir: &Path) -> ExternalProxy {
        let log = dir.join("fault-proxy.log");
        let mut cmd = Command::new(infra::bins::workspace_bin("fault-proxy").unwrap());
        cmd.args(["--host", "127.0.0.1", "--port", "0", "--seed", "3"])
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = infra::process::die_with_parent(&mut cmd).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let child = infra::process::ChildGuard::from_std(child, "fault-proxy");
        let addr = listening_on(stdout, "fault-proxy");
        ExternalProxy {
            url: format!("http://{addr}"),
            _child: child,
            log,
        }
    }
}

/// The pid of a process that has exited (and been reaped).
/// Where `program` says it listens: the rest of its first line, `<program> listening on
/// ADDR`, read within a deadline, so a program that never says fails the test instead
/// of hanging it.
pub fn listening_on(stdout: std::process::ChildStdout, program: &str) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{program} says where it listens"));
    line.trim()
        .strip_prefix(&format!("{program} listening on "))
        .unwrap_or_else(|| panic!("unexpected first line of {program}: {line:?}"))
        .to_owned()
}

pub fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}
