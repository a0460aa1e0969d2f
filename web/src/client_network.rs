//! The network a client address stands for, as a rate limit key.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The network to count a client's requests against when limiting by its address: an IPv4
/// address as it is, an IPv6 address as its /64 prefix (the rest set to zero), and an IPv6
/// address that carries a client's IPv4 address as that IPv4 address (below).
///
/// Keyed by the full IPv6 address, a limit is no limit: a network is given a /64 at least
/// (2^64 addresses), and any host on it may take a new address for each request. Providers
/// often delegate more (a /56 or a /48 to each subscriber): there, count by that prefix with
/// [`client_network_with_prefix`].
///
/// IPv6 addresses that carry an IPv4 address are counted as that IPv4 address, as its own
/// IPv4 requests are, rather than by their /64:
///
/// - IPv4-mapped (`::ffff:192.0.2.7`), what a dual-stack socket reports for an IPv4 client:
///   masked to /64, every IPv4 client would share one limit, all being in `::ffff:0:0/96`;
/// - NAT64's well-known prefix (`64:ff9b::192.0.2.7`, RFC 6052), what an IPv6-only service
///   behind a stateless translator (SIIT-DC, RFC 7755) sees of its IPv4 clients: the same;
/// - 6to4 (`2002:c000:0207::/48`, RFC 3056): the /48 of the IPv4 host `192.0.2.7`, whose
///   65,536 /64s would otherwise each be a limit of their own;
/// - Teredo (`2001:0:…`, RFC 4380): the client's public IPv4 address, which the address's
///   last 32 bits carry (inverted); its /64 is the Teredo server's, shared by every client of
///   that server.
///
/// ```
/// use std::net::IpAddr;
/// use namestore_web::client_network;
///
/// let a: IpAddr = "2001:db8:7:1:aaaa:bbbb:cccc:dddd".parse().unwrap();
/// let b: IpAddr = "2001:db8:7:1::42".parse().unwrap();
/// assert_eq!(client_network(a), client_network(b));
/// assert_eq!(client_network(a), "2001:db8:7:1::".parse::<IpAddr>().unwrap());
/// let v4: IpAddr = "192.0.2.7".parse().unwrap();
/// for carried in ["::ffff:192.0.2.7", "64:ff9b::c000:207", "2002:c000:207:99::1"] {
///     assert_eq!(client_network(carried.parse().unwrap()), v4);
/// }
/// ```
///
/// In a layer, with the address axum's `ConnectInfo` gives (behind a proxy, that is the
/// proxy's address: take the client's from the header your proxy sets, as you trust it).
/// axum gives it only to a router served with `into_make_service_with_connect_info`; served
/// otherwise, every request lacks it and a closure like this one limits nothing:
///
/// ```
/// # fn main() -> namestore::Result<()> {
/// use std::net::{IpAddr, SocketAddr};
/// use std::time::Duration;
/// use axum::extract::ConnectInfo;
/// use namestore::rate_limit::RateLimiter;
/// use namestore_web::{RateLimitLayer, client_network};
///
/// let store = namestore::open("memory://")?;
/// let limiter = RateLimiter::new(store.namespace::<IpAddr>("api", "rate")?, 100, Duration::from_secs(60))?;
/// let layer = RateLimitLayer::new(limiter, |request: &http::Request<axum::body::Body>| {
///     let ConnectInfo(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>()?;
///     Some(client_network(peer.ip()))
/// });
/// # let _ = layer;
/// # Ok(()) }
/// ```
pub fn client_network(address: IpAddr) -> IpAddr {
    client_network_with_prefix(address, 64)
}

/// [`client_network`], with IPv6 clients counted by their first `ipv6_prefix` bits rather
/// than 64: 56 or 48 where providers give each subscriber a /56 or a /48 (a prefix over 128 is
/// taken as 128, the whole address). IPv4 addresses, and IPv6 addresses that carry one, are
/// counted as [`client_network`] counts them.
///
/// ```
/// use std::net::IpAddr;
/// use namestore_web::client_network_with_prefix;
///
/// let a: IpAddr = "2001:db8:7:1::1".parse().unwrap();
/// let b: IpAddr = "2001:db8:7:ff::1".parse().unwrap();
/// assert_eq!(client_network_with_prefix(a, 56), client_network_with_prefix(b, 56));
/// assert_eq!(client_network_with_prefix(a, 56), "2001:db8:7::".parse::<IpAddr>().unwrap());
/// ```
pub fn client_network_with_prefix(address: IpAddr, ipv6_prefix: u8) -> IpAddr {
    let v6 = match address.to_canonical() {
        IpAddr::V4(v4) => return IpAddr::V4(v4),
        IpAddr::V6(v6) => v6,
    };
    if let Some(v4) = carried_ipv4(v6) {
        return IpAddr::V4(v4);
    }
    let mask = match u32::from(ipv6_prefix.min(128)) {
        0 => 0,
        prefix => u128::MAX << (128 - prefix),
    };
    IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
}

