//! What the tests drive the bot with: a recording callback server, the bot process and
//! its event stream, Redis, and a TCP proxy that can cut the bot's Redis connection.

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use protocol::{AutomaticLeave, BotConfig, Platform};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long any single wait may take before the test fails; generous, never asserted.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub const STATUS_CHANGE_PATH: &str = "/bots/internal/callback/status_change";
pub const EXITED_PATH: &str = "/bots/internal/callback/exited";
pub const SESSION_START_PATH: &str = "/bots/internal/session_start";

pub const MEETING_ID: i64 = 42;

/// Behaviour for fast tests: no pause between the joining phases.
pub const FAST: &[(&str, &str)] = &[
    ("MOCK_BOT_JOIN_DELAY_MS", "0"),
    ("MOCK_BOT_ADMISSION_DELAY_MS", "0"),
];

// ---------------------------------------------------------------------------------------
// Callback server

/// One request the callback server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub body: Value,
    /// The request's `Authorization` header, if it had one (lossy text).
    pub authorization: Option<String>,
}

impl Recorded {
    /// `status_change` requests carrying `status`, and every `/exited` one for `completed`.
    pub fn is_status(&self, status: &str) -> bool {
        match self.path.as_str() {
            STATUS_CHANGE_PATH => self.body["status"] == status,
            EXITED_PATH => status == "completed",
            _ => false,
        }
    }

    pub fn is_terminal(&self) -> bool {
        self.is_status("completed") || self.is_status("failed")
    }
}

#[derive(Clone)]
struct ServerState {
    records: Arc<watch::Sender<Vec<Recorded>>>,
    answer: Arc<AtomicU16>,
}

/// A stand-in for the service's internal endpoints on 127.0.0.1:0, recording every POST.
pub struct CallbackServer {
    addr: SocketAddr,
    records: watch::Receiver<Vec<Recorded>>,
    answer: Arc<AtomicU16>,
    task: JoinHandle<()>,
}

impl CallbackServer {
    pub async fn start() -> Self {
        let (records, records_rx) = watch::channel(Vec::new());
        let state = ServerState {
            records: Arc::new(records),
            answer: Arc::new(AtomicU16::new(200)),
        };
        let answer = state.answer.clone();
        let app = Router::new().fallback(record).with_state(state);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the callback server");
        let addr = listener.local_addr().expect("callback server address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("serve the callback server");
        });
        CallbackServer {
            addr,
            records: records_rx,
            answer,
            task,
        }
    }

    /// Answers every later request with `status`.
    pub fn answer_with(&self, status: u16) {
        self.answer.store(status, Ordering::SeqCst);
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The `/exited` URL, which the bot derives every other path from.
    pub fn exited_url(&self) -> String {
        format!("http://{}{EXITED_PATH}", self.addr)
    }

    pub fn records(&self) -> Vec<Recorded> {
        self.records.borrow().clone()
    }

    /// The statuses of the `status_change` and `/exited` requests, in arrival order.
    pub fn statuses(&self) -> Vec<String> {
        self.records()
            .iter()
            .filter_map(|r| match r.path.as_str() {
                STATUS_CHANGE_PATH => r.body["status"].as_str().map(str::to_owned),
                EXITED_PATH => Some("completed".to_owned()),
                _ => None,
            })
            .collect()
    }

    pub fn terminal(&self) -> Vec<Recorded> {
        self.records()
            .into_iter()
            .filter(Recorded::is_terminal)
            .collect()
    }

    pub fn sessions(&self) -> Vec<protocol::SessionStartPayload> {
        self.records()
            .into_iter()
            .filter(|r| r.path == SESSION_START_PATH)
            .map(|r| serde_json::from_value(r.body).expect("a session_start payload"))
            .collect()
    }

    /// Waits until the recorded requests satisfy `done`; `what` names it on failure.
    pub async fn wait_until(
        &self,
        what: &str,
        done: impl Fn(&[Recorded]) -> bool,
    ) -> Vec<Recorded> {
        let mut rx = self.records.clone();
        match tokio::time::timeout(DEADLINE, rx.wait_for(|r| done(r))).await {
            Ok(Ok(records)) => records.clone(),
            _ => panic!(
                "callback server never saw {what}; it saw {:#?}",
                self.records()
            ),
        }
    }

    pub async fn wait_for_status(&self, status: &str) -> Recorded {
        let records = self
            .wait_until(&format!("status {status}"), |r| {
                r.iter().any(|r| r.is_status(status))
            })
            .await;
        records
            .into_iter()
            .find(|r| r.is_status(status))
            .expect("the awaited status")
    }
}

