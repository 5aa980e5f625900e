//! Stage 5, build: a [`ValidatedSite`] (+ what the controller read from the cluster,
//! [`Inputs`]) -> the desired children ([`Desired`]).
//!
//! Pure: nothing here touches the API, so the controller, `photo-operator render`, the tests
//! and the benchmark share one code path, and most tests need no mock server. The builders
//! accept only a [`ValidatedSite`] ([`crate::site`]). One module per child kind; [`kind`] is
//! the registry of kinds; [`desired`] assembles the children in apply order.
//!
//! Apply order (see [`Kind::ALL`]): identity and configuration first (ServiceAccount,
//! ConfigMap, Secret), then data (originals claim, the Barman Cloud ObjectStores the database
//! refers to, the database, its ScheduledBackup), then networking and safety (Services, PDB,
//! NetworkPolicies), then the restore Job and the Deployment, so its pods start with
//! everything they mount already present; the backup CronJob, HPA, Ingress and monitoring
//! objects last, because they point at things that must exist.
//!
//! Restore ordering: a site with `spec.restore` gets its restore Job and no Deployment (nor
//! backup CronJob, nor autoscaler with no pods to measure) until
//! [`Inputs::originals_restored`] says the Job has succeeded; the controller reads that from
//! the live Job and keeps it in `status.restore`.

mod alert_rule;
pub mod backup;
pub mod config_map;
pub mod crd_types;
pub mod database;
pub mod deployment;
pub mod hpa;
pub mod http_route;
pub mod ingress;
pub mod inputs;
pub mod kind;
pub mod monitoring;
pub mod network_policy;
pub mod object_store;
pub mod pdb;
pub mod pvc;
pub mod secret;
pub mod service;
pub mod service_account;
mod slo_alerts;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::Value;

use crate::names;
use crate::site::ValidatedSite;
pub use inputs::{Credentials, ExternalDatabase, Inputs};
pub use kind::{Apis, Kind, OptionalApi, possible_children};

/// One desired child: its kind, name and the typed object to server-side apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Child {
    /// The kind of [`Child::object`] (kept with it by [`Child::new`]).
    pub kind: Kind,
    pub name: String,
    pub object: ChildObject,
}

impl Child {
    pub fn new(name: String, object: ChildObject) -> Child {
        Child {
            kind: object.kind(),
            name,
            object,
        }
    }

    /// The object as JSON, as it is server-side applied (the only place it is serialised).
    pub fn to_json(&self) -> Result<Value, serde_json::Error> {
        self.object.to_json()
    }
}

/// A desired object, typed: k8s-openapi types for the built-in kinds, [`crd_types`] for the
/// others. One variant per [`Kind`].
// A site has about twenty children, built once per reconcile and serialised at once: their
// size on the stack does not matter, boxing each would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum ChildObject {
    ServiceAccount(ServiceAccount),
    ConfigMap(ConfigMap),
    Secret(Secret),
    PersistentVolumeClaim(PersistentVolumeClaim),
    ObjectStore(crd_types::ObjectStore),
    DatabaseCluster(crd_types::Cluster),
    ScheduledBackup(crd_types::ScheduledBackup),
    Service(Service),
    PodDisruptionBudget(PodDisruptionBudget),
    NetworkPolicy(NetworkPolicy),
    Job(Job),
    Deployment(Deployment),
    CronJob(CronJob),
    HorizontalPodAutoscaler(HorizontalPodAutoscaler),
    Ingress(Ingress),
    HttpRoute(crd_types::HttpRoute),
    ServiceMonitor(crd_types::ServiceMonitor),
    PodMonitor(crd_types::PodMonitor),
    PrometheusRule(crd_types::PrometheusRule),
}

