//! Server configuration: every setting is a command-line flag and an environment
//! variable (the names in CONTRACT.md), with defaults that make
//! `cargo run --bin photo-server` serve a working site with no setup.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::renditions::Renditions;

/// PhotoStack image server.
#[derive(Debug, Clone, Parser)]
#[command(name = "photo-server", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "PHOTO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// A second address serving only `/metrics`, `/healthz` and `/readyz` (for the kubelet
    /// and Prometheus; the image sets 0.0.0.0:9090). Unset: `/metrics` is served on
    /// PHOTO_LISTEN only when that is a loopback address (a local run), never to the network.
    #[arg(long, env = "PHOTO_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Most connections open at once on the public address; past it, new ones wait in the
    /// kernel's queue. 0: derived from the open-file limit (at most 4096).
    #[arg(long, env = "PHOTO_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,

    /// Most of those one client may hold (an IPv4 address, an IPv6 /64); connections from
    /// PHOTO_TRUSTED_PROXIES are not counted per client. Past it, its new connections are
    /// closed at once. 0: an eighth of PHOTO_MAX_CONNECTIONS, at least 16.
    #[arg(long, env = "PHOTO_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 0)]
    pub max_connections_per_client: usize,

    /// A request's line and headers must arrive within this time of its first byte.
    #[arg(long, env = "PHOTO_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// An idle keep-alive connection is closed after this long. Keep it above the idle
    /// timeout of the proxy in front (ingress-nginx and AWS load balancers use 60 s).
    #[arg(long, env = "PHOTO_IDLE_TIMEOUT", default_value = "75s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// A request body that sends nothing for this long fails with 408. It is also the
    /// allowance before PHOTO_BODY_MIN_RATE counts.
    #[arg(long, env = "PHOTO_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_timeout: Duration,

    /// Bytes per second a request body must average: the whole body is due
    /// PHOTO_BODY_TIMEOUT after the request began plus one second per this many bytes
    /// received, else 408. 0: only the stall timeout.
    #[arg(long, env = "PHOTO_BODY_MIN_RATE", default_value_t = 1024)]
    pub body_min_rate: u64,

    /// A response the client does not read for this long is abandoned.
    #[arg(long, env = "PHOTO_WRITE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub write_timeout: Duration,

    /// `postgres://...` in a cluster. Unset: an embedded SQLite file under the data dir.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Directory for local state (SQLite file, generated session key, default originals and cache).
    #[arg(long, env = "PHOTO_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Shared, write-once store of uploaded originals (a ReadWriteMany volume in a cluster).
    #[arg(long, env = "PHOTO_ORIGINALS_DIR")]
    pub originals_dir: Option<PathBuf>,

    /// Per-pod cache of rendered sizes (an emptyDir in a cluster).
    #[arg(long, env = "PHOTO_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Upper bound of the rendition cache on disk; least recently used files are evicted.
    #[arg(long, env = "PHOTO_CACHE_MAX_BYTES", default_value_t = 1 << 30)]
    pub cache_max_bytes: u64,

    /// Hot renditions under 32 KiB kept in memory, so their hits need no disk
    /// read (larger ones are sent from their cache files, kept open), and
    /// renditions the disk cache cannot take.
    #[arg(long, env = "PHOTO_MEMORY_CACHE_BYTES", default_value_t = 64 << 20)]
    pub memory_cache_bytes: u64,

    /// Rendition widths in pixels, comma-separated. `orig` (the original) is always served.
    #[arg(long, env = "PHOTO_RENDITIONS", default_value = "240,640,1440,2048")]
    pub renditions: Renditions,

    /// Admin account created or updated at start.
    #[arg(long, env = "PHOTO_ADMIN_USER", default_value = "admin")]
    pub admin_user: String,

    /// Admin password. Unset (and no file): generated and printed once if the admin does not exist yet.
    #[arg(long, env = "PHOTO_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// File holding the admin password (e.g. a mounted Secret).
    #[arg(long, env = "PHOTO_ADMIN_PASSWORD_FILE")]
    pub admin_password_file: Option<PathBuf>,

    /// Key shared by all replicas for everything they sign (CSRF tokens). Unset: generated into the data dir.
    #[arg(long, env = "PHOTO_SESSION_KEY", hide_env_values = true)]
    pub session_key: Option<String>,

    /// File holding the session key.
    #[arg(long, env = "PHOTO_SESSION_KEY_FILE")]
    pub session_key_file: Option<PathBuf>,

    /// Session lifetime.
    #[arg(long, env = "PHOTO_SESSION_TTL", default_value = "30d", value_parser = parse_duration)]
    pub session_ttl: Duration,

    /// How long photo metadata and sessions are cached in memory on the image path.
    /// A visibility change or a logout on another replica takes at most this long to apply there.
    #[arg(long, env = "PHOTO_METADATA_TTL", default_value = "5s", value_parser = parse_duration)]
    pub metadata_ttl: Duration,

    /// How long the database may be unreachable before `/readyz` fails. A restart or a
    /// failover takes seconds and hits every replica at once: taking them all out of the
    /// Service would stop cached photos too, while requests that need the database already
    /// get 503 with Retry-After.
    #[arg(long, env = "PHOTO_DB_OUTAGE_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub db_outage_grace: Duration,

    /// Largest accepted original, in bytes.
    #[arg(long, env = "PHOTO_MAX_UPLOAD_BYTES", default_value_t = 50 << 20)]
    pub max_upload_bytes: u64,

    /// Bytes of originals one user may store; past it an upload is refused (413) and
    /// nothing of it is kept. Admins are not limited. 0: no quota.
    #[arg(long, env = "PHOTO_USER_QUOTA_BYTES", default_value_t = 10 << 30)]
    pub user_quota_bytes: u64,

    /// Largest accepted request body for `POST /rest/edit` (several files), in bytes.
    #[arg(long, env = "PHOTO_MAX_REQUEST_BYTES", default_value_t = 200 << 20)]
    pub max_request_bytes: u64,

    /// Largest accepted image, in pixels (width x height); stops decompression bombs.
    #[arg(long, env = "PHOTO_MAX_PIXELS", default_value_t = 100_000_000)]
    pub max_pixels: u64,

    /// Memory one image decode may use, in bytes (checked from the headers before
    /// decoding); an upload that would need more is refused.
    #[arg(long, env = "PHOTO_DECODE_MAX_BYTES", default_value_t = 256 << 20)]
    pub decode_max_bytes: u64,

    /// Render threads. 0: one per CPU.
    #[arg(long, env = "PHOTO_RENDER_THREADS", default_value_t = 0)]
    pub render_threads: usize,

    /// Memory all running renders may take together, in bytes, as planned
    /// from each image's headers (its decode, as checked against
    /// PHOTO_DECODE_MAX_BYTES, and its resized pixels). A render that does not
    /// fit waits while smaller ones run; one that needs more than this runs
    /// alone. 0: not counted.
    #[arg(long, env = "PHOTO_RENDER_MEMORY_BYTES", default_value_t = 128 << 20)]
    pub render_memory_bytes: u64,

    /// Renders allowed to wait for a thread; beyond this, `503` with `Retry-After`.
    #[arg(long, env = "PHOTO_RENDER_QUEUE", default_value_t = 64)]
    pub render_queue: usize,

    /// JPEG quality of renditions (1-100).
    #[arg(long, env = "PHOTO_JPEG_QUALITY", default_value_t = 82, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: u8,

    /// Proxies in front of the server (CIDRs, comma-separated): only from these are
    /// `X-Forwarded-For` and `X-Forwarded-Proto` believed. The client is the right-most
    /// `X-Forwarded-For` address that is not one of them. Behind an ingress controller, set
    /// the addresses its pods connect from.
    #[arg(
        long,
        env = "PHOTO_TRUSTED_PROXIES",
        value_delimiter = ',',
        default_value = "127.0.0.0/8,::1/128"
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Password checks (Argon2, about 19 MiB each) running at once; three times as many
    /// more wait for a turn, and past those a login answers 503 with Retry-After. 0: one per CPU.
    #[arg(long, env = "PHOTO_PASSWORD_CHECKS", default_value_t = 0)]
    pub password_checks: usize,

    /// How long browsers and shared caches may keep a public photo's renditions. A photo
    /// made private disappears from their caches within this time.
    #[arg(long, env = "PHOTO_PUBLIC_MAX_AGE", default_value = "60s", value_parser = parse_duration)]
    pub public_max_age: Duration,

    /// After SIGTERM, readiness fails for this long before the listener closes,
    /// so load balancers stop sending new requests first.
    #[arg(long, env = "PHOTO_SHUTDOWN_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,

    /// In-flight requests get this long to finish after the listener closes.
    #[arg(long, env = "PHOTO_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Log format.
    #[arg(long, env = "PHOTO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Shortest session key accepted: it signs CSRF tokens for every replica.
