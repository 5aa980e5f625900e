//! Login rate limiting against password guessing: failed attempts are counted
//! per client address and per (address, username) over a sliding window.
//! Counts are per replica; behind N replicas an attacker gets at most N times
//! the budget, which still turns guessing into a crawl.

use std::net::IpAddr;
use std::time::Duration;

/// Failures allowed for one username from one address per window.
const PER_USER: u32 = 5;
/// Failures allowed from one address (many usernames) per window.
const PER_ADDRESS: u32 = 30;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

pub struct LoginLimiter {
    failures: moka::sync::Cache<String, u32>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new()
    }
}

impl LoginLimiter {
    pub fn new() -> LoginLimiter {
        LoginLimiter {
            failures: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(WINDOW)
                .build(),
        }
    }

    fn keys(ip: Option<IpAddr>, username: &str) -> (String, String) {
        let ip = ip.map(|i| i.to_string()).unwrap_or_default();
        (
            format!("{ip}|{}", username.to_lowercase()),
            format!("{ip}|*"),
        )
    }

    /// Whether another attempt is allowed now.
    pub fn allowed(&self, ip: Option<IpAddr>, username: &str) -> bool {
        let (user_key, ip_key) = Self::keys(ip, username);
        self.failures.get(&user_key).unwrap_or(0) < PER_USER
            && self.failures.get(&ip_key).unwrap_or(0) < PER_ADDRESS
    }

    pub fn failed(&self, ip: Option<IpAddr>, username: &str) {
        let (user_key, ip_key) = Self::keys(ip, username);
        for key in [user_key, ip_key] {
            self.failures
                .entry(key)
                .and_upsert_with(|old| old.map(|e| e.into_value()).unwrap_or(0) + 1);
        }
    }

    /// A successful login clears that username's count.
    pub fn succeeded(&self, ip: Option<IpAddr>, username: &str) {
        self.failures.invalidate(&Self::keys(ip, username).0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_repeated_failures_for_that_user_only() {
        let limiter = LoginLimiter::new();
        let ip: Option<IpAddr> = "192.0.2.1".parse().ok();
        for _ in 0..PER_USER {
            assert!(limiter.allowed(ip, "admin"));
            limiter.failed(ip, "admin");
        }
        assert!(!limiter.allowed(ip, "admin"));
        assert!(!limiter.allowed(ip, "ADMIN"), "usernames are case-folded");
        assert!(limiter.allowed(ip, "alice"));
        assert!(limiter.allowed("192.0.2.2".parse().ok(), "admin"));
    }

    #[test]
    fn blocks_an_address_spraying_usernames() {
        let limiter = LoginLimiter::new();
        let ip: Option<IpAddr> = "192.0.2.1".parse().ok();
        for n in 0..PER_ADDRESS {
            limiter.failed(ip, &format!("user{n}"));
        }
        assert!(!limiter.allowed(ip, "fresh-name"));
    }
}
