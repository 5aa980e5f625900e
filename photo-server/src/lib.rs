//! photo-server: the PhotoStack image server.
//!
//! One stateless process per pod. Originals live on a shared write-once store
//! (`storage::originals`), rendered sizes in a per-pod cache
//! (`storage::cache`), metadata and accounts in SQL (`db`). Rendering runs on
//! a bounded CPU pool (`render::pool`); the HTTP layer (`http`) only wires
//! these together.

pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod render;
pub mod renditions;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod web;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

pub use config::Config;
pub use state::{AppState, SharedState};

/// Opens everything and makes sure the admin account exists. Prints a
/// generated admin password once, the first time.
pub async fn start(config: Config) -> anyhow::Result<SharedState> {
    let state = AppState::open(config).await?;
    match bootstrap::ensure_admin(&state.db, &state.config).await? {
        bootstrap::AdminOutcome::CreatedWithPassword(password) => {
            println!(
                "\n  Admin account created.\n    username: {}\n    password: {}\n  (shown once; set PHOTO_ADMIN_PASSWORD to choose your own)\n",
                state.config.admin_user, password
            );
        }
        outcome => tracing::info!(user = %state.config.admin_user, ?outcome, "admin account ready"),
    }
    Ok(state)
}

/// Serves until SIGTERM or Ctrl-C, then shuts down gracefully: readiness
/// fails first (`PHOTO_SHUTDOWN_DELAY`) so load balancers stop sending
/// traffic, then the listener closes and in-flight requests get
/// `PHOTO_SHUTDOWN_TIMEOUT` to finish.
pub async fn serve(state: SharedState, listener: TcpListener) -> anyhow::Result<()> {
    // Listen for SIGTERM before announcing the address: a signal that arrives
    // right after start must still mean a graceful stop.
    let signal = shutdown_signal()?;
    let url = format!("http://{}/", listener.local_addr()?);
    tracing::info!(%url, "photo-server listening");
    println!("photo-server listening on {url}");
    let app = http::app(state.clone());
    spawn_session_sweeper(state.clone());
    let (closing_tx, closing_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown_state = state.clone();
    let server =
        axum::serve(
            listener,
            axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
                SocketAddr,
            >(app),
        )
        .with_graceful_shutdown(async move {
            signal.await;
            tracing::info!("shutdown requested: failing readiness");
            shutdown_state.begin_shutdown();
            tokio::time::sleep(shutdown_state.config.shutdown_delay).await;
            tracing::info!("closing the listener; finishing in-flight requests");
            let _ = closing_tx.send(());
        });
    let deadline = state.config.shutdown_timeout;
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = &mut server => result?,
        _ = async {
            let _ = closing_rx.await;
            tokio::time::sleep(deadline).await;
        } => {
            tracing::warn!(?deadline, "in-flight requests did not finish in time; exiting");
        }
    }
    state.db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

/// Expired sessions are removed hourly (any replica may do it; the delete is
/// idempotent).
fn spawn_session_sweeper(state: SharedState) {
    tokio::spawn(async move {
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
