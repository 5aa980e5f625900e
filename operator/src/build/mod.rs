//! Pure builders: PhotoSite (+ what the controller read from the cluster) -> desired children.
//!
//! Nothing here touches the API, so the controller, `photo-operator render`, the tests and the
//! benchmark share one code path, and most tests need no mock server. One module per child
//! kind; [`desired`] assembles them in apply order.
//!
//! Apply order (see [`Kind::ALL`]): identity and configuration first (ServiceAccount,
//! ConfigMap, Secret), then data (originals claim, database), then networking and safety
//! (Service, PDB, NetworkPolicy), then the Deployment, so its pods start with everything they
//! mount already present; the HPA, Ingress and monitoring objects last, because they point at
//! things that must exist.

pub mod config_map;
pub mod database;
pub mod deployment;
pub mod hpa;
pub mod ingress;
pub mod monitoring;
pub mod network_policy;
pub mod pdb;
pub mod pvc;
pub mod quantity;
pub mod secret;
pub mod service;
pub mod service_account;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use kube::core::{ApiResource, GroupVersionKind};
use serde::Serialize;
use serde_json::Value;

use crate::crd::{DataPolicy, PhotoSite, PhotoSiteSpec};
use crate::{Error, labels};

/// Every kind of child, in apply order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    ServiceAccount,
    ConfigMap,
    Secret,
    PersistentVolumeClaim,
    DatabaseCluster,
    Service,
    PodDisruptionBudget,
    NetworkPolicy,
    Deployment,
    HorizontalPodAutoscaler,
    Ingress,
    ServiceMonitor,
    PrometheusRule,
}

impl Kind {
    /// All kinds in apply order.
    pub const ALL: [Kind; 13] = [
        Kind::ServiceAccount,
        Kind::ConfigMap,
        Kind::Secret,
        Kind::PersistentVolumeClaim,
        Kind::DatabaseCluster,
        Kind::Service,
        Kind::PodDisruptionBudget,
        Kind::NetworkPolicy,
        Kind::Deployment,
        Kind::HorizontalPodAutoscaler,
        Kind::Ingress,
        Kind::ServiceMonitor,
        Kind::PrometheusRule,
    ];

    /// (group, version, kind, plural)
    fn gvkp(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Kind::ServiceAccount => ("", "v1", "ServiceAccount", "serviceaccounts"),
            Kind::ConfigMap => ("", "v1", "ConfigMap", "configmaps"),
            Kind::Secret => ("", "v1", "Secret", "secrets"),
            Kind::PersistentVolumeClaim => {
                ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims")
            }
            Kind::DatabaseCluster => ("postgresql.cnpg.io", "v1", "Cluster", "clusters"),
            Kind::Service => ("", "v1", "Service", "services"),
            Kind::PodDisruptionBudget => (
                "policy",
                "v1",
                "PodDisruptionBudget",
                "poddisruptionbudgets",
            ),
            Kind::NetworkPolicy => (
                "networking.k8s.io",
                "v1",
                "NetworkPolicy",
                "networkpolicies",
            ),
            Kind::Deployment => ("apps", "v1", "Deployment", "deployments"),
            Kind::HorizontalPodAutoscaler => (
                "autoscaling",
                "v2",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
            ),
            Kind::Ingress => ("networking.k8s.io", "v1", "Ingress", "ingresses"),
            Kind::ServiceMonitor => (
                "monitoring.coreos.com",
                "v1",
                "ServiceMonitor",
                "servicemonitors",
            ),
            Kind::PrometheusRule => (
                "monitoring.coreos.com",
                "v1",
                "PrometheusRule",
                "prometheusrules",
            ),
        }
    }

    /// The API resource, for dynamic (kind-generic) apply, list and delete.
    pub fn api_resource(self) -> ApiResource {
        let (g, v, k, p) = self.gvkp();
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), p)
    }

    /// `Kind` as in the object's `kind` field.
    pub fn kind_name(self) -> &'static str {
        self.gvkp().2
    }

    /// Kinds whose CRDs belong to the Prometheus Operator.
    pub fn is_monitoring(self) -> bool {
        matches!(self, Kind::ServiceMonitor | Kind::PrometheusRule)
    }
}

