//! The registry of child kinds: every kind the operator creates, in apply order, with the API
//! resource that serves it and the optional API (CRD) it needs, and the names a site's children
//! of each kind may have ([`possible_children`]).

use kube::core::{ApiResource, GroupVersionKind};

use crate::names;

/// Every kind of child, in apply order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    ServiceAccount,
    ConfigMap,
    Secret,
    PersistentVolumeClaim,
    ObjectStore,
    DatabaseCluster,
    ScheduledBackup,
    Service,
    PodDisruptionBudget,
    NetworkPolicy,
    Job,
    Deployment,
    CronJob,
    HorizontalPodAutoscaler,
    Ingress,
    HttpRoute,
    ServiceMonitor,
    PodMonitor,
    PrometheusRule,
}

impl Kind {
    /// All kinds in apply order.
    pub const ALL: [Kind; 19] = [
        Kind::ServiceAccount,
        Kind::ConfigMap,
        Kind::Secret,
        Kind::PersistentVolumeClaim,
        Kind::ObjectStore,
        Kind::DatabaseCluster,
        Kind::ScheduledBackup,
        Kind::Service,
        Kind::PodDisruptionBudget,
        Kind::NetworkPolicy,
        Kind::Job,
        Kind::Deployment,
        Kind::CronJob,
        Kind::HorizontalPodAutoscaler,
        Kind::Ingress,
        Kind::HttpRoute,
        Kind::ServiceMonitor,
        Kind::PodMonitor,
        Kind::PrometheusRule,
    ];

    /// (group, version, kind, plural)
    fn gvkp(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Kind::ServiceAccount => ("", "v1", "ServiceAccount", "serviceaccounts"),
            Kind::ConfigMap => ("", "v1", "ConfigMap", "configmaps"),
            Kind::Secret => ("", "v1", "Secret", "secrets"),
            Kind::PersistentVolumeClaim => {
                ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims")
            }
            Kind::ObjectStore => ("barmancloud.cnpg.io", "v1", "ObjectStore", "objectstores"),
            Kind::DatabaseCluster => ("postgresql.cnpg.io", "v1", "Cluster", "clusters"),
            Kind::ScheduledBackup => (
                "postgresql.cnpg.io",
                "v1",
                "ScheduledBackup",
                "scheduledbackups",
            ),
            Kind::Service => ("", "v1", "Service", "services"),
            Kind::PodDisruptionBudget => (
                "policy",
                "v1",
                "PodDisruptionBudget",
                "poddisruptionbudgets",
            ),
            Kind::NetworkPolicy => (
                "networking.k8s.io",
                "v1",
                "NetworkPolicy",
                "networkpolicies",
            ),
            Kind::Job => ("batch", "v1", "Job", "jobs"),
            Kind::Deployment => ("apps", "v1", "Deployment", "deployments"),
            Kind::CronJob => ("batch", "v1", "CronJob", "cronjobs"),
            Kind::HorizontalPodAutoscaler => (
                "autoscaling",
                "v2",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
            ),
            Kind::Ingress => ("networking.k8s.io", "v1", "Ingress", "ingresses"),
            Kind::HttpRoute => ("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes"),
            Kind::ServiceMonitor => (
                "monitoring.coreos.com",
                "v1",
                "ServiceMonitor",
                "servicemonitors",
            ),
            Kind::PodMonitor => ("monitoring.coreos.com", "v1", "PodMonitor", "podmonitors"),
            Kind::PrometheusRule => (
                "monitoring.coreos.com",
                "v1",
                "PrometheusRule",
                "prometheusrules",
            ),
        }
    }

    /// The API resource, for dynamic (kind-generic) apply, list and delete.
    pub fn api_resource(self) -> ApiResource {
        let (g, v, k, p) = self.gvkp();
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), p)
    }

    /// `Kind` as in the object's `kind` field.
    pub fn kind_name(self) -> &'static str {
        self.gvkp().2
    }

    /// Kinds whose CRDs belong to the Prometheus Operator.
    pub fn is_monitoring(self) -> bool {
        matches!(
            self,
            Kind::ServiceMonitor | Kind::PodMonitor | Kind::PrometheusRule
        )
    }

    /// The optional API that serves this kind, if it is not built in.
    pub fn needs(self) -> Option<OptionalApi> {
        match self {
            Kind::DatabaseCluster | Kind::ScheduledBackup => Some(OptionalApi::CloudNativePg),
            Kind::ObjectStore => Some(OptionalApi::BarmanCloud),
            Kind::HttpRoute => Some(OptionalApi::GatewayApi),
            k if k.is_monitoring() => Some(OptionalApi::PrometheusOperator),
            _ => None,
        }
    }
}

