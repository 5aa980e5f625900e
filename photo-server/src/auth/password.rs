//! Password hashing with Argon2id (the `argon2` crate's defaults, OWASP's
//! recommended minimum: 19 MiB of memory and a few tens of milliseconds of
//! CPU per hash). Hashing is deliberately expensive, so it runs on the
//! blocking pool, never on the async threads, and [`Passwords`] bounds how
//! many run at once: without a bound, sixty concurrent logins took 1.2 GB.
//! A quarter of its places are kept for clients known to the account they
//! log in to (see `auth::throttle`), so guesses cannot crowd out the owner.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Argon2, PasswordHash};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a password could not be checked or hashed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    /// Every place is taken (the API answers `503` with Retry-After).
    #[error("too many logins are being checked at once; try again shortly")]
    Busy,
    /// Hashing failed, or its task did.
    #[error("{0}")]
    Failed(String),
}

/// Longest password accepted anywhere, in bytes (Argon2 takes any length,
/// but nobody needs more and a megabyte-long one is an attack).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Bounded password checking: `running` hashes at once, and four times
/// that admitted in all (running, or waiting for a turn); past that,
/// [`PasswordError::Busy`] (503 with Retry-After) at once, without waiting.
/// Anyone may take three quarters of the places; the last quarter is kept
/// for known clients ([`Passwords::admit_known`]). An Argon2 hash's memory
/// is held only while it runs, not while it waits.
pub struct Passwords {
    /// All places.
    admission: Arc<Semaphore>,
    /// The places anyone may take.
    open: Arc<Semaphore>,
    running: Arc<Semaphore>,
}

/// A place among the admitted checks; hashing waits for a running slot.
pub struct Admitted {
    _admission: OwnedSemaphorePermit,
    _open: Option<OwnedSemaphorePermit>,
    running: Arc<Semaphore>,
}

impl Passwords {
    /// `running` checks at once (0: one per CPU).
    pub fn new(running: usize) -> Passwords {
        let running = if running == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            running
        };
        Passwords {
            admission: Arc::new(Semaphore::new(running * 4)),
            open: Arc::new(Semaphore::new(running * 3)),
            running: Arc::new(Semaphore::new(running)),
        }
    }

    /// Takes one of the places open to anyone, or refuses at once.
    pub fn admit(&self) -> Result<Admitted, PasswordError> {
        let open = self
            .open
            .clone()
            .try_acquire_owned()
            .map_err(|_| PasswordError::Busy)?;
        self.place(Some(open))
    }

    /// Takes any place, those kept for known clients included: for a client
    /// known to the account (or a signed-in admin), or refuses at once.
    pub fn admit_known(&self) -> Result<Admitted, PasswordError> {
        self.place(None)
    }

    fn place(&self, open: Option<OwnedSemaphorePermit>) -> Result<Admitted, PasswordError> {
        let admission = self
            .admission
            .clone()
            .try_acquire_owned()
            .map_err(|_| PasswordError::Busy)?;
        Ok(Admitted {
            _admission: admission,
            _open: open,
            running: self.running.clone(),
        })
    }

    /// Hashes a new password (admission included): for signed-in admins, so
    /// from the places kept for known clients too.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.admit_known()?.hash(password).await
    }
}

impl Admitted {
    async fn run<T: Send + 'static>(
        self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| PasswordError::Failed(e.to_string()))?;
        let result = tokio::task::spawn_blocking(move || {
            let _running = running;
            job()
        })
        .await
        .map_err(|e| PasswordError::Failed(e.to_string()));
        drop(self);
        result
    }

    /// Checks `password` against `stored` (see [`verify_blocking`]).
    pub async fn verify(
        self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, PasswordError> {
        self.run(move || verify_blocking(&password, stored.as_deref()))
            .await
    }

    pub async fn hash(self, password: String) -> Result<String, PasswordError> {
        self.run(move || hash_blocking(&password)).await?
    }
}

pub fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Failed(e.to_string()))
}

/// Checks `password` against `stored`. With no stored hash (unknown user) it
/// still spends the time of one verification, so timing does not reveal which
/// usernames exist.
pub fn verify_blocking(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_blocking("dummy password").unwrap_or_default());
    let (candidate, real) = match stored {
        Some(s) => (s, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(candidate) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && real
}

/// A readable random password for the generated admin account.
pub fn generate() -> String {
    use rand::RngExt;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_the_right_password() {
        let h = hash_blocking("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_blocking("correct horse", Some(&h)));
        assert!(!verify_blocking("wrong", Some(&h)));
        assert!(!verify_blocking("correct horse", None));
        assert!(!verify_blocking("x", Some("not a hash")));
    }

    #[tokio::test]
    async fn checks_past_the_bound_are_refused_at_once() {
        let passwords = Passwords::new(1);
        // One running place, four admitted in all, three of them for anyone.
        let anyone: Vec<_> = (0..3).map(|_| passwords.admit().unwrap()).collect();
        assert!(matches!(passwords.admit(), Err(PasswordError::Busy)));
        let known = passwords.admit_known().unwrap();
        assert!(matches!(passwords.admit_known(), Err(PasswordError::Busy)));
        drop(anyone);
        // Known clients may take the open places too.
        let more: Vec<_> = (0..3).map(|_| passwords.admit_known().unwrap()).collect();
        assert!(matches!(passwords.admit(), Err(PasswordError::Busy)));
        drop((known, more));
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        let admitted = passwords.admit().unwrap();
        assert!(
            admitted
                .verify("correct horse".into(), Some(hash))
                .await
                .unwrap()
        );
    }

    #[test]
    fn generated_passwords_differ() {
        assert_ne!(generate(), generate());
        assert_eq!(generate().len(), 20);
    }
}
