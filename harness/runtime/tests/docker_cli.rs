//! The stock docker CLI against the runtime's unix socket and TCP port (skipped when it
//! is not installed).

mod common;

use std::path::Path;
use std::process::Output;

use common::{DEADLINE, Harness, process_gone};
use serde_json::Value;
use tokio::process::Command;

fn docker_on_path() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("docker").is_file()))
}

async fn docker(socket: &Path, config_dir: &Path, args: &[&str]) -> Output {
    docker_at(&format!("unix://{}", socket.display()), config_dir, args).await
}

async fn docker_at(host: &str, config_dir: &Path, args: &[&str]) -> Output {
    let output = Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", config_dir)
        .env("DOCKER_CLI_HINTS", "false")
        .env_remove("DOCKER_CONTEXT")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(DEADLINE, output)
        .await
        .unwrap_or_else(|_| panic!("docker {args:?} timed out"))
        .expect("run docker");
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn docker_cli_can_ps_create_start_stop_inspect_and_rm() {
    if !docker_on_path() {
        println!("skipped: the docker CLI is not on PATH");
        return;
    }
    let h = Harness::start().await;
    let socket = h.socket();
    let config = h.dir.path().join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    let run = |args: &'static [&'static str]| docker(&socket, &config, args);

    let created = run(&[
        "create",
        "--name",
        "cli-bot",
        "--label",
        "vexa.user_id=5",
        "graceful",
    ])
    .await;
    let id = stdout(&created).trim().to_owned();
    assert_eq!(id.len(), 64, "{id}");

    run(&["start", "cli-bot"]).await;
    // The script's TERM trap is set once it prints `ready`; the stop below relies on it.
    h.wait_for_log("cli-bot", |log| log.contains("ready\n"))
        .await;
    let ps = stdout(&run(&["ps"]).await);
    assert!(ps.contains("cli-bot"), "{ps}");
    assert!(ps.contains("Up "), "{ps}");
    let filtered =
        stdout(&run(&["ps", "-q", "--no-trunc", "--filter", "label=vexa.user_id=5"]).await);
    assert_eq!(filtered.trim(), id);

    let pid = h.pid("cli-bot").await;
    run(&["stop", "-t", "5", "cli-bot"]).await;
    assert!(process_gone(pid));

    let inspected: Value =
        serde_json::from_str(&stdout(&run(&["inspect", "cli-bot"]).await)).unwrap();
    assert_eq!(inspected[0]["Id"], id.as_str());
    assert_eq!(inspected[0]["State"]["Status"], "exited");
    assert_eq!(inspected[0]["State"]["ExitCode"], 0);
    let all = stdout(&run(&["ps", "-a"]).await);
    assert!(all.contains("Exited (0)"), "{all}");

    run(&["rm", "cli-bot"]).await;
    assert_eq!(h.get("/containers/cli-bot/json").await.status(), 404);
}

#[tokio::test]
async fn docker_run_publishes_a_port_and_docker_logs_follows_until_the_container_stops() {
    if !docker_on_path() {
        println!("skipped: the docker CLI is not on PATH");
        return;
    }
    let h = Harness::start().await;
    let host = h.base.replacen("http://", "tcp://", 1);
    let config = h.dir.path().join("docker-config");
    std::fs::create_dir_all(&config).unwrap();

    let run = docker_at(&host, &config, &["run", "-d", "-p", "8080", "portly"]).await;
    let id = stdout(&run).trim().to_owned();
    assert_eq!(id.len(), 64, "{id}");
    let port = stdout(&docker_at(&host, &config, &["port", &id, "8080"]).await);
    let port = port
        .trim()
        .strip_prefix("127.0.0.1:")
        .expect("published on loopback");

    let mut logs = Command::new("docker")
        .args(["logs", "-f", &id])
        .env("DOCKER_HOST", &host)
        .env("DOCKER_CONFIG", &config)
        .env_remove("DOCKER_CONTEXT")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run docker logs -f");
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(logs.stdout.take().unwrap()));
    let wanted = format!("port={port}");
    let found = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == wanted {
                return true;
            }
        }
        false
    })
    .await
    .expect("docker logs -f shows the output");
    assert!(found, "docker logs -f ended before {wanted}");

    docker_at(&host, &config, &["stop", "-t", "5", &id]).await;
    let status = tokio::time::timeout(DEADLINE, logs.wait())
        .await
        .expect("docker logs -f ends with the container")
        .unwrap();
    assert!(status.success(), "{status}");
    docker_at(&host, &config, &["rm", &id]).await;
}
