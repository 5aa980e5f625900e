//! How the site is reached and watched: `spec.ingress`, `spec.monitoring`,
//! `spec.networkPolicy`.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Ingress settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("!has(self.tls) || (has(self.host) && size(self.host) > 0)").message("ingress.tls needs ingress.host").reason(Reason::FieldValueRequired)
)]
pub struct IngressSpec {
    /// Host name the site is served on, e.g. `photos.example.com`. Required for TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 253),
        regex(
            pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
        )
    )]
    pub host: Option<String>,
    /// IngressClass name, e.g. `nginx`. The cluster's default class when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// TLS for the host. With an `issuerRef`, cert-manager issues the certificate into
    /// `secretName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Extra annotations for the Ingress (e.g. controller-specific settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// TLS settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Secret holding the certificate; defaults to `<name>-tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// cert-manager issuer that issues the certificate (sets the `cert-manager.io/issuer` or
    /// `cert-manager.io/cluster-issuer` annotation). Without it the Secret must exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerRef>,
}

/// Reference to a cert-manager Issuer or ClusterIssuer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    /// `ClusterIssuer` (default) or `Issuer` (in the PhotoSite's namespace).
    #[serde(default)]
    pub kind: IssuerKind,
    /// Name of the issuer.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// Kind of cert-manager issuer.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum IssuerKind {
    #[default]
    ClusterIssuer,
    Issuer,
}

/// Prometheus Operator integration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("!self.alerts || self.serviceMonitor").message("monitoring.alerts needs monitoring.serviceMonitor: alerts on metrics nobody scrapes never fire").reason(Reason::FieldValueInvalid)
)]
pub struct MonitoringSpec {
    /// Create a ServiceMonitor scraping `/metrics` of every pod (on the separate metrics port,
    /// through the headless Service `<name>-metrics`), and, with a CloudNativePG database, a
    /// PodMonitor `<name>-db` scraping its Postgres instances.
    #[serde(default)]
    pub service_monitor: bool,
    /// Create a PrometheusRule with availability, latency and error-rate alerts.
    #[serde(default)]
    pub alerts: bool,
    /// Objectives for the burn-rate alerts (with `alerts`); the defaults when left out:
    /// 99.9% available, 99% of images within 1s, 99% of renders within 3.2s.
    #[serde(default)]
    pub slo: super::slo::SloSpec,
    /// Labels added to the ServiceMonitor, PodMonitor and PrometheusRule, for a Prometheus
    /// that selects them by label. kube-prometheus-stack selects only objects labelled
    /// `release: <its Helm release name>` by default, e.g. `{release: kube-prometheus-stack}`.
    /// The operator's own labels win over these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub labels: BTreeMap<String, String>,
}

/// Who may reach photo-server. Egress is limited to the database and DNS.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySettings {
    /// Namespace of the ingress controller (matched on its `kubernetes.io/metadata.name`
    /// label), allowed to reach the web port.
    #[serde(default = "default_ingress_namespace")]
    #[schemars(length(min = 1, max = 63))]
    pub ingress_namespace: String,
    /// Address blocks (CIDRs such as `10.0.0.0/16`) allowed to reach the web port, for load
    /// balancers that are not pods: an AWS ALB in IP mode connects from addresses of the VPC,
    /// so set the VPC's CIDR(s) here. These addresses are also trusted for
    /// `X-Forwarded-Proto` (`PHOTO_TRUSTED_PROXIES`).
    #[serde(
        default,
        rename = "ingressCIDRs",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(
        length(max = 32),
        inner(length(max = 43), regex(pattern = r"^[0-9a-fA-F:.]+/[0-9]{1,3}$"))
    )]
    pub ingress_cidrs: Vec<String>,
    /// Namespace of Prometheus, allowed to scrape the metrics port.
    #[serde(default = "default_monitoring_namespace")]
    #[schemars(length(min = 1, max = 63))]
    pub monitoring_namespace: String,
}

impl Default for NetworkPolicySettings {
    fn default() -> Self {
        Self {
            ingress_namespace: default_ingress_namespace(),
            ingress_cidrs: Vec::new(),
            monitoring_namespace: default_monitoring_namespace(),
        }
    }
}

fn default_ingress_namespace() -> String {
    "ingress-nginx".into()
}
fn default_monitoring_namespace() -> String {
    "monitoring".into()
}
