//! Records the history while a run goes on: harness actions (recorded by the runner),
//! every stored change in Postgres (a trigger with LISTEN/NOTIFY, so no change between
//! two polls is missed), every Redis message (PSUBSCRIBE), every container event from
//! the runtime (Docker `/events`) and every line of the bots' own event logs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{Event, EventKind, History, meeting_id_from_container_name};

/// The channel the history trigger notifies on.
const NOTIFY_CHANNEL: &str = "stopflow_history";

/// Installed in the run's database once the service has applied its migrations. It only
/// reports; it changes nothing the service reads or writes.
const TRIGGER_SQL: &str = r#"
CREATE OR REPLACE FUNCTION stopflow_history() RETURNS trigger AS $$
DECLARE payload jsonb;
BEGIN
  IF TG_TABLE_NAME = 'meetings' THEN
    IF TG_OP = 'INSERT' THEN
      payload := jsonb_build_object('kind', 'meeting_inserted', 'id', NEW.id,
        'platform', NEW.platform, 'native', NEW.platform_specific_id, 'status', NEW.status);
    ELSIF TG_OP = 'UPDATE' THEN
      payload := jsonb_build_object(
        'kind', CASE WHEN OLD.status IS DISTINCT FROM NEW.status THEN 'status' ELSE 'updated' END,
        'id', NEW.id, 'from', OLD.status, 'to', NEW.status,
        'audit_len', CASE WHEN jsonb_typeof(NEW.data->'status_transition') = 'array'
                          THEN jsonb_array_length(NEW.data->'status_transition') ELSE 0 END,
        'completion_reason', NEW.data->>'completion_reason',
        'failure_stage', NEW.data->>'failure_stage',
        'stop_requested', COALESCE(NEW.data->'stop_requested' = 'true'::jsonb, false),
        'container', NEW.bot_container_id);
    ELSE
      payload := jsonb_build_object('kind', 'deleted', 'table', 'meetings', 'id', OLD.id,
        'detail', jsonb_build_object('status', OLD.status));
    END IF;
  ELSE
    IF TG_OP = 'INSERT' THEN
      payload := jsonb_build_object('kind', 'session', 'id', NEW.meeting_id,
        'uid', NEW.session_uid, 'start', NEW.session_start_time);
    ELSE
      payload := jsonb_build_object('kind', 'deleted', 'table', 'meeting_sessions',
        'id', OLD.meeting_id, 'detail', jsonb_build_object('session_uid', OLD.session_uid));
    END IF;
  END IF;
  payload := payload || jsonb_build_object('at_unix_us',
    (extract(epoch from clock_timestamp()) * 1000000)::bigint);
  PERFORM pg_notify('stopflow_history', payload::text);
  RETURN COALESCE(NEW, OLD);
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS stopflow_history_meetings ON meetings;
CREATE TRIGGER stopflow_history_meetings AFTER INSERT OR UPDATE OR DELETE ON meetings
  FOR EACH ROW EXECUTE FUNCTION stopflow_history();
DROP TRIGGER IF EXISTS stopflow_history_sessions ON meeting_sessions;
CREATE TRIGGER stopflow_history_sessions AFTER INSERT OR DELETE ON meeting_sessions
  FOR EACH ROW EXECUTE FUNCTION stopflow_history();
