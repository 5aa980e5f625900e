//! The ReadWriteMany claim for originals, mounted read-write by every photo-server pod.
//!
//! Not created when `storage.originals.existingClaim` is set. Owned by the PhotoSite only
//! under `dataPolicy: Delete` (see [`ValidatedSite::data_meta`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::names;
use crate::site::ValidatedSite;

/// On the originals claim of a site restored from a backup: when the restore succeeded. It
/// lives with the data, so a site whose status is lost (a GitOps or Velero migration,
/// after the restore Job's TTL) is not restored a second time over a claim that already
/// holds its originals.
pub const RESTORED_ANNOTATION: &str = "photostack.io/originals-restored-time";

/// The claim; `restored` marks it with [`RESTORED_ANNOTATION`].
pub fn build(site: &ValidatedSite, restored: Option<&Time>) -> PersistentVolumeClaim {
    let o = &site.spec.storage.originals;
    let mut metadata = site.data_meta(names::originals_claim(site.name), "originals");
    if let Some(t) = restored {
        metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(RESTORED_ANNOTATION.to_string(), t.0.to_string());
    }
    PersistentVolumeClaim {
        metadata,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec![o.access_mode.as_str().to_string()]),
            storage_class_name: o.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), o.size.clone())])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// Name of the claim the pods mount.
pub fn claim_name(site: &ValidatedSite) -> String {
    site.spec
        .storage
        .originals
        .existing_claim
        .clone()
        .unwrap_or_else(|| names::originals_claim(site.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::AccessMode;
    use crate::test_support::*;

    #[test]
    fn rwx_by_default_and_settable() {
        let s = fakeflickr();
        let p = build(&valid(&s), None);
        let spec = p.spec.unwrap();
        assert_eq!(spec.access_modes.unwrap(), vec!["ReadWriteMany"]);
        assert_eq!(spec.storage_class_name.as_deref(), Some("efs-sc"));
        assert_eq!(
            spec.resources.unwrap().requests.unwrap()["storage"].0,
            "100Gi"
        );

        let s = with(demo(), |s| {
            s.spec.storage.originals.access_mode = AccessMode::ReadWriteOnce
        });
        let p = build(&valid(&s), None);
        assert_eq!(p.spec.unwrap().access_modes.unwrap(), vec!["ReadWriteOnce"]);
    }

    #[test]
    fn existing_claim_name() {
        let s = with(demo(), |s| {
            s.spec.storage.originals.existing_claim = Some("mine".into())
        });
        assert_eq!(claim_name(&valid(&s)), "mine");
        assert_eq!(claim_name(&valid(&demo())), "demo-originals");
    }
}
