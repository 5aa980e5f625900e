//! `/healthz`, `/readyz`, `/metrics`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use crate::db::DbStatus;
use crate::state::SharedState;

/// Liveness: the process answers. Deliberately checks nothing else, so a
/// database outage makes pods unready, not restarted in a loop.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: not shutting down, the database reached, migrated and
/// answering (or unreachable for less than `db_outage_grace`: a restart or a
/// failover must not take every replica out at once), the originals store
/// mounted. The cache is reported (`degraded` once a write to its disk has
/// failed, until one works again) but never fails readiness: without its
/// disk the pod still serves, keeping what it renders in the cache's memory
/// layer (`PHOTO_MEMORY_CACHE_BYTES`, if any) and rendering the rest again.
pub async fn readyz(State(state): State<SharedState>) -> impl IntoResponse {
    let database = if state.db.status() != DbStatus::Ready {
        "connecting"
    } else {
        // Well inside the probe's own timeout (1 s in the operator's Deployment and in
        // HAProxy's checks): an answer that comes late reads as a probe failure there.
        match tokio::time::timeout(Duration::from_millis(500), state.db.ping()).await {
            Ok(Ok(())) => "ok",
            Ok(Err(_)) => "error",
            Err(_) => "timeout",
        }
    };
    let database_usable = match database {
        "ok" => {
            state.db.record_check(true);
            true
        }
        "connecting" => false,
        _ => state.db.record_check(false) < state.config.db_outage_grace,
    };
    let originals = if state.originals.usable() {
        "ok"
    } else {
        "error"
    };
    let cache = if state.renditions.cache().writable() {
        "ok"
    } else {
        "degraded"
    };
    let shutting_down = state.shutting_down();
    let ready = database_usable && originals == "ok" && !shutting_down;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "ready": ready,
            "shutting_down": shutting_down,
            "database": database,
            "originals": originals,
            "cache": cache,
        })),
    )
}

pub async fn metrics(State(state): State<SharedState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
