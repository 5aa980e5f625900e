//! Stage 6, plan: the pure diff of a site's desired children against their typed
//! observations -> what to write. [`plan`] is the only place this decision is made; the controller executes
//! it ([`super::apply`]), the benchmark times it and the tests assert on it without an API.
//!
//! No writes for a converged site: a child is applied only when its live copy lacks the hash
//! of this exact desired object (annotation [`ssa::HASH_ANNOTATION`]: any change to what we would
//! apply, including fields we stopped setting, changes it) or when the fields the stores keep
//! (labels, annotations, owner references, `spec.replicas`, Secret data; see [`ssa::prune`]) no
//! longer have the desired values, which catches the usual out-of-band edits (someone
//! scaling the Deployment, removing a label or an owner reference). The stores keep only that
//! projection plus `status`, which is what keeps the operator small with 1000 sites (see the
//! benchmark); the price is that an out-of-band edit to another field we own is only
//! reverted on the next change of the PhotoSite.
//!
//! The originals claim is applied only when it must change and can: a claim's access modes
//! and class are immutable, and its size can only grow, so the plan holds back a claim whose
//! live copy differs in those (reported as refused: the API would answer 422), and never asks
//! to shrink one (the live size is kept).
//!
//! A Job (the restore of `spec.restore`) is created once and never applied again: its pod
//! template is immutable, and a Job that ran is a record, not something to update.
//!
//! Deletions: children the operator may create for a site
//! ([`crate::children::possible_children`], looked up by name: no scan of the stores) that exist,
//! carry the site's labels and are no longer desired (HPA after autoscaling is turned off,
//! Ingress, monitoring, the backup CronJob and ScheduledBackup). The originals claim, the
//! database, the credentials Secret, the Barman Cloud ObjectStores (a retained or
//! re-configured database may still archive to one) and the restore Job (its log is the
//! restore's report; its TTL removes it) are never deleted this way: data is only removed by
//! the garbage collector under `dataPolicy: Delete`.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PersistentVolumeClaimSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::Value;

use super::observe::{Observed, ObservedChild};
#[cfg(doc)]
use super::ssa;
use super::ssa::{needs_apply, with_hash};
use crate::children::{ChildObject, Desired, Kind};
use crate::labels;
use crate::quantity;

/// A child the API refused (or would refuse) to take: reported in the status, the other
/// children are applied anyway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub kind: Kind,
    pub name: String,
    /// The API server's message (or why the plan held the child back).
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.kind.kind_name(),
            self.name,
            self.message
        )
    }
}

/// Why a plan cannot be made: a desired object that does not serialise (a bug).
#[derive(thiserror::Error, Debug)]
pub enum PlanError {
    #[error("serialization: {0}")]
    Serialization(#[from] serde_json::Error),
}

impl PlanError {
    /// Label for the `photo_operator_reconcile_errors_total` counter.
    pub fn metric_label(&self) -> &'static str {
        match self {
            PlanError::Serialization(_) => "serialization",
        }
    }

    /// Reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            PlanError::Serialization(_) => "InternalError",
        }
    }
}

/// A child to server-side apply: the desired object serialised, with its hash annotation.
#[derive(Clone, Debug, PartialEq)]
pub struct ToApply {
    pub kind: Kind,
    pub name: String,
    pub object: Value,
}

/// What to write for one site.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Children to server-side apply, in apply order, with their hash annotation.
    pub apply: Vec<ToApply>,
    /// Children whose live copy already matches.
    pub unchanged: Vec<(Kind, String)>,
    /// Children held back because the API would refuse them.
    pub held: Vec<Refusal>,
    /// Children labelled for the site that the spec no longer wants.
    pub delete: Vec<(Kind, String)>,
}

impl Plan {
    /// Whether the plan writes anything.
    pub fn is_empty(&self) -> bool {
        self.apply.is_empty() && self.delete.is_empty()
    }
}

/// Kinds that are never deleted by the operator (data, credentials, where the database
/// archives, the restore's record). The match is exhaustive: a new [`Kind`] does not compile
/// until it says whether cleanup may delete it (`rbac_check.py` reads the `=> true` arm).
pub fn protected(kind: Kind) -> bool {
    match kind {
        Kind::PersistentVolumeClaim
        | Kind::DatabaseCluster
        | Kind::Secret
        | Kind::ObjectStore
        | Kind::Job => true,
        Kind::ServiceAccount
        | Kind::ConfigMap
        | Kind::ScheduledBackup
        | Kind::Service
        | Kind::PodDisruptionBudget
        | Kind::NetworkPolicy
        | Kind::Deployment
        | Kind::CronJob
        | Kind::HorizontalPodAutoscaler
        | Kind::Ingress
        | Kind::HttpRoute
        | Kind::ServiceMonitor
        | Kind::PodMonitor
        | Kind::PrometheusRule => false,
    }
}