impl ChildObject {
    pub fn kind(&self) -> Kind {
        match self {
            ChildObject::ServiceAccount(_) => Kind::ServiceAccount,
            ChildObject::ConfigMap(_) => Kind::ConfigMap,
            ChildObject::Secret(_) => Kind::Secret,
            ChildObject::PersistentVolumeClaim(_) => Kind::PersistentVolumeClaim,
            ChildObject::ObjectStore(_) => Kind::ObjectStore,
            ChildObject::DatabaseCluster(_) => Kind::DatabaseCluster,
            ChildObject::ScheduledBackup(_) => Kind::ScheduledBackup,
            ChildObject::Service(_) => Kind::Service,
            ChildObject::PodDisruptionBudget(_) => Kind::PodDisruptionBudget,
            ChildObject::NetworkPolicy(_) => Kind::NetworkPolicy,
            ChildObject::Job(_) => Kind::Job,
            ChildObject::Deployment(_) => Kind::Deployment,
            ChildObject::CronJob(_) => Kind::CronJob,
            ChildObject::HorizontalPodAutoscaler(_) => Kind::HorizontalPodAutoscaler,
            ChildObject::Ingress(_) => Kind::Ingress,
            ChildObject::HttpRoute(_) => Kind::HttpRoute,
            ChildObject::ServiceMonitor(_) => Kind::ServiceMonitor,
            ChildObject::PodMonitor(_) => Kind::PodMonitor,
            ChildObject::PrometheusRule(_) => Kind::PrometheusRule,
        }
    }

    /// The object as JSON (object keys sorted: the applied-hash annotation and `render` depend
    /// on that order).
    pub fn to_json(&self) -> Result<Value, serde_json::Error> {
        match self {
            ChildObject::ServiceAccount(o) => serde_json::to_value(o),
            ChildObject::ConfigMap(o) => serde_json::to_value(o),
            ChildObject::Secret(o) => serde_json::to_value(o),
            ChildObject::PersistentVolumeClaim(o) => serde_json::to_value(o),
            ChildObject::ObjectStore(o) => serde_json::to_value(o),
            ChildObject::DatabaseCluster(o) => serde_json::to_value(o),
            ChildObject::ScheduledBackup(o) => serde_json::to_value(o),
            ChildObject::Service(o) => serde_json::to_value(o),
            ChildObject::PodDisruptionBudget(o) => serde_json::to_value(o),
            ChildObject::NetworkPolicy(o) => serde_json::to_value(o),
            ChildObject::Job(o) => serde_json::to_value(o),
            ChildObject::Deployment(o) => serde_json::to_value(o),
            ChildObject::CronJob(o) => serde_json::to_value(o),
            ChildObject::HorizontalPodAutoscaler(o) => serde_json::to_value(o),
            ChildObject::Ingress(o) => serde_json::to_value(o),
            ChildObject::HttpRoute(o) => serde_json::to_value(o),
            ChildObject::ServiceMonitor(o) => serde_json::to_value(o),
            ChildObject::PodMonitor(o) => serde_json::to_value(o),
            ChildObject::PrometheusRule(o) => serde_json::to_value(o),
        }
    }
}

/// Everything one PhotoSite should consist of, in apply order.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    pub children: Vec<Child>,
    /// Optional APIs the spec needs that the cluster lacks: their children are left out.
    pub missing: Vec<OptionalApi>,
}

impl Desired {
    /// The first child of a kind.
    pub fn get(&self, kind: Kind) -> Option<&Child> {
        self.children.iter().find(|c| c.kind == kind)
    }
    /// The child of a kind and name.
    pub fn get_named(&self, kind: Kind, name: &str) -> Option<&Child> {
        self.children
            .iter()
            .find(|c| c.kind == kind && c.name == name)
    }
    pub fn contains(&self, kind: Kind, name: &str) -> bool {
        self.get_named(kind, name).is_some()
    }
}

/// The optional APIs a site needs that the cluster lacks, in the order they are reported.
fn missing_apis(site: &ValidatedSite, apis: Apis) -> Vec<OptionalApi> {
    let mut missing = Vec::new();
    if site.cloudnative_pg_database() {
        if !apis.cloudnative_pg {
            missing.push(OptionalApi::CloudNativePg);
        }
        if wants_plugin(site) && !apis.barman_cloud {
            missing.push(OptionalApi::BarmanCloud);
        }
    }
    if site.spec.gateway.is_some() && !apis.gateway {
        missing.push(OptionalApi::GatewayApi);
    }
    let m = &site.spec.monitoring;
    if (m.service_monitor || m.alerts) && !apis.prometheus {
        missing.push(OptionalApi::PrometheusOperator);
    }
    missing
}

