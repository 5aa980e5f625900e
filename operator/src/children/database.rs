//! The CloudNativePG `postgresql.cnpg.io/v1` `Cluster`: one primary plus `instances - 1`
//! streaming replicas, spread across zones, bootstrapped with the site's database and owner.
//!
//! With a replica, replication is synchronous (any 1 replica, durability `preferred`): a
//! commit, and so an upload's `201`, waits until a replica has it, so a failover after the
//! primary dies loses no acknowledged upload. Asynchronous replication lost one in the drill
//! (`drill/`, db-failover). With no healthy replica, CloudNativePG lets the primary go on
//! alone rather than block every write.
//!
//! CloudNativePG creates the application Secret `<cluster>-app` (key `uri`) that the
//! Deployment mounts as `DATABASE_URL`, and the `<cluster>-rw` Service. We have no Rust types
//! for the CNPG API, so the object is JSON; a test validates it against the CNPG CRD schema.
//! Not built with `database.external`. Owned by the PhotoSite only under `dataPolicy: Delete`.
//!
//! Backups and restore go through the Barman Cloud plugin (`plugin` is whether it is
//! installed):
//! - with `spec.backup`, the plugin is the cluster's WAL archiver (`isWALArchiver`) on the
//!   ObjectStore `<site>-backup`: WAL is archived continuously, so the database can be
//!   recovered to any point in time within the retention;
//! - with `spec.restore`, the cluster is bootstrapped by `recovery` from the external cluster
//!   `origin`: the ObjectStore `<site>-restore` and the source's server name
//!   `<siteName>-db`, optionally up to `targetTime`. Recovery creates the same database
//!   and owner as `initdb` would, and a new `<cluster>-app` Secret. The controller never
//!   builds such a cluster without the plugin: it would start empty.

use serde_json::{Value, json};

use super::object_store::PLUGIN;
use crate::names;
use crate::site::ValidatedSite;

/// Name of the restore source in `externalClusters`.
pub const RESTORE_SOURCE: &str = "origin";

