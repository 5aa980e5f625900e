//! Tests of the Deployment builder.

use super::*;
use crate::children::{Credentials, ExternalDatabase};
use crate::crd::{CaSecretRef, PhotoSite};
use crate::test_support::*;

fn deploy_with(s: &PhotoSite, inputs: &Inputs) -> Deployment {
    build(&valid(s), "abc", inputs)
}

fn deploy(s: &PhotoSite) -> Deployment {
    deploy_with(s, &inputs())
}

fn pod(d: Deployment) -> PodSpec {
    d.spec.unwrap().template.spec.unwrap()
}

fn env<'a>(c: &'a Container, name: &str) -> Option<&'a EnvVar> {
    c.env.as_ref().unwrap().iter().find(|e| e.name == name)
}

fn secret_ref(c: &Container, name: &str) -> (String, String) {
    let r = env(c, name)
        .and_then(|e| e.value_from.clone())
        .and_then(|v| v.secret_key_ref)
        .unwrap_or_else(|| panic!("{name} is not from a Secret"));
    (r.name, r.key)
}

fn probe(p: &Option<Probe>) -> (String, IntOrString) {
    let h = p.clone().unwrap().http_get.unwrap();
    (h.path.unwrap(), h.port)
}

#[test]
fn replicas_and_rollout() {
    let d = deploy(&fakeflickr()).spec.unwrap();
    assert_eq!(d.replicas, Some(3));
    let ru = d.strategy.unwrap().rolling_update.unwrap();
    assert_eq!(ru.max_unavailable, Some(IntOrString::Int(0)));
    assert_eq!(ru.max_surge, Some(IntOrString::Int(1)));
    assert_eq!(deploy(&demo()).spec.unwrap().replicas, Some(2));
}

#[test]
fn autoscaled_replicas_stay_within_the_autoscaler_bounds() {
    // an autoscaled site without spec.replicas (default 2) below minReplicas 3
    let s = with(fakeflickr(), |s| s.spec.replicas = 2);
    assert_eq!(deploy(&s).spec.unwrap().replicas, Some(3));
    let s = with(fakeflickr(), |s| s.spec.replicas = 40);
    assert_eq!(deploy(&s).spec.unwrap().replicas, Some(12));
    let s = with(fakeflickr(), |s| s.spec.replicas = 7);
    assert_eq!(deploy(&s).spec.unwrap().replicas, Some(7));
    // without autoscaling spec.replicas is copied as is, zero included
    let s = with(demo(), |s| s.spec.replicas = 0);
    assert_eq!(deploy(&s).spec.unwrap().replicas, Some(0));
}

#[test]
fn read_write_once_pods_share_the_claims_node() {
    // EBS-style claim on a multi-node cluster: a pod (surge pods included) on another node
    // than the claim's waits forever on Multi-Attach
    let rwo = with(fakeflickr(), |s| {
        s.spec.storage.originals.access_mode = AccessMode::ReadWriteOnce
    });
    let p = pod(deploy(&rwo));
    let terms = p
        .affinity
        .unwrap()
        .pod_affinity
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .unwrap();
    assert_eq!(terms.len(), 1);
    assert_eq!(terms[0].topology_key, "kubernetes.io/hostname");
    assert_eq!(
        terms[0].label_selector.clone().unwrap().match_labels,
        Some(labels::selector("fakeflickr"))
    );
    assert!(p.topology_spread_constraints.is_none());
    // ReadWriteMany: spread over zones and nodes, no affinity
    let p = pod(deploy(&fakeflickr()));
    assert!(p.affinity.is_none());
    assert_eq!(p.topology_spread_constraints.unwrap().len(), 2);
}

