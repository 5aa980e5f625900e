//! Test sites and helpers shared by the unit tests.

use crate::children::{Apis, Credentials, Desired, Inputs, desired};
use crate::crd::PhotoSite;
use crate::site::{ValidatedSite, validate};

/// Build inputs with credentials already generated and every optional API present.
pub fn inputs() -> Inputs {
    Inputs {
        credentials: Some(Credentials {
            session_key: "k".into(),
            admin_password: "p".into(),
        }),
        apis: Apis::ALL,
        external_database: None,
        originals_restored: None,
    }
}

/// Backups to `s3://backups/prod/<site>` with the Secret `backup-s3`.
pub fn backup_spec() -> crate::crd::BackupSpec {
    serde_yaml::from_str(
        "objectStore: {bucket: backups, path: prod/site, credentialsSecret: backup-s3}",
    )
    .expect("backup spec")
}

/// A site backing up to `s3://backups/prod/site` with no static key: an IAM role through
/// IRSA's annotation on its ServiceAccounts.
pub fn iam_role_site() -> PhotoSite {
    with(demo(), |s| {
        let mut b = backup_spec();
        b.object_store.credentials_secret = None;
        s.spec.backup = Some(b);
        s.spec.service_account = Some(crate::crd::ServiceAccountSpec {
            annotations: std::collections::BTreeMap::from([(
                "eks.amazonaws.com/role-arn".to_string(),
                "arn:aws:iam::111122223333:role/photos-backup".to_string(),
            )]),
        });
    })
}

/// A restore from `s3://backups/prod/old` with the Secret `restore-s3`.
pub fn restore_spec() -> crate::crd::RestoreSpec {
    serde_yaml::from_str(
        "objectStore: {bucket: backups, path: prod/old, credentialsSecret: restore-s3}",
    )
    .expect("restore spec")
}

/// The validated view of a test PhotoSite (panics if it is invalid).
pub fn valid(s: &PhotoSite) -> ValidatedSite<'_> {
    validate(s).expect("valid PhotoSite")
}

/// Every child of a test PhotoSite.
pub fn build_all(s: &PhotoSite, inputs: &Inputs) -> Desired {
    desired(&valid(s), inputs)
}

pub const DEMO: &str = "apiVersion: photostack.io/v1alpha1
kind: PhotoSite
metadata: {name: demo, namespace: photos, uid: 11111111-2222-3333-4444-555555555555, generation: 1}
spec:
  image: ghcr.io/photostack/photo-server:0.1.0
";

pub const FAKEFLICKR: &str = "apiVersion: photostack.io/v1alpha1
kind: PhotoSite
metadata: {name: fakeflickr, namespace: photos, uid: 66666666-2222-3333-4444-555555555555, generation: 1}
spec:
  image: ghcr.io/photostack/photo-server:0.1.0
  replicas: 3
  autoscaling: {enabled: true, minReplicas: 3, maxReplicas: 12, targetCPUUtilizationPercentage: 70}
  renditions: [240, 640, 1440, 2048]
  storage:
    originals: {size: 100Gi, storageClassName: efs-sc}
    cache: {sizeLimit: 4Gi}
  database:
    instances: 3
    storage: {size: 20Gi}
  ingress:
    host: photos.example.com
    className: nginx
    tls: {issuerRef: {kind: ClusterIssuer, name: letsencrypt}}
  monitoring: {serviceMonitor: true, alerts: true}
  dataPolicy: Retain
";

pub fn site(yaml: &str) -> PhotoSite {
    serde_yaml::from_str(yaml).expect("valid PhotoSite")
}

pub fn demo() -> PhotoSite {
    site(DEMO)
}

pub fn fakeflickr() -> PhotoSite {
    site(FAKEFLICKR)
}

pub fn with<F: FnOnce(&mut PhotoSite)>(mut s: PhotoSite, f: F) -> PhotoSite {
    f(&mut s);
    s
}

/// An external database from the Secret `name`, key `uri`.
pub fn external(name: &str) -> crate::crd::ExternalDatabaseSpec {
    crate::crd::ExternalDatabaseSpec {
        secret_name: name.into(),
        key: "uri".into(),
        ssl_mode: None,
        ca_secret: None,
    }
}

/// A built object as JSON, as it is applied.
pub fn json<T: serde::Serialize>(object: &T) -> serde_json::Value {
    serde_json::to_value(object).expect("serialisable object")
}

/// A desired child as JSON, as it is applied.
pub trait ChildJson {
    fn json(&self) -> serde_json::Value;
}

impl ChildJson for crate::children::Child {
    fn json(&self) -> serde_json::Value {
        self.to_json().expect("serialisable child")
    }
}

/// A time a restore succeeded at, for sites whose originals are restored.
pub fn restored_at() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-01-10T04:00:00Z".parse().expect("a timestamp"),
    )
}

/// `spec.gateway`: an HTTPRoute for `photos.example.com` on the Gateway `gateways/public`.
pub fn gateway_spec() -> crate::crd::GatewaySpec {
    crate::crd::GatewaySpec {
        parent_refs: vec![crate::crd::GatewayParentRef {
            name: "public".into(),
            namespace: Some("gateways".into()),
            section_name: None,
        }],
        hostnames: vec!["photos.example.com".into()],
    }
}
