//! The ReadWriteMany claim for originals, mounted read-write by every photo-server pod.
//!
//! Not created when `storage.originals.existingClaim` is set. Owned by the PhotoSite only
//! under `dataPolicy: Delete` (see [`ValidatedSite::data_meta`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};

use crate::names;
use crate::site::ValidatedSite;

pub fn build(site: &ValidatedSite) -> PersistentVolumeClaim {
    let o = &site.spec.storage.originals;
    PersistentVolumeClaim {
        metadata: site.data_meta(names::originals_claim(site.name), "originals"),
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
        let p = build(&valid(&s));
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
        let p = build(&valid(&s));
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
