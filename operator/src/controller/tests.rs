//! Mock API server tests of the reconcile pipeline (see `crate::fixtures`).

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::apply::{Applied, with_hash};
use super::*;
use crate::build::test_support::*;
use crate::build::{Credentials, Inputs, Kind};
use crate::crd::PhotoSite;
use crate::fixtures::*;

const NS: &str = "photos";

fn creds() -> Credentials {
    Credentials {
        session_key: "session".into(),
        admin_password: "password".into(),
    }
}

fn guard(site: PhotoSite) -> Arc<DeserializeGuard<PhotoSite>> {
    Arc::new(DeserializeGuard(Ok(site)))
}

fn ready_deployment_status(replicas: i64) -> Value {
    json!({"observedGeneration": 1, "replicas": replicas, "readyReplicas": replicas,
           "updatedReplicas": replicas, "availableReplicas": replicas})
}

fn ready_cluster_status(instances: i64) -> Value {
    json!({"readyInstances": instances, "phase": "Cluster in healthy state",
           "conditions": [{"type": "Ready", "status": "True", "reason": "ClusterIsReady",
                           "message": "Cluster is Ready", "lastTransitionTime": "2026-01-01T00:00:00Z"}]})
}

/// Live objects of a converged site: every desired child as applied, with ready statuses.
fn converged(site: &PhotoSite) -> Vec<(Kind, Value)> {
    let desired = crate::build::desired(
        site,
        &Inputs {
            credentials: Some(creds()),
            prometheus_available: true,
        },
    )
    .unwrap();
    desired
        .children
        .iter()
        .map(|c| {
            let mut o = with_hash(&c.object).unwrap();
            o["metadata"]["generation"] = json!(1);
            o["metadata"]["resourceVersion"] = json!("7");
            match c.kind {
                Kind::Deployment => {
                    o["status"] = ready_deployment_status(site.spec.replicas as i64)
                }
                Kind::DatabaseCluster => {
                    o["status"] = ready_cluster_status(site.spec.database.instances as i64)
                }
                _ => {}
            }
            (c.kind, o)
        })
        .collect()
}

/// The site with the status a converged reconcile computes.
fn with_converged_status(mut site: PhotoSite, live: &[(Kind, Value)]) -> PhotoSite {
    let applied = Applied {
        changed: vec![],
        live: live.iter().cloned().collect(),
    };
    site.status = Some(status::compute(&site, &applied));
    site
}

fn ready_of(body: &Value) -> (String, String) {
    let c = body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    (
        c["status"].as_str().unwrap().into(),
        c["reason"].as_str().unwrap().into(),
    )
}

fn new_site_steps(name: &str, kinds: &[Kind]) -> Vec<Step> {
    let mut steps = vec![get_missing(format!(
        "/api/v1/namespaces/{NS}/secrets/{name}-credentials"
    ))];
    for k in kinds {
        let child = match k {
            Kind::ConfigMap => crate::names::config_map(name),
            Kind::Secret => crate::names::credentials_secret(name),
            Kind::PersistentVolumeClaim => crate::names::originals_claim(name),
            Kind::DatabaseCluster => crate::names::database_cluster(name),
            _ => crate::names::app(name),
        };
        steps.push(apply(*k, NS, &child));
    }
    steps
}

const DEMO_KINDS: [Kind; 9] = [
    Kind::ServiceAccount,
    Kind::ConfigMap,
    Kind::Secret,
    Kind::PersistentVolumeClaim,
    Kind::DatabaseCluster,
    Kind::Service,
    Kind::PodDisruptionBudget,
    Kind::NetworkPolicy,
    Kind::Deployment,
];

#[tokio::test]
async fn new_photosite_applies_every_child_then_status() {
    let (ctx, server) = Context::test(fixtures_stores(&[]));
    let mut steps = new_site_steps("demo", &DEMO_KINDS);
    // the generated secret carries both keys
    steps[3] = apply(Kind::Secret, NS, "demo-credentials").check(|b| {
        assert!(
            b["data"]["session-key"]
                .as_str()
                .is_some_and(|s| s.len() > 40)
        );
        assert!(b["data"]["admin-password"].is_string());
        assert_eq!(b["metadata"]["ownerReferences"][0]["kind"], "PhotoSite");
    });
    steps.push(status_patch(NS, "demo").check(|b| {
        assert_eq!(b["status"]["observedGeneration"], 1);
        assert_eq!(
            b["status"]["selector"],
            "app.kubernetes.io/instance=demo,app.kubernetes.io/name=photo-server"
        );
        for c in b["status"]["conditions"].as_array().unwrap() {
            assert_eq!(c["observedGeneration"], 1, "{c}");
        }
        assert_eq!(ready_of(b), ("False".into(), "DatabaseNotReady".into()));
    }));
    steps.push(event(NS, "Normal", "Applied"));
    let verifier = server.run(steps);
    let action = reconcile(guard(demo()), ctx.clone()).await.unwrap();
    assert_eq!(action, Action::requeue(PROGRESSING_REQUEUE));
    verifier.await.unwrap();
    assert!(
        ctx.metrics
            .encode()
            .contains("photo_operator_objects_applied_total{kind=\"Deployment\"} 1")
    );
}

