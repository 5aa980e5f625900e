//! Is the PhotoSite CRD in the cluster this operator's? Helm installs a chart's CRDs once
//! and never upgrades them, so after `helm upgrade` a new operator may meet the old CRD. The
//! API server then prunes every field the old schema does not know, silently: the operator's
//! `status.backup` and `status.restore` vanish on each write, and a user's new spec fields
//! (`spec.monitoring.slo`) are dropped on admission. At start the operator compares the
//! installed schema with its own and stops with the fields missing and the command that
//! fixes it, instead of running half blind.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client, CustomResourceExt};
use serde_json::Value;
use tracing::{info, warn};

use crate::crd::PhotoSite;

/// The command that installs this operator's CRD over an older one (`--force-conflicts`:
/// the CRD was last written by another field manager, Helm or an older `kubectl apply`).
pub const UPGRADE_COMMAND: &str =
    "kubectl apply --server-side --force-conflicts -f crds/photosite.yaml";

/// Why the operator cannot run against the installed CRD.
#[derive(thiserror::Error, Debug)]
pub enum InstalledCrdError {
    #[error("the PhotoSite CRD (photosites.photostack.io) is not installed: {UPGRADE_COMMAND}")]
    NotInstalled,
    #[error(
        "the installed PhotoSite CRD is older than this operator: it lacks {}; the API server would drop these fields. Upgrade it: {UPGRADE_COMMAND}",
        .0.join(", ")
    )]
    Outdated(Vec<String>),
    #[error("the installed PhotoSite CRD does not serve {0}")]
    VersionNotServed(String),
    #[error("reading the PhotoSite CRD: {0}")]
    Api(#[from] kube::Error),
}

/// Fields of `ours` (an OpenAPI v3 schema) that `installed` does not have, as paths
/// (`status.backup`). Under `x-kubernetes-preserve-unknown-fields` everything is kept, so
/// nothing there is missing.
pub fn missing_fields(installed: &Value, ours: &Value) -> Vec<String> {
    let mut missing = Vec::new();
    walk(installed, ours, "", &mut missing);
    missing
}

fn walk(installed: &Value, ours: &Value, path: &str, missing: &mut Vec<String>) {
    if installed["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true) {
        return;
    }
    if let Some(props) = ours["properties"].as_object() {
        for (name, schema) in props {
            let p = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            match installed["properties"].get(name) {
                Some(theirs) => walk(theirs, schema, &p, missing),
                None => missing.push(p),
            }
        }
    }
    if ours["items"].is_object() && installed["items"].is_object() {
        walk(
            &installed["items"],
            &ours["items"],
            &format!("{path}[]"),
            missing,
        );
    }
    if ours["additionalProperties"].is_object() && installed["additionalProperties"].is_object() {
        walk(
            &installed["additionalProperties"],
            &ours["additionalProperties"],
            &format!("{path}.*"),
            missing,
        );
    }
}

/// The `openAPIV3Schema` of `version` in a CRD.
fn schema_of(crd: &CustomResourceDefinition, version: &str) -> Option<Value> {
    let v = crd
        .spec
        .versions
        .iter()
        .find(|v| v.name == version && v.served)?;
    let schema = v.schema.as_ref()?.open_api_v3_schema.as_ref()?;
    serde_json::to_value(schema).ok()
}

/// Compare the installed CRD with this operator's. Without permission to read CRDs (the
/// chart's `scope: Namespace`, whose Role cannot grant a cluster-scoped resource) it warns
/// and lets the operator run.
pub async fn check(client: &Client) -> Result<(), InstalledCrdError> {
    let ours = PhotoSite::crd();
    let name = ours.metadata.name.clone().unwrap_or_default();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let installed = match api.get_opt(&name).await {
        Ok(Some(crd)) => crd,
        Ok(None) => return Err(InstalledCrdError::NotInstalled),
        Err(kube::Error::Api(e)) if e.code == 403 => {
            warn!(
                "may not read the PhotoSite CRD (namespace-scoped RBAC): not checking that it is this operator's; after an upgrade run {UPGRADE_COMMAND}"
            );
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    for version in &ours.spec.versions {
        let theirs = schema_of(&installed, &version.name)
            .ok_or_else(|| InstalledCrdError::VersionNotServed(version.name.clone()))?;
        let mine = schema_of(&ours, &version.name).unwrap_or_default();
        let missing = missing_fields(&theirs, &mine);
        if !missing.is_empty() {
            return Err(InstalledCrdError::Outdated(missing));
        }
    }
    info!("the installed PhotoSite CRD has every field this operator reads and writes");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn our_schema() -> Value {
        schema_of(&PhotoSite::crd(), "v1alpha1").expect("our CRD serves v1alpha1")
    }

    #[test]
    fn the_same_schema_misses_nothing() {
        assert!(missing_fields(&our_schema(), &our_schema()).is_empty());
    }

    #[test]
    fn an_older_crd_without_new_fields_is_named_field_by_field() {
        let mut old = our_schema();
        let status = old["properties"]["status"]["properties"]
            .as_object_mut()
            .unwrap();
        status.remove("backup");
        status.remove("restore");
        old["properties"]["spec"]["properties"]["monitoring"]["properties"]
            .as_object_mut()
            .unwrap()
            .remove("slo");
        let missing = missing_fields(&old, &our_schema());
        assert_eq!(
            missing,
            ["spec.monitoring.slo", "status.backup", "status.restore"]
        );
        let e = InstalledCrdError::Outdated(missing).to_string();
        assert!(e.contains("--force-conflicts"), "{e}");
    }

    #[test]
    fn fields_in_lists_and_maps_are_compared_and_preserved_ones_are_not() {
        let ours = json!({"properties": {"a": {"items": {"properties": {"x": {}, "y": {}}}},
                                          "m": {"additionalProperties": {"properties": {"z": {}}}},
                                          "free": {"properties": {"q": {}}}}});
        let theirs = json!({"properties": {"a": {"items": {"properties": {"x": {}}}},
                                            "m": {"additionalProperties": {"properties": {}}},
                                            "free": {"x-kubernetes-preserve-unknown-fields": true}}});
        assert_eq!(missing_fields(&theirs, &ours), ["a[].y", "m.*.z"]);
    }
}
