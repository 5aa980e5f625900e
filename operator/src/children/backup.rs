//! The originals' backup and restore runs: photo-server's own `backup` and `restore`
//! commands, in pods built from the same pieces as the server's (image, ConfigMap
//! environment, originals claim, scratch `data` and `/tmp`, restricted security context,
//! node selector and tolerations), so they see the volume exactly as the server does.
//!
//! - [`cron_job`]: `<site>-backup` runs `photo-server backup` on `spec.backup.schedule`
//!   (UTC). `concurrencyPolicy: Forbid` (an incremental copy must not race itself; a run
//!   still going when the next is due makes that one skip), a deadline of
//!   [`BACKUP_DEADLINE_SECONDS`] (a first backup of a large library may need several runs:
//!   each one resumes), two retries, three Jobs of each outcome kept for their logs. It has
//!   the server's database settings, as photo-server backs up the embedded database only
//!   when it has none; with a CloudNativePG database the database's own backups are the
//!   plugin's ([`super::object_store`]).
//! - [`restore_job`]: `<site>-restore` runs `photo-server restore` once, before the server
//!   pods first start (the Deployment is not built until the controller has seen it
//!   succeed). It needs no database. A finished Job is kept a week for its log.
//!
//! Both get the object store from the environment only: `PHOTO_BACKUP_URL`, the access key
//! as `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` from the credentials Secret,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP` for a plain-http endpoint, and
//! `SSL_CERT_FILE` pointing at a private CA's certificate. Their pods carry the site's label
//! but not the server pods' selector labels: no Service, PodDisruptionBudget, autoscaler or
//! server NetworkPolicy counts them; their own NetworkPolicy is
//! [`super::network_policy::jobs`].

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, KeyToPath, PodSpec, PodTemplateSpec, SecretVolumeSource, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::deployment::{
    self, CONTAINER, DATA_LIMIT, TMP_LIMIT, config_env, container_security, empty_dir, mount,
    originals_volume, plain_env, read_only_mount, secret_env,
};
use crate::site::ValidatedSite;
use crate::site::{ACCESS_KEY_ID, ACCESS_SECRET_KEY, Store};
use crate::{labels, names};

/// Component label of the backup pods (and of the backup children).
pub const BACKUP_COMPONENT: &str = "backup";
/// Component label of the restore pods.
pub const RESTORE_COMPONENT: &str = "restore";
/// Longest run of one originals backup; the next run resumes where it stopped.
pub const BACKUP_DEADLINE_SECONDS: i64 = 6 * 3600;
/// How long a finished restore Job (and its pod's log) is kept.
pub const RESTORE_TTL_SECONDS: i32 = 7 * 24 * 3600;
/// Where a private CA of the object store is mounted.
pub const STORE_CA_DIR: &str = "/etc/photo/backup-ca";

/// Labels of a backup or restore pod (and of the Jobs): the site's, without the server
/// pods' selector.
fn pod_labels(site: &ValidatedSite, component: &str) -> BTreeMap<String, String> {
    labels::data(site.name, component)
}

/// The object store's environment and, with a private CA, its volume.
fn store_env(store: &Store) -> (Vec<EnvVar>, Option<Volume>) {
    let s = store.spec;
    let mut env = vec![plain_env("PHOTO_BACKUP_URL", &store.url)];
    // without a key the SDK finds the pod's IAM role (IRSA or EKS Pod Identity environment)
    if let Some(secret) = &s.credentials_secret {
        env.push(secret_env(
            "AWS_ACCESS_KEY_ID",
            secret.clone(),
            ACCESS_KEY_ID,
        ));
        env.push(secret_env(
            "AWS_SECRET_ACCESS_KEY",
            secret.clone(),
            ACCESS_SECRET_KEY,
        ));
    }
    if let Some(region) = &s.region {
        env.push(plain_env("AWS_REGION", region));
    }
    if let Some(endpoint) = &store.endpoint {
        env.push(plain_env("AWS_ENDPOINT_URL", endpoint));
    }
    if store.http {
        env.push(plain_env("AWS_ALLOW_HTTP", "true"));
    }
    let volume = s.ca_secret.as_ref().map(|ca| {
        env.push(plain_env(
            "SSL_CERT_FILE",
            &format!("{STORE_CA_DIR}/ca.crt"),
        ));
        Volume {
            name: "backup-ca".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(ca.name.clone()),
                items: Some(vec![KeyToPath {
                    key: ca.key.clone(),
                    path: "ca.crt".into(),
                    ..KeyToPath::default()
                }]),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        }
    });
    (env, volume)
}