#[test]
fn read_write_once_pod_replaces_the_pod_instead_of_surging() {
    let s = with(demo(), |s| {
        s.spec.replicas = 1;
        s.spec.storage.originals.access_mode = AccessMode::ReadWriteOncePod;
    });
    let ru = deploy(&s)
        .spec
        .unwrap()
        .strategy
        .unwrap()
        .rolling_update
        .unwrap();
    assert_eq!(ru.max_surge, Some(IntOrString::Int(0)));
    assert_eq!(ru.max_unavailable, Some(IntOrString::Int(1)));
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
    let pod = pod(deploy(&demo()));
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
fn probes_use_the_metrics_port_and_never_wait_for_the_database() {
    let pod = pod(deploy(&fakeflickr()));
    let c = &pod.containers[0];
    let ports: Vec<(String, i32)> = c
        .ports
        .clone()
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.container_port))
        .collect();
    assert_eq!(
        ports,
        vec![("http".to_string(), 8080), ("metrics".to_string(), 9090)]
    );
    let metrics = IntOrString::String("metrics".into());
    // liveness: /healthz, answered as soon as photo-server listens, database or not
    assert_eq!(
        probe(&c.liveness_probe),
        ("/healthz".into(), metrics.clone())
    );
    // readiness: /readyz, unready (503) until the database is reachable and migrated
    assert_eq!(probe(&c.readiness_probe), ("/readyz".into(), metrics));
    // photo-server waits for the database itself: no startup probe, and liveness gives a
    // slow start a minute before restarting anything
    assert!(c.startup_probe.is_none());
    let l = c.liveness_probe.clone().unwrap();
    assert!(l.period_seconds.unwrap() * l.failure_threshold.unwrap() >= 60);
}

#[test]
fn env_and_volumes() {
    let d = deploy(&fakeflickr());
    let t = d.spec.unwrap().template;
    assert_eq!(
        t.metadata.unwrap().annotations.unwrap()[CONFIG_HASH_ANNOTATION],
        "abc"
    );
    let pod = t.spec.unwrap();
    let c = &pod.containers[0];
    assert_eq!(
        secret_ref(c, "DATABASE_URL"),
        ("fakeflickr-db-app".into(), "uri".into())
    );
    assert_eq!(
        secret_ref(c, "PHOTO_SESSION_KEY"),
        ("fakeflickr-credentials".into(), "session-key".into())
    );
    secret_ref(c, "PHOTO_ADMIN_PASSWORD");
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
fn cloudnative_pg_connection_verifies_the_server() {
    let pod = pod(deploy(&demo()));
    let c = &pod.containers[0];
    let value = |n: &str| env(c, n).and_then(|e| e.value.clone());
    assert_eq!(value("PGSSLMODE").as_deref(), Some("verify-full"));
    assert_eq!(
        value("PGSSLROOTCERT").as_deref(),
        Some("/etc/photo/database-ca/ca.crt")
    );
    let ca = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "database-ca")
        .unwrap()
        .secret
        .unwrap();
    assert_eq!(ca.secret_name.as_deref(), Some("demo-db-ca"));
    // only the certificate is projected, never the CA's private key
    let items = ca.items.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0].key.as_str(), items[0].path.as_str()),
        ("ca.crt", "ca.crt")
    );
    let m = c
        .volume_mounts
        .clone()
        .unwrap()
        .into_iter()
        .find(|m| m.name == "database-ca")
        .unwrap();
    assert_eq!(m.mount_path, DATABASE_CA_DIR);
    assert_eq!(m.read_only, Some(true));
}

