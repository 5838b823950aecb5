//! The harness's HTTP client for the service: every exchange goes into the history as an
//! `invoke` and an `ok`, `fail` or `info` (unknown: it may or may not have happened).

use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::Method;
use serde_json::Value;

use crate::history::{EventKind, HttpPhase, Recorder};

pub struct Client {
    http: reqwest::Client,
    base_url: String,
    recorder: Recorder,
    next_op: AtomicU64,
}

/// Who sends a request that is not a user's: `by` as recorded (`bot`, `bot:<label>`,
/// `attacker`) and the bot credentials it presents, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub by: String,
    pub secret: Option<String>,
}

struct Target<'a> {
    base: &'a str,
    path: &'a str,
}

/// What an exchange gave: the status and body, or nothing when it failed or timed out.
pub type Answer = Option<(u16, Value)>;

impl Client {
    pub fn new(base_url: String, recorder: Recorder, timeout: std::time::Duration) -> Self {
        Client {
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("an HTTP client without TLS builds"),
            base_url,
            recorder,
            next_op: AtomicU64::new(1),
        }
    }

    /// A request of a meeting's user (`token` is its API key).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        meeting: Option<&str>,
    ) -> Answer {
        let auth = token.map(|t| ("X-API-Key", t.to_owned()));
        let target = Target {
            base: &self.base_url,
            path,
        };
        self.exchange(method, target, auth, body, meeting, None)
            .await
    }

    /// A request as someone other than the meeting's user: a bot (its own or another
    /// meeting's) or an attacker, recorded with who sent it.
    /// `base` is another server than the service's (the collector's stand-in).
    pub async fn call_as(
        &self,
        caller: &Caller,
        method: Method,
        base: Option<&str>,
        path: &str,
        body: Option<&Value>,
        meeting: Option<&str>,
    ) -> Answer {
        let auth = caller
            .secret
            .as_ref()
            .map(|s| ("Authorization", format!("Bearer {s}")));
        let target = Target {
            base: base.unwrap_or(&self.base_url),
            path,
        };
        self.exchange(method, target, auth, body, meeting, Some(&caller.by))
            .await
    }

    async fn exchange(
        &self,
        method: Method,
        Target { base, path }: Target<'_>,
        auth: Option<(&str, String)>,
        body: Option<&Value>,
        meeting: Option<&str>,
        by: Option<&str>,
    ) -> Answer {
        let op = self.next_op.fetch_add(1, Ordering::SeqCst);
        let event = |phase, status, body, error| EventKind::Http {
            op,
            phase,
            method: method.to_string(),
            path: path.to_owned(),
            meeting: meeting.map(str::to_owned),
            status,
            body,
            error,
            by: by.map(str::to_owned),
        };
        self.recorder
            .record(event(HttpPhase::Invoke, None, body.cloned(), None));
        let mut req = self.http.request(method.clone(), format!("{base}{path}"));
        if let Some((name, value)) = auth {
            req = req.header(name, value);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.text().await {
                    Ok(text) => {
                        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
                        self.recorder.record(event(
                            HttpPhase::Ok,
                            Some(status),
                            Some(body.clone()),
                            None,
                        ));
                        Some((status, body))
                    }
                    Err(err) => {
                        self.recorder.record(event(
                            HttpPhase::Info,
                            Some(status),
                            None,
                            Some(err.to_string()),
                        ));
                        None
                    }
                }
            }
            Err(err) => {
                // Refused before anything was sent: it certainly did not happen.
                // Anything else (a timeout, a reset after sending) is unknown.
                let phase = if err.is_connect() {
                    HttpPhase::Fail
                } else {
                    HttpPhase::Info
                };
                self.recorder
                    .record(event(phase, None, None, Some(err.to_string())));
                None
            }
        }
    }
}
