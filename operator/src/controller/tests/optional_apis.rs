//! CloudNativePG, its Barman Cloud plugin or the Prometheus Operator not installed, and the
//! discovery that notices when they are.

use http::Method;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::scenario::*;
use crate::children::{Apis, Kind};
use crate::controller::{USER_ERROR_REQUEUE, discovery};
use crate::fixtures::*;
use crate::test_support::*;

#[tokio::test]
async fn without_cloudnative_pg_the_rest_appears_and_the_site_is_degraded() {
    let site = fakeflickr();
    let mut inputs = controller_inputs();
    inputs.apis.cloudnative_pg = false;
    let mut steps = vec![credentials_lookup("fakeflickr")];
    steps.extend(apply_steps(&site, &inputs));
    assert!(
        steps.len() > 10,
        "Deployment, Services, Ingress, ... still applied"
    );
    let run = Scenario::new()
        .apis(Apis {
            cloudnative_pg: false,
            ..Apis::ALL
        })
        .expect(steps)
        .expect([
            status_patch(NS, "fakeflickr").check(|b| {
                let d = condition(b, "Degraded");
                assert_eq!(d["status"], "True");
                assert_eq!(d["reason"], "CloudNativePGNotInstalled");
                assert_eq!(
                    condition(b, "DatabaseReady")["reason"],
                    "CloudNativePGNotInstalled"
                );
                assert_eq!(ready_of(b).1, "CloudNativePGNotInstalled");
                assert_eq!(b["status"]["database"], "NotInstalled");
            }),
            event(NS, "Normal", "Applied"),
            event(NS, "Warning", "CloudNativePGNotInstalled"),
        ])
        .reconcile(site)
        .await;
    assert_eq!(run.action(), Action::requeue(USER_ERROR_REQUEUE));
    assert!(!requested(&run.seen, "postgresql.cnpg.io"));
    for kind in [
        "deployments/fakeflickr",
        "services/fakeflickr",
        "ingresses/fakeflickr",
    ] {
        assert!(requested(&run.seen, kind), "{kind}");
    }
}

#[tokio::test]
async fn ignored_monitoring_sends_one_event_per_generation() {
    let site = fakeflickr();
    let live: Vec<(Kind, Value)> = converged(&site)
        .into_iter()
        .filter(|(k, _)| !k.is_monitoring())
        .collect();
    let site = with_converged_status(site, &live);
    let no_prometheus = Apis {
        prometheus: false,
        ..Apis::ALL
    };
    // converged otherwise: the first reconcile warns, the second writes nothing at all
    let session = Scenario::with_live(&live)
        .apis(no_prometheus)
        .expect([event(NS, "Warning", "MonitoringIgnored")])
        .start();
    session.reconcile(site.clone()).await.unwrap();
    session.reconcile(site.clone()).await.unwrap();
    session.finish().await;
    // a new generation warns again
    let session = Scenario::with_live(&live)
        .apis(no_prometheus)
        .expect([
            event(NS, "Warning", "MonitoringIgnored"),
            // the same Event again: the recorder counts it on the first one
            event_repeated(NS, "MonitoringIgnored"),
        ])
        .start();
    session.reconcile(site.clone()).await.unwrap();
    let mut next = site.clone();
    next.metadata.generation = Some(2);
    if let Some(st) = next.status.as_mut() {
        // as the status of generation 2 would read, so only the event is written
        st.observed_generation = Some(2);
        for c in &mut st.conditions {
            c.observed_generation = Some(2);
        }
    }
    session.reconcile(next).await.unwrap();
    session.finish().await;
}

#[tokio::test]
async fn discovery_finds_cloudnative_pg_and_the_prometheus_operator() {
    let resources = |kinds: &[&str]| {
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "x/v1",
               "resources": kinds.iter().map(|k| json!({"name": k.to_lowercase(), "singularName": "",
                   "namespaced": true, "kind": k, "verbs": ["get"]})).collect::<Vec<_>>()})
    };
    let session = Scenario::new()
        .expect([
            // first look: CloudNativePG half installed (no ScheduledBackup: not served), its
            // Barman Cloud plugin missing, the Prometheus Operator present
            Step::new(
                Method::GET,
                "/apis/postgresql.cnpg.io/v1",
                Reply::Json(200, resources(&["Cluster"])),
            ),
            Step::new(
                Method::GET,
                "/apis/monitoring.coreos.com/v1",
                Reply::Json(
                    200,
                    resources(&["ServiceMonitor", "PodMonitor", "PrometheusRule"]),
                ),
            ),
            get_missing("/apis/barmancloud.cnpg.io/v1"),
            get_missing("/apis/gateway.networking.k8s.io/v1"),
            // later: both installed; discovery of the other group fails: keep its answer
            Step::new(
                Method::GET,
                "/apis/postgresql.cnpg.io/v1",
                Reply::Json(200, resources(&["Cluster", "Backup", "ScheduledBackup"])),
            ),
            Step::new(
                Method::GET,
                "/apis/monitoring.coreos.com/v1",
                Reply::Json(503, status_error(503, "ServiceUnavailable")),
            ),
            Step::new(
                Method::GET,
                "/apis/barmancloud.cnpg.io/v1",
                Reply::Json(200, resources(&["ObjectStore"])),
            ),
            Step::new(
                Method::GET,
                "/apis/gateway.networking.k8s.io/v1",
                Reply::Json(
                    200,
                    resources(&["Gateway", "GatewayClass", "HTTPRoute", "GRPCRoute"]),
                ),
            ),
        ])
        .start();
    let ctx = session.ctx.clone();
    let first = discovery::discover(&ctx.client, Apis::NONE).await;
    assert_eq!(
        first,
        Apis {
            prometheus: true,
            ..Apis::NONE
        }
    );
    assert!(ctx.capabilities.set(first));
    let second = discovery::discover(&ctx.client, ctx.capabilities.get()).await;
    assert_eq!(second, Apis::ALL);
    assert!(
        ctx.capabilities.set(second),
        "a change triggers a reconcile of every site"
    );
    session.finish().await;
}
