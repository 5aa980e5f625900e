//! The pure diff: a site's desired children against what the watch stores show of them ->
//! what to write. [`plan`] is the only place this decision is made; the controller executes
//! it ([`super::apply`]), the benchmark times it and the tests assert on it without an API.
//!
//! No writes for a converged site: a child is applied only when its live copy lacks the hash
//! of this exact desired object (annotation [`HASH_ANNOTATION`]: any change to what we would
//! apply, including fields we stopped setting, changes it) or when the fields the stores keep
//! (labels, annotations, owner references, `spec.replicas`, Secret data; see [`prune`]) no
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

use std::collections::HashMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Stores;
use crate::children::{self, Desired, Kind};
use crate::quantity;
use crate::site::ValidatedSite;
use crate::{Error, labels};

/// Annotation with the hash of the desired object last applied.
pub const HASH_ANNOTATION: &str = "photostack.io/applied-hash";

/// Annotation that kubectl's client-side apply adds; never useful to the operator.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// `spec` fields the stores keep: the replica count of any kind, and what [`plan`] needs to
/// know of a PersistentVolumeClaim (immutable fields, size).
fn kept_spec(kind: &str) -> &'static [&'static str] {
    if kind == Kind::PersistentVolumeClaim.kind_name() {
        &["replicas", "accessModes", "storageClassName", "resources"]
    } else {
        &["replicas"]
    }
}

/// The desired object with its hash annotation.
pub fn with_hash(object: &Value) -> Result<Value, Error> {
    let hash = hex::encode(Sha256::digest(serde_json::to_vec(object)?));
    let mut object = object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(a) = annotations.as_object_mut() {
            a.insert(
                HASH_ANNOTATION.into(),
                Value::String(hash[..16].to_string()),
            );
        }
    }
    Ok(object)
}

/// Whether every field of `desired` is present in `live` with the same value (lists must have
/// the same length and match element-wise).
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d
            .iter()
            .all(|(k, v)| l.get(k).is_some_and(|lv| is_subset(v, lv))),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| is_subset(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

fn pruned_spec(kind: &str, spec: Option<&Value>) -> Option<Value> {
    let spec = spec?.as_object()?;
    let kept: serde_json::Map<String, Value> = kept_spec(kind)
        .iter()
        .filter_map(|k| spec.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    (!kept.is_empty()).then_some(Value::Object(kept))
}

/// The part of an object the stores keep and the diff compares: identity metadata, labels,
/// annotations, owner references, `data` (Secret, ConfigMap), `status`, and the `spec`
/// fields of [`kept_spec`].
pub fn prune(object: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for key in ["apiVersion", "kind", "data", "status"] {
        if let Some(v) = object.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(meta) = object.get("metadata").and_then(Value::as_object) {
        let mut m = serde_json::Map::new();
        for key in [
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "generation",
            "labels",
            "annotations",
            "ownerReferences",
            "deletionTimestamp",
        ] {
            if let Some(v) = meta.get(key) {
                m.insert(key.into(), v.clone());
            }
        }
        if let Some(a) = m.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove(LAST_APPLIED);
        }
        out.insert("metadata".into(), Value::Object(m));
    }
    let kind = object["kind"].as_str().unwrap_or_default();
    if let Some(spec) = pruned_spec(kind, object.get("spec")) {
        out.insert("spec".into(), spec);
    }
    Value::Object(out)
}

/// Prune a watched object of `kind` in place before it enters a store (see [`prune`]).
///
/// The API server leaves `apiVersion` and `kind` out of the items of a list of built-in
/// kinds (only watch events carry them), so they are set here from the watch's kind: a copy
/// without them would never match a desired object and every reconcile after a (re)list
/// would apply the child again.
pub fn prune_dynamic(kind: Kind, o: &mut kube::api::DynamicObject) {
    let ar = kind.api_resource();
    o.types.get_or_insert_with(|| kube::core::TypeMeta {
        api_version: ar.api_version.clone(),
        kind: ar.kind.clone(),
    });
    o.metadata.managed_fields = None;
    if let Some(a) = o.metadata.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
    let kind = kind.kind_name();
    let mut data = serde_json::Map::new();
    for key in ["data", "status"] {
        if let Some(v) = o.data.get(key) {
            data.insert(key.into(), v.clone());
        }
    }
    if let Some(spec) = pruned_spec(kind, o.data.get("spec")) {
        data.insert("spec".into(), spec);
    }
    o.data = Value::Object(data);
}

/// Whether a desired child (with hash) needs a write given its (pruned) live copy.
pub fn needs_apply(desired_with_hash: &Value, live: Option<&Value>) -> bool {
    match live {
        None => true,
        Some(live) => !is_subset(&prune(desired_with_hash), live),
    }
}

/// A site's children as the watch stores show them (pruned), by kind and name: every child
/// the operator may create for the site that exists.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub site: String,
    pub children: HashMap<(Kind, String), Value>,
}

impl Observed {
    pub fn from_stores(stores: &Stores, site: &ValidatedSite) -> Result<Observed, Error> {
        let mut children = HashMap::new();
        for (kind, name) in children::possible_children(site.name) {
            if let Some(live) = stores.get(kind, site.namespace, &name) {
                children.insert((kind, name), serde_json::to_value(&*live)?);
            }
        }
        Ok(Observed {
            site: site.name.to_string(),
            children,
        })
    }

    pub fn get(&self, kind: Kind, name: &str) -> Option<&Value> {
        self.children.get(&(kind, name.to_string()))
    }
}

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
/// archives, the restore's record).
pub fn protected(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::PersistentVolumeClaim
            | Kind::DatabaseCluster
            | Kind::Secret
            | Kind::ObjectStore
            | Kind::Job
    )
}

