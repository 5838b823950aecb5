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

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        meeting: Option<&str>,
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
        };
        self.recorder
            .record(event(HttpPhase::Invoke, None, body.cloned(), None));
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base_url));
        if let Some(token) = token {
            req = req.header("X-API-Key", token);
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
