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
use crate::admission::cut_short;
use crate::events::EventSubscription;
use crate::http::{ApiError, Params};
use crate::supervisor::Supervisor;

pub(super) async fn events(
    State(supervisor): State<Arc<Supervisor>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = Params(query?.0);
    let filter = EventFilter::parse(params.get("filters"))?;
    let time = |key| {
        params
            .get(key)
            .map(|text| parse_time(key, text))
            .transpose()
    };
    let (since, until) = (time("since")?, time("until")?);
    if let (Some(since), Some(until)) = (since, until)
        && until < since
    {
        return Err(TimeError::UntilBeforeSince {
            since: cut_short(params.get("since").unwrap_or_default()),
            until: cut_short(params.get("until").unwrap_or_default()),
        }
        .into());
    }
    let subscription = supervisor.subscribe(since);
    // Both times are in [0, i64::MAX] nanoseconds, so the wait neither overflows nor is
    // negative; an instant too far ahead to represent means no deadline at all.
    let deadline = until.and_then(|until| {
        let now = Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
        let wait = until.saturating_sub(now).max(0).unsigned_abs();
        Instant::now().checked_add(std::time::Duration::from_nanos(wait))
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

/// A bad `since` or `until`; reads after "failed to".
#[derive(Debug, thiserror::Error)]
pub(super) enum TimeError {
    #[error(
        "parse query parameter {key}=\"{text}\": expected unix seconds with up to 9 \
         fractional digits (1700000000.5) or an RFC 3339 time"
    )]
    Malformed { key: &'static str, text: String },
    #[error("accept query parameter {key}=\"{text}\": it is before the unix epoch")]
    BeforeEpoch { key: &'static str, text: String },
    #[error(
        "accept query parameter {key}=\"{text}\": it is after 2262-04-11T23:47:16.854775807Z, \
         the last time this runtime can represent"
    )]
    TooLate { key: &'static str, text: String },
    #[error("accept since=\"{since}\" and until=\"{until}\": until is before since")]
    UntilBeforeSince { since: String, until: String },
}

impl From<TimeError> for ApiError {
    fn from(err: TimeError) -> Self {
        ApiError::bad_request(format!("failed to {err}"))
    }
}

/// Docker's forms: unix seconds with optional fraction (`1700000000.5`) or RFC 3339. The
/// answer is nanoseconds since the epoch, from 0 to `i64::MAX`.
pub(super) fn parse_time(key: &'static str, text: &str) -> Result<i64, TimeError> {
    let malformed = || TimeError::Malformed {
        key,
        text: cut_short(text),
    };
    let before_epoch = || TimeError::BeforeEpoch {
        key,
        text: cut_short(text),
    };
    let too_late = || TimeError::TooLate {
        key,
        text: cut_short(text),
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        if at.timestamp() < 0 {
            return Err(before_epoch());
        }
        return at.timestamp_nanos_opt().ok_or_else(too_late);
    }
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
    // Digits only: `str::parse` would also take a sign.
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if let Some(magnitude) = seconds.strip_prefix('-')
        && !magnitude.is_empty()
        && digits(magnitude)
        && digits(fraction)
        && magnitude.bytes().chain(fraction.bytes()).any(|b| b != b'0')
    {
        return Err(before_epoch());
    }
    if seconds.is_empty() || !digits(seconds) || fraction.len() > 9 || !digits(fraction) {
        return Err(malformed());
    }
    let seconds: i64 = seconds.parse().map_err(|_| too_late())?;
    let nanos: i64 = format!("{fraction:0<9}").parse().map_err(|_| malformed())?;
    seconds
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(nanos))
        .ok_or_else(too_late)
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
        let err = ApiError::from(parse_time("since", "yesterday").unwrap_err());
        assert!(err.message().contains("since=\"yesterday\""));
    }

    #[test]
    fn event_times_outside_what_fits_are_named_not_wrapped() {
        let message = |text| {
            ApiError::from(parse_time("until", text).unwrap_err())
                .message()
                .to_owned()
        };
        assert!(message("-9223372036").contains("before the unix epoch"));
        assert!(message("-0.5").contains("before the unix epoch"));
        assert!(message("1969-12-31T23:59:59Z").contains("before the unix epoch"));
        assert!(message("9223372037").contains("after 2262"));
        assert!(message("99999999999999999999").contains("after 2262"));
        assert!(message("+5").contains("expected unix seconds"));
        assert!(message("-0").contains("expected unix seconds"));
        assert!(message("1.1234567890").contains("expected unix seconds"));
        assert_eq!(
            parse_time("until", "9223372036").unwrap(),
            9_223_372_036_000_000_000
        );
        assert_eq!(parse_time("until", "0").unwrap(), 0);
    }
}
