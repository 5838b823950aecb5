//! `chaos conform`: the API checks of protocol.md sections 4 and 5 (codes, answers,
//! stored effects, what is published where) against any system under test, as one
//! table: check, expected, observed, match. The probe drives the callbacks itself: the
//! bot it starts waits ten minutes before its first report and its leave hangs, so
//! nothing but the probe moves the meeting.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use protocol::Published;
use reqwest::Method;
use serde_json::{Value, json};

use crate::stack::{Stack, StackConfig, StackError};
use crate::sut::Sut;

/// One check and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub section: &'static str,
    pub name: &'static str,
    pub expected: String,
    pub observed: String,
}

impl Check {
    pub fn matches(&self) -> bool {
        self.expected == self.observed
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConformError {
    #[error("start the stack: {0}")]
    Stack(#[from] StackError),
    #[error("follow Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("probe the service: {0}")]
    Probe(String),
}

const DEV: &str = "stopflow-dev-token";
/// How long the probe waits for an effect it expects (a row, a publish).
const WAIT: Duration = Duration::from_secs(5);

struct Probe {
    stack: Stack,
    published: Arc<Mutex<Vec<(String, Value)>>>,
    checks: Vec<Check>,
}

/// Runs every check against `sut`; the table, in order.
pub async fn conform(
    sut: Arc<Sut>,
    sut_dir: Option<std::path::PathBuf>,
    log_dir: std::path::PathBuf,
) -> Result<Vec<Check>, ConformError> {
    let stack = Stack::start_sut(
        StackConfig {
            profile: "legacy".into(),
            service: Default::default(),
            // The bot never reports by itself and its leave hangs: only the probe moves
            // the meeting, so every answer is the service's to the probe.
            bot_env: vec![
                ("MOCK_BOT_START_DELAY_MS".into(), "600000".into()),
                ("MOCK_BOT_LEAVE".into(), "hang".into()),
            ],
            log_dir,
            links: None,
        },
        sut,
        sut_dir,
    )
    .await?;
    let published = Arc::new(Mutex::new(Vec::new()));
    let client = redis::Client::open(stack.redis_url())?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.psubscribe("*").await?;
    let sink = published.clone();
    let follow = tokio::spawn(async move {
        let mut stream = pubsub.into_on_message();
        while let Some(msg) = stream.next().await {
            let payload = serde_json::from_slice(msg.get_payload_bytes()).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(msg.get_payload_bytes()).into())
            });
            sink.lock()
                .expect("publish log")
                .push((msg.get_channel_name().to_owned(), payload));
        }
    });
    let mut probe = Probe {
        stack,
        published,
        checks: Vec::new(),
    };
    let outcome = probe.run().await;
    follow.abort();
    outcome.map(|()| probe.checks)
}

impl Probe {
    fn check(
        &mut self,
        section: &'static str,
        name: &'static str,
        expected: impl Into<String>,
        observed: impl Into<String>,
    ) {
        self.checks.push(Check {
            section,
            name,
            expected: expected.into(),
            observed: observed.into(),
        });
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.stack.http.request(method, self.stack.url(path));
        if let Some(key) = key {
            req = req.header("X-API-Key", key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                (
                    status,
                    serde_json::from_str(&text).unwrap_or(Value::String(text)),
                )
            }
            Err(err) => (0, Value::String(format!("no answer: {err}"))),
        }
    }

    async fn delete(&self, native: &str) -> (u16, Value) {
        let path = format!("/bots/google_meet/{native}");
        self.call(Method::DELETE, &path, Some(DEV), None).await
    }

