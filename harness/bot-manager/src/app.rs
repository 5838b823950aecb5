//! The running service: shared state, startup checks, and serving until SIGTERM.

use std::sync::Arc;

use protocol::{MeetingStatus, Platform};
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::bus::{Bus, BusError};
use crate::config::Config;
use crate::containers::{Runtime, RuntimeError};
use crate::db::{self, DbError, Meeting};
use crate::profile::{Fixes, Profile, ProfileError};
use crate::transitions::{
    Applied, TransitionDetails, update_meeting_status, update_meeting_status_with,
};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub profile: Arc<Profile>,
    pub fixes: Fixes,
    pub pool: PgPool,
    pub bus: Bus,
    pub runtime: Runtime,
    /// Serialises "read the stored status, publish it" of each meeting (with
    /// `row_locks`).
    pub publish_turns: Arc<PublishTurns>,
    /// Wakes the durable stop worker for a stop due now (`durable_stop`).
    pub stop_jobs_due: Arc<tokio::sync::Notify>,
    /// This instance's name (`--instance`), recorded with its reconcile sweeps.
    pub instance: Arc<str>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("serve HTTP: {0}")]
    Serve(#[source] std::io::Error),
    #[error(transparent)]
    Profile(#[from] ProfileError),
}

impl AppState {
    /// Publishes a status on the meeting's status channel; failures are only logged, as
    /// in production.
    pub async fn publish_status(
        &self,
        meeting_id: i32,
        user_id: i32,
        platform: Platform,
        native_id: &str,
        status: MeetingStatus,
    ) {
        if let Err(err) = self
            .bus
            .publish_status(meeting_id, user_id, platform, native_id, status)
            .await
        {
            tracing::error!(meeting_id, user_id, %platform, native_id, %status, error = %err, "failed to publish status");
        }
    }

    /// Applies a status change under this profile's locking, and publishes it.
    pub async fn transition(
        &self,
        meeting_id: i32,
        to: MeetingStatus,
        details: TransitionDetails,
    ) -> Result<Applied, DbError> {
        let applied =
            update_meeting_status(&self.pool, meeting_id, to, details, self.fixes.row_locks)
                .await?;
        if let Applied::Changed(updated) = &applied {
            self.publish_applied(updated).await;
        }
        Ok(applied)
    }

    /// Like [`AppState::transition`], deciding the change from the row as read (under the
    /// row lock with `row_locks`).
    pub async fn transition_with(
        &self,
        meeting_id: i32,
        decide: impl FnOnce(&Meeting) -> Option<(MeetingStatus, TransitionDetails)>,
    ) -> Result<Applied, DbError> {
        let applied =
            update_meeting_status_with(&self.pool, meeting_id, decide, self.fixes.row_locks)
                .await?;
        if let Applied::Changed(updated) = &applied {
            self.publish_applied(updated).await;
        }
        Ok(applied)
    }

    /// Publishes the status a row now holds.
    /// With `row_locks`, what is published is the status the row holds when publishing,
    /// read again under its meeting's turn: two changes committed in one order could
    /// otherwise reach Redis in the other, and the last word must be the stored one.
    pub async fn publish_applied(&self, meeting: &Meeting) {
        let mut status = meeting.known_status();
        let _serial = if self.fixes.row_locks {
            let guard = self
                .publish_turns
                .of(meeting.user_id, &meeting.platform, meeting.native_id())
                .lock()
                .await;
            if let Ok(Some(now)) = db::current_status(&self.pool, meeting.id).await {
                status = now.parse().ok();
            }
            Some(guard)
        } else {
            None
        };
        if let (Some(platform), Some(status)) = (meeting.platform(), status) {
            self.publish_status(
                meeting.id,
                meeting.user_id,
                platform,
                meeting.native_id(),
                status,
            )
            .await;
        }
    }
}

/// Stripes of [`PublishTurns`]: meetings publishing at once rarely share one.
const PUBLISH_TURNS: usize = 1024;

/// Turns to publish a meeting's stored status, one per meeting key (user, platform,
/// native id: the key of the incident's status channel, which every row of a meeting
/// shares), striped over a fixed set of locks so that their number stays bounded. One
/// lock for every meeting made a thousand meetings' publications take turns: their bots
/// waited more than ten seconds for the answer to `joining`.
pub struct PublishTurns {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl PublishTurns {
    pub fn new(stripes: usize) -> PublishTurns {
        PublishTurns {
            stripes: (0..stripes.max(1))
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// The turn of one meeting key: always the same lock for the same key.
    pub fn of(&self, user_id: i32, platform: &str, native_id: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (user_id, platform, native_id).hash(&mut hasher);
        &self.stripes[(hasher.finish() % self.stripes.len() as u64) as usize]
    }
}

/// Connects to every dependency, applies the migrations, and serves until SIGTERM or
/// Ctrl-C. Prints `bot-manager listening on <addr>` once ready.
pub async fn run(config: Config) -> Result<(), StartupError> {
    let profile = match &config.profile_file {
        Some(path) => Profile::from_file(path)?,
        None => config.profile.clone(),
    }
    .with_switches(&config.fixes)?;
    let timeout = config.timers.dependency_timeout();
    let pool = db::connect(
        &config.database_url,
        timeout,
        config.work.database_pool_size,
    )
    .await?;
    db::MIGRATOR.run(&pool).await.map_err(DbError::from)?;
    let bus = Bus::connect(&config.redis_url, timeout, config.wire).await?;
    let runtime = Runtime::connect(
        config.docker_host.as_deref(),
        timeout,
        config.work.container_start_concurrency as usize,
    )?;
    match runtime.api_version().await {
        Ok(version) => tracing::info!(api_version = %version, "container runtime reachable"),
        Err(err) => tracing::warn!(error = %err, "container runtime not reachable yet"),
    }

    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartupError::Listen {
                addr: config.listen,
                source,
            })?;
    let addr = listener.local_addr().map_err(StartupError::Serve)?;
    let instance: Arc<str> = config.instance_name().into();
    let state = AppState {
        config: Arc::new(config),
        fixes: profile.fixes,
        profile: Arc::new(profile),
        pool,
        bus,
        runtime,
        publish_turns: Arc::new(PublishTurns::new(PUBLISH_TURNS)),
        stop_jobs_due: Arc::default(),
        instance,
    };
    tracing::info!(%addr, instance = %state.instance, profile = %state.profile, fixes = ?state.fixes, wire = ?state.config.wire, http = ?state.config.http, work = ?state.config.work, "bot-manager ready");
    let mut workers = crate::workers::spawn(&state);
    let limits = state.config.http.clone();
    println!("bot-manager listening on {addr}");
    crate::server::serve(listener, crate::api::router(state), &limits).await;
    workers.abort_all();
    tracing::info!("bot-manager stopped; scheduled container stops are dropped with it");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Pins "a thousand meetings' status publications took turns on one lock": with
    // `row_locks` every publication of every meeting waited for one mutex, so under a
    // thousand bots their callbacks (answered after the publication) took more than ten
    // seconds. Now a meeting waits only for its own key's turn.
    #[test]
    fn one_meetings_publish_turn_does_not_hold_up_another_meetings() {
        let turns = PublishTurns::new(PUBLISH_TURNS);
        let first = turns.of(1, "google_meet", "aaa-bbbb-ccc");
        let held = first.try_lock().expect("a free turn");
        assert!(
            std::ptr::eq(first, turns.of(1, "google_meet", "aaa-bbbb-ccc")),
            "the same key, the same turn"
        );
        assert!(first.try_lock().is_err(), "its own key waits");
        let others = (0..20)
            .map(|i| format!("aaa-bbbb-{i:03}"))
            .filter(|native| turns.of(1, "google_meet", native).try_lock().is_ok())
            .count();
        // Striped: of twenty other meetings, at most one may share the stripe by chance.
        assert!(others >= 19, "{others} of 20 other meetings could publish");
        drop(held);
    }
}
