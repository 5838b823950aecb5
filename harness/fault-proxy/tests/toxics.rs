//! Each toxic's effect, in each direction, on connections through the embedded proxy.
//! Effects are shown by what arrives and in what order; where a delay is the effect, only
//! its lower bound is asserted (it cannot hold without the toxic).

mod common;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use common::{BOTH, Rig, echo_server, read_exactly, read_until_closed, within};
use fault_proxy::model::{NewProxy, NewToxic, Stream, ToxicKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_proxy_with_no_toxic_echoes_through_to_an_echo_server() {
    let rig = Rig::new().await;
    let echo = echo_server().await;
    let proxy = rig
        .client
        .create_proxy(&NewProxy::new("echo", "127.0.0.1:0", echo.to_string()))
        .await
        .unwrap();
    let mut socket = TcpStream::connect(&proxy.listen).await.unwrap();
    for round in 0..100u32 {
        let message = format!("message {round}");
        socket.write_all(message.as_bytes()).await.unwrap();
        assert_eq!(
            read_exactly(&mut socket, message.len()).await,
            message.as_bytes()
        );
    }
}

#[tokio::test]
async fn latency_delays_each_direction_by_at_least_its_latency() {
    for stream in BOTH {
        let rig = Rig::new().await;
        let proxy = rig.proxy("latency").await;
        let mut conn = rig.connect(&proxy).await;
        let latency = ToxicKind::Latency {
            latency: 200,
            jitter: 0,
        };
        rig.add("latency", stream, latency).await;
        let started = Instant::now();
        conn.pass(stream, b"late").await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200), "{stream}: {took:?}");
    }
}

#[tokio::test]
async fn timeout_on_a_live_connection_drops_data_then_closes_it() {
    for stream in BOTH {
        let rig = Rig::new().await;
        let proxy = rig.proxy("timeout").await;
        let mut conn = rig.connect(&proxy).await;
        conn.round_trip().await;
        rig.add("timeout", stream, ToxicKind::Timeout { timeout: 300 })
            .await;
        let (from, to) = conn.ends(stream);
        from.write_all(b"never delivered").await.unwrap();
        // The first thing the receiver sees is the close: the data was stopped.
        let (got, end) = read_until_closed(to).await;
        assert!(got.is_empty(), "{stream}: {got:?} came through");
        assert!(
            end.is_ok()
                || end
                    .as_ref()
                    .is_err_and(|e| e.kind() == ErrorKind::ConnectionReset),
            "{stream}: {end:?}"
        );
    }
}

#[tokio::test]
async fn reset_peer_on_live_connection_resets_the_client() {
    for stream in BOTH {
        let rig = Rig::new().await;
        let proxy = rig.proxy("reset").await;
        let mut conn = rig.connect(&proxy).await;
        conn.round_trip().await;
        rig.add("reset", stream, ToxicKind::ResetPeer { timeout: 0 })
            .await;
        let mut buf = [0u8; 16];
        let read = within("the reset", conn.client.read(&mut buf)).await;
        assert_eq!(
            read.map_err(|e| e.kind()),
            Err(ErrorKind::ConnectionReset),
            "{stream}"
        );
        let upstream = within("the reset", conn.server.read(&mut buf)).await;
        assert_eq!(
            upstream.map_err(|e| e.kind()),
            Err(ErrorKind::ConnectionReset),
            "{stream}: the upstream is reset too"
        );
    }
}

#[tokio::test]
async fn reset_peer_with_a_timeout_lets_the_link_work_until_it_fires() {
    let rig = Rig::new().await;
    let proxy = rig.proxy("reset").await;
    let mut conn = rig.connect(&proxy).await;
    rig.add(
        "reset",
        Stream::Downstream,
        ToxicKind::ResetPeer { timeout: 200 },
    )
    .await;
    // Upstream is not held: the client's bytes still reach the server.
    conn.pass(Stream::Upstream, b"before the reset").await;
    let mut buf = [0u8; 16];
    let read = within("the reset", conn.client.read(&mut buf)).await;
    assert_eq!(read.map_err(|e| e.kind()), Err(ErrorKind::ConnectionReset));
}

#[tokio::test]
async fn limit_data_closes_after_n_bytes() {
    for stream in BOTH {
        let rig = Rig::new().await;
        let proxy = rig.proxy("limit").await;
        let mut conn = rig.connect(&proxy).await;
        rig.add("limit", stream, ToxicKind::LimitData { bytes: 10 })
            .await;
        let (from, to) = conn.ends(stream);
        from.write_all(b"0123456789abcdefghij").await.unwrap();
        let (got, _) = read_until_closed(to).await;
        assert_eq!(got, b"0123456789", "{stream}");
    }
}

#[tokio::test]
async fn slicer_delivers_the_same_bytes_in_several_reads() {
    for stream in BOTH {
        let rig = Rig::new().await;
        let proxy = rig.proxy("slicer").await;
        let mut conn = rig.connect(&proxy).await;
        let slicer = ToxicKind::Slicer {
            average_size: 10,
            size_variation: 3,
            delay: 20_000,
        };
        rig.add("slicer", stream, slicer).await;
        let message: Vec<u8> = (0..200u8).collect();
        let (from, to) = conn.ends(stream);
        from.write_all(&message).await.unwrap();
        let mut got = Vec::new();
        let mut reads = 0;
        let mut buf = [0u8; 1024];
        while got.len() < message.len() {
            let n = within("a slice", to.read(&mut buf)).await.unwrap();
            assert_ne!(n, 0, "{stream}: closed early");
            got.extend_from_slice(&buf[..n]);
            reads += 1;
        }
        assert_eq!(got, message, "{stream}");
        assert!(reads > 1, "{stream}: one read only");
    }
}

