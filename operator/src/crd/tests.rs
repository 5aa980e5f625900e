//! The CRD matches its committed YAML, and its schema and CEL rules behave.

use super::*;
use crate::test_support::*;
use kube::CustomResourceExt;

const CRD_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/photosite.yaml");

#[test]
fn committed_crd_matches_the_types() {
    let committed = std::fs::read_to_string(CRD_PATH).unwrap_or_default();
    let generated = crd_yaml().unwrap();
    if std::env::var_os("PHOTO_OPERATOR_UPDATE_CRD").is_some() {
        std::fs::write(CRD_PATH, &generated).unwrap();
        return;
    }
    assert!(
        committed == generated,
        "crds/photosite.yaml is out of date: run `cargo run -p photo-operator -- crd > crds/photosite.yaml`"
    );
}

#[test]
fn crd_names_subresources_and_columns() {
    let crd = serde_json::to_value(PhotoSite::crd()).unwrap();
    let spec = &crd["spec"];
    assert_eq!(spec["group"], "photostack.io");
    assert_eq!(spec["scope"], "Namespaced");
    assert_eq!(spec["names"]["plural"], "photosites");
    assert_eq!(spec["names"]["kind"], "PhotoSite");
    assert_eq!(spec["names"]["shortNames"][0], "psite");
    assert_eq!(spec["names"]["categories"][0], "photostack");
    let v = &spec["versions"][0];
    assert_eq!(v["name"], "v1alpha1");
    assert!(v["subresources"]["status"].is_object());
    let scale = &v["subresources"]["scale"];
    assert_eq!(scale["specReplicasPath"], ".spec.replicas");
    assert_eq!(scale["statusReplicasPath"], ".status.replicas");
    assert_eq!(scale["labelSelectorPath"], ".status.selector");
    let cols: Vec<&str> = v["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for c in ["Replicas", "Ready", "URL", "Database", "Age"] {
        assert!(cols.contains(&c), "missing column {c}");
    }
}

