//! The HTTP server's bounds (issue 12): slow or idle connections are closed, and at most
//! `--max-connections` are served at once. Each test runs its own bot-manager (its own
//! database and Redis, no runtime: none of these requests starts a bot) with short
//! timeouts, and waits for events with the suite's generous deadline.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::json;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{DEADLINE, wait_for};

/// A bot-manager of this test's own, with `args` over its defaults.
struct Service {
    addr: SocketAddr,
    log: PathBuf,
    pool: PgPool,
    _process: infra::process::ChildGuard,
    _dir: tempfile::TempDir,
    _redis: infra::redis::RedisServer,
    _database: infra::postgres::TestDatabase,
}

impl Service {
    async fn start(args: &[&str]) -> Service {
        let database = infra::postgres::test_database().await.expect("a database");
        let redis = infra::redis::test_redis().expect("a Redis");
        let dir = tempfile::tempdir().expect("a temp dir");
        let log = dir.path().join("service.log");
        let mut cmd =
            tokio::process::Command::new(infra::bins::workspace_bin("bot-manager").unwrap());
        cmd.env_clear()
            .env("RUST_LOG", "info,sqlx=warn,bot_manager::server=debug")
            .args(["--listen", "127.0.0.1:0"])
            .args(["--database-url", database.url()])
            .args(["--redis-url", redis.url()])
            // No runtime: nothing here starts a bot.
            .args(["--docker-host", "tcp://127.0.0.1:1"])
            .args(args)
            .stderr(std::fs::File::create(&log).expect("the log file"));
        let (process, line) = infra::process::spawn_until_line(
            cmd,
            |l| l.starts_with("bot-manager listening on "),
            DEADLINE,
        )
        .await
        .expect("the bot-manager starts");
        let addr = line
            .trim_start_matches("bot-manager listening on ")
            .trim()
            .parse()
            .expect("the address it listens on");
        let pool = PgPool::connect(database.url()).await.expect("a pool");
        Service {
            addr,
            log,
            pool,
            _process: process,
            _dir: dir,
            _redis: redis,
            _database: database,
        }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.expect("connect")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the service has logged a line for which `wanted` holds.
    async fn wait_log(&self, what: &str, wanted: impl Fn(&str) -> bool) {
        wait_for(what, || async {
            self.log().lines().any(&wanted).then_some(())
        })
        .await;
    }

    /// `GET /health` on a fresh connection: the service still serves.
    async fn assert_serves(&self) {
        let resp = reqwest::Client::new()
            .get(format!("http://{}/health", self.addr))
            .timeout(DEADLINE)
            .send()
            .await
            .expect("GET /health");
        assert_eq!(resp.status().as_u16(), 200);
    }
}

/// Reads until the server closes the connection; answers what it sent. Panics if it is
/// still open at the deadline.
async fn read_until_closed(stream: &mut TcpStream, what: &str) -> String {
    let mut received = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .unwrap_or_else(|_| panic!("{what} still open after {DEADLINE:?}"));
    String::from_utf8_lossy(&received).into_owned()
}

const GET_HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: bot-manager\r\n\r\n";

// Pins issue 12: five slowloris connections were still open after 150 s: the server had
// no header-read timeout (hyper's needs a timer, and none was set). A client that
// trickles its headers, one that sends none, and a keep-alive connection that sends no
// next request are now all closed once the header-read timeout passes (the idle timeout
// is its default, 60 s, longer than the deadline here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_send_a_whole_request_head_in_time_is_disconnected() {
    let service = Service::start(&["--header-read-timeout-ms", "300"]).await;
    let mut silent = service.connect().await;
    let mut trickling = service.connect().await;
    trickling
        .write_all(b"GET /health HTTP/1.1\r\nHost: bot-manager\r\nX-Slow: a")
        .await
        .unwrap();
    let mut kept_alive = service.connect().await;
    kept_alive.write_all(GET_HEALTH).await.unwrap();

    let answered = read_until_closed(&mut kept_alive, "the kept-alive connection").await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    read_until_closed(&mut silent, "the silent connection").await;
    read_until_closed(&mut trickling, "the trickling connection").await;
    service.assert_serves().await;
}

