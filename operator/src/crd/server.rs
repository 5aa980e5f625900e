//! The photo-server pool: image pull policy, autoscaling, upload limits.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::defaults::*;

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