/// Whether the site's database backups or restore need the Barman Cloud plugin.
fn wants_plugin(site: &ValidatedSite) -> bool {
    site.cloudnative_pg_database() && (site.backup.is_some() || site.restore.is_some())
}

/// Build every desired child of a validated PhotoSite, in apply order: the children of each
/// kind of [`Kind::ALL`] in turn (`build_kind`, an exhaustive match over the kinds).
pub fn desired(site: &ValidatedSite, inputs: &Inputs) -> Desired {
    let ctx = BuildContext::new(site, inputs);
    let mut children = Vec::with_capacity(Kind::ALL.len() + 1);
    for kind in Kind::ALL {
        for (name, object) in build_kind(kind, &ctx) {
            debug_assert_eq!(object.kind(), kind);
            children.push(Child::new(name, object));
        }
    }
    Desired {
        children,
        missing: missing_apis(site, inputs.apis),
    }
}

/// What [`build_kind`] decides with, computed once per site.
struct BuildContext<'a> {
    site: &'a ValidatedSite<'a>,
    inputs: &'a Inputs,
    config_map: ConfigMap,
    /// The database's backups or restore go through the Barman Cloud plugin (wanted and
    /// installed): without it a backed-up cluster runs unarchived, and a restored one is held
    /// back (it would start empty).
    plugin: bool,
    /// The site has a CloudNativePG database and CloudNativePG is installed.
    cloudnative_pg: bool,
    /// The restore of `spec.restore` still has to run before the servers start.
    restoring: bool,
}

impl<'a> BuildContext<'a> {
    fn new(site: &'a ValidatedSite<'a>, inputs: &'a Inputs) -> Self {
        BuildContext {
            site,
            inputs,
            config_map: config_map::build(site),
            plugin: wants_plugin(site) && inputs.apis.barman_cloud,
            cloudnative_pg: site.cloudnative_pg_database() && inputs.apis.cloudnative_pg,
            restoring: site.restore.is_some() && inputs.originals_restored.is_none(),
        }
    }

    /// Whether the CloudNativePG Cluster is built (a restored one only with the plugin).
    fn database(&self) -> bool {
        self.cloudnative_pg && (self.site.restore.is_none() || self.plugin)
    }
}