fn size_bytes(v: &Value) -> Option<u64> {
    quantity::parse_bytes(v.pointer("/spec/resources/requests/storage")?.as_str()?).ok()
}

/// The originals claim to apply given its live copy, or why it cannot be applied.
fn claim(desired: &Value, live: Option<&Value>) -> Result<Value, String> {
    let Some(live) = live else {
        return Ok(desired.clone());
    };
    let live_modes = live.pointer("/spec/accessModes");
    let want_modes = desired.pointer("/spec/accessModes");
    if let (Some(l), Some(w)) = (live_modes, want_modes)
        && l != w
    {
        return Err(format!(
            "not applied: the claim's access modes are immutable (claim {l}, spec {w})"
        ));
    }
    let live_class = live.pointer("/spec/storageClassName");
    let want_class = desired.pointer("/spec/storageClassName");
    if let (Some(l), Some(w)) = (live_class, want_class)
        && l != w
    {
        return Err(format!(
            "not applied: the claim's storage class is immutable (claim {l}, spec {w})"
        ));
    }
    let mut object = desired.clone();
    if let (Some(l), Some(w)) = (size_bytes(live), size_bytes(desired))
        && l > w
        && let Some(size) = live.pointer("/spec/resources/requests/storage")
        && let Some(slot) = object.pointer_mut("/spec/resources/requests/storage")
    {
        // A claim never shrinks: keep the live size.
        *slot = size.clone();
    }
    Ok(object)
}

