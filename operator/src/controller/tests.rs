//! Mock API server tests of the reconcile pipeline (see `crate::fixtures`).

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::ssa::with_hash;
use super::*;
use crate::children::{Apis, Credentials, Inputs, Kind};
use crate::crd::PhotoSite;
use crate::fixtures::*;
use crate::test_support::*;

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

fn controller_inputs() -> Inputs {
    Inputs {
        credentials: Some(creds()),
        apis: Apis::ALL,
        external_database: None,
        originals_restored: false,
    }
}

/// Live objects of a converged site: every desired child as applied, with ready statuses.
fn converged(site: &PhotoSite) -> Vec<(Kind, Value)> {
    let desired = build_all(site, &controller_inputs());
    desired
        .children
        .iter()
        .map(|c| {
            let mut o = with_hash(&c.json()).unwrap();
            o["metadata"]["generation"] = json!(1);
            o["metadata"]["resourceVersion"] = json!("7");
            match c.kind {
                Kind::Deployment => {
                    o["status"] = ready_deployment_status(site.spec.replicas as i64)
                }
                Kind::DatabaseCluster => {
                    o["status"] = ready_cluster_status(site.spec.database.instances as i64)
                }
                Kind::PersistentVolumeClaim => o["status"] = json!({"phase": "Bound"}),
                _ => {}
            }
            (c.kind, o)
        })
        .collect()
}

/// What the status of `site` is computed from when its children are `live`.
fn observations(site: &PhotoSite, live: &[(Kind, Value)]) -> status::Observations<'static> {
    let live: std::collections::HashMap<_, _> = live
        .iter()
        .map(|(k, o)| {
            let name = o["metadata"]["name"].as_str().unwrap().to_string();
            let child = observe::ObservedChild::from_json(*k, o.clone()).unwrap();
            ((*k, name), child)
        })
        .collect();
    let v = valid(site);
    let job = live.get(&(Kind::Job, crate::names::restore(v.name)));
    let restore = restore::decide(&v, site.status.as_ref(), job);
    status::Observations {
        live,
        restore,
        ..status::Observations::default()
    }
}

/// The site with the status a converged reconcile computes.
fn with_converged_status(mut site: PhotoSite, live: &[(Kind, Value)]) -> PhotoSite {
    let obs = observations(&site, live);
    let status = status::compute(&site, &valid(&site), &obs);
    site.status = Some(status);
    site
}

fn condition(body: &Value, type_: &str) -> Value {
    body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {body}"))
        .clone()
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

/// The applies of a new site's children (after the credentials Secret lookup), in order.
fn apply_steps(site: &PhotoSite, inputs: &Inputs) -> Vec<Step> {
    build_all(site, inputs)
        .children
        .iter()
        .map(|c| apply(c.kind, NS, &c.name))
        .collect()
}

fn new_site_steps(site: &PhotoSite) -> Vec<Step> {
    let name = site.metadata.name.as_deref().unwrap();
    let mut steps = vec![get_missing(format!(
        "/api/v1/namespaces/{NS}/secrets/{name}-credentials"
    ))];
    steps.extend(apply_steps(site, &controller_inputs()));
    steps
}

fn position(site: &PhotoSite, kind: Kind) -> usize {
    // + 1: the credentials Secret lookup comes first
    1 + build_all(site, &controller_inputs())
        .children
        .iter()
        .position(|c| c.kind == kind)
        .unwrap()
}

#[tokio::test]
async fn new_photosite_applies_every_child_then_status() {
    let (ctx, server) = Context::test(fixtures_stores(&[]));
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

/// The reconcile that the first watch event of a new site's children triggers runs before
/// the other events have arrived (here no watch runs at all: the stores see only what the
/// operator records). It must find the operator's own applies and write nothing: one apply
/// per child, however slowly the API server delivers the events.
#[tokio::test]
async fn a_reconcile_before_the_watch_events_arrive_writes_nothing_again() {
    let (ctx, server) = Context::test(fixtures_stores(&[]));
    let written = Arc::new(std::sync::Mutex::new(Value::Null));
    let status = written.clone();
    let mut steps = new_site_steps(&demo());
    steps.push(status_patch(NS, "demo").check(move |b| *status.lock().unwrap() = b.clone()));
    steps.push(event(NS, "Normal", "Applied"));
    // the verifier fails on any request after these (or the client finds the mock closed)
    let verifier = server.run(steps);
    reconcile(guard(demo()), ctx.clone()).await.unwrap();
    let mut site = demo();
    let status = written.lock().unwrap()["status"].clone();
    site.status = Some(serde_json::from_value(status).unwrap());
    reconcile(guard(site), ctx).await.unwrap();
    verifier.await.unwrap();
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
            "/apis/monitoring.coreos.com/v1/namespaces/photos/podmonitors/fakeflickr-db?",
            Reply::Json(200, status_error(200, "Success")),
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
                _ => "ApiError",
            },
        ),
    ];
    let verifier = server.run(steps);
    let err = reconcile(guard(demo()), ctx.clone()).await.unwrap_err();
    assert_eq!(err.metric_label(), label);
    // the error names the stage and the child
    assert!(
        err.to_string()
            .starts_with("apply ServiceAccount photos/demo: "),
        "{err}"
    );
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
    let site = with(demo(), |s| s.spec.database.external = Some(external("rds")));
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

