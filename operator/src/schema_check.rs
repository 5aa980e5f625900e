//! Objects for CloudNativePG, cert-manager and the Prometheus Operator, validated against the
//! real CRDs' `openAPIV3Schema` (the `jsonschema` crate), from `PHOTOSTACK_CRDS` or else
//! `shared/crds` beside the checkout (`scripts/fetch-crds.sh` fetches them). Unknown fields are
//! rejected: every object schema that lists properties and does not carry
//! `x-kubernetes-preserve-unknown-fields` gets `additionalProperties: false`, as the API
//! server's pruning would silently drop them. The CRDs' own CEL rules are evaluated too.
//! The same checks cover the core-kind invariants the API server would enforce (names,
//! selectors matching pod labels, owner references).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Once;

use serde_json::{Value, json};

use crate::children::{self, Kind};
use crate::crd::PhotoSite;
use crate::test_support::*;

/// The third-party CRDs: `PHOTOSTACK_CRDS` (which must then exist), else `shared/crds` beside
/// the checkout. `None` when neither is there: the tests that need them skip the CRD schemas
/// and say so, once, straight to stderr (libtest captures only the print macros, so the line
/// shows under a plain `cargo test` too). CI sets `PHOTOSTACK_CRDS`, so it never skips.
fn crds_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PHOTOSTACK_CRDS") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.is_dir(),
            "PHOTOSTACK_CRDS={} is not a directory",
            dir.display()
        );
        return Some(dir);
    }
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/crds");
    if beside.is_dir() {
        return Some(beside);
    }
    static NOTICE: Once = Once::new();
    NOTICE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: CloudNativePG/cert-manager/Prometheus CRD schema checks of the operator's \
             objects (no PHOTOSTACK_CRDS, no ../shared/crds): run scripts/fetch-crds.sh"
        );
    });
    None
}

/// The openAPIV3Schema of the served version of a CRD file; `None` only without the CRDs.
fn crd_schema(file: &str, version: &str) -> Option<Value> {
    let path = crds_dir()?.join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/fetch-crds.sh)", path.display()));
    let crd: Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let versions = crd["spec"]["versions"].as_array();
    let served = versions.and_then(|vs| vs.iter().find(|v| v["name"] == version));
    let served = served.unwrap_or_else(|| panic!("{}: no version {version}", path.display()));
    Some(served["schema"]["openAPIV3Schema"].clone())
}

/// OpenAPI v3 (Kubernetes structural schema) -> JSON Schema with unknown fields rejected.
fn strict(mut s: Value) -> Value {
    fn walk(s: &mut Value) {
        let Some(m) = s.as_object_mut() else { return };
        if m.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
            m.remove("type");
            m.insert("type".into(), json!(["integer", "string"]));
        }
        if m.remove("nullable") == Some(json!(true))
            && let Some(Value::String(t)) = m.get("type").cloned()
        {
            m.insert("type".into(), json!([t, "null"]));
        }
        m.remove("format");
        let preserve = m.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
        if m.contains_key("properties") && !preserve && !m.contains_key("additionalProperties") {
            m.insert("additionalProperties".into(), json!(false));
        }
        for key in ["properties", "patternProperties"] {
            if let Some(Value::Object(props)) = m.get_mut(key) {
                props.values_mut().for_each(walk);
            }
        }
        for key in ["items", "additionalProperties", "not"] {
            if let Some(v) = m.get_mut(key) {
                walk(v);
            }
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            if let Some(Value::Array(a)) = m.get_mut(key) {
                a.iter_mut().for_each(walk);
            }
        }
    }
    walk(&mut s);
    // the objects' metadata is ObjectMeta; the CRD schemas leave it open
    if let Some(meta) = s.pointer_mut("/properties/metadata") {
        *meta = json!({"type": "object"});
    }
    s
}

fn validate(schema: &Value, original: &Value, object: &Value) -> Result<(), String> {
    let validator = jsonschema::validator_for(schema).map_err(|e| e.to_string())?;
    let errors: Vec<String> = validator
        .iter_errors(object)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    kube::core::cel::Validator::new()
        .validate(original, object, None)
        .map_err(|e| format!("CEL: {e:?}"))
}

