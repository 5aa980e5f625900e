//! `spec.database`: the CloudNativePG cluster, or an external database.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::defaults::*;

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
    /// Compute resources of each Postgres instance. Defaults to requests of 100m CPU and
    /// 256Mi memory and limits of 2 CPUs and 1Gi memory (a namespace with a ResourceQuota
    /// on limits refuses pods without them). Ignored with `external`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
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
            resources: None,
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