// ---- one refused child does not stop the others (defect: a PVC resize refused with 403
// left the Deployment, HPA and Ingress un-updated, retried forever without a condition) ----

#[tokio::test]
async fn refused_claim_resize_is_degraded_and_the_rest_is_still_applied() {
    let site = demo();
    let live = converged(&site);
    let mut site = with_converged_status(site, &live);
    site.spec.storage.originals.size.0 = "20Gi".into();
    site.spec.image = "ghcr.io/photostack/photo-server:0.2.0".into();
    site.metadata.generation = Some(2);
    let (ctx, server) = Context::test(fixtures_stores(&live));
    let refusal = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "persistentvolumeclaims \"demo-originals\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize",
        "reason": "Forbidden", "code": 403
    });
    let steps = vec![
        Step::new(
            Method::PATCH,
            apply_uri(Kind::PersistentVolumeClaim, NS, "demo-originals"),
            Reply::Json(403, refusal),
        ),
        // the Deployment after it is still applied
        apply(Kind::Deployment, NS, "demo").check(|b| {
            assert_eq!(
                b["spec"]["template"]["spec"]["containers"][0]["image"],
                "ghcr.io/photostack/photo-server:0.2.0"
            )
        }),
        status_patch(NS, "demo").check(|b| {
            assert_eq!(b["status"]["observedGeneration"], 2);
            let d = condition(b, "Degraded");
            assert_eq!(d["status"], "True");
            assert_eq!(d["reason"], "ChildRefused");
            assert_eq!(d["observedGeneration"], 2);
            let m = d["message"].as_str().unwrap();
            assert!(
                m.starts_with("PersistentVolumeClaim demo-originals: "),
                "{m}"
            );
            assert!(m.contains("must support resize"), "{m}");
            assert_eq!(ready_of(b), ("False".into(), "ChildRefused".into()));
        }),
        event(NS, "Normal", "Applied"),
        event(NS, "Warning", "ChildRefused"),
    ];
    let verifier = server.run(steps);
    // reported, retried slowly: not an error with a hot backoff loop
    let action = reconcile(guard(site), ctx.clone()).await.unwrap();
    assert_eq!(action, Action::requeue(USER_ERROR_REQUEUE));
    verifier.await.unwrap();
    assert!(
        ctx.metrics
            .encode()
            .contains("photo_operator_reconciles_total{result=\"degraded\"} 1")
    );
}

