//! `GET /events`: newline-delimited JSON, streamed until the client goes away, `until`
//! passes or the runtime shuts down.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::filters::EventFilter;
use crate::events::EventSubscription;
use crate::http::{ApiError, Params};
use crate::supervisor::Supervisor;

pub(super) async fn events(
    State(supervisor): State<Arc<Supervisor>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = Params(query?.0);
    let filter = EventFilter::parse(params.get("filters"))?;
    let since = params
        .get("since")
        .map(|v| parse_time("since", v))
        .transpose()?;
    let until = params
        .get("until")
        .map(|v| parse_time("until", v))
        .transpose()?;
    let subscription = supervisor.subscribe(since);
    let deadline = until.map(|until| {
        let wait = (until - Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)).max(0);
        Instant::now() + std::time::Duration::from_nanos(wait.unsigned_abs())
    });
    let state = Stream {
        subscription,
        filter,
        until,
        deadline,
    };
    let lines = futures::stream::unfold(state, |mut state| async move {
        let line = state.next_line().await?;
        Some((Ok::<_, Infallible>(line), state))
    });
    Response::builder()
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from_stream(lines))
        .map_err(|err| ApiError::bad_request(format!("cannot build the events response: {err}")))
}

struct Stream {
    subscription: EventSubscription,
    filter: EventFilter,
    until: Option<i64>,
    deadline: Option<Instant>,
}

impl Stream {
    async fn next_line(&mut self) -> Option<Bytes> {
        loop {
            let event = match self.deadline {
                Some(deadline) => tokio::select! {
                    biased;
                    event = self.subscription.next() => event,
                    () = tokio::time::sleep_until(deadline) => None,
                },
                None => self.subscription.next().await,
            }?;
            if self.until.is_some_and(|until| event.time_nano > until) {
                return None;
            }
            if self.filter.matches(&event) {
                let mut line = serde_json::to_vec(&event).ok()?;
                line.push(b'\n');
                return Some(Bytes::from(line));
            }
        }
    }
}

/// Docker's forms: unix seconds with optional fraction (`1700000000.5`) or RFC 3339.
fn parse_time(key: &str, text: &str) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "invalid query parameter {key}={text:?}: expected unix seconds or an RFC 3339 time"
        ))
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return at.timestamp_nanos_opt().ok_or_else(bad);
    }
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
    let seconds: i64 = seconds.parse().map_err(|_| bad())?;
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let nanos: i64 = format!("{fraction:0<9}").parse().map_err(|_| bad())?;
    seconds
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(nanos))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_parse_in_docker_forms() {
        assert_eq!(parse_time("since", "12").unwrap(), 12_000_000_000);
        assert_eq!(parse_time("since", "12.5").unwrap(), 12_500_000_000);
        assert_eq!(
            parse_time("since", "1970-01-01T00:00:01Z").unwrap(),
            1_000_000_000
        );
        let err = parse_time("since", "yesterday").unwrap_err();
        assert!(err.message().contains("since=\"yesterday\""));
    }
}