fn schema_for(kind: Kind) -> Option<(Value, Value)> {
    let (file, version) = match kind {
        Kind::DatabaseCluster => ("cnpg-v1.30.0/postgresql.cnpg.io_clusters.yaml", "v1"),
        Kind::ServiceMonitor => (
            "prometheus-operator-v0.93.0/monitoring.coreos.com_servicemonitors.yaml",
            "v1",
        ),
        Kind::PrometheusRule => (
            "prometheus-operator-v0.93.0/monitoring.coreos.com_prometheusrules.yaml",
            "v1",
        ),
        Kind::PodMonitor => (
            "prometheus-operator-v0.93.0/monitoring.coreos.com_podmonitors.yaml",
            "v1",
        ),
        Kind::ObjectStore => (
            "barman-cloud-plugin-v0.14.0/barmancloud.cnpg.io_objectstores.yaml",
            "v1",
        ),
        Kind::ScheduledBackup => (
            "cnpg-v1.30.0/postgresql.cnpg.io_scheduledbackups.yaml",
            "v1",
        ),
        Kind::HttpRoute => (
            "gateway-api-v1.6.1/gateway.networking.k8s.io_httproutes.yaml",
            "v1",
        ),
        _ => return None,
    };
    let original = crd_schema(file, version)?;
    Some((strict(original.clone()), original))
}

/// Validate every third-party object and the core invariants of one PhotoSite's children
/// (a site with `spec.restore` both while restoring and after); returns how many objects were
/// validated against a third-party CRD.
pub fn check_site(site: &PhotoSite) -> Result<usize, String> {
    let valid = crate::site::validate(site).map_err(|e| e.to_string())?;
    let mut states = vec![inputs()];
    if valid.restore.is_some() {
        let mut restored = inputs();
        restored.originals_restored = Some(crate::test_support::restored_at());
        states.push(restored);
    }
    let mut validated = 0;
    for i in states {
        let desired = JsonDesired::of(&children::desired(&valid, &i));
        validated += check_children(site, &desired)?;
    }
    Ok(validated)
}

/// A site's desired children as JSON, as they are applied: what the schemas check.
struct JsonDesired {
    children: Vec<JsonChild>,
}

struct JsonChild {
    kind: Kind,
    name: String,
    object: Value,
}

impl JsonDesired {
    fn of(desired: &children::Desired) -> JsonDesired {
        JsonDesired {
            children: desired
                .children
                .iter()
                .map(|c| JsonChild {
                    kind: c.kind,
                    name: c.name.clone(),
                    object: c.json(),
                })
                .collect(),
        }
    }

    fn get(&self, kind: Kind) -> Option<&JsonChild> {
        self.children.iter().find(|c| c.kind == kind)
    }

    fn get_named(&self, kind: Kind, name: &str) -> Option<&JsonChild> {
        self.children
            .iter()
            .find(|c| c.kind == kind && c.name == name)
    }
}

/// Every child of a test PhotoSite, as JSON.
fn build_all(site: &PhotoSite, inputs: &children::Inputs) -> JsonDesired {
    JsonDesired::of(&crate::test_support::build_all(site, inputs))
}