#[tokio::test]
async fn forbidden_child_is_reported_and_the_others_applied() {
    let site = demo();
    let (ctx, server) = Context::test(fixtures_stores(&[]));
    let mut steps = new_site_steps(&site);
    steps[1] = Step::new(
        Method::PATCH,
        apply_uri(Kind::ServiceAccount, NS, "demo"),
        Reply::Json(403, status_error(403, "Forbidden")),
    );
    steps.push(status_patch(NS, "demo").check(|b| {
        let d = condition(b, "Degraded");
        assert_eq!(d["status"], "True");
        assert_eq!(d["message"], "ServiceAccount demo: mock Forbidden");
    }));
    steps.push(event(NS, "Normal", "Applied"));
    steps.push(event(NS, "Warning", "ChildRefused"));
    let verifier = server.run(steps);
    let action = reconcile(guard(site), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(USER_ERROR_REQUEUE));
    let seen = verifier.await.unwrap();
    // every other child was applied
    assert!(
        seen.iter()
            .any(|(_, uri, _)| uri.contains("/deployments/demo"))
    );
}

#[tokio::test]
async fn immutable_claim_change_is_held_back_without_a_request() {
    // A PhotoSite re-created under Retain adopts the old claim; its class cannot change.
    let site = with(demo(), |s| {
        s.spec.storage.originals.storage_class_name = Some("fast".into())
    });
    let mut live = converged(&site);
    for (k, o) in live.iter_mut() {
        if *k == Kind::PersistentVolumeClaim {
            o["spec"]["storageClassName"] = json!("standard");
        }
    }
    let site = with_converged_status(site, &live);
    let (ctx, server) = Context::test(fixtures_stores(&live));
    let steps = vec![
        status_patch(NS, "demo").check(|b| {
            let d = condition(b, "Degraded");
            assert_eq!(d["reason"], "ChildRefused");
            assert!(
                d["message"]
                    .as_str()
                    .unwrap()
                    .contains("storage class is immutable"),
                "{d}"
            );
        }),
        event(NS, "Warning", "ChildRefused"),
    ];
    let verifier = server.run(steps);
    reconcile(guard(site.clone()), ctx.clone()).await.unwrap();
    let seen = verifier.await.unwrap();
    assert!(
        seen.iter()
            .all(|(_, uri, _)| !uri.contains("persistentvolumeclaims")),
        "the claim must not be sent"
    );
}

// ---- CloudNativePG or the Prometheus Operator not installed ----

#[tokio::test]
async fn without_cloudnative_pg_the_rest_appears_and_the_site_is_degraded() {
    let site = fakeflickr();
    let (ctx, server) = Context::test(fixtures_stores(&[]));
    ctx.capabilities.set(Apis {
        cloudnative_pg: false,
        ..Apis::ALL
    });
    let mut inputs = controller_inputs();
    inputs.apis.cloudnative_pg = false;
    let mut steps = vec![get_missing(format!(
        "/api/v1/namespaces/{NS}/secrets/fakeflickr-credentials"
    ))];
    steps.extend(apply_steps(&site, &inputs));
    assert!(
        steps.len() > 10,
        "Deployment, Services, Ingress, ... still applied"
    );
    steps.push(status_patch(NS, "fakeflickr").check(|b| {
        let d = condition(b, "Degraded");
        assert_eq!(d["status"], "True");
        assert_eq!(d["reason"], "CloudNativePGNotInstalled");
        assert_eq!(
            condition(b, "DatabaseReady")["reason"],
            "CloudNativePGNotInstalled"
        );
        assert_eq!(ready_of(b).1, "CloudNativePGNotInstalled");
        assert_eq!(b["status"]["database"], "NotInstalled");
    }));
    steps.push(event(NS, "Normal", "Applied"));
    steps.push(event(NS, "Warning", "CloudNativePGNotInstalled"));
    let verifier = server.run(steps);
    let action = reconcile(guard(site), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(USER_ERROR_REQUEUE));
    let seen = verifier.await.unwrap();
    assert!(
        seen.iter()
            .all(|(_, uri, _)| !uri.contains("postgresql.cnpg.io"))
    );
    for kind in [
        "deployments/fakeflickr",
        "services/fakeflickr",
        "ingresses/fakeflickr",
    ] {
        assert!(seen.iter().any(|(_, uri, _)| uri.contains(kind)), "{kind}");
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
    let (ctx, server) = Context::test(fixtures_stores(&live));
    ctx.capabilities.set(Apis {
        prometheus: false,
        ..Apis::ALL
    });
    let verifier = server.run(vec![event(NS, "Warning", "MonitoringIgnored")]);
    // converged otherwise: the first reconcile warns, the second writes nothing at all
    reconcile(guard(site.clone()), ctx.clone()).await.unwrap();
    reconcile(guard(site.clone()), ctx.clone()).await.unwrap();
    verifier.await.unwrap();
    // a new generation warns again
    let (ctx2, server2) = Context::test(fixtures_stores(&live));
    ctx2.capabilities.set(Apis {
        prometheus: false,
        ..Apis::ALL
    });
    let verifier = server2.run(vec![
        event(NS, "Warning", "MonitoringIgnored"),
        // the same Event again: the recorder counts it on the first one
        event_repeated(NS, "MonitoringIgnored"),
    ]);
    reconcile(guard(site.clone()), ctx2.clone()).await.unwrap();
    let mut next = site.clone();
    next.metadata.generation = Some(2);
    if let Some(st) = next.status.as_mut() {
        // as the status of generation 2 would read, so only the event is written
        st.observed_generation = Some(2);
        for c in &mut st.conditions {
            c.observed_generation = Some(2);
        }
    }
    reconcile(guard(next), ctx2).await.unwrap();
    verifier.await.unwrap();
}

#[tokio::test]
async fn discovery_finds_cloudnative_pg_and_the_prometheus_operator() {
    let (ctx, server) = Context::test(fixtures_stores(&[]));
    let resources = |kinds: &[&str]| {
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "x/v1",
               "resources": kinds.iter().map(|k| json!({"name": k.to_lowercase(), "singularName": "",
                   "namespaced": true, "kind": k, "verbs": ["get"]})).collect::<Vec<_>>()})
    };
    let verifier = server.run(vec![
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
    ]);
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
    verifier.await.unwrap();
}