#[test]
fn external_database_tls_is_what_the_spec_says() {
    // default: the user's URI alone decides
    let s = with(demo(), |s| s.spec.database.external = Some(external("rds")));
    let p = pod(deploy(&s));
    let c = &p.containers[0];
    assert_eq!(secret_ref(c, "DATABASE_URL"), ("rds".into(), "uri".into()));
    assert!(env(c, "PGSSLMODE").is_none());
    assert!(env(c, "PGSSLROOTCERT").is_none());
    assert!(p.volumes.unwrap().iter().all(|v| v.name != "database-ca"));
    // verify-full with the RDS CA bundle
    let s = with(demo(), |s| {
        let mut e = external("rds");
        e.ssl_mode = Some(SslMode::VerifyFull);
        e.ca_secret = Some(CaSecretRef {
            name: "rds-ca".into(),
            key: "global-bundle.pem".into(),
        });
        s.spec.database.external = Some(e);
    });
    let p = pod(deploy(&s));
    let c = &p.containers[0];
    assert_eq!(
        env(c, "PGSSLMODE").and_then(|e| e.value.clone()).as_deref(),
        Some("verify-full")
    );
    assert!(env(c, "PGSSLROOTCERT").is_some());
    let ca = p
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "database-ca")
        .unwrap()
        .secret
        .unwrap();
    assert_eq!(ca.secret_name.as_deref(), Some("rds-ca"));
    assert_eq!(ca.items.unwrap()[0].key, "global-bundle.pem");
}

#[test]
fn rotated_secrets_roll_the_pods() {
    let s = with(demo(), |s| s.spec.database.external = Some(external("rds")));
    let hash_of = |i: &Inputs| {
        deploy_with(&s, i)
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()[SECRETS_HASH_ANNOTATION]
            .clone()
    };
    let mut a = inputs();
    a.external_database = Some(ExternalDatabase {
        ports: vec![5432],
        secret_hash: "one".into(),
    });
    let mut b = a.clone();
    b.external_database = Some(ExternalDatabase {
        ports: vec![5432],
        secret_hash: "two".into(),
    });
    assert_ne!(hash_of(&a), hash_of(&b));
    assert_eq!(hash_of(&a), hash_of(&a.clone()));
    let mut c = a.clone();
    c.credentials = Some(Credentials {
        session_key: "k".into(),
        admin_password: "rotated".into(),
    });
    assert_ne!(hash_of(&a), hash_of(&c));
    // render reads no Secret: no annotation
    let render = Inputs::default();
    let d = deploy_with(&s, &render);
    assert!(
        !d.spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()
            .contains_key(SECRETS_HASH_ANNOTATION)
    );
}

#[test]
fn cache_is_requested_as_ephemeral_storage() {
    let c = &pod(deploy(&fakeflickr())).containers[0];
    let req = c.resources.clone().unwrap().requests.unwrap();
    // 4Gi cache + 256Mi data + 64Mi tmp
    assert_eq!(req["ephemeral-storage"].0, "4416Mi");
    assert_eq!(req["cpu"].0, "100m");
    // every limit a namespace ResourceQuota may demand: cpu, memory, ephemeral storage
    // (the emptyDirs and 256Mi of logs)
    let lim = c.resources.clone().unwrap().limits.unwrap();
    assert_eq!(lim["cpu"].0, "2");
    assert_eq!(lim["memory"].0, "1Gi");
    assert_eq!(lim["ephemeral-storage"].0, "4672Mi");
    // a request the spec sets is kept
    let s = with(demo(), |s| {
        s.spec.resources = Some(ResourceRequirements {
            requests: Some(BTreeMap::from([(
                "ephemeral-storage".to_string(),
                Quantity("10Gi".into()),
            )])),
            ..ResourceRequirements::default()
        })
    });
    let c = &pod(deploy(&s)).containers[0];
    assert_eq!(
        c.resources.clone().unwrap().requests.unwrap()["ephemeral-storage"].0,
        "10Gi"
    );
}

#[test]
fn external_database_and_scheduling() {
    let s = with(demo(), |s| {
        let mut e = external("rds");
        e.key = "url".into();
        s.spec.database.external = Some(e);
        s.spec.node_selector = Some(BTreeMap::from([("pool".into(), "photos".into())]));
    });
    let pod = pod(deploy(&s));
    assert_eq!(
        secret_ref(&pod.containers[0], "DATABASE_URL"),
        ("rds".into(), "url".into())
    );
    assert_eq!(pod.node_selector.unwrap()["pool"], "photos");
}
