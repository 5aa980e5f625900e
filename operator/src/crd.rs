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
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
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

/// Scheduled backups of the originals and the database.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("self.schedule.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[0-9A-Za-z*,/?-]+( +[0-9A-Za-z*,/?-]+){4})$')").message("backup.schedule must be a cron schedule of five fields (minute hour day-of-month month day-of-week, in UTC), e.g. '0 3 * * *', or one of @hourly, @daily, @weekly, @monthly, @yearly").reason(Reason::FieldValueInvalid),
    validation = Rule::new("self.retention.matches('^[1-9][0-9]{0,3}[dwm]$')").message("backup.retention must be a number of days, weeks or months, e.g. 30d, 8w or 6m").reason(Reason::FieldValueInvalid),
    validation = Rule::new("self.maxAge.matches('^[1-9][0-9]{0,4}[mhd]$')").message("backup.maxAge must be a number of minutes, hours or days, e.g. 26h or 8d").reason(Reason::FieldValueInvalid)
)]
pub struct BackupSpec {
    /// When backups run, as a cron schedule in UTC: five fields (minute hour day-of-month
    /// month day-of-week), e.g. `0 3 * * *` for 03:00 every day, or `@hourly`, `@daily`,
    /// `@weekly`, `@monthly`, `@yearly`. The originals CronJob and the database's
    /// ScheduledBackup both follow it; the database is also archived continuously (WAL) in
    /// between.
    #[serde(default = "default_backup_schedule")]
    #[schemars(length(min = 1, max = 100))]
    pub schedule: String,
    /// How long the database's backups and WAL are kept in the object store (the Barman
    /// Cloud retention policy): days, weeks or months, e.g. `30d`, `8w`, `6m`. The point in
    /// time a database can be restored to reaches this far back. Originals are never deleted
    /// from the store (they are write-once and every manifest may name them); expire old
    /// `manifests/` with a bucket lifecycle rule if you must.
    #[serde(default = "default_backup_retention")]
    #[schemars(length(min = 2, max = 5))]
    pub retention: String,
    /// Age after which the last successful backup of either half counts as too old: the
    /// `BackupHealthy` condition turns False (`BackupTooOld`) and, with `monitoring.alerts`,
    /// the `PhotoSiteBackupTooOld` alerts fire. Minutes, hours or days, e.g. `26h` (a daily
    /// schedule plus slack); set it above the schedule's interval (`8d` for `@weekly`).
    #[serde(default = "default_backup_max_age")]
    #[schemars(length(min = 2, max = 6))]
    pub max_age: String,
    /// Where the backups go.
    pub object_store: ObjectStoreSpec,
}

/// A place in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...) and how to reach
/// it. One site's backups live under `s3://<bucket>/<path>/`: the originals in
/// `originals/`, their manifests in `manifests/`, the database (Barman Cloud base backups
/// and WAL) in `postgres/<site>-db/`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStoreSpec {
    /// Name of the bucket, e.g. `photostack-backups`.
    #[schemars(
        length(max = 63),
        regex(pattern = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    )]
    pub bucket: String,
    /// Prefix in the bucket for this site's backups, without leading or trailing `/`, e.g.
    /// `prod/photos`. Empty: the bucket's root. Give every site a path of its own.
    #[serde(default)]
    #[schemars(
        length(max = 200),
        regex(pattern = r"^([A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*)?$")
    )]
    pub path: String,
    /// Endpoint of an S3-compatible store other than AWS, as `https://host[:port]` (or
    /// `http://` for a store without TLS, e.g. MinIO inside the cluster). Empty: AWS S3.
    /// Its port (443 or 80 by default) is what the backup and restore pods may reach.
    #[serde(
        default,
        rename = "endpointURL",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(
        length(max = 253),
        regex(pattern = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$")
    )]
    pub endpoint_url: Option<String>,
    /// Region of the bucket, e.g. `eu-west-1` (`AWS_REGION` of the originals backup; the
    /// database backup's `AWS_DEFAULT_REGION`). Empty: `us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63), regex(pattern = r"^[a-z0-9-]+$"))]
    pub region: Option<String>,
    /// Secret in the PhotoSite's namespace with the store's access key, in CloudNativePG's
    /// convention: keys `ACCESS_KEY_ID` and `ACCESS_SECRET_KEY`, e.g. `kubectl create secret
    /// generic photos-backup --from-literal=ACCESS_KEY_ID=... --from-literal=ACCESS_SECRET_KEY=...`.
    /// The backup pods get them as `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` from the
    /// Secret (never in the pod spec). Both halves need write access to `<path>/`; a restore
    /// only reads.
    #[schemars(length(min = 1, max = 253))]
    pub credentials_secret: String,
    /// CA certificate (PEM) of an endpoint whose certificate a private CA signed: the
    /// database backup's `endpointCA`, and the only CA the originals backup trusts
    /// (`SSL_CERT_FILE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<CaSecretRef>,
}

