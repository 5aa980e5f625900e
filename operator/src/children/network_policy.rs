//! NetworkPolicy of the photo-server pods.
//!
//! Ingress, two rules:
//! - the web port from the ingress controller's namespace and from `ingressCIDRs` (`ipBlock`s:
//!   load balancers that are not pods, such as an AWS ALB in IP mode, connect from VPC
//!   addresses that no namespace selector matches);
//! - the metrics port from the monitoring namespace only.
//!
//! Egress: the database and DNS. The backup and restore pods have a policy of their own
//! ([`jobs`]). The namespaces come from `spec.networkPolicy` (defaults
//! `ingress-nginx` and `monitoring`) and are matched on the `kubernetes.io/metadata.name`
//! label every namespace carries. An external database's address is unknown, so egress to it
//! is allowed on the ports of its connection URI (read from its Secret; 5432 when unknown) to
//! any address.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::backup::{BACKUP_COMPONENT, RESTORE_COMPONENT};
use super::config_map::{METRICS_PORT, PORT};
use super::inputs::ExternalDatabase;
use crate::site::ValidatedSite;
use crate::{labels, names};

const NS_LABEL: &str = "kubernetes.io/metadata.name";
/// Postgres' port, for CloudNativePG and an external database whose URI names none.
pub const POSTGRES_PORT: u16 = 5432;

fn namespace(name: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(NS_LABEL.to_string(), name.to_string())])),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    }
}

fn cidr(block: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: block.into(),
            except: None,
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

/// Egress to the database: the CloudNativePG instances on 5432, or an external database's
/// URI ports to any address.
fn database_egress(
    site: &ValidatedSite,
    external: Option<&ExternalDatabase>,
) -> NetworkPolicyEgressRule {
    if site.spec.database.external.is_some() {
        let ports = external
            .map(|e| e.ports.clone())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| vec![POSTGRES_PORT]);
        NetworkPolicyEgressRule {
            to: None,
            ports: Some(ports.into_iter().map(|p| port("TCP", p.into())).collect()),
        }
    } else {
        NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                pod_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        "cnpg.io/cluster".to_string(),
                        names::database_cluster(site.name),
                    )])),
                    ..LabelSelector::default()
                }),
                ..NetworkPolicyPeer::default()
            }]),
            ports: Some(vec![port("TCP", POSTGRES_PORT.into())]),
        }
    }
}

fn dns_egress() -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule {
        to: Some(vec![namespace("kube-system")]),
        ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
    }
}

