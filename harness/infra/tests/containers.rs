//! The `containers` provider through testcontainers, against the project's `runtime` as
//! the Docker daemon (this machine has none): its Postgres answers queries, its Redis
//! answers and pauses, the harness's Toxiproxy client drives its Toxiproxy, each is
//! labelled with its owner and removed with its handle, and a dead owner's are swept.
//!
//! testcontainers reads `DOCKER_HOST` from the process's environment, so this binary
//! starts one runtime and sets it once, before its first container (nextest runs each
//! test in a process of its own; under `cargo test` they share both).

use std::io::BufRead;
use std::sync::OnceLock;
use std::time::Duration;

use infra::containers::{self, KIND_LABEL, OWNER_LABEL};
use infra::postgres::{PostgresServer, TestDatabase};
use infra::provider::{self, Choice};
use infra::redis::RedisServer;
use nix::sys::signal::Signal;
use serde_json::Value;
use testcontainers::bollard::Docker;
use testcontainers::bollard::query_parameters::ListContainersOptionsBuilder;

/// Bounds a failure only.
const DEADLINE: Duration = Duration::from_secs(60);

/// The runtime's `host:port`, started once per process from a thread that lives as long
/// as the process (its parent-death signal follows the thread that spawned it).
fn daemon() -> &'static str {
    static ADDRESS: OnceLock<String> = OnceLock::new();
    ADDRESS.get_or_init(|| {
        let runtime =
            infra::bins::workspace_bin("runtime").expect("build the workspace's binaries");
        let images = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/images.toml");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut command = std::process::Command::new(runtime);
            command
                .args(["--listen", "127.0.0.1:0", "--images", images])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null());
            infra::process::die_with_parent(&mut command);
            let mut child = command.spawn().expect("start the runtime");
            let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
            let line = lines
                .next()
                .expect("a line")
                .expect("read the runtime's stdout");
            let address = line
                .strip_prefix("runtime listening on ")
                .expect("the runtime's ready line")
                .to_owned();
            tx.send(address).unwrap();
            let _ = child.wait();
        });
        let address = rx.recv_timeout(DEADLINE).expect("the runtime starts");
        // SAFETY: set once, before this process's first container, from the only thread
        // that sets the environment; testcontainers reads it when it makes its client.
        unsafe { std::env::set_var("DOCKER_HOST", format!("tcp://{address}")) };
        let selection = provider::select(Choice::Containers).expect("the runtime answers a ping");
        assert!(selection.containers().is_some(), "{selection}");
        address
    })
}

fn docker() -> Docker {
    Docker::connect_with_http(daemon(), 30, testcontainers::bollard::API_DEFAULT_VERSION)
        .expect("a client of the runtime")
}

/// The containers the runtime lists now, all states.
async fn listed() -> Vec<(String, std::collections::HashMap<String, String>)> {
    let options = ListContainersOptionsBuilder::new().all(true).build();
    docker()
        .list_containers(Some(options))
        .await
        .expect("list containers")
        .into_iter()
        .map(|c| (c.id.unwrap_or_default(), c.labels.unwrap_or_default()))
        .collect()
}

async fn inspect(id: &str) -> Value {
    let client = reqwest_free_get(&format!("/containers/{id}/json")).await;
    serde_json::from_str(&client).expect("JSON")
}

