//! Step 3: server-side apply the desired children in order, and delete the ones the spec no
//! longer asks for.
//!
//! Every apply uses one field manager (`photo-operator`) with `force`, so the operator owns
//! exactly the fields it sets and drops the fields it stops setting.
//!
//! No writes for a converged site: before applying, the desired object is compared with the
//! live copy from the watch stores. It is skipped when the live object carries the hash of
//! this exact desired object (annotation [`HASH_ANNOTATION`], which catches fields we stopped
//! setting) and still contains every desired field with the same value (which catches
//! someone else changing a field). The API server's own defaults and status are extra fields
//! and do not count.
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

/// Whether a desired child (with hash) needs a write given its live copy.
pub fn needs_apply(desired_with_hash: &Value, live: Option<&Value>) -> bool {
    match live {
        None => true,
        Some(live) => !is_subset(desired_with_hash, live),
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
}
