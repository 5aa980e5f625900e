//! The schema defaults of the spec (serde defaults, so they appear in the CRD as `default:`).

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

pub(super) fn default_replicas() -> i32 {
    2
}
pub(super) fn default_min_replicas() -> i32 {
    2
}
pub(super) fn default_max_replicas() -> i32 {
    10
}
pub(super) fn default_cpu_target() -> i32 {
    75
}
pub(super) fn default_renditions() -> Vec<u32> {
    vec![240, 640, 1440, 2048]
}
pub(super) fn default_originals_size() -> Quantity {
    Quantity("10Gi".into())
}
pub(super) fn default_cache_size() -> Quantity {
    Quantity("2Gi".into())
}
pub(super) fn default_db_instances() -> i32 {
    2
}
pub(super) fn default_db_size() -> Quantity {
    Quantity("10Gi".into())
}
pub(super) fn default_uri_key() -> String {
    "uri".into()
}
pub(super) fn default_ca_key() -> String {
    "ca.crt".into()
}
pub(super) fn default_max_request_size() -> Quantity {
    Quantity("200Mi".into())
}
pub(super) fn default_max_file_size() -> Quantity {
    Quantity("50Mi".into())
}
pub(super) fn default_user_quota() -> Quantity {
    Quantity("10Gi".into())
}
pub(super) fn default_admin_user() -> String {
    "admin".into()
}
pub(super) fn default_backup_schedule() -> String {
    "0 3 * * *".into()
}
pub(super) fn default_backup_retention() -> String {
    "30d".into()
}
pub(super) fn default_backup_max_age() -> String {
    "26h".into()
}
