//! The container runtime, through the Docker Engine API (bollard), used exactly as the
//! production service uses it (protocol.md section 7).

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, ContainerSummary, HostConfig, Mount, MountTypeEnum};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, StopContainerOptionsBuilder,
};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("connect to the container runtime at {endpoint}: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: DockerError,
    },
    #[error("{action} container {target}: {source}")]
    Call {
        action: &'static str,
        target: String,
        #[source]
        source: DockerError,
    },
}

/// How a stop call ended. 304 (already stopped; bollard answers it as success) and 404
/// (gone) count as success, as in production, which is also why a 404 from a confused
/// runtime is taken as "gone".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    Stopped,
    NotFound,
}

#[derive(Clone)]
pub struct Runtime {
    docker: Docker,
    timeout: Duration,
    /// Container starts in flight at once ([`Runtime::start`]).
    starts: std::sync::Arc<tokio::sync::Semaphore>,
}

pub const USER_LABEL: &str = "vexa.user_id";

impl Runtime {
    /// `start_concurrency`: how many container starts may be in flight at the runtime at
    /// once ([`Runtime::start`]).
    pub fn connect(
        docker_host: Option<&str>,
        timeout: Duration,
        start_concurrency: usize,
    ) -> Result<Self, RuntimeError> {
        let endpoint = docker_host
            .unwrap_or("unix:///var/run/docker.sock")
            .to_owned();
        let connect_err = |source| RuntimeError::Connect {
            endpoint: endpoint.clone(),
            source,
        };
        let timeout_s = timeout.as_secs().max(1);
        let docker = if let Some(path) = endpoint.strip_prefix("unix://") {
            Docker::connect_with_unix(path, timeout_s, bollard::API_DEFAULT_VERSION)
        } else if let Some(addr) = endpoint.strip_prefix("tcp://") {
            Docker::connect_with_http(
                &format!("http://{addr}"),
                timeout_s,
                bollard::API_DEFAULT_VERSION,
            )
        } else if endpoint.starts_with("http://") {
            Docker::connect_with_http(&endpoint, timeout_s, bollard::API_DEFAULT_VERSION)
        } else {
            Docker::connect_with_unix(&endpoint, timeout_s, bollard::API_DEFAULT_VERSION)
        }
        .map_err(connect_err)?;
        Ok(Runtime {
            docker,
            timeout,
            starts: std::sync::Arc::new(tokio::sync::Semaphore::new(start_concurrency.max(1))),
        })
    }

    /// `GET /version`, read for `ApiVersion` only.
    pub async fn api_version(&self) -> Result<String, RuntimeError> {
        let version = self
            .docker
            .version()
            .await
            .map_err(|source| RuntimeError::Call {
                action: "query the version of",
                target: "runtime".into(),
                source,
            })?;
        Ok(version.api_version.unwrap_or_default())
    }

    /// Creates a bot container (not started yet); answers its id.
    pub async fn create_bot(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<String, RuntimeError> {
        let options = CreateContainerOptionsBuilder::new().name(name).build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|source| RuntimeError::Call {
                action: "create",
                target: name.to_owned(),
                source,
            })?;
        Ok(created.id)
    }

    /// Starts a created container. At most `start_concurrency` starts are in flight: a
    /// runtime starts its containers one after another, and a thousand starts sent at
    /// once waited there past the call's timeout (the POST failed, its row with it) while
    /// the container started anyway, later. The wait for a turn here has no timeout of
    /// its own: the request's client bounds it.
    pub async fn start(&self, container: &str) -> Result<(), RuntimeError> {
        let _turn = self
            .starts
            .acquire()
            .await
            .expect("the start semaphore is never closed");
        self.docker
            .start_container(
                container,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
            .map_err(|source| RuntimeError::Call {
                action: "start",
                target: container.to_owned(),
                source,
            })
    }

    /// `docker stop -t grace`: SIGTERM, then SIGKILL after the grace.
    pub async fn stop(&self, container: &str, grace_s: u32) -> Result<StopOutcome, RuntimeError> {
        let options = StopContainerOptionsBuilder::new().t(grace_s as i32).build();
        // bollard bounds every request by the client timeout; a stop legitimately takes
        // the whole grace first.
        let docker = self
            .docker
            .clone()
            .with_timeout(Duration::from_secs(grace_s.into()) + self.timeout);
        match docker.stop_container(container, Some(options)).await {
            Ok(()) => Ok(StopOutcome::Stopped),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(StopOutcome::NotFound),
            Err(source) => Err(RuntimeError::Call {
                action: "stop",
                target: container.to_owned(),
                source,
            }),
        }
    }

    /// The user's running containers, filtered by the runtime.
    pub async fn running_for_user(
        &self,
        user_id: i32,
    ) -> Result<Vec<ContainerSummary>, RuntimeError> {
        let filters = HashMap::from([
            ("label", vec![format!("{USER_LABEL}={user_id}")]),
            ("status", vec!["running".to_owned()]),
        ]);
        let options = ListContainersOptionsBuilder::new()
            .filters(&filters)
            .build();
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(|source| RuntimeError::Call {
                action: "list",
                target: format!("of user {user_id}"),
                source,
            })
    }
}

/// What a bot container is created from, as production sends it: `Env` is
/// `BOT_CONFIG`, `WHISPER_LIVE_URL`, `LOG_LEVEL`; `HostConfig` is the network,
/// `AutoRemove` and one bind mount (no Docker socket bind); the user's label.
pub struct BotSpec<'a> {
    pub image: &'a str,
    pub bot_config: &'a protocol::BotConfig,
    pub whisper_live_url: &'a str,
    pub log_level: &'a str,
    pub user_id: i32,
    pub network: &'a str,
    pub mount: &'a crate::config::BindMount,
}

