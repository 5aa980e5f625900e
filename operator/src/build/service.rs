//! ClusterIP Service in front of the photo-server pods (port `http` 80 -> 8080). The Ingress
//! and the ServiceMonitor address it by port name.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Site;
use crate::{labels, names};

pub const PORT_NAME: &str = "http";
pub const PORT: i32 = 80;

pub fn build(site: &Site) -> Service {
    Service {
        metadata: site.meta(names::app(site.name), "server"),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(labels::selector(site.name)),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.into()),
                port: PORT,
                target_port: Some(IntOrString::String(PORT_NAME.into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::demo;

    #[test]
    fn selects_pods() {
        let s = demo();
        let svc = build(&Site::new(&s).unwrap());
        let spec = svc.spec.unwrap();
        assert_eq!(spec.selector.unwrap(), labels::selector("demo"));
        assert_eq!(spec.ports.unwrap()[0].port, 80);
    }
}
