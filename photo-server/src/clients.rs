//! Who a client is, by address, wherever clients are counted.

use std::net::IpAddr;

/// The client an address belongs to: itself for IPv4 (and IPv4-mapped
/// IPv6), its /64 for IPv6 (one household or server is handed a whole /64
/// and can pick any address in it). Login throttling, connection shares and
/// render turns all count clients this way.
pub fn client_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
    }
}
