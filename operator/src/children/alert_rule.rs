//! One alerting rule of a PrometheusRule, labelled for its site.

use std::collections::BTreeMap;

use super::crd_types::AlertRule;
use crate::site::ValidatedSite;

/// An alert with its `summary` and `description` annotations.
pub fn alert(
    alert: &str,
    expr: String,
    for_: &str,
    labels: &BTreeMap<String, String>,
    summary: String,
    description: String,
) -> AlertRule {
    AlertRule {
        alert: alert.into(),
        expr,
        for_: for_.into(),
        labels: labels.clone(),
        annotations: BTreeMap::from([
            ("summary".to_string(), summary),
            ("description".to_string(), description),
        ]),
    }
}

/// Labels of an alert of this site: `severity` and `photosite`.
pub fn severity(site: &ValidatedSite, severity: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("severity".to_string(), severity.to_string()),
        ("photosite".to_string(), site.name.to_string()),
    ])
}