/// The children of one kind (name and object). The match is exhaustive: a new [`Kind`] does
/// not compile until it has a builder here and a [`ChildObject`] variant.
fn build_kind(kind: Kind, ctx: &BuildContext) -> Vec<(String, ChildObject)> {
    let site = ctx.site;
    let inputs = ctx.inputs;
    let name = site.name;
    let monitoring = &site.spec.monitoring;
    let mut out = Vec::new();
    match kind {
        Kind::ServiceAccount => out.push((
            names::app(name),
            ChildObject::ServiceAccount(service_account::build(site)),
        )),
        Kind::ConfigMap => out.push((
            names::config_map(name),
            ChildObject::ConfigMap(ctx.config_map.clone()),
        )),
        Kind::Secret => {
            if let Some(creds) = &inputs.credentials {
                out.push((
                    names::credentials_secret(name),
                    ChildObject::Secret(secret::build(site, creds)),
                ));
            }
        }
        Kind::PersistentVolumeClaim => {
            if site.owns_originals_claim() {
                out.push((
                    names::originals_claim(name),
                    ChildObject::PersistentVolumeClaim(pvc::build(
                        site,
                        inputs
                            .originals_restored
                            .as_ref()
                            .filter(|_| site.restore.is_some()),
                    )),
                ));
            }
        }
        Kind::ObjectStore => {
            if ctx.plugin {
                if let Some(b) = &site.backup {
                    let n = names::backup(name);
                    let o = object_store::object_store(
                        site,
                        n.clone(),
                        &b.store,
                        Some(&b.spec.retention),
                    );
                    out.push((n, ChildObject::ObjectStore(o)));
                }
                if let Some(r) = &site.restore {
                    let n = names::restore(name);
                    let o = object_store::object_store(site, n.clone(), &r.store, None);
                    out.push((n, ChildObject::ObjectStore(o)));
                }
            }
        }
        Kind::DatabaseCluster => {
            if ctx.database() {
                out.push((
                    names::database_cluster(name),
                    ChildObject::DatabaseCluster(database::build(site, ctx.plugin)),
                ));
            }
        }
        Kind::ScheduledBackup => {
            if let (true, true, Some(b)) = (ctx.database(), ctx.plugin, &site.backup) {
                out.push((
                    names::backup(name),
                    ChildObject::ScheduledBackup(object_store::scheduled_backup(
                        site,
                        &b.database_schedule,
                    )),
                ));
            }
        }
        Kind::Service => {
            out.push((names::app(name), ChildObject::Service(service::build(site))));
            out.push((
                names::metrics_service(name),
                ChildObject::Service(service::metrics(site)),
            ));
        }
        Kind::PodDisruptionBudget => out.push((
            names::app(name),
            ChildObject::PodDisruptionBudget(pdb::build(site)),
        )),
        Kind::NetworkPolicy => {
            let external = inputs.external_database.as_ref();
            out.push((
                names::app(name),
                ChildObject::NetworkPolicy(network_policy::build(site, external)),
            ));
            if let Some(np) = network_policy::jobs(site, external) {
                out.push((
                    names::jobs_network_policy(name),
                    ChildObject::NetworkPolicy(np),
                ));
            }
        }
        Kind::Job => {
            if let (true, Some(r)) = (ctx.restoring, &site.restore) {
                out.push((
                    names::restore(name),
                    ChildObject::Job(backup::restore_job(site, &r.store)),
                ));
            }
        }
        Kind::Deployment => {
            if !ctx.restoring {
                let hash = config_map::hash(&ctx.config_map);
                out.push((
                    names::app(name),
                    ChildObject::Deployment(deployment::build(site, &hash, inputs)),
                ));
            }
        }
        Kind::CronJob => {
            if let (false, Some(b)) = (ctx.restoring, &site.backup) {
                out.push((
                    names::backup(name),
                    ChildObject::CronJob(backup::cron_job(site, &b.schedule, &b.store)),
                ));
            }
        }
        Kind::HorizontalPodAutoscaler => {
            if site.spec.autoscaling.enabled && !ctx.restoring {
                out.push((
                    names::app(name),
                    ChildObject::HorizontalPodAutoscaler(hpa::build(site)),
                ));
            }
        }
        Kind::Ingress => {
            if let Some(ing) = ingress::build(site) {
                out.push((names::app(name), ChildObject::Ingress(ing)));
            }
        }
        Kind::HttpRoute => {
            if let Some(route) = http_route::build(site).filter(|_| inputs.apis.gateway) {
                out.push((names::app(name), ChildObject::HttpRoute(route)));
            }
        }
        Kind::ServiceMonitor => {
            if inputs.apis.prometheus && monitoring.service_monitor {
                out.push((
                    names::app(name),
                    ChildObject::ServiceMonitor(monitoring::service_monitor(site)),
                ));
            }
        }
        Kind::PodMonitor => {
            if inputs.apis.prometheus
                && monitoring.service_monitor
                && site.spec.database.external.is_none()
                && inputs.apis.cloudnative_pg
            {
                out.push((
                    names::database_pod_monitor(name),
                    ChildObject::PodMonitor(monitoring::database_pod_monitor(site)),
                ));
            }
        }
        Kind::PrometheusRule => {
            if inputs.apis.prometheus && monitoring.alerts {
                out.push((
                    names::app(name),
                    ChildObject::PrometheusRule(monitoring::prometheus_rule(site)),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{DataPolicy, PhotoSite};
    use crate::labels;
    use crate::test_support::*;

    #[test]
    fn demo_children_in_apply_order() {
        let d = build_all(&demo(), &inputs());
        let kinds: Vec<(Kind, &str)> = d
            .children
            .iter()
            .map(|c| (c.kind, c.name.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (Kind::ServiceAccount, "demo"),
                (Kind::ConfigMap, "demo-config"),
                (Kind::Secret, "demo-credentials"),
                (Kind::PersistentVolumeClaim, "demo-originals"),
                (Kind::DatabaseCluster, "demo-db"),
                (Kind::Service, "demo"),
                (Kind::Service, "demo-metrics"),
                (Kind::PodDisruptionBudget, "demo"),
                (Kind::NetworkPolicy, "demo"),
                (Kind::Deployment, "demo"),
            ]
        );
        assert!(d.missing.is_empty());
    }

    #[test]
    fn fakeflickr_has_every_child() {
        let s = with(fakeflickr(), |s| s.spec.gateway = Some(gateway_spec()));
        let d = build_all(&s, &inputs());
        // two Services (web, metrics) and one of every kind but the backup and restore ones
        let backup_kinds = [
            Kind::ObjectStore,
            Kind::ScheduledBackup,
            Kind::Job,
            Kind::CronJob,
        ];
        assert_eq!(d.children.len(), Kind::ALL.len() + 1 - backup_kinds.len());
        let mut kinds = d.children.iter().map(|c| c.kind).collect::<Vec<_>>();
        kinds.dedup();
        let expected: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|k| !backup_kinds.contains(k))
            .collect();
        assert_eq!(kinds, expected);
        assert!(d.contains(Kind::PodMonitor, "fakeflickr-db"));
    }

    #[test]
    fn a_backup_without_a_key_uses_the_iam_role_everywhere() {
        let d = build_all(&iam_role_site(), &inputs());
        let role = "arn:aws:iam::111122223333:role/photos-backup";
        let sa = d.get(Kind::ServiceAccount).unwrap().json();
        assert_eq!(
            sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
            role
        );
        let cluster = d.get(Kind::DatabaseCluster).unwrap().json();
        assert_eq!(
            cluster["spec"]["serviceAccountTemplate"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
            role
        );
        let store = d
            .get_named(Kind::ObjectStore, "demo-backup")
            .unwrap()
            .json();
        let creds = &store["spec"]["configuration"]["s3Credentials"];
        assert_eq!(creds, &serde_json::json!({"inheritFromIAMRole": true}));
        let cron = d.get(Kind::CronJob).unwrap().json();
        let env = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"];
        let names: Vec<&str> = env
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"PHOTO_BACKUP_URL"), "{names:?}");
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("AWS_ACCESS") || n.starts_with("AWS_SECRET")),
            "{names:?}"
        );
        // with a key: no IAM role inherited, no annotation unless asked for
        let d = build_all(
            &with(demo(), |s| s.spec.backup = Some(backup_spec())),
            &inputs(),
        );
        let store = d
            .get_named(Kind::ObjectStore, "demo-backup")
            .unwrap()
            .json();
        let creds = &store["spec"]["configuration"]["s3Credentials"];
        assert!(creds.get("inheritFromIAMRole").is_none());
        assert_eq!(creds["accessKeyId"]["name"], "backup-s3");
        assert!(d.get(Kind::ServiceAccount).unwrap().json()["metadata"]["annotations"].is_null());
        assert!(
            d.get(Kind::DatabaseCluster).unwrap().json()["spec"]["serviceAccountTemplate"]
                .is_null()
        );
    }

    #[test]
    fn backups_add_their_children_in_apply_order() {
        let s = with(fakeflickr(), |s| {
            s.spec.backup = Some(backup_spec());
            s.spec.gateway = Some(gateway_spec());
        });
        let d = build_all(&s, &inputs());
        let names: Vec<(Kind, &str)> = d
            .children
            .iter()
            .map(|c| (c.kind, c.name.as_str()))
            .collect();
        let at = |k: Kind, n: &str| {
            names
                .iter()
                .position(|x| *x == (k, n))
                .unwrap_or_else(|| panic!("no {k:?} {n}"))
        };
        // the Cluster names its ObjectStore, the ScheduledBackup its Cluster
        assert!(
            at(Kind::ObjectStore, "fakeflickr-backup") < at(Kind::DatabaseCluster, "fakeflickr-db")
        );
        assert!(
            at(Kind::DatabaseCluster, "fakeflickr-db")
                < at(Kind::ScheduledBackup, "fakeflickr-backup")
        );
        assert!(
            at(Kind::NetworkPolicy, "fakeflickr-jobs") < at(Kind::CronJob, "fakeflickr-backup")
        );
        assert!(at(Kind::Deployment, "fakeflickr") < at(Kind::CronJob, "fakeflickr-backup"));
        assert!(d.get(Kind::Job).is_none());
        // every kind now, but the restore Job
        let mut kinds = d.children.iter().map(|c| c.kind).collect::<Vec<_>>();
        kinds.dedup();
        let expected: Vec<Kind> = Kind::ALL.into_iter().filter(|k| *k != Kind::Job).collect();
        assert_eq!(kinds, expected);
        assert!(d.missing.is_empty());
    }

    #[test]
    fn without_the_plugin_backups_keep_the_originals_and_the_database_runs() {
        let s = with(demo(), |s| s.spec.backup = Some(backup_spec()));
        let mut i = inputs();
        i.apis.barman_cloud = false;
        let d = build_all(&s, &i);
        assert_eq!(d.missing, vec![OptionalApi::BarmanCloud]);
        assert!(d.get(Kind::ObjectStore).is_none());
        assert!(d.get(Kind::ScheduledBackup).is_none());
        assert!(d.get(Kind::CronJob).is_some());
        let cluster = d.get(Kind::DatabaseCluster).unwrap().json();
        assert!(cluster["spec"].get("plugins").is_none());
        // an external database needs no plugin: only the originals are backed up here
        let s = with(s, |s| s.spec.database.external = Some(external("rds")));
        let d = build_all(&s, &i);
        assert!(d.missing.is_empty());
        assert!(d.get(Kind::CronJob).is_some());
    }

    #[test]
    fn restore_runs_before_the_servers_start() {
        let s = with(demo(), |s| {
            s.spec.restore = Some(restore_spec());
            s.spec.backup = Some(backup_spec());
        });
        let mut i = inputs();
        let before = build_all(&s, &i);
        assert!(before.contains(Kind::Job, "demo-restore"));
        assert!(before.contains(Kind::ObjectStore, "demo-restore"));
        assert!(before.contains(Kind::DatabaseCluster, "demo-db"));
        // no server, and no backup of a half-restored volume, until the Job has succeeded
        assert!(before.get(Kind::Deployment).is_none());
        assert!(before.get(Kind::CronJob).is_none());
        let autoscaled = with(s.clone(), |s| s.spec.autoscaling.enabled = true);
        assert!(
            build_all(&autoscaled, &i)
                .get(Kind::HorizontalPodAutoscaler)
                .is_none()
        );
        i.originals_restored = Some(restored_at());
        let after = build_all(&s, &i);
        assert!(after.get(Kind::Job).is_none());
        assert!(after.contains(Kind::Deployment, "demo"));
        assert!(after.contains(Kind::CronJob, "demo-backup"));
        assert!(
            build_all(&autoscaled, &i)
                .get(Kind::HorizontalPodAutoscaler)
                .is_some()
        );
        // the database restore stays in the Cluster's bootstrap: it only acts at creation
        assert_eq!(
            before.get(Kind::DatabaseCluster).unwrap().object,
            after.get(Kind::DatabaseCluster).unwrap().object
        );
    }

    #[test]
    fn a_restored_database_is_never_created_empty() {
        // without the plugin the Cluster would bootstrap with initdb: hold it back
        let s = with(demo(), |s| s.spec.restore = Some(restore_spec()));
        let mut i = inputs();
        i.apis.barman_cloud = false;
        let d = build_all(&s, &i);
        assert!(d.get(Kind::DatabaseCluster).is_none());
        assert_eq!(d.missing, vec![OptionalApi::BarmanCloud]);
        // the originals are restored all the same
        assert!(d.contains(Kind::Job, "demo-restore"));
    }

    #[test]
    fn monitoring_skipped_without_prometheus_crds() {
        let mut i = inputs();
        i.apis.prometheus = false;
        let d = build_all(&fakeflickr(), &i);
        assert!(d.children.iter().all(|c| !c.kind.is_monitoring()));
        assert_eq!(d.missing, vec![OptionalApi::PrometheusOperator]);
        // a site that asks for no monitoring misses nothing
        assert!(build_all(&demo(), &i).missing.is_empty());
    }

    #[test]
    fn without_cloudnative_pg_only_the_database_is_left_out() {
        let mut i = inputs();
        i.apis.cloudnative_pg = false;
        let d = build_all(&fakeflickr(), &i);
        assert_eq!(d.missing, vec![OptionalApi::CloudNativePg]);
        assert!(d.get(Kind::DatabaseCluster).is_none());
        assert!(d.get(Kind::PodMonitor).is_none());
        for k in [
            Kind::Deployment,
            Kind::Service,
            Kind::Ingress,
            Kind::PersistentVolumeClaim,
            Kind::ServiceMonitor,
        ] {
            assert!(d.get(k).is_some(), "{k:?} must still be built");
        }
        // an external database needs no CloudNativePG
        let s = with(demo(), |s| s.spec.database.external = Some(external("rds")));
        assert!(build_all(&s, &i).missing.is_empty());
    }

    /// fakeflickr with backups, and a site restored from them.
    fn backup_sites() -> [PhotoSite; 2] {
        [
            with(fakeflickr(), |s| s.spec.backup = Some(backup_spec())),
            with(demo(), |s| {
                s.spec.restore = Some(restore_spec());
                s.spec.backup = Some(backup_spec());
            }),
        ]
    }

    #[test]
    fn every_child_has_labels_owner_and_valid_name() {
        let [backed_up, restored] = backup_sites();
        for s in [demo(), fakeflickr(), backed_up, restored] {
            let d = build_all(&s, &inputs());
            for c in &d.children {
                let object = c.json();
                let m = &object["metadata"];
                assert_eq!(m["name"], c.name.as_str());
                assert_eq!(m["namespace"], "photos");
                assert!(crate::names::is_dns_label(&c.name));
                assert_eq!(
                    m["labels"][labels::SITE],
                    s.metadata.name.as_deref().unwrap()
                );
                assert_eq!(m["labels"][labels::MANAGED_BY], labels::MANAGER);
                assert_eq!(object["kind"], c.kind.kind_name());
                let data = matches!(
                    c.kind,
                    Kind::PersistentVolumeClaim | Kind::DatabaseCluster | Kind::ObjectStore
                );
                let owners = m["ownerReferences"].as_array();
                if data {
                    assert!(
                        owners.is_none(),
                        "{:?} must not be owned under Retain",
                        c.kind
                    );
                    // a claim or a database is not a photo-server pod: no selector labels
                    for key in labels::selector("x").keys() {
                        assert!(m["labels"].get(key).is_none(), "{:?} has {key}", c.kind);
                    }
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
        let d = build_all(&s, &inputs());
        for k in [Kind::PersistentVolumeClaim, Kind::DatabaseCluster] {
            let object = d.get(k).unwrap().json();
            let o = &object["metadata"]["ownerReferences"][0];
            assert_eq!(o["name"], "demo");
        }
    }

    #[test]
    fn external_database_and_existing_claim_skip_children() {
        let s = with(demo(), |s| {
            s.spec.storage.originals.existing_claim = Some("mine".into());
            s.spec.database.external = Some(external("rds"));
        });
        let d = build_all(&s, &inputs());
        assert!(d.get(Kind::PersistentVolumeClaim).is_none());
        assert!(d.get(Kind::DatabaseCluster).is_none());
    }

    #[test]
    fn every_built_child_is_a_possible_child() {
        let [backed_up, restored] = backup_sites();
        let mut restoring = inputs();
        restoring.originals_restored = None;
        let mut done = inputs();
        done.originals_restored = Some(restored_at());
        for (s, i) in [
            (demo(), inputs()),
            (fakeflickr(), inputs()),
            (backed_up, inputs()),
            (restored.clone(), restoring),
            (restored, done),
        ] {
            let possible = possible_children(s.metadata.name.as_deref().unwrap());
            for c in build_all(&s, &i).children {
                assert!(
                    possible.contains(&(c.kind, c.name.clone())),
                    "{:?} {} is not in possible_children: cleanup would never find it",
                    c.kind,
                    c.name
                );
            }
        }
    }
}
