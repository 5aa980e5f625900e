//! The photo-server Deployment.
//!
//! - replicas copied from `spec.replicas` (the single owner of the count; see `crd.rs`);
//! - rolling updates with `maxUnavailable: 0`, so capacity never dips during a rollout;
//! - the ConfigMap hash in the pod template, so a configuration change rolls the pods;
//! - restricted Pod Security: non-root, read-only root filesystem (hence the `/tmp` and data
//!   emptyDirs), no privilege escalation, all capabilities dropped, RuntimeDefault seccomp;
//! - the originals claim mounted read-write on every pod, an emptyDir cache with a sizeLimit;
//! - `DATABASE_URL` straight from CloudNativePG's `<cluster>-app` Secret (key `uri`) or the
//!   external database Secret, never copied;
//! - topology spread across zones and hosts, so losing a zone leaves pods elsewhere. Both are
//!   `ScheduleAnyway`: clusters without zone labels (kind) still schedule.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapEnvSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, EnvVarSource, HTTPGetAction, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecurityContext, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config_map::{CACHE_DIR, DATA_DIR, ORIGINALS_DIR, PORT};
use super::{Site, pvc, secret};
use crate::{Error, labels, names};

pub const CONTAINER: &str = "photo-server";
pub const CONFIG_HASH_ANNOTATION: &str = "photostack.io/config-hash";
/// UID/GID of the non-root user (distroless `nonroot`).
pub const USER_ID: i64 = 65532;

fn secret_env(name: &str, secret: String, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret,
                key: key.into(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn empty_dir(name: &str, limit: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(Quantity(limit.into())),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..VolumeMount::default()
    }
}

fn spread(key: &str, site: &str) -> TopologySpreadConstraint {
    TopologySpreadConstraint {
        max_skew: 1,
        topology_key: key.into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(LabelSelector {
            match_labels: Some(labels::selector(site)),
            ..LabelSelector::default()
        }),
        match_label_keys: Some(vec!["pod-template-hash".into()]),
        ..TopologySpreadConstraint::default()
    }
}

/// Default resources when the spec gives none.
pub fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("100m".into())),
            ("memory".to_string(), Quantity("256Mi".into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_string(),
            Quantity("1Gi".into()),
        )])),
        ..ResourceRequirements::default()
    }
}

