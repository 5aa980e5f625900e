//! Leader election through a `coordination.k8s.io/v1` Lease (with `kube-lease-manager`), so
//! two operator replicas are safe: only the holder runs the controller; the other waits,
//! serving `/healthz` and `/metrics`. A replica that loses the Lease exits so that it never
//! reconciles concurrently with the new leader; Kubernetes restarts it as a standby.

use std::sync::Arc;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::metrics::Metrics;

/// Which Lease, and who this replica is in it (part of `photo-operator run`'s arguments).
#[derive(clap::Args, Debug, Clone)]
pub struct LeaseArgs {
    /// Namespace of the leader-election Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, env = "PHOTO_OPERATOR_LEASE", default_value = "photo-operator")]
    pub lease_name: String,
    /// Identity in the Lease (default: the pod name).
    #[arg(long, env = "POD_NAME", default_value = "photo-operator")]
    pub identity: String,
}

/// Lease validity; the holder renews `GRACE` seconds before it runs out.
const DURATION: u64 = 15;
const GRACE: u64 = 5;

/// Held leadership.
pub struct Leadership {
    rx: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
    metrics: Arc<Metrics>,
}

/// Wait until this replica holds the Lease.
pub async fn acquire(
    client: Client,
    args: &LeaseArgs,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Leadership> {
    let manager = LeaseManagerBuilder::new(client, &args.lease_name)
        .with_namespace(&args.lease_namespace)
        .with_identity(&args.identity)
        .with_field_manager(format!("photo-operator-lease-{}", args.identity))
        .with_duration(DURATION)
        .with_grace(GRACE)
        .build()
        .await?;
    let (mut rx, task) = manager.watch().await;
    info!(lease = %args.lease_name, identity = %args.identity, "waiting for leadership");
    while !*rx.borrow_and_update() {
        rx.changed().await?;
    }
    info!("acquired leadership");
    metrics.leader.set(1);
    Ok(Leadership { rx, task, metrics })
}

impl Leadership {
    /// Resolves when the Lease is lost (or the lease task stopped).
    pub async fn lost(&mut self) {
        loop {
            if self.rx.changed().await.is_err() || !*self.rx.borrow() {
                return;
            }
        }
    }

    /// Give the Lease up so a standby takes over at once instead of after expiry.
    pub async fn release(self) {
        self.metrics.leader.set(0);
        drop(self.rx);
        if let Ok(Ok(manager)) = self.task.await {
            let _ = manager.release().await;
        }
    }
}
