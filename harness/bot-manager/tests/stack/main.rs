//! Integration tests through the whole stack as real processes: a database and Redis of
//! each test's own, the `runtime`, the `bot-manager` (legacy) and one `mock-bot` per
//! meeting.

mod api_conformance;
mod incident;
mod lifecycle;
mod service;
mod support;
