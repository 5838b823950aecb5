//! What the production system does outside the bot-manager, for a service that lacks
//! it: the transcription collector, which writes a `meeting_sessions` row (an upsert
//! keyed by meeting and session uid, stamped with the client's time) for every
//! (re)connect a bot reports. The bots of a run whose adapter says
//! `session_start = "harness"` report to this server instead of the service.

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

/// The stand-in, serving until dropped.
pub struct SessionStandin {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SessionStandin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug, Deserialize)]
struct SessionStart {
    meeting_id: i64,
    session_uid: String,
    session_start_time: String,
}

/// Serves `POST /bots/internal/session_start` on a free loopback port, writing into the
/// run's database through `pool`.
pub async fn start(pool: sqlx::PgPool) -> std::io::Result<SessionStandin> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/bots/internal/session_start", post(session_start))
        .with_state(pool);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(SessionStandin { addr, task })
}

async fn session_start(
    State(pool): State<sqlx::PgPool>,
    body: Result<Json<SessionStart>, axum::extract::rejection::JsonRejection>,
) -> (StatusCode, Json<Value>) {
    let Json(s) = match body {
        Ok(body) => body,
        Err(err) => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"detail": err.body_text()})),
            );
        }
    };
    let written = sqlx::query(
        "INSERT INTO meeting_sessions (meeting_id, session_uid, session_start_time) \
         VALUES ($1, $2, $3::timestamptz) \
         ON CONFLICT (meeting_id, session_uid) \
         DO UPDATE SET session_start_time = EXCLUDED.session_start_time",
    )
    .bind(i32::try_from(s.meeting_id).unwrap_or(-1))
    .bind(&s.session_uid)
    .bind(&s.session_start_time)
    .execute(&pool)
    .await;
    match written {
        Ok(_) => (
            StatusCode::CREATED,
            Json(json!({"status": "recorded", "meeting_id": s.meeting_id})),
        ),
        // A meeting that does not exist (the foreign key), or a time Postgres cannot
        // read: the collector answers with an error and writes nothing.
        Err(err) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"detail": format!("failed to record the session: {err}")})),
        ),
    }
}
