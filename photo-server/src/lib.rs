//! photo-server: the PhotoStack image server.
//!
//! One stateless process per pod. Originals live on a shared write-once store
//! (`storage::originals`), rendered sizes in a per-pod cache
//! (`storage::cache`), metadata and accounts in SQL (`db`). Rendering runs on
//! a bounded CPU pool (`render::pool`). The rules of the site (who may see,
//! edit and upload what) live in `domain`; the JSON API (`http`) and the
//! pages (`web`) are thin layers over it; `server` runs the listeners.

pub mod allocator;
pub mod auth;
pub mod backup;
pub mod bootstrap;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod orphans;
pub mod render;
pub mod renditions;
pub mod server;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod units;
pub mod web;
pub mod zero_copy;

use std::time::Duration;

pub use config::Config;
pub use server::{Listeners, serve};
pub use state::{AppState, SharedState, StartError};

/// Checks the configuration and opens everything, then reaches the
/// database in the background (see `bootstrap`): the returned state serves
/// at once and reports not-ready until the database answers.
pub async fn start(config: Config) -> Result<SharedState, StartError> {
    config.check()?;
    let admin_password = bootstrap::configured_password(&config)?;
    let state = AppState::open(config)?;
    tokio::spawn(bootstrap::connect_database(state.clone(), admin_password));
    spawn_session_sweeper(state.clone());
    Ok(state)
}

/// Expired sessions are removed hourly (any replica may do it; the delete is
/// idempotent).
fn spawn_session_sweeper(state: SharedState) {
    tokio::spawn(async move {
        state.db.ready().await;
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match state.db.delete_expired_sessions().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "expired sessions removed"),
                Err(e) => tracing::warn!(error = %e, "cannot remove expired sessions"),
            }
        }
    });
}
