//! A site's life without failures: created, converged, changed, scaled, deleted.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::scenario::*;
use crate::children::Kind;
use crate::controller::{PROGRESSING_REQUEUE, RESYNC};
use crate::crd::DataPolicy;
use crate::fixtures::*;
use crate::test_support::*;

#[tokio::test]
async fn new_photosite_applies_every_child_then_status() {
    let mut steps = new_site_steps(&demo());
    // the generated secret carries both keys
    steps[position(&demo(), Kind::Secret)] =
        apply(Kind::Secret, NS, "demo-credentials").check(|b| {
            assert!(
                b["data"]["session-key"]
                    .as_str()
                    .is_some_and(|s| s.len() > 40)
            );
            assert!(b["data"]["admin-password"].is_string());
            assert_eq!(b["metadata"]["ownerReferences"][0]["kind"], "PhotoSite");
        });
    let run = Scenario::new()
        .expect(steps)
        .expect([
            status_patch(NS, "demo").check(|b| {
                assert_eq!(b["status"]["observedGeneration"], 1);
                assert_eq!(
                    b["status"]["selector"],
                    "app.kubernetes.io/instance=demo,app.kubernetes.io/name=photo-server"
                );
                for c in b["status"]["conditions"].as_array().unwrap() {
                    assert_eq!(c["observedGeneration"], 1, "{c}");
                }
                assert_eq!(ready_of(b), ("False".into(), "DatabaseNotReady".into()));
            }),
            event(NS, "Normal", "Applied"),
        ])
        .reconcile(demo())
        .await;
    assert_eq!(run.action(), Action::requeue(PROGRESSING_REQUEUE));
    assert!(
        run.ctx
            .metrics
            .encode()
            .contains("photo_operator_objects_applied_total{kind=\"Deployment\"} 1")
    );
}

/// The reconcile that the first watch event of a new site's children triggers runs before
/// the other events have arrived (here no watch runs at all: the stores see only what the
/// operator records). It must find the operator's own applies and write nothing: one apply
/// per child, however slowly the API server delivers the events.
#[tokio::test]
async fn a_reconcile_before_the_watch_events_arrive_writes_nothing_again() {
    let written = Arc::new(std::sync::Mutex::new(Value::Null));
    let status = written.clone();
    // the verifier fails on any request after these (or the client finds the mock closed)
    let session = Scenario::new()
        .expect(new_site_steps(&demo()))
        .expect([
            status_patch(NS, "demo").check(move |b| *status.lock().unwrap() = b.clone()),
            event(NS, "Normal", "Applied"),
        ])
        .start();
    session.reconcile(demo()).await.unwrap();
    let mut site = demo();
    let status = written.lock().unwrap()["status"].clone();
    site.status = Some(serde_json::from_value(status).unwrap());
    session.reconcile(site).await.unwrap();
    session.finish().await;
}

#[tokio::test]
async fn converged_site_makes_no_requests() {
    for site in [demo(), fakeflickr()] {
        let live = converged(&site);
        let site = with_converged_status(site, &live);
        let run = Scenario::with_live(&live).reconcile(site).await;
        assert_eq!(run.action(), Action::requeue(RESYNC));
        assert!(run.seen.is_empty());
    }
}

#[tokio::test]
async fn spec_change_applies_only_what_changed() {
    let (site, live) = changed(demo(), |s| {
        s.spec.image = "ghcr.io/photostack/photo-server:0.2.0".into()
    });
    Scenario::with_live(&live)
        .expect([
            apply(Kind::Deployment, NS, "demo").check(|b| {
                assert_eq!(
                    b["spec"]["template"]["spec"]["containers"][0]["image"],
                    "ghcr.io/photostack/photo-server:0.2.0"
                );
            }),
            status_patch(NS, "demo").check(|b| {
                assert_eq!(b["status"]["observedGeneration"], 2);
                assert_eq!(ready_of(b).0, "False");
            }),
            event(NS, "Normal", "Applied"),
        ])
        .reconcile(site)
        .await
        .action();
}