impl Drop for CallbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(state): State<ServerState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    state.records.send_modify(|records| {
        records.push(Recorded {
            path: uri.path().to_owned(),
            body,
            authorization,
        });
    });
    let status = StatusCode::from_u16(state.answer.load(Ordering::SeqCst))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, json!({"status": "processed"}).to_string())
}

// ---------------------------------------------------------------------------------------
// Redis

/// A Redis for one test: a throwaway server unless `$REDIS_URL` points at a shared one.
pub struct TestRedis {
    server: infra::redis::RedisServer,
}

impl TestRedis {
    /// Blocks while a throwaway server starts. Call it on the test's own thread: the
    /// server dies with the thread that started it.
    pub fn start() -> Self {
        let server = infra::redis::test_redis().expect("start a test Redis");
        TestRedis { server }
    }

    pub fn url(&self) -> String {
        self.server.url().to_owned()
    }

    /// `PUBLISH`, returning how many subscribers received the message.
    pub async fn publish(&self, channel: &str, payload: &Value) -> i64 {
        let client = redis::Client::open(self.url()).expect("a Redis URL");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test Redis");
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload.to_string())
            .query_async(&mut conn)
            .await
            .expect("PUBLISH")
    }

    /// Publishes a legacy `leave` on `bot_commands:{uid}`.
    pub async fn leave(&self, uid: &str) -> i64 {
        self.publish(
            &protocol::bot_commands_channel(uid),
            &json!({"action": "leave"}),
        )
        .await
    }
}

