//! `spec.storage`: the originals claim and the cache.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::defaults::*;

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
