//! Rows and queries. Plain runtime queries: the schema lives in `fixtures/migrations`.

use chrono::{DateTime, SecondsFormat, Utc};
use protocol::{MeetingJson, MeetingStatus, Platform};
use serde_json::Value;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, FromRow, PgConnection};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../fixtures/migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("connect to Postgres: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("query Postgres: {0}")]
    Query(#[from] sqlx::Error),
}

pub async fn connect(
    url: &str,
    timeout: std::time::Duration,
    pool_size: u32,
) -> Result<PgPool, DbError> {
    PgPoolOptions::new()
        .max_connections(pool_size)
        .acquire_timeout(timeout)
        .connect(url)
        .await
        .map_err(DbError::Connect)
}

#[derive(Debug, Clone, FromRow)]
pub struct User {
    pub id: i32,
    pub max_concurrent_bots: i32,
}

#[derive(Debug, Clone, FromRow)]
pub struct Meeting {
    pub id: i32,
    pub user_id: i32,
    pub platform: String,
    pub platform_specific_id: Option<String>,
    pub status: String,
    pub bot_container_id: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub data: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const MEETING_COLUMNS: &str = "id, user_id, platform, platform_specific_id, status, \
    bot_container_id, start_time, end_time, data, created_at, updated_at";

impl Meeting {
    /// `None` for a value outside the status machine (production rows can hold `error`).
    pub fn known_status(&self) -> Option<MeetingStatus> {
        self.status.parse().ok()
    }

    pub fn platform(&self) -> Option<Platform> {
        self.platform.parse().ok()
    }

    pub fn native_id(&self) -> &str {
        self.platform_specific_id.as_deref().unwrap_or("")
    }

    pub fn stop_requested(&self) -> bool {
        self.data.get("stop_requested").and_then(Value::as_bool) == Some(true)
    }

    /// `data` as users may see it: without the callback secret's digest and binding.
    fn public_data(&self) -> Value {
        let mut data = self.data.clone();
        if let Value::Object(map) = &mut data {
            map.remove(crate::callback_auth::DATA_KEY);
        }
        data
    }

    pub fn to_json(&self) -> MeetingJson {
        let platform = self.platform().unwrap_or(Platform::GoogleMeet);
        let passcode = self.data.get("passcode").and_then(Value::as_str);
        MeetingJson {
            id: self.id.into(),
            user_id: self.user_id.into(),
            platform,
            native_meeting_id: self.native_id().to_owned(),
            constructed_meeting_url: Some(platform.meeting_url(self.native_id(), passcode)),
            status: self.status.clone(),
            bot_container_id: self.bot_container_id.clone(),
            start_time: self.start_time.map(rfc3339),
            end_time: self.end_time.map(rfc3339),
            data: self.public_data(),
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
        }
    }
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub async fn user_by_token(pool: &PgPool, token: &str) -> Result<Option<User>, DbError> {
    Ok(sqlx::query_as::<_, User>(
        "SELECT u.id, u.max_concurrent_bots FROM users u \
         JOIN api_tokens t ON t.user_id = u.id WHERE t.token = $1",
    )
    .bind(token)
    .fetch_optional(pool)
    .await?)
}

/// The latest row for a meeting key, whatever its status.
pub async fn latest_meeting(
    pool: &PgPool,
    user_id: i32,
    platform: Platform,
    native_id: &str,
) -> Result<Option<Meeting>, DbError> {
    Ok(sqlx::query_as::<_, Meeting>(AssertSqlSafe(format!(
        "SELECT {MEETING_COLUMNS} FROM meetings \
         WHERE user_id = $1 AND platform = $2 AND platform_specific_id = $3 \
         ORDER BY created_at DESC, id DESC LIMIT 1"
    )))
    .bind(user_id)
    .bind(platform.as_str())
    .bind(native_id)
    .fetch_optional(pool)
    .await?)
}

pub async fn meeting_by_id(
    conn: &mut PgConnection,
    id: i32,
    for_update: bool,
) -> Result<Option<Meeting>, DbError> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    Ok(sqlx::query_as::<_, Meeting>(AssertSqlSafe(format!(
        "SELECT {MEETING_COLUMNS} FROM meetings WHERE id = $1{lock}"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

pub async fn meetings_of_user(pool: &PgPool, user_id: i32) -> Result<Vec<Meeting>, DbError> {
    Ok(sqlx::query_as::<_, Meeting>(AssertSqlSafe(format!(
        "SELECT {MEETING_COLUMNS} FROM meetings WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
    )))
    .bind(user_id)
    .fetch_all(pool)
    .await?)
}

pub async fn meetings_by_ids(pool: &PgPool, ids: &[i32]) -> Result<Vec<Meeting>, DbError> {
    Ok(sqlx::query_as::<_, Meeting>(AssertSqlSafe(format!(
        "SELECT {MEETING_COLUMNS} FROM meetings WHERE id = ANY($1)"
    )))
    .bind(ids)
    .fetch_all(pool)
    .await?)
}

/// The meeting a session uid belongs to: how callbacks find their meeting.
pub async fn meeting_by_session_uid(
    pool: &PgPool,
    session_uid: &str,
) -> Result<Option<Meeting>, DbError> {
    Ok(sqlx::query_as::<_, Meeting>(AssertSqlSafe(format!(
        "SELECT {MEETING_COLUMNS} FROM meetings WHERE id = \
         (SELECT meeting_id FROM meeting_sessions WHERE session_uid = $1 \
          ORDER BY session_start_time DESC LIMIT 1)"
    )))
    .bind(session_uid)
    .fetch_optional(pool)
    .await?)
}

pub async fn running_count(pool: &PgPool, user_id: i32) -> Result<i64, DbError> {
    let running: Vec<&str> = protocol::MeetingStatus::ALL
        .into_iter()
        .filter(|s| s.counts_as_running())
        .map(|s| s.as_str())
        .collect();
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM meetings WHERE user_id = $1 AND status = ANY($2)")
            .bind(user_id)
            .bind(&running)
            .fetch_one(pool)
            .await?,
    )
}

pub async fn insert_meeting(
    pool: &PgPool,
    user_id: i32,
    platform: Platform,
    native_id: &str,
    data: &Value,
) -> Result<Meeting, DbError> {
    Ok(sqlx::query_as::<_, Meeting>(AssertSqlSafe(format!(
        "INSERT INTO meetings (user_id, platform, platform_specific_id, status, data) \
         VALUES ($1, $2, $3, 'requested', $4) RETURNING {MEETING_COLUMNS}"
    )))
    .bind(user_id)
    .bind(platform.as_str())
    .bind(native_id)
    .bind(data)
    .fetch_one(pool)
    .await?)
}

pub async fn set_container_id(
    pool: &PgPool,
    id: i32,
    container_id: &str,
) -> Result<Meeting, DbError> {
    Ok(sqlx::query_as::<_, Meeting>(AssertSqlSafe(format!(
        "UPDATE meetings SET bot_container_id = $2, updated_at = now() WHERE id = $1 \
         RETURNING {MEETING_COLUMNS}"
    )))
    .bind(id)
    .bind(container_id)
    .fetch_one(pool)
    .await?)
}

/// Writes a raw status outside the status machine, as production does with `error`
/// after a failed container start.
pub async fn set_raw_status(pool: &PgPool, id: i32, status: &str) -> Result<(), DbError> {
    sqlx::query("UPDATE meetings SET status = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(status)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn set_data_flag(pool: &PgPool, id: i32, key: &str, value: Value) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE meetings SET data = jsonb_set(data, ARRAY[$2], $3, true), updated_at = now() \
         WHERE id = $1",
    )
    .bind(id)
    .bind(key)
    .bind(value)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a stop on a live row (`stop_requested`, and `stop_deadline` when given) unless
/// one is on record already; answers whether this call recorded it. One conditional
/// write: a concurrent one waits for this row's lock and then finds the stop there, so
/// exactly one of several concurrent claims succeeds.
pub async fn claim_stop(pool: &PgPool, id: i32, deadline: Option<&str>) -> Result<bool, DbError> {
    let mut record = serde_json::json!({"stop_requested": true});
    if let Some(deadline) = deadline {
        record["stop_deadline"] = Value::from(deadline);
    }
    let done = sqlx::query(
        "UPDATE meetings SET data = data || $2, updated_at = now() \
         WHERE id = $1 AND status NOT IN ('completed', 'failed') \
         AND (data -> 'stop_requested') IS DISTINCT FROM 'true'::jsonb",
    )
    .bind(id)
    .bind(record)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Inserts a session row; a repeated (meeting, uid) is ignored.
pub async fn insert_session(
    pool: &PgPool,
    meeting_id: i32,
    session_uid: &str,
    start: Option<DateTime<Utc>>,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "INSERT INTO meeting_sessions (meeting_id, session_uid, session_start_time) \
         VALUES ($1, $2, COALESCE($3, now())) ON CONFLICT (meeting_id, session_uid) DO NOTHING",
    )
    .bind(meeting_id)
    .bind(session_uid)
    .bind(start)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Legacy's leave target: the session with the earliest `session_start_time`.
pub async fn earliest_session_uid(
    pool: &PgPool,
    meeting_id: i32,
) -> Result<Option<String>, DbError> {
    session_uid_ordered(pool, meeting_id, "ASC").await
}

/// `update_bot_config`'s fallback target: the latest session.
pub async fn latest_session_uid(pool: &PgPool, meeting_id: i32) -> Result<Option<String>, DbError> {
    session_uid_ordered(pool, meeting_id, "DESC").await
}

async fn session_uid_ordered(
    pool: &PgPool,
    meeting_id: i32,
    order: &str,
) -> Result<Option<String>, DbError> {
    Ok(sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT session_uid FROM meeting_sessions WHERE meeting_id = $1 \
         ORDER BY session_start_time {order}, id {order} LIMIT 1"
    )))
    .bind(meeting_id)
    .fetch_optional(pool)
    .await?)
}

pub async fn meeting_exists(pool: &PgPool, id: i32) -> Result<bool, DbError> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM meetings WHERE id = $1)")
            .bind(id)
            .fetch_one(pool)
            .await?,
    )
}

/// Every non-terminal row of a meeting key, latest first.
pub async fn live_rows(
    pool: &PgPool,
    user_id: i32,
    platform: Platform,
    native_id: &str,
) -> Result<Vec<Meeting>, DbError> {
    Ok(sqlx::query_as::<_, Meeting>(AssertSqlSafe(format!(
        "SELECT {MEETING_COLUMNS} FROM meetings \
         WHERE user_id = $1 AND platform = $2 AND platform_specific_id = $3 \
         AND status NOT IN ('completed', 'failed') ORDER BY created_at DESC, id DESC"
    )))
    .bind(user_id)
    .bind(platform.as_str())
    .bind(native_id)
    .fetch_all(pool)
    .await?)
}

/// Every row not completed or failed (any user), for the reconcile sweep.
/// When the oldest meeting that is not terminal was created, if any.
pub async fn oldest_live_meeting(pool: &PgPool) -> Result<Option<DateTime<Utc>>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT min(created_at) FROM meetings WHERE status NOT IN ('completed', 'failed')",
    )
    .fetch_one(pool)
    .await?)
}

