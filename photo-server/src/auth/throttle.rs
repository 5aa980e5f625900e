//! Login throttling against password guessing, designed so that it can
//! never be turned against the owner of an account.
//!
//! **Only failures count.** Every attempt takes a place in its budgets
//! *before* its password is checked, so a burst of concurrent guesses
//! cannot all slip through while the first ones are still being verified;
//! the place is kept only if the password turns out wrong. A right password,
//! or an attempt never checked (no password-check place free, the database
//! down), gives it back: an office behind one address, or a script logging
//! in every minute, never runs out.
//!
//! **Who is asking.** A client is its address, an IPv6 address counting as
//! its /64 (one household or server is handed a whole /64 and can pick any
//! address in it; IPv4-mapped IPv6 is IPv4). A *known client* of an account
//! is one that logged in to it before: it shows the `photo_known` cookie set
//! at that login (a random device id signed with the shared key and bound to
//! the account, so every replica recognises it; kept a year, through
//! logouts), or it comes from an address that logged in to the account in
//! the last 30 days (remembered by this replica, for clients without a
//! cookie jar). Nobody becomes known without the right password.
//!
//! | who | budget | free failures | then, between attempts | stops |
//! |---|---|---|---|---|
//! | known client of the account | its device (cookie) or its address, for that account | 5 | 30 s, doubling up to 15 min | guessing with a stolen cookie or from the owner's own address |
//! | any other client | its address, for that account | 5 | 30 s, doubling up to 15 min | one client guessing one password |
//! | any other client | its address, for any account | 30 | 30 s, doubling up to 15 min | one client spraying accounts |
//! | any other client | the account, from any address | 10 | 1 s, doubling up to 30 s | guessing from many addresses |
//!
//! A known client is held by its own budget only, so however many addresses
//! guess at an account, and whatever else comes from its address, the owner
//! with the right password gets in. Guessing from many addresses gets 10
//! checks of an account, then waits of 1 s doubling to one check per 30 s. The one who is left
//! waiting is a client the account does not know (its owner on a new device,
//! at a new address) while an attack goes on: it shares the account's slots
//! with the guesses, with `429` and a `Retry-After` of at most 30 s.
//!
//! A right password clears the count of its client for the account (and,
//! for a client the account does not know, the account's count: its owner
//! is back), gives back its place in the address's count (the address is
//! shared), and makes its address known to the account. Records are
//! forgotten 15 minutes after the last attempt at them, known addresses 30
//! days after the login. Counts are per replica; behind N replicas an attacker gets
//! at most N times each budget.
//!
//! The throttle answers before a password-check place is taken
//! (`auth::password::Passwords`), so a refused guess costs a map lookup and
//! never a place. With `PHOTO_PASSWORD_CHECKS` = n (default: one per CPU):
//!
//! | password-check places | bound |
//! |---|---|
//! | running | n at once (Argon2, 19 MiB each) |
//! | admitted (running or waiting) | 4n; past that `503` + `Retry-After: 1` at once |
//! | for clients an account does not know | 3n of those: the last n are kept for known clients |
//!
//! So a flood that no budget stops (every guess from a new address at a new
//! name) can shed strangers with `503`, but not an account's owner.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use moka::ops::compute::{CompResult, Op};

/// Records are forgotten this long after the last attempt at them.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// An address stays known to an account this long after a login from it.
pub const KNOWN_ADDRESS_FOR: Duration = Duration::from_secs(30 * 86400);

#[derive(Debug, Clone, Copy)]
struct Budget {
    free: u32,
    base: Duration,
    cap: Duration,
}

/// One client (a known device, or an address) at one account.
const CLIENT_AND_ACCOUNT: Budget = Budget {
    free: 5,
    base: Duration::from_secs(30),
    cap: Duration::from_secs(15 * 60),
};
/// One address at any accounts it is not known to.
const ADDRESS: Budget = Budget {
    free: 30,
    base: Duration::from_secs(30),
    cap: Duration::from_secs(15 * 60),
};
/// One account, from clients it does not know.
const ACCOUNT: Budget = Budget {
    free: 10,
    base: Duration::from_secs(1),
    cap: Duration::from_secs(30),
};

