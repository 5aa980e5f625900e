//! Ingress (networking.k8s.io/v1) for the site, with TLS and the cert-manager issuer
//! annotation (`cert-manager.io/cluster-issuer` or `cert-manager.io/issuer`) when an
//! `issuerRef` is given: cert-manager's ingress-shim then issues the certificate into the TLS
//! Secret.
//!
//! Body size: ingress-nginx refuses request bodies over its `proxy-body-size` (1m by
//! default), which would refuse most photo uploads before photo-server sees them. For an
//! nginx class (`className` containing `nginx`, or no class, where the cluster's default is
//! most often ingress-nginx) the annotation is set to the site's `uploads.maxRequestSize`,
//! the limit photo-server itself enforces, unless `ingress.annotations` sets it. Other
//! controllers ignore the annotation; an AWS ALB has no body-size limit of its own (see the
//! README for AWS WAF's).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};

use crate::crd::IssuerKind;
use crate::names;
use crate::site::ValidatedSite;

/// ingress-nginx's request body limit.
pub const BODY_SIZE_ANNOTATION: &str = "nginx.ingress.kubernetes.io/proxy-body-size";

/// A size in nginx's notation (`200m`, `1500k`), rounded up to whole KiB.
pub fn nginx_size(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes.is_multiple_of(MIB) {
        format!("{}m", bytes / MIB)
    } else {
        format!("{}k", bytes.div_ceil(1024))
    }
}

/// Whether an Ingress of this class is (most likely) served by ingress-nginx.
pub fn is_nginx(class_name: Option<&str>) -> bool {
    class_name.is_none_or(|c| c.contains("nginx"))
}

pub fn build(site: &ValidatedSite) -> Option<Ingress> {
    let spec = site.spec.ingress.as_ref()?;
    let mut meta = site.meta(names::app(site.name), "server");
    let mut annotations: BTreeMap<String, String> = spec.annotations.clone().unwrap_or_default();
    let tls = spec.tls.as_ref().map(|tls| {
        if let Some(issuer) = &tls.issuer_ref {
            let key = match issuer.kind {
                IssuerKind::ClusterIssuer => "cert-manager.io/cluster-issuer",
                IssuerKind::Issuer => "cert-manager.io/issuer",
            };
            annotations.insert(key.into(), issuer.name.clone());
        }
        vec![IngressTLS {
            hosts: spec.host.clone().map(|h| vec![h]),
            secret_name: Some(
                tls.secret_name
                    .clone()
                    .unwrap_or_else(|| names::tls_secret(site.name)),
            ),
        }]
    });
    if is_nginx(spec.class_name.as_deref()) {
        annotations
            .entry(BODY_SIZE_ANNOTATION.to_string())
            .or_insert_with(|| nginx_size(site.max_request_bytes));
    }
    if !annotations.is_empty() {
        meta.annotations = Some(annotations);
    }
    Some(Ingress {
        metadata: meta,
        spec: Some(IngressSpec {
            ingress_class_name: spec.class_name.clone(),
            tls,
            rules: Some(vec![IngressRule {
                host: spec.host.clone(),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: names::app(site.name),
                                port: Some(ServiceBackendPort {
                                    name: Some(super::service::PORT_NAME.into()),
                                    ..ServiceBackendPort::default()
                                }),
                            }),
                            ..IngressBackend::default()
                        },
                    }],
                }),
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    })
}

/// The URL the site is reachable on, for `status.url`.
pub fn url(site: &ValidatedSite) -> String {
    let route_host = site.spec.gateway.as_ref().and_then(|g| g.hostnames.first());
    match (&site.spec.ingress, route_host) {
        (Some(i), _) => {
            let scheme = if i.tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{}/", i.host.as_deref().unwrap_or("*"))
        }
        // TLS is the Gateway's listeners' business: http:// reaches both kinds (an HTTPS
        // Gateway redirects it)
        (None, Some(host)) => format!("http://{host}/"),
        (None, None) => format!(
            "http://{}.{}.svc:{}/",
            names::app(site.name),
            site.namespace,
            super::service::PORT
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn tls_with_cluster_issuer() {
        let s = fakeflickr();
        let site = valid(&s);
        let i = build(&site).unwrap();
        let a = i.metadata.annotations.unwrap();
        assert_eq!(a["cert-manager.io/cluster-issuer"], "letsencrypt");
        let spec = i.spec.unwrap();
        assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
        let tls = &spec.tls.unwrap()[0];
        assert_eq!(tls.secret_name.as_deref(), Some("fakeflickr-tls"));
        assert_eq!(tls.hosts.clone().unwrap(), vec!["photos.example.com"]);
        assert_eq!(url(&site), "https://photos.example.com/");
    }

    #[test]
    fn nginx_body_size_follows_the_request_limit() {
        let s = fakeflickr();
        let a = build(&valid(&s)).unwrap().metadata.annotations.unwrap();
        // photo-server's 200 MiB default, not ingress-nginx's 1m
        assert_eq!(a[BODY_SIZE_ANNOTATION], "200m");
        let s = with(fakeflickr(), |s| {
            s.spec.uploads.max_request_size.0 = "1G".into()
        });
        let a = build(&valid(&s)).unwrap().metadata.annotations.unwrap();
        assert_eq!(a[BODY_SIZE_ANNOTATION], "976563k");
        assert_eq!(nginx_size(1 << 30), "1024m");
        // the cluster's default class, most often nginx
        let s = with(fakeflickr(), |s| {
            s.spec.ingress.as_mut().unwrap().class_name = None
        });
        let a = build(&valid(&s)).unwrap().metadata.annotations.unwrap();
        assert_eq!(a[BODY_SIZE_ANNOTATION], "200m");
    }

    #[test]
    fn body_size_set_by_the_user_wins_and_other_classes_get_none() {
        let s = with(fakeflickr(), |s| {
            s.spec.ingress.as_mut().unwrap().annotations = Some(BTreeMap::from([(
                BODY_SIZE_ANNOTATION.to_string(),
                "0".to_string(),
            )]))
        });
        let a = build(&valid(&s)).unwrap().metadata.annotations.unwrap();
        assert_eq!(a[BODY_SIZE_ANNOTATION], "0");
        let s = with(fakeflickr(), |s| {
            let i = s.spec.ingress.as_mut().unwrap();
            i.class_name = Some("alb".into());
            i.tls = None;
        });
        let i = build(&valid(&s)).unwrap();
        assert!(i.metadata.annotations.is_none());
    }

    #[test]
    fn namespaced_issuer_and_no_ingress() {
        let s = with(fakeflickr(), |s| {
            let tls = s.spec.ingress.as_mut().unwrap().tls.as_mut().unwrap();
            tls.issuer_ref.as_mut().unwrap().kind = IssuerKind::Issuer;
            tls.secret_name = Some("custom".into());
        });
        let i = build(&valid(&s)).unwrap();
        assert_eq!(
            i.metadata.annotations.unwrap()["cert-manager.io/issuer"],
            "letsencrypt"
        );
        assert_eq!(
            i.spec.unwrap().tls.unwrap()[0].secret_name.as_deref(),
            Some("custom")
        );
        let d = demo();
        let site = valid(&d);
        assert!(build(&site).is_none());
        assert_eq!(url(&site), "http://demo.photos.svc:80/");
    }
}