/// Decide what to write for one site.
pub fn plan(desired: &Desired, observed: &Observed) -> Result<Plan, Error> {
    let mut plan = Plan::default();
    for c in &desired.children {
        let live = observed.get(c.kind, &c.name);
        if c.kind == Kind::Job && live.is_some() {
            plan.unchanged.push((c.kind, c.name.clone()));
            continue;
        }
        let json = c.to_json()?;
        let object = if c.kind == Kind::PersistentVolumeClaim {
            match claim(&json, live) {
                Ok(o) => o,
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
            json
        };
        let object = with_hash(&object)?;
        if needs_apply(&object, live) {
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
                && live.pointer("/metadata/deletionTimestamp").is_none()
                && live["metadata"]["labels"][labels::SITE] == observed.site.as_str()
                && live["metadata"]["labels"][labels::MANAGED_BY] == labels::MANAGER
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
    use crate::test_support::*;
    use serde_json::json;

    #[test]
    fn subset_ignores_server_fields() {
        let d = json!({"spec": {"replicas": 2, "ports": [{"port": 80}]}});
        let l = json!({"spec": {"replicas": 2, "ports": [{"port": 80, "protocol": "TCP"}], "x": 1}, "status": {}});
        assert!(is_subset(&d, &l));
        let l2 = json!({"spec": {"replicas": 3, "ports": [{"port": 80}]}});
        assert!(!is_subset(&d, &l2));
        let l3 = json!({"spec": {"replicas": 2, "ports": [{"port": 80}, {"port": 81}]}});
        assert!(!is_subset(&d, &l3));
    }

    #[test]
    fn hash_detects_removed_fields() {
        let a = json!({"metadata": {"name": "x"}, "spec": {"a": 1, "b": 2}});
        let b = json!({"metadata": {"name": "x"}, "spec": {"a": 1}});
        let live = with_hash(&a).unwrap();
        assert!(!needs_apply(&with_hash(&a).unwrap(), Some(&live)));
        // b is a subset of the live object, but the hash differs: apply to drop spec.b
        assert!(needs_apply(&with_hash(&b).unwrap(), Some(&live)));
        assert!(needs_apply(&with_hash(&a).unwrap(), None));
    }

    fn pruned(o: &Value) -> Value {
        let kind = Kind::ALL
            .into_iter()
            .find(|k| o["kind"] == k.kind_name())
            .unwrap();
        let mut live: kube::api::DynamicObject = serde_json::from_value(o.clone()).unwrap();
        prune_dynamic(kind, &mut live);
        serde_json::to_value(&live).unwrap()
    }

    #[test]
    fn listed_objects_without_type_meta_still_match() {
        // A list response's items carry no apiVersion/kind (watch events do).
        let d = build_all(&demo(), &inputs());
        for c in &d.children {
            let desired = with_hash(&c.json()).unwrap();
            let mut listed = desired.clone();
            let m = listed.as_object_mut().unwrap();
            m.remove("apiVersion");
            m.remove("kind");
            let mut live: kube::api::DynamicObject = serde_json::from_value(listed).unwrap();
            assert!(live.types.is_none());
            prune_dynamic(c.kind, &mut live);
            let live = serde_json::to_value(&live).unwrap();
            assert!(
                !needs_apply(&desired, Some(&live)),
                "{:?} {} would be applied again after every list",
                c.kind,
                c.name
            );
        }
    }

    #[test]
    fn pruned_store_copy_still_catches_replica_drift() {
        let desired = with_hash(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "labels": {"a": "b"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": []}}}
        }))
        .unwrap();
        let mut live = pruned(&desired);
        assert!(live.pointer("/spec/template").is_none());
        assert!(!needs_apply(&desired, Some(&live)));
        live["spec"]["replicas"] = json!(5); // kubectl scale deployment/x
        assert!(needs_apply(&desired, Some(&live)));
        assert_eq!(prune(&desired)["spec"], json!({"replicas": 2}));
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
                        pruned(&with_hash(&c.json()).unwrap()),
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
        obs.children.get_mut(&key).unwrap()["spec"]["storageClassName"] = json!("gp3");
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
        obs.children.get_mut(&key).unwrap()["spec"]["accessModes"] = json!(["ReadWriteOnce"]);
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
        obs.children.get_mut(&key).unwrap()["spec"]["resources"]["requests"]["storage"] =
            json!("200Gi");
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
        obs.children.insert(key.clone(), pruned(&c.object));
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
