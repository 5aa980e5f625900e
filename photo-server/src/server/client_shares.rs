//! Each client's share of the public listener's connection cap.
//!
//! The cap (`PHOTO_MAX_CONNECTIONS`) keeps a flood from exhausting file
//! descriptors, but alone it let one client take every slot: 4,300
//! connections from one machine trickling login bodies kept `/healthz`,
//! cached photos and logins from everyone else for as long as they lasted.
//! So one client holds at most `PHOTO_MAX_CONNECTIONS_PER_CLIENT` of them (an
//! eighth of the cap by default): past that, its new connections are closed
//! as soon as they are accepted, and everyone else still finds free slots.
//!
//! A client is an IPv4 address or an IPv6 /64 (one IPv6 host is usually
//! handed a whole /64). Connections from `PHOTO_TRUSTED_PROXIES` are not
//! counted per client: behind an ingress controller every connection comes
//! from a few proxy pods, and the proxy applies its own per-client limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::clients::client_of;

/// The per-client share of a connection cap (0: derived from the cap).
pub fn share_of(cap: usize, configured: usize) -> usize {
    if configured > 0 {
        configured
    } else {
        (cap / 8).max(16).min(cap)
    }
}

/// Connections open per client.
pub struct ClientShares {
    share: usize,
    trusted: Vec<ipnet::IpNet>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection counted against its client's share, until dropped.
pub struct Slot {
    shares: Arc<ClientShares>,
    client: Option<IpAddr>,
}

impl ClientShares {
    pub fn new(share: usize, trusted: Vec<ipnet::IpNet>) -> Arc<ClientShares> {
        Arc::new(ClientShares {
            share,
            trusted,
            open: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        match self.open.lock() {
            Ok(open) => open,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A slot for a connection from `peer`, or `None` when its client
    /// already holds its share.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Slot> {
        if self.trusted.iter().any(|net| net.contains(&peer)) {
            return Some(Slot {
                shares: self.clone(),
                client: None,
            });
        }
        let client = client_of(peer);
        let mut open = self.lock();
        let held = open.entry(client).or_insert(0);
        if *held >= self.share {
            return None;
        }
        *held += 1;
        Some(Slot {
            shares: self.clone(),
            client: Some(client),
        })
    }

    /// Connections `peer`'s client holds now.
    #[cfg(test)]
    fn held(&self, peer: IpAddr) -> usize {
        self.lock().get(&client_of(peer)).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(client) = self.client else {
            return;
        };
        let mut open = self.shares.lock();
        if let Some(held) = open.get_mut(&client) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                open.remove(&client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn one_client_gets_its_share_and_no_more_while_others_still_get_in() {
        let shares = ClientShares::new(2, vec!["10.0.0.0/8".parse().unwrap()]);
        let a = shares.admit(ip("203.0.113.7")).unwrap();
        let _b = shares.admit(ip("203.0.113.7")).unwrap();
        assert!(shares.admit(ip("203.0.113.7")).is_none());
        assert!(shares.admit(ip("203.0.113.8")).is_some(), "another client");
        drop(a);
        assert!(
            shares.admit(ip("203.0.113.7")).is_some(),
            "a slot came back"
        );
        // a trusted proxy is not counted per client
        let proxied: Vec<Slot> = (0..10)
            .map(|_| shares.admit(ip("10.1.2.3")).unwrap())
            .collect();
        assert_eq!(shares.held(ip("10.1.2.3")), 0);
        drop(proxied);
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        let shares = ClientShares::new(1, vec![]);
        let _one = shares.admit(ip("2001:db8:1:2::1")).unwrap();
        assert!(shares.admit(ip("2001:db8:1:2:ffff::9")).is_none());
        assert!(shares.admit(ip("2001:db8:1:3::1")).is_some());
        assert_eq!(client_of(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn the_derived_share_is_an_eighth_of_the_cap_and_at_least_sixteen() {
        assert_eq!(share_of(4096, 0), 512);
        assert_eq!(share_of(384, 0), 48);
        assert_eq!(share_of(64, 0), 16);
        assert_eq!(share_of(10, 0), 10);
        assert_eq!(share_of(4096, 100), 100);
    }
}
