//! Where backups go and come from, and the database's side of them (the Barman Cloud plugin
//! for CloudNativePG):
//!
//! - [`Store`]: a checked `spec.backup.objectStore` / `spec.restore.objectStore`, with the
//!   values every builder needs (the site's `s3://bucket/path` URL, the endpoint's port);
//! - [`object_store`]: the plugin's `barmancloud.cnpg.io/v1` `ObjectStore`, one for the
//!   backups (`<site>-backup`, with the retention policy) and one for a restore's source
//!   (`<site>-restore`, read only: no retention, so this site never prunes another site's
//!   backups). The database goes to `<url>/postgres/`, next to the originals' `originals/`
//!   and `manifests/`, under the server name `<site>-db` (the cluster's name);
//! - [`scheduled_backup`]: the CloudNativePG `ScheduledBackup` (`method: plugin`) on the
//!   backup schedule, with an immediate first base backup so point-in-time recovery works
//!   from the start.
//!
//! Both ObjectStores are data children ([`ValidatedSite::data_meta`]): under
//! `dataPolicy: Retain` they outlive the PhotoSite with the database cluster that
//! references them, as a retained cluster whose ObjectStore vanished would keep failing to
//! archive its WAL and fill its disk. They are typed by [`super::crd_types`];
//! `schema_check` validates them against the plugin's and CloudNativePG's CRDs.

use k8s_openapi::api::core::v1::EnvVar;

use super::crd_types::{
    BarmanConfiguration, CLOUDNATIVE_PG, LocalName, Object, ObjectStore, ObjectStoreSpec,
    S3Credentials, ScheduledBackup, ScheduledBackupSpec, SecretKey, SidecarConfiguration,
    WalConfiguration,
};
use crate::names;
use crate::site::{ACCESS_KEY_ID, ACCESS_SECRET_KEY, Store, ValidatedSite};

/// The Barman Cloud plugin's name, in a Cluster's `plugins` and a backup's
/// `pluginConfiguration`.
pub const PLUGIN: &str = "barman-cloud.cloudnative-pg.io";

fn secret_key(name: &str, key: &str) -> SecretKey {
    SecretKey {
        name: name.into(),
        key: key.into(),
    }
}

/// A Barman Cloud `ObjectStore` for `store`, named `name`; with a retention policy for the
/// site's own backups, without one for a restore's source.
pub fn object_store(
    site: &ValidatedSite,
    name: String,
    store: &Store,
    retention: Option<&str>,
) -> ObjectStore {
    let s = store.spec;
    Object {
        api_version: "barmancloud.cnpg.io/v1",
        kind: "ObjectStore",
        metadata: site.data_meta(name, "backup"),
        spec: ObjectStoreSpec {
            configuration: BarmanConfiguration {
                destination_path: store.database_path(),
                s3_credentials: match &s.credentials_secret {
                    Some(secret) => S3Credentials {
                        access_key_id: Some(secret_key(secret, ACCESS_KEY_ID)),
                        secret_access_key: Some(secret_key(secret, ACCESS_SECRET_KEY)),
                        inherit_from_iam_role: false,
                    },
                    None => S3Credentials {
                        access_key_id: None,
                        secret_access_key: None,
                        inherit_from_iam_role: true,
                    },
                },
                wal: WalConfiguration {
                    compression: "gzip".into(),
                },
                endpoint_url: store.endpoint.clone(),
                endpoint_ca: s.ca_secret.as_ref().map(|ca| secret_key(&ca.name, &ca.key)),
            },
            retention_policy: retention.map(String::from),
            // barman-cloud (boto3) reads the region from the environment.
            instance_sidecar_configuration: s.region.as_ref().map(|region| SidecarConfiguration {
                env: vec![EnvVar {
                    name: "AWS_DEFAULT_REGION".into(),
                    value: Some(region.clone()),
                    value_from: None,
                }],
            }),
        },
    }
}

/// The CloudNativePG `ScheduledBackup` of the site's database (base backups through the
/// plugin; WAL is archived continuously by the Cluster's `isWALArchiver` plugin).
pub fn scheduled_backup(site: &ValidatedSite, schedule: &str) -> ScheduledBackup {
    Object {
        api_version: CLOUDNATIVE_PG,
        kind: "ScheduledBackup",
        metadata: site.meta(names::backup(site.name), "backup"),
        spec: ScheduledBackupSpec {
            schedule: schedule.into(),
            cluster: LocalName {
                name: names::database_cluster(site.name),
            },
            method: "plugin".into(),
            plugin_configuration: LocalName {
                name: PLUGIN.into(),
            },
            // a base backup at once: point-in-time recovery needs one to start from
            immediate: true,
            // the Backup objects go with the ScheduledBackup (the data stays in the store)
            backup_owner_reference: "self".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ObjectStoreSpec;
    use crate::site::store;
    use crate::test_support::*;

    fn spec(bucket: &str, path: &str, endpoint: Option<&str>) -> ObjectStoreSpec {
        ObjectStoreSpec {
            bucket: bucket.into(),
            path: path.into(),
            endpoint_url: endpoint.map(String::from),
            region: None,
            credentials_secret: Some("creds".into()),
            ca_secret: None,
        }
    }

    #[test]
    fn object_store_for_backups_and_for_a_restore() {
        let site = with(demo(), |s| s.metadata.name = Some("photos".into()));
        let v = valid(&site);
        let mut s = spec("backups", "prod/photos", Some("https://minio.example.com"));
        s.region = Some("eu-west-1".into());
        s.ca_secret = Some(crate::crd::CaSecretRef {
            name: "minio-ca".into(),
            key: "ca.crt".into(),
        });
        let st = store("f", &s).unwrap();
        let o = json(&object_store(&v, "photos-backup".into(), &st, Some("30d")));
        let c = &o["spec"]["configuration"];
        assert_eq!(c["destinationPath"], "s3://backups/prod/photos/postgres");
        assert_eq!(c["endpointURL"], "https://minio.example.com");
        assert_eq!(c["endpointCA"]["name"], "minio-ca");
        assert_eq!(c["s3Credentials"]["accessKeyId"]["key"], "ACCESS_KEY_ID");
        assert_eq!(
            c["s3Credentials"]["secretAccessKey"]["key"],
            "ACCESS_SECRET_KEY"
        );
        assert_eq!(o["spec"]["retentionPolicy"], "30d");
        assert_eq!(
            o["spec"]["instanceSidecarConfiguration"]["env"][0]["value"],
            "eu-west-1"
        );
        // the plugin refuses a serverName here (it is the Cluster's plugin parameter)
        assert!(c.get("serverName").is_none());
        // a restore's source is never pruned by this site
        let r = json(&object_store(&v, "photos-restore".into(), &st, None));
        assert!(r["spec"].get("retentionPolicy").is_none());
        // data: not owned under Retain
        assert!(o["metadata"].get("ownerReferences").is_none());
    }

    #[test]
    fn scheduled_backup_uses_the_plugin() {
        let site = demo();
        let b = json(&scheduled_backup(&valid(&site), "0 0 3 * * *"));
        assert_eq!(b["spec"]["schedule"], "0 0 3 * * *");
        assert_eq!(b["spec"]["cluster"]["name"], "demo-db");
        assert_eq!(b["spec"]["method"], "plugin");
        assert_eq!(
            b["spec"]["pluginConfiguration"]["name"],
            "barman-cloud.cloudnative-pg.io"
        );
        assert_eq!(b["spec"]["immediate"], true);
        assert_eq!(b["metadata"]["ownerReferences"][0]["kind"], "PhotoSite");
    }
}
