//! Sessions, CSRF tokens and login rate limiting.
//!
//! - A session is a random token in an HttpOnly cookie; the database keeps
//!   only its SHA-256, so any replica recognises it and a logout ends it on all
//!   of them. API requests check the database every time; the image path uses
//!   a short-lived in-memory cache (`PHOTO_METADATA_TTL`) to keep the database
//!   off cached hits.
//! - The CSRF token is an HMAC, under the key shared by all replicas, of the
//!   session token (or, before login, of a random `photo_anon` cookie), so it
//!   needs no storage and verifies on every replica.

pub mod cookies;
pub mod limiter;
pub mod password;

use std::net::IpAddr;
use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub use limiter::LoginLimiter;

use crate::db::{Db, DbResult, SessionUser};

pub const SESSION_COOKIE: &str = "photo_session";
pub const ANON_COOKIE: &str = "photo_anon";
pub const CSRF_HEADER: &str = "x-csrf-token";

pub struct Auth {
    key: Vec<u8>,
    pub session_ttl: Duration,
    cache: moka::sync::Cache<String, Option<SessionUser>>,
    pub limiter: LoginLimiter,
    trusted_proxies: Vec<ipnet::IpNet>,
}

/// A random token for a cookie: 32 bytes, base64url.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database stores for a session token.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Auth {
    pub fn new(
        key: Vec<u8>,
        session_ttl: Duration,
        cache_ttl: Duration,
        trusted_proxies: Vec<ipnet::IpNet>,
    ) -> Auth {
        Auth {
            key,
            session_ttl,
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(cache_ttl.max(Duration::from_millis(1)))
                .build(),
            limiter: LoginLimiter::new(),
            trusted_proxies,
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC accepts any key length")
    }

    /// The CSRF token bound to a session token or an anonymous cookie.
    pub fn csrf_token(&self, binding: &str) -> String {
        let mut mac = self.mac();
        mac.update(b"csrf\0");
        mac.update(binding.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Constant-time check of a presented CSRF token.
    pub fn csrf_valid(&self, binding: &str, presented: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(presented.trim()) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(b"csrf\0");
        mac.update(binding.as_bytes());
        mac.verify_slice(&tag).is_ok()
    }

    /// The session's user, read from the database.
    pub async fn session_user(&self, db: &Db, token: &str) -> DbResult<Option<SessionUser>> {
        let hash = token_hash(token);
        let user = db.session_user(&hash).await?;
        self.cache.insert(hash, user.clone());
        Ok(user)
    }

    /// The session's user from the short-lived cache, or the database.
    pub async fn session_user_cached(&self, db: &Db, token: &str) -> DbResult<Option<SessionUser>> {
        if let Some(user) = self.cache.get(&token_hash(token)) {
            return Ok(user);
        }
        self.session_user(db, token).await
    }

    /// Ends a session everywhere (the database) and here (the cache).
    pub async fn end_session(&self, db: &Db, token: &str) -> DbResult<()> {
        let hash = token_hash(token);
        db.delete_session(&hash).await?;
        self.cache.invalidate(&hash);
        Ok(())
    }

    /// Whether the request reached us over TLS: `X-Forwarded-Proto: https`
    /// counts only from a trusted proxy (the ingress controller).
    pub fn request_is_tls(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> bool {
        let Some(peer) = peer else { return false };
        if !self.trusted_proxies.iter().any(|net| net.contains(&peer)) {
            return false;
        }
        headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .next()
                    .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
            })
    }

    /// The client's address: the first `X-Forwarded-For` hop when the peer is
    /// a trusted proxy, else the peer itself.
    pub fn client_ip(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        let peer = peer?;
        if self.trusted_proxies.iter().any(|net| net.contains(&peer)) {
            let forwarded = headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse().ok());
            if let Some(ip) = forwarded {
                return Some(ip);
            }
        }
        Some(peer)
    }
}

/// Loads the shared key: from the flag or env, a file, or (locally) a key
/// generated once into the data dir.
pub fn load_key(
    value: Option<&str>,
    file: Option<&std::path::Path>,
    data_dir: &std::path::Path,
) -> std::io::Result<Vec<u8>> {
    if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
        return Ok(v.trim().as_bytes().to_vec());
    }
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)?;
        let text = text.trim();
        if text.is_empty() {
            return Err(std::io::Error::other(format!(
                "{} is empty",
                file.display()
            )));
        }
        return Ok(text.as_bytes().to_vec());
    }
    let path = data_dir.join("session.key");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().as_bytes().to_vec()),
        _ => {
            std::fs::create_dir_all(data_dir)?;
            let key = new_token();
            write_private(&path, key.as_bytes())?;
            tracing::info!(path = %path.display(), "generated a session key");
            Ok(key.into_bytes())
        }
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(key: &str) -> Auth {
        Auth::new(
            key.as_bytes().to_vec(),
            Duration::from_secs(60),
            Duration::from_secs(5),
            vec!["10.0.0.0/8".parse().unwrap()],
        )
    }

    #[test]
    fn csrf_tokens_bind_to_the_session_and_the_key() {
        let a = auth("key one");
        let token = a.csrf_token("session-1");
        assert!(a.csrf_valid("session-1", &token));
        assert!(!a.csrf_valid("session-2", &token));
        assert!(!auth("key two").csrf_valid("session-1", &token));
        assert!(!a.csrf_valid("session-1", ""));
        assert!(!a.csrf_valid("session-1", "not base64 !!"));
        // Another replica with the same key accepts it.
        assert!(auth("key one").csrf_valid("session-1", &token));
    }

    #[test]
    fn forwarded_proto_counts_only_from_trusted_proxies() {
        let a = auth("k");
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        headers.insert("x-forwarded-for", "203.0.113.9, 10.1.1.1".parse().unwrap());
        let proxy: IpAddr = "10.2.3.4".parse().unwrap();
        let stranger: IpAddr = "198.51.100.7".parse().unwrap();
        assert!(a.request_is_tls(&headers, Some(proxy)));
        assert!(!a.request_is_tls(&headers, Some(stranger)));
        assert_eq!(
            a.client_ip(&headers, Some(proxy)),
            "203.0.113.9".parse().ok()
        );
        assert_eq!(a.client_ip(&headers, Some(stranger)), Some(stranger));
    }

    #[test]
    fn the_local_key_is_generated_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_key(None, None, dir.path()).unwrap();
        let second = load_key(None, None, dir.path()).unwrap();
        assert_eq!(first, second);
        assert!(first.len() >= 32);
        assert_eq!(
            load_key(Some(" shared "), None, dir.path()).unwrap(),
            b"shared"
        );
    }
}