impl Budget {
    /// The wait required after the last of `failures` counted attempts.
    fn wait(&self, failures: u32) -> Duration {
        if failures < self.free {
            return Duration::ZERO;
        }
        let doublings = (failures - self.free).min(20);
        self.base.saturating_mul(1 << doublings).min(self.cap)
    }
}

/// The throttle's name for a client's address: IPv4 as it is, IPv6 by its
/// /64. Empty when the address is unknown (no peer: tests only).
pub fn address_group(ip: Option<IpAddr>) -> String {
    match ip.map(crate::clients::client_of) {
        None => String::new(),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(prefix)) => format!("{prefix}/64"),
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

/// Which of an attempt's budgets a place is in: what a right password does
/// with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Cleared: the client's own mistakes are forgiven.
    Client,
    /// Given back: others share the address.
    Address,
    /// Cleared: the owner is back.
    Account,
}

#[derive(Debug)]
struct Place {
    scope: Scope,
    key: String,
    taken_at: Instant,
    /// The record's `last` before this attempt (`None`: no record).
    before: Option<Instant>,
}

pub struct LoginThrottle {
    records: moka::sync::Cache<String, Record>,
    /// `address|account` pairs that logged in lately.
    known_addresses: moka::sync::Cache<String, ()>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle::new()
    }
}

/// An attempt that has its places in its budgets. Say how it ended with
/// [`Attempt::failed`] or [`Attempt::succeeded`]; dropped without either
/// (the password was never checked), it gives its places back.
#[must_use = "an attempt dropped without an outcome counts for nothing"]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    known: bool,
    /// `address|account`, remembered on success; `None` without an address.
    pair: Option<String>,
    places: Vec<Place>,
}

impl LoginThrottle {
    pub fn new() -> LoginThrottle {
        LoginThrottle {
            records: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(FORGET_AFTER)
                .build(),
            known_addresses: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(KNOWN_ADDRESS_FOR)
                .build(),
        }
    }

    /// Takes this attempt's places for `username` from `ip` (`device`: the
    /// id of a genuine known-client cookie for this account), or refuses it
    /// with the time to wait. Call this before anything costly: before a
    /// password-check place is taken.
    pub fn attempt(
        &self,
        ip: Option<IpAddr>,
        device: Option<&str>,
        username: &str,
    ) -> Result<Attempt<'_>, Duration> {
        self.attempt_at(ip, device, username, Instant::now())
    }

    fn attempt_at(
        &self,
        ip: Option<IpAddr>,
        device: Option<&str>,
        username: &str,
        now: Instant,
    ) -> Result<Attempt<'_>, Duration> {
        let account = username.to_lowercase();
        let address = address_group(ip);
        let pair = ip.map(|_| format!("{address}|{account}"));
        let known_address = pair
            .as_ref()
            .is_some_and(|p| self.known_addresses.contains_key(p));
        let known = device.is_some() || known_address;
        let mut budgets = vec![match device {
            Some(id) => (
                Scope::Client,
                format!("d|{id}|{account}"),
                CLIENT_AND_ACCOUNT,
            ),
            None => (
                Scope::Client,
                format!("c|{address}|{account}"),
                CLIENT_AND_ACCOUNT,
            ),
        }];
        if !known {
            // The account's budget last: a client its own budgets stop does
            // not touch it, so cannot slow down others at that account.
            budgets.push((Scope::Address, format!("a|{address}"), ADDRESS));
            budgets.push((Scope::Account, format!("u|{account}"), ACCOUNT));
        }
        let mut attempt = Attempt {
            throttle: self,
            known,
            pair,
            places: Vec::with_capacity(budgets.len()),
        };
        for (scope, key, budget) in budgets {
            // On refusal, `attempt` is dropped and gives back what it took.
            let before = self.take(&key, budget, now)?;
            attempt.places.push(Place {
                scope,
                key,
                taken_at: now,
                before,
            });
        }
        Ok(attempt)
    }

    /// Counts one attempt in `key`'s record, or refuses it with the wait
    /// left. Returns the record's `last` before it.
    fn take(&self, key: &str, budget: Budget, now: Instant) -> Result<Option<Instant>, Duration> {
        let mut refused = None;
        let mut before = None;
        let result = self
            .records
            .entry(key.to_string())
            .and_compute_with(|entry| {
                let Some(record) = entry.map(|e| e.into_value()) else {
                    return Op::Put(Record {
                        failures: 1,
                        last: now,
                    });
                };
                let ready_at = record.last + budget.wait(record.failures);
                if now < ready_at {
                    refused = Some(ready_at - now);
                    return Op::Nop;
                }
                before = Some(record.last);
                Op::Put(Record {
                    failures: record.failures.saturating_add(1),
                    last: now,
                })
            });
        match (result, refused) {
            (CompResult::Unchanged(_), Some(wait)) => Err(wait.max(Duration::from_secs(1))),
            _ => Ok(before),
        }
    }

    /// Undoes one counted attempt: one failure fewer, and when nothing was
    /// counted after it, its wait goes too.
    fn give_back(&self, place: &Place) {
        self.records
            .entry(place.key.clone())
            .and_compute_with(|entry| {
                let Some(record) = entry.map(|e| e.into_value()) else {
                    return Op::Nop;
                };
                let failures = record.failures.saturating_sub(1);
                match place.before {
                    _ if failures == 0 => Op::Remove,
                    Some(before) if record.last == place.taken_at => Op::Put(Record {
                        failures,
                        last: before,
                    }),
                    _ => Op::Put(Record {
                        failures,
                        last: record.last,
                    }),
                }
            });
    }
}