#[tokio::test]
async fn bandwidth_delivers_all_bytes_no_faster_than_its_rate() {
    for stream in BOTH {
        let rig = Rig::new().await;
        let proxy = rig.proxy("bandwidth").await;
        let mut conn = rig.connect(&proxy).await;
        // 100 KB/s: 50 000 bytes take at least half a second.
        rig.add("bandwidth", stream, ToxicKind::Bandwidth { rate: 100 })
            .await;
        let message: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let started = Instant::now();
        let (from, to) = conn.ends(stream);
        let (_, got) = tokio::join!(from.write_all(&message), read_exactly(to, message.len()));
        let took = started.elapsed();
        assert_eq!(got, message, "{stream}");
        assert!(took >= Duration::from_millis(500), "{stream}: {took:?}");
    }
}

#[tokio::test]
async fn slow_close_delays_the_close_by_at_least_its_delay() {
    for stream in BOTH {
        let rig = Rig::new().await;
        let proxy = rig.proxy("slow").await;
        let mut conn = rig.connect(&proxy).await;
        rig.add("slow", stream, ToxicKind::SlowClose { delay: 300 })
            .await;
        let (from, to) = conn.ends(stream);
        from.write_all(b"bye").await.unwrap();
        let closed = Instant::now();
        from.shutdown().await.unwrap();
        let (got, end) = read_until_closed(to).await;
        let took = closed.elapsed();
        assert_eq!(
            (got.as_slice(), end.is_ok()),
            (&b"bye"[..], true),
            "{stream}"
        );
        assert!(took >= Duration::from_millis(300), "{stream}: {took:?}");
    }
}

#[tokio::test]
async fn a_disabled_proxy_refuses_connections_and_closes_existing_ones() {
    let rig = Rig::new().await;
    let proxy = rig.proxy("down").await;
    let mut conn = rig.connect(&proxy).await;
    conn.round_trip().await;

    let down = rig.client.set_enabled("down", false).await.unwrap();
    assert!(!down.enabled);
    let (_, end) = read_until_closed(&mut conn.client).await;
    assert!(
        end.is_ok()
            || end
                .as_ref()
                .is_err_and(|e| e.kind() == ErrorKind::ConnectionReset),
        "{end:?}"
    );
    // Returns only once the proxy closed the upstream side too.
    let _ = read_until_closed(&mut conn.server).await;
    let refused = TcpStream::connect(&proxy.listen).await;
    assert_eq!(
        refused.map(drop).map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionRefused)
    );

    let up = rig.client.set_enabled("down", true).await.unwrap();
    assert_eq!(
        up.listen, proxy.listen,
        "it listens on the same address again"
    );
    let mut again = rig.connect(&up).await;
    again.round_trip().await;
}

#[tokio::test]
async fn removing_a_toxic_restores_the_link() {
    for stream in BOTH {
        let rig = Rig::new().await;
        let proxy = rig.proxy("restore").await;
        let mut conn = rig.connect(&proxy).await;
        let hour = ToxicKind::Latency {
            latency: common::HOUR_MS,
            jitter: 0,
        };
        rig.add("restore", stream, hour).await;
        let (from, _) = conn.ends(stream);
        from.write_all(b"held").await.unwrap();
        rig.remove("restore", &format!("latency_{stream}")).await;
        // An hour's latency: only its removal can deliver the bytes.
        let (_, to) = conn.ends(stream);
        assert_eq!(read_exactly(to, 4).await, b"held", "{stream}");
        conn.round_trip().await;
    }
}

#[tokio::test]
async fn removing_a_timeout_closes_the_connections_it_stalled_and_new_ones_pass() {
    let rig = Rig::new().await;
    let proxy = rig.proxy("stall").await;
    let mut stalled = rig.connect(&proxy).await;
    rig.add(
        "stall",
        Stream::Downstream,
        ToxicKind::Timeout { timeout: 0 },
    )
    .await;
    stalled.server.write_all(b"dropped").await.unwrap();
    rig.remove("stall", "timeout_downstream").await;
    let (got, _) = read_until_closed(&mut stalled.client).await;
    assert!(got.is_empty(), "{got:?}");
    let mut fresh = rig.connect(&proxy).await;
    fresh.round_trip().await;
}

#[tokio::test]
async fn a_toxic_with_toxicity_zero_never_applies() {
    let rig = Rig::new().await;
    let proxy = rig.proxy("never").await;
    let toxic = NewToxic::new(ToxicKind::Timeout { timeout: 0 }).toxicity(0.0);
    rig.client.add_toxic("never", &toxic).await.unwrap();
    let mut conn = rig.connect(&proxy).await;
    conn.round_trip().await;
}

#[tokio::test]
async fn a_half_closed_client_still_reads_the_answer() {
    let rig = Rig::new().await;
    let proxy = rig.proxy("half").await;
    let mut conn = rig.connect(&proxy).await;
    conn.client.write_all(b"question").await.unwrap();
    conn.client.shutdown().await.unwrap();
    let (asked, end) = read_until_closed(&mut conn.server).await;
    assert_eq!((asked.as_slice(), end.is_ok()), (&b"question"[..], true));
    conn.server.write_all(b"answer").await.unwrap();
    conn.server.shutdown().await.unwrap();
    let (answer, end) = read_until_closed(&mut conn.client).await;
    assert_eq!((answer.as_slice(), end.is_ok()), (&b"answer"[..], true));
}
