//! Child processes that cannot outlive their owner: a kill-on-drop guard, parent-death
//! signals, waiting for a ready line, and free ports.

mod guard;
mod pidfd;
mod port;
mod spawn;

pub use guard::ChildGuard;
pub use pidfd::wait_until_gone;
pub use port::free_port;
pub use spawn::{
    die_with_parent, die_with_parent_in_group, die_with_parent_tokio, spawn_until_line,
};

pub(crate) use pidfd::PidFd;

/// How often bounded loops re-check a condition that has no event to wait on.
pub(crate) const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);