/// A loopback TCP proxy whose connections the test can cut, as a network blip would.
pub struct TcpProxy {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let tracked = connections.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let Ok(mut outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let relay = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                tracked.lock().expect("proxy connections").push(relay);
            }
        });
        TcpProxy {
            addr,
            connections,
            accept,
        }
    }

    /// A proxy in front of the Redis at `redis_url`.
    pub async fn for_redis(redis_url: &str) -> Self {
        let url = reqwest::Url::parse(redis_url).expect("a Redis URL");
        let host = url.host_str().expect("a Redis host");
        let port = url.port().unwrap_or(6379);
        let target = tokio::net::lookup_host((host, port))
            .await
            .expect("resolve the Redis host")
            .next()
            .expect("a Redis address");
        Self::start(target).await
    }

    pub fn redis_url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Closes every connection made so far; new ones are still accepted.
    pub fn cut(&self) {
        for relay in self
            .connections
            .lock()
            .expect("proxy connections")
            .drain(..)
        {
            relay.abort();
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// A loopback server that accepts connections and never answers, as a wedged Redis would.
pub struct SilentServer {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl SilentServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the silent server");
        let addr = listener.local_addr().expect("silent server address");
        let accept = tokio::spawn(async move {
            // Held open, never read from or written to, until the server is dropped.
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        SilentServer { addr, accept }
    }

    pub fn redis_url(&self) -> String {
        format!("redis://{}", self.addr)
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A loopback port nobody listens on: bound, then released, so a connection is refused.
pub fn refused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

// ---------------------------------------------------------------------------------------
// The bot process

/// A `BOT_CONFIG` for meeting [`MEETING_ID`] with a fresh connectionId.
pub fn bot_config(callback_url: &str, redis_url: &str) -> BotConfig {
    let uid = uuid::Uuid::new_v4().to_string();
    BotConfig {
        meeting_id: MEETING_ID,
        platform: Platform::GoogleMeet,
        meeting_url: Some(Platform::GoogleMeet.meeting_url("abc-defg-hij", None)),
        bot_name: "mock".into(),
        token: "token".into(),
        native_meeting_id: "abc-defg-hij".into(),
        container_name: format!("vexa-bot-{MEETING_ID}-{}", &uid[..8]),
        connection_id: uid,
        language: None,
        task: None,
        redis_url: redis_url.into(),
        automatic_leave: AutomaticLeave::default(),
        bot_manager_callback_url: callback_url.into(),
        callback_secret: None,
    }
}

/// A running `mock-bot`, killed when dropped (and when the test process dies).
pub struct Bot {
    child: Child,
    pub uid: String,
    events: watch::Receiver<Vec<Value>>,
    stderr: Arc<Mutex<String>>,
}

impl Bot {
    pub fn spawn(config: &BotConfig, env: &[(&str, &str)]) -> Self {
        let config_json = serde_json::to_string(config).expect("serialise BOT_CONFIG");
        let mut bot = Self::spawn_raw(&[("BOT_CONFIG", config_json.as_str())], env);
        bot.uid = config.connection_id.clone();
        bot
    }

    /// A bot with exactly these variables (plus `FAST` timings unless overridden).
    pub fn spawn_raw(base: &[(&str, &str)], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mock-bot"));
        cmd.env_clear()
            .env("RUST_LOG", "mock_bot=debug")
            .envs(FAST.iter().copied())
            .envs(base.iter().copied())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        infra::process::die_with_parent_tokio(&mut cmd);
        let mut child = cmd.spawn().expect("spawn mock-bot");

        let (events_tx, events) = watch::channel(Vec::new());
        let stdout = child.stdout.take().expect("piped stdout");
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let event = serde_json::from_str(&line)
                    .unwrap_or_else(|_| json!({"event": "<not json>", "line": line}));
                events_tx.send_modify(|events| events.push(event));
            }
        });
        let stderr: Arc<Mutex<String>> = Arc::default();
        let mut pipe = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf).await {
                sink.lock()
                    .expect("stderr buffer")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Bot {
            child,
            uid: String::new(),
            events,
            stderr,
        }
    }

    pub fn events(&self) -> Vec<Value> {
        self.events.borrow().clone()
    }

    pub fn events_named(&self, name: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == name)
            .collect()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr buffer").clone()
    }

    /// Waits until the events so far satisfy `done`.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&[Value]) -> bool) {
        let mut rx = self.events.clone();
        if tokio::time::timeout(DEADLINE, rx.wait_for(|e| done(e)))
            .await
            .is_err()
        {
            panic!(
                "bot never reached {what}; events: {:#?}\nstderr:\n{}",
                self.events(),
                self.stderr()
            );
        }
    }

    /// Waits for the `n`th (1-based) event named `name` matching `pred`, and returns it.
    pub async fn wait_nth(&self, n: usize, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let matching = |events: &[Value]| -> Vec<Value> {
            events
                .iter()
                .filter(|e| e["event"] == name && pred(e))
                .cloned()
                .collect()
        };
        self.wait_until(&format!("event {name} #{n}"), |e| matching(e).len() >= n)
            .await;
        matching(&self.events())
            .into_iter()
            .nth(n - 1)
            .expect("the awaited event")
    }

    pub async fn wait_event(&self, name: &str) -> Value {
        self.wait_nth(1, name, |_| true).await
    }

    /// Waits until the bot reported `active` and is subscribed: ready for commands. The
    /// uid channel's `subscribed` comes last, so every channel is in by then.
    pub async fn wait_ready(&self) {
        self.wait_nth(1, "status_sent", |e| e["status"] == "active")
            .await;
        let channel = protocol::bot_commands_channel(&self.uid);
        self.wait_nth(1, "subscribed", |e| e["channel"] == channel.as_str())
            .await;
    }

    pub fn signal(&self, signal: Signal) {
        let pid = self.child.id().expect("the bot has not been reaped");
        nix::sys::signal::kill(Pid::from_raw(i32::try_from(pid).expect("a pid")), signal)
            .expect("signal the bot");
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("poll the bot").is_none()
    }

    pub async fn wait_exit(&mut self) -> ExitStatus {
        match tokio::time::timeout(DEADLINE, self.child.wait()).await {
            Ok(status) => status.expect("wait for the bot"),
            Err(_) => panic!(
                "bot did not exit; events: {:#?}\nstderr:\n{}",
                self.events(),
                self.stderr()
            ),
        }
    }

    /// Waits for the exit and its `exiting` event, then checks the exit code.
    pub async fn expect_exit_code(&mut self, code: i32) {
        let status = self.wait_exit().await;
        self.wait_event("exiting").await;
        assert_eq!(
            status.code(),
            Some(code),
            "exit {status:?} (signal {:?}); events: {:#?}\nstderr:\n{}",
            status.signal(),
            self.events(),
            self.stderr()
        );
    }
}