pub const MIN_SESSION_KEY_BYTES: usize = 32;
/// Fewest different bytes in a session key: a random key of 32 characters
/// has about 25 (hex: 14; fewer than 8 happens about once in 10^7 keys);
/// `aaaa…` or `passwordpassword…` have 1 and 7.
pub const MIN_SESSION_KEY_DISTINCT_BYTES: usize = 8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(
        "the session key is too short: at least {MIN_SESSION_KEY_BYTES} bytes (PHOTO_SESSION_KEY or PHOTO_SESSION_KEY_FILE; for example `openssl rand -base64 48`)"
    )]
    WeakSessionKey,
    #[error(
        "the session key has too little variety: at least {MIN_SESSION_KEY_DISTINCT_BYTES} different bytes, and not a short run repeated (PHOTO_SESSION_KEY or PHOTO_SESSION_KEY_FILE; for example `openssl rand -base64 48`)"
    )]
    PlainSessionKey,
    #[error("{name} must be more than zero")]
    ZeroTimeout { name: &'static str },
}

/// Refuses a session key that is too short, has fewer than
/// [`MIN_SESSION_KEY_DISTINCT_BYTES`] different bytes, or repeats a run of
/// at most half its length (`abcabcabc…`).
pub fn check_session_key(key: &[u8]) -> Result<(), ConfigError> {
    if key.len() < MIN_SESSION_KEY_BYTES {
        return Err(ConfigError::WeakSessionKey);
    }
    let mut seen = [false; 256];
    key.iter().for_each(|&b| seen[usize::from(b)] = true);
    let distinct = seen.iter().filter(|&&s| s).count();
    let repeated = (1..=key.len() / 2).any(|run| key[run..] == key[..key.len() - run]);
    if distinct < MIN_SESSION_KEY_DISTINCT_BYTES || repeated {
        return Err(ConfigError::PlainSessionKey);
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// Refuses settings that cannot work, with a message naming the setting.
    /// (Secrets read from files are checked where they are read.)
    pub fn check(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("PHOTO_HEADER_TIMEOUT", self.header_timeout),
            ("PHOTO_IDLE_TIMEOUT", self.idle_timeout),
            ("PHOTO_BODY_TIMEOUT", self.body_timeout),
            ("PHOTO_WRITE_TIMEOUT", self.write_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::ZeroTimeout { name });
            }
        }
        Ok(())
    }

    /// Whether the public listener serves `/metrics`: only without a metrics
    /// listener, and only on loopback.
    pub fn metrics_on_public_listener(&self) -> bool {
        self.metrics_listen.is_none() && self.listen.ip().is_loopback()
    }

    pub fn originals_dir(&self) -> PathBuf {
        self.originals_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("originals"))
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("cache"))
    }

    /// A configuration for tests: everything under `dir`, small limits, fixed key.
    pub fn for_tests(dir: &std::path::Path) -> Config {
        let mut config = Config::parse_from(["photo-server"]);
        config.data_dir = dir.to_path_buf();
        config.session_key = Some("test-session-key-0123456789abcdef".into());
        config.admin_password = Some("admin-password".into());
        config.shutdown_delay = Duration::ZERO;
        config.render_threads = 2;
        config
    }
}

