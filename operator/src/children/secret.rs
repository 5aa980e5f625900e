//! The credentials Secret: session key and admin password.
//!
//! The values are generated once ([`generate`]) and then always read back from the existing
//! Secret by the controller, so a reconcile never rotates them by accident (rotating the
//! session key would log every user out; rotating the admin password would lock the admin
//! out of a running pod's view). `render` leaves the Secret out, so its output is
//! deterministic and carries no secret.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use rand::RngExt;

use super::inputs::Credentials;
use crate::names;
use crate::site::ValidatedSite;

pub const SESSION_KEY: &str = "session-key";
pub const ADMIN_PASSWORD: &str = "admin-password";

pub fn build(site: &ValidatedSite, creds: &Credentials) -> Secret {
    Secret {
        metadata: site.meta(names::credentials_secret(site.name), "server"),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (
                SESSION_KEY.to_string(),
                ByteString(creds.session_key.clone().into_bytes()),
            ),
            (
                ADMIN_PASSWORD.to_string(),
                ByteString(creds.admin_password.clone().into_bytes()),
            ),
        ])),
        ..Secret::default()
    }
}

/// Credentials from an existing Secret, generating only the keys it lacks.
pub fn from_existing(existing: Option<&Secret>) -> Credentials {
    let get = |key: &str| {
        existing
            .and_then(|s| s.data.as_ref())
            .and_then(|d| d.get(key))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .filter(|v| !v.is_empty())
    };
    Credentials {
        session_key: get(SESSION_KEY).unwrap_or_else(|| random_token(64)),
        admin_password: get(ADMIN_PASSWORD).unwrap_or_else(|| random_token(24)),
    }
}

/// Fresh credentials.
pub fn generate() -> Credentials {
    from_existing(None)
}

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn keeps_existing_values() {
        let s = demo();
        let site = valid(&s);
        let first = generate();
        assert_eq!(first.session_key.len(), 64);
        assert_eq!(first.admin_password.len(), 24);
        let secret = build(&site, &first);
        assert_eq!(from_existing(Some(&secret)), first);
        assert_ne!(generate(), first);
    }

    #[test]
    fn fills_missing_keys_only() {
        let s = demo();
        let site = valid(&s);
        let mut secret = build(&site, &generate());
        let kept = secret.data.as_ref().unwrap()[SESSION_KEY].clone();
        secret.data.as_mut().unwrap().remove(ADMIN_PASSWORD);
        let c = from_existing(Some(&secret));
        assert_eq!(c.session_key.as_bytes(), kept.0.as_slice());
        assert_eq!(c.admin_password.len(), 24);
    }
}