/// Where a new site's data comes from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    cel,
    validation = Rule::new("!has(self.siteName) || (size(self.siteName) <= 40 && self.siteName.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$'))").message("restore.siteName must be the name of the PhotoSite that made the backup (a DNS label of at most 40 characters)").reason(Reason::FieldValueInvalid)
)]
pub struct RestoreSpec {
    /// The object store the other site's `spec.backup.objectStore` wrote to (same bucket,
    /// path and endpoint), with credentials that may read it.
    pub object_store: ObjectStoreSpec,
    /// Name of the PhotoSite that made the backup: its database backups are stored under
    /// its database cluster's name, `<siteName>-db`. Defaults to this PhotoSite's name (a
    /// site restored under the same name into another namespace or cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 40))]
    pub site_name: Option<String>,
    /// Point-in-time recovery of the database: replay its WAL up to this time (RFC 3339,
    /// e.g. `2026-03-01T12:00:00Z`) instead of to the end of the archive. Must lie within the
    /// backup's retention. The originals are restored from the latest backup; a photo
    /// uploaded after this time has an original but no row (`photo-server orphans` lists it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 64),
        regex(
            pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
        )
    )]
    pub target_time: Option<String>,
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

/// Size limits of uploads (`POST /rest/edit`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadsSpec {
    /// Largest request body photo-server accepts (`PHOTO_MAX_REQUEST_BYTES`; one upload may
    /// carry several files). With an nginx Ingress (class `nginx`, or no class) the
    /// `nginx.ingress.kubernetes.io/proxy-body-size` annotation is set to the same size unless
    /// `ingress.annotations` sets it; ingress-nginx's own default is 1m.
    #[serde(default = "default_max_request_size")]
    pub max_request_size: Quantity,
    /// Largest single original photo-server accepts (`PHOTO_MAX_UPLOAD_BYTES`). At most
    /// `maxRequestSize`.
    #[serde(default = "default_max_file_size")]
    pub max_file_size: Quantity,
    /// Originals one user may store (`PHOTO_USER_QUOTA_BYTES`); an upload past it is refused
    /// (413, naming the quota) and nothing of it is kept. Admins are not limited. `0`: no
    /// quota.
    #[serde(default = "default_user_quota")]
    pub user_quota: Quantity,
}