#[tokio::test]
async fn config_change_rolls_pods() {
    let (site, live) = changed(demo(), |s| s.spec.renditions = vec![320, 1024]);
    let old_hash = live.iter().find(|(k, _)| *k == Kind::Deployment).unwrap().1["spec"]["template"]
        ["metadata"]["annotations"]["photostack.io/config-hash"]
        .clone();
    Scenario::with_live(&live)
        .expect([
            apply(Kind::ConfigMap, NS, "demo-config")
                .check(|b| assert_eq!(b["data"]["PHOTO_RENDITIONS"], "320,1024")),
            apply(Kind::Deployment, NS, "demo").check(move |b| {
                assert_ne!(
                    b["spec"]["template"]["metadata"]["annotations"]["photostack.io/config-hash"],
                    old_hash
                )
            }),
            status_patch(NS, "demo"),
            event(NS, "Normal", "Applied"),
        ])
        .reconcile(site)
        .await
        .action();
}

#[tokio::test]
async fn scaling_copies_replicas_to_the_deployment() {
    // kubectl scale / the HPA through the scale subresource
    let (site, live) = changed(demo(), |s| s.spec.replicas = 5);
    let run = Scenario::with_live(&live)
        .expect([
            apply(Kind::Deployment, NS, "demo").check(|b| assert_eq!(b["spec"]["replicas"], 5)),
            status_patch(NS, "demo").check(|b| {
                assert_eq!(ready_of(b), ("False".into(), "PodsNotReady".into()));
                assert_eq!(condition(b, "Progressing")["status"], "True");
            }),
            event(NS, "Normal", "Applied"),
        ])
        .reconcile(site)
        .await;
    assert_eq!(run.action(), Action::requeue(PROGRESSING_REQUEUE));
}

#[tokio::test]
async fn autoscaling_on_creates_hpa_targeting_the_photosite() {
    let (site, live) = changed(demo(), |s| s.spec.autoscaling.enabled = true);
    Scenario::with_live(&live)
        .expect([
            apply(Kind::HorizontalPodAutoscaler, NS, "demo").check(|b| {
                assert_eq!(b["spec"]["scaleTargetRef"]["kind"], "PhotoSite");
                assert_eq!(
                    b["spec"]["scaleTargetRef"]["apiVersion"],
                    "photostack.io/v1alpha1"
                );
            }),
            status_patch(NS, "demo"),
            event(NS, "Normal", "Applied"),
        ])
        .reconcile(site)
        .await
        .action();
}

#[tokio::test]
async fn autoscaling_off_deletes_hpa_and_monitoring_off_deletes_monitors() {
    let (site, live) = changed(fakeflickr(), |s| {
        s.spec.autoscaling.enabled = false;
        s.spec.monitoring.alerts = false;
        s.spec.monitoring.service_monitor = false;
    });
    let run = Scenario::with_live(&live)
        .expect([
            delete(Kind::HorizontalPodAutoscaler, NS, "fakeflickr", 200),
            delete(Kind::ServiceMonitor, NS, "fakeflickr", 404),
            delete(Kind::PodMonitor, NS, "fakeflickr-db", 200),
            delete(Kind::PrometheusRule, NS, "fakeflickr", 200),
            status_patch(NS, "fakeflickr"),
            event(NS, "Normal", "Deleted"),
        ])
        .reconcile(site)
        .await;
    run.action();
    assert!(
        run.seen[0].2["propagationPolicy"] == "Background",
        "{:?}",
        run.seen[0].2
    );
}