pub fn build(site: &Site, config_hash: &str) -> Result<Deployment, Error> {
    let spec = site.spec;
    let (db_secret, db_key) = match &spec.database.external {
        Some(ext) => (ext.secret_name.clone(), ext.key.clone()),
        None => (names::database_app_secret(site.name), "uri".to_string()),
    };
    let creds = names::credentials_secret(site.name);
    let container = Container {
        name: CONTAINER.into(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: names::config_map(site.name),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        }]),
        env: Some(vec![
            secret_env("DATABASE_URL", db_secret, &db_key),
            secret_env("PHOTO_SESSION_KEY", creds.clone(), secret::SESSION_KEY),
            secret_env("PHOTO_ADMIN_PASSWORD", creds, secret::ADMIN_PASSWORD),
        ]),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        liveness_probe: Some(http_probe("/healthz", 10, 6)),
        startup_probe: Some(http_probe("/healthz", 2, 60)),
        resources: Some(spec.resources.clone().unwrap_or_else(default_resources)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            mount("data", DATA_DIR),
            mount("originals", ORIGINALS_DIR),
            mount("cache", CACHE_DIR),
            mount("tmp", "/tmp"),
        ]),
        ..Container::default()
    };
    let volumes = vec![
        empty_dir("data", "256Mi"),
        Volume {
            name: "originals".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: pvc::claim_name(site),
                read_only: Some(false),
            }),
            ..Volume::default()
        },
        empty_dir("cache", &spec.storage.cache.size_limit.0),
        empty_dir("tmp", "64Mi"),
    ];
    let pod_labels = labels::common(site.name, "server");
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: Some(BTreeMap::from([
                (CONFIG_HASH_ANNOTATION.to_string(), config_hash.to_string()),
                (
                    "kubectl.kubernetes.io/default-container".to_string(),
                    CONTAINER.to_string(),
                ),
            ])),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(names::app(site.name)),
            automount_service_account_token: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(USER_ID),
                run_as_group: Some(USER_ID),
                fs_group: Some(USER_ID),
                fs_group_change_policy: Some("OnRootMismatch".into()),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            containers: vec![container],
            volumes: Some(volumes),
            node_selector: spec.node_selector.clone(),
            tolerations: spec.tolerations.clone(),
            topology_spread_constraints: Some(vec![
                spread("topology.kubernetes.io/zone", site.name),
                spread("kubernetes.io/hostname", site.name),
            ]),
            termination_grace_period_seconds: Some(30),
            ..PodSpec::default()
        }),
    };
    Ok(Deployment {
        metadata: site.meta(names::app(site.name), "server"),
        spec: Some(DeploymentSpec {
            replicas: Some(spec.replicas),
            revision_history_limit: Some(5),
            selector: LabelSelector {
                match_labels: Some(labels::selector(site.name)),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            template,
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::*;

    fn deploy(s: &crate::crd::PhotoSite) -> Deployment {
        build(&Site::new(s).unwrap(), "abc").unwrap()
    }

    fn env<'a>(c: &'a Container, name: &str) -> &'a EnvVar {
        c.env
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.name == name)
            .unwrap()
    }

    #[test]
    fn replicas_and_rollout() {
        let d = deploy(&fakeflickr()).spec.unwrap();
        assert_eq!(d.replicas, Some(3));
        let ru = d.strategy.unwrap().rolling_update.unwrap();
        assert_eq!(ru.max_unavailable, Some(IntOrString::Int(0)));
        assert_eq!(deploy(&demo()).spec.unwrap().replicas, Some(2));
    }

    #[test]
    fn selector_matches_pod_labels() {
        let d = deploy(&demo()).spec.unwrap();
        let sel = d.selector.match_labels.unwrap();
        let pod = d.template.metadata.unwrap().labels.unwrap();
        for (k, v) in &sel {
            assert_eq!(pod.get(k), Some(v));
        }
    }

    #[test]
    fn restricted_security() {
        let d = deploy(&demo()).spec.unwrap();
        let pod = d.template.spec.unwrap();
        let psc = pod.security_context.unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        let c = &pod.containers[0];
        let sc = c.security_context.clone().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.capabilities.unwrap().drop.unwrap(), vec!["ALL"]);
        assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        assert_eq!(pod.automount_service_account_token, Some(false));
    }

    #[test]
    fn probes_env_and_volumes() {
        let d = deploy(&fakeflickr()).spec.unwrap();
        let t = d.template;
        assert_eq!(
            t.metadata.unwrap().annotations.unwrap()[CONFIG_HASH_ANNOTATION],
            "abc"
        );
        let pod = t.spec.unwrap();
        let c = &pod.containers[0];
        assert_eq!(
            c.readiness_probe
                .clone()
                .unwrap()
                .http_get
                .unwrap()
                .path
                .as_deref(),
            Some("/readyz")
        );
        assert_eq!(
            c.liveness_probe
                .clone()
                .unwrap()
                .http_get
                .unwrap()
                .path
                .as_deref(),
            Some("/healthz")
        );
        assert_eq!(c.ports.clone().unwrap()[0].container_port, 8080);
        let db = env(c, "DATABASE_URL")
            .value_from
            .clone()
            .unwrap()
            .secret_key_ref
            .unwrap();
        assert_eq!(
            (db.name.as_str(), db.key.as_str()),
            ("fakeflickr-db-app", "uri")
        );
        let sk = env(c, "PHOTO_SESSION_KEY")
            .value_from
            .clone()
            .unwrap()
            .secret_key_ref
            .unwrap();
        assert_eq!(sk.name, "fakeflickr-credentials");
        env(c, "PHOTO_ADMIN_PASSWORD");
        let vols = pod.volumes.unwrap();
        let orig = vols.iter().find(|v| v.name == "originals").unwrap();
        assert_eq!(
            orig.persistent_volume_claim.clone().unwrap().claim_name,
            "fakeflickr-originals"
        );
        let cache = vols.iter().find(|v| v.name == "cache").unwrap();
        assert_eq!(
            cache.empty_dir.clone().unwrap().size_limit.unwrap().0,
            "4Gi"
        );
        assert!(vols.iter().any(|v| v.name == "tmp"));
        let mounts = c.volume_mounts.clone().unwrap();
        let m = mounts.iter().find(|m| m.name == "originals").unwrap();
        assert_ne!(m.read_only, Some(true));
        assert_eq!(pod.topology_spread_constraints.unwrap().len(), 2);
    }

    #[test]
    fn external_database_and_scheduling() {
        let s = with(demo(), |s| {
            s.spec.database.external = Some(crate::crd::ExternalDatabaseSpec {
                secret_name: "rds".into(),
                key: "url".into(),
            });
            s.spec.node_selector = Some(BTreeMap::from([("pool".into(), "photos".into())]));
        });
        let pod = deploy(&s).spec.unwrap().template.spec.unwrap();
        let db = env(&pod.containers[0], "DATABASE_URL")
            .value_from
            .clone()
            .unwrap()
            .secret_key_ref
            .unwrap();
        assert_eq!((db.name.as_str(), db.key.as_str()), ("rds", "url"));
        assert_eq!(pod.node_selector.unwrap()["pool"], "photos");
    }
}