/// The backup and restore children point at each other by name, and their pods are not
/// server pods but are what the jobs' NetworkPolicy selects.
fn check_backup_references(site: &str, desired: &JsonDesired) -> Result<(), String> {
    let names_of = |kind: Kind| -> Vec<&str> {
        desired
            .children
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| c.name.as_str())
            .collect()
    };
    let stores = names_of(Kind::ObjectStore);
    if let Some(cluster) = desired.get(Kind::DatabaseCluster) {
        let mut referenced = Vec::new();
        for p in cluster.object["spec"]["plugins"]
            .as_array()
            .into_iter()
            .flatten()
        {
            referenced.push(&p["parameters"]["barmanObjectName"]);
        }
        for e in cluster.object["spec"]["externalClusters"]
            .as_array()
            .into_iter()
            .flatten()
        {
            referenced.push(&e["plugin"]["parameters"]["barmanObjectName"]);
        }
        for r in referenced {
            if !r.as_str().is_some_and(|n| stores.contains(&n)) {
                return Err(format!(
                    "Cluster refers to ObjectStore {r}, which is not built"
                ));
            }
        }
        if let Some(source) = cluster.object["spec"]["bootstrap"]["recovery"]["source"].as_str()
            && !cluster.object["spec"]["externalClusters"]
                .as_array()
                .is_some_and(|e| e.iter().any(|x| x["name"] == source))
        {
            return Err(format!(
                "recovery source {source} is not an external cluster"
            ));
        }
    }
    if let Some(b) = desired.get(Kind::ScheduledBackup)
        && b.object["spec"]["cluster"]["name"] != crate::names::database_cluster(site).as_str()
    {
        return Err("ScheduledBackup does not name the database cluster".into());
    }
    let Some(np) = desired.get_named(
        Kind::NetworkPolicy,
        &crate::names::jobs_network_policy(site),
    ) else {
        return Ok(());
    };
    let sel = &np.object["spec"]["podSelector"];
    let selects = |labels: &Value| {
        sel["matchLabels"]
            .as_object()
            .is_some_and(|m| m.iter().all(|(k, v)| &labels[k] == v))
            && sel["matchExpressions"].as_array().is_some_and(|e| {
                e.iter().all(|r| {
                    r["operator"] == "In"
                        && r["values"]
                            .as_array()
                            .is_some_and(|vs| vs.contains(&labels[r["key"].as_str().unwrap_or("")]))
                })
            })
    };
    let pod_labels = [
        desired
            .get(Kind::CronJob)
            .map(|c| &c.object["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]),
        desired
            .get(Kind::Job)
            .map(|c| &c.object["spec"]["template"]["metadata"]["labels"]),
    ];
    let server_selector = crate::labels::selector(site);
    for labels in pod_labels.into_iter().flatten() {
        if !selects(labels) {
            return Err(format!(
                "the jobs' NetworkPolicy does not select pods labelled {labels}"
            ));
        }
        if server_selector.iter().all(|(k, v)| labels[k] == v.as_str()) {
            return Err(format!("a backup or restore pod {labels} is a server pod"));
        }
    }
    Ok(())
}

fn check_children(site: &PhotoSite, desired: &JsonDesired) -> Result<usize, String> {
    let mut validated = 0;
    for child in &desired.children {
        if let Some((schema, original)) = schema_for(child.kind) {
            validate(&schema, &original, &child.object)
                .map_err(|e| format!("{:?} {}: {e}", child.kind, child.name))?;
            validated += 1;
        }
        if !crate::names::is_dns_label(&child.name) {
            return Err(format!(
                "{:?} name {:?} is not a DNS label",
                child.kind, child.name
            ));
        }
    }
    let site_name = site.metadata.name.as_deref().unwrap_or_default();
    check_backup_references(site_name, desired)?;
    // selectors match the pod labels (a restore still running has no Deployment yet)
    let Some(deploy) = desired.get(Kind::Deployment).map(|d| &d.object) else {
        return if site.spec.restore.is_some() {
            Ok(validated)
        } else {
            Err("no Deployment".into())
        };
    };
    let pod_labels = &deploy["spec"]["template"]["metadata"]["labels"];
    let matches = |sel: &Value| {
        sel.as_object()
            .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| &pod_labels[k] == v))
    };
    let svc = &desired.get(Kind::Service).ok_or("no Service")?.object;
    if let Some(route) = desired.get(Kind::HttpRoute) {
        let backend = &route.object["spec"]["rules"][0]["backendRefs"][0];
        if backend["name"] != svc["metadata"]["name"]
            || backend["port"] != svc["spec"]["ports"][0]["port"]
        {
            return Err(format!(
                "HTTPRoute backend {backend} is not the Service's web port"
            ));
        }
    }
    let checks = [
        ("Deployment", &deploy["spec"]["selector"]["matchLabels"]),
        ("Service", &svc["spec"]["selector"]),
        (
            "PodDisruptionBudget",
            &desired
                .get(Kind::PodDisruptionBudget)
                .ok_or("no PDB")?
                .object["spec"]["selector"]["matchLabels"],
        ),
        (
            "NetworkPolicy",
            &desired
                .get(Kind::NetworkPolicy)
                .ok_or("no NetworkPolicy")?
                .object["spec"]["podSelector"]["matchLabels"],
        ),
    ];
    for (what, sel) in checks {
        if !matches(sel) {
            return Err(format!("{what} selector does not match the pod labels"));
        }
    }
    let metrics_svc = &desired
        .get_named(Kind::Service, &crate::names::metrics_service(site_name))
        .ok_or("no metrics Service")?
        .object;
    if !matches(&metrics_svc["spec"]["selector"]) {
        return Err("metrics Service selector does not match the pod labels".into());
    }
    let labels_match = |sel: &Value, labels: &Value| {
        sel.as_object()
            .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| &labels[k] == v))
    };
    if let Some(sm) = desired.get(Kind::ServiceMonitor) {
        let sel = &sm.object["spec"]["selector"]["matchLabels"];
        // exactly the metrics Service: the web Service must not be scraped
        if !labels_match(sel, &metrics_svc["metadata"]["labels"]) {
            return Err("ServiceMonitor selector does not match the metrics Service".into());
        }
        if labels_match(sel, &svc["metadata"]["labels"]) {
            return Err("ServiceMonitor selector also matches the web Service".into());
        }
        let port = &sm.object["spec"]["endpoints"][0]["port"];
        let ports = metrics_svc["spec"]["ports"].as_array().ok_or("no ports")?;
        if !ports.iter().any(|p| &p["name"] == port) {
            return Err(format!(
                "ServiceMonitor port {port} is not a metrics Service port"
            ));
        }
    }
    if let Some(pm) = desired.get(Kind::PodMonitor) {
        let sel = &pm.object["spec"]["selector"]["matchLabels"]["cnpg.io/cluster"];
        if sel != &Value::String(crate::names::database_cluster(site_name)) {
            return Err("PodMonitor does not select the database cluster's pods".into());
        }
    }
    Ok(validated)
}