pub fn build(site: &ValidatedSite, external: Option<&ExternalDatabase>) -> NetworkPolicy {
    let np = &site.spec.network_policy;
    let mut web_from = vec![namespace(&np.ingress_namespace)];
    web_from.extend(site.ingress_cidrs.iter().map(|c| cidr(c)));
    let ingress = vec![
        NetworkPolicyIngressRule {
            from: Some(web_from),
            ports: Some(vec![port("TCP", PORT)]),
        },
        NetworkPolicyIngressRule {
            from: Some(vec![namespace(&np.monitoring_namespace)]),
            ports: Some(vec![port("TCP", METRICS_PORT)]),
        },
    ];
    let egress = vec![database_egress(site, external), dns_egress()];
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

/// The EKS Pod Identity agent, which hands a pod its IAM role's credentials.
const POD_IDENTITY_AGENT: &str = "169.254.170.23/32";

/// NetworkPolicy of the backup and restore pods (which the server's does not select: they
/// lack the server pods' labels). Nothing connects to them; they reach DNS, the object
/// store's port at any address (a bucket's addresses are unknown and change), and, for the
/// backup, the database like the server; without a key, HTTPS (STS) and the EKS Pod
/// Identity agent too. `None` without backup or restore.
pub fn jobs(site: &ValidatedSite, external: Option<&ExternalDatabase>) -> Option<NetworkPolicy> {
    let mut store_ports: Vec<u16> = Vec::new();
    let mut iam_role = false;
    for store in [
        site.backup.as_ref().map(|b| &b.store),
        site.restore.as_ref().map(|r| &r.store),
    ]
    .into_iter()
    .flatten()
    {
        // without a key the pods get the role's credentials from STS (HTTPS), or from the
        // EKS Pod Identity agent on the node
        let keyless = store.spec.credentials_secret.is_none();
        iam_role |= keyless;
        for p in [Some(store.port), keyless.then_some(443)]
            .into_iter()
            .flatten()
        {
            if !store_ports.contains(&p) {
                store_ports.push(p);
            }
        }
    }
    if store_ports.is_empty() {
        return None;
    }
    let mut egress = vec![
        NetworkPolicyEgressRule {
            to: None,
            ports: Some(
                store_ports
                    .into_iter()
                    .map(|p| port("TCP", p.into()))
                    .collect(),
            ),
        },
        dns_egress(),
    ];
    if site.backup.is_some() {
        egress.push(database_egress(site, external));
    }
    if iam_role {
        egress.push(NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                ip_block: Some(IPBlock {
                    cidr: POD_IDENTITY_AGENT.into(),
                    except: None,
                }),
                ..NetworkPolicyPeer::default()
            }]),
            ports: Some(vec![port("TCP", 80)]),
        });
    }
    Some(NetworkPolicy {
        metadata: site.meta(names::jobs_network_policy(site.name), "backup"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    labels::SITE.to_string(),
                    site.name.to_string(),
                )])),
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: labels::COMPONENT.into(),
                    operator: "In".into(),
                    values: Some(vec![
                        BACKUP_COMPONENT.to_string(),
                        RESTORE_COMPONENT.to_string(),
                    ]),
                }]),
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![]),
            egress: Some(egress),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    fn ports(rule: &NetworkPolicyIngressRule) -> Vec<IntOrString> {
        rule.ports
            .clone()
            .unwrap()
            .into_iter()
            .filter_map(|p| p.port)
            .collect()
    }

    #[test]
    fn ingress_and_egress_are_restricted() {
        let s = demo();
        let np = build(&valid(&s), None).spec.unwrap();
        assert_eq!(np.policy_types.unwrap(), vec!["Ingress", "Egress"]);
        let ingress = np.ingress.unwrap();
        assert_eq!(ingress.len(), 2);
        // web port: the ingress controller's namespace only
        let web = ingress[0].from.clone().unwrap();
        assert_eq!(web.len(), 1);
        assert_eq!(
            web[0]
                .namespace_selector
                .clone()
                .unwrap()
                .match_labels
                .unwrap()[NS_LABEL],
            "ingress-nginx"
        );
        assert_eq!(ports(&ingress[0]), vec![IntOrString::Int(8080)]);
        // metrics port: the monitoring namespace only
        let mon = ingress[1].from.clone().unwrap();
        assert_eq!(
            mon[0]
                .namespace_selector
                .clone()
                .unwrap()
                .match_labels
                .unwrap()[NS_LABEL],
            "monitoring"
        );
        assert_eq!(ports(&ingress[1]), vec![IntOrString::Int(9090)]);
        let egress = np.egress.unwrap();
        let db = egress[0].to.clone().unwrap();
        assert_eq!(
            db[0].pod_selector.clone().unwrap().match_labels.unwrap()["cnpg.io/cluster"],
            "demo-db"
        );
        assert_eq!(egress[1].ports.clone().unwrap().len(), 2);
    }

    #[test]
    fn ingress_cidrs_admit_load_balancers_that_are_not_pods() {
        // an ALB in IP mode connects from VPC addresses
        let s = with(demo(), |s| {
            s.spec.network_policy.ingress_cidrs = vec!["10.0.0.0/16".into(), "fd00::/8".into()]
        });
        let np = build(&valid(&s), None).spec.unwrap();
        let ingress = np.ingress.unwrap();
        let blocks: Vec<String> = ingress[0]
            .from
            .clone()
            .unwrap()
            .into_iter()
            .filter_map(|p| p.ip_block.map(|b| b.cidr))
            .collect();
        assert_eq!(blocks, vec!["10.0.0.0/16", "fd00::/8"]);
        assert_eq!(ports(&ingress[0]), vec![IntOrString::Int(8080)]);
        // the CIDRs never reach the metrics port
        assert!(
            ingress[1]
                .from
                .clone()
                .unwrap()
                .iter()
                .all(|p| p.ip_block.is_none())
        );
    }

    #[test]
    fn external_database_allows_its_ports_to_any_address() {
        let s = with(demo(), |s| s.spec.database.external = Some(external("rds")));
        let np = build(&valid(&s), None).spec.unwrap();
        let db = &np.egress.unwrap()[0];
        assert!(db.to.is_none());
        assert_eq!(
            db.ports.clone().unwrap()[0].port,
            Some(IntOrString::Int(5432))
        );
        let e = ExternalDatabase {
            ports: vec![6432, 5433],
            secret_hash: String::new(),
        };
        let np = build(&valid(&s), Some(&e)).spec.unwrap();
        let ports: Vec<_> = np.egress.unwrap()[0]
            .ports
            .clone()
            .unwrap()
            .into_iter()
            .filter_map(|p| p.port)
            .collect();
        assert_eq!(ports, vec![IntOrString::Int(6432), IntOrString::Int(5433)]);
    }

    #[test]
    fn jobs_with_an_iam_role_reach_sts_and_the_pod_identity_agent() {
        let minio = with(iam_role_site(), |s| {
            s.spec.backup.as_mut().unwrap().object_store.endpoint_url =
                Some("http://minio.minio.svc:9000".into())
        });
        let np = jobs(&valid(&minio), None).unwrap().spec.unwrap();
        let egress = np.egress.unwrap();
        let store_ports: Vec<IntOrString> = egress[0]
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .filter_map(|p| p.port.clone())
            .collect();
        assert_eq!(store_ports, [IntOrString::Int(9000), IntOrString::Int(443)]);
        let agent = egress.last().unwrap();
        assert_eq!(
            agent.to.as_ref().unwrap()[0]
                .ip_block
                .as_ref()
                .unwrap()
                .cidr,
            "169.254.170.23/32"
        );
        // with a key: the store's port only, no agent
        let keyed = with(demo(), |s| s.spec.backup = Some(backup_spec()));
        let egress = jobs(&valid(&keyed), None)
            .unwrap()
            .spec
            .unwrap()
            .egress
            .unwrap();
        assert_eq!(egress[0].ports.as_ref().unwrap().len(), 1);
        assert!(egress.iter().all(|r| {
            r.to.as_ref()
                .is_none_or(|to| to.iter().all(|p| p.ip_block.is_none()))
        }));
    }
}
