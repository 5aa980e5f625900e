//! The CloudNativePG `postgresql.cnpg.io/v1` `Cluster`: one primary plus `instances - 1`
//! streaming replicas, spread across zones, bootstrapped with the site's database and owner.
//!
//! CloudNativePG creates the application Secret `<cluster>-app` (key `uri`) that the
//! Deployment mounts as `DATABASE_URL`, and the `<cluster>-rw` Service. We have no Rust types
//! for the CNPG API, so the object is JSON; a test validates it against the CNPG CRD schema.
//! Not built with `database.external`. Owned by the PhotoSite only under `dataPolicy: Delete`.

use serde_json::{Value, json};

use super::ValidatedSite;
use crate::names;

pub fn build(site: &ValidatedSite) -> Value {
    let db = &site.spec.database;
    let mut storage = json!({ "size": db.storage.size.0 });
    if let Some(sc) = &db.storage.storage_class_name {
        storage["storageClass"] = json!(sc);
    }
    let mut spec = json!({
        "instances": db.instances,
        "storage": storage,
        "bootstrap": {
            "initdb": {
                "database": names::DATABASE_NAME,
                "owner": names::DATABASE_OWNER,
            }
        },
        // Replicas in other zones: a zone outage leaves a replica to promote.
        "affinity": {
            "enablePodAntiAffinity": true,
            "topologyKey": "topology.kubernetes.io/zone",
            "podAntiAffinityType": "preferred",
        },
        "enablePDB": true,
    });
    if let Some(image) = &db.image_name {
        spec["imageName"] = json!(image);
    }
    json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": site.data_meta(names::database_cluster(site.name), "database"),
        "spec": spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::*;

    #[test]
    fn cluster_shape() {
        let s = fakeflickr();
        let c = build(&valid(&s));
        assert_eq!(c["metadata"]["name"], "fakeflickr-db");
        assert_eq!(c["spec"]["instances"], 3);
        assert_eq!(c["spec"]["storage"]["size"], "20Gi");
        assert_eq!(c["spec"]["bootstrap"]["initdb"]["database"], "photos");
        assert!(c["spec"].get("imageName").is_none());
        assert!(c["metadata"].get("ownerReferences").is_none());
    }

    #[test]
    fn image_and_storage_class() {
        let s = with(demo(), |s| {
            s.spec.database.image_name = Some("ghcr.io/cloudnative-pg/postgresql:17".into());
            s.spec.database.storage.storage_class_name = Some("fast".into());
        });
        let c = build(&valid(&s));
        assert_eq!(
            c["spec"]["imageName"],
            "ghcr.io/cloudnative-pg/postgresql:17"
        );
        assert_eq!(c["spec"]["storage"]["storageClass"], "fast");
        assert_eq!(c["spec"]["instances"], 2);
    }
}
