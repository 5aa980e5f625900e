//! Rust types for the children whose APIs are not built into Kubernetes (k8s-openapi has
//! none): CloudNativePG's `Cluster` and `ScheduledBackup`, the Barman Cloud plugin's
//! `ObjectStore`, the Gateway API's `HTTPRoute`, and the Prometheus Operator's
//! `ServiceMonitor`, `PodMonitor` and `PrometheusRule`.
//!
//! Only the fields the operator sets are declared (an absent `Option` is left out of the
//! object, so the operator never owns a field it does not set); `schema_check` validates
//! every object built from them against the projects' CRD schemas. They are serialised only
//! at the server-side-apply boundary ([`super::ChildObject::to_json`]).
//!
//! The status types the controller reads back (`ClusterStatus`, `ObjectStoreStatus`,
//! `HttpRouteStatus`) are declared here too, next to the objects they describe, with every
//! field optional: the
//! watch stores keep a pruned copy of each child, and an operator of another version may
//! report less.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::EnvVar;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

/// A custom object: `apiVersion`, `kind`, metadata and spec.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Object<S> {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: ObjectMeta,
    pub spec: S,
}

// ---- CloudNativePG (postgresql.cnpg.io/v1) -------------------------------------------------

/// `postgresql.cnpg.io/v1` `Cluster`.
pub type Cluster = Object<ClusterSpec>;
/// `postgresql.cnpg.io/v1` `ScheduledBackup`.
pub type ScheduledBackup = Object<ScheduledBackupSpec>;