/// The IPv4 address an IPv6 address of NAT64's well-known prefix, of 6to4 or of Teredo
/// carries (IPv4-mapped addresses are [`IpAddr::to_canonical`]'s).
fn carried_ipv4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(address);
    let low32 = bits as u32;
    match address.segments() {
        // 64:ff9b::/96: the IPv4 address in the last 32 bits.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(Ipv4Addr::from(low32)),
        // 2002::/16: the IPv4 address in the 32 bits after the prefix.
        [0x2002, ..] => Some(Ipv4Addr::from((bits >> 80) as u32)),
        // 2001:0::/32: the client's public IPv4 address in the last 32 bits, inverted.
        [0x2001, 0, ..] => Some(Ipv4Addr::from(!low32)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{client_network, client_network_with_prefix};
    use std::net::IpAddr;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_map_to_their_networks() {
        for (address, network) in [
            ("192.0.2.7", "192.0.2.7"),
            ("::ffff:192.0.2.7", "192.0.2.7"),
            ("::ffff:198.51.100.1", "198.51.100.1"),
            ("2001:db8:7:1:aaaa:bbbb:cccc:dddd", "2001:db8:7:1::"),
            ("2001:db8:7:1::", "2001:db8:7:1::"),
            ("2001:db8:7:2::1", "2001:db8:7:2::"),
            ("fe80::1", "fe80::"),
            ("::1", "::"),
            // IPv4 clients of an IPv6-only service behind a translator (NAT64's prefix).
            ("64:ff9b::c000:207", "192.0.2.7"),
            ("64:ff9b::c633:6401", "198.51.100.1"),
            // 6to4: every /64 of the /48 is the one IPv4 host's.
            ("2002:c000:207::1", "192.0.2.7"),
            ("2002:c000:207:ffff:1:2:3:4", "192.0.2.7"),
            ("2002:c633:6401:7::", "198.51.100.1"),
            // Teredo: the client's public IPv4 address, inverted in the last 32 bits (RFC
            // 4380's example: server 65.54.227.120, client 192.0.2.45).
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),
            // Not a carrier: the rest of 64:ff9b::/32, and addresses near 2002::/16.
            ("64:ff9b:1::c000:207", "64:ff9b:1::"),
            ("2003:c000:207::1", "2003:c000:207::"),
            ("2001:db8::1", "2001:db8::"),
        ] {
            assert_eq!(client_network(ip(address)), ip(network), "{address}");
        }
        // Two IPv4 clients behind NAT64, two 6to4 hosts, two Teredo clients stay apart.
        for (a, b) in [
            ("64:ff9b::c000:207", "64:ff9b::c000:208"),
            ("2002:c000:207::1", "2002:c000:208::1"),
            (
                "2001:0:4136:e378:8000:63bf:3fff:fdd2",
                "2001:0:4136:e378:8000:63bf:3fff:fdd3",
            ),
        ] {
            assert_ne!(client_network(ip(a)), client_network(ip(b)), "{a} {b}");
        }
        // Counted by a shorter prefix: a subscriber's /56 or /48 is one network.
        for (address, prefix, network) in [
            ("2001:db8:7:1:aaaa::1", 56, "2001:db8:7::"),
            ("2001:db8:7:ff::1", 56, "2001:db8:7::"),
            ("2001:db8:7:100::1", 56, "2001:db8:7:100::"),
            ("2001:db8:7:ffff::1", 48, "2001:db8:7::"),
            ("2001:db8:7:1::1", 128, "2001:db8:7:1::1"),
            ("2001:db8:7:1::1", 255, "2001:db8:7:1::1"),
            ("2001:db8:7:1::1", 1, "::"),
            ("2001:db8:7:1::1", 0, "::"),
            ("2001:db8:7:1::1", 3, "2000::"),
            ("::ffff:192.0.2.7", 0, "192.0.2.7"),
            ("192.0.2.7", 128, "192.0.2.7"),
            ("2002:c000:207::1", 128, "192.0.2.7"),
        ] {
            assert_eq!(
                client_network_with_prefix(ip(address), prefix),
                ip(network),
                "{address}/{prefix}"
            );
        }
        // Two IPv4 clients of a dual-stack listener stay apart.
        assert_ne!(
            client_network(ip("::ffff:192.0.2.7")),
            client_network(ip("::ffff:192.0.2.8"))
        );
    }
}
