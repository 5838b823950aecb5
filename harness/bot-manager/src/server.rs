//! The HTTP server: HTTP/1 connections, served until SIGTERM, each bounded so that a slow
//! or idle client cannot hold the service (issue 12).
//!
//! - A request's head must arrive within `--header-read-timeout-ms` of the server starting
//!   to wait for it (hyper's `header_read_timeout`): a slowloris client that trickles its
//!   headers, or never sends any, is disconnected, and so is a keep-alive connection that
//!   sends no next request.
//! - A connection on which nothing moves for `--idle-timeout-ms` while the server waits on
//!   its client is closed: one whose request body stalls, or whose client does not take
//!   its answer. The server's own work on a request (a slow database, say) does not count:
//!   the clock stops from the end of a request's body until its answer is handed over.
//! - At most `--max-connections` connections are served at once: past that, the accept
//!   loop waits for one to close, and new connections wait in the listen backlog.
//! - At most `--max-concurrent-creates` `POST /bots` are worked on at once: past that,
//!   each waits its turn, its body read first (a client that trickles its body holds no
//!   turn), so a burst of creates leaves the database to the stops and the callbacks.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::response::IntoResponse;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::config::HttpLimits;

/// Serves HTTP/1 until SIGTERM, then lets requests in flight finish (for a bounded time).
///
/// Half-closed connections are served, as uvicorn serves them: a bot killed right after
/// its callback left closes its side with the request already sent, and the request is
/// still handled. (hyper's default, through `axum::serve`, drops a request whose client
/// closed before it was dispatched, which made that outcome a matter of timing.)
pub async fn serve(listener: TcpListener, router: axum::Router, limits: &HttpLimits) {
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .half_close(true)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout());
    let idle_timeout = limits.idle_timeout();
    let creates = Arc::new(Semaphore::new(limits.max_concurrent_creates as usize));
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        // A free slot first, then a connection: past the bound, new connections wait in
        // the backlog, not in this process.
        let next = async {
            let slot = match slots.clone().try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "at the connection limit; new connections wait for one to close"
                    );
                    slots
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("the connection slots are never closed")
                }
            };
            (slot, listener.accept().await)
        };
        tokio::select! {
            () = &mut shutdown => break,
            (slot, accepted) = next => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(error = %err, "failed to accept a connection");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                tracing::debug!(%peer, "connection open");
                let activity = Arc::new(Activity::new());
                let service = exchange_service(
                    router.clone(),
                    Arc::clone(&activity),
                    Arc::clone(&creates),
                );
                let connection = builder.serve_connection(
                    hyper_util::rt::TokioIo::new(Watched {
                        stream,
                        activity: Arc::clone(&activity),
                    }),
                    service,
                );
                let mut stopping = stopping.clone();
                connections.spawn(async move {
                    tokio::pin!(connection);
                    let stop_asked = async move {
                        let _ = stopping.wait_for(|s| *s).await;
                    };
                    tokio::pin!(stop_asked);
                    let ended = loop {
                        let check = activity.next_idle_check(idle_timeout);
                        tokio::select! {
                            served = connection.as_mut() => break match served {
                                Ok(()) => "done",
                                Err(err) if err.is_timeout() => "header read timeout",
                                Err(_) => "connection error",
                            },
                            () = &mut stop_asked => {
                                connection.as_mut().graceful_shutdown();
                                let _ = connection.as_mut().await;
                                break "shutdown";
                            }
                            () = tokio::time::sleep_until(check) => {
                                if activity.is_idle(idle_timeout) {
                                    // Dropping the connection closes it.
                                    break "idle timeout";
                                }
                            }
                        }
                    };
                    tracing::debug!(%peer, ended, "connection closed");
                    drop(slot);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drained)
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after 5 s; stopping anyway");
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
    }
}

