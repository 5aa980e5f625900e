//! Stage 3, build: a [`ValidatedSite`] (+ what the controller read from the cluster,
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

pub mod backup;
pub mod config_map;
pub mod database;
pub mod deployment;
pub mod hpa;
pub mod ingress;
pub mod kind;
pub mod monitoring;
pub mod network_policy;
pub mod object_store;
pub mod pdb;
pub mod pvc;
pub mod secret;
pub mod service;
pub mod service_account;

use serde::Serialize;
use serde_json::Value;

use crate::site::ValidatedSite;
use crate::{Error, names};
pub use kind::{Apis, Kind, OptionalApi, possible_children};

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

/// What the controller read from an external database's Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExternalDatabase {
    /// TCP ports of the hosts in the connection URI (5432 where the URI names none).
    pub ports: Vec<u16>,
    /// Hash of the referenced Secret values (URI and CA), put in the pod template so that a
    /// rotated Secret rolls the pods.
    pub secret_hash: String,
}

/// What the builders need besides the PhotoSite: facts the controller read from the cluster.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// Values of the credentials Secret; `None` leaves the Secret out (render).
    pub credentials: Option<Credentials>,
    /// Which optional APIs (CloudNativePG, Prometheus Operator) are installed.
    pub apis: Apis,
    /// From the external database's Secret; `None` without one, or in `render` (port 5432).
    pub external_database: Option<ExternalDatabase>,
    /// Whether the restore Job of `spec.restore` has succeeded (recorded in
    /// `status.restore`): until then the site has the Job and no Deployment. Ignored without
    /// `spec.restore`; `false` in `render`, which shows a restored site as it starts.
    pub originals_restored: bool,
}

