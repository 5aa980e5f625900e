//! Step 3: server-side apply the desired children in order, and delete the ones the spec no
//! longer asks for.
//!
//! Every apply uses one field manager (`photo-operator`) with `force`, so the operator owns
//! exactly the fields it sets and drops the fields it stops setting.
//!
//! No writes for a converged site: before applying, the desired object is compared with the
//! live copy from the watch stores. It is skipped when the live object carries the hash of
//! this exact desired object (annotation [`HASH_ANNOTATION`]: any change to what we would
//! apply, including fields we stopped setting, changes it) and the fields the stores keep
//! (labels, annotations, owner references, `spec.replicas`, Secret data; see [`prune`]) still
//! have the desired values, which catches the usual out-of-band edits (someone scaling the
//! Deployment, removing a label or an owner reference). The stores keep only that projection
//! plus `status`, which is what keeps the operator small with 1000 sites (see the benchmark);
//! the price is that an out-of-band edit to another field we own is only reverted on the next
//! change of the PhotoSite.
//!
//! Cleanup: children found in the stores by the site label whose kind/name is no longer
//! desired (HPA after autoscaling is turned off, Ingress, monitoring) are deleted. The
//! originals claim, the database and the credentials Secret are never deleted this way: data
//! is only removed by the garbage collector under `dataPolicy: Delete`.

use std::collections::HashMap;

use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Context;
use crate::build::{Desired, Kind};
use crate::crd::PhotoSite;
use crate::error::is_not_found;
use crate::metrics::KindLabels;
use crate::{Error, names};

/// Annotation with the hash of the desired object last applied.
pub const HASH_ANNOTATION: &str = "photostack.io/applied-hash";

/// What apply did and the live state of each child after it.
#[derive(Debug, Default)]
pub struct Applied {
    /// Children that were written.
    pub changed: Vec<(Kind, String)>,
    /// Live object of each desired child (apply response, or store copy when skipped).
    pub live: HashMap<Kind, Value>,
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

/// Annotation that kubectl's client-side apply adds; never useful to the operator.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The part of an object the stores keep and the diff compares: identity metadata, labels,
/// annotations, owner references, `spec.replicas`, `data` (Secret, ConfigMap) and `status`.
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
    if let Some(r) = object.pointer("/spec/replicas") {
        out.insert("spec".into(), serde_json::json!({ "replicas": r }));
    }
    Value::Object(out)
}

/// Prune a watched object in place before it enters a store (see [`prune`]).
pub fn prune_dynamic(o: &mut kube::api::DynamicObject) {
    o.metadata.managed_fields = None;
    if let Some(a) = o.metadata.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
    let mut data = serde_json::Map::new();
    for key in ["data", "status"] {
        if let Some(v) = o.data.get(key) {
            data.insert(key.into(), v.clone());
        }
    }
    if let Some(r) = o.data.pointer("/spec/replicas") {
        data.insert("spec".into(), serde_json::json!({ "replicas": r }));
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

pub async fn apply_all(
    site: &PhotoSite,
    desired: &Desired,
    ctx: &Context,
) -> Result<Applied, Error> {
    let ns = site.namespace().unwrap_or_default();
    let params = PatchParams::apply(names::FIELD_MANAGER).force();
    let mut applied = Applied::default();
    for child in &desired.children {
        let object = with_hash(&child.object)?;
        let live = ctx
            .stores
            .get(child.kind, &ns, &child.name)
            .map(|o| serde_json::to_value(&*o))
            .transpose()?;
        if !needs_apply(&object, live.as_ref()) {
            if let Some(live) = live {
                applied.live.insert(child.kind, live);
            }
            continue;
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &ns, &child.kind.api_resource());
        let result = api
            .patch(&child.name, &params, &Patch::Apply(&object))
            .await?;
        ctx.metrics
            .applied
            .get_or_create(&KindLabels {
                kind: child.kind.kind_name().into(),
            })
            .inc();
        tracing::info!(kind = child.kind.kind_name(), name = %child.name, namespace = %ns, "applied");
        applied.changed.push((child.kind, child.name.clone()));
        applied
            .live
            .insert(child.kind, serde_json::to_value(&result)?);
    }
    Ok(applied)
}

/// Kinds cleanup never deletes (data and credentials).
fn protected(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::PersistentVolumeClaim | Kind::DatabaseCluster | Kind::Secret
    )
}

pub async fn cleanup(
    site: &PhotoSite,
    desired: &Desired,
    ctx: &Context,
) -> Result<Vec<(Kind, String)>, Error> {
    let ns = site.namespace().unwrap_or_default();
    let name = site.name_any();
    let mut deleted = Vec::new();
    for kind in Kind::ALL {
        if protected(kind) {
            continue;
        }
        for obj in ctx.stores.children_of(kind, &ns, &name) {
            let child = obj.name_any();
            if desired.contains(kind, &child) {
                continue;
            }
            let api: Api<DynamicObject> =
                Api::namespaced_with(ctx.client.clone(), &ns, &kind.api_resource());
            match api.delete(&child, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
            ctx.metrics
                .deleted
                .get_or_create(&KindLabels {
                    kind: kind.kind_name().into(),
                })
                .inc();
            tracing::info!(kind = kind.kind_name(), name = %child, namespace = %ns, "deleted");
            deleted.push((kind, child));
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn pruned_store_copy_still_catches_replica_drift() {
        let desired = with_hash(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "labels": {"a": "b"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": []}}}
        }))
        .unwrap();
        let mut live: kube::api::DynamicObject = serde_json::from_value(desired.clone()).unwrap();
        prune_dynamic(&mut live);
        let mut live = serde_json::to_value(&live).unwrap();
        assert!(live.pointer("/spec/template").is_none());
        assert!(!needs_apply(&desired, Some(&live)));
        live["spec"]["replicas"] = json!(5); // kubectl scale deployment/x
        assert!(needs_apply(&desired, Some(&live)));
    }
}
