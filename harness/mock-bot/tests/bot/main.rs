//! The mock bot as a process, against a real Redis, a recording callback server and real
//! signals. Every wait is on an event (a JSON line, a recorded request, an exit) with a
//! deadline; nothing sleeps in place of synchronisation.

mod callbacks;
mod commands;
mod lifecycle;
mod startup;
mod support;