    async fn status_of(&self, id: i64) -> String {
        sqlx::query_scalar::<_, String>("SELECT status FROM meetings WHERE id = $1")
            .bind(i32::try_from(id).unwrap_or(-1))
            .fetch_optional(&self.stack.pool)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| "no row".into())
    }

    /// Waits (bounded) until the service published `status` on one of its status
    /// channels (its wire's); answers the status and the channel's template, or "nothing".
    async fn status_published(&self, status: &str) -> String {
        let wire = self.stack.wire().clone();
        self.published(|c, p| match wire.read(c, p) {
            Published::Status { status: s, .. } if s == status => {
                Some(format!("{s} on {}", template_of(&wire.status_channels, c)))
            }
            _ => None,
        })
        .await
    }

    /// Waits (bounded) until a message satisfies `describe`; answers its description or
    /// "nothing".
    async fn published(&self, describe: impl Fn(&str, &Value) -> Option<String>) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(found) = self
                .published
                .lock()
                .expect("publish log")
                .iter()
                .find_map(|(c, p)| describe(c, p))
            {
                return found;
            }
            if tokio::time::Instant::now() >= deadline {
                return "nothing".into();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The service's status channels, as its wire writes them.
    fn status_templates(&self) -> String {
        let wire = self.stack.wire();
        let names: Vec<String> = wire
            .status_channels
            .iter()
            .map(ToString::to_string)
            .collect();
        names.join(" or ")
    }

    async fn session_uid(&self, id: i64) -> Option<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let uid: Option<String> = sqlx::query_scalar(
                "SELECT session_uid FROM meeting_sessions WHERE meeting_id = $1 ORDER BY session_start_time LIMIT 1",
            )
            .bind(i32::try_from(id).unwrap_or(-1))
            .fetch_optional(&self.stack.pool)
            .await
            .ok()
            .flatten();
            if uid.is_some() || tokio::time::Instant::now() >= deadline {
                return uid;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn callback(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(
            Method::POST,
            &format!("/bots/internal/callback/{path}"),
            None,
            Some(body),
        )
        .await
    }

    async fn run(&mut self) -> Result<(), ConformError> {
        let native = "cnf-prob-eaa";
        let post = json!({"platform": "google_meet", "native_meeting_id": native});

        let (code, _) = self
            .call(Method::POST, "/bots", None, Some(post.clone()))
            .await;
        self.check("4", "POST /bots without a key", "403", code.to_string());
        let (code, _) = self
            .call(
                Method::POST,
                "/bots",
                Some("no-such-key"),
                Some(post.clone()),
            )
            .await;
        self.check(
            "4",
            "POST /bots with an unknown key",
            "403",
            code.to_string(),
        );
        let (code, _) = self
            .call(
                Method::POST,
                "/bots",
                Some(DEV),
                Some(json!({"platform": "google_meet", "native_meeting_id": "not-a-meet-id"})),
            )
            .await;
        self.check(
            "4",
            "POST /bots with a malformed Google Meet id",
            "422",
            code.to_string(),
        );
        let (code, _) = self
            .call(
                Method::DELETE,
                "/bots/google_meet/zzz-zzzz-zzz",
                Some(DEV),
                None,
            )
            .await;
        self.check(
            "4",
            "DELETE of a meeting the user does not have",
            "404",
            code.to_string(),
        );

        let (code, body) = self
            .call(Method::POST, "/bots", Some(DEV), Some(post.clone()))
            .await;
        self.check(
            "4",
            "POST /bots: 201, the meeting still requested",
            "201 requested",
            said(code, &body, "status"),
        );
        let Some(id) = body["id"].as_i64() else {
            return Err(ConformError::Probe(format!(
                "POST /bots answered {code} {body}: no meeting id"
            )));
        };
        let observed = self.status_of(id).await;
        self.check(
            "4",
            "POST /bots stores the row as requested",
            "requested",
            observed,
        );
        let observed = self.status_published("requested").await;
        self.check(
            "4",
            "POST /bots publishes requested on the status channel",
            format!("requested on {}", self.status_templates()),
            observed,
        );
        let mut redis = redis::Client::open(self.stack.redis_url())?
            .get_multiplexed_async_connection()
            .await?;
        // A version that writes no current-uid key (later ones) has nothing to check here.
        if let Some(key) =
            self.stack
                .wire()
                .current_uid_key(id, protocol::Platform::GoogleMeet, native)
        {
            let ttl: i64 = redis::cmd("TTL")
                .arg(&key)
                .query_async(&mut redis)
                .await
                .unwrap_or(-2);
            self.check(
                "4",
                "POST /bots sets current_uid with a day's TTL",
                "set, TTL ≤ 86400",
                if ttl > 0 && ttl <= 86_400 {
                    "set, TTL ≤ 86400".to_owned()
                } else {
                    format!("TTL {ttl}")
                },
            );
        }
        let (code, _) = self
            .call(Method::POST, "/bots", Some(DEV), Some(post.clone()))
            .await;
        self.check(
            "4",
            "a second POST while the latest row is requested",
            "409",
            code.to_string(),
        );
        let (code, body) = self
            .call(Method::GET, "/bots/status", Some(DEV), None)
            .await;
        let running = body["running_bots"].as_array().cloned().unwrap_or_default();
        let normalized = running
            .iter()
            .find(|b| b["native_meeting_id"] == native)
            .map(|b| b["normalized_status"].as_str().unwrap_or("none").to_owned())
            .unwrap_or_else(|| "not listed".into());
        self.check(
            "4",
            "GET /bots/status lists the bot, normalized_status",
            "200 Up",
            format!("{code} {normalized}"),
        );

        let Some(uid) = self.session_uid(id).await else {
            return Err(ConformError::Probe(
                "no session row was written for the bot's connectionId".into(),
            ));
        };
        let (code, body) = self
            .callback(
                "status_change",
                json!({"connection_id": "no-such-uid", "status": "joining"}),
            )
            .await;
        self.check(
            "5",
            "status_change from an unknown session",
            "200 error",
            said(code, &body, "status"),
        );
        let (code, _) = self
            .callback(
                "status_change",
                json!({"connection_id": uid, "status": "dancing"}),
            )
            .await;
        let after = self.status_of(id).await;
        self.check(
            "5",
            "status_change with a status outside the enum",
            "422, row requested",
            format!("{code}, row {after}"),
        );
        let (code, body) = self
            .callback(
                "status_change",
                json!({"connection_id": uid, "status": "active"}),
            )
            .await;
        let after = self.status_of(id).await;
        self.check(
            "5",
            "illegal active from requested: answered, row unchanged",
            "200 requested, row requested",
            format!(
                "{code} {}, row {after}",
                body["status"].as_str().unwrap_or("-")
            ),
        );
        // As the bot reports them: `active` carries its container (production stores the
        // container id `active` gives, absent or not).
        let container: Option<String> =
            sqlx::query_scalar("SELECT bot_container_id FROM meetings WHERE id = $1")
                .bind(i32::try_from(id).unwrap_or(-1))
                .fetch_one(&self.stack.pool)
                .await
                .map_err(|e| ConformError::Probe(format!("read the meeting's container: {e}")))?;
        for status in ["joining", "awaiting_admission", "active"] {
            self.callback(
                "status_change",
                json!({"connection_id": uid, "status": status, "container_id": container}),
            )
            .await;
        }
        let after = self.status_of(id).await;
        self.check(
            "5",
            "joining, awaiting_admission, active are stored",
            "active",
            after,
        );
        let observed = self.status_published("active").await;
        self.check(
            "5",
            "an applied status is published",
            format!("active on {}", self.status_templates()),
            observed,
        );

        let (code, body) = self.delete(native).await;
        self.check(
            "4",
            "DELETE of an active meeting",
            "202 Stop request accepted and is being processed.",
            said(code, &body, "message"),
        );
        // Where the leave must go: the earliest session's uid channel (the incident's
        // algorithm) when the wire has uid channels, else the meeting's channel.
        let wire = self.stack.wire().clone();
        let by_uid = wire
            .command_channels
            .iter()
            .any(|t| t.to_string().contains("{uid}"));
        let expected = if by_uid {
            "leave on the earliest session's uid channel"
        } else {
            "leave on the meeting's channel, naming it"
        };
        let observed = self
            .published(|c, p| match wire.read(c, p) {
                Published::Leave(names) => {
                    Some(if by_uid && names.uid.as_deref() == Some(uid.as_str()) {
                        "leave on the earliest session's uid channel".to_owned()
                    } else if !by_uid
                        && names.meeting_id == Some(id)
                        && names.payload_meeting_id.is_none_or(|m| m == id)
                    {
                        "leave on the meeting's channel, naming it".to_owned()
                    } else {
                        format!("leave on {c} {p}")
                    })
                }
                _ => None,
            })
            .await;
        self.check(
            "4",
            if by_uid {
                "the leave goes to the earliest session's uid"
            } else {
                "the leave goes to the meeting's channel"
            },
            expected,
            observed,
        );
        let observed = self.status_published("stopping").await;
        self.check(
            "4",
            "stopping is published",
            format!("stopping on {}", self.status_templates()),
            observed,
        );
        let after = self.status_of(id).await;
        self.check(
            "4",
            "the row stays active after the DELETE (legacy)",
            "active",
            after,
        );

        let (code, body) = self
            .callback("exited", json!({"connection_id": uid, "exit_code": 0}))
            .await;
        let after = self.status_of(id).await;
        self.check(
            "5",
            "exited with exit 0 and no reason completes",
            "200 callback processed, row completed",
            format!(
                "{code} {}, row {after}",
                body["status"].as_str().unwrap_or("-")
            ),
        );
        let (code, body) = self
            .callback("exited", json!({"connection_id": uid, "exit_code": 0}))
            .await;
        self.check(
            "5",
            "a second exited on a completed row",
            "200 error",
            said(code, &body, "status"),
        );
        let (code, body) = self.delete(native).await;
        self.check(
            "4",
            "DELETE of a completed meeting",
            "202 Meeting already completed.",
            said(code, &body, "message"),
        );
        Ok(())
    }
}

/// An answer in a few words: its code and one field of its body.
fn said(code: u16, body: &Value, field: &str) -> String {
    format!("{code} {}", body[field].as_str().unwrap_or("-"))
}

/// The template among `templates` that `channel` is an instance of, as written.
fn template_of(templates: &[protocol::wire::Template], channel: &str) -> String {
    templates
        .iter()
        .find(|t| t.capture(channel).is_some())
        .map_or_else(|| channel.to_owned(), ToString::to_string)
}

/// The table, as Markdown.
pub fn render(sut: &str, checks: &[Check]) -> String {
    let mut out = format!(
        "Conformance of {sut} to protocol.md sections 4 and 5: {}/{} checks match\n\n| § | check | expected | observed | match |\n|---|---|---|---|---|\n",
        checks.iter().filter(|c| c.matches()).count(),
        checks.len()
    );
    for c in checks {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            c.section,
            c.name,
            c.expected.replace('|', "\\|"),
            c.observed.replace('|', "\\|"),
            if c.matches() { "✓" } else { "✗" }
        ));
    }
    out
}
