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

/// Labels of a data child (originals claim, database): a site's labels without the pod
/// selector, so nothing that selects photo-server pods (or asks `kubectl get -l` for them)
/// matches a claim or a database.
pub fn data(site: &str, component: &str) -> BTreeMap<String, String> {
    let mut labels = common(site, component);
    for key in selector(site).keys() {
        labels.remove(key);
    }
    labels
}

/// Whether `key` is a valid label key: an optional DNS-subdomain prefix and `/`, then a name
/// of at most 63 alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
pub fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part.len() <= 63
                    && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && part.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    });
    prefix_ok && !name.is_empty() && is_label_value(name)
}

/// Whether `value` is a valid label value: empty, or at most 63 alphanumerics, `-`, `_`, `.`,
/// starting and ending alphanumeric.
pub fn is_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= 63
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric())
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
}

/// Label selector that finds every child of a site, whatever its component.
pub fn children_selector(site: &str) -> String {
    format!("{SITE}={site},{MANAGED_BY}={MANAGER}")
}

/// Label selector of every object the operator manages (for the watches).
pub fn managed_selector() -> String {
    format!("{MANAGED_BY}={MANAGER}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_syntax() {
        for ok in ["release", "app.kubernetes.io/name", "a", "x_y.z-1"] {
            assert!(is_label_key(ok), "{ok}");
        }
        for bad in ["", "/x", "Bad.Prefix/x", "x/", "-x", &"a".repeat(64)] {
            assert!(!is_label_key(bad), "{bad}");
        }
        assert!(is_label_value(""));
        assert!(is_label_value("kube-prometheus-stack"));
        assert!(!is_label_value("has space"));
        assert!(!is_label_value("trailing-"));
    }

    #[test]
    fn data_labels_do_not_select_pods() {
        let d = data("demo", "originals");
        assert_eq!(d[SITE], "demo");
        assert!(selector("demo").keys().all(|k| !d.contains_key(k)));
    }
}
