use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use protocol::{CreateBotRequest, MeetingJson, Platform};
use serde_json::{Value, json};
use sqlx::PgPool;

pub const DEV_TOKEN: &str = "stopflow-dev-token";
pub const LIMITED_TOKEN: &str = "stopflow-limited-token";
/// Generous bound for anything the stack does; tests wait on events, never this long
/// unless something is broken.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Timers and knobs of one stack; shrunk defaults so a lifecycle takes well under a
/// second of scripted waiting.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The bot-manager's `--profile` (`legacy`, `fixed`, a single fix, `a+b`).
    pub profile: String,
    pub delayed_stop_ms: u64,
    pub stop_grace_s: u32,
    pub pre_active_window_ms: u64,
    pub exited_failure_stop_ms: u64,
    pub session_record_delay_ms: u64,
    /// Reconcile sweep interval (fixed profile); the service's default when `None`.
    pub reconcile_interval_ms: Option<u64>,
    /// Grace after a forced stop or a container's death before finalizing (fixed
    /// profile); the service's default when `None`.
    pub finalizer_grace_ms: Option<u64>,
    /// Environment for every bot container (behaviours).
    pub bot_env: Vec<(String, String)>,
    /// The bot-manager's `--wire`; its default (`incident`) when `None`.
    pub wire: Option<String>,
    /// Further flags for the bot-manager (its bounds: `--max-concurrent-creates 1`).
    pub service_args: Vec<String>,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            profile: "legacy".into(),
            delayed_stop_ms: 1_000,
            stop_grace_s: 1,
            pre_active_window_ms: 0,
            exited_failure_stop_ms: 500,
            session_record_delay_ms: 0,
            reconcile_interval_ms: None,
            finalizer_grace_ms: None,
            bot_env: vec![
                ("MOCK_BOT_JOIN_DELAY_MS".into(), "20".into()),
                ("MOCK_BOT_ADMISSION_DELAY_MS".into(), "20".into()),
            ],
            wire: None,
            service_args: Vec::new(),
        }
    }
}

/// The engine's stack (`chaos::stack`) with test-style helpers that panic with the
/// evidence instead of answering errors.
pub struct Stack {
    inner: chaos::stack::Stack,
    pub pool: PgPool,
    pub http: reqwest::Client,
    pub base_url: String,
    pub runtime_url: String,
    /// Where the runtime keeps each bot's output (`<container>.log`).
    pub log_dir: PathBuf,
    logs: tempfile::TempDir,
}