"#;

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("install the history trigger: {0}")]
    Trigger(#[source] sqlx::Error),
    #[error("listen for database changes: {0}")]
    Listen(#[source] sqlx::Error),
    #[error("subscribe to Redis: {0}")]
    Redis(#[source] redis::RedisError),
    #[error("follow the runtime's events: {0}")]
    Runtime(#[source] reqwest::Error),
}

struct Shared {
    t0: DateTime<Utc>,
    seq: AtomicU64,
    /// When the last event arrived (not when it happened), for quiet detection.
    last_arrival_us: AtomicI64,
    events: Mutex<Vec<Event>>,
    changed: Notify,
}

/// The history being written. Cheap to clone; every clone appends to the same log.
#[derive(Clone)]
pub struct Recorder {
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Recorder {
    pub fn new(t0: DateTime<Utc>) -> Self {
        Recorder {
            shared: Arc::new(Shared {
                t0,
                seq: AtomicU64::new(0),
                last_arrival_us: AtomicI64::new(0),
                events: Mutex::new(Vec::new()),
                changed: Notify::new(),
            }),
            tasks: Arc::default(),
        }
    }

    pub fn t0(&self) -> DateTime<Utc> {
        self.shared.t0
    }

    /// Microseconds since the run started.
    pub fn now_us(&self) -> i64 {
        self.us_at(Utc::now())
    }

    pub fn us_at(&self, at: DateTime<Utc>) -> i64 {
        (at - self.shared.t0).num_microseconds().unwrap_or(i64::MAX)
    }

    /// Appends an event observed now.
    pub fn record(&self, kind: EventKind) -> Event {
        self.record_at(self.now_us(), kind)
    }

    /// Appends an event with its source's own timestamp.
    pub fn record_at(&self, at_us: i64, kind: EventKind) -> Event {
        let event = Event {
            seq: self.shared.seq.fetch_add(1, Ordering::SeqCst),
            at_us,
            kind,
        };
        self.shared
            .events
            .lock()
            .expect("history lock")
            .push(event.clone());
        self.shared
            .last_arrival_us
            .store(self.now_us(), Ordering::SeqCst);
        self.shared.changed.notify_waiters();
        event
    }

    /// Events from position `from` on, in arrival order, and the next position.
    pub fn since(&self, from: usize) -> (Vec<Event>, usize) {
        let events = self.shared.events.lock().expect("history lock");
        let from = from.min(events.len());
        (events[from..].to_vec(), events.len())
    }

    /// Waits until an event arrives after this call, or `timeout` passes.
    pub async fn changed(&self, timeout: Duration) {
        let notified = self.shared.changed.notified();
        let _ = tokio::time::timeout(timeout, notified).await;
    }

    /// The arrival time of the last event, in microseconds since the start.
    pub fn last_arrival_us(&self) -> i64 {
        self.shared.last_arrival_us.load(Ordering::SeqCst)
    }

    fn spawn(&self, task: JoinHandle<()>) {
        self.tasks.lock().expect("task lock").push(task);
    }

    /// Installs the trigger and follows every change of `meetings` and
    /// `meeting_sessions` in the run's database.
    pub async fn attach_postgres(
        &self,
        pool: &sqlx::PgPool,
        url: &str,
    ) -> Result<(), RecorderError> {
        sqlx::raw_sql(TRIGGER_SQL)
            .execute(pool)
            .await
            .map_err(RecorderError::Trigger)?;
        let mut listener = sqlx::postgres::PgListener::connect(url)
            .await
            .map_err(RecorderError::Listen)?;
        listener
            .listen(NOTIFY_CHANNEL)
            .await
            .map_err(RecorderError::Listen)?;
        let recorder = self.clone();
        self.spawn(tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(notification) => recorder.on_database_change(notification.payload()),
                    Err(err) => {
                        // PgListener reconnects by itself on the next recv; notifications
                        // sent meanwhile are lost, so say so.
                        recorder.record(EventKind::RecorderGap {
                            source: "postgres".into(),
                            detail: err.to_string(),
                        });
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
        Ok(())
    }

    fn on_database_change(&self, payload: &str) {
        let Ok(v) = serde_json::from_str::<Value>(payload) else {
            return;
        };
        let at = v["at_unix_us"]
            .as_i64()
            .map(|us| us - self.shared.t0.timestamp_micros())
            .unwrap_or_else(|| self.now_us());
        let id = v["id"].as_i64().unwrap_or_default();
        let text = |key: &str| v[key].as_str().map(str::to_owned);
        let kind = match v["kind"].as_str() {
            Some("meeting_inserted") => EventKind::MeetingInserted {
                meeting_id: id,
                platform: text("platform").unwrap_or_default(),
                native_meeting_id: text("native").unwrap_or_default(),
                status: text("status").unwrap_or_default(),
            },
            Some("status") => EventKind::StatusStored {
                meeting_id: id,
                from: text("from").unwrap_or_default(),
                to: text("to").unwrap_or_default(),
                audit_len: v["audit_len"].as_u64().unwrap_or_default() as usize,
                completion_reason: text("completion_reason"),
                failure_stage: text("failure_stage"),
                stop_requested: v["stop_requested"].as_bool().unwrap_or(false),
                bot_container_id: text("container"),
            },
            Some("updated") => EventKind::MeetingUpdated {
                meeting_id: id,
                status: text("to").unwrap_or_default(),
                audit_len: v["audit_len"].as_u64().unwrap_or_default() as usize,
                stop_requested: v["stop_requested"].as_bool().unwrap_or(false),
                bot_container_id: text("container"),
            },
            Some("session") => EventKind::SessionStored {
                meeting_id: id,
                session_uid: text("uid").unwrap_or_default(),
                session_start_time: text("start").unwrap_or_default(),
            },
            Some("deleted") => EventKind::RowDeleted {
                table: text("table").unwrap_or_default(),
                meeting_id: id,
                detail: v["detail"].clone(),
            },
            _ => return,
        };
        self.record_at(at, kind);
    }

    /// PSUBSCRIBEs to every channel of the run's Redis.
    pub async fn attach_redis(&self, url: &str) -> Result<(), RecorderError> {
        let client = redis::Client::open(url).map_err(RecorderError::Redis)?;
        let mut pubsub = client
            .get_async_pubsub()
            .await
            .map_err(RecorderError::Redis)?;
        pubsub.psubscribe("*").await.map_err(RecorderError::Redis)?;
        let recorder = self.clone();
        self.spawn(tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            loop {
                while let Some(msg) = stream.next().await {
                    let channel = msg.get_channel_name().to_owned();
                    let bytes = msg.get_payload_bytes();
                    let payload = serde_json::from_slice(bytes).unwrap_or_else(|_| {
                        Value::String(String::from_utf8_lossy(bytes).into_owned())
                    });
                    recorder.record(EventKind::Published { channel, payload });
                }
                // The end of the stream is a lost connection (no error is raised).
                recorder.record(EventKind::RecorderGap {
                    source: "redis".into(),
                    detail: "the subscription stream ended; resubscribing".into(),
                });
                stream = loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let resubscribed = async {
                        let mut pubsub = client.get_async_pubsub().await?;
                        pubsub.psubscribe("*").await?;
                        Ok::<_, redis::RedisError>(pubsub.into_on_message())
                    };
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(Duration::from_secs(2), resubscribed).await
                    {
                        break stream;
                    }
                };
            }
        }));
        Ok(())
    }

    /// Follows the runtime's Docker event stream from the run's start.
    pub async fn attach_runtime(&self, runtime_url: &str) -> Result<(), RecorderError> {
        let since = self.shared.t0.timestamp() - 1;
        // No overall timeout: the stream lives as long as the run.
        let client = reqwest::Client::new();
        let resp = client
            .get(format!("{runtime_url}/events?since={since}"))
            .send()
            .await
            .map_err(RecorderError::Runtime)?;
        let recorder = self.clone();
        self.spawn(tokio::spawn(async move {
            let mut body = resp.bytes_stream();
            let mut buf = Vec::new();
            while let Some(chunk) = body.next().await {
                let Ok(chunk) = chunk else { break };
                buf.extend_from_slice(&chunk);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                        recorder.on_container_event(&v);
                    }
                }
            }
            recorder.record(EventKind::RecorderGap {
                source: "runtime".into(),
                detail: "the runtime's event stream ended".into(),
            });
        }));
        Ok(())
    }

    fn on_container_event(&self, v: &Value) {
        if v["Type"].as_str() != Some("container") {
            return;
        }
        let attrs = &v["Actor"]["Attributes"];
        let name = attrs["name"].as_str().unwrap_or_default().to_owned();
        let at = v["timeNano"]
            .as_i64()
            .map(|ns| ns / 1000 - self.shared.t0.timestamp_micros())
            .unwrap_or_else(|| self.now_us());
        let exit_code = attrs["exitCode"]
            .as_str()
            .and_then(|c| c.parse().ok())
            .or_else(|| attrs["exitCode"].as_i64());
        self.record_at(
            at,
            EventKind::Container {
                action: v["Action"].as_str().unwrap_or_default().to_owned(),
                container_id: v["Actor"]["ID"].as_str().unwrap_or_default().to_owned(),
                meeting_id: meeting_id_from_container_name(&name),
                name,
                exit_code,
            },
        );
    }

    /// Tails the bots' log files (one per container, written by the runtime) and records
    /// each JSON event line.
    pub fn attach_bot_logs(&self, dir: PathBuf) {
        let recorder = self.clone();
        self.spawn(tokio::spawn(async move {
            let mut offsets: HashMap<PathBuf, usize> = HashMap::new();
            loop {
                recorder.read_bot_logs(&dir, &mut offsets);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    fn read_bot_logs(&self, dir: &std::path::Path, offsets: &mut HashMap<PathBuf, usize>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(text) = std::fs::read(&path) else {
                continue;
            };
            let offset = offsets.entry(path).or_default();
            let Some(end) = text[*offset..].iter().rposition(|b| *b == b'\n') else {
                continue;
            };
            let end = *offset + end + 1;
            for line in text[*offset..end].split(|b| *b == b'\n') {
                if let Ok(v) = serde_json::from_slice::<Value>(line) {
                    self.record_bot_line(v);
                }
            }
            *offset = end;
        }
    }

    /// One line of a bot's event log, recorded at its own time: the tailer's and, for a
    /// run that reads the logs once at its end (`chaos load`), the caller's.
    pub(crate) fn record_bot_line(&self, mut v: Value) {
        let Some(obj) = v.as_object_mut() else { return };
        let Some(event) = obj
            .remove("event")
            .and_then(|e| e.as_str().map(str::to_owned))
        else {
            return;
        };
        let at = obj
            .remove("ts")
            .and_then(|t| {
                t.as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            })
            .map(|t| self.us_at(t.with_timezone(&Utc)))
            .unwrap_or_else(|| self.now_us());
        let container = obj
            .remove("bot")
            .and_then(|b| b.as_str().map(str::to_owned))
            .unwrap_or_default();
        let uid = obj
            .remove("uid")
            .and_then(|u| u.as_str().map(str::to_owned));
        self.record_at(
            at,
            EventKind::Bot {
                meeting_id: meeting_id_from_container_name(&container),
                container,
                uid,
                event,
                fields: json!(obj),
            },
        );
    }

    /// Stops following every source and answers the history, ordered.
    pub fn finish(&self) -> History {
        for task in self.tasks.lock().expect("task lock").drain(..) {
            task.abort();
        }
        History::new(self.shared.events.lock().expect("history lock").clone())
    }
}