/// Resources of a run: the server's (`spec.resources` or the defaults), with
/// `ephemeral-storage` for its scratch emptyDirs.
fn resources(site: &ValidatedSite) -> k8s_openapi::api::core::v1::ResourceRequirements {
    let r = site
        .spec
        .resources
        .clone()
        .unwrap_or_else(deployment::default_resources);
    deployment::with_ephemeral_storage(r, deployment::scratch_bytes())
}

/// The pod of a `photo-server <command>` run against `store`; `with_database` gives it the
/// server's database settings.
fn pod(
    site: &ValidatedSite,
    component: &str,
    command: &str,
    store: &Store,
    with_database: bool,
) -> PodTemplateSpec {
    let spec = site.spec;
    let (mut env, store_ca) = store_env(store);
    let mut mounts = vec![
        mount("data", super::config_map::DATA_DIR),
        mount("originals", super::config_map::ORIGINALS_DIR),
        mount("tmp", "/tmp"),
    ];
    let mut volumes = vec![
        empty_dir("data", DATA_LIMIT),
        originals_volume(site),
        empty_dir("tmp", TMP_LIMIT),
    ];
    if let Some(ca) = store_ca {
        mounts.push(read_only_mount(&ca.name, STORE_CA_DIR));
        volumes.push(ca);
    }
    if with_database {
        let (db_env, db_ca) = deployment::database(site);
        env.extend(db_env);
        if let Some(ca) = db_ca {
            mounts.push(read_only_mount(&ca.name, deployment::DATABASE_CA_DIR));
            volumes.push(ca);
        }
    }
    let container = Container {
        name: CONTAINER.into(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        args: Some(vec![command.to_string()]),
        env_from: Some(config_env(site)),
        env: Some(env),
        resources: Some(resources(site)),
        security_context: Some(container_security()),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels(site, component)),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            // a backup reads the claim where the servers have it attached
            affinity: (component == BACKUP_COMPONENT)
                .then(|| deployment::on_the_claims_node(site))
                .flatten(),
            ..deployment::site_pod_spec(site, container, volumes)
        }),
    }
}

/// The CronJob backing up the originals (`photo-server backup`).
pub fn cron_job(site: &ValidatedSite, schedule: &str, store: &Store) -> CronJob {
    CronJob {
        metadata: site.meta(names::backup(site.name), BACKUP_COMPONENT),
        spec: Some(CronJobSpec {
            schedule: schedule.to_string(),
            time_zone: Some("Etc/UTC".into()),
            concurrency_policy: Some("Forbid".into()),
            // a run missed by more than an hour (controller down) waits for the next one
            starting_deadline_seconds: Some(3600),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            suspend: None,
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    // not the operator's own label: the Jobs are the CronJob's
                    labels: Some(BTreeMap::from([
                        (labels::SITE.to_string(), site.name.to_string()),
                        (labels::COMPONENT.to_string(), BACKUP_COMPONENT.to_string()),
                    ])),
                    ..ObjectMeta::default()
                }),
                spec: Some(JobSpec {
                    backoff_limit: Some(2),
                    active_deadline_seconds: Some(BACKUP_DEADLINE_SECONDS),
                    template: pod(site, BACKUP_COMPONENT, "backup", store, true),
                    ..JobSpec::default()
                }),
            },
        }),
        ..CronJob::default()
    }
}

