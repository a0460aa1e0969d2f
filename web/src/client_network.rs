//! The network a client address stands for, as a rate limit key.

use std::net::{IpAddr, Ipv6Addr};

/// The network to count a client's requests against when limiting by its address: an IPv4
/// address as it is, an IPv6 address as its /64 prefix (the rest set to zero), and an
/// IPv4-mapped IPv6 address (`::ffff:192.0.2.7`, what a dual-stack socket reports for an IPv4
/// client) as the IPv4 address it maps.
///
/// Keyed by the full IPv6 address, a limit is no limit: a network is given a /64 at least
/// (2^64 addresses), and any host on it may take a new address for each request. Masked
/// naively to /64, every IPv4 client of a dual-stack listener would share one limit, all being
/// in `::ffff:0:0/96`; this takes them out first.
///
/// ```
/// use std::net::IpAddr;
/// use namestore_web::client_network;
///
/// let a: IpAddr = "2001:db8:7:1:aaaa:bbbb:cccc:dddd".parse().unwrap();
/// let b: IpAddr = "2001:db8:7:1::42".parse().unwrap();
/// assert_eq!(client_network(a), client_network(b));
/// assert_eq!(client_network(a), "2001:db8:7:1::".parse::<IpAddr>().unwrap());
/// let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
/// assert_eq!(client_network(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
/// ```
///
/// In a layer, with the address axum's `ConnectInfo` gives (behind a proxy, that is the
/// proxy's address: take the client's from the header your proxy sets, as you trust it):
///
/// ```
/// # fn run() -> namestore::Result<()> {
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
    match address.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !(u128::MAX >> 64);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::client_network;
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
        ] {
            assert_eq!(client_network(ip(address)), ip(network), "{address}");
        }
        // Two IPv4 clients of a dual-stack listener stay apart.
        assert_ne!(
            client_network(ip("::ffff:192.0.2.7")),
            client_network(ip("::ffff:192.0.2.8"))
        );
    }
}