/// What the reconcile sweep reads of a row that is not terminal: its status and its stop,
/// not its whole `data` (a thousand audit lists, every sweep, were most of what it read).
#[derive(Debug, Clone, FromRow)]
pub struct SweepRow {
    pub id: i32,
    pub status: String,
    pub stop_requested: bool,
    pub stop_deadline: Option<String>,
}

impl SweepRow {
    pub fn known_status(&self) -> Option<MeetingStatus> {
        self.status.parse().ok()
    }
}

pub async fn non_terminal_meetings(pool: &PgPool) -> Result<Vec<SweepRow>, DbError> {
    Ok(sqlx::query_as::<_, SweepRow>(
        "SELECT id, status, \
                COALESCE(data -> 'stop_requested' = 'true'::jsonb, false) AS stop_requested, \
                data ->> 'stop_deadline' AS stop_deadline \
         FROM meetings WHERE status NOT IN ('completed', 'failed') ORDER BY id",
    )
    .fetch_all(pool)
    .await?)
}

#[derive(Debug, Clone, FromRow)]
pub struct StopJob {
    pub id: i32,
    pub meeting_id: i32,
    pub container: String,
    pub attempts: i32,
}

/// The most attempts a durable stop gets before it gives up (and says so in the row).
pub const STOP_JOB_ATTEMPTS: i32 = 5;