/// CloudNativePG's API version.
pub const CLOUDNATIVE_PG: &str = "postgresql.cnpg.io/v1";

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    pub instances: i32,
    pub storage: ClusterStorage,
    pub bootstrap: Bootstrap,
    pub affinity: ClusterAffinity,
    #[serde(rename = "enablePDB")]
    pub enable_pdb: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgresql: Option<PostgresConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
    pub resources: k8s_openapi::api::core::v1::ResourceRequirements,
    /// Metadata CloudNativePG gives the database's ServiceAccount (an IAM role's annotation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_template: Option<ServiceAccountTemplate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Vec<ClusterPlugin>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_clusters: Option<Vec<ExternalCluster>>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServiceAccountTemplate {
    pub metadata: TemplateMetadata,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TemplateMetadata {
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStorage {
    pub size: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
}

/// How a new cluster is created: empty (`initdb`) or from a backup (`recovery`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Bootstrap {
    Initdb { database: String, owner: String },
    Recovery(Recovery),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recovery {
    pub source: String,
    pub database: String,
    pub owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_target: Option<RecoveryTarget>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryTarget {
    pub target_time: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAffinity {
    pub enable_pod_anti_affinity: bool,
    pub topology_key: String,
    pub pod_anti_affinity_type: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PostgresConfiguration {
    pub synchronous: Synchronous,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Synchronous {
    pub method: String,
    pub number: i32,
    pub data_durability: String,
}

/// A CNPG-I plugin of a Cluster (the Barman Cloud plugin as WAL archiver).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterPlugin {
    pub name: String,
    #[serde(rename = "isWALArchiver")]
    pub is_wal_archiver: bool,
    pub parameters: BTreeMap<String, String>,
}

/// An external cluster read through a plugin (a restore's source).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExternalCluster {
    pub name: String,
    pub plugin: PluginReference,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PluginReference {
    pub name: String,
    pub parameters: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledBackupSpec {
    pub schedule: String,
    pub cluster: LocalName,
    pub method: String,
    pub plugin_configuration: LocalName,
    pub immediate: bool,
    pub backup_owner_reference: String,
}

/// `{name: ...}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LocalName {
    pub name: String,
}

/// What the controller reads of a Cluster's `status`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    #[serde(default)]
    pub ready_instances: Option<i64>,
    #[serde(default)]
    pub phase: Option<String>,
    /// Why the cluster is in its phase, e.g. an instance that cannot be scheduled.
    #[serde(default)]
    pub phase_reason: Option<String>,
    #[serde(default)]
    pub conditions: Vec<StatusCondition>,
}

/// A `metav1.Condition` as CloudNativePG reports it (every field optional but the type).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCondition {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

impl StatusCondition {
    /// The condition `type_` of a list.
    pub fn find<'a>(conditions: &'a [StatusCondition], type_: &str) -> Option<&'a Self> {
        conditions.iter().find(|c| c.type_ == type_)
    }

    /// Whether its status is `status` ("True", "False").
    pub fn is(&self, status: &str) -> bool {
        self.status.as_deref() == Some(status)
    }
}

// ---- Barman Cloud plugin (barmancloud.cnpg.io/v1) ------------------------------------------

/// `barmancloud.cnpg.io/v1` `ObjectStore`.
pub type ObjectStore = Object<ObjectStoreSpec>;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStoreSpec {
    pub configuration: BarmanConfiguration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_sidecar_configuration: Option<SidecarConfiguration>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BarmanConfiguration {
    pub destination_path: String,
    pub s3_credentials: S3Credentials,
    pub wal: WalConfiguration,
    #[serde(rename = "endpointURL", skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    #[serde(rename = "endpointCA", skip_serializing_if = "Option::is_none")]
    pub endpoint_ca: Option<SecretKey>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Credentials {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<SecretKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<SecretKey>,
    /// No key: the credentials of the pod's IAM role (IRSA, EKS Pod Identity, the node's).
    #[serde(
        rename = "inheritFromIAMRole",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub inherit_from_iam_role: bool,
}

/// A key of a Secret: `{name, key}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SecretKey {
    pub name: String,
    pub key: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WalConfiguration {
    pub compression: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SidecarConfiguration {
    pub env: Vec<EnvVar>,
}

/// What the controller reads of an ObjectStore's `status`: the plugin's record of each
/// server's backups.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStoreStatus {
    #[serde(default)]
    pub server_recovery_window: BTreeMap<String, RecoveryWindow>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryWindow {
    #[serde(default)]
    pub first_recoverability_point: Option<String>,
    #[serde(default)]
    pub last_successful_backup_time: Option<String>,
    #[serde(default)]
    pub last_failed_backup_time: Option<String>,
}

// ---- Prometheus Operator (monitoring.coreos.com/v1) ----------------------------------------

/// The Prometheus Operator's API version.
pub const PROMETHEUS_OPERATOR: &str = "monitoring.coreos.com/v1";

/// `monitoring.coreos.com/v1` `ServiceMonitor`.
pub type ServiceMonitor = Object<ServiceMonitorSpec>;
/// `monitoring.coreos.com/v1` `PodMonitor`.
pub type PodMonitor = Object<PodMonitorSpec>;
/// `monitoring.coreos.com/v1` `PrometheusRule`.
pub type PrometheusRule = Object<PrometheusRuleSpec>;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    pub selector: LabelSelector,
    pub namespace_selector: NamespaceSelector,
    pub endpoints: Vec<ScrapeEndpoint>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelector {
    pub match_names: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScrapeEndpoint {
    pub port: String,
    pub path: String,
    pub interval: String,
    pub scheme: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMonitorSpec {
    pub selector: LabelSelector,
    pub namespace_selector: NamespaceSelector,
    pub pod_metrics_endpoints: Vec<PodMetricsEndpoint>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PodMetricsEndpoint {
    pub port: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrometheusRuleSpec {
    pub groups: Vec<RuleGroup>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleGroup {
    pub name: String,
    pub rules: Vec<AlertRule>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertRule {
    pub alert: String,
    pub expr: String,
    #[serde(rename = "for")]
    pub for_: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

// ---- Gateway API (gateway.networking.k8s.io/v1) --------------------------------------------

pub const GATEWAY_API: &str = "gateway.networking.k8s.io/v1";

/// `gateway.networking.k8s.io/v1` `HTTPRoute`.
pub type HttpRoute = Object<HttpRouteSpec>;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    pub parent_refs: Vec<ParentReference>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    pub rules: Vec<HttpRouteRule>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    pub group: &'static str,
    pub kind: &'static str,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    pub matches: Vec<HttpRouteMatch>,
    pub backend_refs: Vec<BackendRef>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HttpRouteMatch {
    pub path: HttpPathMatch,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HttpPathMatch {
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub value: &'static str,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BackendRef {
    pub name: String,
    pub port: i32,
}

/// What is read of an HTTPRoute: whether each Gateway accepted it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct HttpRouteStatus {
    #[serde(default)]
    pub parents: Vec<RouteParentStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    #[serde(default)]
    pub parent_ref: RouteParentName,
    #[serde(default)]
    pub conditions: Vec<StatusCondition>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct RouteParentName {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}