/// An API that is not built into Kubernetes and may be missing from a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OptionalApi {
    /// `postgresql.cnpg.io/v1` `Cluster` (CloudNativePG).
    CloudNativePg,
    /// `monitoring.coreos.com/v1` `ServiceMonitor`, `PodMonitor`, `PrometheusRule`.
    PrometheusOperator,
    /// `barmancloud.cnpg.io/v1` `ObjectStore` (the Barman Cloud plugin for CloudNativePG).
    BarmanCloud,
    /// `gateway.networking.k8s.io/v1` `HTTPRoute` (the Gateway API).
    GatewayApi,
}

/// Which optional APIs the cluster serves (discovery).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Apis {
    pub cloudnative_pg: bool,
    pub prometheus: bool,
    pub barman_cloud: bool,
    pub gateway: bool,
}

impl Apis {
    /// Every optional API present (what `render` assumes).
    pub const ALL: Apis = Apis {
        cloudnative_pg: true,
        prometheus: true,
        barman_cloud: true,
        gateway: true,
    };

    /// No optional API (before the first discovery).
    pub const NONE: Apis = Apis {
        cloudnative_pg: false,
        prometheus: false,
        barman_cloud: false,
        gateway: false,
    };

    pub fn has(self, api: OptionalApi) -> bool {
        match api {
            OptionalApi::CloudNativePg => self.cloudnative_pg,
            OptionalApi::PrometheusOperator => self.prometheus,
            OptionalApi::BarmanCloud => self.barman_cloud,
            OptionalApi::GatewayApi => self.gateway,
        }
    }
}

/// Every child the builders may create for a site, by kind and name, whatever its spec:
/// what cleanup looks up (by name, in the watch stores) to find children the spec no longer
/// wants. A test checks that [`super::desired`] never builds a child missing here.
pub fn possible_children(site: &str) -> Vec<(Kind, String)> {
    Kind::ALL
        .into_iter()
        .flat_map(|kind| {
            let names = match kind {
                Kind::ConfigMap => vec![names::config_map(site)],
                Kind::Secret => vec![names::credentials_secret(site)],
                Kind::PersistentVolumeClaim => vec![names::originals_claim(site)],
                Kind::ObjectStore => vec![names::backup(site), names::restore(site)],
                Kind::DatabaseCluster => vec![names::database_cluster(site)],
                Kind::ScheduledBackup | Kind::CronJob => vec![names::backup(site)],
                Kind::Job => vec![names::restore(site)],
                Kind::Service => vec![names::app(site), names::metrics_service(site)],
                Kind::NetworkPolicy => vec![names::app(site), names::jobs_network_policy(site)],
                Kind::PodMonitor => vec![names::database_pod_monitor(site)],
                Kind::ServiceAccount
                | Kind::PodDisruptionBudget
                | Kind::Deployment
                | Kind::HorizontalPodAutoscaler
                | Kind::Ingress
                | Kind::HttpRoute
                | Kind::ServiceMonitor
                | Kind::PrometheusRule => vec![names::app(site)],
            };
            names.into_iter().map(move |n| (kind, n))
        })
        .collect()
}
