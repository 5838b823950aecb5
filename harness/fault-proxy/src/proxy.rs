//! One proxy: its listener while enabled, and its connections, each a pair of pipes.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::model::{self, Stream};
use crate::pipe::{self, PipeCtx, PipeEnd};
use crate::rng::{Purpose, Rng};
use crate::toxics::ToxicSet;

/// Where a proxy listens when the API gives no address.
const DEFAULT_LISTEN: &str = "127.0.0.1:0";
/// Pause after a failed accept (out of file descriptors, say) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

pub(crate) struct Proxy {
    pub name: String,
    /// As configured; once started, the bound address.
    pub listen: String,
    pub upstream: String,
    toxics: watch::Sender<Arc<ToxicSet>>,
    listener: Option<Listener>,
    /// Numbers connections, for their random streams.
    connections: Arc<AtomicU64>,
    seed: u64,
    /// Set when the whole server goes away.
    closing: watch::Receiver<bool>,
}

/// The accept loop of an enabled proxy.
struct Listener {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Why a proxy cannot listen on its address. Reads after "failed to".
#[derive(Debug, thiserror::Error)]
pub(crate) enum ListenError {
    #[error("resolve {address}: {source}")]
    Resolve { address: String, source: io::Error },
    #[error("resolve {address}: it names no address")]
    NoAddress { address: String },
    #[error("listen on {address}: {source}")]
    Bind { address: String, source: io::Error },
    /// A proxy listens on this machine's loopback only: one on another interface would be
    /// a relay anyone on the network could use, to any upstream.
    #[error(
        "listen on {address}: it is not a loopback address (127.0.0.1, ::1 or a name for them); a proxy listens on this machine only"
    )]
    NotLoopback { address: String },
}

impl ListenError {
    /// Taken, by another proxy or process.
    pub fn in_use(&self) -> bool {
        matches!(self, ListenError::Bind { source, .. } if source.kind() == io::ErrorKind::AddrInUse)
    }
}

/// A listener bound for a proxy, not yet accepting.
pub(crate) struct Bound {
    listener: TcpListener,
    addr: SocketAddr,
}

