//! bollard 0.21, the bot-manager's client, against the runtime's unix socket.

mod common;

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, ContainerSummaryStateEnum, HostConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, EventsOptionsBuilder, ListContainersOptionsBuilder,
    StopContainerOptionsBuilder,
};
use common::{DEADLINE, Harness};
use futures::StreamExt;

#[tokio::test]
async fn bollard_drives_the_container_lifecycle_over_the_unix_socket() {
    let h = Harness::start().await;
    let docker = Docker::connect_with_unix(
        h.socket().to_str().unwrap(),
        30,
        bollard::API_DEFAULT_VERSION,
    )
    .expect("connect");
    docker.ping().await.expect("ping");
    let version = docker.version().await.expect("version");
    assert_eq!(version.api_version.as_deref(), Some("1.47"));

    // bollard sends the request only when the stream is first polled, so `since` is what
    // guarantees that the die event is seen.
    let since = (chrono::Utc::now().timestamp() - 1).to_string();
    let mut events = docker.events(Some(
        EventsOptionsBuilder::new()
            .since(&since)
            .filters(&HashMap::from([("event", vec!["die"])]))
            .build(),
    ));

    let name = "vexa-bot-1-deadbeef";
    let body = ContainerCreateBody {
        image: Some("graceful:latest".into()),
        env: Some(vec![r#"BOT_CONFIG={"connectionId":"c1"}"#.into()]),
        labels: Some(HashMap::from([("vexa.user_id".into(), "1".into())])),
        host_config: Some(HostConfig {
            auto_remove: Some(true),
            network_mode: Some("vexa_default".into()),
            binds: Some(vec!["/tmp:/tmp".into()]),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let created = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(name).build()),
            body,
        )
        .await
        .expect("create");
    assert_eq!(created.id.len(), 64);
    docker.start_container(name, None).await.expect("start");
    // The script's TERM trap is set once it prints `ready`; the stop below relies on it.
    h.wait_for_log(name, |log| log.contains("ready\n")).await;

    let filters = HashMap::from([
        ("label", vec!["vexa.user_id=1"]),
        ("status", vec!["running"]),
    ]);
    let listed = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .filters(&filters)
                .build(),
        ))
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    let summary = &listed[0];
    assert_eq!(summary.id.as_deref(), Some(created.id.as_str()));
    assert_eq!(summary.names.as_deref(), Some(&[format!("/{name}")][..]));
    assert_eq!(summary.state, Some(ContainerSummaryStateEnum::RUNNING));
    assert!(summary.status.as_deref().unwrap().starts_with("Up "));
    assert_eq!(summary.labels.as_ref().unwrap()["vexa.user_id"], "1");

    let other_user = HashMap::from([("label", vec!["vexa.user_id=2"])]);
    let none = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .filters(&other_user)
                .build(),
        ))
        .await
        .expect("list");
    assert!(none.is_empty());

    let inspected = docker.inspect_container(name, None).await.expect("inspect");
    let state = inspected.state.as_ref().unwrap();
    assert_eq!(state.status, Some(ContainerStateStatusEnum::RUNNING));
    assert_eq!(state.running, Some(true));
    assert!(state.pid.unwrap() > 0);
    assert_eq!(inspected.name.as_deref(), Some("/vexa-bot-1-deadbeef"));
    assert_eq!(inspected.host_config.unwrap().auto_remove, Some(true));

    docker
        .stop_container(
            &created.id[..12],
            Some(StopContainerOptionsBuilder::new().t(10).build()),
        )
        .await
        .expect("stop");
    let die = tokio::time::timeout(DEADLINE, events.next())
        .await
        .expect("a die event")
        .expect("the stream goes on")
        .expect("a well-formed event");
    let attributes = die.actor.unwrap().attributes.unwrap();
    assert_eq!(attributes["exitCode"], "0");
    assert_eq!(attributes["name"], name);

    // AutoRemove: the container is gone once it has exited; a stop of it is then a 404.
    let mut removed = false;
    let deadline = common::Deadline::start();
    while !removed {
        removed = matches!(
            docker.inspect_container(name, None).await,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            })
        );
        assert!(
            removed || deadline.tick().await,
            "the container was not removed"
        );
    }
    let again = docker.stop_container(name, None).await;
    assert!(
        matches!(
            again,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            })
        ),
        "{again:?}"
    );
}