impl BotSpec<'_> {
    /// The body of `POST /containers/create`.
    pub fn create_body(&self) -> ContainerCreateBody {
        let bot_config = serde_json::to_string(self.bot_config).expect("BOT_CONFIG serialises");
        let labels = HashMap::from([(USER_LABEL.to_owned(), self.user_id.to_string())]);
        ContainerCreateBody {
            image: Some(self.image.to_owned()),
            env: Some(vec![
                format!("BOT_CONFIG={bot_config}"),
                format!("WHISPER_LIVE_URL={}", self.whisper_live_url),
                format!("LOG_LEVEL={}", self.log_level.to_uppercase()),
            ]),
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: Some(self.network.to_owned()),
                auto_remove: Some(true),
                mounts: Some(vec![Mount {
                    typ: Some(MountTypeEnum::BIND),
                    source: Some(self.mount.source.clone()),
                    target: Some(self.mount.target.clone()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// A bot container as the runtime lists it.
#[derive(Debug, Clone)]
pub struct BotContainer {
    pub id: String,
    pub name: String,
    pub meeting_id: i32,
    /// Docker's `State`: `running`, `paused`, `exited`, `created`, ...
    pub state: String,
}

impl BotContainer {
    pub fn is_live(&self) -> bool {
        matches!(
            self.state.as_str(),
            "running" | "paused" | "restarting" | "created"
        )
    }
}

impl Runtime {
    /// Every bot container the runtime knows, whatever its state or user.
    pub async fn bots(&self) -> Result<Vec<BotContainer>, RuntimeError> {
        let filters = HashMap::from([("label", vec![USER_LABEL.to_owned()])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|source| RuntimeError::Call {
                action: "list",
                target: "every bot".into(),
                source,
            })?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let name = c
                    .names
                    .as_ref()?
                    .first()?
                    .trim_start_matches('/')
                    .to_owned();
                let meeting_id = meeting_id_from_name(&name)?.parse().ok()?;
                Some(BotContainer {
                    id: c.id.clone().unwrap_or_default(),
                    meeting_id,
                    state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                    name,
                })
            })
            .collect())
    }

    /// Whether a container runs right now, per `inspect` (`None`: the runtime does not
    /// know it).
    pub async fn is_running(&self, container: &str) -> Result<Option<bool>, RuntimeError> {
        match self
            .docker
            .inspect_container(
                container,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(info) => Ok(Some(info.state.and_then(|s| s.running).unwrap_or(false))),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(source) => Err(RuntimeError::Call {
                action: "inspect",
                target: container.to_owned(),
                source,
            }),
        }
    }

    /// The runtime's `die` events from `since` (unix seconds) on: (container name, exit code).
    pub fn deaths(
        &self,
        since: i64,
    ) -> impl futures::Stream<Item = Result<(String, Option<i64>), RuntimeError>> + use<> {
        use futures::StreamExt;
        let filters = HashMap::from([
            ("type", vec!["container".to_owned()]),
            ("event", vec!["die".to_owned()]),
        ]);
        let options = bollard::query_parameters::EventsOptionsBuilder::new()
            .since(&since.to_string())
            .filters(&filters)
            .build();
        self.docker.events(Some(options)).map(|event| {
            let event = event.map_err(|source| RuntimeError::Call {
                action: "follow the events of",
                target: "the runtime".into(),
                source,
            })?;
            let attributes = event.actor.and_then(|a| a.attributes).unwrap_or_default();
            let name = attributes.get("name").cloned().unwrap_or_default();
            let exit_code = attributes.get("exitCode").and_then(|c| c.parse().ok());
            Ok((name, exit_code))
        })
    }
}

/// `vexa-bot-{meeting_id}-{hex8}`.
pub fn container_name(meeting_id: i32) -> String {
    let suffix: u32 = rand::random();
    format!("vexa-bot-{meeting_id}-{suffix:08x}")
}

/// The meeting id encoded in a container name, if it is one of ours.
pub fn meeting_id_from_name(name: &str) -> Option<String> {
    let rest = name.trim_start_matches('/').strip_prefix("vexa-bot-")?;
    let (id, _suffix) = rest.rsplit_once('-')?;
    id.parse::<i64>().ok().map(|_| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Pins the create request production sends (protocol.md section 11): the Env
    // entries, the network, AutoRemove, one bind mount and no Docker socket bind.
    #[test]
    fn create_body_is_productions_create_request() {
        let config = protocol::BotConfig {
            meeting_id: 7,
            platform: protocol::Platform::Zoom,
            meeting_url: Some("https://zoom.us/j/123456789".into()),
            bot_name: "VexaBot-0a1b2c".into(),
            token: "key".into(),
            native_meeting_id: "123456789".into(),
            connection_id: "uid".into(),
            language: None,
            task: None,
            redis_url: "redis://redis:6379/0".into(),
            container_name: "vexa-bot-7-0000abcd".into(),
            automatic_leave: protocol::AutomaticLeave::default(),
            bot_manager_callback_url: "http://bot-manager:8080/bots/internal/callback/exited"
                .into(),
            callback_secret: None,
        };
        let mount = crate::config::BindMount {
            source: "/srv/bot".into(),
            target: "/app/storage".into(),
        };
        let spec = BotSpec {
            image: "vexa-bot:latest",
            bot_config: &config,
            whisper_live_url: "ws://whisperlive:9090",
            log_level: "info",
            user_id: 3,
            network: "vexa_default",
            mount: &mount,
        };
        let body = serde_json::to_value(spec.create_body()).unwrap();
        let env: Vec<&str> = body["Env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(env.len(), 3, "{env:?}");
        assert!(env[0].starts_with("BOT_CONFIG={"), "{env:?}");
        assert_eq!(env[1], "WHISPER_LIVE_URL=ws://whisperlive:9090");
        assert_eq!(env[2], "LOG_LEVEL=INFO");
        let host = &body["HostConfig"];
        assert_eq!(host["NetworkMode"], "vexa_default");
        assert_eq!(host["AutoRemove"], true);
        assert_eq!(
            host["Mounts"],
            serde_json::json!([{"Type": "bind", "Source": "/srv/bot", "Target": "/app/storage"}])
        );
        assert!(host.get("Binds").is_none_or(|b| b.is_null()), "{host}");
        assert_eq!(body["Labels"], serde_json::json!({"vexa.user_id": "3"}));
        assert_eq!(body["Image"], "vexa-bot:latest");
    }

    #[test]
    fn container_name_round_trips_meeting_id() {
        let name = container_name(42);
        assert!(name.starts_with("vexa-bot-42-"));
        assert_eq!(meeting_id_from_name(&name).as_deref(), Some("42"));
        assert_eq!(
            meeting_id_from_name(&format!("/{name}")).as_deref(),
            Some("42")
        );
        assert_eq!(meeting_id_from_name("postgres"), None);
    }

    /// Starts in flight at a fake runtime that holds every start until given a permit.
    struct Held {
        counts: std::sync::Mutex<(usize, usize)>,
        arrived: tokio::sync::Notify,
        gate: tokio::sync::Semaphore,
    }

    impl Held {
        fn in_flight(&self) -> usize {
            self.counts.lock().unwrap().0
        }
        fn most(&self) -> usize {
            self.counts.lock().unwrap().1
        }
    }

    // Pins "a thousand starts at once timed out at the runtime": every start of a burst
    // of POST /bots went to the runtime at once and waited there, one after another,
    // against the call's timeout; the POST failed while its container started anyway.
    // Now no more than the bound are in flight at the runtime: the rest wait their turn.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_starts_than_the_bound_are_in_flight_at_the_runtime() {
        const BOUND: usize = 3;
        const STARTS: usize = 10;
        let held = std::sync::Arc::new(Held {
            counts: std::sync::Mutex::default(),
            arrived: tokio::sync::Notify::new(),
            gate: tokio::sync::Semaphore::new(0),
        });
        let fake = {
            let held = held.clone();
            axum::Router::new().fallback(move |request: axum::extract::Request| {
                let held = held.clone();
                async move {
                    if !request.uri().path().ends_with("/start") {
                        return axum::http::StatusCode::NOT_FOUND;
                    }
                    {
                        let mut counts = held.counts.lock().unwrap();
                        counts.0 += 1;
                        counts.1 = counts.1.max(counts.0);
                    }
                    held.arrived.notify_waiters();
                    held.gate.acquire().await.unwrap().forget();
                    held.counts.lock().unwrap().0 -= 1;
                    axum::http::StatusCode::NO_CONTENT
                }
            })
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, fake).await });
        let runtime = Runtime::connect(
            Some(&format!("tcp://{addr}")),
            Duration::from_secs(30),
            BOUND,
        )
        .unwrap();
        let calls: Vec<_> = (0..STARTS)
            .map(|i| {
                let runtime = runtime.clone();
                tokio::spawn(async move { runtime.start(&format!("c{i}")).await })
            })
            .collect();
        // The first BOUND reach the runtime and are held there.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while held.in_flight() != BOUND {
            let arrived = held.arrived.notified();
            assert!(
                tokio::time::timeout_at(deadline, arrived).await.is_ok()
                    || held.in_flight() == BOUND,
                "{} starts in flight, not {BOUND}",
                held.in_flight()
            );
        }
        held.gate.add_permits(STARTS);
        for call in calls {
            call.await.unwrap().expect("the start answered 204");
        }
        assert_eq!(
            held.most(),
            BOUND,
            "starts in flight at the runtime at once"
        );
        server.abort();
    }
}
