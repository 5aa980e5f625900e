//! The `PhotoSite` custom resource (`photostack.io/v1alpha1`).
//!
//! The Rust types are the single source of truth: the CRD in `crds/photosite.yaml` is generated
//! from them (`photo-operator crd`) and a test fails when the committed file drifts. Every field
//! carries a doc comment because those become the `description`s that `kubectl explain` prints,
//! and every default is a serde default so it appears in the schema (`default:`) and the API
//! server fills it in before the operator ever sees the object.
//!
//! Cross-field rules that a plain OpenAPI schema cannot express are CEL rules
//! (`x-kubernetes-validations`), so a bad object is refused by the API server at admission and
//! never reaches the reconciler.
//!
//! Replica ownership: `spec.replicas` is the only place the desired pod count lives. The scale
//! subresource exposes it so `kubectl scale` and a HorizontalPodAutoscaler (whose
//! `scaleTargetRef` is the PhotoSite itself) both move it; the operator copies it to the
//! Deployment.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a photo site: the photo-server pool, its storage, database, ingress and
/// monitoring.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "photostack.io",
    version = "v1alpha1",
    kind = "PhotoSite",
    plural = "photosites",
    shortname = "psite",
    category = "photostack",
    namespaced,
    status = "PhotoSiteStatus",
    derive = "PartialEq",
    doc = "A PhotoSite is one photo-server site: an autoscaled app-server pool behind a Service and Ingress, shared originals on a ReadWriteMany volume, a CloudNativePG Postgres cluster (or an external database), TLS and monitoring.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Desired photo-server replicas"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "Ready photo-server replicas"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        description = "Reason of the Ready condition"
    ),
    printcolumn(
        name = "URL",
        type_ = "string",
        json_path = ".status.url",
        description = "Where the site is served"
    ),
    printcolumn(
        name = "Database",
        type_ = "string",
        json_path = ".status.database",
        description = "Database state"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    validation = Rule::new("size(self.metadata.name) <= 40 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name must be a DNS label (lower-case letters, digits and '-', starting with a letter) of at most 40 characters: children and CloudNativePG add suffixes").reason(Reason::FieldValueInvalid),
    cel
)]
#[serde(rename_all = "camelCase")]
pub struct PhotoSiteSpec {
    /// Container image of photo-server, e.g. `ghcr.io/photostack/photo-server:0.1.0`.
    #[schemars(length(min = 1))]
    pub image: String,

    /// Image pull policy of the photo-server container. Defaults to the Kubernetes default
    /// (`Always` for `:latest`, `IfNotPresent` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Desired number of photo-server pods. This is the single owner of the replica count:
    /// `kubectl scale photosite/NAME` and the HorizontalPodAutoscaler (through the scale
    /// subresource) move it, and the operator copies it to the Deployment.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,

    /// Horizontal autoscaling of the photo-server pool on CPU. The HorizontalPodAutoscaler
    /// targets this PhotoSite (not the Deployment), so it moves `spec.replicas`.
    #[serde(default)]
    pub autoscaling: AutoscalingSpec,

    /// Rendition widths in pixels that photo-server offers (`/img/{width}/{id}.jpg`), besides
    /// `orig`.
    #[serde(default = "default_renditions")]
    #[schemars(length(min = 1, max = 16), inner(range(min = 16, max = 8192)))]
    pub renditions: Vec<u32>,

    /// Storage for originals (shared by every pod) and the per-pod rendition cache.
    #[serde(default)]
    pub storage: StorageSpec,

    /// The Postgres database: a CloudNativePG cluster managed for this site, or an external
    /// database (e.g. RDS) given by a Secret.
    #[serde(default)]
    pub database: DatabaseSpec,

    /// Exposes the site through an Ingress. Without it the site is only reachable through its
    /// ClusterIP Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,

    /// Prometheus Operator integration. Ignored (with an Event) when the Prometheus Operator
    /// CRDs are not installed.
    #[serde(default)]
    pub monitoring: MonitoringSpec,

    /// What happens to the originals volume and the database when the PhotoSite is deleted:
    /// `Retain` (default) keeps them, `Delete` removes them.
    #[serde(default)]
    pub data_policy: DataPolicy,

    /// Which namespaces may reach the photo-server pods (the NetworkPolicy).
    #[serde(default)]
    pub network_policy: NetworkPolicySettings,

    /// Compute resources of the photo-server container. Defaults to requests of 100m CPU and
    /// 256Mi memory and a 1Gi memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Node selector for photo-server pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// Tolerations for photo-server pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,

