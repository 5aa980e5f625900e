//! Backups (`spec.backup`) and the restore (`spec.restore`).

use http::Method;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::scenario::*;
use crate::children::Kind;
use crate::controller::{RESYNC, USER_ERROR_REQUEUE};
use crate::crd::{PhotoSite, PhotoSiteStatus, RestoreStatus};
use crate::fixtures::*;
use crate::test_support::*;

/// RFC 3339 time `hours` before now.
fn hours_ago(hours: i64) -> String {
    let t =
        k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_hours(hours);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn backed_up() -> PhotoSite {
    with(demo(), |s| s.spec.backup = Some(backup_spec()))
}

fn restored_site() -> PhotoSite {
    with(demo(), |s| {
        s.spec.restore = Some(restore_spec());
        s.spec.backup = Some(backup_spec());
    })
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

/// The children of a restored site while its restore Job runs, the Job's status `job`.
fn restoring_with_job(site: &PhotoSite, job: Value) -> Vec<(Kind, Value)> {
    let mut restoring = controller_inputs();
    restoring.originals_restored = None;
    let mut live = applied(site, &restoring);
    edit_live(&mut live, Kind::Job, |o| o["status"] = job);
    live
}

#[tokio::test]
async fn backups_create_the_object_store_schedule_and_cronjob() {
    let site = backed_up();
    let mut steps = vec![credentials_lookup("demo"), store_secret("backup-s3")];
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
    Scenario::new()
        .expect(steps)
        .expect([
            status_patch(NS, "demo").check(|b| {
                let c = condition(b, "BackupHealthy");
                assert_eq!(c["status"], "False");
                assert_eq!(c["reason"], "BackupPending");
                assert_eq!(c["observedGeneration"], 1);
                // the server does not wait for backups
                assert_eq!(ready_of(b).1, "DatabaseNotReady");
            }),
            event(NS, "Normal", "Applied"),
        ])
        .reconcile(site)
        .await
        .action();
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
    // only the object store Secret is read: nothing written
    let run = Scenario::with_live(&live)
        .expect([store_secret("backup-s3")])
        .reconcile(site)
        .await;
    assert_eq!(run.action(), Action::requeue(RESYNC));
    assert!(run.seen.iter().all(|(m, _, _)| m == Method::GET));
}

#[tokio::test]
async fn a_failed_originals_backup_is_reported_once() {
    let site = backed_up();
    let healthy = converged_backups(&site, 2);
    let site = with_status_now(site, &healthy);
    // the CronJob's last run (scheduled after the last success) failed
    let mut live = healthy.clone();
    edit_live(&mut live, Kind::CronJob, |o| {
        o["status"] = json!({"lastScheduleTime": hours_ago(1),
                             "lastSuccessfulTime": hours_ago(25)})
    });
    let run = Scenario::with_live(&live)
        .expect([
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
        ])
        .reconcile(site.clone())
        .await;
    assert_eq!(run.action(), Action::requeue(RESYNC));
    // reconciled again with that status: the same failure sends nothing more
    let failed = with_status_now(site, &live);
    let run = Scenario::with_live(&live)
        .expect([store_secret("backup-s3")])
        .reconcile(failed)
        .await;
    run.action();
    assert_eq!(run.seen.len(), 1);
}

#[tokio::test]
async fn failing_wal_archiving_and_old_backups_warn() {
    let site = backed_up();
    let healthy = converged_backups(&site, 2);
    let site = with_status_now(site, &healthy);
    let mut live = converged_backups(&site, 30); // older than maxAge 26h
    edit_live(&mut live, Kind::DatabaseCluster, |o| {
        o["status"]["conditions"] = json!([
            {"type": "Ready", "status": "True"},
            {"type": "ContinuousArchiving", "status": "False",
             "message": "unexpected failure invoking barman-cloud-wal-archive: exit status 4"}
        ])
    });
    Scenario::with_live(&live)
        .expect([
            store_secret("backup-s3"),
            status_patch(NS, "demo").check(|b| {
                let c = condition(b, "BackupHealthy");
                assert_eq!(c["reason"], "WALArchivingFailed");
                let m = c["message"].as_str().unwrap();
                assert!(m.contains("exit status 4"), "{m}");
                assert!(m.contains("older than maxAge 26h"), "{m}");
            }),
            event(NS, "Warning", "WALArchivingFailed"),
        ])
        .reconcile(site)
        .await
        .action();
}

#[tokio::test]
async fn missing_backup_secret_degrades_without_stopping_the_site() {
    let site = backed_up();
    let run = Scenario::new()
        .expect([
            credentials_lookup("demo"),
            get_missing(format!("/api/v1/namespaces/{NS}/secrets/backup-s3")),
        ])
        .expect(apply_steps(&site, &controller_inputs()))
        .expect([
            status_patch(NS, "demo").check(|b| {
                let d = condition(b, "Degraded");
                assert_eq!(d["reason"], "BackupSecretNotFound");
                assert_eq!(
                    d["message"],
                    "backup.objectStore.credentialsSecret: Secret \"backup-s3\" not found"
                );
            }),
            event(NS, "Normal", "Applied"),
            event(NS, "Warning", "BackupSecretNotFound"),
        ])
        .reconcile(site)
        .await;
    assert_eq!(run.action(), Action::requeue(USER_ERROR_REQUEUE));
    assert!(requested(&run.seen, "/deployments/demo"));
}

#[tokio::test]
async fn backups_off_delete_the_schedule_but_keep_the_object_store() {
    let site = backed_up();
    let live = converged_backups(&site, 2);
    let mut site = with_status_now(site, &live);
    site.spec.backup = None;
    site.metadata.generation = Some(2);
    let run = Scenario::with_live(&live)
        .expect([
            // the Cluster stops archiving first
            apply(Kind::DatabaseCluster, NS, "demo-db")
                .check(|b| assert!(b["spec"].get("plugins").is_none())),
            // in apply order
            delete(Kind::ScheduledBackup, NS, "demo-backup", 200),
            delete(Kind::NetworkPolicy, NS, "demo-jobs", 200),
            delete(Kind::CronJob, NS, "demo-backup", 200),
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
        ])
        .reconcile(site)
        .await;
    run.action();
    // where the database archived is never deleted by the operator
    assert!(!requested(&run.seen, "objectstores"));
}

#[tokio::test]
async fn restore_runs_before_the_deployment_exists() {
    let site = restored_site();
    let run = Scenario::new()
        .expect([
            credentials_lookup("demo"),
            store_secret("backup-s3"),
            store_secret("restore-s3"),
        ])
        .expect(apply_steps(&site, &controller_inputs()))
        .expect([
            status_patch(NS, "demo").check(|b| {
                assert_eq!(ready_of(b), ("False".into(), "RestoringOriginals".into()));
                assert!(
                    b["status"]["restore"]
                        .get("originalsRestoredTime")
                        .is_none()
                );
            }),
            event(NS, "Normal", "Applied"),
        ])
        .reconcile(site)
        .await;
    run.action();
    let uris: Vec<&str> = run.seen.iter().map(|(_, u, _)| u.as_str()).collect();
    let job = uris
        .iter()
        .position(|u| u.contains("/jobs/demo-restore"))
        .unwrap();
    let cluster = run
        .seen
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
    let mut live = restoring_with_job(
        &site,
        json!({"succeeded": 1, "completionTime": "2026-01-10T04:00:00Z",
            "conditions": [{"type": "Complete", "status": "True"}]}),
    );
    for (_, o) in live.iter_mut() {
        o["metadata"]["creationTimestamp"] = json!(hours_ago(1));
    }
    let run = Scenario::with_live(&live)
        .expect([
            // the Job has succeeded: the source's Secret is no longer needed
            store_secret("backup-s3"),
            // the claim is marked restored: a lost status cannot restore over it again
            apply(Kind::PersistentVolumeClaim, NS, "demo-originals").check(|b| {
                assert_eq!(
                    b["metadata"]["annotations"]["photostack.io/originals-restored-time"],
                    "2026-01-10T04:00:00Z"
                );
            }),
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
        ])
        .reconcile(site.clone())
        .await;
    run.action();
    // the finished Job is left to its TTL: its log is the restore's report
    assert!(run.seen.iter().all(|(m, _, _)| m != Method::DELETE));

    // a week later the Job is gone: the record keeps the servers, and nothing runs again
    let mut done = site.clone();
    done.status = Some(PhotoSiteStatus {
        restore: Some(RestoreStatus {
            originals_restored_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-01-10T04:00:00Z".parse().unwrap(),
            )),
        }),
        ..PhotoSiteStatus::default()
    });
    let mut restored = controller_inputs();
    restored.originals_restored = Some(crate::test_support::restored_at());
    let run = Scenario::with_live(&applied(&site, &restored))
        .expect([
            // a restored site no longer reads its source's Secret
            store_secret("backup-s3"),
            status_patch(NS, "demo"),
        ])
        .reconcile(done)
        .await;
    run.action();
    assert!(!requested(&run.seen, "/jobs/"));
}

#[tokio::test]
async fn a_failed_restore_is_degraded_and_never_starts_the_servers() {
    let site = restored_site();
    let live = restoring_with_job(
        &site,
        json!({"failed": 7, "conditions": [{"type": "Failed", "status": "True",
            "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}),
    );
    let run = Scenario::with_live(&live)
        .expect([
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
        ])
        .reconcile(site)
        .await;
    assert_eq!(run.action(), Action::requeue(USER_ERROR_REQUEUE));
    // the failed Job is neither re-applied (its template is immutable) nor deleted
    assert!(!requested(&run.seen, "/jobs/"));
    assert!(!requested(&run.seen, "/deployments/"));
}
