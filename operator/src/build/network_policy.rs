//! NetworkPolicy of the photo-server pods: ingress only from the ingress controller's and the
//! monitoring namespace, egress only to the database and to DNS.
//!
//! The namespaces come from `spec.networkPolicy` (defaults `ingress-nginx` and `monitoring`)
//! and are matched on the `kubernetes.io/metadata.name` label every namespace carries. An
//! external database's address is unknown, so egress to it is allowed on its port (5432) to
//! any address.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Site;
use crate::{labels, names};

const NS_LABEL: &str = "kubernetes.io/metadata.name";

fn namespace(name: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(NS_LABEL.to_string(), name.to_string())])),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    }
}

fn port(protocol: &str, port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(port)),
        ..NetworkPolicyPort::default()
    }
}

pub fn build(site: &Site) -> NetworkPolicy {
    let np = &site.spec.network_policy;
    let http = port("TCP", super::config_map::PORT);
    let ingress = vec![NetworkPolicyIngressRule {
        from: Some(vec![
            namespace(&np.ingress_namespace),
            namespace(&np.monitoring_namespace),
        ]),
        ports: Some(vec![http]),
    }];
    let database_peer = if site.spec.database.external.is_some() {
        None
    } else {
        Some(vec![NetworkPolicyPeer {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "cnpg.io/cluster".to_string(),
                    names::database_cluster(site.name),
                )])),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        }])
    };
    let egress = vec![
        NetworkPolicyEgressRule {
            to: database_peer,
            ports: Some(vec![port("TCP", 5432)]),
        },
        NetworkPolicyEgressRule {
            to: Some(vec![namespace("kube-system")]),
            ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
        },
    ];
    NetworkPolicy {
        metadata: site.meta(names::app(site.name), "server"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels::selector(site.name)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(ingress),
            egress: Some(egress),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::*;

    #[test]
    fn ingress_and_egress_are_restricted() {
        let s = demo();
        let np = build(&Site::new(&s).unwrap()).spec.unwrap();
        assert_eq!(np.policy_types.unwrap(), vec!["Ingress", "Egress"]);
        let from = np.ingress.unwrap()[0].from.clone().unwrap();
        assert_eq!(from.len(), 2);
        let egress = np.egress.unwrap();
        let db = egress[0].to.clone().unwrap();
        assert_eq!(
            db[0].pod_selector.clone().unwrap().match_labels.unwrap()["cnpg.io/cluster"],
            "demo-db"
        );
        assert_eq!(egress[1].ports.clone().unwrap().len(), 2);
    }

    #[test]
    fn external_database_allows_port_only() {
        let s = with(demo(), |s| {
            s.spec.database.external = Some(crate::crd::ExternalDatabaseSpec {
                secret_name: "rds".into(),
                key: "uri".into(),
            })
        });
        let np = build(&Site::new(&s).unwrap()).spec.unwrap();
        assert!(np.egress.unwrap()[0].to.is_none());
    }
}