fn size_bytes(spec: &PersistentVolumeClaimSpec) -> Option<u64> {
    quantity::parse_bytes(&storage(spec)?.0).ok()
}

fn storage(spec: &PersistentVolumeClaimSpec) -> Option<&Quantity> {
    spec.resources.as_ref()?.requests.as_ref()?.get("storage")
}

/// A value as the messages show it (JSON).
fn shown<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The originals claim to apply given its live copy, or why it cannot be applied.
fn claim(
    desired: &PersistentVolumeClaim,
    live: Option<&ObservedChild>,
) -> Result<PersistentVolumeClaim, String> {
    let Some((live, _)) = live.and_then(ObservedChild::claim) else {
        return Ok(desired.clone());
    };
    let want = desired.spec.clone().unwrap_or_default();
    if let (Some(l), Some(w)) = (&live.access_modes, &want.access_modes)
        && l != w
    {
        return Err(format!(
            "not applied: the claim's access modes are immutable (claim {}, spec {})",
            shown(l),
            shown(w)
        ));
    }
    if let (Some(l), Some(w)) = (&live.storage_class_name, &want.storage_class_name)
        && l != w
    {
        return Err(format!(
            "not applied: the claim's storage class is immutable (claim {}, spec {})",
            shown(l),
            shown(w)
        ));
    }
    let mut object = desired.clone();
    if let (Some(l), Some(w)) = (size_bytes(live), size_bytes(&want))
        && l > w
        && let Some(size) = storage(live)
        && let Some(slot) = object
            .spec
            .as_mut()
            .and_then(|s| s.resources.as_mut())
            .and_then(|r| r.requests.as_mut())
            .and_then(|r| r.get_mut("storage"))
    {
        // A claim never shrinks: keep the live size.
        *slot = size.clone();
    }
    Ok(object)
}

