//! What testcontainers and `docker run -p` / `docker logs -f` need of a Docker daemon:
//! images that exist when the image map runs them, ports published on loopback and
//! handed to the mapped command, a `Cmd` the image map lists, and the logs endpoint in
//! Docker's multiplexed format.

mod common;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use common::{DEADLINE, Harness};
use futures::StreamExt;
use serde_json::{Value, json};

fn docker(h: &Harness) -> Docker {
    Docker::connect_with_unix(
        h.socket().to_str().unwrap(),
        30,
        bollard::API_DEFAULT_VERSION,
    )
    .expect("connect")
}

fn host_port(inspected: &Value, port: &str) -> u16 {
    let binding = &inspected["NetworkSettings"]["Ports"][port][0];
    assert_eq!(binding["HostIp"], "127.0.0.1", "{inspected}");
    binding["HostPort"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn publishing_every_port_gives_the_command_a_free_loopback_port_shown_in_inspect() {
    let h = Harness::start().await;
    h.run_ready(
        "p1",
        "portly:1.0",
        json!({ "ExposedPorts": { "8080/tcp": {} }, "HostConfig": { "PublishAllPorts": true } }),
    )
    .await;
    let inspected = h.inspect("p1").await;
    let port = host_port(&inspected, "8080/tcp");
    assert!(
        h.log("p1").contains(&format!("port={port}\n")),
        "{}",
        h.log("p1")
    );
    assert_eq!(
        inspected["Config"]["ExposedPorts"],
        json!({ "8080/tcp": {} })
    );
    let listed: Value = h.get("/containers/json").await.json().await.unwrap();
    assert_eq!(listed[0]["Ports"][0]["PublicPort"], port, "{listed}");
    assert_eq!(listed[0]["Ports"][0]["IP"], "127.0.0.1", "{listed}");
}

#[tokio::test]
async fn a_port_binding_publishes_the_port_asked_for_and_only_on_loopback() {
    let h = Harness::start().await;
    let asked = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let binding = |ip: &str, port: String| json!({ "HostConfig": { "PortBindings": { "8080/tcp": [{ "HostIp": ip, "HostPort": port }] } } });
    h.run_ready("p1", "portly", binding("", asked.to_string()))
        .await;
    assert_eq!(host_port(&h.inspect("p1").await, "8080/tcp"), asked);
    assert!(h.log("p1").contains(&format!("port={asked}\n")));

    let (status, body) = h
        .try_create("?name=p2", &{
            let mut body = binding("10.0.0.1", String::new());
            body["Image"] = json!("portly");
            body
        })
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("loopback only"),
        "{body}"
    );
    let (status, body) = h
        .try_create(
            "?name=p3",
            &json!({ "Image": "portly", "HostConfig": { "PortBindings": {
                "8080/tcp": [{ "HostPort": "1" }, { "HostPort": "2" }] } } }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("once"), "{body}");
}

#[tokio::test]
async fn on_the_host_network_a_port_is_the_containers_own_and_nothing_is_published() {
    let h = Harness::start().await;
    h.run_ready(
        "p1",
        "portly",
        json!({ "HostConfig": { "NetworkMode": "host", "PublishAllPorts": true } }),
    )
    .await;
    assert!(h.log("p1").contains("port=8080\n"), "{}", h.log("p1"));
    assert_eq!(h.inspect("p1").await["NetworkSettings"]["Ports"], json!({}));
}

#[tokio::test]
async fn a_cmd_runs_only_as_the_image_map_lists_it() {
    let h = Harness::start().await;
    h.run_ready(
        "p1",
        "portly",
        json!({ "Cmd": ["--greet=ada"], "HostConfig": { "PublishAllPorts": true } }),
    )
    .await;
    let port = host_port(&h.inspect("p1").await, "8080/tcp");
    assert!(
        h.log("p1").contains(&format!("hello ada on {port}\n")),
        "{}",
        h.log("p1")
    );
    for cmd in [
        json!(["--greet=ADA"]),
        json!(["--greet=ada", "x"]),
        json!(["sh"]),
    ] {
        let (status, body) = h
            .try_create("?name=p2", &json!({ "Image": "portly", "Cmd": cmd }))
            .await;
        assert_eq!(status, 400, "{cmd}: {body}");
        assert!(body["message"].as_str().unwrap().contains("Cmd"), "{body}");
    }
    let (status, body) = h
        .try_create("?name=p3", &json!({ "Image": "graceful", "Cmd": ["-v"] }))
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn logs_are_dockers_multiplexed_streams_and_follow_until_the_process_ends() {
    let h = Harness::start().await;
    h.run_ready("p1", "portly", json!({})).await;
    let docker = docker(&h);
    let options = LogsOptionsBuilder::new()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .tail("all")
        .build();
    let mut logs = docker.logs("p1", Some(options));
    let mut seen: Vec<LogOutput> = Vec::new();
    // The two streams are two pipes, read apart: their lines come in no set order.
    let both = |seen: &[LogOutput]| {
        seen.iter().any(|o| o.to_string() == "ready\n")
            && seen.iter().any(|o| o.to_string() == "to-stderr\n")
    };
    while !both(&seen) {
        let next = tokio::time::timeout(DEADLINE, logs.next())
            .await
            .expect("a line within the deadline")
            .expect("the stream goes on")
            .expect("a frame");
        seen.push(next);
    }
    assert!(
        seen.iter()
            .any(|o| matches!(o, LogOutput::StdErr { message } if &message[..] == b"to-stderr\n")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|o| matches!(o, LogOutput::StdOut { message } if message.starts_with(b"port="))),
        "{seen:?}"
    );

    // Following ends once the process is gone.
    let stopped = h.post("/containers/p1/stop?t=5").await;
    assert_eq!(stopped.status(), 204);
    let end = tokio::time::timeout(DEADLINE, async {
        while let Some(frame) = logs.next().await {
            frame.expect("a frame");
        }
    })
    .await;
    assert!(end.is_ok(), "the followed stream ended with the process");

    // Without follow: what there is, filtered and cut to the tail.
    let options = LogsOptionsBuilder::new().stderr(true).build();
    let only_stderr: Vec<_> = docker.logs("p1", Some(options)).collect().await;
    assert_eq!(only_stderr.len(), 1, "{only_stderr:?}");
    let options = LogsOptionsBuilder::new()
        .stdout(true)
        .tail("1")
        .timestamps(true)
        .build();
    let last: Vec<_> = docker.logs("p1", Some(options)).collect().await;
    let last = last[0].as_ref().unwrap().to_string();
    assert!(last.ends_with(" ready\n") && last.contains('T'), "{last}");
    let neither = h.get("/containers/p1/logs").await;
    assert_eq!(neither.status(), 400);
}

#[tokio::test]
async fn a_mapped_image_can_be_inspected_and_pulled_and_any_other_is_404() {
    let h = Harness::start().await;
    let inspected = h.get("/images/portly:3.2/json").await;
    assert_eq!(inspected.status(), 200);
    let inspected: Value = inspected.json().await.unwrap();
    assert_eq!(
        inspected["Config"]["ExposedPorts"],
        json!({ "8080/tcp": {} })
    );
    assert_eq!(inspected["RepoTags"], json!(["portly:3.2"]));
    let pulled = h.post("/images/create?fromImage=portly&tag=3.2").await;
    assert_eq!(pulled.status(), 200);
    let progress = pulled.text().await.unwrap();
    assert!(
        progress.contains("Image is up to date for portly:3.2"),
        "{progress}"
    );

    for path in ["/images/ghcr.io/org/nothing:1/json", "/images/ghost/json"] {
        let response = h.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
    }
    let ghost: Value = h.get("/images/ghost/json").await.json().await.unwrap();
    assert!(
        ghost["message"]
            .as_str()
            .unwrap()
            .contains("stopflow-no-such-program"),
        "{ghost}"
    );
    let (status, _) = h.try_create("?name=g1", &json!({ "Image": "ghost" })).await;
    assert_eq!(status, 404);
    let pulled = h.post("/images/create?fromImage=nothing/here:1").await;
    assert_eq!(pulled.status(), 404);
    let networks: Value = h.get("/networks").await.json().await.unwrap();
    assert!(
        networks
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["Name"] == "host")
    );
}

// Regression: `docker run` waits for the headers of its `wait?condition=next-exit`
// before it starts the container, and the runtime answered only at the exit, so
// `docker run` hung.
#[tokio::test]
async fn wait_answers_its_headers_at_once_and_the_exit_code_at_the_exit() {
    let h = Harness::start().await;
    h.create("w1", "exit3", json!({})).await;
    let waiting = tokio::time::timeout(DEADLINE, h.post("/containers/w1/wait?condition=next-exit"))
        .await
        .expect("the headers come before the container even starts");
    assert_eq!(waiting.status(), 200);
    h.start_container("w1").await;
    let body: Value = tokio::time::timeout(DEADLINE, waiting.json())
        .await
        .expect("the body comes at the exit")
        .unwrap();
    assert_eq!(body["StatusCode"], 3, "{body}");
}

#[tokio::test]
async fn docker_pause_and_unpause_stop_and_resume_the_container() {
    let h = Harness::start().await;
    h.run_ready("p1", "graceful", json!({})).await;
    assert_eq!(h.post("/containers/p1/pause").await.status(), 204);
    assert_eq!(h.inspect("p1").await["State"]["Paused"], true);
    assert_eq!(h.post("/containers/p1/pause").await.status(), 409);
    assert_eq!(h.post("/containers/p1/unpause").await.status(), 204);
    assert_eq!(h.inspect("p1").await["State"]["Paused"], false);
}