    /// Name of the administrator account photo-server creates or updates at start. Its
    /// password is generated once and kept in the Secret `<name>-credentials`.
    #[serde(default = "default_admin_user")]
    #[schemars(length(min = 1, max = 64))]
    pub admin_user: String,
}

/// Image pull policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ImagePullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl ImagePullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePullPolicy::Always => "Always",
            ImagePullPolicy::IfNotPresent => "IfNotPresent",
            ImagePullPolicy::Never => "Never",
        }
    }
}

/// CPU-based horizontal autoscaling.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas").reason(Reason::FieldValueInvalid)
)]
pub struct AutoscalingSpec {
    /// Create a HorizontalPodAutoscaler that scales this PhotoSite between `minReplicas` and
    /// `maxReplicas`.
    #[serde(default)]
    pub enabled: bool,
    /// Lower bound of `spec.replicas` set by the autoscaler.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// Upper bound of `spec.replicas` set by the autoscaler.
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Average CPU utilisation (percent of the CPU request) the autoscaler aims for.
    #[serde(default = "default_cpu_target")]
    #[schemars(range(min = 1, max = 100))]
    #[serde(rename = "targetCPUUtilizationPercentage")]
    pub target_cpu_utilization_percentage: i32,
}

impl Default for AutoscalingSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            min_replicas: default_min_replicas(),
            max_replicas: default_max_replicas(),
            target_cpu_utilization_percentage: default_cpu_target(),
        }
    }
}

/// Storage of originals and cache.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// The volume holding uploaded originals, mounted read-write on every pod.
    #[serde(default)]
    pub originals: OriginalsSpec,
    /// The per-pod rendition cache (an emptyDir).
    #[serde(default)]
    pub cache: CacheSpec,
}

/// The originals volume.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("!has(self.existingClaim) || size(self.existingClaim) > 0").message("storage.originals.existingClaim must not be empty").reason(Reason::FieldValueInvalid)
)]
pub struct OriginalsSpec {
    /// Requested size of the originals PersistentVolumeClaim.
    #[serde(default = "default_originals_size")]
    pub size: Quantity,
    /// StorageClass of the originals claim. Must support `accessMode`; on kind the default
    /// class only supports ReadWriteOnce. Empty means the cluster default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Access mode of the originals claim. Every photo-server pod mounts it read-write, so
    /// more than one replica needs `ReadWriteMany` (e.g. EFS, NFS, CephFS).
    #[serde(default)]
    pub access_mode: AccessMode,
    /// Use this existing PersistentVolumeClaim instead of creating one. The operator never
    /// modifies or deletes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing_claim: Option<String>,
}

impl Default for OriginalsSpec {
    fn default() -> Self {
        Self {
            size: default_originals_size(),
            storage_class_name: None,
            access_mode: AccessMode::default(),
            existing_claim: None,
        }
    }
}

/// Access mode of a PersistentVolumeClaim.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum AccessMode {
    #[default]
    ReadWriteMany,
    ReadWriteOnce,
    ReadWriteOncePod,
}

impl AccessMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMode::ReadWriteMany => "ReadWriteMany",
            AccessMode::ReadWriteOnce => "ReadWriteOnce",
            AccessMode::ReadWriteOncePod => "ReadWriteOncePod",
        }
    }
}

/// The per-pod rendition cache.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheSpec {
    /// Size limit of the cache emptyDir. photo-server is told to keep its cache at 90% of it
    /// so the kubelet never evicts the pod for exceeding it.
    #[serde(default = "default_cache_size")]
    pub size_limit: Quantity,
}

impl Default for CacheSpec {
    fn default() -> Self {
        Self {
            size_limit: default_cache_size(),
        }
    }
}

/// The database.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// Number of Postgres instances of the CloudNativePG cluster: one primary plus
    /// `instances - 1` streaming replicas. Ignored with `external`.
    #[serde(default = "default_db_instances")]
    #[schemars(range(min = 1, max = 9))]
    pub instances: i32,
    /// Storage of each Postgres instance.
    #[serde(default)]
    pub storage: DatabaseStorageSpec,
    /// Postgres operand image of the CloudNativePG cluster; the CloudNativePG default when
    /// empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
    /// Use an existing database (e.g. Amazon RDS) instead of a CloudNativePG cluster: the
    /// connection URI is read from a key of a Secret in the PhotoSite's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalDatabaseSpec>,
}

impl Default for DatabaseSpec {
    fn default() -> Self {
        Self {
            instances: default_db_instances(),
            storage: DatabaseStorageSpec::default(),
            image_name: None,
            external: None,
        }
    }
}

/// Storage of each Postgres instance.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStorageSpec {
    /// Size of each instance's volume.
    #[serde(default = "default_db_size")]
    pub size: Quantity,
    /// StorageClass of each instance's volume; the cluster default when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

