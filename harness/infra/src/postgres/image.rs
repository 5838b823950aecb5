//! `stopflow-postgres`: the PostgreSQL server as a container's process, for the
//! `runtime`'s image map, with as much of the official `postgres` image's interface as
//! testcontainers and `docker run -e POSTGRES_PASSWORD=... -p 5432 postgres` use.
//!
//! It starts from a copy of the cached `initdb` (as a throwaway server does), runs
//! `postgres` as the `postgres` user (when it runs as root) in the foreground on the
//! given port of 127.0.0.1, its log on stderr as the image's server logs; then creates
//! the `POSTGRES_USER` and `POSTGRES_DB` asked for, and only then prints on stdout the
//! line the image prints when its initialisation is over, `database system is ready to
//! accept connections` (testcontainers waits for it on both streams). SIGTERM or SIGINT
//! stops the server (a fast shutdown) and removes its files; a killed one's are swept
//! by the next run, as a throwaway server's.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use super::server::{Prepared, RunAs, SERVER_SETTINGS, accepts_connections};
use crate::InfraError;
use crate::process::{POLL_INTERVAL, die_with_parent_in_group};

/// The line the official image prints on stdout once it is initialised, and the server
/// on stderr once it accepts connections.
pub const READY_LINE: &str = "database system is ready to accept connections";
/// A hang guard on the server's start (crash recovery included).
const READY_DEADLINE: Duration = Duration::from_secs(60);

/// The command line: `--port P` and Postgres's own `-c name=value`, repeatable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageArgs {
    pub port: u16,
    pub settings: Vec<String>,
}

impl ImageArgs {
    /// Reads the arguments after the program name; the error names what is wrong.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut port = None;
        let mut settings = Vec::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
            match arg.as_str() {
                "--port" | "-p" => {
                    let text = value(&arg)?;
                    port = Some(text.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                        format!("--port {text:?} is not a port number from 1 to 65535")
                    })?);
                }
                "-c" => {
                    let setting = value("-c")?;
                    if !setting.contains('=') {
                        return Err(format!("-c {setting:?} is not name=value"));
                    }
                    settings.push(setting);
                }
                other => {
                    return Err(format!(
                        "unknown argument {other:?} (expected --port P and -c name=value)"
                    ));
                }
            }
        }
        Ok(ImageArgs {
            port: port.ok_or("--port is missing")?,
            settings,
        })
    }
}

/// What the official image reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEnv {
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    /// `trust`, or the method for TCP connections (`scram-sha-256`, `md5`, `password`).
    pub auth: String,
}

impl ImageEnv {
    /// As the official image: `POSTGRES_USER` (postgres), `POSTGRES_DB` (the user's
    /// name), `POSTGRES_PASSWORD`, and `POSTGRES_HOST_AUTH_METHOD` (scram-sha-256); a
    /// password or `trust` is required.
    pub fn read(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let set = |name| var(name).filter(|v| !v.is_empty());
        let user = set("POSTGRES_USER").unwrap_or_else(|| "postgres".to_owned());
        let database = set("POSTGRES_DB").unwrap_or_else(|| user.clone());
        let password = set("POSTGRES_PASSWORD");
        let auth = set("POSTGRES_HOST_AUTH_METHOD").unwrap_or_else(|| "scram-sha-256".to_owned());
        if !matches!(
            auth.as_str(),
            "trust" | "scram-sha-256" | "md5" | "password"
        ) {
            return Err(format!(
                "POSTGRES_HOST_AUTH_METHOD={auth:?} is not one of trust, scram-sha-256, md5, password"
            ));
        }
        if password.is_none() && auth != "trust" {
            // The official image's refusal, in short.
            return Err(
                "Database is uninitialized and superuser password is not specified: set \
                 POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust to allow all \
                 connections without a password"
                    .to_owned(),
            );
        }
        for (name, value) in [("POSTGRES_USER", &user), ("POSTGRES_DB", &database)] {
            if value.contains(['"', '\0']) {
                return Err(format!("{name}={value:?} holds a double quote or NUL"));
            }
        }
        Ok(ImageEnv {
            user,
            password,
            database,
            auth,
        })
    }
}

/// Runs the server until it exits or is told to stop; answers the exit code.
pub fn run(args: &ImageArgs, env: &ImageEnv) -> Result<i32, InfraError> {
    let Prepared {
        bins,
        user,
        dir,
        data,
        ..
    } = Prepared::new()?;
    let hba = data.join("pg_hba.conf");
    let method = &env.auth;
    // The socket is the image's own door (as `local ... trust` in the official image);
    // TCP takes the method asked for.
    let rules = format!(
        "local all all trust\nhost all all 127.0.0.1/32 {method}\nhost all all ::1/128 {method}\n"
    );
    std::fs::write(&hba, rules).map_err(|source| InfraError::Io {
        action: "write",
        path: hba.clone(),
        source,
    })?;
    user.give(&hba)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| InfraError::Io {
            action: "start an async runtime in",
            path: dir.path().to_owned(),
            source,
        })?;
    let code = runtime.block_on(serve(&bins.postgres, &user, dir.path(), args, env))?;
    drop(runtime);
    drop(dir);
    Ok(code)
}

