//! Stage 1, validate: a `PhotoSite` -> a [`ValidatedSite`], the only thing the builders
//! ([`crate::children`]) accept.
//!
//! [`validate`] checks a PhotoSite beyond what the CRD schema enforces (the operator must not
//! trust that the CRD installed in the cluster is the current one) and parses, once, every
//! value the builders need (sizes in bytes, canonical address blocks, both cron dialects of the
//! backup schedule, the object store URLs): Stackable's `ValidatedCluster`.

mod backup;
mod error;
mod slo;
mod store;

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use crate::crd::{AccessMode, DataPolicy, PhotoSite, PhotoSiteSpec};
use crate::{labels, names, quantity};
pub use backup::{ValidatedBackup, ValidatedRestore, schedules};
use backup::{validate_backup, validate_restore};
pub use error::ValidateError;
use error::invalid;
use slo::validate_slo;
pub use slo::{LatencySlo, Objective, RENDER_BUCKETS, REQUEST_BUCKETS, ValidatedSlo};
pub use store::{ACCESS_KEY_ID, ACCESS_SECRET_KEY, DATABASE_FOLDER, Store, store};

/// A PhotoSite that passed [`validate`], with the values the builders need already parsed.
/// The builders accept nothing else, so none of them can see an unchecked spec.
#[derive(Debug)]
pub struct ValidatedSite<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub spec: &'a PhotoSiteSpec,
    /// Controller owner reference to the PhotoSite; `None` when it has no uid (render).
    pub owner: Option<OwnerReference>,
    /// `storage.cache.sizeLimit` in bytes.
    pub cache_bytes: u64,
    /// `uploads.maxRequestSize` in bytes.
    pub max_request_bytes: u64,
    /// `uploads.maxFileSize` in bytes.
    pub max_file_bytes: u64,
    /// `uploads.userQuota` in bytes (0: none).
    pub user_quota_bytes: u64,
    /// `networkPolicy.ingressCIDRs`, checked to be canonical CIDRs.
    pub ingress_cidrs: Vec<String>,
    /// `spec.backup`, checked.
    pub backup: Option<ValidatedBackup<'a>>,
    /// `spec.restore`, checked.
    pub restore: Option<ValidatedRestore<'a>>,
    /// `spec.monitoring.slo`, checked.
    pub slo: ValidatedSlo,
    /// Only [`validate`] can build one: nothing outside this module can name [`Checked`].
    _checked: Checked,
}

/// Proof that [`validate`] made a [`ValidatedSite`] (private to this module).
#[derive(Debug)]
struct Checked;

impl ValidatedSite<'_> {
    /// Metadata of a child: name, namespace, labels and the controller owner reference.
    pub fn meta(&self, name: String, component: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.into()),
            labels: Some(labels::common(self.name, component)),
            owner_references: self.owner.clone().map(|o| vec![o]),
            ..ObjectMeta::default()
        }
    }

    /// Metadata of a data child (originals claim, database): owned only under
    /// `dataPolicy: Delete`, so the garbage collector keeps it under `Retain`, and labelled
    /// without the pod selector labels (a claim or a database is not a photo-server pod).
    pub fn data_meta(&self, name: String, component: &str) -> ObjectMeta {
        let mut meta = self.meta(name, component);
        meta.labels = Some(labels::data(self.name, component));
        if self.spec.data_policy == DataPolicy::Retain {
            meta.owner_references = None;
            meta.annotations = Some(BTreeMap::from([(
                "photostack.io/data-policy".to_string(),
                "Retain".to_string(),
            )]));
        }
        meta
    }

    /// Whether the operator creates the originals claim (no `existingClaim`).
    pub fn owns_originals_claim(&self) -> bool {
        self.spec.storage.originals.existing_claim.is_none()
    }

    /// Whether the site has a CloudNativePG database (not `database.external`).
    pub fn cloudnative_pg_database(&self) -> bool {
        self.spec.database.external.is_none()
    }
}

