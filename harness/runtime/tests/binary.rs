//! The `runtime` executable: readiness lines, signals, startup errors, and children that
//! never outlive it.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::{DEADLINE, process_gone, wait_until_gone, write_images};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

struct Started {
    child: Child,
    /// The printed addresses, in order.
    addresses: Vec<String>,
}

/// Starts the binary and reads its `runtime listening on` lines.
async fn start_binary(args: &[&str], listeners: usize) -> Started {
    start_binary_with_env(args, listeners, &[]).await
}

/// As [`start_binary`], with `env` added to the runtime's own environment.
async fn start_binary_with_env(args: &[&str], listeners: usize, env: &[(&str, &str)]) -> Started {
    let mut child = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the runtime binary");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut addresses = Vec::new();
    while addresses.len() < listeners {
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("a readiness line before the deadline")
            .expect("read stdout")
            .expect("the runtime to keep running");
        let address = line
            .strip_prefix("runtime listening on ")
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        addresses.push(address.to_owned());
    }
    Started { child, addresses }
}

async fn run_container(http: &reqwest::Client, base: &str, name: &str, image: &str) -> i32 {
    let created = http
        .post(format!("{base}/containers/create?name={name}"))
        .json(&json!({"Image": image}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let started = http
        .post(format!("{base}/containers/{name}/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 204);
    let inspected: Value = http
        .get(format!("{base}/containers/{name}/json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    i32::try_from(inspected["State"]["Pid"].as_i64().unwrap()).unwrap()
}

fn args<'a>(images: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--images", images];
    all.extend_from_slice(extra);
    all
}

#[tokio::test]
async fn children_die_when_the_runtime_is_killed_with_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_images(dir.path());
    let images = images.to_str().unwrap();
    let mut started = start_binary(&args(images, &["--listen", "127.0.0.1:0"]), 1).await;
    let base = format!("http://{}", started.addresses[0]);
    let http = reqwest::Client::new();
    let deaf = run_container(&http, &base, "deaf", "stubborn").await;
    let polite = run_container(&http, &base, "polite", "graceful").await;

    started.child.start_kill().expect("SIGKILL the runtime");
    started.child.wait().await.unwrap();
    wait_until_gone(deaf).await;
    wait_until_gone(polite).await;
}

#[tokio::test]
async fn sigterm_shuts_down_kills_containers_and_removes_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_images(dir.path());
    let socket = dir.path().join("rt.sock");
    let extra = [
        "--socket",
        socket.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ];
    let mut started = start_binary(&args(images.to_str().unwrap(), &extra), 2).await;
    assert_eq!(started.addresses[0], format!("unix://{}", socket.display()));
    let tcp: std::net::SocketAddr = started.addresses[1].parse().expect("a socket address");
    assert!(tcp.ip().is_loopback());
    assert_ne!(tcp.port(), 0, "the real port is printed");

    let http = reqwest::Client::new();
    let pid = run_container(&http, &format!("http://{tcp}"), "deaf", "stubborn").await;
    let runtime_pid = nix::unistd::Pid::from_raw(started.child.id().unwrap() as i32);
    nix::sys::signal::kill(runtime_pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(DEADLINE, started.child.wait())
        .await
        .expect("the runtime exits")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(process_gone(pid));
    assert!(!socket.exists());
}

#[tokio::test]
async fn bad_images_file_fails_naming_file_and_key_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("bad-images.toml");
    std::fs::write(
        &images,
        "[images.\"vexa-bot:latest\"]\nenv = { A = \"1\" }\n",
    )
    .unwrap();
    let socket = dir.path().join("never.sock");
    let output = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(["--images", images.to_str().unwrap()])
        .args(["--socket", socket.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("failed to load images file"), "{stderr}");
    assert!(stderr.contains(&images.display().to_string()), "{stderr}");
    assert!(
        stderr.contains(r#"images."vexa-bot:latest".command"#),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "no readiness line");
    assert!(!Path::new(&socket).exists(), "no socket left behind");

    let missing = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args([
            "--images",
            "/nonexistent/images.toml",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("failed to read images file /nonexistent/images.toml"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_socket_path_that_is_not_a_socket_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_images(dir.path());
    let not_socket = dir.path().join("file.sock");
    std::fs::write(&not_socket, "keep me").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_runtime"))
        .args(["--images", images.to_str().unwrap()])
        .args(["--socket", not_socket.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not a socket"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&not_socket).unwrap(), "keep me");
}

// Regression: containers inherited the runtime's whole environment, where Docker passes
// a container none of it.
#[tokio::test]
async fn the_runtimes_own_environment_does_not_reach_containers_except_path() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_images(dir.path());
    let log_dir = dir.path().join("logs");
    let extra = [
        "--listen",
        "127.0.0.1:0",
        "--log-dir",
        log_dir.to_str().unwrap(),
        "--env",
        "EXTRA=from-flag",
    ];
    let started = start_binary_with_env(
        &args(images.to_str().unwrap(), &extra),
        1,
        &[("STOPFLOW_RUNTIME_ONLY", "leaked")],
    )
    .await;
    let base = format!("http://{}", started.addresses[0]);
    run_container(&reqwest::Client::new(), &base, "sealed", "printenv").await;

    let log_file = log_dir.join("sealed.log");
    let mut log = String::new();
    let printed = common::poll_until(|| {
        log = std::fs::read_to_string(&log_file).unwrap_or_default();
        log.contains("ready\n")
    })
    .await;
    assert!(printed, "the container never got ready: {log:?}");
    assert!(log.contains("LEAK=\n"), "{log}");
    assert!(log.contains("EXTRA=from-flag\n"), "{log}");
    let path = std::env::var("PATH").expect("the tests run with a PATH");
    assert!(log.contains(&format!("PATH={path}\n")), "{log}");
}

// Pins: `--listen` took any address, so `--listen 0.0.0.0:2375` served the
// unauthenticated API, which runs processes as the runtime's user, to the whole network.
#[tokio::test]
async fn a_non_loopback_listen_address_is_refused_at_startup_naming_it_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_images(dir.path());
    let socket = dir.path().join("never.sock");
    for address in ["0.0.0.0:0", "[::]:0", "192.0.2.1:2375"] {
        let output = Command::new(env!("CARGO_BIN_EXE_runtime"))
            .args(["--images", images.to_str().unwrap()])
            .args(["--socket", socket.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--listen", address])
            .output()
            .await
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{address}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!(
                "runtime: failed to serve on {address}: it is not a loopback address"
            )),
            "{stderr}"
        );
        assert!(stderr.contains("--allow-non-loopback-listen"), "{stderr}");
        assert!(output.stdout.is_empty(), "no readiness line");
        assert!(!socket.exists(), "no socket left behind");
    }
}

// Pins: refusing non-loopback addresses must keep every loopback form the harness and
// its tests use.
#[tokio::test]
async fn loopback_listen_addresses_in_every_form_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_images(dir.path());
    let extra = ["--listen", "127.0.0.1:0", "--listen", "127.0.0.2:0"];
    let started = start_binary(&args(images.to_str().unwrap(), &extra), 2).await;
    for address in &started.addresses {
        let addr: std::net::SocketAddr = address.parse().expect("a socket address");
        assert!(addr.ip().is_loopback(), "{addr}");
    }
}
