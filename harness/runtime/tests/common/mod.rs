//! Shared helpers: an embedded runtime with shell-script images, HTTP helpers, an event
//! reader, and bounded waits (every wait has a deadline; none is a fixed sleep).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use runtime::{EnvVar, HostAlias, Images, Runtime, RuntimeConfig};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::time::Instant;

/// Generous: these waits end on an event long before; the deadline only bounds a failure.
pub const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);

/// Scripts standing in for bot images. Each looping one prints `ready` once its trap is
/// set (a signal before that would find the default action). Loops sleep briefly so that
/// no grandchild outlives a killed shell by more than a moment.
pub const IMAGES_TOML: &str = r#"
[images."graceful:latest"]
command = ["/bin/sh", "-c", '''trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done''']

[images."stubborn:latest"]
command = ["/bin/sh", "-c", '''trap '' TERM; echo ready; while :; do sleep 0.1; done''']

# PID 1 ignores SIGTERM, as the production bot's shell did; its child would exit on it.
[images."shell-pid1:latest"]
command = ["/bin/sh", "-c", '''
/bin/sh -c 'trap "echo child-term; exit 0" TERM; echo "child-pid=$$"; while :; do sleep 0.1; done' &
trap '' TERM
echo pid1-ready
wait
echo pid1-wait-returned
exit 7
''']

# The first incarnation ignores SIGTERM, later ones (after a restart) obey it.
[images."flip:latest"]
command = ["/bin/sh", "-c", '''
if [ -e "$FLIP_MARKER" ]; then trap 'exit 0' TERM; else : > "$FLIP_MARKER"; trap '' TERM; fi
echo ready
while :; do sleep 0.1; done
''']

[images."exit3:latest"]
command = ["/bin/sh", "-c", "exit 3"]

# Prints its whole environment, then exits.
[images."env-dump:latest"]
command = ["/bin/sh", "-c", "env; echo env-dumped"]

[images."printenv:latest"]
command = ["/bin/sh", "-c", '''
echo "MARK=$MARK"
echo "HOSTNAME=$HOSTNAME"
echo "EXTRA=$EXTRA"
echo "IMAGE_VAR=$IMAGE_VAR"
echo "ALIASES=$STOPFLOW_HOST_ALIASES"
echo "BOT_CONFIG=$BOT_CONFIG"
echo "LEAK=$STOPFLOW_RUNTIME_ONLY"
echo "PATH=$PATH"
trap 'exit 0' TERM
echo ready
while :; do sleep 0.1; done
''']
env = { IMAGE_VAR = "from-image" }

# Prints the host port its container port 8080 has and a line on stderr, then waits;
# any tag. A Cmd `--greet=NAME` runs it with other arguments.
[images."portly:*"]
command = ["/bin/sh", "-c", '''echo "port={port:8080/tcp}"; echo to-stderr >&2; trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done''']
ports = ["8080/tcp"]
cmd = [
    { match = ['--greet=(?<who>[a-z]+)'], args = ["-c", '''echo "hello {who} on {port:8080/tcp}"; trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done'''] },
]

# Mapped, but its program is not installed.
[images."ghost:latest"]
command = ["stopflow-no-such-program"]
optional = true
"#;

pub struct Harness {
    pub runtime: Runtime,
    pub dir: TempDir,
    pub base: String,
    pub http: reqwest::Client,
    pub log_dir: PathBuf,
}

pub fn write_images(dir: &Path) -> PathBuf {
    let path = dir.join("images.toml");
    std::fs::write(&path, IMAGES_TOML).expect("write the images file");
    path
}

