//! Which optional APIs the cluster serves: CloudNativePG (`postgresql.cnpg.io/v1` `Cluster`
//! and `ScheduledBackup`; an API counts as served only with every kind the operator uses),
//! the Prometheus Operator (`monitoring.coreos.com/v1` `ServiceMonitor`, `PodMonitor`,
//! `PrometheusRule`) and CloudNativePG's Barman Cloud plugin (`barmancloud.cnpg.io/v1`
//! `ObjectStore`, for database backups and restore).
//!
//! Checked by discovery at start and then every [`crate::run::RunArgs::discovery_interval`]
//! (30 s by default) by a task of its own, so installing any of them after the operator needs
//! no restart: within one interval the watches of the new kinds start ([`super::watches`])
//! and every PhotoSite is reconciled again. A discovery request that fails for another reason
//! than "not served" keeps the previous answer. Discovery (`GET /apis/<group>/<version>`) is
//! allowed to every authenticated user by the built-in `system:discovery` role.

use std::time::Duration;

use futures::Stream;
use kube::Client;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::children::Apis;

/// The optional APIs, as last discovered; shared by the reconciles and the watches, which
/// subscribe to its changes.
#[derive(Debug)]
pub struct Capabilities {
    apis: watch::Sender<Apis>,
}

impl Capabilities {
    pub fn new(apis: Apis) -> Self {
        Capabilities {
            apis: watch::Sender::new(apis),
        }
    }

    pub fn get(&self) -> Apis {
        *self.apis.borrow()
    }

    /// Record a discovery result; returns whether anything changed.
    pub fn set(&self, apis: Apis) -> bool {
        self.apis.send_if_modified(|current| {
            let changed = *current != apis;
            *current = apis;
            changed
        })
    }

    /// A receiver that sees every later change.
    pub fn subscribe(&self) -> watch::Receiver<Apis> {
        self.apis.subscribe()
    }

    /// Yields once each time the answer changes (the controller then reconciles every
    /// PhotoSite); not for the answer current when it is called.
    pub fn changes(&self) -> impl Stream<Item = ()> + Send + 'static {
        futures::stream::unfold(self.subscribe(), |mut rx| async move {
            rx.changed().await.ok()?;
            Some(((), rx))
        })
    }
}

/// Whether the API server serves every kind of a group/version; `None` when discovery failed
/// for another reason than the group/version not being served.
async fn serves(client: &Client, group: &str, version: &str, kinds: &[&str]) -> Option<bool> {
    let gv = kube::core::GroupVersion::gv(group, version);
    match client.list_api_group_resources(&gv.api_version()).await {
        Ok(list) => Some(
            kinds
                .iter()
                .all(|k| list.resources.iter().any(|r| r.kind == *k)),
        ),
        Err(e) if crate::error::is_not_found(&e) => Some(false),
        Err(e) => {
            warn!(group, version, error = %e, "discovery failed");
            None
        }
    }
}

/// Discover the optional APIs; where discovery fails, `previous` is kept.
pub async fn discover(client: &Client, previous: Apis) -> Apis {
    let cloudnative_pg = serves(
        client,
        "postgresql.cnpg.io",
        "v1",
        &["Cluster", "ScheduledBackup"],
    )
    .await;
    let prometheus = serves(
        client,
        "monitoring.coreos.com",
        "v1",
        &["ServiceMonitor", "PodMonitor", "PrometheusRule"],
    )
    .await;
    let barman_cloud = serves(client, "barmancloud.cnpg.io", "v1", &["ObjectStore"]).await;
    let gateway = serves(client, "gateway.networking.k8s.io", "v1", &["HTTPRoute"]).await;
    Apis {
        cloudnative_pg: cloudnative_pg.unwrap_or(previous.cloudnative_pg),
        prometheus: prometheus.unwrap_or(previous.prometheus),
        barman_cloud: barman_cloud.unwrap_or(previous.barman_cloud),
        gateway: gateway.unwrap_or(previous.gateway),
    }
}

/// Log which optional APIs the cluster serves.
pub fn log(apis: Apis, message: &str) {
    info!(
        cloudnative_pg = apis.cloudnative_pg,
        prometheus = apis.prometheus,
        barman_cloud = apis.barman_cloud,
        gateway = apis.gateway,
        "{message}"
    );
}

/// Rediscover every `every`, for as long as the process runs (a task of its own: nothing the
/// controller does can delay it).
pub fn spawn_refresh(
    client: Client,
    capabilities: std::sync::Arc<Capabilities>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let apis = discover(&client, capabilities.get()).await;
            if capabilities.set(apis) {
                log(
                    apis,
                    "optional APIs changed; watching what is served and reconciling every PhotoSite",
                );
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_reports_changes() {
        let c = Capabilities::new(Apis {
            cloudnative_pg: false,
            prometheus: true,
            barman_cloud: false,
            gateway: false,
        });
        assert!(!c.set(c.get()));
        assert!(c.set(Apis::ALL));
        assert_eq!(c.get(), Apis::ALL);
    }

    #[tokio::test]
    async fn changes_yield_once_per_change_and_not_for_the_start() {
        use futures::StreamExt;
        let c = Capabilities::new(Apis::NONE);
        let mut changes = Box::pin(c.changes());
        assert!(futures::poll!(changes.next()).is_pending());
        c.set(Apis::NONE);
        assert!(futures::poll!(changes.next()).is_pending());
        c.set(Apis::ALL);
        assert_eq!(changes.next().await, Some(()));
        assert!(futures::poll!(changes.next()).is_pending());
    }
}
