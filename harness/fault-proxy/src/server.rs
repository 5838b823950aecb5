//! The embeddable server: the REST API on one address, the proxies it creates.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api;
use crate::http::{self, ApiLimits};
use crate::registry::Registry;

/// Why the server did not start. Reads after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("listen on {addr} for the fault-proxy API")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// A running fault proxy. [`Server::shutdown`] stops it and waits; dropping it stops the
/// API and every proxy too, without waiting.
pub struct Server {
    addr: SocketAddr,
    seed: u64,
    registry: Arc<Registry>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves the API on `listen` (port 0: a free one); `seed` drives every random choice
    /// (jitter, toxicity, slice sizes), so a run replays with the same seed. The API's
    /// connections have Toxiproxy's limits ([`ApiLimits::default`]).
    pub async fn start(listen: SocketAddr, seed: u64) -> Result<Server, ServerError> {
        Self::start_with_limits(listen, seed, ApiLimits::default()).await
    }

    /// As [`Server::start`], with other limits on the API's connections (tests shrink the
    /// timeouts).
    pub async fn start_with_limits(
        listen: SocketAddr,
        seed: u64,
        limits: ApiLimits,
    ) -> Result<Server, ServerError> {
        let bind_error = |source| ServerError::Bind {
            addr: listen,
            source,
        };
        let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let registry = Arc::new(Registry::new(seed));
        let app = api::router(registry.clone(), limits);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(http::serve(listener, app, limits, stopped));
        tracing::info!(%addr, seed, "fault-proxy API listening");
        Ok(Server {
            addr,
            seed,
            registry,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The API's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's base URL, `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Stops the API (answering requests in flight, within
    /// [`ApiLimits::shutdown_grace`]), then every proxy: listeners closed, connections
    /// closed, all before returning.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.registry.shutdown().await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.registry.close();
    }
}