// Pins issue 12: a connection whose client went quiet mid-request (its body never came)
// was held forever. With the idle timeout short and the header-read timeout long, a
// stalled body and a connection that never sends anything are both closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_goes_quiet_while_the_server_waits_on_it_is_closed() {
    let service = Service::start(&[
        "--header-read-timeout-ms",
        "600000",
        "--idle-timeout-ms",
        "300",
    ])
    .await;
    let mut silent = service.connect().await;
    let mut stalled = service.connect().await;
    stalled
        .write_all(
            b"POST /bots/internal/callback/status_change HTTP/1.1\r\nHost: bot-manager\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"connection_id\"",
        )
        .await
        .unwrap();
    read_until_closed(&mut stalled, "the connection with a stalled body").await;
    read_until_closed(&mut silent, "the silent connection").await;
    service.assert_serves().await;
}

// Pins the idle timeout's other half: time the server spends working on a request is not
// idleness. A callback that waits on a row lock for longer than the idle timeout (another
// connection, opened after it, is closed as idle meanwhile) still gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_server_is_still_working_on_is_answered_past_the_idle_timeout() {
    let service = Service::start(&[
        "--header-read-timeout-ms",
        "600000",
        "--idle-timeout-ms",
        "300",
    ])
    .await;
    let id: i32 = sqlx::query_scalar(
        "INSERT INTO meetings (user_id, platform, platform_specific_id, status) \
         VALUES (1, 'google_meet', 'abc-defg-hij', 'awaiting_admission') RETURNING id",
    )
    .fetch_one(&service.pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO meeting_sessions (meeting_id, session_uid) VALUES ($1, 'locked')")
        .bind(id)
        .execute(&service.pool)
        .await
        .unwrap();
    let mut lock = service.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM meetings WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *lock)
        .await
        .unwrap();

    let body = json!({"connection_id": "locked", "status": "active"}).to_string();
    let mut waiting = service.connect().await;
    waiting
        .write_all(
            format!(
                "POST /bots/internal/callback/status_change HTTP/1.1\r\nHost: bot-manager\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    wait_for("the callback to wait on the row lock", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE meetings%'",
        )
        .fetch_one(&service.pool)
        .await
        .unwrap();
        (waiting > 0).then_some(())
    })
    .await;
    // Once a connection opened after the callback is closed as idle, the callback has
    // been worked on for longer than the idle timeout.
    let mut idle = service.connect().await;
    read_until_closed(&mut idle, "the idle connection").await;
    lock.rollback().await.unwrap();

    let answer = tokio::time::timeout(DEADLINE, read_until(&mut waiting, "}"))
        .await
        .expect("the callback is answered");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{answer}");
    let body: serde_json::Value = serde_json::from_str(body).expect("a JSON answer");
    assert_eq!(body, json!({"status": "active", "meeting_id": id}));
}

// Pins issue 12's bound on connections: nothing limited how many a client could hold
// open. With two allowed, a third waits (in the listen backlog) until one of the two
// closes, and is then served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_bound_a_new_connection_waits_until_one_closes() {
    let service = Service::start(&[
        "--max-connections",
        "2",
        "--header-read-timeout-ms",
        "600000",
        "--idle-timeout-ms",
        "600000",
    ])
    .await;
    let first = service.connect().await;
    let _second = service.connect().await;
    service
        .wait_log("the connection limit to be reached", |l| {
            l.contains("at the connection limit")
        })
        .await;

    let mut third = service.connect().await;
    let third_peer = third.local_addr().unwrap();
    third.write_all(GET_HEALTH).await.unwrap();
    let answered = tokio::spawn(async move { read_until(&mut third, "\r\n\r\n").await });
    assert!(!answered.is_finished(), "the third connection was served");

    let first_peer = first.local_addr().unwrap();
    drop(first);
    let answer = tokio::time::timeout(DEADLINE, answered)
        .await
        .expect("the third connection is served once the first closes")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let log = service.log();
    // The line numbers (the log's fields may carry colour codes around their names).
    let position = |event: &str, peer: SocketAddr| {
        let peer = peer.to_string();
        log.lines()
            .position(|l| l.contains(event) && l.contains(&peer))
            .unwrap_or_else(|| panic!("no {event:?} for {peer} in {log}"))
    };
    assert!(
        position("connection closed", first_peer) < position("connection open", third_peer),
        "the third connection was taken before the first closed: {log}"
    );
}

/// Reads until what arrived holds `wanted` (or the connection closes); answers it.
async fn read_until(stream: &mut TcpStream, wanted: &str) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&received).contains(wanted) {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}
