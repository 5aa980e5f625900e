//! The server-side-apply boundary, where objects are JSON: the hash annotation of a desired
//! object ([`with_hash`]), the projection of a child the watch stores keep ([`prune`],
//! [`prune_dynamic`]), and the comparison of the two ([`needs_apply`]).
//!
//! A child is applied again only when its live copy lacks the hash of this exact desired
//! object (any change to what we would apply, including fields we stopped setting, changes
//! it) or when the fields the stores keep no longer have the desired values. The stores keep
//! only identity metadata, labels, annotations, owner references, `data`, `status` and the
//! `spec` fields of `kept_spec`, which keeps the operator small with 1000 sites (see the
//! benchmark).

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::children::Kind;

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
pub fn with_hash(object: &Value) -> Result<Value, serde_json::Error> {
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
/// fields of `kept_spec`.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use serde_json::json;

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
}
