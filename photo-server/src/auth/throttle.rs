//! Login throttling against password guessing.
//!
//! Every attempt is counted **before** its password is checked, so a burst
//! of concurrent guesses cannot all slip through while the first ones are
//! still being verified. Three budgets apply, each a number of free failed
//! attempts followed by a growing wait between further attempts (doubling
//! from a base up to a cap), never a hard lock:
//!
//! | budget | free | wait after that | stops |
//! |---|---|---|---|
//! | one address, one account | 5 | 30 s doubling, up to 15 min | one client guessing one password |
//! | one address, any accounts | 30 | 30 s doubling, up to 15 min | one client spraying accounts |
//! | one account, any addresses | 10 | 1 s doubling, up to 30 s | guessing from many addresses |
//!
//! The last one slows a distributed attack on an account to one guess per
//! 30 s (per replica) while its owner, from their own address, waits at most
//! 30 s: guessing from elsewhere can delay the owner but never lock them out.
//! A successful login clears its address-and-account and account budgets.
//! Records are forgotten 15 minutes after their last attempt. Counts are per
//! replica; behind N replicas an attacker gets at most N times the budget.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use moka::ops::compute::{CompResult, Op};

/// Records are forgotten this long after their last attempt.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, Copy)]
struct Budget {
    free: u32,
    base: Duration,
    cap: Duration,
}

const ADDRESS_AND_ACCOUNT: Budget = Budget {
    free: 5,
    base: Duration::from_secs(30),
    cap: Duration::from_secs(15 * 60),
};
const ADDRESS: Budget = Budget {
    free: 30,
    base: Duration::from_secs(30),
    cap: Duration::from_secs(15 * 60),
};
const ACCOUNT: Budget = Budget {
    free: 10,
    base: Duration::from_secs(1),
    cap: Duration::from_secs(30),
};

impl Budget {
    /// The wait required after the last of `attempts` counted attempts.
    fn wait(&self, attempts: u32) -> Duration {
        if attempts < self.free {
            return Duration::ZERO;
        }
        let doublings = (attempts - self.free).min(20);
        self.base.saturating_mul(1 << doublings).min(self.cap)
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    attempts: u32,
    last: Instant,
}

pub struct LoginThrottle {
    records: moka::sync::Cache<String, Record>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle::new()
    }
}

impl LoginThrottle {
    pub fn new() -> LoginThrottle {
        LoginThrottle {
            records: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(FORGET_AFTER)
                .build(),
        }
    }

    fn keys(ip: Option<IpAddr>, username: &str) -> [(String, Budget); 3] {
        let ip = ip.map(|i| i.to_string()).unwrap_or_default();
        let account = username.to_lowercase();
        [
            (format!("a|{ip}|{account}"), ADDRESS_AND_ACCOUNT),
            (format!("a|{ip}"), ADDRESS),
            (format!("u|{account}"), ACCOUNT),
        ]
    }

    /// Counts an attempt for `username` from `ip`, or refuses it with the
    /// time to wait. Call this before checking the password.
    pub fn attempt(&self, ip: Option<IpAddr>, username: &str) -> Result<(), Duration> {
        self.attempt_at(ip, username, Instant::now())
    }

    fn attempt_at(&self, ip: Option<IpAddr>, username: &str, now: Instant) -> Result<(), Duration> {
        // Address budgets first: a client they stop does not touch the
        // account's budget, so it cannot slow the owner down further.
        for (key, budget) in Self::keys(ip, username) {
            let mut refused = None;
            let result = self.records.entry(key).and_compute_with(|entry| {
                let Some(record) = entry.map(|e| e.into_value()) else {
                    return Op::Put(Record {
                        attempts: 1,
                        last: now,
                    });
                };
                let ready_at = record.last + budget.wait(record.attempts);
                if now < ready_at {
                    refused = Some(ready_at - now);
                    return Op::Nop;
                }
                Op::Put(Record {
                    attempts: record.attempts.saturating_add(1),
                    last: now,
                })
            });
            if let (CompResult::Unchanged(_), Some(wait)) = (result, refused) {
                return Err(wait.max(Duration::from_secs(1)));
            }
        }
        Ok(())
    }

