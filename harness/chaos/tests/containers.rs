//! `chaos` on each infra provider: with containers (through testcontainers, on the
//! project's `runtime` standing in for a Docker daemon) a catalogue subset gives the
//! verdicts it gives on local servers, and every container goes at the end, or, after a
//! killed run, at the next start; with no daemon it runs on local servers and says why;
//! `--infra containers` and `--infra env` refuse to run without what they need.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

mod support;
use support::{chaos, listening_on, root, text};

/// Scenarios of every kind of infra use: a plain run, Redis paused (a container's is
/// paused through Docker), a link to the bot's Redis reset, and the service's link to
/// Postgres reset.
const SUBSET: [&str; 4] = [
    "happy-path",
    "redis-down-during-delete",
    "net-bot-redis-reset-resubscribes",
    "net-service-postgres-reset-after-stop",
];

/// The project's runtime on a loopback port, with the repository's image map: the
/// "Docker daemon" of these tests. Killed on drop.
struct Daemon {
    child: Child,
    host: String,
}

impl Daemon {
    fn start() -> Daemon {
        let mut command = Command::new(infra::bins::workspace_bin("runtime").unwrap());
        command
            .args(["--listen", "127.0.0.1:0", "--images"])
            .arg(root().join("fixtures/images.toml"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        infra::process::die_with_parent(&mut command);
        let mut child = command.spawn().expect("start the runtime");
        let address = listening_on(child.stdout.take().unwrap(), "runtime");
        Daemon {
            child,
            host: format!("tcp://{address}"),
        }
    }

    /// Every container it knows, in any state.
    fn containers(&self) -> Vec<serde_json::Value> {
        let address = self.host.trim_start_matches("tcp://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        use std::io::{Read, Write};
        write!(
            stream,
            "GET /containers/json?all=1 HTTP/1.0\r\nHost: x\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let body = answer.split_once("\r\n\r\n").unwrap().1;
        serde_json::from_str::<Vec<serde_json::Value>>(body).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `chaos run <args>` against the daemon at `docker_host`, with none of the servers' URLs
/// and no provider from the environment: only the flags choose.
fn chaos_run(docker_host: &str, args: &[&str]) -> Command {
    let mut command = chaos();
    command
        .arg("run")
        .args(args)
        .env("DOCKER_HOST", docker_host)
        .env_remove("STOPFLOW_INFRA")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("TOXIPROXY_URL");
    command
}

/// `chaos run` of the subset under legacy and fixed, seed 11, with `infra` and
/// `docker_host`, and none of the servers' URLs.
fn run_subset(out: &Path, infra: &str, docker_host: &str) -> Output {
    chaos_run(
        docker_host,
        &[
            "--profile",
            "legacy,fixed",
            "--seed",
            "11",
            "--infra",
            infra,
            "--out",
        ],
    )
    .arg(out)
    .args(
        SUBSET
            .iter()
            .map(|name| root().join(format!("scenarios/{name}.toml"))),
    )
    .output()
    .unwrap()
}

/// (scenario, profile) -> verdict, from the one run folder under `out`.
fn verdicts(out: &Path) -> Vec<(String, String, serde_json::Value)> {
    let run_dir = std::fs::read_dir(out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).unwrap())
            .unwrap();
    let mut verdicts: Vec<_> = results["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["scenario"].as_str().unwrap().to_owned(),
                r["profile"].as_str().unwrap().to_owned(),
                r["verdict"].clone(),
            )
        })
        .collect();
    verdicts.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    verdicts
}

#[test]
fn a_catalogue_subset_on_containers_gives_the_verdicts_it_gives_on_local_servers() {
    let daemon = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let on_containers = run_subset(&dir.path().join("containers"), "containers", &daemon.host);
    let all = text(&on_containers);
    assert_eq!(on_containers.status.code(), Some(0), "{all}");
    assert!(
        all.contains(&format!(
            "infra: containers on the Docker daemon at {}",
            daemon.host
        )),
        "{all}"
    );
    let on_local = run_subset(&dir.path().join("local"), "local", &daemon.host);
    assert_eq!(on_local.status.code(), Some(0), "{}", text(&on_local));

    let containers = verdicts(&dir.path().join("containers"));
    assert_eq!(containers.len(), SUBSET.len() * 2, "{containers:?}");
    assert_eq!(containers, verdicts(&dir.path().join("local")));
    let left = daemon.containers();
    assert!(
        left.is_empty(),
        "every container went with the run: {left:?}"
    );
}

#[test]
fn the_containers_of_a_killed_run_are_swept_by_the_next_start() {
    let daemon = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let on_containers = [
        "--profile",
        "legacy",
        "--seed",
        "5",
        "--infra",
        "containers",
        "--out",
    ];
    let mut killed = chaos_run(&daemon.host, &on_containers)
        .arg(dir.path().join("killed"))
        .arg(root().join("scenarios/redis-down-during-delete.toml"))
        // The links on a Toxiproxy container too, so that it is used, and swept.
        .env("STOPFLOW_TOXIPROXY", "container")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("killed.log")).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(dir.path().join("killed.log")).unwrap_or_default();
    // Its Postgres, Redis and Toxiproxy running is the evidence its run has begun.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while daemon.containers().len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the run started no containers: {}",
            log()
        );
        assert!(
            killed.try_wait().unwrap().is_none(),
            "the run ended early: {}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    killed.kill().unwrap();
    killed.wait().unwrap();
    assert!(
        !daemon.containers().is_empty(),
        "a killed run cannot remove its containers"
    );

    let output = chaos_run(&daemon.host, &on_containers)
        .arg(dir.path().join("next"))
        .arg(root().join("scenarios/happy-path.toml"))
        .env("STOPFLOW_TOXIPROXY", "container")
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(all.contains("links through a Toxiproxy container"), "{all}");
    let left = daemon.containers();
    assert!(
        left.is_empty(),
        "the next start swept the killed run's: {left:?}"
    );
}

#[test]
fn without_a_daemon_auto_runs_on_local_servers_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("docker.sock");
    let host = format!("unix://{}", missing.display());
    let output = chaos_run(&host, &["--profile", "legacy", "--seed", "3", "--out"])
        .arg(dir.path().join("reports"))
        .arg(root().join("scenarios/happy-path.toml"))
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    let line = all
        .lines()
        .find(|l| l.starts_with("chaos: infra: "))
        .unwrap_or_else(|| panic!("no infra line: {all}"));
    assert!(line.starts_with("chaos: infra: local"), "{line}");
    assert!(
        line.contains(&format!(
            "not containers: no Docker daemon answers at {host}: no such socket"
        )),
        "{line}"
    );
}

#[test]
fn containers_or_env_asked_for_without_what_they_need_exit_2_saying_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let host = format!("unix://{}", dir.path().join("docker.sock").display());
    for (infra, missing) in [
        ("containers", host.as_str()),
        ("env", "DATABASE_URL and REDIS_URL"),
    ] {
        let output = chaos_run(&host, &["--profile", "legacy", "--infra", infra, "--out"])
            .arg(dir.path().join("reports"))
            .arg(root().join("scenarios/happy-path.toml"))
            .output()
            .unwrap();
        let all = text(&output);
        assert_eq!(output.status.code(), Some(2), "{infra}: {all}");
        assert!(
            all.contains(&format!("--infra {infra}")) && all.contains(missing),
            "{all}"
        );
    }
    let output = chaos()
        .args(["run", "--profile", "legacy"])
        .arg(root().join("scenarios/happy-path.toml"))
        .env("STOPFLOW_INFRA", "docker")
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(all.contains("\"docker\" is not one of"), "{all}");
}
