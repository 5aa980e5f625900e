//! The photo-server Deployment.
//!
//! - replicas copied from `spec.replicas` (the single owner of the count; see `crd.rs`); with
//!   autoscaling kept within `[minReplicas, maxReplicas]`, so a new site starts at the
//!   autoscaler's floor before the HPA first writes `spec.replicas`;
//! - rolling updates with `maxUnavailable: 0`, so capacity never dips during a rollout; on a
//!   `ReadWriteOncePod` claim (one pod at most) the old pod goes first (`maxSurge: 0`), as a
//!   surge pod could never mount the claim; on a `ReadWriteOnce` claim every pod is required
//!   on the node the claim is attached to ([`on_the_claims_node`]);
//! - the ConfigMap hash and a hash of the referenced Secret values in the pod template, so a
//!   configuration change or a rotated Secret rolls the pods;
//! - two ports: `http` (web, behind the Service the Ingress uses) and `metrics` (`/metrics`,
//!   `/healthz`, `/readyz`). Both probes use the metrics port. Liveness is `/healthz`, which
//!   photo-server answers as soon as it listens, whatever the database does; readiness is
//!   `/readyz`, which fails until the database is reachable and migrated. photo-server keeps
//!   retrying a database that is not up yet (a new CloudNativePG cluster takes a minute or
//!   two) instead of exiting, so pods wait unready rather than crash-loop, and no startup
//!   probe is needed;
//! - restricted Pod Security: non-root, read-only root filesystem (hence the `/tmp` and data
//!   emptyDirs), no privilege escalation, all capabilities dropped, RuntimeDefault seccomp;
//! - the originals claim mounted read-write on every pod, an emptyDir cache with a sizeLimit,
//!   and an `ephemeral-storage` request covering the emptyDirs so the scheduler only places a
//!   pod where its cache fits;
//! - `DATABASE_URL` straight from CloudNativePG's `<cluster>-app` Secret (key `uri`) or the
//!   external database Secret, never copied. With CloudNativePG the connection verifies the
//!   server: `PGSSLMODE=verify-full` and `PGSSLROOTCERT` pointing at the `ca.crt` key (only
//!   that key, never `ca.key`) of the cluster's `<cluster>-ca` Secret, mounted read-only;
//! - topology spread across zones and hosts, so losing a zone leaves pods elsewhere. Both are
//!   `ScheduleAnyway`: clusters without zone labels (kind) still schedule.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapEnvSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, EnvVarSource, HTTPGetAction, KeyToPath,
    PersistentVolumeClaimVolumeSource, PodAffinity, PodAffinityTerm, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretKeySelector,
    SecretVolumeSource, SecurityContext, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};

use super::config_map::{CACHE_DIR, DATA_DIR, METRICS_PORT, ORIGINALS_DIR, PORT};
use super::inputs::Inputs;
use super::{pvc, secret};
use crate::crd::{AccessMode, SslMode};
use crate::quantity;
use crate::site::ValidatedSite;
use crate::{labels, names};

pub const CONTAINER: &str = "photo-server";
pub const CONFIG_HASH_ANNOTATION: &str = "photostack.io/config-hash";
/// Hash of the Secret values the pods read (credentials, external database).
pub const SECRETS_HASH_ANNOTATION: &str = "photostack.io/secrets-hash";
/// UID/GID of the non-root user (distroless `nonroot`).
pub const USER_ID: i64 = 65532;
/// Name of the web port.
pub const HTTP_PORT_NAME: &str = "http";
/// Name of the metrics and probes port.
pub const METRICS_PORT_NAME: &str = "metrics";
/// Where the database CA certificate is mounted (one file, `ca.crt`).
pub const DATABASE_CA_DIR: &str = "/etc/photo/database-ca";
/// Size limits of the scratch emptyDirs (the cache's comes from the spec).
pub(super) const DATA_LIMIT: &str = "256Mi";
pub(super) const TMP_LIMIT: &str = "64Mi";

pub(super) fn secret_env(name: &str, secret: String, key: &str) -> EnvVar {
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

pub(super) fn plain_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(METRICS_PORT_NAME.into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

pub(super) fn empty_dir(name: &str, limit: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(Quantity(limit.into())),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }
}

pub(super) fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..VolumeMount::default()
    }
}

fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: number,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
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

/// What every pod of a site shares: its ServiceAccount (no API token), the restricted
/// security context, `spec.nodeSelector` and `spec.tolerations`.
pub fn site_pod_spec(site: &ValidatedSite, container: Container, volumes: Vec<Volume>) -> PodSpec {
    PodSpec {
        service_account_name: Some(names::app(site.name)),
        automount_service_account_token: Some(false),
        security_context: Some(pod_security()),
        containers: vec![container],
        volumes: Some(volumes),
        node_selector: site.spec.node_selector.clone(),
        tolerations: site.spec.tolerations.clone(),
        ..PodSpec::default()
    }
}

