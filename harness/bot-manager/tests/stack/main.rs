//! Integration tests through the whole stack as real processes: a database and Redis of
//! each test's own, the `runtime`, the `bot-manager` (legacy, or the profile a test asks
//! for) and one `mock-bot` per meeting.

mod api_conformance;
mod callback_auth;
mod connections;
mod faithful;
mod fixed;
mod hostile;
mod incident;
mod lifecycle;
mod load;
mod properties;
mod service;
mod support;
mod wire;