/// The router as a hyper service, each request's body watched so the connection knows
/// when the server, not its client, has the next move.
fn exchange_service(
    router: axum::Router,
    activity: Arc<Activity>,
    creates: Arc<Semaphore>,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> {
    hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let exchange = Arc::new(Exchange {
            activity: Arc::clone(&activity),
            phase: Mutex::new(Phase::Receiving),
        });
        let is_create = request.method() == hyper::Method::POST && request.uri().path() == "/bots";
        let request = request.map(|body| WatchedBody::new(body, Arc::clone(&exchange)));
        let mut router = router.clone();
        let creates = Arc::clone(&creates);
        async move {
            let answered = Answered(exchange);
            let response = if is_create {
                // Detached, as every handler is (it runs to its end if its client goes),
                // so a create that waits for its turn is not lost with its client.
                let queued = tokio::spawn(async move {
                    let (parts, body) = request.into_parts();
                    let Some(body) = read_body(body, CREATE_BODY_READ).await else {
                        // Its client broke off: what came is no whole request to act on.
                        return Ok(axum::http::StatusCode::BAD_REQUEST.into_response());
                    };
                    let _turn = creates
                        .acquire_owned()
                        .await
                        .expect("the create turns are never closed");
                    let request = hyper::Request::from_parts(parts, axum::body::Body::from(body));
                    tower_service::Service::call(&mut router, request).await
                });
                queued.await.unwrap_or_else(|err| {
                    tracing::error!(error = %err, "a create failed while waiting for its turn");
                    Ok(axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response())
                })
            } else {
                tower_service::Service::call(&mut router, request).await
            };
            drop(answered);
            response
        }
    })
}

/// How much of a create's body is read before its turn: one byte past the API's body
/// limit, so a body over it is still refused with 413, as it was when read by the handler.
const CREATE_BODY_READ: usize = crate::api::BODY_LIMIT + 1;

/// A request's body, read to its end or to `cap` bytes, whichever comes first; `None`
/// when it breaks off (a client gone before its `Content-Length` came).
async fn read_body(mut body: WatchedBody, cap: usize) -> Option<Bytes> {
    use http_body_util::BodyExt;
    let mut read = Vec::new();
    while read.len() < cap {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    read.extend_from_slice(&data);
                }
            }
            Some(Err(_)) => return None,
            None => break,
        }
    }
    Some(Bytes::from(read))
}

/// What one connection has been doing: when a byte last moved either way, and how many
/// of its requests the server is working on (their bodies received, their answers not
/// yet handed over).
struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
    working: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            working: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(now, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    fn working(&self) -> bool {
        self.working.load(Ordering::Relaxed) > 0
    }

    /// Waiting on the client, with nothing moving for `idle`.
    fn is_idle(&self, idle: Duration) -> bool {
        !self.working() && self.last() + idle <= Instant::now()
    }

    /// When to look again: `idle` after the last movement, or (while the server works,
    /// whose end counts as a movement) `idle` from now.
    fn next_idle_check(&self, idle: Duration) -> Instant {
        if self.working() {
            Instant::now() + idle
        } else {
            self.last() + idle
        }
    }
}

/// Where one request stands, from the connection's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Its body is still arriving: the server waits on the client.
    Receiving,
    /// Its body is in (or was given up): the server works on the answer.
    Working,
    /// Its answer is handed to hyper to write.
    Answered,
}

struct Exchange {
    activity: Arc<Activity>,
    phase: Mutex<Phase>,
}

impl Exchange {
    fn step(&self, to: Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(|p| p.into_inner());
        match (*phase, to) {
            (Phase::Receiving, Phase::Working) => {
                self.activity.working.fetch_add(1, Ordering::Relaxed);
            }
            (Phase::Working, Phase::Answered) => {
                self.activity.working.fetch_sub(1, Ordering::Relaxed);
            }
            (Phase::Receiving, Phase::Answered) => {}
            _ => return,
        }
        *phase = to;
        self.activity.touch();
    }
}

/// Marks the request answered when its service future ends (or is dropped).
struct Answered(Arc<Exchange>);

impl Drop for Answered {
    fn drop(&mut self) {
        self.0.step(Phase::Answered);
    }
}

/// A request body that tells its exchange when it has ended (or its reader gave it up).
struct WatchedBody {
    inner: Incoming,
    exchange: Arc<Exchange>,
}

impl WatchedBody {
    fn new(inner: Incoming, exchange: Arc<Exchange>) -> WatchedBody {
        if inner.is_end_stream() {
            exchange.step(Phase::Working);
        }
        WatchedBody { inner, exchange }
    }
}

impl Body for WatchedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) || self.inner.is_end_stream() {
            self.exchange.step(Phase::Working);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        self.exchange.step(Phase::Working);
    }
}

/// A connection's socket, noting every byte that moves.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
