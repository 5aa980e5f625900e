//! Password hashing with Argon2id (the `argon2` crate's defaults, OWASP's
//! recommended minimum). Hashing is deliberately slow, so it runs on the
//! blocking pool, never on the async threads.

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Argon2, PasswordHash};

use crate::error::ApiError;

pub async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(ApiError::internal)?
}

pub fn hash_blocking(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(ApiError::internal)
}

/// Checks `password` against `stored`. With no stored hash (unknown user) it
/// still spends the time of one verification, so timing does not reveal which
/// usernames exist.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || verify_blocking(&password, stored.as_deref()))
        .await
        .unwrap_or(false)
}

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
    use rand::Rng;
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

    #[test]
    fn generated_passwords_differ() {
        assert_ne!(generate(), generate());
        assert_eq!(generate().len(), 20);
    }
}
