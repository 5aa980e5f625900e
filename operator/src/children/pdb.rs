//! PodDisruptionBudget: voluntary disruptions (node drains, upgrades) take at most one
//! photo-server pod at a time. `maxUnavailable: 1` rather than `minAvailable` so a drain
//! still proceeds with a single replica.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::site::ValidatedSite;
use crate::{labels, names};

pub fn build(site: &ValidatedSite) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: site.meta(names::app(site.name), "server"),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(labels::selector(site.name)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn one_at_a_time() {
        let s = demo();
        let p = build(&valid(&s)).spec.unwrap();
        assert_eq!(p.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(
            p.selector.unwrap().match_labels.unwrap(),
            labels::selector("demo")
        );
    }
}