impl Drop for Stack {
    // A failing test shows what the service and runtime said.
    fn drop(&mut self) {
        if std::thread::panicking() {
            for name in ["service.log", "runtime.log"] {
                let text = std::fs::read_to_string(self.logs.path().join(name)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!("--- last lines of {name} ---");
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(StackOptions::default()).await
    }

    pub async fn start_with(options: StackOptions) -> Stack {
        let logs = tempfile::Builder::new()
            .prefix("stopflow-test-logs-")
            .tempdir()
            .expect("temp dir");
        let service = chaos::scenario::ServiceSettings {
            delayed_stop_ms: Some(options.delayed_stop_ms),
            stop_grace_s: Some(options.stop_grace_s),
            pre_active_window_ms: Some(options.pre_active_window_ms),
            exited_failure_stop_ms: Some(options.exited_failure_stop_ms),
            session_record_delay_ms: Some(options.session_record_delay_ms),
            reconcile_interval_ms: options.reconcile_interval_ms,
            finalizer_grace_ms: options.finalizer_grace_ms,
            ..Default::default()
        };
        let config = chaos::stack::StackConfig {
            profile: options.profile,
            service,
            bot_env: options.bot_env,
            links: None,
            log_dir: logs.path().to_owned(),
        };
        let inner = match options.wire.as_deref() {
            None | Some("incident") => {
                let extras = chaos::stack::StackExtras {
                    manager_args: options.service_args,
                    links_at: None,
                };
                let sut = std::sync::Arc::new(chaos::sut::Sut::reference());
                chaos::stack::Stack::start_with(config, sut, None, extras).await
            }
            // The engine starts the reference with a fixed set of flags; the built-in
            // adapter of the later wire starts the same binary with `--wire later`.
            Some("later") => {
                let sut = chaos::sut::Sut::resolve("reference-later").expect("adapter");
                chaos::stack::Stack::start_sut(config, std::sync::Arc::new(sut), None).await
            }
            Some(other) => panic!("no adapter speaks wire {other:?}"),
        }
        .expect("start the stack");
        Stack {
            pool: inner.pool.clone(),
            http: reqwest::Client::builder()
                .timeout(DEADLINE)
                .build()
                .expect("http client"),
            base_url: inner.base_url.clone(),
            runtime_url: inner.runtime_url.clone(),
            log_dir: inner.bot_log_dir.clone(),
            inner,
            logs,
        }
    }

    /// What the service has logged so far.
    pub fn service_log(&self) -> String {
        std::fs::read_to_string(self.logs.path().join("service.log")).unwrap_or_default()
    }

    pub fn redis_url(&self) -> &str {
        self.inner.redis_url()
    }

    /// Stops the bot-manager with SIGTERM and answers how it exited.
    pub async fn stop_manager(&mut self) -> std::process::ExitStatus {
        self.inner
            .stop_manager()
            .await
            .expect("stop the bot-manager")
    }

    /// Starts the bot-manager again on the same port, database and Redis.
    pub async fn start_manager(&mut self) {
        self.inner
            .start_manager()
            .await
            .expect("start the bot-manager");
    }

    /// Starts one more bot-manager (same profile, timers, database, Redis and runtime)
    /// named `instance`; it runs until the answer is dropped or stopped.
    pub async fn start_extra_manager(&self, instance: &str) -> chaos::stack::ExtraManager {
        self.inner
            .start_extra_manager(instance)
            .await
            .expect("start a second bot-manager")
    }

    /// The pids of the runtime and every container process it ever ran.
    pub async fn process_ids(&self) -> Vec<u32> {
        let mut pids = vec![self.inner.runtime_pid()];
        pids.extend(
            self.runtime_containers()
                .await
                .iter()
                .filter_map(|c| c["pid"].as_u64())
                .map(|p| p as u32),
        );
        pids
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// `POST /bots` as the dev user; answers status and body.
    pub async fn post_bot(&self, platform: Platform, native_id: &str) -> (u16, Value) {
        self.post_bot_as(DEV_TOKEN, &CreateBotRequest::new(platform, native_id))
            .await
    }

    pub async fn post_bot_as(&self, token: &str, req: &impl serde::Serialize) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url("/bots"))
            .header("X-API-Key", token)
            .json(req)
            .send()
            .await
            .expect("POST /bots");
        status_and_json(resp).await
    }

    /// A refused create left nothing: no meeting row, no container.
    pub async fn assert_nothing_created(&self) {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM meetings")
            .fetch_one(&self.pool)
            .await
            .expect("count the meetings");
        assert_eq!(count, 0, "meetings were written");
        assert!(self.runtime_containers().await.is_empty());
    }

    /// `POST /bots` as the dev user with any JSON body, well-formed or not.
    pub async fn post_bot_json(&self, body: &Value) -> (u16, Value) {
        self.post_bot_as(DEV_TOKEN, body).await
    }

    /// A bot of its own meeting (a unique native id) with these behaviours, once its row
    /// is stored with `status`: the opening of most stack tests.
    pub async fn bot_at(&self, behaviour: &[(&str, &str)], status: &str) -> (String, MeetingJson) {
        let native = unique_meet_id();
        if !behaviour.is_empty() {
            self.bot_behaviour(&native, behaviour).await;
        }
        let meeting = self.start_bot(Platform::GoogleMeet, &native).await;
        self.wait_status(meeting.id, status).await;
        (native, meeting)
    }

    /// Starts a bot and answers its meeting; panics unless 201.
    pub async fn start_bot(&self, platform: Platform, native_id: &str) -> MeetingJson {
        let (status, body) = self.post_bot(platform, native_id).await;
        assert_eq!(status, 201, "POST /bots answered {status}: {body}");
        serde_json::from_value(body).expect("meeting JSON")
    }

    pub async fn delete_bot(&self, platform: Platform, native_id: &str) -> (u16, Value) {
        let resp = self
            .http
            .delete(self.url(&format!("/bots/{platform}/{native_id}")))
            .header("X-API-Key", DEV_TOKEN)
            .send()
            .await
            .expect("DELETE /bots");
        status_and_json(resp).await
    }

    /// `DELETE` of a raw path, for malformed paths.
    pub async fn delete_bot_path(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .delete(self.url(path))
            .header("X-API-Key", DEV_TOKEN)
            .send()
            .await
            .expect("DELETE");
        status_and_json(resp).await
    }

    /// A callback in the name of a bot: `secret` as its `Authorization: Bearer` when
    /// given (the `callback_auth` fix requires it), no header otherwise.
    pub async fn post_callback(
        &self,
        path: &str,
        body: &Value,
        secret: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.http.post(self.url(path)).json(body);
        if let Some(secret) = secret {
            request = request.bearer_auth(secret);
        }
        status_and_json(request.send().await.expect("POST a callback")).await
    }

    /// The meeting's container as `docker inspect` gives it.
    pub async fn inspect(&self, meeting_id: i64) -> Value {
        let name = self.container_name(meeting_id).await;
        self.http
            .get(format!("{}/containers/{name}/json", self.runtime_url))
            .send()
            .await
            .expect("inspect the container")
            .json()
            .await
            .expect("inspect JSON")
    }

    /// The `BOT_CONFIG` the service gave the meeting's bot, as its container's create
    /// request carried it (Docker's inspect): the container must still exist.
    pub async fn bot_config(&self, meeting_id: i64) -> protocol::BotConfig {
        let inspect = self.inspect(meeting_id).await;
        let raw = inspect["Config"]["Env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find_map(|e| e.strip_prefix("BOT_CONFIG="))
            .unwrap_or_else(|| {
                panic!("no BOT_CONFIG in the Env of meeting {meeting_id}'s container: {inspect}")
            })
            .to_owned();
        serde_json::from_str(&raw)
            .unwrap_or_else(|e| panic!("BOT_CONFIG of meeting {meeting_id}: {e}: {raw}"))
    }

    /// The callback secret the service gave the meeting's bot; panics without one (the
    /// container must still exist).
    pub async fn bot_secret(&self, meeting_id: i64) -> String {
        self.bot_config(meeting_id)
            .await
            .callback_secret
            .unwrap_or_else(|| panic!("the bot of meeting {meeting_id} was given no secret"))
    }

    /// A callback secret the test knows, in place of the one the meeting's bot was given
    /// (whose container may be gone): the stored digest is replaced, the binding to the
    /// meeting and its container kept. Without a binding (callback auth off) nothing is
    /// written.
    pub async fn known_secret(&self, meeting_id: i64) -> String {
        let secret = bot_manager::callback_auth::new_secret();
        let digest = bot_manager::callback_auth::secret_digest(&secret);
        sqlx::query(
            "UPDATE meetings SET data = jsonb_set(data, '{callback_auth,secret_sha256}', to_jsonb($2::text)) \
             WHERE id = $1 AND data ? 'callback_auth'",
        )
        .bind(meeting_id as i32)
        .bind(digest)
        .execute(&self.pool)
        .await
        .expect("replace the stored secret digest");
        secret
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST");
        status_and_json(resp).await
    }

    /// The meeting row as stored.
    pub async fn meeting_row(&self, id: i64) -> StoredMeeting {
        let row: (String, Option<String>, Value, String) = sqlx::query_as(
            "SELECT status, bot_container_id, data, updated_at::text FROM meetings WHERE id = $1",
        )
        .bind(id as i32)
        .fetch_one(&self.pool)
        .await
        .expect("meeting row");
        StoredMeeting {
            status: row.0,
            bot_container_id: row.1,
            data: row.2,
            updated_at: row.3,
        }
    }

    /// Waits until the row is terminal (completed or failed) and answers it.
    pub async fn wait_terminal(&self, id: i64) -> StoredMeeting {
        wait_for(&format!("meeting {id} to become terminal"), || async {
            let row = self.meeting_row(id).await;
            matches!(row.status.as_str(), "completed" | "failed").then_some(row)
        })
        .await
    }

    /// Waits until the stored status is `status`; panics with the row at the deadline.
    pub async fn wait_status(&self, id: i64, status: &str) -> StoredMeeting {
        let started = Instant::now();
        loop {
            let row = self.meeting_row(id).await;
            if row.status == status {
                return row;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "meeting {id} never became {status}; it is {} with data {}",
                row.status,
                row.data
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sets a behaviour rule on the runtime for bots of one native meeting id.
    pub async fn bot_behaviour(&self, native_id: &str, env: &[(&str, &str)]) {
        let env: HashMap<&str, &str> = env.iter().copied().collect();
        let resp = self
            .http
            .post(format!("{}/_runtime/rules", self.runtime_url))
            .json(&json!({"match": {"native_meeting_id": native_id}, "env": env}))
            .send()
            .await
            .expect("POST /_runtime/rules");
        assert_eq!(
            resp.status().as_u16(),
            201,
            "rule refused: {}",
            resp.text().await.unwrap_or_default()
        );
    }

    /// Every container the runtime knows or knew.
    pub async fn runtime_containers(&self) -> Vec<Value> {
        let body: Value = self
            .http
            .get(format!("{}/_runtime/containers", self.runtime_url))
            .send()
            .await
            .expect("GET /_runtime/containers")
            .json()
            .await
            .expect("containers JSON");
        body.as_array()
            .cloned()
            .or_else(|| body["containers"].as_array().cloned())
            .unwrap_or_default()
    }

    pub async fn runtime_post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.runtime_url))
            .json(body)
            .send()
            .await
            .expect("runtime control call");
        status_and_json(resp).await
    }

    pub async fn runtime_put_faults(&self, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .put(format!("{}/_runtime/faults", self.runtime_url))
            .json(body)
            .send()
            .await
            .expect("runtime faults call");
        status_and_json(resp).await
    }

    /// Waits until the container of meeting `id` has exited; answers its exit code.
    pub async fn wait_container_exit(&self, id: i64) -> i64 {
        let prefix = format!("vexa-bot-{id}-");
        let started = Instant::now();
        loop {
            for c in self.runtime_containers().await {
                let name = c["name"].as_str().unwrap_or("").trim_start_matches('/');
                // `exit_code` is set only once the process has exited.
                if let Some(code) = c["exit_code"]
                    .as_i64()
                    .filter(|_| name.starts_with(&prefix))
                {
                    return code;
                }
            }
            assert!(
                started.elapsed() < DEADLINE,
                "the container of meeting {id} never exited"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Asserts the meeting's container is gone: removed from the runtime, and the Docker
    /// API answers 404 for it.
    pub async fn assert_container_gone(&self, meeting_id: i64) {
        let prefix = format!("vexa-bot-{meeting_id}-");
        let containers = self.runtime_containers().await;
        let container = containers
            .iter()
            .find(|c| {
                c["name"]
                    .as_str()
                    .is_some_and(|n| n.trim_start_matches('/').starts_with(&prefix))
            })
            .unwrap_or_else(|| panic!("no container for meeting {meeting_id}: {containers:?}"));
        assert_eq!(container["removed"], true, "{container}");
        let name = container["name"].as_str().unwrap().trim_start_matches('/');
        let resp = self
            .http
            .get(format!("{}/containers/{name}/json", self.runtime_url))
            .send()
            .await
            .expect("inspect");
        assert_eq!(resp.status().as_u16(), 404, "inspect of a gone container");
    }

    /// Waits until the meeting's container has exited and been removed, then checks it
    /// as [`Stack::assert_container_gone`] does.
    pub async fn wait_container_gone(&self, meeting_id: i64) {
        let prefix = format!("vexa-bot-{meeting_id}-");
        wait_for(
            &format!("the container of meeting {meeting_id} to go"),
            || async {
                self.runtime_containers()
                    .await
                    .iter()
                    .any(|c| {
                        c["name"]
                            .as_str()
                            .is_some_and(|n| n.trim_start_matches('/').starts_with(&prefix))
                            && c["removed"] == true
                    })
                    .then_some(())
            },
        )
        .await;
        self.assert_container_gone(meeting_id).await;
    }

    /// The name of the meeting's container.
    pub async fn container_name(&self, meeting_id: i64) -> String {
        let prefix = format!("vexa-bot-{meeting_id}-");
        self.runtime_containers()
            .await
            .iter()
            .filter_map(|c| c["name"].as_str())
            .map(|n| n.trim_start_matches('/').to_owned())
            .find(|n| n.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no container for meeting {meeting_id}"))
    }

    /// The runtime's Docker events from `since` (unix seconds) until now.
    pub async fn runtime_events(&self, since: i64) -> Vec<Value> {
        let until = chrono::Utc::now().timestamp() + 1;
        let text = self
            .http
            .get(format!(
                "{}/events?since={since}&until={until}",
                self.runtime_url
            ))
            .send()
            .await
            .expect("GET /events")
            .text()
            .await
            .expect("events body");
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Starts recording every command published on `bot_commands:*`.
    pub async fn watch_commands(&self) -> ChannelWatch {
        self.watch("bot_commands:*").await
    }

    /// Starts recording every message published on a channel matching `pattern`.
    pub async fn watch(&self, pattern: &str) -> ChannelWatch {
        let client = redis::Client::open(self.redis_url()).expect("redis client");
        let mut pubsub = client.get_async_pubsub().await.expect("pubsub connection");
        pubsub.psubscribe(pattern).await.expect("psubscribe");
        ChannelWatch {
            messages: Box::pin(pubsub.into_on_message()),
            seen: Vec::new(),
        }
    }

    /// The text Redis holds at `key`, if any.
    pub async fn redis_get(&self, key: &str) -> Option<String> {
        let client = redis::Client::open(self.redis_url()).expect("redis client");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection");
        redis::cmd("GET")
            .arg(key)
            .query_async::<Option<String>>(&mut conn)
            .await
            .expect("GET")
    }

    /// Publishes `payload` on `channel` (a marker a watch can wait for: whatever the
    /// service published before it reaches a watcher first).
    pub async fn redis_publish(&self, channel: &str, payload: &str) {
        let client = redis::Client::open(self.redis_url()).expect("redis client");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection");
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async::<i64>(&mut conn)
            .await
            .expect("PUBLISH");
    }

    /// Whether Redis holds `key`.
    pub async fn redis_has(&self, key: &str) -> bool {
        let client = redis::Client::open(self.redis_url()).expect("redis client");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection");
        redis::cmd("EXISTS")
            .arg(key)
            .query_async::<bool>(&mut conn)
            .await
            .expect("EXISTS")
    }

    /// The bot's own event log (JSON lines on its stdout, kept by the runtime).
    pub fn bot_log(&self, meeting_id: i64) -> BotLog {
        let prefix = format!("vexa-bot-{meeting_id}-");
        let mut events = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&self.log_dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                    events.extend(
                        text.lines()
                            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                            .filter(|v| v.get("event").is_some()),
                    );
                }
            }
        }
        BotLog { events }
    }

    /// Waits until the bot's log holds an event named `event`.
    pub async fn wait_bot_event(&self, meeting_id: i64, event: &str) -> BotLog {
        let started = Instant::now();
        loop {
            let log = self.bot_log(meeting_id);
            if log.has(event) {
                return log;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "bot of meeting {meeting_id} never logged {event}; it logged {:?}",
                log.names()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the bot's log holds `n` events named `event`.
    pub async fn wait_bot_event_count(&self, meeting_id: i64, event: &str, n: usize) -> BotLog {
        let started = Instant::now();
        loop {
            let log = self.bot_log(meeting_id);
            if log.count(event) >= n {
                return log;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "bot of meeting {meeting_id} logged {event} {} times, never {n}; it logged {:?}",
                log.count(event),
                log.names()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The connectionId the service gave the meeting's bot (from the bot's first event).
    pub async fn connection_id(&self, meeting_id: i64) -> String {
        let log = self.wait_bot_event(meeting_id, "started").await;
        log.events
            .iter()
            .find(|e| e["event"] == "started")
            .and_then(|e| e["uid"].as_str())
            .expect("started event with uid")
            .to_owned()
    }

    /// Waits until a session row with `uid` exists for the meeting.
    pub async fn wait_session(&self, meeting_id: i64, uid: &str) {
        let started = Instant::now();
        loop {
            let sessions = self.sessions(meeting_id).await;
            if sessions.iter().any(|s| s == uid) {
                return;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "no session row {uid} for meeting {meeting_id}: {sessions:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Rows of `meeting_sessions` for a meeting, earliest first.
    pub async fn sessions(&self, id: i64) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT session_uid FROM meeting_sessions WHERE meeting_id = $1 ORDER BY session_start_time, id",
        )
        .bind(id as i32)
        .fetch_all(&self.pool)
        .await
        .expect("sessions")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredMeeting {
    pub status: String,
    pub bot_container_id: Option<String>,
    pub data: Value,
    pub updated_at: String,
}

impl StoredMeeting {
    /// The audit entries that end the meeting (to completed or failed).
    pub fn terminal_transitions(&self) -> Vec<Value> {
        self.data["status_transition"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter(|t| matches!(t["to"].as_str(), Some("completed" | "failed")))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The audit list of a meeting its bot joined and its user's stop completed.
    pub fn assert_stopped_by_its_user(&self) {
        assert_eq!(self.status, "completed", "{:?}", self.data);
        assert_eq!(self.data["completion_reason"], "stopped");
        assert_eq!(
            self.transitions(),
            [
                ("requested", "joining"),
                ("joining", "awaiting_admission"),
                ("awaiting_admission", "active"),
                ("active", "completed"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
    }

    /// `(from, to)` of every entry of the audit list.
    pub fn transitions(&self) -> Vec<(String, String)> {
        self.data["status_transition"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|t| {
                        (
                            t["from"].as_str().unwrap_or("").to_owned(),
                            t["to"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Messages seen on the watched channels, as `(channel, payload)`.
pub struct ChannelWatch {
    messages: std::pin::Pin<Box<dyn futures::Stream<Item = redis::Msg> + Send>>,
    pub seen: Vec<(String, Value)>,
}

impl ChannelWatch {
    /// Waits until `n` messages have been seen.
    pub async fn wait_for(&mut self, n: usize) -> &[(String, Value)] {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while self.seen.len() < n {
            self.next(deadline, &format!("{n} messages")).await;
        }
        &self.seen
    }

    /// Waits until a message for which `wanted` holds has been seen, and answers it.
    pub async fn wait_until(
        &mut self,
        what: &str,
        wanted: impl Fn(&str, &Value) -> bool,
    ) -> (String, Value) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let mut checked = 0;
        loop {
            if let Some(found) = self.seen[checked..].iter().find(|(c, p)| wanted(c, p)) {
                return found.clone();
            }
            checked = self.seen.len();
            self.next(deadline, what).await;
        }
    }

    /// Takes whatever else has arrived by now, without waiting.
    pub fn drain(&mut self) -> &[(String, Value)] {
        use futures::FutureExt;
        use futures::StreamExt;
        while let Some(Some(msg)) = self.messages.next().now_or_never() {
            self.record(&msg);
        }
        &self.seen
    }

    /// Waits, until `deadline`, for one more message.
    async fn next(&mut self, deadline: tokio::time::Instant, what: &str) {
        use futures::StreamExt;
        let msg = tokio::time::timeout_at(deadline, self.messages.next())
            .await
            .unwrap_or_else(|_| panic!("saw {:?}, never {what}", self.seen))
            .expect("the pub/sub stream");
        self.record(&msg);
    }

    fn record(&mut self, msg: &redis::Msg) {
        let payload = serde_json::from_slice(msg.get_payload_bytes()).unwrap_or(Value::Null);
        self.seen.push((msg.get_channel_name().to_owned(), payload));
    }
}

#[derive(Debug, Clone)]
pub struct BotLog {
    pub events: Vec<Value>,
}

impl BotLog {
    pub fn names(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| e["event"].as_str())
            .collect()
    }

    pub fn has(&self, event: &str) -> bool {
        self.names().contains(&event)
    }

    pub fn count(&self, event: &str) -> usize {
        self.names().iter().filter(|n| **n == event).count()
    }
}

/// Polls `probe` until it answers `Some`, and answers that; panics naming `what` at the
/// deadline.
pub async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "waited {DEADLINE:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status_and_json(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// A native meeting id unique to this call, so tests sharing a Redis never share a channel.
pub fn unique_meet_id() -> String {
    let letters: String = (0..10)
        .map(|_| (b'a' + rand::random::<u8>() % 26) as char)
        .collect();
    format!("{}-{}-{}", &letters[0..3], &letters[3..7], &letters[7..10])
}
