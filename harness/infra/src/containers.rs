//! Postgres, Redis and Toxiproxy as containers, through testcontainers, for the
//! `containers` provider ([`crate::provider`]).
//!
//! Postgres and Redis are testcontainers' community modules (`testcontainers-modules`'
//! `Postgres` and `Redis`, with their ready conditions); Toxiproxy has no module, so its
//! image is described here and waited for through its API.
//!
//! Every container is labelled with its owner (this process: host, pid, start time) and
//! its kind, and removed when its handle is dropped (the process-wide ones at exit); the
//! next process's [`sweep_containers`] removes those whose owner died.
//!
//! testcontainers keeps one Docker client per process, bound to the tokio runtime its
//! connections were made on; so every container operation runs on one runtime of this
//! module's own, whichever runtime (or none) the caller is on.

use std::borrow::Cow;
use std::future::Future;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use futures::FutureExt as _;
use testcontainers::bollard::query_parameters::{
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ContainerRequest, Image, ImageExt};
use testcontainers_modules::postgres::Postgres;
use testcontainers_modules::redis::Redis;

use crate::InfraError;
use crate::owner::{Liveness, Owner};

/// Whose a container is: the [`Owner`] record of the process that started it.
pub const OWNER_LABEL: &str = "org.stopflow.owner";
/// What it is: `postgres`, `redis` or `toxiproxy`.
pub const KIND_LABEL: &str = "org.stopflow.kind";
/// The tags started; the runtime's image map takes every tag of these images.
pub const POSTGRES_TAG: &str = "17-alpine";
pub const REDIS_TAG: &str = "7-alpine";
pub const TOXIPROXY_IMAGE: &str = "ghcr.io/shopify/toxiproxy";
pub const TOXIPROXY_TAG: &str = "2.12.0";
/// A hang guard on a start; a first pull of an image is not counted in it.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// A hang guard on Toxiproxy's API answering once its container runs.
const TOXIPROXY_READY: Duration = Duration::from_secs(30);

/// The server settings of a throwaway Postgres: no disk flushes, and the connections
/// parallel runs need (the capacity estimate counts on 300). They replace the module's
/// own command (`-c fsync=off`).
pub const POSTGRES_SETTINGS: [&str; 8] = [
    "-c",
    "fsync=off",
    "-c",
    "synchronous_commit=off",
    "-c",
    "full_page_writes=off",
    "-c",
    "max_connections=300",
];

/// The official `postgres` image through the community module, trusting every
/// connection (user and database `postgres`): ready once the server says so on stderr
/// and the image's initialisation says so on stdout.
pub fn postgres_image() -> ContainerRequest<Postgres> {
    Postgres::default()
        .with_host_auth()
        .with_tag(POSTGRES_TAG)
        .with_cmd(POSTGRES_SETTINGS)
}

/// The official `redis` image through the community module: ready once it says so.
pub fn redis_image() -> ContainerRequest<Redis> {
    Redis::default().with_tag(REDIS_TAG)
}

/// Shopify's Toxiproxy on the host's network (its proxies listen on, and reach, the
/// host's loopback as the harness's links need), its API on `port` of 127.0.0.1.
#[derive(Debug, Clone)]
pub struct ToxiproxyImage {
    cmd: [String; 2],
}

impl ToxiproxyImage {
    pub fn on_port(port: u16) -> Self {
        ToxiproxyImage {
            cmd: ["-host=127.0.0.1".to_owned(), format!("-port={port}")],
        }
    }
}

impl Image for ToxiproxyImage {
    fn name(&self) -> &str {
        TOXIPROXY_IMAGE
    }

    fn tag(&self) -> &str {
        TOXIPROXY_TAG
    }

    fn ready_conditions(&self) -> Vec<WaitFor> {
        // Its log lines differ between versions; its API is what must answer.
        Vec::new()
    }

    fn cmd(&self) -> impl IntoIterator<Item = impl Into<Cow<'_, str>>> {
        self.cmd.iter().map(String::as_str)
    }
}

/// The runtime every container operation runs on (see the module comment).
fn service() -> &'static tokio::runtime::Runtime {
    static SERVICE: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    SERVICE.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(SERVICE_THREAD)
            .enable_all()
            .build()
            .expect("build the containers' tokio runtime")
    })
}

/// The service runtime's threads (its worker and blocking threads) carry this name.
const SERVICE_THREAD: &str = "stopflow-containers";

fn on_service_thread() -> bool {
    std::thread::current().name() == Some(SERVICE_THREAD)
}

