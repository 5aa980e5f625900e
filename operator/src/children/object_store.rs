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
//! archive its WAL and fill its disk. No Rust types exist for these CRDs, so the objects are
//! JSON; `schema_check` validates them against the plugin's and CloudNativePG's CRDs.

use serde_json::{Value, json};

use crate::names;
use crate::site::{ACCESS_KEY_ID, ACCESS_SECRET_KEY, Store, ValidatedSite};

/// The Barman Cloud plugin's name, in a Cluster's `plugins` and a backup's
/// `pluginConfiguration`.
pub const PLUGIN: &str = "barman-cloud.cloudnative-pg.io";

fn secret_key(name: &str, key: &str) -> Value {
    json!({ "name": name, "key": key })
}

/// A Barman Cloud `ObjectStore` for `store`, named `name`; with a retention policy for the
/// site's own backups, without one for a restore's source.
pub fn object_store(
    site: &ValidatedSite,
    name: String,
    store: &Store,
    retention: Option<&str>,
) -> Value {
    let s = store.spec;
    let mut configuration = json!({
        "destinationPath": store.database_path(),
        "s3Credentials": {
            "accessKeyId": secret_key(&s.credentials_secret, ACCESS_KEY_ID),
            "secretAccessKey": secret_key(&s.credentials_secret, ACCESS_SECRET_KEY),
        },
        "wal": { "compression": "gzip" },
    });
    if let Some(e) = &store.endpoint {
        configuration["endpointURL"] = json!(e);
    }
    if let Some(ca) = &s.ca_secret {
        configuration["endpointCA"] = secret_key(&ca.name, &ca.key);
    }
    let mut spec = json!({ "configuration": configuration });
    if let Some(r) = retention {
        spec["retentionPolicy"] = json!(r);
    }
    if let Some(region) = &s.region {
        // barman-cloud (boto3) reads the region from the environment.
        spec["instanceSidecarConfiguration"] =
            json!({ "env": [{ "name": "AWS_DEFAULT_REGION", "value": region }] });
    }
    json!({
        "apiVersion": "barmancloud.cnpg.io/v1",
        "kind": "ObjectStore",
        "metadata": site.data_meta(name, "backup"),
        "spec": spec,
    })
}

/// The CloudNativePG `ScheduledBackup` of the site's database (base backups through the
/// plugin; WAL is archived continuously by the Cluster's `isWALArchiver` plugin).
pub fn scheduled_backup(site: &ValidatedSite, schedule: &str) -> Value {
    json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "ScheduledBackup",
        "metadata": site.meta(names::backup(site.name), "backup"),
        "spec": {
            "schedule": schedule,
            "cluster": { "name": names::database_cluster(site.name) },
            "method": "plugin",
            "pluginConfiguration": { "name": PLUGIN },
            // a base backup at once: point-in-time recovery needs one to start from
            "immediate": true,
            // the Backup objects go with the ScheduledBackup (the data stays in the store)
            "backupOwnerReference": "self",
        },
    })
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
            credentials_secret: "creds".into(),
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
        let o = object_store(&v, "photos-backup".into(), &st, Some("30d"));
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
        let r = object_store(&v, "photos-restore".into(), &st, None);
        assert!(r["spec"].get("retentionPolicy").is_none());
        // data: not owned under Retain
        assert!(o["metadata"].get("ownerReferences").is_none());
    }

    #[test]
    fn scheduled_backup_uses_the_plugin() {
        let site = demo();
        let b = scheduled_backup(&valid(&site), "0 0 3 * * *");
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
