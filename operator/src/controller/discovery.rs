//! Which optional APIs the cluster serves: CloudNativePG (`postgresql.cnpg.io/v1` `Cluster`),
//! the Prometheus Operator (`monitoring.coreos.com/v1` `ServiceMonitor`, `PodMonitor`,
//! `PrometheusRule`) and CloudNativePG's Barman Cloud plugin (`barmancloud.cnpg.io/v1`
//! `ObjectStore`, for database backups and restore).
//!
//! Checked by discovery at start and again every [`super::RunArgs::discovery_interval`], so
//! installing any of them after the operator needs no restart: when the answer changes, every
//! PhotoSite is reconciled again. A discovery request that fails for another reason than
//! "not served" keeps the previous answer. Discovery (`GET /apis/<group>/<version>`) is
//! allowed to every authenticated user by the built-in `system:discovery` role.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::Stream;
use kube::Client;
use tracing::{info, warn};

use crate::build::Apis;

/// The optional APIs, as last discovered; shared by the reconciles.
#[derive(Debug)]
pub struct Capabilities {
    cloudnative_pg: AtomicBool,
    prometheus: AtomicBool,
    barman_cloud: AtomicBool,
}

impl Capabilities {
    pub fn new(apis: Apis) -> Self {
        Capabilities {
            cloudnative_pg: AtomicBool::new(apis.cloudnative_pg),
            prometheus: AtomicBool::new(apis.prometheus),
            barman_cloud: AtomicBool::new(apis.barman_cloud),
        }
    }

    pub fn get(&self) -> Apis {
        Apis {
            cloudnative_pg: self.cloudnative_pg.load(Ordering::Relaxed),
            prometheus: self.prometheus.load(Ordering::Relaxed),
            barman_cloud: self.barman_cloud.load(Ordering::Relaxed),
        }
    }

    /// Record a discovery result; returns whether anything changed.
    pub fn set(&self, apis: Apis) -> bool {
        let before = self.get();
        self.cloudnative_pg
            .store(apis.cloudnative_pg, Ordering::Relaxed);
        self.prometheus.store(apis.prometheus, Ordering::Relaxed);
        self.barman_cloud
            .store(apis.barman_cloud, Ordering::Relaxed);
        before != apis
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
    let cloudnative_pg = serves(client, "postgresql.cnpg.io", "v1", &["Cluster"]).await;
    let prometheus = serves(
        client,
        "monitoring.coreos.com",
        "v1",
        &["ServiceMonitor", "PodMonitor", "PrometheusRule"],
    )
    .await;
    let barman_cloud = serves(client, "barmancloud.cnpg.io", "v1", &["ObjectStore"]).await;
    Apis {
        cloudnative_pg: cloudnative_pg.unwrap_or(previous.cloudnative_pg),
        prometheus: prometheus.unwrap_or(previous.prometheus),
        barman_cloud: barman_cloud.unwrap_or(previous.barman_cloud),
    }
}

/// Rediscover every `every`; yields once each time the answer changes (the controller then
/// reconciles every PhotoSite).
pub fn refresh(
    client: Client,
    capabilities: std::sync::Arc<Capabilities>,
    every: Duration,
) -> impl Stream<Item = ()> {
    futures::stream::unfold(
        (client, capabilities),
        move |(client, capabilities)| async move {
            loop {
                tokio::time::sleep(every).await;
                let apis = discover(&client, capabilities.get()).await;
                if capabilities.set(apis) {
                    info!(
                        cloudnative_pg = apis.cloudnative_pg,
                        prometheus = apis.prometheus,
                        barman_cloud = apis.barman_cloud,
                        "optional APIs changed; reconciling every PhotoSite"
                    );
                    return Some(((), (client, capabilities)));
                }
            }
        },
    )
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
        });
        assert!(!c.set(c.get()));
        assert!(c.set(Apis::ALL));
        assert_eq!(c.get(), Apis::ALL);
    }
}