    /// A successful login clears that address's count for the account, and
    /// the account's own count.
    pub fn succeeded(&self, ip: Option<IpAddr>, username: &str) {
        let [(pair, _), _, (account, _)] = Self::keys(ip, username);
        self.records.invalidate(&pair);
        self.records.invalidate(&account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        text.parse().ok()
    }

    #[test]
    fn one_client_gets_five_tries_at_one_account_then_waits() {
        let throttle = LoginThrottle::new();
        let now = Instant::now();
        for _ in 0..ADDRESS_AND_ACCOUNT.free {
            assert!(throttle.attempt_at(ip("192.0.2.1"), "admin", now).is_ok());
        }
        let wait = throttle
            .attempt_at(ip("192.0.2.1"), "admin", now)
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(30));
        assert!(
            throttle.attempt_at(ip("192.0.2.1"), "ADMIN", now).is_err(),
            "usernames are case-folded"
        );
        // After the wait one more try, then twice the wait.
        let later = now + Duration::from_secs(30);
        assert!(throttle.attempt_at(ip("192.0.2.1"), "admin", later).is_ok());
        assert_eq!(
            throttle.attempt_at(ip("192.0.2.1"), "admin", later),
            Err(Duration::from_secs(60))
        );
        // The owner, elsewhere, is not held up by this client.
        assert!(
            throttle
                .attempt_at(ip("198.51.100.7"), "admin", later)
                .is_ok()
        );
    }

    #[test]
    fn many_addresses_slow_an_account_down_but_never_lock_it() {
        let throttle = LoginThrottle::new();
        let now = Instant::now();
        for n in 0..ACCOUNT.free {
            let addr = ip(&format!("203.0.113.{n}"));
            assert!(throttle.attempt_at(addr, "alice", now).is_ok());
        }
        // The next guess from a fresh address must wait, briefly.
        let wait = throttle
            .attempt_at(ip("203.0.113.200"), "alice", now)
            .unwrap_err();
        assert!(wait <= ACCOUNT.cap, "{wait:?}");
        // However long the attack went on, the owner waits at most the cap.
        let mut t = now;
        for n in 0..200u32 {
            t += Duration::from_secs(31);
            let addr = ip(&format!("198.18.{}.{}", n / 250, n % 250));
            let _ = throttle.attempt_at(addr, "alice", t);
        }
        let owner = ip("192.0.2.50");
        let t = t + ACCOUNT.cap;
        assert!(throttle.attempt_at(owner, "alice", t).is_ok());
        // Other accounts are unaffected.
        assert!(throttle.attempt_at(owner, "bob", t).is_ok());
    }

    #[test]
    fn an_address_spraying_accounts_is_stopped() {
        let throttle = LoginThrottle::new();
        let now = Instant::now();
        for n in 0..ADDRESS.free {
            assert!(
                throttle
                    .attempt_at(ip("192.0.2.9"), &format!("user{n}"), now)
                    .is_ok()
            );
        }
        assert!(
            throttle
                .attempt_at(ip("192.0.2.9"), "fresh-name", now)
                .is_err()
        );
    }

    #[test]
    fn success_clears_the_account_and_the_pair() {
        let throttle = LoginThrottle::new();
        let now = Instant::now();
        for _ in 0..ADDRESS_AND_ACCOUNT.free {
            throttle.attempt_at(ip("192.0.2.1"), "admin", now).unwrap();
        }
        throttle.succeeded(ip("192.0.2.1"), "admin");
        assert!(throttle.attempt_at(ip("192.0.2.1"), "admin", now).is_ok());
    }
}