impl Default for DatabaseStorageSpec {
    fn default() -> Self {
        Self {
            size: default_db_size(),
            storage_class_name: None,
        }
    }
}

/// An external database given by a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDatabaseSpec {
    /// Name of the Secret (in the PhotoSite's namespace) holding the connection URI.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// Key of the Secret holding a `postgres://` connection URI.
    #[serde(default = "default_uri_key")]
    #[schemars(length(min = 1))]
    pub key: String,
}

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
    /// Create a ServiceMonitor scraping `/metrics` of every pod.
    #[serde(default)]
    pub service_monitor: bool,
    /// Create a PrometheusRule with availability, latency and error-rate alerts.
    #[serde(default)]
    pub alerts: bool,
}

/// Namespaces allowed to reach photo-server. Egress is limited to the database and DNS.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySettings {
    /// Namespace of the ingress controller (matched on its `kubernetes.io/metadata.name`
    /// label).
    #[serde(default = "default_ingress_namespace")]
    #[schemars(length(min = 1, max = 63))]
    pub ingress_namespace: String,
    /// Namespace of Prometheus, allowed to scrape `/metrics`.
    #[serde(default = "default_monitoring_namespace")]
    #[schemars(length(min = 1, max = 63))]
    pub monitoring_namespace: String,
}