/// On a ReadWriteOnce originals claim, every pod mounting it must run on the node it is
/// attached to (elsewhere it waits on a Multi-Attach error, and a rollout's surge pod never
/// starts): required affinity to the site's server pods on `kubernetes.io/hostname`. The
/// scheduler lets the first such pod go anywhere (a pod matching its own term with no other
/// match); every later one, surge pods and backup Jobs included, follows it.
pub fn on_the_claims_node(site: &ValidatedSite) -> Option<Affinity> {
    (site.spec.storage.originals.access_mode == AccessMode::ReadWriteOnce).then(|| Affinity {
        pod_affinity: Some(PodAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                label_selector: Some(LabelSelector {
                    match_labels: Some(labels::selector(site.name)),
                    ..LabelSelector::default()
                }),
                topology_key: "kubernetes.io/hostname".into(),
                ..PodAffinityTerm::default()
            }]),
            ..PodAffinity::default()
        }),
        ..Affinity::default()
    })
}

/// Default resources of a container when the spec gives none: CPU and memory requests and
/// limits, limits included because a namespace whose ResourceQuota covers limits refuses
/// pods without them (`must specify limits.cpu`). 2 CPUs: photo-server sizes its render pool
/// by the CPUs its cgroup allows.
pub fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("100m".into())),
            ("memory".to_string(), Quantity("256Mi".into())),
        ])),
        limits: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity("2".into())),
            ("memory".to_string(), Quantity("1Gi".into())),
        ])),
        ..ResourceRequirements::default()
    }
}

/// Room in the `ephemeral-storage` limit for the container's logs, beyond its emptyDirs.
const LOG_ROOM: u64 = 256 << 20;

/// `r` with an `ephemeral-storage` request of `emptydirs` bytes and a limit of that plus
/// [`LOG_ROOM`], each unless already set: the kubelet then evicts a pod filling the node's
/// disk, and a quota on ephemeral storage admits it.
pub fn with_ephemeral_storage(mut r: ResourceRequirements, emptydirs: u64) -> ResourceRequirements {
    r.requests
        .get_or_insert_with(BTreeMap::new)
        .entry("ephemeral-storage".to_string())
        .or_insert_with(|| bytes_quantity(emptydirs));
    r.limits
        .get_or_insert_with(BTreeMap::new)
        .entry("ephemeral-storage".to_string())
        .or_insert_with(|| bytes_quantity(emptydirs.saturating_add(LOG_ROOM)));
    r
}

/// Bytes as a quantity, in Mi when whole.
fn bytes_quantity(bytes: u64) -> Quantity {
    if bytes.is_multiple_of(1 << 20) {
        Quantity(format!("{}Mi", bytes >> 20))
    } else {
        Quantity(bytes.to_string())
    }
}

/// Bytes the scratch emptyDirs (data and tmp) may fill.
pub fn scratch_bytes() -> u64 {
    [DATA_LIMIT, TMP_LIMIT]
        .iter()
        .map(|q| quantity::parse_bytes(q).unwrap_or(0))
        .sum()
}

/// The spec's resources (or the defaults), with `ephemeral-storage` for the cache and
/// scratch emptyDirs unless the spec sets it.
fn resources(site: &ValidatedSite) -> ResourceRequirements {
    let r = site
        .spec
        .resources
        .clone()
        .unwrap_or_else(default_resources);
    with_ephemeral_storage(r, site.cache_bytes.saturating_add(scratch_bytes()))
}

/// Replicas of the Deployment: `spec.replicas`, within the autoscaler's bounds when it is on.
pub fn replicas(site: &ValidatedSite) -> i32 {
    let a = &site.spec.autoscaling;
    if a.enabled {
        site.spec.replicas.clamp(a.min_replicas, a.max_replicas)
    } else {
        site.spec.replicas
    }
}

/// Hash of the Secret values the pods read, if the controller read any.
fn secrets_hash(inputs: &Inputs) -> Option<String> {
    if inputs.credentials.is_none() && inputs.external_database.is_none() {
        return None;
    }
    let mut h = Sha256::new();
    if let Some(c) = &inputs.credentials {
        for v in [&c.session_key, &c.admin_password] {
            h.update(v.as_bytes());
            h.update([0]);
        }
    }
    if let Some(e) = &inputs.external_database {
        h.update(e.secret_hash.as_bytes());
    }
    Some(hex::encode(h.finalize())[..16].to_string())
}