#[test]
fn defaults_and_descriptions_are_in_the_schema() {
    let crd = serde_json::to_value(PhotoSite::crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let p = &spec["properties"];
    assert_eq!(spec["required"], serde_json::json!(["image"]));
    assert_eq!(p["replicas"]["default"], 2);
    assert_eq!(p["dataPolicy"]["default"], "Retain");
    assert_eq!(
        p["renditions"]["default"],
        serde_json::json!([240, 640, 1440, 2048])
    );
    assert_eq!(
        p["storage"]["properties"]["originals"]["properties"]["accessMode"]["default"],
        "ReadWriteMany"
    );
    assert_eq!(
        p["database"]["properties"]["external"]["properties"]["key"]["default"],
        "uri"
    );
    fn check(path: &str, s: &serde_json::Value) {
        if let Some(props) = s.get("properties").and_then(|p| p.as_object()) {
            for (k, v) in props {
                let path = format!("{path}.{k}");
                assert!(v.get("description").is_some(), "{path} has no description");
                // k8s-openapi types document themselves
                if !["resources", "tolerations", "size", "sizeLimit"].contains(&k.as_str()) {
                    check(&path, v);
                }
            }
        }
        if let Some(items) = s.get("items") {
            check(path, items);
        }
    }
    check("spec", spec);
}

fn cel_rules(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(rules) = m.get("x-kubernetes-validations").and_then(|r| r.as_array()) {
                out.extend(
                    rules
                        .iter()
                        .filter_map(|r| r["rule"].as_str().map(String::from)),
                );
            }
            m.values().for_each(|x| cel_rules(x, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| cel_rules(x, out)),
        _ => {}
    }
}

#[test]
fn cel_rules_are_in_the_crd() {
    let mut rules = Vec::new();
    cel_rules(&serde_json::to_value(PhotoSite::crd()).unwrap(), &mut rules);
    for r in [
        "self.minReplicas <= self.maxReplicas",
        "!has(self.tls) || (has(self.host) && size(self.host) > 0)",
        "!self.alerts || self.serviceMonitor",
        "self.accessMode == oldSelf.accessMode",
    ] {
        assert!(rules.iter().any(|x| x == r), "missing rule {r}: {rules:?}");
    }
    assert!(rules.iter().any(|x| x.contains("self.metadata.name")));
    assert!(rules.iter().any(|x| x.contains("ReadWriteOncePod")));
    assert!(rules.iter().any(|x| x.contains("oldSelf.storageClassName")));
}

#[test]
fn cel_rules_accept_the_samples() {
    demo().validate_cel().unwrap();
    fakeflickr().validate_cel().unwrap();
}

#[test]
fn cel_rules_reject_bad_specs() {
    let bad = [
        with(fakeflickr(), |s| s.spec.autoscaling.min_replicas = 13),
        with(fakeflickr(), |s| {
            s.spec.ingress.as_mut().unwrap().host = None
        }),
        with(demo(), |s| s.spec.monitoring.alerts = true),
        with(demo(), |s| {
            s.spec.storage.originals.existing_claim = Some(String::new())
        }),
        with(demo(), |s| s.metadata.name = Some("a".repeat(41))),
        with(demo(), |s| s.metadata.name = Some("9lives".into())),
        // one pod at most can mount a ReadWriteOncePod claim
        with(demo(), |s| {
            s.spec.storage.originals.access_mode = AccessMode::ReadWriteOncePod
        }),
        with(fakeflickr(), |s| {
            s.spec.replicas = 1;
            s.spec.storage.originals.access_mode = AccessMode::ReadWriteOncePod;
        }),
    ];
    for s in bad {
        assert!(
            s.validate_cel().is_err(),
            "accepted {:?} {:?}",
            s.metadata.name,
            s.spec
        );
    }
}

#[test]
fn read_write_once_pod_is_fine_for_one_pod_or_an_existing_claim() {
    for ok in [
        with(demo(), |s| {
            s.spec.replicas = 1;
            s.spec.storage.originals.access_mode = AccessMode::ReadWriteOncePod;
        }),
        with(demo(), |s| {
            s.spec.storage.originals.access_mode = AccessMode::ReadWriteOncePod;
            s.spec.storage.originals.existing_claim = Some("mine".into());
        }),
    ] {
        assert!(ok.validate_cel().is_ok(), "{:?}", ok.validate_cel());
    }
}

#[test]
fn claim_class_and_access_mode_are_immutable() {
    let old = fakeflickr(); // storageClassName efs-sc, ReadWriteMany
    let refused = [
        with(fakeflickr(), |s| {
            s.spec.storage.originals.storage_class_name = Some("gp3".into())
        }),
        with(fakeflickr(), |s| {
            s.spec.storage.originals.storage_class_name = None
        }),
        with(fakeflickr(), |s| {
            s.spec.storage.originals.access_mode = AccessMode::ReadWriteOnce
        }),
    ];
    for new in refused {
        let err = new.validate_cel_update(&old);
        assert!(err.is_err(), "accepted {:?}", new.spec.storage.originals);
        assert!(format!("{err:?}").contains("immutable"), "{err:?}");
    }
    // what may change: the size, and a class set for the first time
    let grown = with(fakeflickr(), |s| {
        s.spec.storage.originals.size.0 = "200Gi".into()
    });
    assert!(grown.validate_cel_update(&old).is_ok());
    let first = with(demo(), |s| {
        s.spec.storage.originals.storage_class_name = Some("standard".into())
    });
    assert!(first.validate_cel_update(&demo()).is_ok());
    // a create is not a transition
    assert!(fakeflickr().validate_cel().is_ok());
}

fn backed_up() -> PhotoSite {
    with(fakeflickr(), |s| s.spec.backup = Some(backup_spec()))
}

fn restored() -> PhotoSite {
    with(demo(), |s| s.spec.restore = Some(restore_spec()))
}

#[test]
fn backup_and_restore_defaults_and_cel() {
    let b = backup_spec();
    assert_eq!(b.schedule, "0 3 * * *");
    assert_eq!(b.retention, "30d");
    assert_eq!(b.max_age, "26h");
    assert_eq!(b.object_store.path, "prod/site");
    for ok in [
        backed_up(),
        restored(),
        with(backed_up(), |s| {
            let b = s.spec.backup.as_mut().unwrap();
            b.schedule = "@weekly".into();
            b.retention = "6m".into();
            b.max_age = "8d".into();
        }),
        with(backed_up(), |s| {
            s.spec.backup.as_mut().unwrap().schedule = "30 2 * * MON-FRI".into()
        }),
        // restored into a new place, backing up to a path of its own
        with(restored(), |s| s.spec.backup = Some(backup_spec())),
    ] {
        assert!(ok.validate_cel().is_ok(), "{:?}", ok.validate_cel());
    }
    let bad = [
        (
            with(backed_up(), |s| {
                s.spec.backup.as_mut().unwrap().schedule = "daily".into()
            }),
            "backup.schedule",
        ),
        (
            with(backed_up(), |s| {
                s.spec.backup.as_mut().unwrap().schedule = "0 0 3 * * *".into()
            }),
            "backup.schedule",
        ),
        (
            with(backed_up(), |s| {
                s.spec.backup.as_mut().unwrap().retention = "30 days".into()
            }),
            "backup.retention",
        ),
        (
            with(backed_up(), |s| {
                s.spec.backup.as_mut().unwrap().max_age = "26".into()
            }),
            "backup.maxAge",
        ),
        (
            with(demo(), |s| {
                s.spec.backup = Some(backup_spec());
                s.spec.replicas = 1;
                s.spec.storage.originals.access_mode = AccessMode::ReadWriteOncePod;
            }),
            "ReadWriteOncePod",
        ),
        (
            with(restored(), |s| {
                let mut b = backup_spec();
                b.object_store = s.spec.restore.as_ref().unwrap().object_store.clone();
                s.spec.backup = Some(b);
            }),
            "never writes over the backup",
        ),
        (
            with(restored(), |s| {
                s.spec.restore.as_mut().unwrap().site_name = Some("Photos_Old".into())
            }),
            "restore.siteName",
        ),
    ];
    for (site, message) in bad {
        let err = format!("{:?}", site.validate_cel());
        assert!(err.contains(message), "{message}: {err}");
    }
    // the same bucket and path on another endpoint is another store
    let elsewhere = with(restored(), |s| {
        let mut b = backup_spec();
        b.object_store = s.spec.restore.as_ref().unwrap().object_store.clone();
        b.object_store.endpoint_url = Some("https://minio.example.com".into());
        s.spec.backup = Some(b);
    });
    assert!(
        elsewhere.validate_cel().is_ok(),
        "{:?}",
        elsewhere.validate_cel()
    );
}

#[test]
fn restore_is_set_at_creation_and_never_changes() {
    let old = restored();
    assert!(old.validate_cel_update(&old.clone()).is_ok());
    // other fields may change
    let scaled = with(restored(), |s| s.spec.replicas = 5);
    assert!(scaled.validate_cel_update(&old).is_ok());
    let refused = [
        // added to a running site: it would restore over live data
        (restored(), demo()),
        // removed, or pointed elsewhere
        (demo(), restored()),
        (
            with(restored(), |s| {
                s.spec.restore.as_mut().unwrap().target_time = Some("2026-03-01T12:00:00Z".into())
            }),
            restored(),
        ),
    ];
    for (new, old) in refused {
        let err = format!("{:?}", new.validate_cel_update(&old));
        assert!(
            err.contains("spec.restore is set when a PhotoSite is created"),
            "{err}"
        );
    }
}

#[test]
fn schema_patterns_refuse_bad_destinations() {
    let crd = serde_json::to_value(PhotoSite::crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let validator = jsonschema::validator_for(schema).unwrap();
    let as_json = |s: &PhotoSite| serde_json::to_value(s).unwrap();
    assert!(validator.is_valid(&as_json(&backed_up())));
    assert!(validator.is_valid(&as_json(&restored())));
    let ok_endpoint = with(backed_up(), |s| {
        s.spec.backup.as_mut().unwrap().object_store.endpoint_url =
            Some("http://minio.minio.svc:9000".into())
    });
    assert!(validator.is_valid(&as_json(&ok_endpoint)));
    let store = |f: fn(&mut ObjectStoreSpec)| {
        with(backed_up(), |s| {
            f(&mut s.spec.backup.as_mut().unwrap().object_store)
        })
    };
    for bad in [
        store(|o| o.bucket = "Photos".into()),
        store(|o| o.bucket = "ab".into()),
        store(|o| o.path = "/prod".into()),
        store(|o| o.path = "prod/".into()),
        store(|o| o.path = "a b".into()),
        store(|o| o.endpoint_url = Some("minio:9000".into())),
        store(|o| o.endpoint_url = Some("https://minio/path".into())),
        store(|o| o.region = Some("EU West".into())),
        store(|o| o.credentials_secret = Some(String::new())),
        with(restored(), |s| {
            s.spec.restore.as_mut().unwrap().target_time = Some("2026-03-01 12:00".into())
        }),
    ] {
        assert!(!validator.is_valid(&as_json(&bad)), "{:?}", bad.spec);
    }
}

#[test]
fn new_fields_have_defaults_and_formats_in_the_schema() {
    let crd = serde_json::to_value(PhotoSite::crd()).unwrap();
    let p = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    let uploads = &p["uploads"]["properties"];
    assert_eq!(uploads["maxRequestSize"]["default"], "200Mi");
    assert_eq!(uploads["maxFileSize"]["default"], "50Mi");
    let cidrs = &p["networkPolicy"]["properties"]["ingressCIDRs"];
    assert_eq!(cidrs["type"], "array");
    assert!(cidrs["items"]["pattern"].is_string());
    assert_eq!(cidrs["maxItems"], 32);
    let labels = &p["monitoring"]["properties"]["labels"];
    assert_eq!(labels["additionalProperties"]["type"], "string");
    let ext = &p["database"]["properties"]["external"]["properties"];
    let modes: Vec<&str> = ext["sslMode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(
        modes,
        [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full"
        ]
    );
    assert_eq!(ext["caSecret"]["properties"]["key"]["default"], "ca.crt");
}

#[test]
fn contract_samples_deserialize_with_defaults() {
    let d = demo();
    assert_eq!(d.spec.replicas, 2);
    assert_eq!(d.spec.renditions, vec![240, 640, 1440, 2048]);
    assert_eq!(d.spec.data_policy, DataPolicy::Retain);
    assert!(!d.spec.autoscaling.enabled);
    assert!(d.spec.ingress.is_none());
    let f = fakeflickr();
    assert_eq!(f.spec.autoscaling.max_replicas, 12);
    assert_eq!(
        f.spec.storage.originals.storage_class_name.as_deref(),
        Some("efs-sc")
    );
    assert_eq!(f.spec.database.instances, 3);
    let tls = f.spec.ingress.unwrap().tls.unwrap();
    assert_eq!(tls.issuer_ref.unwrap().kind, IssuerKind::ClusterIssuer);
}
