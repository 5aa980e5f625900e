//! The HTTPRoute (`gateway.networking.k8s.io/v1`) of `spec.gateway`: every path of the
//! site's host names to its Service's web port, attached to the given Gateways.

use super::crd_types::{
    BackendRef, GATEWAY_API, HttpPathMatch, HttpRoute, HttpRouteMatch, HttpRouteRule,
    HttpRouteSpec, Object, ParentReference,
};
use super::service;
use crate::names;
use crate::site::ValidatedSite;

pub fn build(site: &ValidatedSite) -> Option<HttpRoute> {
    let gateway = site.spec.gateway.as_ref()?;
    Some(Object {
        api_version: GATEWAY_API,
        kind: "HTTPRoute",
        metadata: site.meta(names::app(site.name), "server"),
        spec: HttpRouteSpec {
            parent_refs: gateway
                .parent_refs
                .iter()
                .map(|p| ParentReference {
                    group: "gateway.networking.k8s.io",
                    kind: "Gateway",
                    name: p.name.clone(),
                    namespace: p.namespace.clone(),
                    section_name: p.section_name.clone(),
                })
                .collect(),
            hostnames: gateway.hostnames.clone(),
            rules: vec![HttpRouteRule {
                matches: vec![HttpRouteMatch {
                    path: HttpPathMatch {
                        type_: "PathPrefix",
                        value: "/",
                    },
                }],
                backend_refs: vec![BackendRef {
                    name: names::app(site.name),
                    port: service::PORT,
                }],
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{GatewayParentRef, GatewaySpec};
    use crate::test_support::*;

    #[test]
    fn routes_every_path_to_the_web_port_of_the_sites_service() {
        assert!(build(&valid(&demo())).is_none());
        let s = with(demo(), |s| {
            s.spec.gateway = Some(GatewaySpec {
                parent_refs: vec![GatewayParentRef {
                    name: "public".into(),
                    namespace: Some("gateways".into()),
                    section_name: Some("https".into()),
                }],
                hostnames: vec!["photos.example.com".into()],
            })
        });
        let r = json(&build(&valid(&s)).unwrap());
        assert_eq!(r["apiVersion"], "gateway.networking.k8s.io/v1");
        assert_eq!(r["kind"], "HTTPRoute");
        assert_eq!(
            r["spec"]["parentRefs"][0],
            serde_json::json!({"group": "gateway.networking.k8s.io", "kind": "Gateway",
                "name": "public", "namespace": "gateways", "sectionName": "https"})
        );
        assert_eq!(r["spec"]["hostnames"][0], "photos.example.com");
        let rule = &r["spec"]["rules"][0];
        assert_eq!(rule["matches"][0]["path"]["type"], "PathPrefix");
        assert_eq!(rule["backendRefs"][0]["name"], "demo");
        assert_eq!(rule["backendRefs"][0]["port"], 80);
    }
}