impl Default for Inputs {
    fn default() -> Self {
        Inputs {
            credentials: None,
            apis: Apis::ALL,
            external_database: None,
            originals_restored: false,
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

fn child<T: Serialize>(kind: Kind, name: String, object: &T) -> Result<Child, Error> {
    Ok(Child {
        kind,
        name,
        object: serde_json::to_value(object)?,
    })
}

/// Build every desired child of a validated PhotoSite, in apply order.
pub fn desired(site: &ValidatedSite, inputs: &Inputs) -> Result<Desired, Error> {
    let spec = site.spec;
    let mut children = Vec::with_capacity(Kind::ALL.len() + 1);
    let mut missing = Vec::new();

    children.push(child(
        Kind::ServiceAccount,
        names::app(site.name),
        &service_account::build(site),
    )?);
    let cm = config_map::build(site);
    let config_hash = config_map::hash(&cm);
    children.push(child(Kind::ConfigMap, names::config_map(site.name), &cm)?);
    if let Some(creds) = &inputs.credentials {
        children.push(child(
            Kind::Secret,
            names::credentials_secret(site.name),
            &secret::build(site, creds),
        )?);
    }
    if site.owns_originals_claim() {
        children.push(child(
            Kind::PersistentVolumeClaim,
            names::originals_claim(site.name),
            &pvc::build(site),
        )?);
    }
    // The database's backups and restore need the Barman Cloud plugin: without it a backed-up
    // cluster runs unarchived, and a restored one is held back (it would start empty).
    let wants_plugin =
        site.cloudnative_pg_database() && (site.backup.is_some() || site.restore.is_some());
    let plugin = wants_plugin && inputs.apis.barman_cloud;
    if site.cloudnative_pg_database() {
        if !inputs.apis.cloudnative_pg {
            missing.push(OptionalApi::CloudNativePg);
        }
        if wants_plugin && !inputs.apis.barman_cloud {
            missing.push(OptionalApi::BarmanCloud);
        }
    }
    let cloudnative_pg = site.cloudnative_pg_database() && inputs.apis.cloudnative_pg;
    if plugin {
        if let Some(b) = &site.backup {
            children.push(Child {
                kind: Kind::ObjectStore,
                name: names::backup(site.name),
                object: object_store::object_store(
                    site,
                    names::backup(site.name),
                    &b.store,
                    Some(&b.spec.retention),
                ),
            });
        }
        if let Some(r) = &site.restore {
            children.push(Child {
                kind: Kind::ObjectStore,
                name: names::restore(site.name),
                object: object_store::object_store(site, names::restore(site.name), &r.store, None),
            });
        }
    }
    if cloudnative_pg && (site.restore.is_none() || plugin) {
        children.push(Child {
            kind: Kind::DatabaseCluster,
            name: names::database_cluster(site.name),
            object: database::build(site, plugin),
        });
        if let (true, Some(b)) = (plugin, &site.backup) {
            children.push(Child {
                kind: Kind::ScheduledBackup,
                name: names::backup(site.name),
                object: object_store::scheduled_backup(site, &b.database_schedule),
            });
        }
    }
    children.push(child(
        Kind::Service,
        names::app(site.name),
        &service::build(site),
    )?);
    children.push(child(
        Kind::Service,
        names::metrics_service(site.name),
        &service::metrics(site),
    )?);
    children.push(child(
        Kind::PodDisruptionBudget,
        names::app(site.name),
        &pdb::build(site),
    )?);
    children.push(child(
        Kind::NetworkPolicy,
        names::app(site.name),
        &network_policy::build(site, inputs.external_database.as_ref()),
    )?);
    if let Some(np) = network_policy::jobs(site, inputs.external_database.as_ref()) {
        children.push(child(
            Kind::NetworkPolicy,
            names::jobs_network_policy(site.name),
            &np,
        )?);
    }
    let restoring = site.restore.is_some() && !inputs.originals_restored;
    if let (true, Some(r)) = (restoring, &site.restore) {
        children.push(child(
            Kind::Job,
            names::restore(site.name),
            &backup::restore_job(site, &r.store),
        )?);
    }
    if !restoring {
        children.push(child(
            Kind::Deployment,
            names::app(site.name),
            &deployment::build(site, &config_hash, inputs),
        )?);
        if let Some(b) = &site.backup {
            children.push(child(
                Kind::CronJob,
                names::backup(site.name),
                &backup::cron_job(site, &b.schedule, &b.store),
            )?);
        }
    }
    if spec.autoscaling.enabled && !restoring {
        children.push(child(
            Kind::HorizontalPodAutoscaler,
            names::app(site.name),
            &hpa::build(site),
        )?);
    }
    if let Some(ing) = ingress::build(site) {
        children.push(child(Kind::Ingress, names::app(site.name), &ing)?);
    }
    let m = &spec.monitoring;
    if m.service_monitor || m.alerts {
        if inputs.apis.prometheus {
            if m.service_monitor {
                children.push(Child {
                    kind: Kind::ServiceMonitor,
                    name: names::app(site.name),
                    object: monitoring::service_monitor(site),
                });
                if spec.database.external.is_none() && inputs.apis.cloudnative_pg {
                    children.push(Child {
                        kind: Kind::PodMonitor,
                        name: names::database_pod_monitor(site.name),
                        object: monitoring::database_pod_monitor(site),
                    });
                }
            }
            if m.alerts {
                children.push(Child {
                    kind: Kind::PrometheusRule,
                    name: names::app(site.name),
                    object: monitoring::prometheus_rule(site),
                });
            }
        } else {
            missing.push(OptionalApi::PrometheusOperator);
        }
    }
    Ok(Desired { children, missing })
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
        let d = build_all(&fakeflickr(), &inputs());
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
    fn backups_add_their_children_in_apply_order() {
        let s = with(fakeflickr(), |s| s.spec.backup = Some(backup_spec()));
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
        let cluster = &d.get(Kind::DatabaseCluster).unwrap().object;
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
        i.originals_restored = true;
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
            let o = &d.get(k).unwrap().object["metadata"]["ownerReferences"][0];
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
        restoring.originals_restored = false;
        let mut done = inputs();
        done.originals_restored = true;
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
