//! The stop-flow wire vocabulary: every name, payload and key that the reference
//! bot-manager, the mock bot, the runtime and the harness exchange.
//!
//! The contract is `shared/spec/protocol.md`; JSON names here are exactly the production
//! service's, so the same harness can drive that service unchanged. Nothing here does I/O.

pub mod api;
pub mod bot_config;
pub mod callbacks;
pub mod channels;
pub mod commands;
pub mod platform;
pub mod status;
pub mod wire;

pub use api::{
    ConfigUpdateRequest, CreateBotRequest, MeetingJson, MeetingsResponse, MessageResponse,
    RunningBot, RunningBotsResponse, Task, normalized_status,
};
pub use bot_config::{AutomaticLeave, BotConfig, BotConfigError, MAX_TIMER_MS};
pub use callbacks::{
    CallbackStatus, ExitedPayload, ExitedResponse, SessionStartPayload, StatusChangePayload,
};
pub use channels::meeting_status_channel;
pub use channels::{
    StatusEvent, bot_commands_channel, current_uid_key, meeting_commands_channel, status_channel,
};
pub use commands::BotCommand;
pub use platform::{Platform, PlatformIdError};
pub use status::{CompletionReason, FailureStage, MeetingStatus, ParseStatusError};
pub use wire::{Published, Wire};
