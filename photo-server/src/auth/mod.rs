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
//! - The known-client cookie (`photo_known`), set at every successful login,
//!   is a random device id and an HMAC of it and the account under the same
//!   key. It grants no access: it tells the login throttle that this device
//!   logged in to that account before, so it gets a budget of its own that
//!   guessing from elsewhere cannot use up (see [`throttle`]).

pub mod cookies;
pub mod extract;
pub mod password;
pub mod session;
pub mod throttle;

use std::net::IpAddr;
use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub use password::Passwords;
pub use throttle::LoginThrottle;

use crate::db::cached::Lookups;
use crate::db::{Db, DbResult, SessionUser};

pub const SESSION_COOKIE: &str = "photo_session";
pub const ANON_COOKIE: &str = "photo_anon";
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const KNOWN_COOKIE: &str = "photo_known";
/// How long a device stays known to an account after a login from it.
pub const KNOWN_CLIENT_TTL: Duration = Duration::from_secs(365 * 86400);

pub struct Auth {
    key: Vec<u8>,
    pub session_ttl: Duration,
    /// Sessions for the image path (see `db::cached`).
    cache: Lookups<Option<SessionUser>>,
    pub throttle: LoginThrottle,
    pub passwords: Passwords,
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
        password_checks: usize,
    ) -> Auth {
        Auth {
            key,
            session_ttl,
            cache: Lookups::new(100_000, cache_ttl),
            throttle: LoginThrottle::new(),
            passwords: Passwords::new(password_checks),
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

    fn known_tag(&self, device: &str, username: &str) -> Hmac<Sha256> {
        let mut mac = self.mac();
        mac.update(b"known\0");
        mac.update(username.to_lowercase().as_bytes());
        mac.update(b"\0");
        mac.update(device.as_bytes());
        mac
    }

    /// A new known-client cookie value for `username`: `device.tag`.
    pub fn known_client_token(&self, username: &str) -> String {
        let device = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        let tag = URL_SAFE_NO_PAD.encode(self.known_tag(&device, username).finalize().into_bytes());
        format!("{device}.{tag}")
    }

    /// The device id of a known-client cookie, when it is genuine and was
    /// set by a login to `username` (checked in constant time).
    pub fn known_device<'a>(&self, token: &'a str, username: &str) -> Option<&'a str> {
        let (device, tag) = token.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.known_tag(device, username)
            .verify_slice(&tag)
            .is_ok()
            .then_some(device)
    }

    /// The session's user, read from the database.
    pub async fn session_user(&self, db: &Db, token: &str) -> DbResult<Option<SessionUser>> {
        let hash = token_hash(token);
        let user = db.session_user(&hash).await?;
        self.cache.insert(hash, user.clone());
        Ok(user)
    }

    /// The session's user from the cache, or the database.
    pub async fn session_user_cached(&self, db: &Db, token: &str) -> DbResult<Option<SessionUser>> {
        let hash = token_hash(token);
        self.cache
            .get(&hash, || async { db.session_user(&hash).await })
            .await
    }

    /// Ends a session everywhere (the database) and here (the cache).
    pub async fn end_session(&self, db: &Db, token: &str) -> DbResult<()> {
        let hash = token_hash(token);
        db.delete_session(&hash).await?;
        self.cache.invalidate(&hash);
        Ok(())
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// Whether the request reached us over TLS: `X-Forwarded-Proto: https`
    /// counts only from a trusted proxy (the ingress controller).
    pub fn request_is_tls(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> bool {
        let Some(peer) = peer else { return false };
        if !self.trusted(peer) {
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

    /// The client's address. `X-Forwarded-For` is read only when the peer is
    /// a trusted proxy, and from the right: each proxy appends the address
    /// it saw, so the right-most address that is not a trusted proxy is the
    /// client. Anything left of it was written by the client and is ignored.
    pub fn client_ip(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusted(peer) {
            return Some(peer);
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // Not an address: nothing further left can be trusted.
                break;
            };
            client = ip;
            if !self.trusted(ip) {
                break;
            }
        }
        Some(client)
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
}

/// Loads the shared key: from the flag or env, a file, or (locally) a key
/// generated once into the data dir.
pub fn load_key(
    value: Option<&str>,
    file: Option<&std::path::Path>,
    data_dir: &std::path::Path,
) -> std::io::Result<Vec<u8>> {
    let strong = |text: &str| {
        crate::config::check_session_key(text.as_bytes())
            .map(|()| text.as_bytes().to_vec())
            .map_err(|e| std::io::Error::other(e.to_string()))
    };
    if let Some(v) = value {
        return strong(v.trim());
    }
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", file.display())))?;
        return strong(text.trim());
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
            1,
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
    fn the_client_is_the_right_most_untrusted_hop() {
        let a = auth("k");
        let proxy: IpAddr = "10.2.3.4".parse().unwrap();
        let with = |xff: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("x-forwarded-for", xff.parse().unwrap());
            a.client_ip(&headers, Some(proxy))
        };
        // A client cannot pick its address by sending its own header: the
        // proxy appends what it saw, and that is what counts.
        assert_eq!(with("1.1.1.1, 203.0.113.9"), "203.0.113.9".parse().ok());
        assert_eq!(
            with("1.1.1.1, 203.0.113.9, 10.9.9.9"),
            "203.0.113.9".parse().ok(),
            "trusted hops on the right are skipped"
        );
        assert_eq!(with("garbage, 203.0.113.9"), "203.0.113.9".parse().ok());
        assert_eq!(with("203.0.113.9, garbage"), Some(proxy));
        assert_eq!(with("198.51.100.1:4711"), "198.51.100.1".parse().ok());
        // Two headers read as one list.
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", "1.1.1.1".parse().unwrap());
        headers.append("x-forwarded-for", "203.0.113.10".parse().unwrap());
        assert_eq!(
            a.client_ip(&headers, Some(proxy)),
            "203.0.113.10".parse().ok()
        );
    }

    #[test]
    fn the_local_key_is_generated_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_key(None, None, dir.path()).unwrap();
        let second = load_key(None, None, dir.path()).unwrap();
        assert_eq!(first, second);
        assert!(first.len() >= 32);
        let shared = "Vq3x9L-kT2pWz8RmYc4NbHs7DfJ0aGe1";
        assert_eq!(
            load_key(Some(&format!(" {shared} ")), None, dir.path()).unwrap(),
            shared.as_bytes()
        );
    }

    #[test]
    fn weak_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = load_key(Some("k"), None, dir.path()).unwrap_err();
        assert!(error.to_string().contains("at least 32 bytes"), "{error}");
        let file = dir.path().join("key");
        std::fs::write(&file, "short\n").unwrap();
        assert!(load_key(None, Some(&file), dir.path()).is_err());
        assert!(load_key(Some(""), None, dir.path()).is_err());
        // Long enough, but with too little variety.
        for plain in [
            "a".repeat(32),
            "0123456789abcdef".repeat(2),
            "ab".repeat(20),
        ] {
            let error = load_key(Some(&plain), None, dir.path()).unwrap_err();
            assert!(error.to_string().contains("too little variety"), "{error}");
        }
    }

    #[test]
    fn known_client_cookies_are_bound_to_their_account_and_key() {
        let a = auth("key one");
        let token = a.known_client_token("Alice");
        let device = a.known_device(&token, "alice").expect("genuine");
        assert!(token.starts_with(device));
        assert_eq!(auth("key one").known_device(&token, "ALICE"), Some(device));
        assert_eq!(a.known_device(&token, "bob"), None);
        assert_eq!(auth("key two").known_device(&token, "alice"), None);
        assert_eq!(a.known_device(&format!("other{token}"), "alice"), None);
        assert_eq!(a.known_device("no-dot", "alice"), None);
        assert_eq!(a.known_device("x.not base64!", "alice"), None);
        assert_ne!(a.known_client_token("alice"), a.known_client_token("alice"));
    }
}
