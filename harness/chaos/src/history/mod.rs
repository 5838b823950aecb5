//! The run's history: what happened, in order, from every source.

mod event;
pub mod normalise;
mod recorder;

pub use event::{
    Actor, Event, EventKind, FaultPhase, FinalContainer, FinalMeeting, FinalSession, FinalState,
    History, HistoryError, HttpPhase, MeetingLabel, meeting_id_from_container_name, wire_of,
};
pub use recorder::{Recorder, RecorderError};
