//! Hostile callers of the API, on raw sockets: slow or idle connections are closed, a
//! body too large or too slow is refused in the API's JSON shape, and only so many
//! connections are served at once. Each timeout under test is short and every other one
//! long, so only the one under test can close the connection; waits have the usual
//! generous deadline, and no test measures a time.

mod common;

use std::time::Duration;

use common::{DEADLINE, Rig, read_until_closed, within};
use fault_proxy::ApiLimits;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The timeout under test.
const SHORT: Duration = Duration::from_millis(200);

/// Limits no test outlasts: only the one a test shortens can act.
fn long() -> ApiLimits {
    let long = DEADLINE * 10;
    ApiLimits {
        header_read_timeout: long,
        body_read_timeout: long,
        idle_timeout: long,
        ..ApiLimits::default()
    }
}

async fn connect(rig: &Rig) -> TcpStream {
    within("connect to the API", TcpStream::connect(rig.server.addr()))
        .await
        .expect("connect to the API")
}

const VERSION: &[u8] = b"GET /version HTTP/1.1\r\nHost: fault-proxy\r\n\r\n";

/// One HTTP/1.1 answer: its status and its body as JSON (its text if not JSON).
async fn read_response(stream: &mut TcpStream) -> (u16, Value) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = within("an answer", stream.read(&mut buf))
            .await
            .expect("read an answer");
        assert!(
            n > 0,
            "closed before an answer: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |length| length.trim().parse().expect("a content length"));
    while got.len() < head_end + length {
        let n = within("the answer's body", stream.read(&mut buf))
            .await
            .expect("read the answer's body");
        assert!(n > 0, "closed inside the answer's body");
        got.extend_from_slice(&buf[..n]);
    }
    let body = &got[head_end..head_end + length];
    let value = serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    (status, value)
}

/// The API's error shape, with `status`, saying `says`.
fn assert_json_error(answer: &(u16, Value), status: u16, says: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["status"], status, "{body}");
    let message = body["error"].as_str().unwrap_or_else(|| panic!("{body}"));
    assert!(message.contains(says), "{message:?} should say {says:?}");
}

// Regression: slow callers were held for ever (five slowloris connections were still
// open after 150 s): the API had no header-read timeout.
#[tokio::test]
async fn a_caller_that_never_finishes_its_header_is_disconnected() {
    let rig = Rig::with_limits(ApiLimits {
        header_read_timeout: SHORT,
        ..long()
    })
    .await;
    let mut slow = connect(&rig).await;
    slow.write_all(b"GET /version HTTP/1.1\r\nHost: fault-proxy\r\n")
        .await
        .unwrap();
    let (got, _) = read_until_closed(&mut slow).await;
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
}

// Regression: as above, for the slowloris that keeps sending header lines so that the
// connection is never idle.
#[tokio::test]
async fn a_caller_trickling_an_endless_header_is_disconnected_though_bytes_keep_coming() {
    let rig = Rig::with_limits(ApiLimits {
        header_read_timeout: SHORT,
        ..long()
    })
    .await;
    let mut slow = connect(&rig).await;
    slow.write_all(b"GET /version HTTP/1.1\r\n").await.unwrap();
    // Load, not synchronisation: a header line every few milliseconds until the server
    // closes (a read ends, or a write fails).
    let mut trickle = tokio::time::interval(Duration::from_millis(20));
    let mut buf = [0u8; 1024];
    within("the server closing the trickling connection", async {
        loop {
            tokio::select! {
                _ = trickle.tick() => {
                    if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
                        return;
                    }
                }
                read = slow.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => panic!(
                        "an answer to half a request: {:?}",
                        String::from_utf8_lossy(&buf[..n])
                    ),
                },
            }
        }
    })
    .await;
}

// Regression: a keep-alive connection that asked nothing more was held for ever: the API
// had no idle timeout.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let rig = Rig::with_limits(ApiLimits {
        idle_timeout: SHORT,
        ..long()
    })
    .await;
    let mut idle = connect(&rig).await;
    idle.write_all(VERSION).await.unwrap();
    let (status, version) = read_response(&mut idle).await;
    assert_eq!(status, 200, "{version}");
    let (got, _) = read_until_closed(&mut idle).await;
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
}

// Regression: a body that stopped arriving held the connection, and its handler, for
// ever.
#[tokio::test]
async fn a_body_that_stops_arriving_is_a_408_in_the_apis_json_shape_and_the_connection_closes() {
    let rig = Rig::with_limits(ApiLimits {
        body_read_timeout: SHORT,
        ..long()
    })
    .await;
    let mut slow = connect(&rig).await;
    slow.write_all(
        b"POST /proxies HTTP/1.1\r\nHost: fault-proxy\r\nContent-Length: 100\r\n\r\n{\"name\"",
    )
    .await
    .unwrap();
    let answer = read_response(&mut slow).await;
    assert_json_error(&answer, 408, "request body not received within 200 ms");
    let (got, _) = read_until_closed(&mut slow).await;
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert!(rig.client.proxies().await.unwrap().is_empty());
}

// Regression: a body over the limit was answered 413 in plain text, where every other
// error of the API is `{"error": "...", "status": N}`.
#[tokio::test]
async fn a_body_over_the_limit_is_a_413_in_the_apis_json_shape() {
    let rig = Rig::new().await;
    let mut big = connect(&rig).await;
    // Declared, never sent: the server refuses it on the header alone.
    let request = format!(
        "POST /populate HTTP/1.1\r\nHost: fault-proxy\r\nContent-Length: {}\r\n\r\n",
        ApiLimits::MAX_BODY_BYTES + 1
    );
    big.write_all(request.as_bytes()).await.unwrap();
    let answer = read_response(&mut big).await;
    assert_json_error(
        &answer,
        413,
        &format!(
            "request body too large: more than {} bytes",
            ApiLimits::MAX_BODY_BYTES
        ),
    );
}

// Regression: the API served any number of connections at once, so idle or slow callers
// could take every file descriptor the process had.
#[tokio::test]
async fn a_connection_beyond_the_limit_is_served_only_once_another_closes() {
    let rig = Rig::with_limits(ApiLimits {
        max_connections: 2,
        ..long()
    })
    .await;
    let mut first = connect(&rig).await;
    let second = connect(&rig).await;
    let mut third = connect(&rig).await;
    third.write_all(VERSION).await.unwrap();
    // The first connection is served (so the server has taken both slots), and its
    // request went out after the third's; the third is still waiting.
    first.write_all(VERSION).await.unwrap();
    assert_eq!(read_response(&mut first).await.0, 200);
    let mut buf = [0u8; 1];
    let waiting = third.try_read(&mut buf);
    assert!(
        matches!(&waiting, Err(err) if err.kind() == std::io::ErrorKind::WouldBlock),
        "the third connection was answered while two were open: {waiting:?}"
    );
    drop(second);
    let (status, version) = read_response(&mut third).await;
    assert_eq!(status, 200, "{version}");
}