impl Harness {
    /// A runtime on a unix socket and a loopback port, with container logs in a temp dir.
    pub async fn start() -> Harness {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let images = Images::load(&write_images(dir.path())).expect("load the images file");
        let log_dir = dir.path().join("logs");
        let mut config = RuntimeConfig::new(images);
        config.sockets.push(dir.path().join("docker.sock"));
        config.listen.push("127.0.0.1:0".parse().unwrap());
        config
            .env
            .push("EXTRA=from-runtime".parse::<EnvVar>().unwrap());
        config
            .host_aliases
            .push("redis=127.0.0.1".parse::<HostAlias>().unwrap());
        config
            .host_aliases
            .push("bot-manager=127.0.0.2".parse::<HostAlias>().unwrap());
        config.log_dir = Some(log_dir.clone());
        let runtime = Runtime::start(config).await.expect("start the runtime");
        let base = format!("http://{}", runtime.tcp_addr().expect("a TCP listener"));
        Harness {
            runtime,
            dir,
            base,
            http: reqwest::Client::new(),
            log_dir,
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.runtime.socket_path().expect("a socket").to_path_buf()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.http.post(self.url(path)).send().await.expect("POST")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .put(self.url(path))
            .json(body)
            .send()
            .await
            .expect("PUT")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.http
            .delete(self.url(path))
            .send()
            .await
            .expect("DELETE")
    }

    /// Creates a container and answers its id; `extra` is merged into the body.
    pub async fn create(&self, name: &str, image: &str, extra: Value) -> String {
        let mut body = json!({ "Image": image });
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        let response = self
            .post_json(&format!("/containers/create?name={name}"), &body)
            .await;
        assert_eq!(response.status(), 201, "create {name}");
        let created: Value = response.json().await.unwrap();
        created["Id"].as_str().expect("an Id").to_owned()
    }

    pub async fn start_container(&self, reference: &str) {
        let response = self.post(&format!("/containers/{reference}/start")).await;
        assert_eq!(response.status(), 204, "start {reference}");
    }

    pub async fn run(&self, name: &str, image: &str, extra: Value) -> String {
        let id = self.create(name, image, extra).await;
        self.start_container(name).await;
        id
    }

    /// Runs a looping image and waits until its script has set its signal trap.
    pub async fn run_ready(&self, name: &str, image: &str, extra: Value) -> String {
        let id = self.run(name, image, extra).await;
        self.wait_for_log(name, |log| log.contains("ready\n")).await;
        id
    }

    pub async fn inspect(&self, reference: &str) -> Value {
        let response = self.get(&format!("/containers/{reference}/json")).await;
        assert_eq!(response.status(), 200, "inspect {reference}");
        response.json().await.unwrap()
    }

    pub async fn pid(&self, reference: &str) -> i32 {
        let pid = self.inspect(reference).await["State"]["Pid"]
            .as_i64()
            .unwrap();
        assert!(pid > 0, "{reference} has no pid");
        i32::try_from(pid).unwrap()
    }

    /// Polls inspect until `done` holds; panics at the deadline.
    pub async fn wait_for_inspect(&self, reference: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Deadline::start();
        loop {
            let last = self.inspect(reference).await;
            if done(&last) {
                return last;
            }
            assert!(
                deadline.tick().await,
                "{reference} never got there; last: {last}"
            );
        }
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Polls the container's log until `done` holds; answers the log.
    pub async fn wait_for_log(&self, name: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Deadline::start();
        loop {
            let log = self.log(name);
            if done(&log) {
                return log;
            }
            assert!(
                deadline.tick().await,
                "log of {name} never matched: {log:?}"
            );
        }
    }

    /// Every container the runtime ever created, forgotten and removed ones too.
    pub async fn records(&self) -> Vec<Value> {
        let response = self.get("/_runtime/containers").await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// POSTs a create body as given; answers the status and the JSON answer.
    pub async fn try_create(&self, query: &str, body: &Value) -> (u16, Value) {
        let response = self
            .post_json(&format!("/containers/create{query}"), body)
            .await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON answer"))
    }

    pub async fn events(&self, query: &str) -> Events {
        let response = self.get(&format!("/events?{query}")).await;
        assert_eq!(response.status(), 200);
        Events {
            response,
            buffer: Vec::new(),
        }
    }
}

/// Percent-encodes `text` for a query string.
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A bounded poll: `tick` pauses briefly and answers false once the deadline has passed.
pub struct Deadline(Instant);

impl Deadline {
    pub fn start() -> Self {
        Deadline(Instant::now() + DEADLINE)
    }

    pub async fn tick(&self) -> bool {
        if Instant::now() >= self.0 {
            return false;
        }
        tokio::time::sleep(POLL).await;
        true
    }
}

/// Polls `check` until it holds or the deadline passes.
pub async fn poll_until(mut check: impl FnMut() -> bool) -> bool {
    let deadline = Deadline::start();
    loop {
        if check() {
            return true;
        }
        if !deadline.tick().await {
            return false;
        }
    }
}

/// True when no such process exists any more (a zombie counts as gone: it is dead and
/// only waits for whoever adopted it to reap it).
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => process_state(&stat) == Some('Z'),
    }
}

/// The state letter of `/proc/PID/stat` (R, S, T, Z...).
pub fn process_state(stat: &str) -> Option<char> {
    stat.rsplit_once(") ")?.1.chars().next()
}

pub async fn wait_until_gone(pid: i32) {
    let gone = poll_until(|| process_gone(pid)).await;
    assert!(gone, "process {pid} is still alive");
}

/// A streamed `/events` response, read one JSON line at a time.
pub struct Events {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl Events {
    pub async fn next(&mut self) -> Option<Value> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Some(serde_json::from_slice(&line).expect("an event is JSON"));
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .expect("an event before the deadline")
                .expect("read the events stream")?;
            self.buffer.extend_from_slice(&chunk);
        }
    }

    /// Skips events until one has `action`; panics if the stream ends first.
    pub async fn expect_action(&mut self, action: &str) -> Value {
        loop {
            let event = self.next().await.expect("the stream to go on");
            if event["Action"] == action {
                return event;
            }
        }
    }
}