// ---- external database: its port opens the NetworkPolicy, its Secret's hash rolls the pods ----

#[tokio::test]
async fn external_database_port_and_secret_hash_reach_the_children() {
    let site = with(demo(), |s| s.spec.database.external = Some(external("rds")));
    let (ctx, server) = Context::test(fixtures_stores(&[]));
    let uri = "postgres://photos:pw@photos.cluster-x.eu-west-1.rds.amazonaws.com:6432/photos";
    let mut steps = vec![
        get_missing(format!("/api/v1/namespaces/{NS}/secrets/demo-credentials")),
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
    steps.push(status_patch(NS, "demo"));
    steps.push(event(NS, "Normal", "Applied"));
    let verifier = server.run(steps);
    reconcile(guard(site), ctx).await.unwrap();
    verifier.await.unwrap();
}

// ---- backups and restore ----

/// A Secret with the object store keys, as the API server returns it.
fn store_secret(name: &str) -> Step {
    Step::new(
        Method::GET,
        format!("/api/v1/namespaces/{NS}/secrets/{name}"),
        Reply::Json(
            200,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                   "data": {"ACCESS_KEY_ID": "QUtJQQ==", "ACCESS_SECRET_KEY": "c2VjcmV0"}}),
        ),
    )
}

/// RFC 3339 time `hours` before now.
fn hours_ago(hours: i64) -> String {
    let t =
        k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_hours(hours);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn backed_up() -> PhotoSite {
    with(demo(), |s| s.spec.backup = Some(backup_spec()))
}

/// Live children of a converged backed-up site, with backups `hours` old (the originals'
/// last run succeeded).
fn converged_backups(site: &PhotoSite, hours: i64) -> Vec<(Kind, Value)> {
    let mut live = converged(site);
    for (k, o) in live.iter_mut() {
        o["metadata"]["creationTimestamp"] = json!(hours_ago(24 * 30));
        match k {
            Kind::CronJob => {
                o["status"] = json!({"lastScheduleTime": hours_ago(hours + 1),
                                     "lastSuccessfulTime": hours_ago(hours)})
            }
            Kind::ObjectStore => {
                o["status"] = json!({"serverRecoveryWindow": {"demo-db": {
                    "firstRecoverabilityPoint": hours_ago(24 * 30),
                    "lastSuccessfulBackupTime": hours_ago(hours)}}})
            }
            Kind::DatabaseCluster => {
                if let Some(cs) = o["status"]["conditions"].as_array_mut() {
                    cs.push(json!({"type": "ContinuousArchiving", "status": "True"}));
                    cs.push(json!({"type": "LastBackupSucceeded", "status": "True"}));
                }
            }
            _ => {}
        }
    }
    live
}

/// The site with the status a reconcile computes now.
fn with_status_now(mut site: PhotoSite, live: &[(Kind, Value)]) -> PhotoSite {
    let obs = status::Observations {
        now: k8s_openapi::jiff::Timestamp::now(),
        ..observations(&site, live)
    };
    site.status = Some(status::compute(&site, &valid(&site), &obs));
    site
}

#[tokio::test]
async fn backups_create_the_object_store_schedule_and_cronjob() {
    let site = backed_up();
    let (ctx, server) = Context::test(fixtures_stores(&[]));
    let mut steps = vec![
        get_missing(format!("/api/v1/namespaces/{NS}/secrets/demo-credentials")),
        store_secret("backup-s3"),
    ];
    for step in apply_steps(&site, &controller_inputs()) {
        let step = if step.uri.contains("/objectstores/demo-backup") {
            step.check(|b| {
                assert_eq!(b["apiVersion"], "barmancloud.cnpg.io/v1");
                assert_eq!(
                    b["spec"]["configuration"]["destinationPath"],
                    "s3://backups/prod/site/postgres"
                );
                assert_eq!(b["spec"]["retentionPolicy"], "30d");
            })
        } else if step.uri.contains("/clusters/demo-db") {
            step.check(|b| {
                assert_eq!(b["spec"]["plugins"][0]["isWALArchiver"], true);
                assert_eq!(
                    b["spec"]["plugins"][0]["parameters"]["barmanObjectName"],
                    "demo-backup"
                );
            })
        } else if step.uri.contains("/scheduledbackups/demo-backup") {
            step.check(|b| {
                assert_eq!(b["spec"]["method"], "plugin");
                assert_eq!(b["spec"]["schedule"], "0 0 3 * * *");
            })
        } else if step.uri.contains("/cronjobs/demo-backup") {
            step.check(|b| {
                assert_eq!(b["spec"]["schedule"], "0 3 * * *");
                assert_eq!(b["spec"]["concurrencyPolicy"], "Forbid");
                let c = &b["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
                assert_eq!(c["args"][0], "backup");
            })
        } else {
            step
        };
        steps.push(step);
    }
    let kinds: Vec<String> = steps.iter().map(|s| s.uri.clone()).collect();
    for kind in [
        "objectstores",
        "scheduledbackups",
        "cronjobs",
        "networkpolicies/demo-jobs",
    ] {
        assert!(kinds.iter().any(|u| u.contains(kind)), "{kind} not applied");
    }
    steps.push(status_patch(NS, "demo").check(|b| {
        let c = condition(b, "BackupHealthy");
        assert_eq!(c["status"], "False");
        assert_eq!(c["reason"], "BackupPending");
        assert_eq!(c["observedGeneration"], 1);
        // the server does not wait for backups
        assert_eq!(ready_of(b).1, "DatabaseNotReady");
    }));
    steps.push(event(NS, "Normal", "Applied"));
    let verifier = server.run(steps);
    reconcile(guard(site), ctx).await.unwrap();
    verifier.await.unwrap();
}

#[tokio::test]
async fn recent_backups_are_healthy_and_make_no_writes() {
    let site = backed_up();
    let live = converged_backups(&site, 2);
    let site = with_status_now(site, &live);
    let st = site.status.as_ref().unwrap();
    let c = st
        .conditions
        .iter()
        .find(|c| c.type_ == "BackupHealthy")
        .unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "BackupsSucceeding")
    );
    let b = st.backup.as_ref().unwrap();
    assert!(b.last_originals_backup_time.is_some());
    assert!(b.last_database_backup_time.is_some());
    assert!(b.first_recoverability_point.is_some());
    let (ctx, server) = Context::test(fixtures_stores(&live));
    // only the object store Secret is read: nothing written
    let verifier = server.run(vec![store_secret("backup-s3")]);
    let action = reconcile(guard(site), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(RESYNC));
    let seen = verifier.await.unwrap();
    assert!(seen.iter().all(|(m, _, _)| m == Method::GET));
}

