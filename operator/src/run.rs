//! `photo-operator run`: the wiring. Its arguments ([`RunArgs`]), the metrics and health
//! server, leader election ([`crate::leader`]), discovery of the optional APIs, one watch per
//! child kind and one of the PhotoSites ([`crate::controller::watches`]), and kube's
//! `Controller` running [`crate::controller::reconcile()`] until SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::core::DeserializeGuard;
use kube::runtime::Controller;
use kube::runtime::controller;
use tracing::{info, warn};

use crate::children::{Apis, Kind};
use crate::controller::{
    Capabilities, Context, DEBOUNCE, Stores, discovery, error_policy, reconcile, watches,
};
use crate::crd::PhotoSite;
use crate::metrics::Metrics;

/// Arguments of `photo-operator run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Address of the `/metrics`, `/healthz` and `/readyz` server.
    #[arg(
        long,
        env = "PHOTO_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_addr: SocketAddr,
    /// The leader-election Lease.
    #[command(flatten)]
    pub lease: crate::leader::LeaseArgs,
    /// Skip leader election (a single replica, or local development).
    #[arg(long, default_value_t = false)]
    pub no_leader_election: bool,
    /// Reconcile PhotoSites in this namespace only (the chart's `scope: Namespace`, whose
    /// Role grants nothing outside it). Unset or empty: every namespace.
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Seconds between checks for CloudNativePG, its Barman Cloud plugin and the Prometheus
    /// Operator (discovery): one installed later is watched and used within this interval,
    /// with no restart of the operator.
    #[arg(
        long,
        env = "PHOTO_OPERATOR_DISCOVERY_INTERVAL",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub discovery_interval: u64,
    /// PhotoSites reconciled at the same time (each reconcile applies its children one after
    /// another).
    #[arg(
        long,
        env = "PHOTO_OPERATOR_CONCURRENCY",
        default_value_t = 32,
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub concurrency: u16,
}

/// Run the operator until SIGTERM: metrics server, leader election, controller.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::new());

    let server_metrics = metrics.clone();
    let listener = bind_any_family(args.metrics_addr).await?;
    info!(addr = %args.metrics_addr, "serving /metrics, /healthz, /readyz");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, crate::metrics::router(server_metrics)).await {
            warn!(error = %e, "metrics server stopped");
        }
    });

    // Ready means "this process is healthy", leader or standby: a standby that never became
    // ready would stall rollouts and, under the PodDisruptionBudget, block node drains.
    metrics.ready.store(true, Ordering::Relaxed);

    // SIGTERM (what Kubernetes sends) or Ctrl-C: stop waiting for the Lease, or finish the
    // reconciles under way and release it.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
        info!("shutdown requested");
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let leadership = if args.no_leader_election {
        None
    } else {
        tokio::select! {
            lease = crate::leader::acquire(client.clone(), &args.lease, metrics.clone()) => Some(lease?),
            _ = stopped() => return Ok(()),
        }
    };

    // An old CRD would silently drop the fields this operator writes: stop and say so.
    crate::installed_crd::check(&client).await?;

    let apis = discovery::discover(&client, Apis::NONE).await;
    discovery::log(apis, "discovered optional APIs");
    if !apis.cloudnative_pg {
        warn!(
            "CloudNativePG is not installed: PhotoSites without database.external are Degraded (CloudNativePGNotInstalled) until it is"
        );
    }

    let namespace = args.watch_namespace.as_deref().filter(|ns| !ns.is_empty());
    let sites: Api<DeserializeGuard<PhotoSite>> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let capabilities = Arc::new(Capabilities::new(apis));
    let (site_store, site_events) = watches::site_watch(sites, metrics.clone());
    let mut controller = Controller::for_stream(site_events, site_store).with_config(
        controller::Config::default()
            .debounce(DEBOUNCE)
            .concurrency(args.concurrency),
    );
    let mut stores = Stores::default();
    for kind in Kind::ALL {
        let ar = kind.api_resource();
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        let watch = watches::child_watch(kind, api, capabilities.subscribe(), metrics.clone());
        stores.insert(kind, watch.writer, watch.state);
        controller = controller.watches_stream_with(watch.events, watches::site_of, ar);
    }
    let changes = capabilities.changes();
    let _discovery = discovery::spawn_refresh(
        client.clone(),
        capabilities.clone(),
        Duration::from_secs(args.discovery_interval),
    );
    let ctx = Arc::new(Context::new(
        client.clone(),
        metrics.clone(),
        stores,
        capabilities,
    ));
    let run = controller
        .reconcile_all_on(changes)
        .graceful_shutdown_on(stopped())
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "reconcile loop");
            }
        });
    match leadership {
        Some(mut lease) => {
            tokio::select! {
                _ = run => {},
                lost = lease.lost() => warn!(?lost, "lost leadership, exiting so another replica takes over"),
            }
            lease.release().await;
        }
        None => run.await,
    }
    Ok(())
}

/// Bind `addr`; `[::]:port` (IPv6 and IPv4 at once, what the chart sets for IPv6 and
/// dual-stack clusters) falls back to `0.0.0.0:port` on a host without IPv6.
async fn bind_any_family(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(addr).await {
        Err(e)
            if addr.ip() == std::net::Ipv6Addr::UNSPECIFIED
                && matches!(
                    e.raw_os_error(),
                    Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
                ) =>
        {
            let v4 = SocketAddr::from(([0, 0, 0, 0], addr.port()));
            warn!(%addr, error = %e, fallback = %v4, "no IPv6 here: listening on IPv4 only");
            tokio::net::TcpListener::bind(v4).await
        }
        other => other,
    }
}
