//! Placeholder while the checkers are written.
use super::{CheckConfig, CheckResult};
use crate::history::History;
macro_rules! pending { ($($name:ident),*) => { $(pub fn $name(_: &History, _: &CheckConfig) -> CheckResult { unimplemented!() })* } }
pending!(
    terminal,
    no_active_without_container,
    no_orphan_container,
    transitions,
    terminal_final,
    leave_routed,
    status_agrees,
    no_loss
);