/// Parses `500ms`, `5s`, `10m`, `12h`, `30d` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 5s, 10m or 30d"))?;
    let seconds = match unit {
        "ms" => return Ok(Duration::from_millis(number)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use ms, s, m, h or d)"
            ));
        }
    };
    Ok(Duration::from_secs(number * seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn bad_settings_are_refused_with_their_name() {
        let config = Config::parse_from(["photo-server"]);
        assert_eq!(config.check(), Ok(()));
        let mut config = Config::parse_from(["photo-server", "--header-timeout", "0s"]);
        assert_eq!(
            config.check(),
            Err(ConfigError::ZeroTimeout {
                name: "PHOTO_HEADER_TIMEOUT"
            })
        );
        config.header_timeout = Duration::from_secs(1);
        assert!(config.check().is_ok());
    }

    #[test]
    fn weak_session_keys_are_refused() {
        assert_eq!(check_session_key(b"k"), Err(ConfigError::WeakSessionKey));
        for plain in [
            "a".repeat(32),
            "passwordpasswordpasswordpassword".into(),
            "0123456789abcdef0123456789abcdef".into(),
            "0123456789".repeat(3) + "01",
        ] {
            assert_eq!(
                check_session_key(plain.as_bytes()),
                Err(ConfigError::PlainSessionKey),
                "{plain}"
            );
        }
        for fine in [
            "test-session-key-0123456789abcdef",
            "Vq3x9L-kT2pWz8RmYc4NbHs7DfJ0aGe1",
            "3f1c9a07d2b84e6c5a1f0e9d8c7b6a5f",
        ] {
            assert_eq!(check_session_key(fine.as_bytes()), Ok(()), "{fine}");
        }
        assert!(
            ConfigError::PlainSessionKey
                .to_string()
                .contains("PHOTO_SESSION_KEY")
        );
    }

    #[test]
    fn metrics_reach_the_network_only_on_their_own_listener() {
        let local = Config::parse_from(["photo-server"]);
        assert!(
            local.metrics_on_public_listener(),
            "a local run keeps /metrics"
        );
        let exposed = Config::parse_from(["photo-server", "--listen", "0.0.0.0:8080"]);
        assert!(!exposed.metrics_on_public_listener());
        let separate = Config::parse_from([
            "photo-server",
            "--listen",
            "127.0.0.1:8080",
            "--metrics-listen",
            "127.0.0.1:9090",
        ]);
        assert!(!separate.metrics_on_public_listener());
    }

    #[test]
    fn defaults_live_under_the_data_dir() {
        let config = Config::parse_from(["photo-server", "--data-dir", "/srv/photo"]);
        assert_eq!(
            config.originals_dir(),
            PathBuf::from("/srv/photo/originals")
        );
        assert_eq!(config.cache_dir(), PathBuf::from("/srv/photo/cache"));
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert!(config.database_url.is_none());
    }
}