fn bytes(field: &str, q: &str) -> Result<u64, ValidateError> {
    quantity::parse_bytes(q).map_err(|e| invalid(format!("{field}: {e}")))
}

/// A CIDR in canonical form (network address, no host bits), as NetworkPolicy `ipBlock`s
/// require.
pub fn canonical_cidr(s: &str) -> Result<String, String> {
    let (addr, prefix) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not a CIDR (address/prefix)"))?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("{s:?}: {addr:?} is not an IP address"))?;
    let prefix: u8 = prefix
        .parse()
        .map_err(|_| format!("{s:?}: {prefix:?} is not a prefix length"))?;
    let network = match addr {
        IpAddr::V4(a) if prefix <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) if prefix <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
        _ => return Err(format!("{s:?}: prefix length {prefix} is too long")),
    };
    let canonical = format!("{network}/{prefix}");
    if canonical != s {
        return Err(format!("{s:?} is not canonical: write {canonical:?}"));
    }
    Ok(canonical)
}

/// Check a PhotoSite beyond what the CRD schema enforces (the operator must not trust that
/// the CRD installed in the cluster is the current one) and parse what the builders need.
pub fn validate(site: &PhotoSite) -> Result<ValidatedSite<'_>, ValidateError> {
    let name = site
        .metadata
        .name
        .as_deref()
        .ok_or_else(|| invalid("PhotoSite has no name"))?;
    let namespace = site
        .metadata
        .namespace
        .as_deref()
        .ok_or_else(|| invalid("PhotoSite has no namespace"))?;
    if !names::is_dns_label(name) || name.len() > names::MAX_SITE_NAME {
        return Err(invalid(format!(
            "name {name:?} must be a DNS label of at most {} characters",
            names::MAX_SITE_NAME
        )));
    }
    let spec = &site.spec;
    if spec.image.trim().is_empty() {
        return Err(invalid("spec.image must not be empty"));
    }
    if spec.replicas < 0 {
        return Err(invalid("spec.replicas must not be negative"));
    }
    let a = &spec.autoscaling;
    if a.min_replicas < 1 || a.min_replicas > a.max_replicas {
        return Err(invalid(
            "autoscaling.minReplicas must be between 1 and autoscaling.maxReplicas",
        ));
    }
    if spec.renditions.is_empty() {
        return Err(invalid("spec.renditions must not be empty"));
    }
    let cache_bytes = bytes("storage.cache.sizeLimit", &spec.storage.cache.size_limit.0)?;
    bytes("storage.originals.size", &spec.storage.originals.size.0)?;
    bytes("database.storage.size", &spec.database.storage.size.0)?;
    let max_request_bytes = bytes("uploads.maxRequestSize", &spec.uploads.max_request_size.0)?;
    let max_file_bytes = bytes("uploads.maxFileSize", &spec.uploads.max_file_size.0)?;
    let user_quota_bytes = bytes("uploads.userQuota", &spec.uploads.user_quota.0)?;
    if max_request_bytes == 0 || max_file_bytes == 0 || max_file_bytes > max_request_bytes {
        return Err(invalid(
            "uploads.maxFileSize must be positive and at most uploads.maxRequestSize",
        ));
    }
    let originals = &spec.storage.originals;
    let many = spec.replicas > 1 || (a.enabled && a.max_replicas > 1);
    if originals.access_mode == AccessMode::ReadWriteOncePod
        && originals.existing_claim.is_none()
        && many
    {
        return Err(invalid(
            "storage.originals.accessMode ReadWriteOncePod allows one pod only: replicas and autoscaling.maxReplicas must be at most 1",
        ));
    }
    if let Some(ing) = &spec.ingress
        && ing.tls.is_some()
        && ing.host.as_deref().unwrap_or("").is_empty()
    {
        return Err(invalid("ingress.tls needs ingress.host"));
    }
    if spec.monitoring.alerts && !spec.monitoring.service_monitor {
        return Err(invalid("monitoring.alerts needs monitoring.serviceMonitor"));
    }
    for (k, v) in &spec.monitoring.labels {
        if !labels::is_label_key(k) || !labels::is_label_value(v) {
            return Err(invalid(format!(
                "monitoring.labels: {k:?}: {v:?} is not a valid label"
            )));
        }
    }
    let ingress_cidrs = spec
        .network_policy
        .ingress_cidrs
        .iter()
        .map(|c| canonical_cidr(c).map_err(|e| invalid(format!("networkPolicy.ingressCIDRs: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let slo = validate_slo(&spec.monitoring.slo)?;
    let backup = spec
        .backup
        .as_ref()
        .map(|b| validate_backup(spec, b))
        .transpose()?;
    let restore = spec
        .restore
        .as_ref()
        .map(|r| validate_restore(name, r))
        .transpose()?;
    if let (Some(b), Some(r)) = (&backup, &restore)
        && b.store.url == r.store.url
        && b.store.endpoint == r.store.endpoint
    {
        return Err(invalid(
            "spec.backup.objectStore must not be where spec.restore.objectStore reads from: give the restored site a path of its own",
        ));
    }
    Ok(ValidatedSite {
        name,
        namespace,
        spec,
        // None for a PhotoSite that has no uid yet (render of a file): no owner reference then.
        owner: site.controller_owner_ref(&()),
        cache_bytes,
        max_request_bytes,
        max_file_bytes,
        user_quota_bytes,
        ingress_cidrs,
        backup,
        restore,
        slo,
        _checked: Checked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn validation_rejects_bad_specs() {
        let bad = [
            with(demo(), |s| s.spec.autoscaling.min_replicas = 20),
            with(demo(), |s| s.spec.image = " ".into()),
            with(demo(), |s| {
                s.spec.storage.cache.size_limit.0 = "lots".into()
            }),
            with(demo(), |s| s.spec.monitoring.alerts = true),
            with(demo(), |s| s.metadata.name = Some("x".repeat(41))),
            with(fakeflickr(), |s| {
                if let Some(i) = s.spec.ingress.as_mut() {
                    i.host = None
                }
            }),
            // ReadWriteOncePod mounts on one pod only
            with(demo(), |s| {
                s.spec.storage.originals.access_mode = AccessMode::ReadWriteOncePod
            }),
            with(demo(), |s| {
                s.spec.storage.originals.access_mode = AccessMode::ReadWriteOncePod;
                s.spec.replicas = 1;
                s.spec.autoscaling.enabled = true;
            }),
            with(demo(), |s| s.spec.uploads.max_file_size.0 = "300Mi".into()),
            with(demo(), |s| s.spec.uploads.max_request_size.0 = "0".into()),
            with(demo(), |s| {
                s.spec.network_policy.ingress_cidrs = vec!["10.0.0.1/16".into()]
            }),
            with(demo(), |s| {
                s.spec.network_policy.ingress_cidrs = vec!["10.0.0.0/33".into()]
            }),
            with(demo(), |s| {
                s.spec
                    .monitoring
                    .labels
                    .insert("release".into(), "not a label".into());
            }),
        ];
        for s in bad {
            assert!(
                matches!(validate(&s), Err(ValidateError::InvalidSpec(_))),
                "{:?}",
                s.spec
            );
        }
        assert!(validate(&demo()).is_ok());
        assert!(validate(&fakeflickr()).is_ok());
        // one pod on a ReadWriteOncePod claim is fine, and so is an existing claim
        for ok in [
            with(demo(), |s| {
                s.spec.storage.originals.access_mode = AccessMode::ReadWriteOncePod;
                s.spec.replicas = 1;
            }),
            with(demo(), |s| {
                s.spec.storage.originals.access_mode = AccessMode::ReadWriteOncePod;
                s.spec.storage.originals.existing_claim = Some("mine".into());
            }),
        ] {
            assert!(validate(&ok).is_ok(), "{:?}", ok.spec);
        }
    }

    #[test]
    fn backup_and_restore_are_checked_beyond_the_schema() {
        let backed_up = || with(demo(), |s| s.spec.backup = Some(backup_spec()));
        let restored = || with(demo(), |s| s.spec.restore = Some(restore_spec()));
        let bad = [
            with(backed_up(), |s| {
                s.spec.backup.as_mut().unwrap().schedule = "every day".into()
            }),
            with(backed_up(), |s| {
                s.spec.backup.as_mut().unwrap().schedule = "0 0 3 * * *".into()
            }),
            with(backed_up(), |s| {
                s.spec.backup.as_mut().unwrap().retention = "30".into()
            }),
            with(backed_up(), |s| {
                s.spec.backup.as_mut().unwrap().retention = "0d".into()
            }),
            with(backed_up(), |s| {
                s.spec.backup.as_mut().unwrap().max_age = "1y".into()
            }),
            with(backed_up(), |s| {
                s.spec.backup.as_mut().unwrap().object_store.bucket = "My_Bucket".into()
            }),
            with(backed_up(), |s| {
                s.spec.backup.as_mut().unwrap().object_store.endpoint_url =
                    Some("minio:9000".into())
            }),
            // one pod at most mounts a ReadWriteOncePod claim: the backup could never run
            with(backed_up(), |s| {
                s.spec.replicas = 1;
                s.spec.storage.originals.access_mode = AccessMode::ReadWriteOncePod;
            }),
            with(restored(), |s| {
                s.spec.restore.as_mut().unwrap().target_time = Some("yesterday".into())
            }),
            with(restored(), |s| {
                s.spec.restore.as_mut().unwrap().target_time = Some("2026-02-30T00:00:00Z".into())
            }),
            with(restored(), |s| {
                s.spec.restore.as_mut().unwrap().site_name = Some("Photos".into())
            }),
            // a restored site backing up over the backup it came from
            with(restored(), |s| {
                let mut b = backup_spec();
                b.object_store = s.spec.restore.as_ref().unwrap().object_store.clone();
                s.spec.backup = Some(b);
            }),
        ];
        for s in bad {
            let err = validate(&s).map(|_| ()).unwrap_err();
            assert!(matches!(err, ValidateError::InvalidSpec(_)), "{err}");
        }
        let ok = with(restored(), |s| {
            s.spec.backup = Some(backup_spec());
            s.spec.restore.as_mut().unwrap().target_time = Some("2026-03-01T12:00:00+01:00".into());
        });
        let v = validate(&ok).unwrap();
        let b = v.backup.as_ref().unwrap();
        assert_eq!(b.schedule, "0 3 * * *");
        assert_eq!(b.database_schedule, "0 0 3 * * *");
        assert_eq!(b.max_age_seconds, 26 * 3600);
        assert_eq!(b.store.url, "s3://backups/prod/site");
        assert_eq!(v.restore.as_ref().unwrap().server_name, "demo-db");
    }

    #[test]
    fn cidrs_must_be_canonical() {
        assert_eq!(canonical_cidr("10.0.0.0/16").as_deref(), Ok("10.0.0.0/16"));
        assert_eq!(canonical_cidr("fd00::/8").as_deref(), Ok("fd00::/8"));
        assert_eq!(canonical_cidr("0.0.0.0/0").as_deref(), Ok("0.0.0.0/0"));
        assert!(
            canonical_cidr("10.0.0.1/16")
                .unwrap_err()
                .contains("10.0.0.0/16")
        );
        assert!(canonical_cidr("fd00:0::/8").is_err());
        assert!(canonical_cidr("10.0.0.0").is_err());
        assert!(canonical_cidr("::/129").is_err());
        assert!(canonical_cidr("example.com/8").is_err());
    }
}