impl Default for UploadsSpec {
    fn default() -> Self {
        Self {
            max_request_size: default_max_request_size(),
            max_file_size: default_max_file_size(),
            user_quota: default_user_quota(),
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
    validation = Rule::new("!has(self.existingClaim) || size(self.existingClaim) > 0").message("storage.originals.existingClaim must not be empty").reason(Reason::FieldValueInvalid),
    validation = Rule::new("self.accessMode == oldSelf.accessMode").message("storage.originals.accessMode is immutable: a PersistentVolumeClaim's access modes cannot change").reason(Reason::FieldValueForbidden),
    validation = Rule::new("!has(oldSelf.storageClassName) || (has(self.storageClassName) && self.storageClassName == oldSelf.storageClassName)").message("storage.originals.storageClassName is immutable once set: a PersistentVolumeClaim's class cannot change").reason(Reason::FieldValueForbidden)
)]
pub struct OriginalsSpec {
    /// Requested size of the originals PersistentVolumeClaim. It can grow only where the
    /// StorageClass allows volume expansion; a refused resize is reported in the `Degraded`
    /// condition and never shrinks the claim.
    #[serde(default = "default_originals_size")]
    pub size: Quantity,
    /// StorageClass of the originals claim. Must support `accessMode`; on kind the default
    /// class only supports ReadWriteOnce. Empty means the cluster default. Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Access mode of the originals claim. Every photo-server pod mounts it read-write, so
    /// more than one replica needs `ReadWriteMany` (e.g. EFS, NFS, CephFS); `ReadWriteOncePod`
    /// allows a single replica only (rollouts then replace the pod instead of surging).
    /// Immutable.
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
    /// so the kubelet never evicts the pod for exceeding it. The pod requests this much
    /// `ephemeral-storage` (plus its small scratch volumes) so the scheduler places it on a
    /// node with room for it.
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
    /// `instances - 1` streaming replicas. With 2 or more, replication is synchronous: a
    /// commit waits until one replica has it, so a failover loses no acknowledged upload
    /// (with no healthy replica, the primary goes on alone). Ignored with `external`.
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
    /// Key of the Secret holding a `postgres://` connection URI. The port(s) of the URI
    /// (default 5432) are the ones the NetworkPolicy lets the pods reach, and a hash of the
    /// value is put in the pod template, so rotating the Secret rolls the pods.
    #[serde(default = "default_uri_key")]
    #[schemars(length(min = 1))]
    pub key: String,
    /// TLS mode of the connection, as libpq's `sslmode` (set as `PGSSLMODE`; an `sslmode` in
    /// the URI wins). Unset: the URI alone decides, and without `sslmode` there the driver's
    /// default `prefer` encrypts when it can but verifies nothing. Use `verify-full` with
    /// `caSecret` to verify the server's certificate and host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_mode: Option<SslMode>,
    /// Secret key holding the CA certificate (PEM) that signed the database server's
    /// certificate, e.g. the Amazon RDS CA bundle. Only that key is mounted, and its path is
    /// passed as `PGSSLROOTCERT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<CaSecretRef>,
}

/// libpq `sslmode` values.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// A key of a Secret in the PhotoSite's namespace holding a CA certificate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key of the PEM certificate in the Secret.
    #[serde(default = "default_ca_key")]
    #[schemars(length(min = 1, max = 253))]
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
    /// Create a ServiceMonitor scraping `/metrics` of every pod (on the separate metrics port,
    /// through the headless Service `<name>-metrics`), and, with a CloudNativePG database, a
    /// PodMonitor `<name>-db` scraping its Postgres instances.
    #[serde(default)]
    pub service_monitor: bool,
    /// Create a PrometheusRule with availability, latency and error-rate alerts.
    #[serde(default)]
    pub alerts: bool,
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
    /// Ready, Progressing, Degraded, DatabaseReady and (with `spec.backup`) BackupHealthy,
    /// each with its own observedGeneration.
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
    /// Short database state for `kubectl get`: `Ready`, `Pending`, `External`,
    /// `NotInstalled` (CloudNativePG missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Phase of the originals PersistentVolumeClaim (`Pending`, `Bound`, `Lost`). A claim
    /// that stays `Pending` usually means a StorageClass that cannot provide its access mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub originals: Option<String>,
    /// Backups (with `spec.backup`): when each half last succeeded. The `BackupHealthy`
    /// condition says whether they are working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupStatus>,
    /// The restore of a site created with `spec.restore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreStatus>,
}

/// When each half of the site was last backed up.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// Completion of the last successful originals backup (the CronJob's
    /// `lastSuccessfulTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_originals_backup_time: Option<Time>,
    /// The last successful base backup of the database (the Barman Cloud plugin's record in
    /// the ObjectStore's status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_database_backup_time: Option<Time>,
    /// The earliest time the database can be restored to (`spec.restore.targetTime` of a
    /// new site); WAL archiving makes every later moment reachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_recoverability_point: Option<Time>,
}

