//! `GET /containers/{id}/logs`: the container's output in Docker's multiplexed stream
//! format, followed (`follow`) until its process's pipes close.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::watch;

use super::events::parse_time;
use crate::containers::Scope;
use crate::http::{ApiError, Params, Reference};
use crate::logs::{Line, LogStore, Stream, frame};
use crate::supervisor::Supervisor;

/// What a request asks for.
#[derive(Debug, Clone)]
struct Selection {
    stdout: bool,
    stderr: bool,
    timestamps: bool,
    since: Option<i64>,
    until: Option<i64>,
}

impl Selection {
    fn takes(&self, line: &Line) -> bool {
        let stream = match line.stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        };
        stream
            && self.since.is_none_or(|since| line.time_nanos >= since)
            && self.until.is_none_or(|until| line.time_nanos <= until)
    }

    fn framed(&self, line: &Line) -> Bytes {
        if !self.timestamps {
            return frame(line.stream, &line.bytes);
        }
        let at = DateTime::<Utc>::from_timestamp_nanos(line.time_nanos)
            .to_rfc3339_opts(SecondsFormat::Nanos, true);
        let mut payload = Vec::with_capacity(at.len() + 1 + line.bytes.len());
        payload.extend_from_slice(at.as_bytes());
        payload.push(b' ');
        payload.extend_from_slice(&line.bytes);
        frame(line.stream, &payload)
    }
}

pub(super) async fn logs(
    State(supervisor): State<Arc<Supervisor>>,
    Reference(reference): Reference,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = Params(query?.0);
    let time = |key| {
        params
            .get(key)
            .filter(|text| *text != "0")
            .map(|text| parse_time(key, text).map_err(ApiError::from))
            .transpose()
    };
    let selection = Selection {
        stdout: params.flag("stdout"),
        stderr: params.flag("stderr"),
        timestamps: params.flag("timestamps"),
        since: time("since")?,
        until: time("until")?,
    };
    if !selection.stdout && !selection.stderr {
        // Docker's own text.
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tail = match params.get("tail") {
        None | Some("all") => None,
        Some(text) => Some(text.trim().parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid query parameter tail={text:?}: expected all or a number of lines"
            ))
        })?),
    };
    let follow = params.flag("follow");
    let store = {
        let table = supervisor.table();
        Arc::clone(&table.resolve(&reference, Scope::Visible)?.logs)
    };
    // Subscribed before reading, so nothing added in between is missed.
    let changes = store.subscribe();
    let (lines, next, open) = store.since(0);
    let mut backlog: Vec<Bytes> = lines
        .iter()
        .filter(|line| selection.takes(line))
        .map(|line| selection.framed(line))
        .collect();
    if let Some(tail) = tail {
        backlog.drain(..backlog.len().saturating_sub(tail));
    }
    let state = Follower {
        store,
        changes,
        selection,
        next,
        pending: backlog.into(),
        follow: follow && open,
    };
    let chunks = futures::stream::unfold(state, |mut state| async move {
        let chunk = state.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), state))
    });
    Response::builder()
        .header(CONTENT_TYPE, "application/vnd.docker.multiplexed-stream")
        .body(Body::from_stream(chunks))
        .map_err(|err| ApiError::bad_request(format!("cannot build the logs response: {err}")))
}

struct Follower {
    store: Arc<LogStore>,
    changes: watch::Receiver<u64>,
    selection: Selection,
    /// Sequence number of the next line to read from the store.
    next: u64,
    pending: std::collections::VecDeque<Bytes>,
    /// Still reading new lines: until the process's pipes are closed and drained.
    follow: bool,
}

impl Follower {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                return Some(chunk);
            }
            if !self.follow {
                return None;
            }
            let (lines, next, open) = self.store.since(self.next);
            self.next = next;
            self.pending.extend(
                lines
                    .iter()
                    .filter(|line| self.selection.takes(line))
                    .map(|line| self.selection.framed(line)),
            );
            if !self.pending.is_empty() {
                continue;
            }
            if !open {
                // Drained after the last pump closed: the process is gone.
                return None;
            }
            // A closed store (the container record gone) ends the stream too.
            self.changes.changed().await.ok()?;
        }
    }
}