pub fn build(site: &ValidatedSite, plugin: bool) -> Value {
    let db = &site.spec.database;
    let mut storage = json!({ "size": db.storage.size.0 });
    if let Some(sc) = &db.storage.storage_class_name {
        storage["storageClass"] = json!(sc);
    }
    let bootstrap = match &site.restore {
        Some(restore) if plugin => {
            let mut recovery = json!({
                "source": RESTORE_SOURCE,
                "database": names::DATABASE_NAME,
                "owner": names::DATABASE_OWNER,
            });
            if let Some(t) = &restore.spec.target_time {
                recovery["recoveryTarget"] = json!({ "targetTime": t });
            }
            json!({ "recovery": recovery })
        }
        _ => json!({
            "initdb": {
                "database": names::DATABASE_NAME,
                "owner": names::DATABASE_OWNER,
            }
        }),
    };
    let mut spec = json!({
        "instances": db.instances,
        "storage": storage,
        "bootstrap": bootstrap,
        // Replicas in other zones: a zone outage leaves a replica to promote.
        "affinity": {
            "enablePodAntiAffinity": true,
            "topologyKey": "topology.kubernetes.io/zone",
            "podAntiAffinityType": "preferred",
        },
        "enablePDB": true,
    });
    if db.instances > 1 {
        spec["postgresql"] = json!({
            "synchronous": { "method": "any", "number": 1, "dataDurability": "preferred" },
        });
    }
    if let Some(image) = &db.image_name {
        spec["imageName"] = json!(image);
    }
    if plugin && site.backup.is_some() {
        spec["plugins"] = json!([{
            "name": PLUGIN,
            "isWALArchiver": true,
            "parameters": { "barmanObjectName": names::backup(site.name) },
        }]);
    }
    if let (Some(restore), true) = (&site.restore, plugin) {
        spec["externalClusters"] = json!([{
            "name": RESTORE_SOURCE,
            "plugin": {
                "name": PLUGIN,
                "parameters": {
                    "barmanObjectName": names::restore(site.name),
                    "serverName": restore.server_name,
                },
            },
        }]);
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
    use crate::test_support::*;

    #[test]
    fn cluster_shape() {
        let s = fakeflickr();
        let c = build(&valid(&s), true);
        assert_eq!(c["metadata"]["name"], "fakeflickr-db");
        assert_eq!(c["spec"]["instances"], 3);
        assert_eq!(c["spec"]["storage"]["size"], "20Gi");
        assert_eq!(c["spec"]["bootstrap"]["initdb"]["database"], "photos");
        assert!(c["spec"].get("imageName").is_none());
        assert!(c["metadata"].get("ownerReferences").is_none());
    }

    #[test]
    fn a_commit_waits_for_a_replica_when_there_is_one() {
        let c = build(&valid(&fakeflickr()), true);
        assert_eq!(
            c["spec"]["postgresql"]["synchronous"],
            json!({ "method": "any", "number": 1, "dataDurability": "preferred" })
        );
        let single = with(demo(), |s| s.spec.database.instances = 1);
        let c = build(&valid(&single), true);
        assert!(
            c["spec"].get("postgresql").is_none(),
            "no replica to wait for"
        );
    }

    #[test]
    fn image_and_storage_class() {
        let s = with(demo(), |s| {
            s.spec.database.image_name = Some("ghcr.io/cloudnative-pg/postgresql:17".into());
            s.spec.database.storage.storage_class_name = Some("fast".into());
        });
        let c = build(&valid(&s), true);
        assert_eq!(
            c["spec"]["imageName"],
            "ghcr.io/cloudnative-pg/postgresql:17"
        );
        assert_eq!(c["spec"]["storage"]["storageClass"], "fast");
        assert_eq!(c["spec"]["instances"], 2);
    }

    #[test]
    fn backups_make_the_plugin_the_wal_archiver() {
        let s = with(demo(), |s| s.spec.backup = Some(backup_spec()));
        let c = build(&valid(&s), true);
        let p = &c["spec"]["plugins"][0];
        assert_eq!(p["name"], "barman-cloud.cloudnative-pg.io");
        assert_eq!(p["isWALArchiver"], true);
        assert_eq!(p["parameters"]["barmanObjectName"], "demo-backup");
        assert!(c["spec"]["bootstrap"]["initdb"].is_object());
        // without the plugin installed the cluster still runs, unarchived
        assert!(build(&valid(&s), false)["spec"].get("plugins").is_none());
        assert!(
            build(&valid(&demo()), true)["spec"]
                .get("plugins")
                .is_none()
        );
    }

    #[test]
    fn restore_bootstraps_by_recovery_from_the_source_server() {
        let s = with(demo(), |s| {
            let mut r = restore_spec();
            r.site_name = Some("photos".into());
            r.target_time = Some("2026-03-01T12:00:00Z".into());
            s.spec.restore = Some(r);
        });
        let c = build(&valid(&s), true);
        let recovery = &c["spec"]["bootstrap"]["recovery"];
        assert_eq!(recovery["source"], "origin");
        assert_eq!(recovery["database"], "photos");
        assert_eq!(recovery["owner"], "photos");
        assert_eq!(
            recovery["recoveryTarget"]["targetTime"],
            "2026-03-01T12:00:00Z"
        );
        assert!(c["spec"]["bootstrap"].get("initdb").is_none());
        let origin = &c["spec"]["externalClusters"][0];
        assert_eq!(origin["name"], "origin");
        assert_eq!(
            origin["plugin"]["parameters"]["barmanObjectName"],
            "demo-restore"
        );
        assert_eq!(origin["plugin"]["parameters"]["serverName"], "photos-db");
        // restore without backup: nothing archives (the site's own backups are spec.backup)
        assert!(c["spec"].get("plugins").is_none());
        // the source defaults to a site of the same name
        let s = with(demo(), |s| s.spec.restore = Some(restore_spec()));
        let c = build(&valid(&s), true);
        assert_eq!(
            c["spec"]["externalClusters"][0]["plugin"]["parameters"]["serverName"],
            "demo-db"
        );
        assert!(
            c["spec"]["bootstrap"]["recovery"]
                .get("recoveryTarget")
                .is_none()
        );
    }
}