/// Runs `work` on the service runtime and blocks until it is done; on the service
/// runtime itself (a handle dropped there), in place, as its one worker cannot also run
/// a task it waits for.
fn block_on_service<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    if on_service_thread() {
        return tokio::task::block_in_place(|| service().handle().block_on(work));
    }
    let (reply, answer) = std::sync::mpsc::sync_channel(1);
    service().spawn(async move {
        let _ = reply.send(work.await);
    });
    answer
        .recv()
        .expect("the containers' runtime answers every request")
}

/// Runs `work` on the service runtime; awaitable from any runtime.
async fn on_service<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    service()
        .spawn(work)
        .await
        .expect("a container operation does not panic")
}

type Removal = Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()> + Send>;

/// A started container: its address on the host, and removal when dropped.
pub struct ContainerHandle {
    id: String,
    kind: &'static str,
    host: String,
    port: u16,
    remove: Mutex<Option<Removal>>,
}

impl std::fmt::Debug for ContainerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerHandle")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl ContainerHandle {
    fn new<I: Image + 'static>(
        container: ContainerAsync<I>,
        kind: &'static str,
        host: String,
        port: u16,
    ) -> Self {
        let id = container.id().to_owned();
        let keep = std::env::var("TESTCONTAINERS_COMMAND").is_ok_and(|c| c.trim() == "keep");
        let remove: Removal = Box::new(move || {
            async move {
                if keep {
                    // Dropped here, on the service runtime, which leaves it running.
                    drop(container);
                } else if let Err(err) = container.rm().await {
                    tracing::warn!("failed to remove the {kind} container: {err}");
                }
            }
            .boxed()
        });
        ContainerHandle {
            id,
            kind,
            host,
            port,
            remove: Mutex::new(Some(remove)),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The host to dial (127.0.0.1 for a local daemon).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The host port its service answers on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Docker's pause (`true`) or unpause: every process of the container stops or goes
    /// on, as SIGSTOP and SIGCONT do to a local server.
    pub fn pause(&self, paused: bool) -> Result<(), InfraError> {
        let id = self.id.clone();
        let kind = self.kind;
        block_on_service(async move {
            let docker = testcontainers::core::client::docker_client_instance()
                .await
                .map_err(|e| e.to_string())?;
            if paused {
                docker.pause_container(&id).await
            } else {
                docker.unpause_container(&id).await
            }
            .map_err(|e| e.to_string())
        })
        .map_err(|reason| InfraError::Container {
            action: format!(
                "{} the {kind} container",
                if paused { "pause" } else { "unpause" }
            ),
            reason,
        })
    }

    /// Removes the container now (dropping the handle does the same).
    pub fn remove(&self) {
        let removal = self
            .remove
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(removal) = removal {
            block_on_service(removal());
        }
    }
}

impl Drop for ContainerHandle {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Starts `request` on the service runtime, labelled, and answers its handle with the
/// host port of `port` (`None`: the container is on the host network, and `host_port`
/// is where it listens).
async fn start<I: Image + 'static>(
    request: ContainerRequest<I>,
    kind: &'static str,
    port: Option<u16>,
    host_port: u16,
) -> Result<ContainerHandle, InfraError> {
    sweep_containers_once().await;
    let request = request
        .with_label(OWNER_LABEL, Owner::current().to_string())
        .with_label(KIND_LABEL, kind)
        .with_startup_timeout(STARTUP_TIMEOUT);
    on_service(async move {
        let container = request.start().await.map_err(|e| e.to_string())?;
        let host = match container.get_host().await.map_err(|e| e.to_string())? {
            // A unix socket's daemon is this machine: loopback, where ports are published.
            url::Host::Domain(name) if name == "localhost" => "127.0.0.1".to_owned(),
            host => host.to_string(),
        };
        let port = match port {
            Some(port) => container
                .get_host_port_ipv4(port.tcp())
                .await
                .map_err(|e| e.to_string())?,
            None => host_port,
        };
        Ok(ContainerHandle::new(container, kind, host, port))
    })
    .await
    .map_err(|reason| InfraError::Container {
        action: format!("start a {kind} container"),
        reason,
    })
}

/// A Postgres container (trust, user and database `postgres`); its URL is
/// `postgres://postgres@HOST:PORT/postgres`.
pub async fn start_postgres() -> Result<ContainerHandle, InfraError> {
    start(postgres_image(), "postgres", Some(5432), 0).await
}

/// A Redis container; its URL is `redis://HOST:PORT/`.
pub async fn start_redis() -> Result<ContainerHandle, InfraError> {
    start(redis_image(), "redis", Some(6379), 0).await
}

/// A Toxiproxy container on the host network, once its API answers; its URL is
/// `http://127.0.0.1:PORT`.
pub async fn start_toxiproxy() -> Result<ContainerHandle, InfraError> {
    let port = crate::process::free_port()?;
    let request = ToxiproxyImage::on_port(port).with_host_config_modifier(|config| {
        config.network_mode = Some("host".to_owned());
    });
    let handle = start(request, "toxiproxy", None, port).await?;
    let deadline = tokio::time::Instant::now() + TOXIPROXY_READY;
    loop {
        let answered = tokio::task::spawn_blocking(move || {
            crate::provider::http_get_ok(&format!("127.0.0.1:{port}"), "/version")
        })
        .await
        .unwrap_or(false);
        if answered {
            return Ok(handle);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(InfraError::Container {
                action: "start a toxiproxy container".to_owned(),
                reason: format!(
                    "its API on 127.0.0.1:{port} did not answer within {TOXIPROXY_READY:?}"
                ),
            });
        }
        tokio::time::sleep(crate::process::POLL_INTERVAL).await;
    }
}

/// [`start_postgres`] for a caller without a runtime (blocks).
pub fn start_postgres_blocking() -> Result<ContainerHandle, InfraError> {
    block_on_service(start_postgres())
}

/// [`start_redis`] for a caller without a runtime (blocks).
pub fn start_redis_blocking() -> Result<ContainerHandle, InfraError> {
    block_on_service(start_redis())
}

/// [`start_toxiproxy`] for a caller without a runtime (blocks).
pub fn start_toxiproxy_blocking() -> Result<ContainerHandle, InfraError> {
    block_on_service(start_toxiproxy())
}

/// The process-wide Toxiproxy container of the `containers` provider: started on the
/// first call, removed at exit. The first attempt's failure is every caller's.
pub fn shared_toxiproxy() -> Result<&'static ContainerHandle, InfraError> {
    static SHARED: OnceLock<Result<ContainerHandle, String>> = OnceLock::new();
    let shared = SHARED.get_or_init(|| {
        let handle = start_toxiproxy_blocking().map_err(|e| crate::error::chain(&e))?;
        // SAFETY: registers a plain function; it only touches a static.
        unsafe { libc::atexit(remove_shared_toxiproxy) };
        Ok(handle)
    });
    extern "C" fn remove_shared_toxiproxy() {
        let _ = std::panic::catch_unwind(|| {
            if let Some(Ok(handle)) = SHARED.get() {
                handle.remove();
            }
        });
    }
    shared.as_ref().map_err(|reason| InfraError::Container {
        action: "start the shared toxiproxy container (first attempt in this process)".to_owned(),
        reason: reason.clone(),
    })
}

