//! HorizontalPodAutoscaler (autoscaling/v2) whose `scaleTargetRef` is the PhotoSite itself.
//!
//! Like an HPA on a CloudNativePG Cluster: it reads and writes the PhotoSite's scale
//! subresource, i.e. `spec.replicas`, which the operator copies to the Deployment. There is
//! one owner of the replica count and no fight between the HPA and the operator.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};
use kube::Resource;

use crate::crd::PhotoSite;
use crate::names;
use crate::site::ValidatedSite;

pub fn build(site: &ValidatedSite) -> HorizontalPodAutoscaler {
    let a = &site.spec.autoscaling;
    HorizontalPodAutoscaler {
        metadata: site.meta(names::app(site.name), "server"),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some(PhotoSite::api_version(&()).into()),
                kind: PhotoSite::kind(&()).into(),
                name: site.name.into(),
            },
            min_replicas: Some(a.min_replicas),
            max_replicas: a.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(a.target_cpu_utilization_percentage),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            behavior: Some(HorizontalPodAutoscalerBehavior {
                // Scale down slowly: thumbnails are bursty and caches are per pod.
                scale_down: Some(HPAScalingRules {
                    stabilization_window_seconds: Some(300),
                    ..HPAScalingRules::default()
                }),
                ..HorizontalPodAutoscalerBehavior::default()
            }),
        }),
        ..HorizontalPodAutoscaler::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn targets_the_photosite() {
        let s = fakeflickr();
        let h = build(&valid(&s)).spec.unwrap();
        assert_eq!(
            h.scale_target_ref.api_version.as_deref(),
            Some("photostack.io/v1alpha1")
        );
        assert_eq!(h.scale_target_ref.kind, "PhotoSite");
        assert_eq!(h.scale_target_ref.name, "fakeflickr");
        assert_eq!((h.min_replicas, h.max_replicas), (Some(3), 12));
        let m = &h.metrics.unwrap()[0];
        assert_eq!(
            m.resource.clone().unwrap().target.average_utilization,
            Some(70)
        );
    }
}