impl Attempt<'_> {
    /// Whether the client has logged in to this account before (its cookie or
    /// its address): it has its own budget and may use the password-check
    /// places kept for known clients.
    pub fn is_known(&self) -> bool {
        self.known
    }

    /// The password was wrong: the attempt stays counted.
    pub fn failed(mut self) {
        self.places.clear();
    }

    /// The password was right: this client's count for the account is
    /// cleared (and the account's, when it was counted there), its place in
    /// the address's count given back, and its address known to the account.
    pub fn succeeded(mut self) {
        for place in std::mem::take(&mut self.places) {
            match place.scope {
                Scope::Client | Scope::Account => self.throttle.records.invalidate(&place.key),
                Scope::Address => self.throttle.give_back(&place),
            }
        }
        if let Some(pair) = self.pair.take() {
            self.throttle.known_addresses.insert(pair, ());
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        for place in std::mem::take(&mut self.places) {
            self.throttle.give_back(&place);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    /// A wrong password from `from` at `username`, at `now`.
    fn fail(
        throttle: &LoginThrottle,
        from: &str,
        username: &str,
        now: Instant,
    ) -> Result<(), Duration> {
        throttle
            .attempt_at(ip(from), None, username, now)
            .map(Attempt::failed)
    }

    fn succeed(throttle: &LoginThrottle, from: &str, username: &str, now: Instant) -> bool {
        throttle
            .attempt_at(ip(from), None, username, now)
            .map(Attempt::succeeded)
            .is_ok()
    }

    #[test]
    fn one_client_gets_five_failures_at_one_account_then_waits() {
        let throttle = LoginThrottle::new();
        let now = Instant::now();
        for _ in 0..CLIENT_AND_ACCOUNT.free {
            assert!(fail(&throttle, "192.0.2.1", "admin", now).is_ok());
        }
        assert_eq!(
            fail(&throttle, "192.0.2.1", "admin", now),
            Err(Duration::from_secs(30))
        );
        assert!(
            fail(&throttle, "192.0.2.1", "ADMIN", now).is_err(),
            "usernames are case-folded"
        );
        // After the wait one more try, then twice the wait.
        let later = now + Duration::from_secs(30);
        assert!(fail(&throttle, "192.0.2.1", "admin", later).is_ok());
        assert_eq!(
            fail(&throttle, "192.0.2.1", "admin", later),
            Err(Duration::from_secs(60))
        );
        // Someone elsewhere is not held up by this client.
        assert!(fail(&throttle, "198.51.100.7", "admin", later).is_ok());
    }

    #[test]
    fn attempts_are_counted_before_their_check() {
        // Sixty concurrent guesses from one client: five get places, the
        // rest are refused while those are being checked.
        let throttle = LoginThrottle::new();
        let now = Instant::now();
        let held: Vec<_> = (0..60)
            .filter_map(|_| {
                throttle
                    .attempt_at(ip("192.0.2.1"), None, "admin", now)
                    .ok()
            })
            .collect();
        assert_eq!(held.len(), CLIENT_AND_ACCOUNT.free as usize);
        held.into_iter().for_each(Attempt::failed);
        assert!(fail(&throttle, "192.0.2.1", "admin", now).is_err());
    }

    #[test]
    fn right_passwords_never_count() {
        let throttle = LoginThrottle::new();
        let now = Instant::now();
        // An office: 100 people behind one address, each logging in, and
        // one of them 100 times.
        for n in 0..100 {
            assert!(succeed(&throttle, "203.0.113.9", &format!("user{n}"), now));
            assert!(succeed(&throttle, "203.0.113.9", "admin", now));
        }
        // The address still has all of its failures left.
        for n in 0..ADDRESS.free {
            assert!(fail(&throttle, "203.0.113.9", &format!("nobody{n}"), now).is_ok());
        }
        assert!(fail(&throttle, "203.0.113.9", "nobody-else", now).is_err());
    }

    #[test]
    fn attempts_never_checked_cost_nothing() {
        let throttle = LoginThrottle::new();
        let now = Instant::now();
        for _ in 0..100 {
            // No password-check place, or the database was down.
            drop(
                throttle
                    .attempt_at(ip("192.0.2.1"), None, "admin", now)
                    .unwrap(),
            );
        }
        for _ in 0..CLIENT_AND_ACCOUNT.free {
            assert!(fail(&throttle, "192.0.2.1", "admin", now).is_ok());
        }
    }

    #[test]
    fn a_refused_attempt_takes_nothing() {
        let throttle = LoginThrottle::new();
        let now = Instant::now();
        for n in 0..ADDRESS.free {
            fail(&throttle, "192.0.2.1", &format!("user{n}"), now).unwrap();
        }
        // Refused by the address's budget: the place it took in its own is
        // given back, and the account's was never touched.
        for _ in 0..10 {
            assert!(fail(&throttle, "192.0.2.1", "victim", now).is_err());
        }
        assert!(throttle.records.get("c|192.0.2.1|victim").is_none());
        assert!(throttle.records.get("u|victim").is_none());
    }

    #[test]
    fn a_refund_leaves_no_wait_behind() {
        // A client at its limit gets a slot after the wait; if that attempt
        // is never checked, the slot is still open.
        let throttle = LoginThrottle::new();
        let now = Instant::now();
        for _ in 0..CLIENT_AND_ACCOUNT.free {
            fail(&throttle, "192.0.2.1", "admin", now).unwrap();
        }
        let later = now + Duration::from_secs(30);
        drop(
            throttle
                .attempt_at(ip("192.0.2.1"), None, "admin", later)
                .unwrap(),
        );
        assert!(fail(&throttle, "192.0.2.1", "admin", later).is_ok());
    }

    #[test]
    fn many_addresses_slow_an_account_down_for_strangers_only() {
        let throttle = LoginThrottle::new();
        let start = Instant::now();
        // The owner logged in from home before, and has a known-client cookie.
        assert!(succeed(&throttle, "198.51.100.20", "alice", start));
        let mut owner_refused = 0;
        let mut checked = 0;
        let mut t = start;
        for n in 0..3000u32 {
            // Five guesses a second, each from a new address.
            t += Duration::from_millis(200);
            let from = format!("198.18.{}.{}", n / 250, n % 250);
            if fail(&throttle, &from, "alice", t).is_ok() {
                checked += 1;
            }
            if n % 25 == 0 {
                let home = throttle.attempt_at(ip("198.51.100.20"), None, "alice", t);
                let phone = throttle.attempt_at(ip("100.64.3.3"), Some("phone"), "alice", t);
                for attempt in [home, phone] {
                    match attempt {
                        Ok(a) => a.succeeded(),
                        Err(_) => owner_refused += 1,
                    }
                }
            }
        }
        assert_eq!(owner_refused, 0);
        // 10 minutes of guessing: 10 free, then waits of 1, 2, 4, 8, 16 s and
        // then one every 30 s.
        assert!(checked <= 10 + 5 + 600 / 30, "{checked} guesses checked");
        // A stranger (the owner on a new device) waits at most the cap.
        let wait = fail(&throttle, "192.0.2.99", "alice", t).unwrap_err();
        assert!(wait <= ACCOUNT.cap, "{wait:?}");
        let t = t + ACCOUNT.cap;
        assert!(fail(&throttle, "192.0.2.99", "alice", t).is_ok());
        // Other accounts are unaffected.
        assert!(fail(&throttle, "192.0.2.99", "bob", t).is_ok());
    }

    #[test]
    fn a_known_client_is_held_by_its_own_budget_only() {
        let throttle = LoginThrottle::new();
        let now = Instant::now();
        // Someone sprays accounts from the office address.
        for n in 0..ADDRESS.free {
            fail(&throttle, "203.0.113.9", &format!("user{n}"), now).unwrap();
        }
        assert!(fail(&throttle, "203.0.113.9", "alice", now).is_err());
        // Alice's laptop has its cookie: it gets in.
        let laptop = throttle.attempt_at(ip("203.0.113.9"), Some("laptop"), "alice", now);
        assert!(laptop.as_ref().is_ok_and(Attempt::is_known));
        laptop.unwrap().succeeded();
        // Its own budget: five failures, then waits.
        for _ in 0..CLIENT_AND_ACCOUNT.free {
            throttle
                .attempt_at(ip("203.0.113.9"), Some("laptop"), "alice", now)
                .unwrap()
                .failed();
        }
        assert!(
            throttle
                .attempt_at(ip("203.0.113.9"), Some("laptop"), "alice", now)
                .is_err()
        );
        // A cookie is for its account only.
        let other = throttle.attempt_at(ip("198.51.100.1"), None, "bob", now);
        assert!(other.is_ok_and(|a| !a.is_known()));
    }

    #[test]
    fn an_address_spraying_accounts_is_stopped() {
        let throttle = LoginThrottle::new();
        let now = Instant::now();
        for n in 0..ADDRESS.free {
            assert!(fail(&throttle, "192.0.2.9", &format!("user{n}"), now).is_ok());
        }
        assert!(fail(&throttle, "192.0.2.9", "fresh-name", now).is_err());
    }

    #[test]
    fn ipv6_clients_are_their_64() {
        assert_eq!(
            address_group(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(address_group(ip("::ffff:192.0.2.7")), "192.0.2.7");
        assert_eq!(address_group(ip("192.0.2.7")), "192.0.2.7");
        assert_eq!(address_group(None), "");
        let throttle = LoginThrottle::new();
        let now = Instant::now();
        for n in 1..=CLIENT_AND_ACCOUNT.free {
            let from = format!("2001:db8:1:2::{n}");
            assert!(fail(&throttle, &from, "admin", now).is_ok());
        }
        assert!(fail(&throttle, "2001:db8:1:2:ffff::1", "admin", now).is_err());
        assert!(fail(&throttle, "2001:db8:1:3::1", "admin", now).is_ok());
    }

    #[test]
    fn a_success_clears_the_client_and_the_account() {
        let throttle = LoginThrottle::new();
        let now = Instant::now();
        for _ in 0..CLIENT_AND_ACCOUNT.free {
            fail(&throttle, "192.0.2.1", "admin", now).unwrap();
        }
        for n in 0..5 {
            fail(&throttle, &format!("198.18.0.{n}"), "admin", now).unwrap();
        }
        // The owner, after a wait, gets it right.
        assert!(succeed(
            &throttle,
            "192.0.2.1",
            "admin",
            now + Duration::from_secs(30)
        ));
        assert!(fail(&throttle, "192.0.2.1", "admin", now).is_ok());
        // Strangers at the account start again from ten.
        for n in 0..ACCOUNT.free {
            assert!(fail(&throttle, &format!("198.18.1.{n}"), "admin", now).is_ok());
        }
    }
}