#[test]
fn contract_samples_validate_against_the_crds() {
    // Without the CRDs only the core invariants are checked, and crds_dir() says so.
    let with_crds = crds_dir().is_some();
    assert_eq!(check_site(&demo()), Ok(if with_crds { 1 } else { 0 }));
    // Cluster, ServiceMonitor, PodMonitor, PrometheusRule
    assert_eq!(check_site(&fakeflickr()), Ok(if with_crds { 4 } else { 0 }));
}

#[test]
fn the_http_route_validates_against_the_gateway_api_crd() {
    let with_crds = crds_dir().is_some();
    let routed = with(fakeflickr(), |s| s.spec.gateway = Some(gateway_spec()));
    // Cluster, HTTPRoute, ServiceMonitor, PodMonitor, PrometheusRule
    assert_eq!(check_site(&routed), Ok(if with_crds { 5 } else { 0 }));
    let Some((schema, original)) = schema_for(Kind::HttpRoute) else {
        return;
    };
    // the check can fail: an unknown path match type, a field HTTPRoute does not have
    let d = build_all(&routed, &inputs());
    let route = &d.get(Kind::HttpRoute).unwrap().object;
    let mut bad = route.clone();
    bad["spec"]["rules"][0]["matches"][0]["path"]["type"] = json!("Glob");
    assert!(validate(&schema, &original, &bad).is_err());
    let mut bad = route.clone();
    bad["spec"]["host"] = json!("photos.example.com");
    assert!(validate(&schema, &original, &bad).is_err());
}

#[test]
fn backup_and_restore_objects_validate_against_the_crds() {
    let with_crds = crds_dir().is_some();
    // no static key: the ObjectStore inherits the IAM role, the Cluster carries the
    // ServiceAccount's annotation (Cluster, ObjectStore, ScheduledBackup)
    assert_eq!(
        check_site(&iam_role_site()),
        Ok(if with_crds { 3 } else { 0 })
    );
    let backed_up = with(fakeflickr(), |s| {
        let mut b = backup_spec();
        b.object_store.endpoint_url = Some("https://minio.example.com:9000".into());
        b.object_store.region = Some("eu-west-1".into());
        b.object_store.ca_secret = Some(crate::crd::CaSecretRef {
            name: "minio-ca".into(),
            key: "ca.crt".into(),
        });
        s.spec.backup = Some(b);
    });
    // Cluster (with the plugin), ObjectStore, ScheduledBackup, ServiceMonitor, PodMonitor,
    // PrometheusRule (with the backup alerts)
    assert_eq!(check_site(&backed_up), Ok(if with_crds { 6 } else { 0 }));
    let restored = with(demo(), |s| {
        let mut r = restore_spec();
        r.site_name = Some("photos".into());
        r.target_time = Some("2026-03-01T12:00:00Z".into());
        s.spec.restore = Some(r);
        s.spec.backup = Some(backup_spec());
    });
    // while restoring and after: Cluster (recovery), both ObjectStores, ScheduledBackup
    assert_eq!(check_site(&restored), Ok(if with_crds { 8 } else { 0 }));
    let Some((schema, original)) = schema_for(Kind::ObjectStore) else {
        return;
    };
    // the check can fail: the plugin refuses a serverName in the ObjectStore (CEL), and
    // unknown fields
    let d = build_all(&backed_up, &inputs());
    let store = &d.get(Kind::ObjectStore).unwrap().object;
    assert!(validate(&schema, &original, store).is_ok());
    let mut bad = store.clone();
    bad["spec"]["configuration"]["serverName"] = json!("fakeflickr-db");
    assert!(validate(&schema, &original, &bad).is_err());
    let mut bad = store.clone();
    bad["spec"]["configuration"]["s3Credentials"]["region"] = json!("eu-west-1");
    assert!(validate(&schema, &original, &bad).is_err());
    let (schema, original) = schema_for(Kind::ScheduledBackup).unwrap();
    let mut bad = d.get(Kind::ScheduledBackup).unwrap().object.clone();
    bad["spec"]["method"] = json!("barman");
    assert!(validate(&schema, &original, &bad).is_err());
}

