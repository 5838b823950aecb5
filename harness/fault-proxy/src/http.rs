//! The API's HTTP/1 server: hyper's connection driver around the router, with the limits
//! Toxiproxy's Go server has and `axum::serve` lacks. A caller that sends a header slowly
//! (slowloris), or keeps a connection open without asking anything, is disconnected; and
//! only so many connections are served at once.
//!
//! Each connection is in one of three phases, and each phase has its deadline:
//!
//! - reading a request's header, from its first byte (from the accept for the first
//!   request): [`ApiLimits::header_read_timeout`];
//! - handling a request, once its header is in: no deadline here (the body has its own
//!   timeout, see `api::read_body`);
//! - idle between requests (keep-alive): [`ApiLimits::idle_timeout`].
//!
//! hyper's own `header_read_timeout` is not used: it runs from the end of the previous
//! answer, so it would also cut idle keep-alive connections at 15 s, where Toxiproxy
//! (Go's `IdleTimeout`) keeps them for 60 s.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Limits on the API's connections and requests. The defaults are Toxiproxy's timeouts
/// (its Go server's `ReadTimeout` and `IdleTimeout`) and axum's body limit; tests shrink
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// A request's header must be in this long after its first byte (after the accept,
    /// for a connection's first request), or the connection is closed.
    pub header_read_timeout: Duration,
    /// A request's body must be in this long after its header, or it is answered 408
    /// and the connection closed.
    pub body_read_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// API connections served at once; further ones wait in the listen backlog until one
    /// closes (the timeouts above bound how long that is).
    pub max_connections: usize,
    /// The largest request body; a larger one is answered 413.
    pub max_body_bytes: usize,
    /// When the server stops, how long requests in flight have to finish.
    pub shutdown_grace: Duration,
}

impl ApiLimits {
    /// Toxiproxy's `ReadTimeout`.
    pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);
    /// Toxiproxy's `ReadTimeout` covers the body too.
    pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(15);
    /// Toxiproxy's `IdleTimeout`.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Far more than a harness needs (one client, a few pooled connections), far fewer
    /// than the file descriptors a process has.
    pub const MAX_CONNECTIONS: usize = 128;
    /// axum's default body limit, which the API had before it was made explicit.
    pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
    /// Toxiproxy's shutdown wait.
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Self::HEADER_READ_TIMEOUT,
            body_read_timeout: Self::BODY_READ_TIMEOUT,
            idle_timeout: Self::IDLE_TIMEOUT,
            max_connections: Self::MAX_CONNECTIONS,
            max_body_bytes: Self::MAX_BODY_BYTES,
            shutdown_grace: Self::SHUTDOWN_GRACE,
        }
    }
}

/// Pause after a failed accept (out of file descriptors, say) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Serves `app` on `listener` until `stop` fires (or its sender is dropped); then stops
/// accepting, lets requests in flight finish (within [`ApiLimits::shutdown_grace`]) and
/// returns once every connection is closed.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ApiLimits,
    mut stop: oneshot::Receiver<()>,
) {
    // At least one, or nothing would ever be served.
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        // Finished connections are forgotten (their slots are already free).
        while connections.try_join_next().is_some() {}
        // A slot first: at the limit, further connections wait in the backlog.
        let slot = tokio::select! {
            _ = &mut stop => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!("failed to accept an API connection: {err}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        connections.spawn(connection(
            stream,
            app.clone(),
            limits,
            closing_rx.clone(),
            slot,
        ));
    }
    drop(listener);
    closing.send_replace(true);
    while connections.join_next().await.is_some() {}
}

/// Where a connection stands; see the module's documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A request's header is being read, since its first byte.
    Header { since: Instant },
    /// A request is being handled.
    Busy,
    /// Between requests, since the last answer.
    Idle { since: Instant },
}