/// One desired child: its kind, name and the full object to server-side apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Child {
    pub kind: Kind,
    pub name: String,
    pub object: Value,
}

/// Secret values generated once per site and then read back from the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub session_key: String,
    pub admin_password: String,
}

/// What the builders need besides the PhotoSite: facts the controller read from the cluster.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// Values of the credentials Secret; `None` leaves the Secret out (render).
    pub credentials: Option<Credentials>,
    /// Whether the Prometheus Operator CRDs are installed.
    pub prometheus_available: bool,
}

/// Everything one PhotoSite should consist of, in apply order.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    pub children: Vec<Child>,
}

impl Desired {
    pub fn get(&self, kind: Kind) -> Option<&Child> {
        self.children.iter().find(|c| c.kind == kind)
    }
    pub fn contains(&self, kind: Kind, name: &str) -> bool {
        self.children
            .iter()
            .any(|c| c.kind == kind && c.name == name)
    }
}

/// A validated view of a PhotoSite that builders work from.
pub struct Site<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub spec: &'a PhotoSiteSpec,
    /// Controller owner reference to the PhotoSite; `None` when it has no uid (render).
    pub owner: Option<OwnerReference>,
}

impl<'a> Site<'a> {
    pub fn new(site: &'a PhotoSite) -> Result<Self, Error> {
        let name = site
            .metadata
            .name
            .as_deref()
            .ok_or_else(|| Error::InvalidSpec("PhotoSite has no name".into()))?;
        let namespace = site
            .metadata
            .namespace
            .as_deref()
            .ok_or_else(|| Error::InvalidSpec("PhotoSite has no namespace".into()))?;
        // None for a PhotoSite that has no uid yet (render of a file): no owner reference then.
        let owner = site.controller_owner_ref(&());
        Ok(Site {
            name,
            namespace,
            spec: &site.spec,
            owner,
        })
    }

    /// Metadata of a child: name, namespace, labels and the controller owner reference.
    pub fn meta(&self, name: String, component: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.into()),
            labels: Some(labels::common(self.name, component)),
            owner_references: self.owner.clone().map(|o| vec![o]),
            ..ObjectMeta::default()
        }
    }

    /// Metadata of a data child (originals claim, database): owned only under
    /// `dataPolicy: Delete`, so the garbage collector keeps it under `Retain`.
    pub fn data_meta(&self, name: String, component: &str) -> ObjectMeta {
        let mut meta = self.meta(name, component);
        if self.spec.data_policy == DataPolicy::Retain {
            meta.owner_references = None;
            meta.annotations = Some(BTreeMap::from([(
                "photostack.io/data-policy".to_string(),
                "Retain".to_string(),
            )]));
        }
        meta
    }
}

fn child<T: Serialize>(kind: Kind, name: String, object: &T) -> Result<Child, Error> {
    Ok(Child {
        kind,
        name,
        object: serde_json::to_value(object)?,
    })
}

/// Validate a PhotoSite beyond what the CRD schema enforces (the operator must not trust that
/// the CRD installed in the cluster is the current one).
pub fn validate(site: &PhotoSite) -> Result<(), Error> {
    let s = Site::new(site)?;
    if !crate::names::is_dns_label(s.name) || s.name.len() > crate::names::MAX_SITE_NAME {
        return Err(Error::InvalidSpec(format!(
            "name {:?} must be a DNS label of at most {} characters",
            s.name,
            crate::names::MAX_SITE_NAME
        )));
    }
    let spec = s.spec;
    if spec.image.trim().is_empty() {
        return Err(Error::InvalidSpec("spec.image must not be empty".into()));
    }
    if spec.replicas < 0 {
        return Err(Error::InvalidSpec(
            "spec.replicas must not be negative".into(),
        ));
    }
    let a = &spec.autoscaling;
    if a.min_replicas < 1 || a.min_replicas > a.max_replicas {
        return Err(Error::InvalidSpec(
            "autoscaling.minReplicas must be between 1 and autoscaling.maxReplicas".into(),
        ));
    }
    if spec.renditions.is_empty() {
        return Err(Error::InvalidSpec(
            "spec.renditions must not be empty".into(),
        ));
    }
    quantity::parse_bytes(&spec.storage.cache.size_limit.0)
        .map_err(|e| Error::InvalidSpec(format!("storage.cache.sizeLimit: {e}")))?;
    quantity::parse_bytes(&spec.storage.originals.size.0)
        .map_err(|e| Error::InvalidSpec(format!("storage.originals.size: {e}")))?;
    quantity::parse_bytes(&spec.database.storage.size.0)
        .map_err(|e| Error::InvalidSpec(format!("database.storage.size: {e}")))?;
    if let Some(ing) = &spec.ingress
        && ing.tls.is_some()
        && ing.host.as_deref().unwrap_or("").is_empty()
    {
        return Err(Error::InvalidSpec("ingress.tls needs ingress.host".into()));
    }
    if spec.monitoring.alerts && !spec.monitoring.service_monitor {
        return Err(Error::InvalidSpec(
            "monitoring.alerts needs monitoring.serviceMonitor".into(),
        ));
    }
    Ok(())
}