pub async fn insert_stop_job(
    pool: &PgPool,
    meeting_id: i32,
    container: &str,
    delay: std::time::Duration,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO stop_jobs (meeting_id, container, due_at) \
         VALUES ($1, $2, now() + make_interval(secs => $3))",
    )
    .bind(meeting_id)
    .bind(container)
    .bind(delay.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// Claims up to `batch` due stops, the earliest first: each claim pushes `due_at` forward
/// as a lease (so another instance, or this one after a crash, retries it later) and
/// counts the attempt.
pub async fn claim_stop_jobs(
    pool: &PgPool,
    lease: std::time::Duration,
    batch: u32,
) -> Result<Vec<StopJob>, DbError> {
    Ok(sqlx::query_as::<_, StopJob>(
        "UPDATE stop_jobs SET attempts = attempts + 1, due_at = now() + make_interval(secs => $1) \
         WHERE id IN (SELECT id FROM stop_jobs WHERE done_at IS NULL AND due_at <= now() \
                      ORDER BY due_at FOR UPDATE SKIP LOCKED LIMIT $2) \
         RETURNING id, meeting_id, container, attempts",
    )
    .bind(lease.as_secs_f64())
    .bind(i64::from(batch))
    .fetch_all(pool)
    .await?)
}

pub async fn finish_stop_job(pool: &PgPool, id: i32, error: Option<&str>) -> Result<(), DbError> {
    sqlx::query("UPDATE stop_jobs SET done_at = now(), last_error = $2 WHERE id = $1")
        .bind(id)
        .bind(error)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn fail_stop_job(pool: &PgPool, id: i32, error: &str) -> Result<(), DbError> {
    sqlx::query("UPDATE stop_jobs SET last_error = $2 WHERE id = $1")
        .bind(id)
        .bind(error)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn current_status(pool: &PgPool, id: i32) -> Result<Option<String>, DbError> {
    Ok(
        sqlx::query_scalar("SELECT status FROM meetings WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?,
    )
}