#[tokio::test]
async fn a_failed_originals_backup_is_reported_once() {
    let site = backed_up();
    let healthy = converged_backups(&site, 2);
    let site = with_status_now(site, &healthy);
    // the CronJob's last run (scheduled after the last success) failed
    let mut live = healthy.clone();
    for (k, o) in live.iter_mut() {
        if *k == Kind::CronJob {
            o["status"] = json!({"lastScheduleTime": hours_ago(1),
                                 "lastSuccessfulTime": hours_ago(25)});
        }
    }
    let (ctx, server) = Context::test(fixtures_stores(&live));
    let verifier = server.run(vec![
        store_secret("backup-s3"),
        status_patch(NS, "demo").check(|b| {
            let c = condition(b, "BackupHealthy");
            assert_eq!(c["status"], "False");
            assert_eq!(c["reason"], "OriginalsBackupFailed");
            assert!(
                c["message"].as_str().unwrap().contains("did not succeed"),
                "{c}"
            );
            // Ready is about serving, not about backups
            assert_eq!(ready_of(b), ("True".into(), "Ready".into()));
        }),
        event(NS, "Warning", "OriginalsBackupFailed"),
    ]);
    let action = reconcile(guard(site.clone()), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(RESYNC));
    verifier.await.unwrap();
    // reconciled again with that status: the same failure sends nothing more
    let failed = with_status_now(site, &live);
    let (ctx, server) = Context::test(fixtures_stores(&live));
    let verifier = server.run(vec![store_secret("backup-s3")]);
    reconcile(guard(failed), ctx).await.unwrap();
    assert_eq!(verifier.await.unwrap().len(), 1);
}