#[test]
fn strict_schema_rejects_unknown_fields() {
    let Some((schema, original)) = schema_for(Kind::DatabaseCluster) else {
        return;
    };
    let site = demo();
    let d = build_all(&site, &inputs());
    let mut cluster = d.get(Kind::DatabaseCluster).unwrap().object.clone();
    assert!(validate(&schema, &original, &cluster).is_ok());
    cluster["spec"]["storage"]["sizee"] = json!("1Gi");
    assert!(validate(&schema, &original, &cluster).is_err());
    let mut cluster = d.get(Kind::DatabaseCluster).unwrap().object.clone();
    cluster["spec"]["instances"] = json!("three");
    assert!(validate(&schema, &original, &cluster).is_err());
}

#[test]
fn issuer_ref_matches_cert_manager() {
    // We emit no cert-manager object: the Ingress annotation makes cert-manager's ingress-shim
    // create the Certificate. Check that the issuer kinds we offer exist and that our
    // IssuerRef fits Certificate.spec.issuerRef.
    let Some(cert) = crd_schema(
        "cert-manager-v1.21.1/cert-manager.io_certificates.yaml",
        "v1",
    ) else {
        return;
    };
    let issuer_ref = strict(cert["properties"]["spec"]["properties"]["issuerRef"].clone());
    let site = fakeflickr();
    let r = site.spec.ingress.unwrap().tls.unwrap().issuer_ref.unwrap();
    let obj = json!({"group": "cert-manager.io", "kind": serde_json::to_value(r.kind).unwrap(), "name": r.name});
    let validator = jsonschema::validator_for(&issuer_ref).unwrap();
    assert!(validator.is_valid(&obj), "{obj}");
    let dir = crds_dir().unwrap();
    for (file, kind) in [
        ("cert-manager.io_clusterissuers.yaml", "ClusterIssuer"),
        ("cert-manager.io_issuers.yaml", "Issuer"),
    ] {
        let text = std::fs::read_to_string(dir.join("cert-manager-v1.21.1").join(file)).unwrap();
        let crd: Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(crd["spec"]["names"]["kind"], kind);
    }
}

mod generated {
    //! Property-generated valid PhotoSites: every one passes the CRD's CEL rules, builds, and
    //! every object it yields validates against the third-party CRD schemas and keeps the
    //! name/selector/owner invariants.

