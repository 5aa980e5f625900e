//! `status`: observed state, written only by the operator.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