impl Phase {
    /// When the connection is closed if nothing changes; None: not from here.
    fn deadline(self, limits: &ApiLimits) -> Option<Instant> {
        match self {
            Phase::Header { since } => since.checked_add(limits.header_read_timeout),
            Phase::Busy => None,
            Phase::Idle { since } => since.checked_add(limits.idle_timeout),
        }
    }
}

/// The phase of one connection, shared by its socket, its service and its driver.
#[derive(Clone)]
struct Activity(Arc<watch::Sender<Phase>>);

impl Activity {
    fn new() -> Self {
        Self(Arc::new(watch::Sender::new(Phase::Header {
            since: Instant::now(),
        })))
    }

    /// Bytes came in: if the connection was idle, a request has begun.
    fn bytes_arrived(&self) {
        self.0.send_if_modified(|phase| match phase {
            Phase::Idle { .. } => {
                *phase = Phase::Header {
                    since: Instant::now(),
                };
                true
            }
            Phase::Header { .. } | Phase::Busy => false,
        });
    }

    /// A request's header is in; idle again when the guard drops (its answer is ready).
    fn busy(&self) -> BusyGuard {
        self.0.send_replace(Phase::Busy);
        BusyGuard(self.clone())
    }
}

struct BusyGuard(Activity);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.0.send_replace(Phase::Idle {
            since: Instant::now(),
        });
    }
}

async fn connection(
    stream: TcpStream,
    app: Router,
    limits: ApiLimits,
    mut closing: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let activity = Activity::new();
    let mut phase = activity.0.subscribe();
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let app = TowerToHyperService::new(app);
    let service = hyper::service::service_fn(move |request| {
        let guard = activity.busy();
        let answer = hyper::service::Service::call(&app, request);
        async move {
            let answer = answer.await;
            drop(guard);
            answer
        }
    });
    // No hyper timer: the phases below time the connection (see the module's doc).
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(conn);
    loop {
        let deadline = phase.borrow_and_update().deadline(&limits);
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(err) = served {
                    tracing::debug!("API connection ended: {err}");
                }
                return;
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = sleep_until(deadline) => {
                tracing::debug!(phase = ?*phase.borrow(), "closing an API connection that timed out");
                // Dropping the connection closes the socket.
                return;
            }
            _ = closing.wait_for(|closing| *closing) => break,
        }
    }
    // The server is stopping: the request in flight, if any, is answered; then it closes.
    conn.as_mut().graceful_shutdown();
    if tokio::time::timeout(limits.shutdown_grace, conn)
        .await
        .is_err()
    {
        tracing::debug!("closing an API connection still busy at shutdown");
    }
}

/// Sleeps until `deadline`; for ever if None.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The connection's socket, telling its [`Activity`] when bytes arrive.
struct Watched {
    stream: TcpStream,
    activity: Activity,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_phase_but_busy_has_its_deadline() {
        let limits = ApiLimits {
            header_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(2),
            ..ApiLimits::default()
        };
        let now = Instant::now();
        assert_eq!(
            Phase::Header { since: now }.deadline(&limits),
            Some(now + Duration::from_secs(1))
        );
        assert_eq!(
            Phase::Idle { since: now }.deadline(&limits),
            Some(now + Duration::from_secs(2))
        );
        assert_eq!(Phase::Busy.deadline(&limits), None);
        let forever = ApiLimits {
            idle_timeout: Duration::MAX,
            ..limits
        };
        assert_eq!(Phase::Idle { since: now }.deadline(&forever), None);
    }

    #[test]
    fn bytes_begin_a_request_only_on_an_idle_connection() {
        let activity = Activity::new();
        let guard = activity.busy();
        activity.bytes_arrived();
        assert_eq!(
            *activity.0.borrow(),
            Phase::Busy,
            "body bytes change nothing"
        );
        drop(guard);
        assert!(matches!(*activity.0.borrow(), Phase::Idle { .. }));
        activity.bytes_arrived();
        assert!(matches!(*activity.0.borrow(), Phase::Header { .. }));
    }
}
