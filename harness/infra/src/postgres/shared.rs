use std::sync::OnceLock;

use super::{PostgresServer, TestDatabase};
use crate::InfraError;
use crate::error::chain;

/// The first attempt's outcome; a failure is kept as text and reported to every caller.
static SHARED: OnceLock<Result<PostgresServer, String>> = OnceLock::new();

/// The process-wide server for tests: `$DATABASE_URL`, else a throwaway server started
/// once (lazily, thread-safe) and shared by all tests of this process.
///
/// A throwaway server lives on its own keeper thread, so it survives the test thread that
/// started it; it is stopped and its dir removed at process exit (or, if the process is
/// killed, it dies with it and a later run sweeps the dir).
pub fn shared_server() -> Result<&'static PostgresServer, InfraError> {
    let shared = SHARED.get_or_init(|| {
        let server = PostgresServer::from_env().map_err(|err| chain(&err))?;
        if server.is_throwaway() {
            // SAFETY: registers a plain function; it only touches a static.
            unsafe { libc::atexit(stop_shared_server) };
        }
        Ok(server)
    });
    shared
        .as_ref()
        .map_err(|reason| InfraError::SharedServer(reason.clone()))
}

/// Shorthand for `TestDatabase::create(shared_server()?)`. Blocks while the shared server
/// starts (about a second, once per process).
pub async fn test_database() -> Result<TestDatabase, InfraError> {
    TestDatabase::create(shared_server()?).await
}

extern "C" fn stop_shared_server() {
    // Runs inside exit(), while the keeper thread still runs: a clean stop is possible.
    let _ = std::panic::catch_unwind(|| {
        if let Some(Ok(server)) = SHARED.get() {
            server.shutdown();
        }
    });
}