#[tokio::test]
async fn failing_wal_archiving_and_old_backups_warn() {
    let site = backed_up();
    let healthy = converged_backups(&site, 2);
    let site = with_status_now(site, &healthy);
    let mut live = converged_backups(&site, 30); // older than maxAge 26h
    for (k, o) in live.iter_mut() {
        if *k == Kind::DatabaseCluster {
            o["status"]["conditions"] = json!([
                {"type": "Ready", "status": "True"},
                {"type": "ContinuousArchiving", "status": "False",
                 "message": "unexpected failure invoking barman-cloud-wal-archive: exit status 4"}
            ]);
        }
    }
    let (ctx, server) = Context::test(fixtures_stores(&live));
    let verifier = server.run(vec![
        store_secret("backup-s3"),
        status_patch(NS, "demo").check(|b| {
            let c = condition(b, "BackupHealthy");
            assert_eq!(c["reason"], "WALArchivingFailed");
            let m = c["message"].as_str().unwrap();
            assert!(m.contains("exit status 4"), "{m}");
            assert!(m.contains("older than maxAge 26h"), "{m}");
        }),
        event(NS, "Warning", "WALArchivingFailed"),
    ]);
    reconcile(guard(site), ctx).await.unwrap();
    verifier.await.unwrap();
}

#[tokio::test]
async fn missing_backup_secret_degrades_without_stopping_the_site() {
    let site = backed_up();
    let (ctx, server) = Context::test(fixtures_stores(&[]));
    let mut steps = vec![
        get_missing(format!("/api/v1/namespaces/{NS}/secrets/demo-credentials")),
        get_missing(format!("/api/v1/namespaces/{NS}/secrets/backup-s3")),
    ];
    steps.extend(apply_steps(&site, &controller_inputs()));
    steps.push(status_patch(NS, "demo").check(|b| {
        let d = condition(b, "Degraded");
        assert_eq!(d["reason"], "BackupSecretNotFound");
        assert_eq!(
            d["message"],
            "backup.objectStore.credentialsSecret: Secret \"backup-s3\" not found"
        );
    }));
    steps.push(event(NS, "Normal", "Applied"));
    steps.push(event(NS, "Warning", "BackupSecretNotFound"));
    let verifier = server.run(steps);
    let action = reconcile(guard(site), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(USER_ERROR_REQUEUE));
    let seen = verifier.await.unwrap();
    assert!(
        seen.iter()
            .any(|(_, uri, _)| uri.contains("/deployments/demo"))
    );
}