/// `GET path` on the runtime, over a plain TCP connection.
async fn reqwest_free_get(path: &str) -> String {
    let address = daemon().to_owned();
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text.split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_container_answers_queries_and_takes_databases_and_goes_with_its_handle() {
    daemon();
    let server = tokio::task::spawn_blocking(PostgresServer::start_container)
        .await
        .unwrap()
        .expect("start a Postgres container");
    assert!(server.is_throwaway(), "a server of our own");
    let one: i32 = {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(server.admin_url())
            .await
            .expect("connect to the container");
        sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(one, 1);
    let database = TestDatabase::create(&server)
        .await
        .expect("a database of its own");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(database.url())
        .await
        .unwrap();
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(name, database.name());
    drop(conn);
    database.destroy().await.unwrap();

    let ours: Vec<_> = listed()
        .await
        .into_iter()
        .filter(|(_, labels)| labels.get(KIND_LABEL).map(String::as_str) == Some("postgres"))
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(ours[0].1[OWNER_LABEL], containers::owner_label());
    tokio::task::spawn_blocking(move || drop(server))
        .await
        .unwrap();
    assert!(
        !listed().await.iter().any(|(id, _)| *id == ours[0].0),
        "the container went with its handle"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_container_answers_ping_and_set_and_pauses_as_docker_pauses() {
    daemon();
    let server = RedisServer::start_container()
        .await
        .expect("start a Redis container");
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
    let () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();
    let value: String = redis::cmd("GET")
        .arg("k")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, "v");

    let id = listed()
        .await
        .into_iter()
        .find(|(_, labels)| labels.get(KIND_LABEL).map(String::as_str) == Some("redis"))
        .expect("the Redis container is listed")
        .0;
    tokio::task::block_in_place(|| server.signal(Signal::SIGSTOP)).unwrap();
    assert_eq!(inspect(&id).await["State"]["Paused"], true);
    tokio::task::block_in_place(|| server.signal(Signal::SIGCONT)).unwrap();
    assert_eq!(inspect(&id).await["State"]["Paused"], false);
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_toxiproxy_container_is_driven_by_the_harness_client() {
    daemon();
    let redis = RedisServer::start_container()
        .await
        .expect("start a Redis container");
    let toxiproxy = tokio::task::spawn_blocking(containers::start_toxiproxy_blocking)
        .await
        .unwrap()
        .expect("start a Toxiproxy container");
    let url = format!("http://{}:{}", toxiproxy.host(), toxiproxy.port());
    let client = fault_proxy::client::Client::new(url);
    client.version().await.expect("its API answers");
    let upstream = redis
        .url()
        .trim_start_matches("redis://")
        .trim_end_matches('/');
    let proxy = client
        .create_proxy(&fault_proxy::model::NewProxy::new(
            "redis",
            "127.0.0.1:0",
            upstream,
        ))
        .await
        .expect("create a proxy");
    let through = format!("redis://{}/", proxy.listen);
    let ping = |url: String| async move {
        let client = redis::Client::open(url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    assert_eq!(ping(through.clone()).await.unwrap(), "PONG");
    client
        .set_enabled("redis", false)
        .await
        .expect("disable the proxy");
    assert!(
        ping(through.clone()).await.is_err(),
        "a disabled proxy refuses"
    );
    client
        .set_enabled("redis", true)
        .await
        .expect("enable the proxy");
    assert_eq!(ping(through).await.unwrap(), "PONG");
    tokio::task::spawn_blocking(move || drop(toxiproxy))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sweep_removes_only_the_containers_of_a_dead_owner_of_this_host() {
    daemon();
    let dead_pid = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    let mine = containers::owner_label();
    let pid_field = mine
        .split_whitespace()
        .find(|w| w.starts_with("pid="))
        .unwrap()
        .to_owned();
    let dead = mine.replacen(&pid_field, &format!("pid={dead_pid}"), 1);
    let foreign = dead.replacen("host=", "host=another-boot/", 1);
    let docker = docker();
    let mut ids = Vec::new();
    for owner in [&dead, &mine, &foreign] {
        let body = testcontainers::bollard::models::ContainerCreateBody {
            image: Some("redis:7-alpine".to_owned()),
            labels: Some(std::collections::HashMap::from([(
                OWNER_LABEL.to_owned(),
                owner.clone(),
            )])),
            ..Default::default()
        };
        let created = docker
            .create_container(
                None::<testcontainers::bollard::query_parameters::CreateContainerOptions>,
                body,
            )
            .await
            .expect("create a labelled container");
        ids.push(created.id);
    }
    let removed = tokio::task::spawn_blocking(containers::sweep_leftover_containers)
        .await
        .unwrap()
        .expect("sweep");
    assert_eq!(removed, vec![ids[0].clone()]);
    let left: Vec<String> = listed().await.into_iter().map(|(id, _)| id).collect();
    assert!(left.contains(&ids[1]) && left.contains(&ids[2]), "{left:?}");
    for id in &ids[1..] {
        let force = testcontainers::bollard::query_parameters::RemoveContainerOptionsBuilder::new()
            .force(true)
            .build();
        docker.remove_container(id, Some(force)).await.unwrap();
    }
}
