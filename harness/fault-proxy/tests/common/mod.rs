//! Shared test rig: an embedded fault proxy, its client, and an upstream the test holds
//! both ends of, so each direction can be driven and observed on its own.

#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use fault_proxy::client::Client;
use fault_proxy::model::{NewProxy, NewToxic, Proxy, Stream, ToxicKind};
use fault_proxy::{ApiLimits, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A hang guard on every wait, never a timing expectation.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// A delay long enough that data held by it can only arrive by being released.
pub const HOUR_MS: u64 = 3_600_000;

pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {DEADLINE:?}"))
}

pub struct Rig {
    pub server: Server,
    pub client: Client,
    upstream: TcpListener,
}

/// One connection through the proxy: the client's socket and the upstream's accepted one.
pub struct Conn {
    pub client: TcpStream,
    pub server: TcpStream,
}

impl Rig {
    pub async fn new() -> Self {
        Self::with_seed(1).await
    }

    pub async fn with_seed(seed: u64) -> Self {
        Self::with(seed, ApiLimits::default()).await
    }

    /// A rig whose API has other limits (shorter timeouts, fewer connections).
    pub async fn with_limits(limits: ApiLimits) -> Self {
        Self::with(1, limits).await
    }

    async fn with(seed: u64, limits: ApiLimits) -> Self {
        let server = Server::start_with_limits("127.0.0.1:0".parse().unwrap(), seed, limits)
            .await
            .expect("start the fault proxy");
        let client = Client::new(server.url());
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self {
            server,
            client,
            upstream,
        }
    }

    pub fn upstream_addr(&self) -> SocketAddr {
        self.upstream.local_addr().unwrap()
    }

    /// A proxy named `name` in front of the rig's upstream, on a free port.
    pub async fn proxy(&self, name: &str) -> Proxy {
        let spec = NewProxy::new(name, "127.0.0.1:0", self.upstream_addr().to_string());
        self.client
            .create_proxy(&spec)
            .await
            .expect("create a proxy")
    }

    /// Connects through `proxy` and accepts the proxy's upstream connection.
    pub async fn connect(&self, proxy: &Proxy) -> Conn {
        let client = within("connect to the proxy", TcpStream::connect(&proxy.listen))
            .await
            .expect("connect to the proxy");
        let (server, _) = within("the proxy's upstream connection", self.upstream.accept())
            .await
            .expect("accept the proxy's upstream connection");
        Conn { client, server }
    }

    pub async fn add(&self, proxy: &str, stream: Stream, kind: ToxicKind) {
        let toxic = NewToxic::new(kind).stream(stream);
        self.client
            .add_toxic(proxy, &toxic)
            .await
            .expect("add a toxic");
    }

    pub async fn remove(&self, proxy: &str, toxic: &str) {
        self.client
            .remove_toxic(proxy, toxic)
            .await
            .expect("remove a toxic");
    }
}

impl Conn {
    /// The sending and the receiving socket of `stream`.
    pub fn ends(&mut self, stream: Stream) -> (&mut TcpStream, &mut TcpStream) {
        match stream {
            Stream::Upstream => (&mut self.client, &mut self.server),
            Stream::Downstream => (&mut self.server, &mut self.client),
        }
    }

    /// Sends `message` along `stream` and reads it at the other end.
    pub async fn pass(&mut self, stream: Stream, message: &[u8]) {
        let (from, to) = self.ends(stream);
        from.write_all(message).await.unwrap();
        assert_eq!(read_exactly(to, message.len()).await, message);
    }

    /// A round trip each way: the link works.
    pub async fn round_trip(&mut self) {
        self.pass(Stream::Upstream, b"ping").await;
        self.pass(Stream::Downstream, b"pong").await;
    }
}

pub async fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    within("read", stream.read_exact(&mut buf))
        .await
        .expect("read the expected bytes");
    buf
}

/// Everything until the stream ends: Ok with the bytes at a clean close, or the error
/// (with what came before it).
pub async fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, io::Result<()>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match within("the end of the stream", stream.read(&mut buf)).await {
            Ok(0) => return (got, Ok(())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) => return (got, Err(err)),
        }
    }
}

/// A server answering each read with the same bytes, until the client closes.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if socket.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

pub const BOTH: [Stream; 2] = [Stream::Upstream, Stream::Downstream];