#[tokio::test]
async fn database_not_ready_keeps_site_not_ready() {
    let site = demo();
    let mut live = converged(&site);
    edit_live(&mut live, Kind::DatabaseCluster, |o| {
        o["status"] = json!({"readyInstances": 1, "phase": "Setting up primary"})
    });
    let run = Scenario::with_live(&live)
        .expect([status_patch(NS, "demo").check(|b| {
            assert_eq!(ready_of(b), ("False".into(), "DatabaseNotReady".into()));
            assert_eq!(b["status"]["database"], "Pending");
            let db = condition(b, "DatabaseReady");
            assert_eq!(db["status"], "False");
            assert!(db["message"].as_str().unwrap().contains("1/2"));
        })])
        .reconcile(site)
        .await;
    assert_eq!(run.action(), Action::requeue(PROGRESSING_REQUEUE));
}

#[tokio::test]
async fn status_is_not_rewritten_when_unchanged() {
    // Same inputs twice: the second status equals the first (lastTransitionTime kept).
    let site = demo();
    let live = converged(&site);
    let site = with_converged_status(site, &live);
    let first = site.status.clone().unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = with_converged_status(site, &live).status.unwrap();
    assert_eq!(first, again);
}

#[tokio::test]
async fn deletion_makes_no_requests_under_retain_and_delete() {
    // Owner references (only under Delete for data) and the garbage collector do the work.
    for policy in [DataPolicy::Retain, DataPolicy::Delete] {
        let site = with(demo(), |s| {
            s.spec.data_policy = policy;
            s.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                ));
        });
        let live = converged(&site);
        let owned = |k: Kind| {
            live.iter().find(|(x, _)| *x == k).unwrap().1["metadata"]["ownerReferences"].is_array()
        };
        let delete = policy == DataPolicy::Delete;
        assert_eq!(owned(Kind::PersistentVolumeClaim), delete);
        assert_eq!(owned(Kind::DatabaseCluster), delete);
        assert!(owned(Kind::Deployment));
        let run = Scenario::with_live(&live).reconcile(site).await;
        assert_eq!(run.action(), Action::await_change());
        assert!(run.seen.is_empty());
    }
}

#[tokio::test]
async fn switching_to_delete_policy_reapplies_data_with_owner() {
    let (site, live) = changed(demo(), |s| s.spec.data_policy = DataPolicy::Delete);
    Scenario::with_live(&live)
        .expect([
            apply(Kind::PersistentVolumeClaim, NS, "demo-originals")
                .check(|b| assert_eq!(b["metadata"]["ownerReferences"][0]["name"], "demo")),
            apply(Kind::DatabaseCluster, NS, "demo-db")
                .check(|b| assert_eq!(b["metadata"]["ownerReferences"][0]["name"], "demo")),
            status_patch(NS, "demo"),
            event(NS, "Normal", "Applied"),
        ])
        .reconcile(site)
        .await
        .action();
}

// ---- external database: its port opens the NetworkPolicy, its Secret's hash rolls the pods ----

#[tokio::test]
async fn external_database_port_and_secret_hash_reach_the_children() {
    let site = with(demo(), |s| s.spec.database.external = Some(external("rds")));
    let uri = "postgres://photos:pw@photos.cluster-x.eu-west-1.rds.amazonaws.com:6432/photos";
    let mut steps = vec![
        credentials_lookup("demo"),
        Step::new(
            Method::GET,
            format!("/api/v1/namespaces/{NS}/secrets/rds"),
            Reply::Json(
                200,
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rds"},
                       "data": {"uri": k8s_openapi::ByteString(uri.as_bytes().to_vec())}}),
            ),
        ),
    ];
    for step in apply_steps(&site, &controller_inputs()) {
        let step = if step.uri.contains("/networkpolicies/") {
            step.check(|b| assert_eq!(b["spec"]["egress"][0]["ports"][0]["port"], 6432))
        } else if step.uri.contains("/deployments/") {
            step.check(|b| {
                assert!(
                    b["spec"]["template"]["metadata"]["annotations"]["photostack.io/secrets-hash"]
                        .is_string()
                )
            })
        } else {
            step
        };
        steps.push(step);
    }
    Scenario::new()
        .expect(steps)
        .expect([status_patch(NS, "demo"), event(NS, "Normal", "Applied")])
        .reconcile(site)
        .await
        .action();
}