fn fixtures_stores(objects: &[(Kind, Value)]) -> Stores {
    crate::fixtures::stores(objects)
}

#[tokio::test]
async fn converged_site_makes_no_requests() {
    for site in [demo(), fakeflickr()] {
        let live = converged(&site);
        let site = with_converged_status(site, &live);
        let (ctx, server) = Context::test(fixtures_stores(&live));
        let verifier = server.run(vec![]);
        let action = reconcile(guard(site), ctx).await.unwrap();
        assert_eq!(action, Action::requeue(RESYNC));
        assert!(verifier.await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn spec_change_applies_only_what_changed() {
    let site = demo();
    let live = converged(&site);
    let mut site = with_converged_status(site, &live);
    site.spec.image = "ghcr.io/photostack/photo-server:0.2.0".into();
    site.metadata.generation = Some(2);
    let (ctx, server) = Context::test(fixtures_stores(&live));
    let steps = vec![
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
    ];
    let verifier = server.run(steps);
    reconcile(guard(site), ctx).await.unwrap();
    verifier.await.unwrap();
}

#[tokio::test]
async fn config_change_rolls_pods() {
    let site = demo();
    let live = converged(&site);
    let mut site = with_converged_status(site, &live);
    site.spec.renditions = vec![320, 1024];
    site.metadata.generation = Some(2);
    let (ctx, server) = Context::test(fixtures_stores(&live));
    let old_hash = live.iter().find(|(k, _)| *k == Kind::Deployment).unwrap().1["spec"]["template"]
        ["metadata"]["annotations"]["photostack.io/config-hash"]
        .clone();
    let steps = vec![
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
    ];
    let verifier = server.run(steps);
    reconcile(guard(site), ctx).await.unwrap();
    verifier.await.unwrap();
}

#[tokio::test]
async fn scaling_copies_replicas_to_the_deployment() {
    let site = demo();
    let live = converged(&site);
    let mut site = with_converged_status(site, &live);
    site.spec.replicas = 5; // kubectl scale / the HPA through the scale subresource
    site.metadata.generation = Some(2);
    let (ctx, server) = Context::test(fixtures_stores(&live));
    let steps = vec![
        apply(Kind::Deployment, NS, "demo").check(|b| assert_eq!(b["spec"]["replicas"], 5)),
        status_patch(NS, "demo").check(|b| {
            assert_eq!(ready_of(b), ("False".into(), "PodsNotReady".into()));
            let p = b["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "Progressing")
                .unwrap()
                .clone();
            assert_eq!(p["status"], "True");
        }),
        event(NS, "Normal", "Applied"),
    ];
    let verifier = server.run(steps);
    let action = reconcile(guard(site), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(PROGRESSING_REQUEUE));
    verifier.await.unwrap();
}

#[tokio::test]
async fn autoscaling_on_creates_hpa_targeting_the_photosite() {
    let site = demo();
    let live = converged(&site);
    let mut site = with_converged_status(site, &live);
    site.spec.autoscaling.enabled = true;
    site.metadata.generation = Some(2);
    let (ctx, server) = Context::test(fixtures_stores(&live));
    let steps = vec![
        apply(Kind::HorizontalPodAutoscaler, NS, "demo").check(|b| {
            assert_eq!(b["spec"]["scaleTargetRef"]["kind"], "PhotoSite");
            assert_eq!(
                b["spec"]["scaleTargetRef"]["apiVersion"],
                "photostack.io/v1alpha1"
            );
        }),
        status_patch(NS, "demo"),
        event(NS, "Normal", "Applied"),
    ];
    let verifier = server.run(steps);
    reconcile(guard(site), ctx).await.unwrap();
    verifier.await.unwrap();
}

#[tokio::test]
async fn autoscaling_off_deletes_hpa_and_monitoring_off_deletes_monitors() {
    let site = fakeflickr();
    let live = converged(&site);
    let mut site = with_converged_status(site, &live);
    site.spec.autoscaling.enabled = false;
    site.spec.monitoring.alerts = false;
    site.spec.monitoring.service_monitor = false;
    site.metadata.generation = Some(2);
    let (ctx, server) = Context::test(fixtures_stores(&live));
    let steps = vec![
        Step::new(
            Method::DELETE,
            "/apis/autoscaling/v2/namespaces/photos/horizontalpodautoscalers/fakeflickr?",
            Reply::Json(200, status_error(200, "Success")),
        ),
        Step::new(
            Method::DELETE,
            "/apis/monitoring.coreos.com/v1/namespaces/photos/servicemonitors/fakeflickr?",
            Reply::Json(404, status_error(404, "NotFound")),
        ),
        Step::new(
            Method::DELETE,
            "/apis/monitoring.coreos.com/v1/namespaces/photos/prometheusrules/fakeflickr?",
            Reply::Json(200, status_error(200, "Success")),
        ),
        status_patch(NS, "fakeflickr"),
        event(NS, "Normal", "Deleted"),
    ];
    let verifier = server.run(steps);
    reconcile(guard(site), ctx).await.unwrap();
    let seen = verifier.await.unwrap();
    assert!(
        seen[0].2["propagationPolicy"] == "Background",
        "{:?}",
        seen[0].2
    );
}

#[tokio::test]
async fn database_not_ready_keeps_site_not_ready() {
    let site = demo();
    let mut live = converged(&site);
    for (k, o) in live.iter_mut() {
        if *k == Kind::DatabaseCluster {
            o["status"] = json!({"readyInstances": 1, "phase": "Setting up primary"});
        }
    }
    let (ctx, server) = Context::test(fixtures_stores(&live));
    let steps = vec![status_patch(NS, "demo").check(|b| {
        assert_eq!(ready_of(b), ("False".into(), "DatabaseNotReady".into()));
        assert_eq!(b["status"]["database"], "Pending");
        let db = b["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "DatabaseReady")
            .unwrap()
            .clone();
        assert_eq!(db["status"], "False");
        assert!(db["message"].as_str().unwrap().contains("1/2"));
    })];
    let verifier = server.run(steps);
    let action = reconcile(guard(site), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(PROGRESSING_REQUEUE));
    verifier.await.unwrap();
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
    for policy in [
        crate::crd::DataPolicy::Retain,
        crate::crd::DataPolicy::Delete,
    ] {
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
        let delete = policy == crate::crd::DataPolicy::Delete;
        assert_eq!(owned(Kind::PersistentVolumeClaim), delete);
        assert_eq!(owned(Kind::DatabaseCluster), delete);
        assert!(owned(Kind::Deployment));
        let (ctx, server) = Context::test(fixtures_stores(&live));
        let verifier = server.run(vec![]);
        assert_eq!(
            reconcile(guard(site), ctx).await.unwrap(),
            Action::await_change()
        );
        assert!(verifier.await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn switching_to_delete_policy_reapplies_data_with_owner() {
    let site = demo();
    let live = converged(&site);
    let mut site = with_converged_status(site, &live);
    site.spec.data_policy = crate::crd::DataPolicy::Delete;
    site.metadata.generation = Some(2);
    let (ctx, server) = Context::test(fixtures_stores(&live));
    let steps = vec![
        apply(Kind::PersistentVolumeClaim, NS, "demo-originals")
            .check(|b| assert_eq!(b["metadata"]["ownerReferences"][0]["name"], "demo")),
        apply(Kind::DatabaseCluster, NS, "demo-db")
            .check(|b| assert_eq!(b["metadata"]["ownerReferences"][0]["name"], "demo")),
        status_patch(NS, "demo"),
        event(NS, "Normal", "Applied"),
    ];
    let verifier = server.run(steps);
    reconcile(guard(site), ctx).await.unwrap();
    verifier.await.unwrap();
}

async fn api_error(code: u16, reason: &'static str, label: &str) {
    let (ctx, server) = Context::test(fixtures_stores(&[]));
    let steps = vec![
        get_missing(format!("/api/v1/namespaces/{NS}/secrets/demo-credentials")),
        Step::new(
            Method::PATCH,
            apply_uri(Kind::ServiceAccount, NS, "demo"),
            Reply::Json(code, status_error(code, reason)),
        ),
        event(
            NS,
            "Warning",
            match code {
                409 => "ApplyConflict",
                403 => "Forbidden",
                _ => "ApiError",
            },
        ),
    ];
    let verifier = server.run(steps);
    let err = reconcile(guard(demo()), ctx.clone()).await.unwrap_err();
    assert_eq!(err.metric_label(), label);
    assert!(!err.is_user_error());
    verifier.await.unwrap();
    let metrics = ctx.metrics.encode();
    assert!(
        metrics.contains(&format!(
            "photo_operator_reconcile_errors_total{{reason=\"{label}\"}} 1"
        )),
        "{metrics}"
    );
    // errors back off exponentially and reset on success
    let g = guard(demo());
    let first = error_policy(g.clone(), &err, ctx.clone());
    let second = error_policy(g, &err, ctx.clone());
    assert_eq!(first, Action::requeue(Duration::from_secs(5)));
    assert_eq!(second, Action::requeue(Duration::from_secs(10)));
}

#[tokio::test]
async fn api_conflict_is_an_error_with_backoff() {
    api_error(409, "Conflict", "api_conflict").await;
}

#[tokio::test]
async fn api_forbidden_is_an_error_with_backoff() {
    api_error(403, "Forbidden", "api_forbidden").await;
}

#[tokio::test]
async fn api_server_error_is_an_error_with_backoff() {
    api_error(500, "InternalError", "api_server_error").await;
}

#[tokio::test]
async fn missing_existing_claim_degrades_without_crash_loop() {
    let site = with(demo(), |s| {
        s.spec.storage.originals.existing_claim = Some("photos-nfs".into())
    });
    let (ctx, server) = Context::test(fixtures_stores(&[]));
    let steps = vec![
        get_missing(format!("/api/v1/namespaces/{NS}/secrets/demo-credentials")),
        get_missing(format!(
            "/api/v1/namespaces/{NS}/persistentvolumeclaims/photos-nfs"
        )),
        status_patch(NS, "demo").check(|b| {
            let d = b["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "Degraded")
                .unwrap()
                .clone();
            assert_eq!(d["status"], "True");
            assert_eq!(d["reason"], "ExistingClaimNotFound");
            assert!(d["message"].as_str().unwrap().contains("photos-nfs"));
            assert_eq!(
                ready_of(b),
                ("False".into(), "ExistingClaimNotFound".into())
            );
        }),
        event(NS, "Warning", "ExistingClaimNotFound"),
    ];
    let verifier = server.run(steps);
    let action = reconcile(guard(site), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(USER_ERROR_REQUEUE));
    verifier.await.unwrap();
}

#[tokio::test]
async fn invalid_object_is_reported_and_skipped() {
    let (ctx, server) = Context::test(fixtures_stores(&[]));
    let bad: DeserializeGuard<PhotoSite> = serde_json::from_value(json!({
        "apiVersion": "photostack.io/v1alpha1", "kind": "PhotoSite",
        "metadata": {"name": "broken", "namespace": NS, "uid": "u"},
        "spec": {"replicas": "many"}
    }))
    .unwrap();
    assert!(bad.0.is_err());
    let verifier = server.run(vec![event(NS, "Warning", "InvalidObject")]);
    let action = reconcile(Arc::new(bad), ctx).await.unwrap();
    assert_eq!(action, Action::await_change());
    verifier.await.unwrap();
}

#[tokio::test]
async fn external_database_secret_is_checked() {
    let site = with(demo(), |s| {
        s.spec.database.external = Some(crate::crd::ExternalDatabaseSpec {
            secret_name: "rds".into(),
            key: "uri".into(),
        })
    });
    let (ctx, server) = Context::test(fixtures_stores(&[]));
    let steps = vec![
        get_missing(format!("/api/v1/namespaces/{NS}/secrets/demo-credentials")),
        Step::new(
            Method::GET,
            format!("/api/v1/namespaces/{NS}/secrets/rds"),
            Reply::Json(
                200,
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rds"}, "data": {"url": "eA=="}}),
            ),
        ),
        status_patch(NS, "demo").check(|b| assert_eq!(ready_of(b).1, "DatabaseSecretNotFound")),
        event(NS, "Warning", "DatabaseSecretNotFound"),
    ];
    let verifier = server.run(steps);
    reconcile(guard(site), ctx).await.unwrap();
    verifier.await.unwrap();
}
