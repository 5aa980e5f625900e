//! Labels every child carries.
//!
//! Two jobs: the selector labels tie pods to their Deployment, Service, PDB, NetworkPolicy and
//! the scale subresource's `status.selector` (they are immutable in a Deployment selector, so
//! they never change); the site label lets the operator find a site's children (cleanup of
//! children the spec no longer asks for, and mapping watch events back to the PhotoSite) even
//! for children that carry no owner reference (originals and database under `Retain`).

use std::collections::BTreeMap;

/// The site a child belongs to.
pub const SITE: &str = "photostack.io/site";
/// Standard "managed by" label; our value is [`MANAGER`].
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY`].
pub const MANAGER: &str = "photo-operator";
/// Standard component label.
pub const COMPONENT: &str = "app.kubernetes.io/component";

/// Labels that select a site's photo-server pods.
pub fn selector(site: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "photo-server".to_string(),
        ),
        ("app.kubernetes.io/instance".to_string(), site.to_string()),
    ])
}

/// The selector as a label-selector string (`status.selector`, for the scale subresource).
pub fn selector_string(site: &str) -> String {
    selector(site)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Labels of every child of a site, for a component (`server`, `database`, `originals`, ...).
pub fn common(site: &str, component: &str) -> BTreeMap<String, String> {
    let mut labels = selector(site);
    labels.insert("app.kubernetes.io/part-of".into(), "photostack".into());
    labels.insert(MANAGED_BY.into(), MANAGER.into());
    labels.insert(COMPONENT.into(), component.into());
    labels.insert(SITE.into(), site.into());
    labels
}

/// Label selector that finds every child of a site, whatever its component.
pub fn children_selector(site: &str) -> String {
    format!("{SITE}={site},{MANAGED_BY}={MANAGER}")
}

/// Label selector of every object the operator manages (for the watches).
pub fn managed_selector() -> String {
    format!("{MANAGED_BY}={MANAGER}")
}
