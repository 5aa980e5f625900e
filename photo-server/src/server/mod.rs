//! The HTTP server around the app: one or two listeners, a cap on open
//! connections, per-connection timeouts, and graceful shutdown.
//!
//! - **Listeners.** The public one (`PHOTO_LISTEN`) serves the site and API.
//!   With `PHOTO_METRICS_LISTEN` a second one serves `/metrics`, `/healthz`
//!   and `/readyz` for the kubelet and Prometheus, with its own small
//!   connection budget: a flood on the public port cannot starve the probes,
//!   and the public port no longer answers `/metrics`.
//! - **Connection cap.** At most `PHOTO_MAX_CONNECTIONS` connections are open
//!   on the public listener; past that the server stops accepting (the kernel
//!   queues, then refuses), so no flood can exhaust file descriptors. The
//!   process's soft descriptor limit is raised to its hard limit at start.
//!   One client holds at most its share of them ([`client_shares`]).
//! - **Timeouts** (HTTP/1.1 only; the server does not speak HTTP/2): a request
//!   head must arrive within `PHOTO_HEADER_TIMEOUT` of its first byte, an idle
//!   keep-alive connection is closed after `PHOTO_IDLE_TIMEOUT`, a response
//!   write that makes no progress for `PHOTO_WRITE_TIMEOUT` ends the
//!   connection ([`timed_io`]), and a request body that stalls for
//!   `PHOTO_BODY_TIMEOUT` fails the request (`408`, in `http`).
//! - **Shutdown.** On SIGTERM readiness fails first (`PHOTO_SHUTDOWN_DELAY`),
//!   so load balancers stop sending; then the listeners close, keep-alive
//!   connections are told to close after their current request, and
//!   in-flight requests get `PHOTO_SHUTDOWN_TIMEOUT` to finish.

pub mod client_shares;
pub mod sendfile;
pub mod timed_io;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::Service;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::state::SharedState;
use client_shares::ClientShares;
use sendfile::SendfileStream;
use timed_io::{RequestClock, TimedIo};

/// Connections the metrics and probe listener accepts at once.
const OPS_CONNECTIONS: usize = 64;
/// Largest request head (request line and headers) accepted, in bytes.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Descriptors kept back for files, spools and database connections when
/// the connection cap is derived from the descriptor limit.
const RESERVED_FDS: u64 = 256;
/// Upper bound of the derived connection cap: each open connection holds
/// buffers of some kilobytes, and a pod has a memory limit.
const AUTO_MAX_CONNECTIONS: u64 = 4096;

/// The listeners a server runs on.
pub struct Listeners {
    pub public: TcpListener,
    /// `/metrics`, `/healthz`, `/readyz` only (`PHOTO_METRICS_LISTEN`).
    pub ops: Option<TcpListener>,
}

impl Listeners {
    /// Binds what the configuration asks for. `[::]:port` listens on IPv6 and IPv4 at once
    /// (what a pod on an IPv6 or dual-stack cluster needs); on a host without IPv6 it falls
    /// back to `0.0.0.0:port`, with a warning.
    pub async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let bind = |addr: SocketAddr| async move {
            match TcpListener::bind(addr).await {
                Err(e) if addr.ip() == std::net::Ipv6Addr::UNSPECIFIED && no_ipv6(&e) => {
                    let v4 = SocketAddr::from(([0, 0, 0, 0], addr.port()));
                    tracing::warn!(%addr, error = %e, fallback = %v4, "no IPv6 here: listening on IPv4 only");
                    TcpListener::bind(v4).await
                }
                other => other,
            }
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
        };
        let public = bind(config.listen).await?;
        let ops = match config.metrics_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Listeners { public, ops })
    }
}

/// Whether a bind failed because the host has no IPv6 (the module not loaded, or disabled).
fn no_ipv6(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL) | Some(libc::EPROTONOSUPPORT)
    )
}

/// Per-connection limits, from the configuration.
#[derive(Debug, Clone, Copy)]
struct ConnLimits {
    header: Duration,
    idle: Duration,
    write: Duration,
}

impl ConnLimits {
    fn of(config: &Config) -> ConnLimits {
        ConnLimits {
            header: config.header_timeout,
            idle: config.idle_timeout,
            write: config.write_timeout,
        }
    }
}

/// The public listener's connection cap: the configured one, or one derived
/// from the descriptor limit (after raising the soft limit to the hard one).
pub fn connection_cap(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit");
            1024
        }
    };
    let cap = (limit.saturating_sub(RESERVED_FDS) / 2).clamp(64, AUTO_MAX_CONNECTIONS);
    usize::try_from(cap).unwrap_or(64)
}