/// This process's [`OWNER_LABEL`] value.
pub fn owner_label() -> String {
    Owner::current().to_string()
}

/// [`sweep_containers`] for a caller without a runtime (blocks).
pub fn sweep_leftover_containers() -> Result<Vec<String>, InfraError> {
    block_on_service(sweep_containers())
}

async fn sweep_containers_once() {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            match on_service(sweep_containers()).await {
                Ok(removed) => {
                    for id in removed {
                        tracing::info!("removed container {id} left by a crashed run");
                    }
                }
                Err(err) => tracing::warn!("failed to {}", crate::error::chain(&err)),
            }
        })
        .await;
}

/// Removes the containers labelled [`OWNER_LABEL`] whose owner is dead on this host (a
/// killed run's); those of live processes and of other hosts are left alone. Answers
/// the ids removed. Runs once per process before its first container.
async fn sweep_containers() -> Result<Vec<String>, InfraError> {
    let failed = |reason: String| InfraError::Container {
        action: "sweep the containers of crashed runs".to_owned(),
        reason,
    };
    let docker = testcontainers::core::client::docker_client_instance()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let filters =
        std::collections::HashMap::from([("label".to_owned(), vec![OWNER_LABEL.to_owned()])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let containers = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let mut removed = Vec::new();
    for container in containers {
        let owner = container
            .labels
            .as_ref()
            .and_then(|labels| labels.get(OWNER_LABEL))
            .and_then(|text| Owner::parse(text));
        let (Some(owner), Some(id)) = (owner, container.id) else {
            continue;
        };
        if owner.liveness() != Liveness::Dead {
            continue;
        }
        let force = RemoveContainerOptionsBuilder::new().force(true).build();
        match docker.remove_container(&id, Some(force)).await {
            Ok(()) => removed.push(id),
            Err(err) => tracing::warn!("failed to remove container {id} of a crashed run: {err}"),
        }
    }
    Ok(removed)
}
