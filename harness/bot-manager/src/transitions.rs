//! Applying a status change: validate it against the status machine, append it to the
//! `status_transition` audit list, set the fields that go with it, and commit.

use chrono::Utc;
use protocol::{CompletionReason, FailureStage, MeetingStatus};
use serde_json::{Map, Value, json};
use sqlx::PgPool;

use crate::db::{self, DbError, Meeting};

/// What a transition records beside the new status.
#[derive(Debug, Clone, Default)]
pub struct TransitionDetails {
    /// Who caused it: a path production has (`bot_callback`, `exit_callback`,
    /// `stop_request`), recorded in the audit entry as production labels the transition
    /// (see [`production_source`]), or a fix's own mechanism (`finalizer`, `reconcile`,
    /// `runtime_exit`, `container_start`), recorded by that name.
    pub source: &'static str,
    pub reason: Option<String>,
    pub completion_reason: Option<CompletionReason>,
    pub failure_stage: Option<FailureStage>,
    pub error_details: Option<Value>,
    pub exit_code: Option<i32>,
    /// `active` overwrites `bot_container_id` with what the bot reports (its name).
    pub container_id: Option<String>,
    /// Further keys written into `meetings.data` with the change (`stop_requested`, ...).
    pub data: Vec<(&'static str, Value)>,
    /// The change comes from a `status_change` callback, whose audit entry production
    /// writes without the bot's `reason` and `exit_code` (they still reach `last_error`).
    pub from_status_change: bool,
    /// A fix's own word in the audit entry's `reason` (stop dominance says what the bot
    /// reported), written whatever the entry's shape.
    pub note: Option<String>,
}

/// The audit entry's `source` as production writes it: every transition to `stopping`
/// or `completed` is `user` (production assumes the stop API caused it, whoever did),
/// the bot's progress and any failure `bot_callback`.
pub fn production_source(to: MeetingStatus) -> &'static str {
    if matches!(to, MeetingStatus::Stopping | MeetingStatus::Completed) {
        "user"
    } else {
        "bot_callback"
    }
}

fn audit_source(details: &TransitionDetails, to: MeetingStatus) -> &'static str {
    match details.source {
        "bot_callback" | "exit_callback" | "stop_request" => production_source(to),
        own => own,
    }
}

/// The outcome of an attempted status change.
#[derive(Debug)]
pub enum Applied {
    Changed(Meeting),
    /// Not allowed by the status machine (or the row holds a status outside it); the
    /// row is untouched. Carries the row as read.
    Rejected(Meeting),
    Missing,
}

/// Applies `to` if the status machine allows it. Legacy (`row_locks` off) reads the row,
/// validates and writes with no lock, so two callbacks can interleave and the later write
/// wins (its audit list lacks the other's entry). With `row_locks`, the read and the
/// write happen in one transaction under `SELECT ... FOR UPDATE`.
pub async fn update_meeting_status(
    pool: &PgPool,
    meeting_id: i32,
    to: MeetingStatus,
    details: TransitionDetails,
    row_locks: bool,
) -> Result<Applied, DbError> {
    update_meeting_status_with(pool, meeting_id, |_| Some((to, details)), row_locks).await
}

/// Like [`update_meeting_status`], with the change decided from the row as read (under
/// the lock, with `row_locks`): `decide` answers `None` to leave the row alone.
pub async fn update_meeting_status_with(
    pool: &PgPool,
    meeting_id: i32,
    decide: impl FnOnce(&Meeting) -> Option<(MeetingStatus, TransitionDetails)>,
    row_locks: bool,
) -> Result<Applied, DbError> {
    let mut tx = pool.begin().await?;
    let Some(meeting) = db::meeting_by_id(&mut tx, meeting_id, row_locks).await? else {
        return Ok(Applied::Missing);
    };
    let Some((to, details)) = decide(&meeting) else {
        return Ok(Applied::Rejected(meeting));
    };
    if !row_locks {
        // Legacy: nothing holds the row between this read and the write below.
        tx.commit().await?;
        let mut conn = pool.acquire().await?;
        return apply(&mut conn, meeting, to, details).await;
    }
    let applied = apply(&mut tx, meeting, to, details).await?;
    tx.commit().await?;
    Ok(applied)
}

async fn apply(
    conn: &mut sqlx::PgConnection,
    meeting: Meeting,
    to: MeetingStatus,
    details: TransitionDetails,
) -> Result<Applied, DbError> {
    let meeting_id = meeting.id;
    let Some(from) = meeting.known_status() else {
        tracing::warn!(meeting_id, status = %meeting.status, %to, "status outside the status machine; transition rejected");
        return Ok(Applied::Rejected(meeting));
    };
    if !from.can_transition_to(to) {
        tracing::warn!(meeting_id, %from, %to, "illegal transition rejected");
        return Ok(Applied::Rejected(meeting));
    }

    let now = Utc::now();
    let data = next_data(&meeting.data, from, to, &details, &db::rfc3339(now));
    // Only the columns this change sets are written, as the ORM of the production service
    // does: a stale read must not undo a concurrent write of another column (the
    // container id stored by POST while the bot's first callback is handled).
    let start_time = (to == MeetingStatus::Active).then_some(now);
    let end_time = to.is_terminal().then_some(now);

    let updated = sqlx::query_as::<_, Meeting>(
        "UPDATE meetings SET status = $2, data = $3, start_time = COALESCE($4, start_time), \
         end_time = COALESCE($5, end_time), bot_container_id = COALESCE($6, bot_container_id), \
         updated_at = now() WHERE id = $1 \
         RETURNING id, user_id, platform, platform_specific_id, status, bot_container_id, \
         start_time, end_time, data, created_at, updated_at",
    )
    .bind(meeting_id)
    .bind(to.as_str())
    .bind(&data)
    .bind(start_time)
    .bind(end_time)
    .bind(details.container_id.clone())
    .fetch_one(&mut *conn)
    .await?;
    tracing::info!(meeting_id, %from, %to, source = details.source, "status changed");
    Ok(Applied::Changed(updated))
}

