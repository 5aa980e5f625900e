//! What goes wrong: API errors, a spec that cannot be satisfied, children the API refuses.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use serde_json::json;

use super::scenario::*;
use crate::children::Kind;
use crate::controller::{USER_ERROR_REQUEUE, error_policy};
use crate::crd::PhotoSite;
use crate::fixtures::*;
use crate::test_support::*;

async fn api_error(code: u16, reason: &'static str, label: &str) {
    let run = Scenario::new()
        .expect([
            credentials_lookup("demo"),
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
        ])
        .reconcile(demo())
        .await;
    let Err(err) = run.result else {
        panic!("the reconcile must fail")
    };
    assert_eq!(err.metric_label(), label);
    // the error names the stage and the child
    assert!(
        err.to_string()
            .starts_with("apply ServiceAccount photos/demo: "),
        "{err}"
    );
    assert!(!err.is_user_error());
    let metrics = run.ctx.metrics.encode();
    assert!(
        metrics.contains(&format!(
            "photo_operator_reconcile_errors_total{{reason=\"{label}\"}} 1"
        )),
        "{metrics}"
    );
    // errors back off exponentially and reset on success
    let g = guard(demo());
    let first = error_policy(g.clone(), &err, run.ctx.clone());
    let second = error_policy(g, &err, run.ctx.clone());
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
    let run = Scenario::new()
        .expect([
            credentials_lookup("demo"),
            get_missing(format!(
                "/api/v1/namespaces/{NS}/persistentvolumeclaims/photos-nfs"
            )),
            status_patch(NS, "demo").check(|b| {
                let d = condition(b, "Degraded");
                assert_eq!(d["status"], "True");
                assert_eq!(d["reason"], "ExistingClaimNotFound");
                assert!(d["message"].as_str().unwrap().contains("photos-nfs"));
                assert_eq!(
                    ready_of(b),
                    ("False".into(), "ExistingClaimNotFound".into())
                );
            }),
            event(NS, "Warning", "ExistingClaimNotFound"),
        ])
        .reconcile(site)
        .await;
    assert_eq!(run.action(), Action::requeue(USER_ERROR_REQUEUE));
}

#[tokio::test]
async fn invalid_object_is_reported_and_skipped() {
    let bad: DeserializeGuard<PhotoSite> = serde_json::from_value(json!({
        "apiVersion": "photostack.io/v1alpha1", "kind": "PhotoSite",
        "metadata": {"name": "broken", "namespace": NS, "uid": "u"},
        "spec": {"replicas": "many"}
    }))
    .unwrap();
    assert!(bad.0.is_err());
    let run = Scenario::new()
        .expect([event(NS, "Warning", "InvalidObject")])
        .reconcile_guard(Arc::new(bad))
        .await;
    assert_eq!(run.action(), Action::await_change());
}

#[tokio::test]
async fn external_database_secret_is_checked() {
    let site = with(demo(), |s| s.spec.database.external = Some(external("rds")));
    Scenario::new()
        .expect([
            credentials_lookup("demo"),
            Step::new(
                Method::GET,
                format!("/api/v1/namespaces/{NS}/secrets/rds"),
                Reply::Json(
                    200,
                    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rds"}, "data": {"url": "eA=="}}),
                ),
            ),
            status_patch(NS, "demo")
                .check(|b| assert_eq!(ready_of(b).1, "DatabaseSecretNotFound")),
            event(NS, "Warning", "DatabaseSecretNotFound"),
        ])
        .reconcile(site)
        .await
        .action();
}

// ---- one refused child does not stop the others (defect: a PVC resize refused with 403
// left the Deployment, HPA and Ingress un-updated, retried forever without a condition) ----

#[tokio::test]
async fn refused_claim_resize_is_degraded_and_the_rest_is_still_applied() {
    let (site, live) = changed(demo(), |s| {
        s.spec.storage.originals.size.0 = "20Gi".into();
        s.spec.image = "ghcr.io/photostack/photo-server:0.2.0".into();
    });
    let refusal = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "persistentvolumeclaims \"demo-originals\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize",
        "reason": "Forbidden", "code": 403
    });
    let run = Scenario::with_live(&live)
        .expect([
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
        ])
        .reconcile(site)
        .await;
    // reported, retried slowly: not an error with a hot backoff loop
    assert_eq!(run.action(), Action::requeue(USER_ERROR_REQUEUE));
    assert!(
        run.ctx
            .metrics
            .encode()
            .contains("photo_operator_reconciles_total{result=\"degraded\"} 1")
    );
}

#[tokio::test]
async fn forbidden_child_is_reported_and_the_others_applied() {
    let site = demo();
    let mut steps = new_site_steps(&site);
    steps[1] = Step::new(
        Method::PATCH,
        apply_uri(Kind::ServiceAccount, NS, "demo"),
        Reply::Json(403, status_error(403, "Forbidden")),
    );
    let run = Scenario::new()
        .expect(steps)
        .expect([
            status_patch(NS, "demo").check(|b| {
                let d = condition(b, "Degraded");
                assert_eq!(d["status"], "True");
                assert_eq!(d["message"], "ServiceAccount demo: mock Forbidden");
            }),
            event(NS, "Normal", "Applied"),
            event(NS, "Warning", "ChildRefused"),
        ])
        .reconcile(site)
        .await;
    assert_eq!(run.action(), Action::requeue(USER_ERROR_REQUEUE));
    // every other child was applied
    assert!(requested(&run.seen, "/deployments/demo"));
}

#[tokio::test]
async fn immutable_claim_change_is_held_back_without_a_request() {
    // A PhotoSite re-created under Retain adopts the old claim; its class cannot change.
    let site = with(demo(), |s| {
        s.spec.storage.originals.storage_class_name = Some("fast".into())
    });
    let mut live = converged(&site);
    edit_live(&mut live, Kind::PersistentVolumeClaim, |o| {
        o["spec"]["storageClassName"] = json!("standard")
    });
    let site = with_converged_status(site, &live);
    let run = Scenario::with_live(&live)
        .expect([
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
        ])
        .reconcile(site)
        .await;
    run.action();
    assert!(
        !requested(&run.seen, "persistentvolumeclaims"),
        "the claim must not be sent"
    );
}
