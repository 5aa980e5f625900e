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
//! Deployment mounts as `DATABASE_URL`, and the `<cluster>-rw` Service. Typed by
//! [`super::crd_types::Cluster`]; a test validates it against the CNPG CRD schema.
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

use std::collections::BTreeMap;

use super::crd_types::{
    Bootstrap, CLOUDNATIVE_PG, Cluster, ClusterAffinity, ClusterPlugin, ClusterSpec,
    ClusterStorage, ExternalCluster, Object, PluginReference, PostgresConfiguration, Recovery,
    RecoveryTarget, ServiceAccountTemplate, Synchronous, TemplateMetadata,
};
use super::object_store::PLUGIN;
use crate::names;
use crate::site::ValidatedSite;

/// Name of the restore source in `externalClusters`.
pub const RESTORE_SOURCE: &str = "origin";

/// `{barmanObjectName: object, ...more}`: a plugin's parameters.
fn plugin_parameters(object: String, more: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut p = BTreeMap::from([("barmanObjectName".to_string(), object)]);
    p.extend(more.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    p
}

pub fn build(site: &ValidatedSite, plugin: bool) -> Cluster {
    let db = &site.spec.database;
    let bootstrap = match &site.restore {
        Some(restore) if plugin => Bootstrap::Recovery(Recovery {
            source: RESTORE_SOURCE.into(),
            database: names::DATABASE_NAME.into(),
            owner: names::DATABASE_OWNER.into(),
            recovery_target: restore
                .spec
                .target_time
                .clone()
                .map(|target_time| RecoveryTarget { target_time }),
        }),
        _ => Bootstrap::Initdb {
            database: names::DATABASE_NAME.into(),
            owner: names::DATABASE_OWNER.into(),
        },
    };
    let spec = ClusterSpec {
        instances: db.instances,
        storage: ClusterStorage {
            size: db.storage.size.0.clone(),
            storage_class: db.storage.storage_class_name.clone(),
        },
        bootstrap,
        // Replicas in other zones: a zone outage leaves a replica to promote.
        affinity: ClusterAffinity {
            enable_pod_anti_affinity: true,
            topology_key: "topology.kubernetes.io/zone".into(),
            pod_anti_affinity_type: "preferred".into(),
        },
        // CloudNativePG's PodDisruptionBudget keeps the primary from being evicted; with one
        // instance that blocks every node drain (an EKS node-group upgrade fails), and
        // CloudNativePG advises turning it off for single-instance clusters.
        enable_pdb: db.instances > 1,
        postgresql: (db.instances > 1).then(|| PostgresConfiguration {
            synchronous: Synchronous {
                method: "any".into(),
                number: 1,
                data_durability: "preferred".into(),
            },
        }),
        image_name: db.image_name.clone(),
        resources: db
            .resources
            .clone()
            .unwrap_or_else(super::deployment::default_resources),
        // the Barman Cloud sidecar runs in the instance pods: their ServiceAccount carries the
        // IAM role of a backup without a static key
        service_account_template: site
            .spec
            .service_account
            .as_ref()
            .filter(|s| !s.annotations.is_empty())
            .map(|s| ServiceAccountTemplate {
                metadata: TemplateMetadata {
                    annotations: s.annotations.clone(),
                },
            }),
        plugins: (plugin && site.backup.is_some()).then(|| {
            vec![ClusterPlugin {
                name: PLUGIN.into(),
                is_wal_archiver: true,
                parameters: plugin_parameters(names::backup(site.name), &[]),
            }]
        }),
        external_clusters: site.restore.as_ref().filter(|_| plugin).map(|restore| {
            vec![ExternalCluster {
                name: RESTORE_SOURCE.into(),
                plugin: PluginReference {
                    name: PLUGIN.into(),
                    parameters: plugin_parameters(
                        names::restore(site.name),
                        &[("serverName", &restore.server_name)],
                    ),
                },
            }]
        }),
    };
    Object {
        api_version: CLOUDNATIVE_PG,
        kind: "Cluster",
        metadata: site.data_meta(names::database_cluster(site.name), "database"),
        spec,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::ValidatedSite;
    use crate::test_support::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;

    fn built(site: &ValidatedSite, plugin: bool) -> Value {
        json(&build(site, plugin))
    }

    #[test]
    fn cluster_shape() {
        let s = fakeflickr();
        let c = built(&valid(&s), true);
        assert_eq!(c["metadata"]["name"], "fakeflickr-db");
        assert_eq!(c["spec"]["instances"], 3);
        assert_eq!(c["spec"]["storage"]["size"], "20Gi");
        assert_eq!(c["spec"]["bootstrap"]["initdb"]["database"], "photos");
        assert!(c["spec"].get("imageName").is_none());
        assert!(c["metadata"].get("ownerReferences").is_none());
    }

    #[test]
    fn a_commit_waits_for_a_replica_when_there_is_one() {
        let c = built(&valid(&fakeflickr()), true);
        assert_eq!(
            c["spec"]["postgresql"]["synchronous"],
            json!({ "method": "any", "number": 1, "dataDurability": "preferred" })
        );
        let single = with(demo(), |s| s.spec.database.instances = 1);
        let c = built(&valid(&single), true);
        assert!(
            c["spec"].get("postgresql").is_none(),
            "no replica to wait for"
        );
    }

    #[test]
    fn database_resources_default_to_limited_and_follow_the_spec() {
        let c = built(&valid(&demo()), true);
        assert_eq!(c["spec"]["resources"]["limits"]["cpu"], "2");
        assert_eq!(c["spec"]["resources"]["requests"]["memory"], "256Mi");
        let s = with(demo(), |s| {
            s.spec.database.resources = Some(ResourceRequirements {
                limits: Some(BTreeMap::from([(
                    "memory".to_string(),
                    Quantity("8Gi".into()),
                )])),
                ..ResourceRequirements::default()
            })
        });
        let c = built(&valid(&s), true);
        assert_eq!(c["spec"]["resources"], json!({"limits": {"memory": "8Gi"}}));
    }

    #[test]
    fn a_single_instance_does_not_block_node_drains() {
        let single = with(demo(), |s| s.spec.database.instances = 1);
        assert_eq!(built(&valid(&single), true)["spec"]["enablePDB"], false);
        assert_eq!(
            built(&valid(&fakeflickr()), true)["spec"]["enablePDB"],
            true
        );
    }

    #[test]
    fn image_and_storage_class() {
        let s = with(demo(), |s| {
            s.spec.database.image_name = Some("ghcr.io/cloudnative-pg/postgresql:17".into());
            s.spec.database.storage.storage_class_name = Some("fast".into());
        });
        let c = built(&valid(&s), true);
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
        let c = built(&valid(&s), true);
        let p = &c["spec"]["plugins"][0];
        assert_eq!(p["name"], "barman-cloud.cloudnative-pg.io");
        assert_eq!(p["isWALArchiver"], true);
        assert_eq!(p["parameters"]["barmanObjectName"], "demo-backup");
        assert!(c["spec"]["bootstrap"]["initdb"].is_object());
        // without the plugin installed the cluster still runs, unarchived
        assert!(built(&valid(&s), false)["spec"].get("plugins").is_none());
        assert!(
            built(&valid(&demo()), true)["spec"]
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
        let c = built(&valid(&s), true);
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
        let c = built(&valid(&s), true);
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
