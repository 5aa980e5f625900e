//! The Services in front of the photo-server pods.
//!
//! - `<site>`: ClusterIP, port `http` 80 -> the web port. The Ingress routes to it by port
//!   name. It does not expose the metrics port, so `/metrics` can never be reached through
//!   the Ingress.
//! - `<site>-metrics`: headless, port `metrics` only, for the ServiceMonitor (the Prometheus
//!   Operator discovers the pods through its endpoints). Labelled with component `metrics`,
//!   which is what the ServiceMonitor selects.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config_map::METRICS_PORT;
use super::deployment::{HTTP_PORT_NAME, METRICS_PORT_NAME};
use crate::site::ValidatedSite;
use crate::{labels, names};

pub const PORT_NAME: &str = HTTP_PORT_NAME;
pub const PORT: i32 = 80;
/// Component label of the metrics Service.
pub const METRICS_COMPONENT: &str = "metrics";

fn port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port: number,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

pub fn build(site: &ValidatedSite) -> Service {
    Service {
        metadata: site.meta(names::app(site.name), "server"),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(labels::selector(site.name)),
            ports: Some(vec![port(PORT_NAME, PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The headless metrics Service.
pub fn metrics(site: &ValidatedSite) -> Service {
    Service {
        metadata: site.meta(names::metrics_service(site.name), METRICS_COMPONENT),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: Some("None".into()),
            selector: Some(labels::selector(site.name)),
            ports: Some(vec![port(METRICS_PORT_NAME, METRICS_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn selects_pods() {
        let s = demo();
        let spec = build(&valid(&s)).spec.unwrap();
        assert_eq!(spec.selector.unwrap(), labels::selector("demo"));
        assert_eq!(spec.ports.unwrap()[0].port, 80);
    }

    #[test]
    fn the_ingress_service_does_not_expose_metrics() {
        let s = demo();
        let site = valid(&s);
        let web = build(&site).spec.unwrap().ports.unwrap();
        assert_eq!(web.len(), 1);
        assert_eq!(web[0].target_port, Some(IntOrString::String("http".into())));
        let m = metrics(&site);
        assert_eq!(m.metadata.name.as_deref(), Some("demo-metrics"));
        assert_eq!(m.metadata.labels.unwrap()[labels::COMPONENT], "metrics");
        let spec = m.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.selector.unwrap(), labels::selector("demo"));
        let ports = spec.ports.unwrap();
        assert_eq!(ports.len(), 1);
        assert_eq!(
            (ports[0].name.as_deref(), ports[0].port),
            (Some("metrics"), 9090)
        );
    }
}