#[tokio::test]
async fn backups_off_delete_the_schedule_but_keep_the_object_store() {
    let site = backed_up();
    let live = converged_backups(&site, 2);
    let mut site = with_status_now(site, &live);
    site.spec.backup = None;
    site.metadata.generation = Some(2);
    let (ctx, server) = Context::test(fixtures_stores(&live));
    let verifier = server.run(vec![
        // the Cluster stops archiving first
        apply(Kind::DatabaseCluster, NS, "demo-db")
            .check(|b| assert!(b["spec"].get("plugins").is_none())),
        // in apply order
        Step::new(
            Method::DELETE,
            "/apis/postgresql.cnpg.io/v1/namespaces/photos/scheduledbackups/demo-backup?",
            Reply::Json(200, status_error(200, "Success")),
        ),
        Step::new(
            Method::DELETE,
            "/apis/networking.k8s.io/v1/namespaces/photos/networkpolicies/demo-jobs?",
            Reply::Json(200, status_error(200, "Success")),
        ),
        Step::new(
            Method::DELETE,
            "/apis/batch/v1/namespaces/photos/cronjobs/demo-backup?",
            Reply::Json(200, status_error(200, "Success")),
        ),
        status_patch(NS, "demo").check(|b| {
            assert!(
                b["status"]["conditions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|c| c["type"] != "BackupHealthy")
            );
            assert!(b["status"].get("backup").is_none());
        }),
        event(NS, "Normal", "Applied"),
    ]);
    reconcile(guard(site), ctx).await.unwrap();
    let seen = verifier.await.unwrap();
    // where the database archived is never deleted by the operator
    assert!(seen.iter().all(|(_, uri, _)| !uri.contains("objectstores")));
}

fn restored_site() -> PhotoSite {
    with(demo(), |s| {
        s.spec.restore = Some(restore_spec());
        s.spec.backup = Some(backup_spec());
    })
}

#[tokio::test]
async fn restore_runs_before_the_deployment_exists() {
    let site = restored_site();
    let (ctx, server) = Context::test(fixtures_stores(&[]));
    let mut steps = vec![
        get_missing(format!("/api/v1/namespaces/{NS}/secrets/demo-credentials")),
        store_secret("backup-s3"),
        store_secret("restore-s3"),
    ];
    steps.extend(apply_steps(&site, &controller_inputs()));
    steps.push(status_patch(NS, "demo").check(|b| {
        assert_eq!(ready_of(b), ("False".into(), "RestoringOriginals".into()));
        assert!(
            b["status"]["restore"]
                .get("originalsRestoredTime")
                .is_none()
        );
    }));
    steps.push(event(NS, "Normal", "Applied"));
    let verifier = server.run(steps);
    reconcile(guard(site), ctx).await.unwrap();
    let seen = verifier.await.unwrap();
    let uris: Vec<&str> = seen.iter().map(|(_, u, _)| u.as_str()).collect();
    let job = uris
        .iter()
        .position(|u| u.contains("/jobs/demo-restore"))
        .unwrap();
    let cluster = seen
        .iter()
        .find(|(_, u, _)| u.contains("/clusters/demo-db"))
        .unwrap();
    assert_eq!(
        cluster.2["spec"]["bootstrap"]["recovery"]["source"],
        "origin"
    );
    assert!(job > 0);
    assert!(uris.iter().all(|u| !u.contains("/deployments/")));
    assert!(uris.iter().all(|u| !u.contains("/cronjobs/")));
}

#[tokio::test]
async fn a_finished_restore_starts_the_servers_and_is_recorded() {
    let site = restored_site();
    let mut restoring = controller_inputs();
    restoring.originals_restored = false;
    let mut live: Vec<(Kind, Value)> = build_all(&site, &restoring)
        .children
        .iter()
        .map(|c| {
            let mut o = with_hash(&c.json()).unwrap();
            o["metadata"]["creationTimestamp"] = json!(hours_ago(1));
            (c.kind, o)
        })
        .collect();
    for (k, o) in live.iter_mut() {
        if *k == Kind::Job {
            o["status"] = json!({"succeeded": 1, "completionTime": "2026-01-10T04:00:00Z",
                "conditions": [{"type": "Complete", "status": "True"}]});
        }
    }
    let (ctx, server) = Context::test(fixtures_stores(&live));
    let verifier = server.run(vec![
        // the Job has succeeded: the source's Secret is no longer needed
        store_secret("backup-s3"),
        apply(Kind::Deployment, NS, "demo"),
        apply(Kind::CronJob, NS, "demo-backup"),
        status_patch(NS, "demo").check(|b| {
            assert_eq!(
                b["status"]["restore"]["originalsRestoredTime"],
                "2026-01-10T04:00:00Z"
            );
            assert_eq!(ready_of(b).1, "DatabaseNotReady");
        }),
        event(NS, "Normal", "Applied"),
    ]);
    reconcile(guard(site.clone()), ctx).await.unwrap();
    let seen = verifier.await.unwrap();
    // the finished Job is left to its TTL: its log is the restore's report
    assert!(seen.iter().all(|(m, _, _)| m != Method::DELETE));

    // a week later the Job is gone: the record keeps the servers, and nothing runs again
    let mut done = site.clone();
    done.status = Some(crate::crd::PhotoSiteStatus {
        restore: Some(crate::crd::RestoreStatus {
            originals_restored_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-01-10T04:00:00Z".parse().unwrap(),
            )),
        }),
        ..crate::crd::PhotoSiteStatus::default()
    });
    let mut restored = controller_inputs();
    restored.originals_restored = true;
    let now: Vec<(Kind, Value)> = build_all(&site, &restored)
        .children
        .iter()
        .map(|c| (c.kind, with_hash(&c.json()).unwrap()))
        .collect();
    let (ctx, server) = Context::test(fixtures_stores(&now));
    let verifier = server.run(vec![
        // a restored site no longer reads its source's Secret
        store_secret("backup-s3"),
        status_patch(NS, "demo"),
    ]);
    reconcile(guard(done), ctx).await.unwrap();
    let seen = verifier.await.unwrap();
    assert!(seen.iter().all(|(_, uri, _)| !uri.contains("/jobs/")));
}

