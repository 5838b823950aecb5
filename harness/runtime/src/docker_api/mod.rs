//! The Docker Engine API subset: what the bot-manager (bollard), testcontainers and the
//! docker CLI use.

mod containers;
mod events;
pub(crate) mod filters;
mod images;
mod logs;
mod system;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post};

use crate::supervisor::Supervisor;

pub(crate) fn routes() -> Router<Arc<Supervisor>> {
    Router::new()
        .route("/_ping", get(system::ping))
        .route("/version", get(system::version))
        .route("/containers/create", post(containers::create))
        .route("/containers/json", get(containers::list))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}", delete(containers::remove))
        .route("/containers/{id}/logs", get(logs::logs))
        .route("/containers/{id}/pause", post(containers::pause))
        .route("/containers/{id}/unpause", post(containers::unpause))
        .route("/images/create", post(images::pull))
        .route("/images/{*name}", get(images::inspect))
        .route("/networks", get(images::networks))
        .route("/events", get(events::events))
}
