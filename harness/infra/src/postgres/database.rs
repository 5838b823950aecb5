use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection};

use super::PostgresServer;
use crate::InfraError;
use crate::error::chain;
use crate::owner::Owner;

/// Test databases are named `stopflow_t_<pid>_<rand>`.
pub(crate) const DB_PREFIX: &str = "stopflow_t_";
/// Bounds each admin connection and statement: a hang guard, not a timing expectation.
const SQL_DEADLINE: Duration = Duration::from_secs(30);

/// A database of its own for one test or run, dropped (`WITH (FORCE)`) on drop.
///
/// Its comment records the creating process, so a later run can drop it if this process
/// dies first (see [`crate::sweep`]).
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
    /// Set once the database is gone, so drop has nothing left to do.
    dropped: bool,
}

impl TestDatabase {
    pub async fn create(server: &PostgresServer) -> Result<Self, InfraError> {
        crate::sweep::sweep_leftovers_once();
        // A fresh throwaway server has no leftovers; an external one may.
        if !server.is_throwaway()
            && !server.swept.swap(true, Ordering::SeqCst)
            && let Err(err) = crate::sweep::sweep_databases(server).await
        {
            tracing::warn!("failed to {}", chain(&err));
        }

        let admin_url = server.admin_url().to_owned();
        let name = format!(
            "{DB_PREFIX}{}_{:012x}",
            std::process::id(),
            rand::random::<u64>() >> 16
        );
        let url = with_database(&admin_url, &name)?;
        let mut conn = connect(&admin_url).await?;
        let create = format!("CREATE DATABASE \"{name}\"");
        sql(
            &mut conn,
            &admin_url,
            format!("create database {name}"),
            create,
        )
        .await?;
        let database = Self {
            name,
            url,
            admin_url,
            dropped: false,
        };
        let owner = Owner::current().to_string().replace('\'', "''");
        let comment = format!("COMMENT ON DATABASE \"{}\" IS '{owner}'", database.name);
        let action = format!("record the owner of database {}", database.name);
        sql(&mut conn, &database.admin_url, action, comment).await?;
        let _ = conn.close().await;
        Ok(database)
    }

    /// A URL to this database (same server and credentials as the admin URL).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database now, reporting failure (drop only logs it).
    pub async fn destroy(mut self) -> Result<(), InfraError> {
        self.dropped = true;
        drop_database(&self.admin_url, &self.name).await
    }
}

impl fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestDatabase")
            .field("name", &self.name)
            .field("url", &redact(&self.url))
            .finish_non_exhaustive()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Drop may run inside a runtime (cannot block on it) or outside one (cannot use
        // it): a fresh thread with its own runtime works in both.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let outcome = std::thread::Builder::new()
            .name("infra-drop-db".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|err| format!("build a runtime: {err}"))?;
                runtime
                    .block_on(drop_database(&admin_url, &name))
                    .map_err(|err| chain(&err))
            })
            .map_err(|err| format!("spawn a thread: {err}"))
            .and_then(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|_| Err("the dropping thread panicked".to_owned()))
            });
        if let Err(reason) = outcome {
            tracing::warn!(database = %self.name, "failed to drop test database: {reason}");
        }
    }
}

pub(crate) async fn drop_database(admin_url: &str, name: &str) -> Result<(), InfraError> {
    let mut conn = connect(admin_url).await?;
    let statement = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    sql(
        &mut conn,
        admin_url,
        format!("drop database {name}"),
        statement,
    )
    .await?;
    let _ = conn.close().await;
    Ok(())
}

pub(crate) async fn connect(url: &str) -> Result<PgConnection, InfraError> {
    let action = "connect".to_owned();
    match tokio::time::timeout(SQL_DEADLINE, PgConnection::connect(url)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(source)) => Err(InfraError::Sql {
            action,
            server: redact(url),
            source,
        }),
        Err(_) => Err(InfraError::SqlTimeout {
            action,
            server: redact(url),
            deadline: SQL_DEADLINE,
        }),
    }
}

/// Runs one statement built by this crate (identifiers are generated, never user input).
pub(crate) async fn sql(
    conn: &mut PgConnection,
    url: &str,
    action: String,
    statement: String,
) -> Result<(), InfraError> {
    let run = sqlx::raw_sql(AssertSqlSafe(statement)).execute(&mut *conn);
    match tokio::time::timeout(SQL_DEADLINE, run).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(source)) => Err(InfraError::Sql {
            action,
            server: redact(url),
            source,
        }),
        Err(_) => Err(InfraError::SqlTimeout {
            action,
            server: redact(url),
            deadline: SQL_DEADLINE,
        }),
    }
}

/// `url` pointing at database `name` instead.
fn with_database(url: &str, name: &str) -> Result<String, InfraError> {
    let mut parsed = url::Url::parse(url).map_err(|err| InfraError::InvalidUrl {
        url: redact(url),
        reason: err.to_string(),
    })?;
    parsed.set_path(&format!("/{name}"));
    Ok(parsed.into())
}

/// `url` without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.into()
        }
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_replaces_only_the_path() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/test?sslmode=disable", "other").unwrap(),
            "postgres://u:p@h:5432/other?sslmode=disable"
        );
        assert_eq!(
            with_database("postgresql://h", "other").unwrap(),
            "postgresql://h/other"
        );
    }

    #[test]
    fn redact_hides_the_password_and_keeps_the_rest() {
        assert_eq!(
            redact("postgres://u:secret@h:1/db"),
            "postgres://u:***@h:1/db"
        );
        assert_eq!(redact("postgres://u@h:1/db"), "postgres://u@h:1/db");
    }
}
