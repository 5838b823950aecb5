//! The standard blocking client, `toxiproxy_rust`, drives the embedded proxy: the API is
//! faithful enough for it. Its calls block (and panic on network errors), so it runs on a
//! plain test thread, with the server on a runtime of its own.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use fault_proxy::Server;
use toxiproxy_rust::client::Client;
use toxiproxy_rust::proxy::ProxyPack;

/// The server and an echo upstream on their own runtime thread, until dropped.
struct Background {
    api: SocketAddr,
    echo: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    fn start() -> Self {
        let (ready, addrs) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let server = Server::start("127.0.0.1:0".parse().unwrap(), 1)
                    .await
                    .unwrap();
                let echo = common::echo_server().await;
                ready.send((server.addr(), echo)).unwrap();
                let _ = stopped.await;
                server.shutdown().await;
            });
        });
        let (api, echo) = addrs
            .recv_timeout(common::DEADLINE)
            .expect("the server starts");
        Self {
            api,
            echo,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn connect(listen: &str) -> std::io::Result<TcpStream> {
    let socket = TcpStream::connect(listen)?;
    socket.set_read_timeout(Some(common::DEADLINE))?;
    Ok(socket)
}

fn round_trip(listen: &str) {
    let mut socket = connect(listen).expect("connect through the proxy");
    socket.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    socket.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
}

#[test]
fn the_standard_toxiproxy_client_drives_the_proxy() {
    let background = Background::start();
    let toxiproxy = Client::new(background.api);
    assert!(toxiproxy.is_running());
    assert!(!toxiproxy.version().unwrap().is_empty());

    let created = toxiproxy
        .populate(vec![ProxyPack::new(
            "echo".into(),
            "127.0.0.1:0".into(),
            background.echo.to_string(),
        )])
        .unwrap();
    let listen = created[0].proxy_pack.listen.clone();
    assert!(created[0].proxy_pack.enabled);
    round_trip(&listen);

    // A toxic added, listed, applied (its delay is a lower bound), and removed.
    let proxy = toxiproxy.find_and_reset_proxy("echo").unwrap();
    proxy.with_latency("downstream".into(), 100, 0, 1.0);
    let toxics = proxy.toxics().unwrap();
    assert_eq!(toxics.len(), 1);
    assert_eq!(toxics[0].name, "latency_downstream");
    assert_eq!(toxics[0].attributes["latency"], 100);
    let started = Instant::now();
    round_trip(&listen);
    assert!(started.elapsed() >= Duration::from_millis(100));
    proxy.delete_all_toxics().unwrap();
    assert!(proxy.toxics().unwrap().is_empty());

    proxy
        .with_limit_data("downstream".into(), 3, 1.0)
        .apply(|| {
            let mut socket = connect(&listen).unwrap();
            socket.write_all(b"truncated").unwrap();
            let mut got = Vec::new();
            let _ = socket.read_to_end(&mut got);
            assert_eq!(got, b"tru");
        })
        .unwrap();

    // Down refuses connections; up again works.
    proxy
        .with_down(|| {
            let refused = connect(&listen).map(drop).map_err(|e| e.kind());
            assert_eq!(refused, Err(ErrorKind::ConnectionRefused));
        })
        .unwrap();
    round_trip(&listen);

    // Reset re-enables a disabled proxy and clears its toxics.
    proxy.disable().unwrap();
    proxy.with_timeout("upstream".into(), 0, 1.0);
    toxiproxy.reset().unwrap();
    let all = toxiproxy.all().unwrap();
    assert!(all["echo"].proxy_pack.enabled);
    assert!(all["echo"].proxy_pack.toxics.is_empty());
    round_trip(&listen);

    proxy.delete().unwrap();
    assert!(toxiproxy.find_proxy("echo").is_err());
}