/// Binds `listen` (empty: 127.0.0.1 on a free port), trying each address it resolves to.
pub(crate) async fn bind(listen: &str) -> Result<Bound, ListenError> {
    let address = if listen.is_empty() {
        DEFAULT_LISTEN
    } else {
        listen
    };
    let shown = || crate::api::error::shown(address);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(address)
        .await
        .map_err(|source| ListenError::Resolve {
            address: shown(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(ListenError::NoAddress { address: shown() });
    }
    if addrs.iter().any(|a| !a.ip().to_canonical().is_loopback()) {
        return Err(ListenError::NotLoopback { address: shown() });
    }
    let bind_error = |source| ListenError::Bind {
        address: shown(),
        source,
    };
    let listener = TcpListener::bind(&addrs[..]).await.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    Ok(Bound { listener, addr })
}

/// What each connection needs to know of its proxy.
struct Link {
    name: String,
    upstream: String,
    toxics: watch::Receiver<Arc<ToxicSet>>,
    seed: u64,
}

impl Proxy {
    pub fn new(
        name: String,
        listen: String,
        upstream: String,
        seed: u64,
        closing: watch::Receiver<bool>,
    ) -> Self {
        Self {
            name,
            listen,
            upstream,
            toxics: watch::channel(Arc::new(ToxicSet::default())).0,
            listener: None,
            connections: Arc::new(AtomicU64::new(0)),
            seed,
            closing,
        }
    }

    pub fn enabled(&self) -> bool {
        self.listener.is_some()
    }

    pub fn toxics(&self) -> Arc<ToxicSet> {
        self.toxics.borrow().clone()
    }

    /// Live connections see the new set at once.
    pub fn set_toxics(&self, set: ToxicSet) {
        self.toxics.send_replace(Arc::new(set));
    }

    pub fn view(&self) -> model::Proxy {
        model::Proxy {
            name: self.name.clone(),
            listen: self.listen.clone(),
            upstream: self.upstream.clone(),
            enabled: self.enabled(),
            toxics: self.toxics().listed(),
        }
    }

    /// Binds and starts accepting; nothing to do if already started.
    pub async fn start(&mut self) -> Result<(), ListenError> {
        if self.listener.is_some() {
            return Ok(());
        }
        let bound = bind(&self.listen).await?;
        self.run(bound);
        Ok(())
    }

    /// Starts accepting on a listener bound beforehand (see [`bind`]): it cannot fail, so
    /// a change of several proxies binds them all first and applies only if all bound.
    /// A proxy already started keeps its listener and drops this one.
    pub fn run(&mut self, bound: Bound) {
        if self.listener.is_some() {
            return;
        }
        self.listen = bound.addr.to_string();
        let link = Arc::new(Link {
            name: self.name.clone(),
            upstream: self.upstream.clone(),
            toxics: self.toxics.subscribe(),
            seed: self.seed,
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(
            bound.listener,
            link,
            self.connections.clone(),
            stopped,
            self.closing.clone(),
        ));
        self.listener = Some(Listener { stop, task });
        tracing::info!(proxy = %self.name, listen = %self.listen, upstream = %self.upstream, "proxy started");
    }

    /// A hard down: stops listening (new connections are refused) and closes every
    /// connection, both before returning.
    pub async fn stop(&mut self) {
        if let Some(listener) = self.listener.take() {
            let _ = listener.stop.send(());
            let _ = listener.task.await;
            tracing::info!(proxy = %self.name, "proxy stopped");
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    link: Arc<Link>,
    numbers: Arc<AtomicU64>,
    mut stop: oneshot::Receiver<()>,
    mut closing: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // A dropped sender stops the loop too.
            _ = &mut stop => break,
            // The guard `wait_for` returns is not Send: drop it inside.
            () = async { let _ = closing.wait_for(|closing| *closing).await; } => break,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    let number = numbers.fetch_add(1, Ordering::Relaxed);
                    connections.spawn(serve(client, link.clone(), number));
                }
                Err(err) => {
                    tracing::warn!(proxy = %link.name, "failed to accept a connection: {err}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    // Aborting drops both sockets of each connection: they close.
    connections.shutdown().await;
}

async fn serve(mut client: TcpStream, link: Arc<Link>, number: u64) {
    let mut upstream = match TcpStream::connect(link.upstream.as_str()).await {
        Ok(upstream) => upstream,
        Err(err) => {
            tracing::warn!(proxy = %link.name, upstream = %link.upstream, "failed to connect upstream: {err}");
            return;
        }
    };
    // Small writes go out at once: the proxy must not add Nagle delays of its own.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let ctx = |direction| PipeCtx {
        direction,
        toxics: link.toxics.clone(),
        rolls: Rng::for_connection(link.seed, &link.name, number, direction, Purpose::Toxicity),
        data: Rng::for_connection(link.seed, &link.name, number, direction, Purpose::Data),
    };
    let end = {
        let (client_read, client_write) = client.split();
        let (upstream_read, upstream_write) = upstream.split();
        both_directions(
            pipe::run(client_read, upstream_write, ctx(Stream::Upstream)),
            pipe::run(upstream_read, client_write, ctx(Stream::Downstream)),
        )
        .await
    };
    tracing::debug!(proxy = %link.name, connection = number, ?end, "connection ended");
    if end == PipeEnd::Reset {
        // Closing with a zero linger sends RST: each peer reads a connection reset.
        let _ = client.set_zero_linger();
        let _ = upstream.set_zero_linger();
    }
}

/// Runs both directions; one that ends with its source's close lets the other go on (a
/// half-close); any other end ends the connection.
async fn both_directions(
    upstream: impl Future<Output = PipeEnd>,
    downstream: impl Future<Output = PipeEnd>,
) -> PipeEnd {
    let mut upstream = pin!(upstream);
    let mut downstream = pin!(downstream);
    let (mut upstream_open, mut downstream_open) = (true, true);
    loop {
        let end = tokio::select! {
            end = &mut upstream, if upstream_open => { upstream_open = false; end }
            end = &mut downstream, if downstream_open => { downstream_open = false; end }
        };
        if end != PipeEnd::Eof || (!upstream_open && !downstream_open) {
            return end;
        }
    }
}