/// Serves until SIGTERM or Ctrl-C, then shuts down gracefully.
pub async fn serve(state: SharedState, listeners: Listeners) -> anyhow::Result<()> {
    // Listen for SIGTERM before announcing the address: a signal that arrives
    // right after start must still mean a graceful stop.
    let signal = shutdown_signal()?;
    let url = format!("http://{}/", listeners.public.local_addr()?);
    let cap = connection_cap(state.config.max_connections);
    let share = client_shares::share_of(cap, state.config.max_connections_per_client);
    tracing::info!(%url, max_connections = cap, per_client = share, "photo-server listening");
    println!("photo-server listening on {url}");
    if let Some(ops) = &listeners.ops {
        let addr = ops.local_addr()?;
        tracing::info!(%addr, "metrics and probes listening");
    } else if !state.config.metrics_on_public_listener() {
        tracing::warn!(
            "/metrics is not served: set PHOTO_METRICS_LISTEN (for example 0.0.0.0:9090) to serve it on a port of its own"
        );
    }

    let limits = ConnLimits::of(&state.config);
    let graceful = Arc::new(GracefulShutdown::new());
    let (stop, stopped) = watch::channel(false);
    let public = tokio::spawn(accept_loop(
        listeners.public,
        crate::routes::app(state.clone()),
        limits,
        Cap {
            total: Arc::new(Semaphore::new(cap)),
            per_client: Some(ClientShares::new(
                share,
                state.config.trusted_proxies.clone(),
            )),
        },
        graceful.clone(),
        stopped.clone(),
        Some(state.metrics.clone()),
    ));
    let ops = listeners.ops.map(|listener| {
        tokio::spawn(accept_loop(
            listener,
            crate::routes::ops_router(state.clone()),
            limits,
            Cap {
                total: Arc::new(Semaphore::new(OPS_CONNECTIONS)),
                per_client: None,
            },
            graceful.clone(),
            stopped,
            None,
        ))
    });

    signal.await;
    tracing::info!("shutdown requested: failing readiness");
    state.begin_shutdown();
    tokio::time::sleep(state.config.shutdown_delay).await;
    tracing::info!("closing the listeners; finishing in-flight requests");
    let _ = stop.send(true);
    let _ = public.await;
    if let Some(ops) = ops {
        let _ = ops.await;
    }
    // The accept loops are done, so this is the last handle.
    let deadline = state.config.shutdown_timeout;
    if let Some(graceful) = Arc::into_inner(graceful)
        && tokio::time::timeout(deadline, graceful.shutdown())
            .await
            .is_err()
    {
        tracing::warn!(
            ?deadline,
            "in-flight requests did not finish in time; exiting"
        );
    }
    state.db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// A listener's connection cap, and each client's share of it.
struct Cap {
    total: Arc<Semaphore>,
    per_client: Option<Arc<ClientShares>>,
}

/// Accepts connections until `stop`, each under the cap and the limits.
async fn accept_loop<S>(
    listener: TcpListener,
    service: S,
    limits: ConnLimits,
    cap: Cap,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
    metrics: Option<Metrics>,
) where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    loop {
        let permit = tokio::select! {
            permit = cap.total.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept:
                    // pause briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let slot = match &cap.per_client {
            Some(shares) => match shares.admit(peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    // Its client holds its share: closed at once, the permit
                    // goes back for someone else.
                    tracing::debug!(%peer, "connection refused: the client holds its share");
                    if let Some(metrics) = &metrics {
                        metrics.http_connections_refused.inc();
                    }
                    continue;
                }
            },
            None => None,
        };
        if let Some(metrics) = &metrics {
            metrics.http_connections.inc();
        }
        let connection =
            serve_connection(stream, peer, service.clone(), limits, graceful.watcher());
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection closed with an error");
            }
            if let Some(metrics) = metrics {
                metrics.http_connections.dec();
            }
            drop(slot);
            drop(permit);
        });
    }
}

/// Serves one HTTP/1.1 connection to its end: the service sees the peer's
/// address as `ConnectInfo`, and the socket is wrapped in [`SendfileStream`]
/// (bodies from files leave by `sendfile`) and [`TimedIo`].
async fn serve_connection<S>(
    stream: TcpStream,
    peer: SocketAddr,
    service: S,
    limits: ConnLimits,
    watcher: Watcher,
) -> Result<(), hyper::Error>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    // Small responses go out at once rather than waiting for more data.
    let _ = stream.set_nodelay(true);
    let clock = Arc::new(RequestClock::default());
    let io = TokioIo::new(TimedIo::new(
        SendfileStream::new(stream),
        clock.clone(),
        limits.header,
        limits.write,
    ));
    let hyper_service = hyper::service::service_fn(move |request: Request<Incoming>| {
        clock.begin();
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        // Both services are always ready (see `routes::App`).
        let response = service.clone().call(request);
        let clock = clock.clone();
        async move {
            let response = response.await;
            clock.end();
            response
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        // hyper starts this when it waits for a request head, idle or not:
        // it is the keep-alive idle timeout; the head deadline is TimedIo's.
        .header_read_timeout(limits.idle)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(io, hyper_service);
    watcher.watch(connection).await
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `[::]` is what the operator configures: IPv4 clients (the probes and Services of an
    /// IPv4 cluster) must reach it, with or without IPv6 on the host.
    #[tokio::test]
    async fn the_any_address_listener_takes_ipv4_clients() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = crate::config::Config::for_tests(dir.path());
        config.listen = "[::]:0".parse().expect("an address");
        config.metrics_listen = None;
        let listeners = Listeners::bind(&config).await.expect("bound");
        let port = listeners.public.local_addr().expect("address").port();
        let accepted = tokio::spawn(async move { listeners.public.accept().await.map(|_| ()) });
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("an IPv4 client connects");
        accepted.await.expect("joined").expect("accepted");
    }

    #[test]
    fn a_configured_cap_wins_and_a_derived_one_stays_in_bounds() {
        assert_eq!(connection_cap(10), 10);
        let derived = connection_cap(0);
        assert!((64..=AUTO_MAX_CONNECTIONS as usize).contains(&derived));
    }
}