fn next_data(
    data: &Value,
    from: MeetingStatus,
    to: MeetingStatus,
    details: &TransitionDetails,
    timestamp: &str,
) -> Value {
    let mut data = match data {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let mut entry = Map::new();
    entry.insert("from".into(), json!(from));
    entry.insert("to".into(), json!(to));
    entry.insert("timestamp".into(), json!(timestamp));
    entry.insert("source".into(), json!(audit_source(details, to)));
    let reported = (!details.from_status_change).then_some(());
    let reason = details
        .note
        .as_ref()
        .or(reported.and(details.reason.as_ref()));
    if let Some(reason) = reason {
        entry.insert("reason".into(), json!(reason));
    }
    if let Some(exit_code) = reported.and(details.exit_code) {
        entry.insert("exit_code".into(), json!(exit_code));
    }
    match to {
        MeetingStatus::Completed => {
            if let Some(reason) = details.completion_reason {
                entry.insert("completion_reason".into(), json!(reason));
                data.insert("completion_reason".into(), json!(reason));
            }
        }
        MeetingStatus::Failed => {
            if let Some(stage) = details.failure_stage {
                entry.insert("failure_stage".into(), json!(stage));
                data.insert("failure_stage".into(), json!(stage));
            }
            if let Some(err) = &details.error_details {
                data.insert("error_details".into(), err.clone());
            }
            data.insert(
                "last_error".into(),
                json!({
                    "exit_code": details.exit_code,
                    "reason": details.reason,
                    "timestamp": timestamp,
                    "error_details": details.error_details,
                }),
            );
        }
        _ => {}
    }
    for (key, value) in &details.data {
        data.insert((*key).to_owned(), value.clone());
    }
    let transitions = data
        .entry("status_transition")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !transitions.is_array() {
        *transitions = Value::Array(Vec::new());
    }
    if let Value::Array(list) = transitions {
        list.push(Value::Object(entry));
    }
    Value::Object(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_list_is_appended_not_replaced() {
        let details = TransitionDetails {
            source: "bot_callback",
            ..Default::default()
        };
        let first = next_data(
            &json!({}),
            MeetingStatus::Requested,
            MeetingStatus::Joining,
            &details,
            "t1",
        );
        let second = next_data(
            &first,
            MeetingStatus::Joining,
            MeetingStatus::AwaitingAdmission,
            &details,
            "t2",
        );
        let list = second["status_transition"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["to"], "joining");
        assert_eq!(list[1]["from"], "joining");
    }

    #[test]
    fn completed_records_its_reason_in_data_and_audit() {
        let details = TransitionDetails {
            source: "bot_callback",
            completion_reason: Some(CompletionReason::Stopped),
            ..Default::default()
        };
        let data = next_data(
            &json!({"passcode": "x"}),
            MeetingStatus::Active,
            MeetingStatus::Completed,
            &details,
            "t",
        );
        assert_eq!(data["completion_reason"], "stopped");
        assert_eq!(data["status_transition"][0]["completion_reason"], "stopped");
        assert_eq!(data["passcode"], "x");
    }

    // Pins production's audit entry of a terminal `status_change` (protocol.md section
    // 11): `{from, to, timestamp, source: "user", completion_reason}`, no reason or
    // exit_code, while `/exited` keeps both.
    #[test]
    fn status_change_completion_is_audited_as_production_writes_it() {
        let details = TransitionDetails {
            source: "bot_callback",
            completion_reason: Some(CompletionReason::Stopped),
            reason: Some("self_initiated_leave".into()),
            exit_code: Some(0),
            from_status_change: true,
            ..Default::default()
        };
        let data = next_data(
            &json!({}),
            MeetingStatus::Active,
            MeetingStatus::Completed,
            &details,
            "t",
        );
        assert_eq!(
            data["status_transition"][0],
            json!({"from": "active", "to": "completed", "timestamp": "t", "source": "user", "completion_reason": "stopped"})
        );
        let exited = TransitionDetails {
            source: "exit_callback",
            from_status_change: false,
            ..details
        };
        let data = next_data(
            &json!({}),
            MeetingStatus::Active,
            MeetingStatus::Completed,
            &exited,
            "t",
        );
        assert_eq!(data["status_transition"][0]["source"], "user");
        assert_eq!(
            data["status_transition"][0]["reason"],
            "self_initiated_leave"
        );
        assert_eq!(data["status_transition"][0]["exit_code"], 0);
    }

    #[test]
    fn production_labels_stops_and_completions_user_and_the_rest_bot_callback() {
        use MeetingStatus::*;
        for (to, want) in [
            (Stopping, "user"),
            (Completed, "user"),
            (Joining, "bot_callback"),
            (AwaitingAdmission, "bot_callback"),
            (Active, "bot_callback"),
            (Failed, "bot_callback"),
        ] {
            assert_eq!(production_source(to), want, "to {to}");
        }
    }

    #[test]
    fn failed_records_last_error() {
        let details = TransitionDetails {
            source: "exit_callback",
            failure_stage: Some(FailureStage::Active),
            exit_code: Some(2),
            reason: Some("crash".into()),
            ..Default::default()
        };
        let data = next_data(
            &json!({}),
            MeetingStatus::Active,
            MeetingStatus::Failed,
            &details,
            "t",
        );
        assert_eq!(data["last_error"]["exit_code"], 2);
        assert_eq!(data["failure_stage"], "active");
    }
}