async fn serve(
    postgres: &Path,
    user: &RunAs,
    dir: &Path,
    args: &ImageArgs,
    env: &ImageEnv,
) -> Result<i32, InfraError> {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = |kind| {
        signal(kind).map_err(|source| InfraError::Io {
            action: "install a signal handler in",
            path: dir.to_owned(),
            source,
        })
    };
    let (mut terminate, mut interrupt) = (
        signals(SignalKind::terminate())?,
        signals(SignalKind::interrupt())?,
    );
    let data = dir.join("data");
    let mut command = std::process::Command::new(postgres);
    command
        .arg("-D")
        .arg(&data)
        .arg("-k")
        .arg(dir.join("socket"))
        .args(["-p", &args.port.to_string()])
        .args(SERVER_SETTINGS.iter().flat_map(|s| ["-c", s]))
        // The caller's settings after, as later `-c`s win.
        .args(args.settings.iter().flat_map(|s| ["-c", s.as_str()]))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    user.apply(&mut command);
    die_with_parent_in_group(&mut command);
    let mut child = tokio::process::Command::from(command)
        .spawn()
        .map_err(|source| InfraError::Spawn {
            program: postgres.display().to_string(),
            source,
        })?;
    let pid = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .unwrap_or(0);
    let stop = |child_pid: i32| {
        // A fast shutdown: the clients are cut off, nothing is kept.
        let _ = kill(Pid::from_raw(child_pid), Signal::SIGINT);
    };

    let lock_file = data.join("postmaster.pid");
    let deadline = tokio::time::Instant::now() + READY_DEADLINE;
    let ready = loop {
        if accepts_connections(&lock_file) {
            break true;
        }
        if tokio::time::Instant::now() >= deadline {
            break false;
        }
        tokio::select! {
            status = child.wait() => return Ok(exit_code(status)),
            _ = terminate.recv() => { stop(pid); return Ok(exit_code(child.wait().await)); }
            _ = interrupt.recv() => { stop(pid); return Ok(exit_code(child.wait().await)); }
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    };
    if !ready {
        eprintln!(
            "stopflow-postgres: the server did not accept connections within {READY_DEADLINE:?}"
        );
        stop(pid);
        let _ = child.wait().await;
        return Ok(1);
    }
    if let Err(err) = create_user_and_database(&dir.join("socket"), args.port, env).await {
        eprintln!("stopflow-postgres: failed to {}", crate::error::chain(&err));
        stop(pid);
        let _ = child.wait().await;
        return Ok(1);
    }
    println!(
        "stopflow-postgres: {READY_LINE} (user {}, database {}, 127.0.0.1:{})",
        env.user, env.database, args.port
    );
    tokio::select! {
        status = child.wait() => Ok(exit_code(status)),
        _ = terminate.recv() => { stop(pid); Ok(exit_code(child.wait().await)) }
        _ = interrupt.recv() => { stop(pid); Ok(exit_code(child.wait().await)) }
    }
}

fn exit_code(status: std::io::Result<std::process::ExitStatus>) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(status) => status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        Err(_) => 1,
    }
}

/// The `POSTGRES_USER` (a superuser with the password, if any) and `POSTGRES_DB`, made
/// through the server's socket as the `postgres` superuser.
async fn create_user_and_database(
    socket: &Path,
    port: u16,
    env: &ImageEnv,
) -> Result<(), InfraError> {
    let server = format!("the server on {}", socket.display());
    let options = PgConnectOptions::new()
        .socket(socket)
        .port(port)
        .username("postgres")
        .database("postgres");
    let sql_error = |action: String| {
        let server = server.clone();
        move |source| InfraError::Sql {
            action,
            server,
            source,
        }
    };
    let mut conn = PgConnection::connect_with(&options)
        .await
        .map_err(sql_error("connect".to_owned()))?;
    let quote = |text: &str| text.replace('\'', "''");
    let mut statements = Vec::new();
    let password = env
        .password
        .as_deref()
        .map(|p| format!(" PASSWORD '{}'", quote(p)))
        .unwrap_or_default();
    if env.user == "postgres" {
        if !password.is_empty() {
            statements.push(format!("ALTER ROLE postgres{password}"));
        }
    } else {
        statements.push(format!(
            "CREATE ROLE \"{}\" SUPERUSER LOGIN{password}",
            env.user
        ));
    }
    if env.database != "postgres" {
        statements.push(format!(
            "CREATE DATABASE \"{}\" OWNER \"{}\"",
            env.database, env.user
        ));
    }
    for statement in statements {
        // The values are the operator's environment, quoted above.
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.clone()))
            .execute(&mut conn)
            .await
            .map_err(sql_error(format!("run {statement:?}")))?;
    }
    let _ = conn.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_takes_a_port_and_settings_and_names_what_is_wrong() {
        let words = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            ImageArgs::parse(words(&["--port", "5433", "-c", "fsync=off"])),
            Ok(ImageArgs {
                port: 5433,
                settings: vec!["fsync=off".to_owned()],
            })
        );
        assert!(ImageArgs::parse(words(&[])).unwrap_err().contains("--port"));
        assert!(
            ImageArgs::parse(words(&["--port", "0"]))
                .unwrap_err()
                .contains("1 to 65535")
        );
        assert!(
            ImageArgs::parse(words(&["--port", "1", "-c", "fsync"]))
                .unwrap_err()
                .contains("name=value")
        );
        assert!(
            ImageArgs::parse(words(&["--port", "1", "--data", "x"]))
                .unwrap_err()
                .contains("--data")
        );
    }

    #[test]
    fn the_environment_reads_as_the_official_image_reads_it() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let trust = ImageEnv::read(env(&[("POSTGRES_HOST_AUTH_METHOD", "trust")])).unwrap();
        assert_eq!(trust.user, "postgres");
        assert_eq!(trust.database, "postgres");
        let app = ImageEnv::read(env(&[
            ("POSTGRES_USER", "app"),
            ("POSTGRES_PASSWORD", "pw"),
        ]))
        .unwrap();
        assert_eq!(
            (app.database.as_str(), app.auth.as_str()),
            ("app", "scram-sha-256")
        );
        let refused = ImageEnv::read(env(&[])).unwrap_err();
        assert!(refused.contains("POSTGRES_PASSWORD"), "{refused}");
    }
}
