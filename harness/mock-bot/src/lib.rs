//! The mock meeting bot: one process per meeting standing in for the real bot
//! (protocol.md section 7), with scripted misbehaviour.
//!
//! Everything comes from the environment, so the runtime or a real Docker daemon can start
//! it unchanged: `BOT_CONFIG` (the service's JSON), `STOPFLOW_HOST_ALIASES` (see [`hosts`])
//! and the `MOCK_BOT_*` behaviours and URL overrides (see [`behaviour`]). It writes one JSON event per line
//! on stdout (see [`events`]) and human logs on stderr (`RUST_LOG`). A configuration
//! problem is one line on stderr and exit 1.

pub mod behaviour;
pub mod callbacks;
pub mod commands;
pub mod events;
pub mod hosts;
pub mod lifecycle;

use std::process::ExitCode;

use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use behaviour::{Behaviour, BehaviourError};
use callbacks::{CallbackError, Callbacks};
use events::EventLog;
use hosts::{HostAliasError, HostAliases};
use lifecycle::Bot;
use protocol::{BotConfig, BotConfigError};

/// The variable carrying the service's configuration.
pub const BOT_CONFIG_VAR: &str = "BOT_CONFIG";

/// Why the bot could not start; each reads after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    BotConfig(#[from] BotConfigError),
    #[error("read {BOT_CONFIG_VAR}: the value is not valid UTF-8")]
    BotConfigNotUnicode,
    #[error("validate {BOT_CONFIG_VAR}: {field} is {value}, expected {expected}")]
    BotConfigOutOfRange {
        field: &'static str,
        value: String,
        expected: String,
    },
    #[error(transparent)]
    Behaviour(#[from] BehaviourError),
    #[error(transparent)]
    HostAliases(#[from] HostAliasError),
    #[error(transparent)]
    Callbacks(#[from] CallbackError),
    #[error("install the SIGTERM handler: {0}")]
    Signal(#[source] std::io::Error),
}

/// Everything the environment says, checked before the bot does anything. `config` holds
/// the effective URLs: `MOCK_BOT_REDIS_URL` and `MOCK_BOT_CALLBACK_BASE` already applied
/// (host aliases are applied later, at connection time).
#[derive(Debug)]
pub struct Setup {
    pub config: BotConfig,
    pub behaviour: Behaviour,
    pub aliases: HostAliases,
}

impl Setup {
    pub fn from_env() -> Result<Self, StartupError> {
        let mut config = match std::env::var(BOT_CONFIG_VAR) {
            Ok(json) => BotConfig::parse(&json)?,
            Err(std::env::VarError::NotPresent) => return Err(BotConfigError::Missing.into()),
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(StartupError::BotConfigNotUnicode);
            }
        };
        check_config_numbers(&config)?;
        let behaviour = Behaviour::from_env()?;
        // Every connection reads these two fields, so overriding them here covers all.
        config.redis_url = behaviour.endpoints.redis_url(&config.redis_url);
        config.bot_manager_callback_url = behaviour
            .endpoints
            .callback_url(&config.bot_manager_callback_url)?;
        Ok(Setup {
            config,
            behaviour,
            aliases: HostAliases::from_env()?,
        })
    }
}

/// The largest `automaticLeave` timeout the bot takes, in milliseconds (a day, as for
/// every `MOCK_BOT_*_MS`).
pub const MAX_AUTOMATIC_LEAVE_MS: u64 = Behaviour::MAX_MS;

/// Every number of `BOT_CONFIG` within its range, before the bot does anything with it:
/// a meeting id is positive (a database row's), a timeout at most
/// [`MAX_AUTOMATIC_LEAVE_MS`].
pub fn check_config_numbers(config: &BotConfig) -> Result<(), StartupError> {
    if config.meeting_id < 1 {
        return Err(StartupError::BotConfigOutOfRange {
            field: "meeting_id",
            value: config.meeting_id.to_string(),
            expected: format!("a meeting id from 1 to {}", i64::MAX),
        });
    }
    let leave = &config.automatic_leave;
    let timeouts = [
        (
            "automaticLeave.waitingRoomTimeout",
            leave.waiting_room_timeout,
        ),
        (
            "automaticLeave.noOneJoinedTimeout",
            leave.no_one_joined_timeout,
        ),
        (
            "automaticLeave.everyoneLeftTimeout",
            leave.everyone_left_timeout,
        ),
    ];
    for (field, ms) in timeouts {
        if ms > MAX_AUTOMATIC_LEAVE_MS {
            return Err(StartupError::BotConfigOutOfRange {
                field,
                value: ms.to_string(),
                expected: format!("milliseconds from 0 to {MAX_AUTOMATIC_LEAVE_MS}"),
            });
        }
    }
    Ok(())
}

/// The whole program: logs, runtime, bot, exit code.
pub fn main() -> ExitCode {
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("mock-bot: failed to start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run());
    // A request or DNS lookup still in flight must not hold up the exit.
    runtime.shutdown_background();
    ExitCode::from(code)
}

/// Runs the bot and returns its exit code.
pub async fn run() -> u8 {
    // First of all: from here on SIGTERM is the bot's to handle, not the default death.
    let sigterm = signal(SignalKind::terminate()).map_err(StartupError::Signal);
    let started = sigterm.and_then(|sigterm| Ok((sigterm, Setup::from_env()?)));
    let (sigterm, setup) = match started {
        Ok(started) => started,
        Err(error) => {
            let message = format!("failed to {error}");
            eprintln!("mock-bot: {message}");
            EventLog::config_error(&message);
            return 1;
        }
    };
    let Setup {
        config,
        behaviour,
        aliases,
    } = setup;
    let callbacks =
        match Callbacks::new(&config, &aliases, behaviour.endpoints.session_base.as_ref()) {
            Ok(callbacks) => callbacks,
            Err(error) => {
                let message = format!("failed to {error}");
                eprintln!("mock-bot: {message}");
                EventLog::config_error(&message);
                return 1;
            }
        };
    let (uid, uid_rx) = watch::channel(config.connection_id.clone());
    let events = EventLog::new(config.container_name.clone(), uid_rx.clone());
    let redis_url = aliases.rewrite_url(&config.redis_url);
    events.emit(
        "started",
        json!({
            "pid": std::process::id(),
            "meeting_id": config.meeting_id,
            "connection_id": config.connection_id,
            "callback_url": config.bot_manager_callback_url,
            "redis_url": redis_url,
        }),
    );
    tracing::info!(
        bot = %config.container_name,
        uid = %config.connection_id,
        "mock bot starting"
    );
    let subscription = commands::spawn(
        redis_url,
        behaviour.subscribe,
        config.meeting_id,
        uid_rx,
        events.clone(),
    );
    let bot = Bot::new(config, behaviour, events.clone(), callbacks, uid);
    let code = bot.run(subscription, sigterm).await;
    events.emit("exiting", json!({ "code": code }));
    code
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person: the runtime and tests capture stderr into logs.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}
