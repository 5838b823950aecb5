//! HTTP routes: the public API (protocol.md section 4) and the internal callbacks
//! (section 5).

mod auth;
mod bots;
mod callbacks;
mod extract;
mod meetings;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};

use crate::app::AppState;

/// Request bodies are small JSON documents; anything larger is refused with 413.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(meetings::health))
        .route("/bots", post(bots::create_bot))
        .route("/bots/status", get(bots::running_bots))
        .route(
            "/bots/{platform}/{native_meeting_id}",
            delete(bots::stop_bot),
        )
        .route(
            "/bots/{platform}/{native_meeting_id}/config",
            put(bots::update_config),
        )
        .route("/meetings", get(meetings::list_meetings))
        .route(
            "/bots/internal/callback/status_change",
            post(callbacks::status_change),
        )
        .route("/bots/internal/callback/exited", post(callbacks::exited))
        .route(
            "/bots/internal/session_start",
            post(callbacks::session_start),
        )
        .method_not_allowed_fallback(meetings::method_not_allowed)
        .fallback(meetings::not_found)
        .layer(middleware::from_fn(run_to_completion))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// A request runs to its end even when its client goes away, as under uvicorn, which
/// does not cancel an endpoint whose client disconnected: a bot killed while its exit
/// callback waits on a slow database still gets its callback applied. (Hyper would drop
/// the handler mid-transaction instead, losing work production keeps.)
async fn run_to_completion(request: Request, next: Next) -> Response {
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(err) => {
            tracing::error!(error = %err, "request handler panicked");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
