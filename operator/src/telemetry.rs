//! Logging: `tracing` to stderr, human-readable or JSON (`--log-format json` or
//! `PHOTO_OPERATOR_LOG_FORMAT=json`, for log shippers), filtered by `RUST_LOG`
//! (default `info`).

use tracing_subscriber::{EnvFilter, fmt};

/// Install the global subscriber. Safe to call once.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        let _ = builder.json().flatten_event(true).try_init();
    } else {
        let _ = builder.try_init();
    }
}