    use super::*;
    use crate::crd::{
        AccessMode, DataPolicy, ExternalDatabaseSpec, IngressSpec, IssuerKind, IssuerRef, TlsSpec,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use proptest::prelude::*;

    prop_compose! {
        fn arb_site()(
            name in "[a-z][a-z0-9-]{0,37}[a-z0-9]",
            replicas in 0i32..40,
            (min, max) in (1i32..10).prop_flat_map(|min| (Just(min), min..60)),
            autoscale in any::<bool>(),
            cpu in 1i32..=100,
            renditions in proptest::collection::vec(16u32..=8192, 1..8),
            instances in 1i32..=9,
            cache_mi in 64u32..65536,
            originals_gi in 1u32..10000,
            access in prop_oneof![Just(AccessMode::ReadWriteMany), Just(AccessMode::ReadWriteOnce), Just(AccessMode::ReadWriteOncePod)],
            storage_class in proptest::option::of("[a-z][a-z0-9-]{0,20}"),
            existing_claim in proptest::option::of("[a-z][a-z0-9-]{0,20}"),
            external in any::<bool>(),
            ingress in any::<bool>(),
            gateway in proptest::option::of((proptest::option::of("[a-z]([a-z0-9-]{0,20}[a-z0-9])?"), proptest::option::of(Just("https".to_string())))),
            host in "[a-z][a-z0-9]{0,10}\\.example\\.(com|org)",
            tls in any::<bool>(),
            issuer in proptest::option::of((prop_oneof![Just(IssuerKind::ClusterIssuer), Just(IssuerKind::Issuer)], "[a-z][a-z0-9-]{0,20}")),
            (service_monitor, alerts) in (any::<bool>(), any::<bool>()).prop_map(|(s, a)| (s, s && a)),
            delete in any::<bool>(),
            image_name in proptest::option::of(Just("ghcr.io/cloudnative-pg/postgresql:17.2".to_string())),
            vpcs in proptest::collection::vec(0u8..=255, 0..3),
            release in proptest::option::of("[a-z][a-z0-9-]{0,20}[a-z0-9]"),
            request_mi in 1u32..4096,
            verify in any::<bool>(),
        ) -> PhotoSite {
            let mut s = demo();
            s.metadata.name = Some(name);
            let spec = &mut s.spec;
            spec.replicas = replicas;
            spec.autoscaling.enabled = autoscale;
            spec.autoscaling.min_replicas = min;
            spec.autoscaling.max_replicas = max;
            spec.autoscaling.target_cpu_utilization_percentage = cpu;
            spec.renditions = renditions;
            spec.database.instances = instances;
            spec.database.image_name = image_name;
            spec.database.storage.storage_class_name = storage_class.clone();
            if external {
                spec.database.external = Some(ExternalDatabaseSpec { secret_name: "rds".into(), key: "uri".into(), ssl_mode: None, ca_secret: None });
            }
            spec.storage.cache.size_limit = Quantity(format!("{cache_mi}Mi"));
            spec.storage.originals.size = Quantity(format!("{originals_gi}Gi"));
            spec.storage.originals.access_mode = access;
            if access == AccessMode::ReadWriteOncePod {
                // one pod at most (CEL and validate refuse more)
                spec.replicas = spec.replicas.min(1);
                spec.autoscaling.min_replicas = 1;
                spec.autoscaling.max_replicas = 1;
            }
            spec.network_policy.ingress_cidrs = vpcs.iter().map(|b| format!("10.{b}.0.0/16")).collect();
            if let Some(r) = release {
                spec.monitoring.labels.insert("release".into(), r);
            }
            spec.uploads.max_request_size = Quantity(format!("{request_mi}Mi"));
            spec.uploads.max_file_size = Quantity(format!("{}Mi", request_mi.min(50)));
            if verify && let Some(e) = spec.database.external.as_mut() {
                e.ssl_mode = Some(crate::crd::SslMode::VerifyFull);
                e.ca_secret = Some(crate::crd::CaSecretRef { name: "rds-ca".into(), key: "ca.crt".into() });
            }
            spec.storage.originals.storage_class_name = storage_class;
            spec.storage.originals.existing_claim = existing_claim;
            if ingress {
                spec.ingress = Some(IngressSpec {
                    host: Some(host.clone()),
                    class_name: Some("nginx".into()),
                    tls: tls.then(|| TlsSpec {
                        secret_name: None,
                        issuer_ref: issuer.map(|(kind, name)| IssuerRef { kind, name }),
                    }),
                    annotations: None,
                });
            }
            if let Some((namespace, section_name)) = gateway {
                spec.gateway = Some(crate::crd::GatewaySpec {
                    parent_refs: vec![crate::crd::GatewayParentRef { name: "public".into(), namespace, section_name }],
                    hostnames: vec![host.clone()],
                });
            }
            spec.monitoring.service_monitor = service_monitor;
            spec.monitoring.alerts = alerts;
            spec.data_policy = if delete { DataPolicy::Delete } else { DataPolicy::Retain };
            s
        }
    }

    prop_compose! {
        /// [`arb_site`] with backups and a restore, or not.
        fn arb_site_with_backups()(
            mut s in arb_site(),
            backup in proptest::option::of((
                prop_oneof![Just("0 3 * * *"), Just("@daily"), Just("*/30 * * * *"), Just("15 2 * * MON-FRI")],
                prop_oneof![Just("30d"), Just("8w"), Just("6m")],
                proptest::option::of(prop_oneof![Just("https://minio.example.com:9000"), Just("http://minio.minio.svc:9000")]),
                proptest::option::of("[a-z]{2}-[a-z]{4,7}-[1-3]"),
                any::<bool>(),
            )),
            restore in proptest::option::of((
                proptest::option::of("[a-z][a-z0-9-]{0,20}[a-z0-9]"),
                proptest::option::of(Just("2026-03-01T12:00:00Z")),
            )),
        ) -> PhotoSite {
            let spec = &mut s.spec;
            let one_pod_claim = spec.storage.originals.access_mode == AccessMode::ReadWriteOncePod
                && spec.storage.originals.existing_claim.is_none();
            if let (Some((schedule, retention, endpoint, region, ca)), false) = (backup, one_pod_claim) {
                let mut b = backup_spec();
                b.schedule = schedule.into();
                b.retention = retention.into();
                b.object_store.endpoint_url = endpoint.map(String::from);
                b.object_store.region = region;
                if ca {
                    b.object_store.ca_secret = Some(crate::crd::CaSecretRef { name: "store-ca".into(), key: "ca.crt".into() });
                }
                spec.backup = Some(b);
            }
            if let Some((site_name, target_time)) = restore {
                let mut r = restore_spec();
                r.site_name = site_name;
                r.target_time = target_time.map(String::from);
                spec.restore = Some(r);
            }
            s
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn generated_specs_yield_valid_objects(site in arb_site_with_backups()) {
            prop_assert!(site.validate_cel().is_ok(), "{:?}", site.validate_cel());
            let checked = check_site(&site);
            prop_assert!(checked.is_ok(), "{:?}", checked);
            let mut restored = inputs();
            restored.originals_restored = Some(crate::test_support::restored_at());
            let d = build_all(&site, &restored);
            let deploy = &d.get(Kind::Deployment).unwrap().object;
            let a = &site.spec.autoscaling;
            let replicas = if a.enabled {
                site.spec.replicas.clamp(a.min_replicas, a.max_replicas)
            } else {
                site.spec.replicas
            };
            prop_assert_eq!(&deploy["spec"]["replicas"], &json!(replicas));
            prop_assert_eq!(d.get(Kind::HorizontalPodAutoscaler).is_some(), site.spec.autoscaling.enabled);
            prop_assert_eq!(d.get(Kind::Ingress).is_some(), site.spec.ingress.is_some());
            prop_assert_eq!(d.get(Kind::DatabaseCluster).is_some(), site.spec.database.external.is_none());
            prop_assert_eq!(d.get(Kind::CronJob).is_some(), site.spec.backup.is_some());
            let cnpg = site.spec.database.external.is_none();
            prop_assert_eq!(d.get(Kind::ScheduledBackup).is_some(), cnpg && site.spec.backup.is_some());
            prop_assert_eq!(
                d.children.iter().filter(|c| c.kind == Kind::ObjectStore).count(),
                if cnpg { usize::from(site.spec.backup.is_some()) + usize::from(site.spec.restore.is_some()) } else { 0 }
            );
            for c in &d.children {
                let owned = c.object["metadata"]["ownerReferences"].is_array();
                let data = matches!(c.kind, Kind::PersistentVolumeClaim | Kind::DatabaseCluster | Kind::ObjectStore);
                prop_assert_eq!(owned, !data || site.spec.data_policy == DataPolicy::Delete);
            }
        }
    }
}

#[test]
fn every_sample_in_manifests_renders_and_validates() {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/samples"));
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(crate::render::render(&text).is_ok(), "{}", path.display());
        let mut site: PhotoSite = serde_yaml::from_str(&text).unwrap();
        site.metadata.uid = Some("uid".into());
        site.metadata
            .namespace
            .get_or_insert_with(|| "default".into());
        assert!(
            site.validate_cel().is_ok(),
            "{}: {:?}",
            path.display(),
            site.validate_cel()
        );
        assert!(
            check_site(&site).is_ok(),
            "{}: {:?}",
            path.display(),
            check_site(&site)
        );
        seen += 1;
    }
    assert!(seen >= 2);
}