impl Default for NetworkPolicySettings {
    fn default() -> Self {
        Self {
            ingress_namespace: default_ingress_namespace(),
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

/// What happens to data when the PhotoSite is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DataPolicy {
    /// Keep the originals claim and the database cluster (they lose their owner reference and
    /// survive the PhotoSite).
    #[default]
    Retain,
    /// Delete the originals claim and the database cluster with the PhotoSite.
    Delete,
}

/// Observed state, written only by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhotoSiteStatus {
    /// The `metadata.generation` this status describes. A status whose observedGeneration
    /// lags the generation is stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing, Degraded and DatabaseReady, each with its own observedGeneration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Number of photo-server pods (from the Deployment); the scale subresource reads it.
    #[serde(default)]
    pub replicas: i32,
    /// Number of ready photo-server pods.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the photo-server pods, for the scale subresource (HPA, kubectl
    /// scale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// URL the site is served on (from the Ingress), or the in-cluster Service URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Short database state for `kubectl get`: `Ready`, `Pending`, `External`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

fn default_replicas() -> i32 {
    2
}
fn default_min_replicas() -> i32 {
    2
}
fn default_max_replicas() -> i32 {
    10
}
fn default_cpu_target() -> i32 {
    75
}
fn default_renditions() -> Vec<u32> {
    vec![240, 640, 1440, 2048]
}
fn default_originals_size() -> Quantity {
    Quantity("10Gi".into())
}
fn default_cache_size() -> Quantity {
    Quantity("2Gi".into())
}
fn default_db_instances() -> i32 {
    2
}
fn default_db_size() -> Quantity {
    Quantity("10Gi".into())
}
fn default_uri_key() -> String {
    "uri".into()
}
fn default_admin_user() -> String {
    "admin".into()
}

/// The CRD as YAML, exactly as committed in `crds/photosite.yaml`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    let body = serde_yaml::to_string(&PhotoSite::crd())?;
    Ok(format!(
        "# Generated by `photo-operator crd` from operator/src/crd.rs. Do not edit.\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::*;
    use kube::CustomResourceExt;

    const CRD_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/photosite.yaml");

    #[test]
    fn committed_crd_matches_the_types() {
        let committed = std::fs::read_to_string(CRD_PATH).unwrap_or_default();
        let generated = crd_yaml().unwrap();
        if std::env::var_os("PHOTO_OPERATOR_UPDATE_CRD").is_some() {
            std::fs::write(CRD_PATH, &generated).unwrap();
            return;
        }
        assert!(
            committed == generated,
            "crds/photosite.yaml is out of date: run `cargo run -p photo-operator -- crd > crds/photosite.yaml`"
        );
    }

    #[test]
    fn crd_names_subresources_and_columns() {
        let crd = serde_json::to_value(PhotoSite::crd()).unwrap();
        let spec = &crd["spec"];
        assert_eq!(spec["group"], "photostack.io");
        assert_eq!(spec["scope"], "Namespaced");
        assert_eq!(spec["names"]["plural"], "photosites");
        assert_eq!(spec["names"]["kind"], "PhotoSite");
        assert_eq!(spec["names"]["shortNames"][0], "psite");
        assert_eq!(spec["names"]["categories"][0], "photostack");
        let v = &spec["versions"][0];
        assert_eq!(v["name"], "v1alpha1");
        assert!(v["subresources"]["status"].is_object());
        let scale = &v["subresources"]["scale"];
        assert_eq!(scale["specReplicasPath"], ".spec.replicas");
        assert_eq!(scale["statusReplicasPath"], ".status.replicas");
        assert_eq!(scale["labelSelectorPath"], ".status.selector");
        let cols: Vec<&str> = v["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        for c in ["Replicas", "Ready", "URL", "Database", "Age"] {
            assert!(cols.contains(&c), "missing column {c}");
        }
    }

    #[test]
    fn defaults_and_descriptions_are_in_the_schema() {
        let crd = serde_json::to_value(PhotoSite::crd()).unwrap();
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let p = &spec["properties"];
        assert_eq!(spec["required"], serde_json::json!(["image"]));
        assert_eq!(p["replicas"]["default"], 2);
        assert_eq!(p["dataPolicy"]["default"], "Retain");
        assert_eq!(
            p["renditions"]["default"],
            serde_json::json!([240, 640, 1440, 2048])
        );
        assert_eq!(
            p["storage"]["properties"]["originals"]["properties"]["accessMode"]["default"],
            "ReadWriteMany"
        );
        assert_eq!(
            p["database"]["properties"]["external"]["properties"]["key"]["default"],
            "uri"
        );
        fn check(path: &str, s: &serde_json::Value) {
            if let Some(props) = s.get("properties").and_then(|p| p.as_object()) {
                for (k, v) in props {
                    let path = format!("{path}.{k}");
                    assert!(v.get("description").is_some(), "{path} has no description");
                    // k8s-openapi types document themselves
                    if !["resources", "tolerations", "size", "sizeLimit"].contains(&k.as_str()) {
                        check(&path, v);
                    }
                }
            }
            if let Some(items) = s.get("items") {
                check(path, items);
            }
        }
        check("spec", spec);
    }

    fn cel_rules(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(rules) = m.get("x-kubernetes-validations").and_then(|r| r.as_array()) {
                    out.extend(
                        rules
                            .iter()
                            .filter_map(|r| r["rule"].as_str().map(String::from)),
                    );
                }
                m.values().for_each(|x| cel_rules(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| cel_rules(x, out)),
            _ => {}
        }
    }

    #[test]
    fn cel_rules_are_in_the_crd() {
        let mut rules = Vec::new();
        cel_rules(&serde_json::to_value(PhotoSite::crd()).unwrap(), &mut rules);
        for r in [
            "self.minReplicas <= self.maxReplicas",
            "!has(self.tls) || (has(self.host) && size(self.host) > 0)",
            "!self.alerts || self.serviceMonitor",
        ] {
            assert!(rules.iter().any(|x| x == r), "missing rule {r}: {rules:?}");
        }
        assert!(rules.iter().any(|x| x.contains("self.metadata.name")));
    }

    #[test]
    fn cel_rules_accept_the_samples() {
        demo().validate_cel().unwrap();
        fakeflickr().validate_cel().unwrap();
    }

    #[test]
    fn cel_rules_reject_bad_specs() {
        let bad = [
            with(fakeflickr(), |s| s.spec.autoscaling.min_replicas = 13),
            with(fakeflickr(), |s| {
                s.spec.ingress.as_mut().unwrap().host = None
            }),
            with(demo(), |s| s.spec.monitoring.alerts = true),
            with(demo(), |s| {
                s.spec.storage.originals.existing_claim = Some(String::new())
            }),
            with(demo(), |s| s.metadata.name = Some("a".repeat(41))),
            with(demo(), |s| s.metadata.name = Some("9lives".into())),
        ];
        for s in bad {
            assert!(
                s.validate_cel().is_err(),
                "accepted {:?} {:?}",
                s.metadata.name,
                s.spec
            );
        }
    }

    #[test]
    fn contract_samples_deserialize_with_defaults() {
        let d = demo();
        assert_eq!(d.spec.replicas, 2);
        assert_eq!(d.spec.renditions, vec![240, 640, 1440, 2048]);
        assert_eq!(d.spec.data_policy, DataPolicy::Retain);
        assert!(!d.spec.autoscaling.enabled);
        assert!(d.spec.ingress.is_none());
        let f = fakeflickr();
        assert_eq!(f.spec.autoscaling.max_replicas, 12);
        assert_eq!(
            f.spec.storage.originals.storage_class_name.as_deref(),
            Some("efs-sc")
        );
        assert_eq!(f.spec.database.instances, 3);
        let tls = f.spec.ingress.unwrap().tls.unwrap();
        assert_eq!(tls.issuer_ref.unwrap().kind, IssuerKind::ClusterIssuer);
    }
}