/// Progress of `spec.restore`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    /// When the restore Job copied the last original back: the photo-server pods start
    /// after it, and the restore never runs again for this PhotoSite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub originals_restored_time: Option<Time>,
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
fn default_ca_key() -> String {
    "ca.crt".into()
}
fn default_max_request_size() -> Quantity {
    Quantity("200Mi".into())
}
fn default_max_file_size() -> Quantity {
    Quantity("50Mi".into())
}
fn default_user_quota() -> Quantity {
    Quantity("10Gi".into())
}
fn default_admin_user() -> String {
    "admin".into()
}
fn default_backup_schedule() -> String {
    "0 3 * * *".into()
}
fn default_backup_retention() -> String {
    "30d".into()
}
fn default_backup_max_age() -> String {
    "26h".into()
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
    use crate::test_support::*;
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
            "self.accessMode == oldSelf.accessMode",
        ] {
            assert!(rules.iter().any(|x| x == r), "missing rule {r}: {rules:?}");
        }
        assert!(rules.iter().any(|x| x.contains("self.metadata.name")));
        assert!(rules.iter().any(|x| x.contains("ReadWriteOncePod")));
        assert!(rules.iter().any(|x| x.contains("oldSelf.storageClassName")));
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
            // one pod at most can mount a ReadWriteOncePod claim
            with(demo(), |s| {
                s.spec.storage.originals.access_mode = AccessMode::ReadWriteOncePod
            }),
            with(fakeflickr(), |s| {
                s.spec.replicas = 1;
                s.spec.storage.originals.access_mode = AccessMode::ReadWriteOncePod;
            }),
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
    fn read_write_once_pod_is_fine_for_one_pod_or_an_existing_claim() {
        for ok in [
            with(demo(), |s| {
                s.spec.replicas = 1;
                s.spec.storage.originals.access_mode = AccessMode::ReadWriteOncePod;
            }),
            with(demo(), |s| {
                s.spec.storage.originals.access_mode = AccessMode::ReadWriteOncePod;
                s.spec.storage.originals.existing_claim = Some("mine".into());
            }),
        ] {
            assert!(ok.validate_cel().is_ok(), "{:?}", ok.validate_cel());
        }
    }

    #[test]
    fn claim_class_and_access_mode_are_immutable() {
        let old = fakeflickr(); // storageClassName efs-sc, ReadWriteMany
        let refused = [
            with(fakeflickr(), |s| {
                s.spec.storage.originals.storage_class_name = Some("gp3".into())
            }),
            with(fakeflickr(), |s| {
                s.spec.storage.originals.storage_class_name = None
            }),
            with(fakeflickr(), |s| {
                s.spec.storage.originals.access_mode = AccessMode::ReadWriteOnce
            }),
        ];
        for new in refused {
            let err = new.validate_cel_update(&old);
            assert!(err.is_err(), "accepted {:?}", new.spec.storage.originals);
            assert!(format!("{err:?}").contains("immutable"), "{err:?}");
        }
        // what may change: the size, and a class set for the first time
        let grown = with(fakeflickr(), |s| {
            s.spec.storage.originals.size.0 = "200Gi".into()
        });
        assert!(grown.validate_cel_update(&old).is_ok());
        let first = with(demo(), |s| {
            s.spec.storage.originals.storage_class_name = Some("standard".into())
        });
        assert!(first.validate_cel_update(&demo()).is_ok());
        // a create is not a transition
        assert!(fakeflickr().validate_cel().is_ok());
    }

    fn backed_up() -> PhotoSite {
        with(fakeflickr(), |s| s.spec.backup = Some(backup_spec()))
    }

    fn restored() -> PhotoSite {
        with(demo(), |s| s.spec.restore = Some(restore_spec()))
    }

    #[test]
    fn backup_and_restore_defaults_and_cel() {
        let b = backup_spec();
        assert_eq!(b.schedule, "0 3 * * *");
        assert_eq!(b.retention, "30d");
        assert_eq!(b.max_age, "26h");
        assert_eq!(b.object_store.path, "prod/site");
        for ok in [
            backed_up(),
            restored(),
            with(backed_up(), |s| {
                let b = s.spec.backup.as_mut().unwrap();
                b.schedule = "@weekly".into();
                b.retention = "6m".into();
                b.max_age = "8d".into();
            }),
            with(backed_up(), |s| {
                s.spec.backup.as_mut().unwrap().schedule = "30 2 * * MON-FRI".into()
            }),
            // restored into a new place, backing up to a path of its own
            with(restored(), |s| s.spec.backup = Some(backup_spec())),
        ] {
            assert!(ok.validate_cel().is_ok(), "{:?}", ok.validate_cel());
        }
        let bad = [
            (
                with(backed_up(), |s| {
                    s.spec.backup.as_mut().unwrap().schedule = "daily".into()
                }),
                "backup.schedule",
            ),
            (
                with(backed_up(), |s| {
                    s.spec.backup.as_mut().unwrap().schedule = "0 0 3 * * *".into()
                }),
                "backup.schedule",
            ),
            (
                with(backed_up(), |s| {
                    s.spec.backup.as_mut().unwrap().retention = "30 days".into()
                }),
                "backup.retention",
            ),
            (
                with(backed_up(), |s| {
                    s.spec.backup.as_mut().unwrap().max_age = "26".into()
                }),
                "backup.maxAge",
            ),
            (
                with(demo(), |s| {
                    s.spec.backup = Some(backup_spec());
                    s.spec.replicas = 1;
                    s.spec.storage.originals.access_mode = AccessMode::ReadWriteOncePod;
                }),
                "ReadWriteOncePod",
            ),
            (
                with(restored(), |s| {
                    let mut b = backup_spec();
                    b.object_store = s.spec.restore.as_ref().unwrap().object_store.clone();
                    s.spec.backup = Some(b);
                }),
                "never writes over the backup",
            ),
            (
                with(restored(), |s| {
                    s.spec.restore.as_mut().unwrap().site_name = Some("Photos_Old".into())
                }),
                "restore.siteName",
            ),
        ];
        for (site, message) in bad {
            let err = format!("{:?}", site.validate_cel());
            assert!(err.contains(message), "{message}: {err}");
        }
        // the same bucket and path on another endpoint is another store
        let elsewhere = with(restored(), |s| {
            let mut b = backup_spec();
            b.object_store = s.spec.restore.as_ref().unwrap().object_store.clone();
            b.object_store.endpoint_url = Some("https://minio.example.com".into());
            s.spec.backup = Some(b);
        });
        assert!(
            elsewhere.validate_cel().is_ok(),
            "{:?}",
            elsewhere.validate_cel()
        );
    }

    #[test]
    fn restore_is_set_at_creation_and_never_changes() {
        let old = restored();
        assert!(old.validate_cel_update(&old.clone()).is_ok());
        // other fields may change
        let scaled = with(restored(), |s| s.spec.replicas = 5);
        assert!(scaled.validate_cel_update(&old).is_ok());
        let refused = [
            // added to a running site: it would restore over live data
            (restored(), demo()),
            // removed, or pointed elsewhere
            (demo(), restored()),
            (
                with(restored(), |s| {
                    s.spec.restore.as_mut().unwrap().target_time =
                        Some("2026-03-01T12:00:00Z".into())
                }),
                restored(),
            ),
        ];
        for (new, old) in refused {
            let err = format!("{:?}", new.validate_cel_update(&old));
            assert!(
                err.contains("spec.restore is set when a PhotoSite is created"),
                "{err}"
            );
        }
    }

    #[test]
    fn schema_patterns_refuse_bad_destinations() {
        let crd = serde_json::to_value(PhotoSite::crd()).unwrap();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let validator = jsonschema::validator_for(schema).unwrap();
        let as_json = |s: &PhotoSite| serde_json::to_value(s).unwrap();
        assert!(validator.is_valid(&as_json(&backed_up())));
        assert!(validator.is_valid(&as_json(&restored())));
        let ok_endpoint = with(backed_up(), |s| {
            s.spec.backup.as_mut().unwrap().object_store.endpoint_url =
                Some("http://minio.minio.svc:9000".into())
        });
        assert!(validator.is_valid(&as_json(&ok_endpoint)));
        let store = |f: fn(&mut ObjectStoreSpec)| {
            with(backed_up(), |s| {
                f(&mut s.spec.backup.as_mut().unwrap().object_store)
            })
        };
        for bad in [
            store(|o| o.bucket = "Photos".into()),
            store(|o| o.bucket = "ab".into()),
            store(|o| o.path = "/prod".into()),
            store(|o| o.path = "prod/".into()),
            store(|o| o.path = "a b".into()),
            store(|o| o.endpoint_url = Some("minio:9000".into())),
            store(|o| o.endpoint_url = Some("https://minio/path".into())),
            store(|o| o.region = Some("EU West".into())),
            store(|o| o.credentials_secret = String::new()),
            with(restored(), |s| {
                s.spec.restore.as_mut().unwrap().target_time = Some("2026-03-01 12:00".into())
            }),
        ] {
            assert!(!validator.is_valid(&as_json(&bad)), "{:?}", bad.spec);
        }
    }

    #[test]
    fn new_fields_have_defaults_and_formats_in_the_schema() {
        let crd = serde_json::to_value(PhotoSite::crd()).unwrap();
        let p = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        let uploads = &p["uploads"]["properties"];
        assert_eq!(uploads["maxRequestSize"]["default"], "200Mi");
        assert_eq!(uploads["maxFileSize"]["default"], "50Mi");
        let cidrs = &p["networkPolicy"]["properties"]["ingressCIDRs"];
        assert_eq!(cidrs["type"], "array");
        assert!(cidrs["items"]["pattern"].is_string());
        assert_eq!(cidrs["maxItems"], 32);
        let labels = &p["monitoring"]["properties"]["labels"];
        assert_eq!(labels["additionalProperties"]["type"], "string");
        let ext = &p["database"]["properties"]["external"]["properties"];
        let modes: Vec<&str> = ext["sslMode"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(
            modes,
            [
                "disable",
                "allow",
                "prefer",
                "require",
                "verify-ca",
                "verify-full"
            ]
        );
        assert_eq!(ext["caSecret"]["properties"]["key"]["default"], "ca.crt");
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
