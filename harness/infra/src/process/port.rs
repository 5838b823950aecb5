use std::net::{Ipv4Addr, TcpListener};

use crate::InfraError;

/// A port on 127.0.0.1 that was free a moment ago: bind port 0, read the port, release it.
///
/// Another process may take it before the caller binds it; servers started here retry on
/// "address in use".
pub fn free_port() -> Result<u16, InfraError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(InfraError::FreePort)?;
    let port = listener.local_addr().map_err(InfraError::FreePort)?.port();
    Ok(port)
}
