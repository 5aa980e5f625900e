//! `spec.backup` and `spec.restore`: where backups go and where a new site is restored from.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::database::CaSecretRef;
use super::defaults::*;

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
    /// only reads. Leave it out to use an IAM role instead of a key: the role of the
    /// ServiceAccounts (IRSA or EKS Pod Identity, see `spec.serviceAccount`), else the
    /// node's; the database's ObjectStore then inherits the IAM role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub credentials_secret: Option<String>,
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
