//! What the proxy costs with no toxic, against a direct loopback connection in the same run:
//! request/response latency (median and p99 of N ping-pongs of small messages over one
//! connection) and the throughput of one link.
//!
//! `cargo run --release -p fault-proxy --example proxy_bench [-- N [MiB]]`
//! (defaults: 10000 round trips, 512 MiB streamed).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fault_proxy::Server;
use fault_proxy::client::Client;
use fault_proxy::model::NewProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MESSAGE: usize = 64;
const WARM_UP: usize = 1_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let round_trips: usize = args.next().map_or(Ok(10_000), |n| n.parse())?;
    let mebibytes: usize = args.next().map_or(Ok(512), |n| n.parse())?;

    let echo = serve(echo).await?;
    let sink = serve(sink).await?;
    let server = Server::start("127.0.0.1:0".parse()?, 0).await?;
    let client = Client::new(server.url());
    let proxied_echo = proxy(&client, "echo", echo).await?;
    let proxied_sink = proxy(&client, "sink", sink).await?;

    let direct = ping_pong(echo, round_trips).await?;
    let proxied = ping_pong(proxied_echo, round_trips).await?;
    let bytes = mebibytes * 1024 * 1024;
    let direct_rate = stream(sink, bytes).await?;
    let proxied_rate = stream(proxied_sink, bytes).await?;

    println!(
        "fault-proxy, no toxic, loopback; {round_trips} round trips of {MESSAGE} B, {mebibytes} MiB streamed"
    );
    println!();
    println!("| path     | median RTT | p99 RTT   | throughput  |");
    println!("|----------|-----------:|----------:|------------:|");
    for (name, rtts, rate) in [
        ("direct", &direct, direct_rate),
        ("proxied", &proxied, proxied_rate),
    ] {
        println!(
            "| {name:<8} | {:>7.1} µs | {:>6.1} µs | {rate:>6.0} MB/s |",
            micros(percentile(rtts, 50.0)),
            micros(percentile(rtts, 99.0)),
        );
    }
    println!(
        "| added    | {:>7.1} µs | {:>6.1} µs | {:>6.1} %   |",
        micros(percentile(&proxied, 50.0)) - micros(percentile(&direct, 50.0)),
        micros(percentile(&proxied, 99.0)) - micros(percentile(&direct, 99.0)),
        100.0 * proxied_rate / direct_rate,
    );
    server.shutdown().await;
    Ok(())
}

async fn proxy(
    client: &Client,
    name: &str,
    upstream: SocketAddr,
) -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let spec = NewProxy::new(name, "127.0.0.1:0", upstream.to_string());
    Ok(client.create_proxy(&spec).await?.listen.parse()?)
}

/// Round-trip times of `n` ping-pongs over one connection, after a warm-up.
async fn ping_pong(addr: SocketAddr, n: usize) -> std::io::Result<Vec<Duration>> {
    let mut socket = TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?;
    let message = [7u8; MESSAGE];
    let mut answer = [0u8; MESSAGE];
    let mut rtts = Vec::with_capacity(n);
    for i in 0..WARM_UP + n {
        let started = Instant::now();
        socket.write_all(&message).await?;
        socket.read_exact(&mut answer).await?;
        if i >= WARM_UP {
            rtts.push(started.elapsed());
        }
    }
    rtts.sort();
    Ok(rtts)
}

/// MB/s (10^6 bytes) of `bytes` sent through one connection, until the sink has them all.
async fn stream(addr: SocketAddr, bytes: usize) -> std::io::Result<f64> {
    let mut socket = TcpStream::connect(addr).await?;
    let block = vec![1u8; 256 * 1024];
    let started = Instant::now();
    let mut sent = 0;
    while sent < bytes {
        let n = block.len().min(bytes - sent);
        socket.write_all(&block[..n]).await?;
        sent += n;
    }
    socket.shutdown().await?;
    // The sink answers with the count once it has read everything.
    let mut count = [0u8; 8];
    socket.read_exact(&mut count).await?;
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(
        u64::from_le_bytes(count),
        bytes as u64,
        "every byte arrived"
    );
    Ok(bytes as f64 / seconds / 1e6)
}

async fn serve<F, Fut>(handler: F) -> std::io::Result<SocketAddr>
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let _ = socket.set_nodelay(true);
            tokio::spawn(handler(socket));
        }
    });
    Ok(addr)
}

async fn echo(mut socket: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        socket.write_all(&buf[..n]).await?;
    }
}

async fn sink(mut socket: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    socket.write_all(&total.to_le_bytes()).await
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[index]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