/// `DATABASE_URL` and the TLS settings of the connection, and the CA volume they need.
pub(super) fn database(site: &ValidatedSite) -> (Vec<EnvVar>, Option<Volume>) {
    let ca_volume = |secret: String, key: &str| Volume {
        name: "database-ca".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret),
            items: Some(vec![KeyToPath {
                key: key.into(),
                path: "ca.crt".into(),
                ..KeyToPath::default()
            }]),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    };
    let root_cert = format!("{DATABASE_CA_DIR}/ca.crt");
    match &site.spec.database.external {
        None => (
            vec![
                secret_env("DATABASE_URL", names::database_app_secret(site.name), "uri"),
                plain_env("PGSSLMODE", SslMode::VerifyFull.as_str()),
                plain_env("PGSSLROOTCERT", &root_cert),
            ],
            Some(ca_volume(names::database_ca_secret(site.name), "ca.crt")),
        ),
        Some(ext) => {
            let mut env = vec![secret_env(
                "DATABASE_URL",
                ext.secret_name.clone(),
                &ext.key,
            )];
            if let Some(mode) = ext.ssl_mode {
                env.push(plain_env("PGSSLMODE", mode.as_str()));
            }
            let volume = ext.ca_secret.as_ref().map(|ca| {
                env.push(plain_env("PGSSLROOTCERT", &root_cert));
                ca_volume(ca.name.clone(), &ca.key)
            });
            (env, volume)
        }
    }
}

/// A read-only mount of a secret volume.
pub(super) fn read_only_mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        read_only: Some(true),
        ..mount(name, path)
    }
}

/// The originals claim as the pods' `originals` volume, mounted read-write.
pub(super) fn originals_volume(site: &ValidatedSite) -> Volume {
    Volume {
        name: "originals".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: pvc::claim_name(site),
            read_only: Some(false),
        }),
        ..Volume::default()
    }
}

/// photo-server's settings from the site's ConfigMap, as environment variables.
pub(super) fn config_env(site: &ValidatedSite) -> Vec<EnvFromSource> {
    vec![EnvFromSource {
        config_map_ref: Some(ConfigMapEnvSource {
            name: names::config_map(site.name),
            optional: Some(false),
        }),
        ..EnvFromSource::default()
    }]
}

/// The restricted container security context of every photo-server container.
pub(super) fn container_security() -> SecurityContext {
    SecurityContext {
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
    }
}

/// The restricted pod security context of every photo-server pod: the distroless `nonroot`
/// user, and the volumes' group so it can write the originals claim.
pub(super) fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
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
    }
}

pub fn build(site: &ValidatedSite, config_hash: &str, inputs: &Inputs) -> Deployment {
    let spec = site.spec;
    let creds = names::credentials_secret(site.name);
    let (mut env, ca_volume) = database(site);
    env.push(secret_env(
        "PHOTO_SESSION_KEY",
        creds.clone(),
        secret::SESSION_KEY,
    ));
    env.push(secret_env(
        "PHOTO_ADMIN_PASSWORD",
        creds,
        secret::ADMIN_PASSWORD,
    ));
    let mut mounts = vec![
        mount("data", DATA_DIR),
        mount("originals", ORIGINALS_DIR),
        mount("cache", CACHE_DIR),
        mount("tmp", "/tmp"),
    ];
    let mut volumes = vec![
        empty_dir("data", DATA_LIMIT),
        originals_volume(site),
        empty_dir("cache", &spec.storage.cache.size_limit.0),
        empty_dir("tmp", TMP_LIMIT),
    ];
    if let Some(ca) = ca_volume {
        mounts.push(read_only_mount(&ca.name, DATABASE_CA_DIR));
        volumes.push(ca);
    }
    let container = Container {
        name: CONTAINER.into(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        ports: Some(vec![
            port(HTTP_PORT_NAME, PORT),
            port(METRICS_PORT_NAME, METRICS_PORT),
        ]),
        env_from: Some(config_env(site)),
        env: Some(env),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        liveness_probe: Some(http_probe("/healthz", 10, 6)),
        resources: Some(resources(site)),
        security_context: Some(container_security()),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    let mut annotations = BTreeMap::from([
        (CONFIG_HASH_ANNOTATION.to_string(), config_hash.to_string()),
        (
            "kubectl.kubernetes.io/default-container".to_string(),
            CONTAINER.to_string(),
        ),
    ]);
    if let Some(h) = secrets_hash(inputs) {
        annotations.insert(SECRETS_HASH_ANNOTATION.to_string(), h);
    }
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels::common(site.name, "server")),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            // on a ReadWriteOnce claim the pods share its node: nothing to spread
            affinity: on_the_claims_node(site),
            topology_spread_constraints: on_the_claims_node(site).is_none().then(|| {
                vec![
                    spread("topology.kubernetes.io/zone", site.name),
                    spread("kubernetes.io/hostname", site.name),
                ]
            }),
            termination_grace_period_seconds: Some(30),
            ..site_pod_spec(site, container, volumes)
        }),
    };
    let one_pod_claim = site.owns_originals_claim()
        && spec.storage.originals.access_mode == AccessMode::ReadWriteOncePod;
    let (max_unavailable, max_surge) = if one_pod_claim { (1, 0) } else { (0, 1) };
    Deployment {
        metadata: site.meta(names::app(site.name), "server"),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas(site)),
            revision_history_limit: Some(5),
            selector: LabelSelector {
                match_labels: Some(labels::selector(site.name)),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(max_unavailable)),
                    max_surge: Some(IntOrString::Int(max_surge)),
                }),
            }),
            template,
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

#[cfg(test)]
mod tests;
