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

mod backup;
mod database;
mod defaults;
mod exposure;
mod gateway;
mod server;
mod slo;
mod status;
mod storage;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use backup::{BackupSpec, ObjectStoreSpec, RestoreSpec};
pub use database::{CaSecretRef, DatabaseSpec, DatabaseStorageSpec, ExternalDatabaseSpec, SslMode};
use defaults::*;
pub use exposure::{
    IngressSpec, IssuerKind, IssuerRef, MonitoringSpec, NetworkPolicySettings, TlsSpec,
};
pub use gateway::{GatewayParentRef, GatewaySpec};
pub use server::{AutoscalingSpec, ImagePullPolicy, UploadsSpec};
pub use slo::{LatencyObjective, SloSpec};
pub use status::{BackupStatus, PhotoSiteStatus, RestoreStatus};
pub use storage::{AccessMode, CacheSpec, OriginalsSpec, StorageSpec};

/// Metadata of the site's ServiceAccounts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountSpec {
    /// Annotations, e.g. `eks.amazonaws.com/role-arn` for IAM roles for service accounts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub annotations: BTreeMap<String, String>,
}

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
    validation = Rule::new("self.spec.storage.originals.accessMode != 'ReadWriteOncePod' || has(self.spec.storage.originals.existingClaim) || (self.spec.replicas <= 1 && (!self.spec.autoscaling.enabled || self.spec.autoscaling.maxReplicas <= 1))").message("storage.originals.accessMode ReadWriteOncePod lets only one pod mount the originals: replicas (and autoscaling.maxReplicas) must be at most 1").reason(Reason::FieldValueForbidden),
    validation = Rule::new("size(self.metadata.name) <= 40 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name must be a DNS label (lower-case letters, digits and '-', starting with a letter) of at most 40 characters: children and CloudNativePG add suffixes").reason(Reason::FieldValueInvalid),
    validation = Rule::new("!has(self.spec.backup) || self.spec.storage.originals.accessMode != 'ReadWriteOncePod' || has(self.spec.storage.originals.existingClaim)").message("spec.backup needs an originals claim the backup Job can mount next to the server: ReadWriteOncePod lets only one pod mount it (use ReadWriteOnce or ReadWriteMany)").reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(self.spec.backup) || !has(self.spec.restore) || self.spec.backup.objectStore.bucket != self.spec.restore.objectStore.bucket || self.spec.backup.objectStore.path != self.spec.restore.objectStore.path || (has(self.spec.backup.objectStore.endpointURL) ? self.spec.backup.objectStore.endpointURL : '') != (has(self.spec.restore.objectStore.endpointURL) ? self.spec.restore.objectStore.endpointURL : '')").message("spec.backup.objectStore must not be the place spec.restore.objectStore reads from (same bucket and path): give the restored site a path of its own, so it never writes over the backup it came from").reason(Reason::FieldValueInvalid),
    validation = Rule::new("has(self.spec.restore) == has(oldSelf.spec.restore) && (!has(self.spec.restore) || self.spec.restore == oldSelf.spec.restore)").message("spec.restore is set when a PhotoSite is created and never changes afterwards: the restore runs once, before the site first starts").reason(Reason::FieldValueForbidden),
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
    /// subresource) move it, and the operator copies it to the Deployment (with autoscaling,
    /// kept within `minReplicas` and `maxReplicas`). Leave it out of the manifest of an
    /// autoscaled site: re-applying the manifest would reset what the autoscaler chose.
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

    /// Size limits of uploads. photo-server refuses larger requests, and an nginx Ingress is
    /// given the same body-size limit (`nginx.ingress.kubernetes.io/proxy-body-size`).
    #[serde(default)]
    pub uploads: UploadsSpec,

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

    /// Exposes the site through the Gateway API: an HTTPRoute attached to your Gateway(s).
    /// Beside or instead of `ingress` (ingress-nginx was retired in March 2026; a Gateway
    /// controller is the maintained way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewaySpec>,

    /// Prometheus Operator integration. Ignored (with an Event) when the Prometheus Operator
    /// CRDs are not installed.
    #[serde(default)]
    pub monitoring: MonitoringSpec,

    /// What happens to the originals volume and the database when the PhotoSite is deleted:
    /// `Retain` (default) keeps them, `Delete` removes them.
    #[serde(default)]
    pub data_policy: DataPolicy,

    /// Who may reach the photo-server pods (the NetworkPolicy): the ingress controller's
    /// namespace and address blocks on the web port, the monitoring namespace on the metrics
    /// port.
    #[serde(default)]
    pub network_policy: NetworkPolicySettings,

    /// Compute resources of the photo-server container (and of the backup and restore Jobs).
    /// Defaults to requests of 100m CPU and 256Mi memory and limits of 2 CPUs and 1Gi
    /// memory. An `ephemeral-storage` request and limit are added unless given: the cache's
    /// `sizeLimit` plus the pod's scratch space (and 256Mi for logs in the limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// The site's ServiceAccounts: annotations for the photo-server pods' (`<name>`, which
    /// the backup and restore Jobs use too) and, through CloudNativePG's
    /// `serviceAccountTemplate`, the database's. For backups without a static key on EKS:
    /// `{annotations: {eks.amazonaws.com/role-arn: arn:aws:iam::ACCOUNT:role/ROLE}}` (IRSA);
    /// with EKS Pod Identity, associate the role with both ServiceAccounts instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ServiceAccountSpec>,

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

    /// Scheduled backups of both halves of the site to an S3-compatible object store: the
    /// originals (a CronJob running `photo-server backup`, incremental, with checksums) and,
    /// with a CloudNativePG database, the database (the Barman Cloud plugin: base backups on
    /// the same schedule and continuous WAL archiving, so it can be restored to any point in
    /// time within the retention). The `BackupHealthy` condition and `status.backup` report
    /// them. An external database is backed up by its provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,

    /// Create this PhotoSite from a backup (another site's `spec.backup`, in any namespace or
    /// cluster): its CloudNativePG database is bootstrapped by recovery from the object store
    /// (optionally to a point in time), and its originals are restored by a Job before the
    /// photo-server pods first start. Set only when the PhotoSite is created; it cannot be
    /// added, changed or removed afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreSpec>,
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

/// The CRD as YAML, exactly as committed in `crds/photosite.yaml`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    let body = serde_yaml::to_string(&PhotoSite::crd())?;
    Ok(format!(
        "# Generated by `photo-operator crd` from operator/src/crd.rs. Do not edit.\n{body}"
    ))
}

#[cfg(test)]
mod tests;
