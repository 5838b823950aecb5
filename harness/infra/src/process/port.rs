use std::net::{Ipv4Addr, TcpListener};

use rand::Rng;

use crate::InfraError;

/// A port on 127.0.0.1 that was free a moment ago, for a server that must be told its
/// port before it starts.
///
/// Taken below the kernel's ephemeral range when there is room: a port from that range
/// (what binding port 0 gives) can be handed to any outgoing connection of the busy
/// machine between release and the server's bind, and a run opens hundreds of them.
/// Another process may still take it; servers started here retry on "address in use".
pub fn free_port() -> Result<u16, InfraError> {
    let (ephemeral_low, _) = ephemeral_range();
    if ephemeral_low > 20_000 {
        let mut rng = rand::rng();
        for _ in 0..64 {
            let port = rng.random_range(10_000..ephemeral_low);
            if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return Ok(port);
            }
        }
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(InfraError::FreePort)?;
    let port = listener.local_addr().map_err(InfraError::FreePort)?.port();
    Ok(port)
}

/// Linux's `ip_local_port_range` (the default when it cannot be read).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace().map(str::parse::<u16>);
            Some((parts.next()?.ok()?, parts.next()?.ok()?))
        })
        .unwrap_or((32_768, 60_999))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_bindable_and_outside_the_ephemeral_range() {
        let port = free_port().unwrap();
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
        let (low, high) = ephemeral_range();
        if low > 20_000 {
            assert!(!(low..=high).contains(&port), "{port} in {low}..={high}");
        }
    }
}