#[tokio::test]
async fn a_failed_restore_is_degraded_and_never_starts_the_servers() {
    let site = restored_site();
    let mut restoring = controller_inputs();
    restoring.originals_restored = false;
    let mut live: Vec<(Kind, Value)> = build_all(&site, &restoring)
        .children
        .iter()
        .map(|c| (c.kind, with_hash(&c.json()).unwrap()))
        .collect();
    for (k, o) in live.iter_mut() {
        if *k == Kind::Job {
            o["status"] = json!({"failed": 7, "conditions": [{"type": "Failed", "status": "True",
                "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]});
        }
    }
    let (ctx, server) = Context::test(fixtures_stores(&live));
    let verifier = server.run(vec![
        store_secret("backup-s3"),
        store_secret("restore-s3"),
        status_patch(NS, "demo").check(|b| {
            let d = condition(b, "Degraded");
            assert_eq!(d["reason"], "RestoreFailed");
            assert!(
                d["message"]
                    .as_str()
                    .unwrap()
                    .contains("delete job demo-restore"),
                "{d}"
            );
            assert_eq!(ready_of(b).1, "RestoreFailed");
        }),
        event(NS, "Warning", "RestoreFailed"),
    ]);
    let action = reconcile(guard(site), ctx).await.unwrap();
    assert_eq!(action, Action::requeue(USER_ERROR_REQUEUE));
    let seen = verifier.await.unwrap();
    // the failed Job is neither re-applied (its template is immutable) nor deleted
    assert!(seen.iter().all(|(_, uri, _)| !uri.contains("/jobs/")));
    assert!(
        seen.iter()
            .all(|(_, uri, _)| !uri.contains("/deployments/"))
    );
}
