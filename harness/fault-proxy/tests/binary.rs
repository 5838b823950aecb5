//! The `fault-proxy` executable: its readiness line, its API, and a clean stop on SIGTERM.

mod common;

use std::process::Stdio;

use common::within;
use fault_proxy::client::Client;
use fault_proxy::model::NewProxy;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn the_binary_announces_its_address_serves_the_api_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fault-proxy"))
        .args(["--host", "127.0.0.1", "--port", "0", "--seed", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn fault-proxy");
    let stdout = child.stdout.take().unwrap();
    let line = within(
        "the readiness line",
        BufReader::new(stdout).lines().next_line(),
    )
    .await
    .unwrap()
    .expect("a line before exit");
    let addr = line
        .strip_prefix("fault-proxy listening on ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));

    let client = Client::new(addr);
    assert_eq!(client.version().await.unwrap(), env!("CARGO_PKG_VERSION"));
    let proxy = client
        .create_proxy(&NewProxy::new("x", "127.0.0.1:0", "127.0.0.1:1"))
        .await
        .unwrap();
    assert!(proxy.enabled);

    let pid = Pid::from_raw(child.id().expect("running") as i32);
    kill(pid, Signal::SIGTERM).expect("signal the child");
    let status = within("the exit", child.wait()).await.unwrap();
    assert!(status.success(), "{status}");
}

// Regression: `--host 0.0.0.0` served the unauthenticated API to the whole network.
#[tokio::test]
async fn the_binary_refuses_an_api_address_off_loopback_unless_allowed() {
    let refused = within(
        "the refusal",
        Command::new(env!("CARGO_BIN_EXE_fault-proxy"))
            .args(["--host", "0.0.0.0", "--port", "0"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("not a loopback address") && stderr.contains("--allow-non-loopback-listen"),
        "{stderr}"
    );
}
