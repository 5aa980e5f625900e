//! Ingress (networking.k8s.io/v1) for the site, with TLS and the cert-manager issuer
//! annotation (`cert-manager.io/cluster-issuer` or `cert-manager.io/issuer`) when an
//! `issuerRef` is given: cert-manager's ingress-shim then issues the certificate into the TLS
//! Secret.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};

use super::Site;
use crate::crd::IssuerKind;
use crate::names;

pub fn build(site: &Site) -> Option<Ingress> {
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
pub fn url(site: &Site) -> String {
    match &site.spec.ingress {
        Some(i) => {
            let scheme = if i.tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{}/", i.host.as_deref().unwrap_or("*"))
        }
        None => format!(
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
    use crate::build::test_support::*;

    #[test]
    fn tls_with_cluster_issuer() {
        let s = fakeflickr();
        let site = Site::new(&s).unwrap();
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
    fn namespaced_issuer_and_no_ingress() {
        let s = with(fakeflickr(), |s| {
            let tls = s.spec.ingress.as_mut().unwrap().tls.as_mut().unwrap();
            tls.issuer_ref.as_mut().unwrap().kind = IssuerKind::Issuer;
            tls.secret_name = Some("custom".into());
        });
        let i = build(&Site::new(&s).unwrap()).unwrap();
        assert_eq!(
            i.metadata.annotations.unwrap()["cert-manager.io/issuer"],
            "letsencrypt"
        );
        assert_eq!(
            i.spec.unwrap().tls.unwrap()[0].secret_name.as_deref(),
            Some("custom")
        );
        let d = demo();
        let site = Site::new(&d).unwrap();
        assert!(build(&site).is_none());
        assert_eq!(url(&site), "http://demo.photos.svc:80/");
    }
}