/// The Job restoring the originals (`photo-server restore`) before the servers first start.
pub fn restore_job(site: &ValidatedSite, store: &Store) -> Job {
    Job {
        metadata: site.meta(names::restore(site.name), RESTORE_COMPONENT),
        spec: Some(JobSpec {
            backoff_limit: Some(6),
            ttl_seconds_after_finished: Some(RESTORE_TTL_SECONDS),
            template: pod(site, RESTORE_COMPONENT, "restore", store, false),
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

#[cfg(test)]
mod tests {
    use super::deployment::pod_security;
    use super::*;
    use crate::crd::{AccessMode, CaSecretRef, ObjectStoreSpec};
    use crate::site::store;
    use crate::test_support::*;

    fn spec(endpoint: Option<&str>) -> ObjectStoreSpec {
        ObjectStoreSpec {
            bucket: "backups".into(),
            path: "prod/demo".into(),
            endpoint_url: endpoint.map(String::from),
            region: Some("eu-west-1".into()),
            credentials_secret: Some("demo-backup-s3".into()),
            ca_secret: None,
        }
    }

    fn env(pod: &PodSpec, name: &str) -> Option<EnvVar> {
        pod.containers[0]
            .env
            .as_ref()
            .and_then(|e| e.iter().find(|v| v.name == name).cloned())
    }

    #[test]
    fn cron_job_runs_photo_server_backup_like_the_server() {
        let site = demo();
        let v = valid(&site);
        let s = spec(None);
        let st = store("backup.objectStore", &s).unwrap();
        let cj = cron_job(&v, "0 3 * * *", &st);
        let spec = cj.spec.unwrap();
        assert_eq!(spec.schedule, "0 3 * * *");
        assert_eq!(spec.time_zone.as_deref(), Some("Etc/UTC"));
        assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
        assert_eq!(spec.successful_jobs_history_limit, Some(3));
        assert_eq!(spec.failed_jobs_history_limit, Some(3));
        let job = spec.job_template.spec.unwrap();
        assert_eq!(job.active_deadline_seconds, Some(BACKUP_DEADLINE_SECONDS));
        let template = job.template;
        let pod = template.spec.unwrap();
        let c = &pod.containers[0];
        assert_eq!(c.args, Some(vec!["backup".to_string()]));
        assert_eq!(
            c.image.as_deref(),
            Some("ghcr.io/photostack/photo-server:0.1.0")
        );
        // the same restricted security as the server
        assert_eq!(c.security_context, Some(container_security()));
        assert_eq!(pod.security_context, Some(pod_security()));
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        // the server's ConfigMap, the originals claim, the database settings
        assert_eq!(c.env_from, Some(config_env(&v)));
        let vols = pod.volumes.clone().unwrap();
        let claim = vols.iter().find(|v| v.name == "originals").unwrap();
        assert_eq!(
            claim.persistent_volume_claim.clone().unwrap().claim_name,
            "demo-originals"
        );
        assert!(vols.iter().any(|v| v.name == "database-ca"));
        let db = env(&pod, "DATABASE_URL").unwrap().value_from.unwrap();
        assert_eq!(db.secret_key_ref.unwrap().name, "demo-db-app");
        // the store from the environment, credentials from the Secret only
        assert_eq!(
            env(&pod, "PHOTO_BACKUP_URL").unwrap().value.as_deref(),
            Some("s3://backups/prod/demo")
        );
        for (var, key) in [
            ("AWS_ACCESS_KEY_ID", "ACCESS_KEY_ID"),
            ("AWS_SECRET_ACCESS_KEY", "ACCESS_SECRET_KEY"),
        ] {
            let e = env(&pod, var).unwrap();
            assert!(e.value.is_none());
            let r = e.value_from.unwrap().secret_key_ref.unwrap();
            assert_eq!((r.name.as_str(), r.key.as_str()), ("demo-backup-s3", key));
        }
        assert_eq!(
            env(&pod, "AWS_REGION").unwrap().value.as_deref(),
            Some("eu-west-1")
        );
        assert!(env(&pod, "AWS_ENDPOINT_URL").is_none());
        assert!(env(&pod, "AWS_ALLOW_HTTP").is_none());
        // not a server pod: no selector labels
        let pod_labels = template.metadata.unwrap().labels.unwrap();
        assert_eq!(pod_labels[labels::SITE], "demo");
        assert_eq!(pod_labels[labels::COMPONENT], "backup");
        for key in labels::selector("demo").keys() {
            assert!(!pod_labels.contains_key(key), "{key}");
        }
        // no writable root, and the scratch space is requested
        let req = c.resources.clone().unwrap().requests.unwrap();
        assert_eq!(req["ephemeral-storage"].0, "320Mi");
        let lim = c.resources.clone().unwrap().limits.unwrap();
        assert_eq!(
            (lim["cpu"].0.as_str(), lim["ephemeral-storage"].0.as_str()),
            ("2", "576Mi")
        );
    }

    #[test]
    fn custom_endpoint_plain_http_and_private_ca() {
        let site = demo();
        let v = valid(&site);
        let mut s = spec(Some("http://minio.minio.svc:9000"));
        s.ca_secret = Some(CaSecretRef {
            name: "minio-ca".into(),
            key: "ca.pem".into(),
        });
        let st = store("backup.objectStore", &s).unwrap();
        let pod = cron_job(&v, "@daily", &st)
            .spec
            .unwrap()
            .job_template
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        assert_eq!(
            env(&pod, "AWS_ENDPOINT_URL").unwrap().value.as_deref(),
            Some("http://minio.minio.svc:9000")
        );
        assert_eq!(
            env(&pod, "AWS_ALLOW_HTTP").unwrap().value.as_deref(),
            Some("true")
        );
        assert_eq!(
            env(&pod, "SSL_CERT_FILE").unwrap().value.as_deref(),
            Some("/etc/photo/backup-ca/ca.crt")
        );
        let ca = pod
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == "backup-ca")
            .unwrap()
            .secret
            .unwrap();
        assert_eq!(ca.secret_name.as_deref(), Some("minio-ca"));
        assert_eq!(ca.items.unwrap()[0].key, "ca.pem");
    }

    #[test]
    fn restore_job_needs_no_database() {
        let site = demo();
        let v = valid(&site);
        let s = spec(None);
        let st = store("restore.objectStore", &s).unwrap();
        let job = restore_job(&v, &st);
        assert_eq!(job.metadata.name.as_deref(), Some("demo-restore"));
        let spec = job.spec.unwrap();
        assert_eq!(spec.ttl_seconds_after_finished, Some(RESTORE_TTL_SECONDS));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.containers[0].args, Some(vec!["restore".to_string()]));
        assert!(env(&pod, "DATABASE_URL").is_none());
        assert!(pod.volumes.unwrap().iter().all(|v| v.name != "database-ca"));
        assert_eq!(pod.security_context, Some(pod_security()));
        assert!(pod.affinity.is_none());
    }

    #[test]
    fn read_write_once_backups_run_on_the_servers_node() {
        let s = spec(None);
        let st = store("f", &s).unwrap();
        let rwo = with(demo(), |s| {
            s.spec.storage.originals.access_mode = AccessMode::ReadWriteOnce
        });
        let pod_of = |site: &crate::crd::PhotoSite| {
            cron_job(&valid(site), "@daily", &st)
                .spec
                .unwrap()
                .job_template
                .spec
                .unwrap()
                .template
                .spec
                .unwrap()
        };
        let term = pod_of(&rwo)
            .affinity
            .unwrap()
            .pod_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap()
            .remove(0);
        assert_eq!(term.topology_key, "kubernetes.io/hostname");
        assert_eq!(
            term.label_selector.unwrap().match_labels,
            Some(labels::selector("demo"))
        );
        assert!(pod_of(&demo()).affinity.is_none());
    }
}