/// Build every desired child of a PhotoSite, in apply order.
pub fn desired(site: &PhotoSite, inputs: &Inputs) -> Result<Desired, Error> {
    validate(site)?;
    let s = Site::new(site)?;
    let spec = s.spec;
    let mut children = Vec::with_capacity(13);

    let sa = service_account::build(&s);
    children.push(child(Kind::ServiceAccount, crate::names::app(s.name), &sa)?);
    let cm = config_map::build(&s)?;
    let config_hash = config_map::hash(&cm);
    children.push(child(
        Kind::ConfigMap,
        crate::names::config_map(s.name),
        &cm,
    )?);
    if let Some(creds) = &inputs.credentials {
        let secret = secret::build(&s, creds);
        children.push(child(
            Kind::Secret,
            crate::names::credentials_secret(s.name),
            &secret,
        )?);
    }
    if spec.storage.originals.existing_claim.is_none() {
        let pvc = pvc::build(&s);
        children.push(child(
            Kind::PersistentVolumeClaim,
            crate::names::originals_claim(s.name),
            &pvc,
        )?);
    }
    if spec.database.external.is_none() {
        children.push(Child {
            kind: Kind::DatabaseCluster,
            name: crate::names::database_cluster(s.name),
            object: database::build(&s),
        });
    }
    children.push(child(
        Kind::Service,
        crate::names::app(s.name),
        &service::build(&s),
    )?);
    children.push(child(
        Kind::PodDisruptionBudget,
        crate::names::app(s.name),
        &pdb::build(&s),
    )?);
    children.push(child(
        Kind::NetworkPolicy,
        crate::names::app(s.name),
        &network_policy::build(&s),
    )?);
    children.push(child(
        Kind::Deployment,
        crate::names::app(s.name),
        &deployment::build(&s, &config_hash)?,
    )?);
    if spec.autoscaling.enabled {
        children.push(child(
            Kind::HorizontalPodAutoscaler,
            crate::names::app(s.name),
            &hpa::build(&s),
        )?);
    }
    if let Some(ing) = ingress::build(&s) {
        children.push(child(Kind::Ingress, crate::names::app(s.name), &ing)?);
    }
    if inputs.prometheus_available {
        if spec.monitoring.service_monitor {
            children.push(Child {
                kind: Kind::ServiceMonitor,
                name: crate::names::app(s.name),
                object: monitoring::service_monitor(&s),
            });
        }
        if spec.monitoring.alerts {
            children.push(Child {
                kind: Kind::PrometheusRule,
                name: crate::names::app(s.name),
                object: monitoring::prometheus_rule(&s),
            });
        }
    }
    Ok(Desired { children })
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::{Credentials, Inputs};
    use crate::crd::PhotoSite;

    /// Build inputs with credentials already generated and the Prometheus CRDs present.
    pub fn inputs() -> Inputs {
        Inputs {
            credentials: Some(Credentials {
                session_key: "k".into(),
                admin_password: "p".into(),
            }),
            prometheus_available: true,
        }
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
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn demo_children_in_apply_order() {
        let d = desired(&demo(), &inputs()).unwrap();
        let kinds: Vec<Kind> = d.children.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            vec![
                Kind::ServiceAccount,
                Kind::ConfigMap,
                Kind::Secret,
                Kind::PersistentVolumeClaim,
                Kind::DatabaseCluster,
                Kind::Service,
                Kind::PodDisruptionBudget,
                Kind::NetworkPolicy,
                Kind::Deployment,
            ]
        );
    }

    #[test]
    fn fakeflickr_has_every_child() {
        let d = desired(&fakeflickr(), &inputs()).unwrap();
        assert_eq!(d.children.len(), 13);
        let mut sorted = d.children.iter().map(|c| c.kind).collect::<Vec<_>>();
        sorted.sort();
        assert_eq!(sorted, Kind::ALL.to_vec());
    }

    #[test]
    fn monitoring_skipped_without_prometheus_crds() {
        let mut i = inputs();
        i.prometheus_available = false;
        let d = desired(&fakeflickr(), &i).unwrap();
        assert!(d.get(Kind::ServiceMonitor).is_none());
        assert!(d.get(Kind::PrometheusRule).is_none());
    }

    #[test]
    fn every_child_has_labels_owner_and_valid_name() {
        for s in [demo(), fakeflickr()] {
            let d = desired(&s, &inputs()).unwrap();
            for c in &d.children {
                let m = &c.object["metadata"];
                assert_eq!(m["name"], c.name.as_str());
                assert_eq!(m["namespace"], "photos");
                assert!(crate::names::is_dns_label(&c.name));
                assert_eq!(
                    m["labels"][labels::SITE],
                    s.metadata.name.as_deref().unwrap()
                );
                assert_eq!(m["labels"][labels::MANAGED_BY], labels::MANAGER);
                assert_eq!(c.object["kind"], c.kind.kind_name());
                let retained =
                    matches!(c.kind, Kind::PersistentVolumeClaim | Kind::DatabaseCluster);
                let owners = m["ownerReferences"].as_array();
                if retained {
                    assert!(
                        owners.is_none(),
                        "{:?} must not be owned under Retain",
                        c.kind
                    );
                } else {
                    let o = &owners.expect("owner references")[0];
                    assert_eq!(o["kind"], "PhotoSite");
                    assert_eq!(o["controller"], true);
                    assert_eq!(o["uid"], s.metadata.uid.as_deref().unwrap());
                }
            }
        }
    }

    #[test]
    fn data_is_owned_under_delete() {
        let s = with(demo(), |s| s.spec.data_policy = DataPolicy::Delete);
        let d = desired(&s, &inputs()).unwrap();
        for k in [Kind::PersistentVolumeClaim, Kind::DatabaseCluster] {
            let o = &d.get(k).unwrap().object["metadata"]["ownerReferences"][0];
            assert_eq!(o["name"], "demo");
        }
    }

    #[test]
    fn external_database_and_existing_claim_skip_children() {
        let s = with(demo(), |s| {
            s.spec.storage.originals.existing_claim = Some("mine".into());
            s.spec.database.external = Some(crate::crd::ExternalDatabaseSpec {
                secret_name: "rds".into(),
                key: "uri".into(),
            });
        });
        let d = desired(&s, &inputs()).unwrap();
        assert!(d.get(Kind::PersistentVolumeClaim).is_none());
        assert!(d.get(Kind::DatabaseCluster).is_none());
    }

    #[test]
    fn validation_rejects_bad_specs() {
        let bad = [
            with(demo(), |s| s.spec.autoscaling.min_replicas = 20),
            with(demo(), |s| s.spec.image = " ".into()),
            with(demo(), |s| {
                s.spec.storage.cache.size_limit.0 = "lots".into()
            }),
            with(demo(), |s| s.spec.monitoring.alerts = true),
            with(demo(), |s| s.metadata.name = Some("x".repeat(41))),
            with(fakeflickr(), |s| {
                if let Some(i) = s.spec.ingress.as_mut() {
                    i.host = None
                }
            }),
        ];
        for s in bad {
            assert!(
                matches!(validate(&s), Err(Error::InvalidSpec(_))),
                "{:?}",
                s.spec
            );
        }
        assert!(validate(&demo()).is_ok());
        assert!(validate(&fakeflickr()).is_ok());
    }
}