/// Decide what to write for one site.
pub fn plan(desired: &Desired, observed: &Observed) -> Result<Plan, PlanError> {
    let mut plan = Plan::default();
    for c in &desired.children {
        let live = observed.get(c.kind, &c.name);
        if c.kind == Kind::Job && live.is_some() {
            plan.unchanged.push((c.kind, c.name.clone()));
            continue;
        }
        let object = if let ChildObject::PersistentVolumeClaim(desired) = &c.object {
            match claim(desired, live) {
                Ok(o) => serde_json::to_value(o)?,
                Err(message) => {
                    plan.held.push(Refusal {
                        kind: c.kind,
                        name: c.name.clone(),
                        message,
                    });
                    continue;
                }
            }
        } else {
            c.to_json()?
        };
        let object = with_hash(&object)?;
        if needs_apply(&object, live.map(|l| &l.pruned)) {
            plan.apply.push(ToApply {
                kind: c.kind,
                name: c.name.clone(),
                object,
            });
        } else {
            plan.unchanged.push((c.kind, c.name.clone()));
        }
    }
    let mut stale: Vec<(Kind, String)> = observed
        .children
        .iter()
        .filter(|((kind, name), live)| {
            !protected(*kind)
                && !desired.contains(*kind, name)
                && live.meta.deletion_timestamp.is_none()
                && live.label(labels::SITE) == Some(observed.site.as_str())
                && live.label(labels::MANAGED_BY) == Some(labels::MANAGER)
        })
        .map(|(k, _)| k.clone())
        .collect();
    stale.sort();
    plan.delete = stale;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::ssa::{HASH_ANNOTATION, prune_dynamic};
    use crate::test_support::*;
    use serde_json::json;

    /// A live child as the stores hold it (pruned), parsed.
    fn live(kind: Kind, o: &Value) -> ObservedChild {
        let mut live: kube::api::DynamicObject = serde_json::from_value(o.clone()).unwrap();
        prune_dynamic(kind, &mut live);
        ObservedChild::parse(kind, &live).unwrap()
    }

    /// Change a live child's JSON (as an out-of-band edit would) and parse it again.
    fn edit(obs: &mut Observed, key: &(Kind, String), f: impl FnOnce(&mut Value)) {
        let child = obs.children.get_mut(key).unwrap();
        let mut json = child.pruned.clone();
        f(&mut json);
        *child = ObservedChild::from_json(key.0, json).unwrap();
    }

    /// Observed children of a site: every desired child as applied, pruned as the stores hold
    /// them.
    fn observed(desired: &Desired, site: &str) -> Observed {
        Observed {
            site: site.into(),
            children: desired
                .children
                .iter()
                .map(|c| {
                    (
                        (c.kind, c.name.clone()),
                        live(c.kind, &with_hash(&c.json()).unwrap()),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn converged_site_plans_no_writes() {
        for s in [demo(), fakeflickr()] {
            let d = build_all(&s, &inputs());
            let p = plan(&d, &observed(&d, s.metadata.name.as_deref().unwrap())).unwrap();
            assert!(p.is_empty(), "{:?}", p.apply);
            assert!(p.held.is_empty());
            assert_eq!(p.unchanged.len(), d.children.len());
        }
    }

    #[test]
    fn spec_change_plans_only_the_changed_children() {
        let d = build_all(&demo(), &inputs());
        let obs = observed(&d, "demo");
        let changed = build_all(&with(demo(), |s| s.spec.image = "new".into()), &inputs());
        let p = plan(&changed, &obs).unwrap();
        let kinds: Vec<Kind> = p.apply.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, vec![Kind::Deployment]);
        assert!(p.apply[0].object["metadata"]["annotations"][HASH_ANNOTATION].is_string());
    }

    #[test]
    fn children_no_longer_wanted_are_deleted_but_never_data() {
        let d = build_all(&fakeflickr(), &inputs());
        let obs = observed(&d, "fakeflickr");
        let off = with(fakeflickr(), |s| {
            s.spec.autoscaling.enabled = false;
            s.spec.ingress = None;
            s.spec.monitoring.service_monitor = false;
            s.spec.monitoring.alerts = false;
            s.spec.database.external = Some(external("rds"));
            s.spec.storage.originals.existing_claim = Some("mine".into());
        });
        let p = plan(&build_all(&off, &inputs()), &obs).unwrap();
        assert_eq!(
            p.delete,
            vec![
                (Kind::HorizontalPodAutoscaler, "fakeflickr".to_string()),
                (Kind::Ingress, "fakeflickr".to_string()),
                (Kind::ServiceMonitor, "fakeflickr".to_string()),
                (Kind::PodMonitor, "fakeflickr-db".to_string()),
                (Kind::PrometheusRule, "fakeflickr".to_string()),
            ]
        );
    }

    #[test]
    fn claim_with_another_class_or_access_mode_is_held_back() {
        let d = build_all(&fakeflickr(), &inputs());
        let mut obs = observed(&d, "fakeflickr");
        let key = (
            Kind::PersistentVolumeClaim,
            "fakeflickr-originals".to_string(),
        );
        // adopted under Retain from a PhotoSite that asked for another class
        edit(&mut obs, &key, |o| {
            o["spec"]["storageClassName"] = json!("gp3")
        });
        let p = plan(&d, &obs).unwrap();
        assert!(
            p.apply
                .iter()
                .all(|c| c.kind != Kind::PersistentVolumeClaim)
        );
        assert_eq!(p.held.len(), 1);
        assert_eq!(p.held[0].name, "fakeflickr-originals");
        assert!(
            p.held[0].message.contains("storage class is immutable"),
            "{}",
            p.held[0]
        );
        // the other children are still planned as usual
        assert!(p.apply.is_empty() && p.unchanged.len() == d.children.len() - 1);

        let mut obs = observed(&d, "fakeflickr");
        edit(&mut obs, &key, |o| {
            o["spec"]["accessModes"] = json!(["ReadWriteOnce"])
        });
        let p = plan(&d, &obs).unwrap();
        assert!(p.held[0].message.contains("access modes are immutable"));
    }

    #[test]
    fn claim_is_never_shrunk_and_only_applied_when_it_changes() {
        let d = build_all(&fakeflickr(), &inputs()); // 100Gi
        let mut obs = observed(&d, "fakeflickr");
        let key = (
            Kind::PersistentVolumeClaim,
            "fakeflickr-originals".to_string(),
        );
        // grown out of band (or the spec shrank): keep the live size
        edit(&mut obs, &key, |o| {
            o["spec"]["resources"]["requests"]["storage"] = json!("200Gi")
        });
        let p = plan(&d, &obs).unwrap();
        let c = p
            .apply
            .iter()
            .find(|c| c.kind == Kind::PersistentVolumeClaim)
            .unwrap();
        assert_eq!(
            c.object["spec"]["resources"]["requests"]["storage"],
            "200Gi"
        );
        // once applied with the live size, nothing more to do
        obs.children.insert(key.clone(), live(key.0, &c.object));
        let p = plan(&d, &obs).unwrap();
        assert!(p.is_empty(), "{:?}", p.apply);
        // a bigger size in the spec is applied (the API decides whether the class can expand)
        let bigger = build_all(
            &with(fakeflickr(), |s| {
                s.spec.storage.originals.size.0 = "300Gi".into()
            }),
            &inputs(),
        );
        let p = plan(&bigger, &obs).unwrap();
        let c = p
            .apply
            .iter()
            .find(|c| c.kind == Kind::PersistentVolumeClaim)
            .unwrap();
        assert_eq!(
            c.object["spec"]["resources"]["requests"]["storage"],
            "300Gi"
        );
    }
}
