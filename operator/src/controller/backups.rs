//! What the live children say about backups: a pure function of the typed observations
//! ([`super::observe`]), used by [`super::status::compute`]. (The restore is
//! [`super::restore`].)
//!
//! Backups ([`health`]), one `BackupHealthy` condition for both halves:
//! - originals, from the CronJob `<site>-backup`: `lastSuccessfulTime` is the last good
//!   backup; a `lastScheduleTime` later than it with no Job running means the last run
//!   failed (the CronJob controller updates both when a Job finishes);
//! - database (CloudNativePG), from the Cluster's `ContinuousArchiving` condition (WAL
//!   archiving, which point-in-time recovery needs) and `LastBackupSucceeded` condition,
//!   and the Barman Cloud plugin's record in the ObjectStore `<site>-backup`:
//!   `status.serverRecoveryWindow["<site>-db"]` (`lastSuccessfulBackupTime`,
//!   `lastFailedBackupTime`, `firstRecoverabilityPoint`).
//!
//! A half whose last success is older than `spec.backup.maxAge` (or that never succeeded
//! within `maxAge` of its CronJob's or ObjectStore's creation) is `BackupTooOld`; one that
//! has not run yet is `BackupPending`. The reason is the most serious one found, the message
//! lists them all. Messages name times, never ages, so an unchanged state writes nothing.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::conditions::{Cond, ConditionType, Problem};
use super::observe::ObservedChild;
use crate::children::crd_types::StatusCondition;
use crate::children::{Kind, OptionalApi};
use crate::crd::{BackupStatus, PhotoSiteStatus};
use crate::names;
use crate::site::{ValidatedBackup, ValidatedSite};

/// Reasons of the `BackupHealthy` condition, most serious first.
pub mod reason {
    pub const WAL_ARCHIVING_FAILED: &str = "WALArchivingFailed";
    pub const DATABASE_BACKUP_FAILED: &str = "DatabaseBackupFailed";
    pub const ORIGINALS_BACKUP_FAILED: &str = "OriginalsBackupFailed";
    pub const BARMAN_CLOUD_NOT_INSTALLED: &str = "BarmanCloudNotInstalled";
    pub const CLOUDNATIVE_PG_NOT_INSTALLED: &str = "CloudNativePGNotInstalled";
    pub const BACKUP_TOO_OLD: &str = "BackupTooOld";
    pub const BACKUP_PENDING: &str = "BackupPending";
    pub const BACKUPS_SUCCEEDING: &str = "BackupsSucceeding";
}

/// Backup reasons that deserve a Warning Event when they appear.
const WARN: [&str; 4] = [
    reason::WAL_ARCHIVING_FAILED,
    reason::DATABASE_BACKUP_FAILED,
    reason::ORIGINALS_BACKUP_FAILED,
    reason::BACKUP_TOO_OLD,
];

/// A time the Barman Cloud plugin reports (RFC 3339), if it parses.
fn time(v: Option<&String>) -> Option<Timestamp> {
    v?.parse().ok()
}

fn show(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// One thing wrong (or not yet right) with the backups.
struct Issue {
    reason: &'static str,
    message: String,
}

/// How serious a reason is (lower is worse).
fn rank(r: &str) -> usize {
    [
        reason::WAL_ARCHIVING_FAILED,
        reason::DATABASE_BACKUP_FAILED,
        reason::ORIGINALS_BACKUP_FAILED,
        reason::BARMAN_CLOUD_NOT_INSTALLED,
        reason::CLOUDNATIVE_PG_NOT_INSTALLED,
        reason::BACKUP_TOO_OLD,
        reason::BACKUP_PENDING,
    ]
    .iter()
    .position(|x| *x == r)
    .unwrap_or(usize::MAX)
}

/// Too old, pending, or fine: `last` success (else `since`, the child's creation) against
/// `maxAge`.
fn age_issue(
    what: &str,
    last: Option<Timestamp>,
    since: Option<Timestamp>,
    now: Timestamp,
    backup: &ValidatedBackup,
) -> Option<Issue> {
    let max_age = backup.spec.max_age.as_str();
    let too_old =
        |t: Timestamp| now.duration_since(t) > SignedDuration::from_secs(backup.max_age_seconds);
    match (last, since) {
        (Some(t), _) if too_old(t) => Some(Issue {
            reason: reason::BACKUP_TOO_OLD,
            message: format!(
                "the last successful {what} backup, at {}, is older than maxAge {max_age}",
                show(t)
            ),
        }),
        (Some(_), _) => None,
        (None, Some(t)) if too_old(t) => Some(Issue {
            reason: reason::BACKUP_TOO_OLD,
            message: format!(
                "no successful {what} backup since {} (more than maxAge {max_age})",
                show(t)
            ),
        }),
        (None, _) => Some(Issue {
            reason: reason::BACKUP_PENDING,
            message: format!("waiting for the first {what} backup"),
        }),
    }
}

/// An age check's outcome: its issue, or the last success for the healthy message.
fn tally(
    issue: Option<Issue>,
    what: &str,
    last: Option<Timestamp>,
    issues: &mut Vec<Issue>,
    fine: &mut Vec<String>,
) {
    match issue {
        Some(i) => issues.push(i),
        None => fine.extend(last.map(|t| format!("{what} at {}", show(t)))),
    }
}

/// The `BackupHealthy` condition and `status.backup` of a site with `spec.backup`, from the
/// live children.
pub fn health(
    site: &ValidatedSite,
    live: &HashMap<(Kind, String), ObservedChild>,
    missing: &[OptionalApi],
    now: Timestamp,
) -> Option<(Cond, BackupStatus)> {
    let backup = site.backup.as_ref()?;
    let ns = site.namespace;
    let get = |kind: Kind, name: String| live.get(&(kind, name));
    let mut issues = Vec::new();
    let mut status = BackupStatus::default();
    let mut fine = Vec::new();

    // originals: the CronJob
    match get(Kind::CronJob, names::backup(site.name)) {
        None if site.restore.is_some() => issues.push(Issue {
            reason: reason::BACKUP_PENDING,
            message: "the originals backup starts once the restore has succeeded".into(),
        }),
        None => issues.push(Issue {
            reason: reason::BACKUP_PENDING,
            message: format!(
                "the CronJob {} is not created yet",
                names::backup(site.name)
            ),
        }),
        Some(cj) => {
            let cron = cj.cron_job().cloned().unwrap_or_default();
            let last_ok = cron.last_successful_time.map(|t| t.0);
            let scheduled = cron.last_schedule_time.map(|t| t.0);
            let running = cron.active.is_some_and(|a| !a.is_empty());
            status.last_originals_backup_time = last_ok.map(Time);
            match scheduled {
                Some(s) if !running && last_ok.is_none_or(|ok| ok < s) => issues.push(Issue {
                    reason: reason::ORIGINALS_BACKUP_FAILED,
                    message: format!(
                        "the originals backup scheduled at {} did not succeed: see kubectl -n {ns} get jobs -l photostack.io/site={},app.kubernetes.io/component=backup and their logs",
                        show(s),
                        site.name
                    ),
                }),
                _ => {
                    let created = cj.meta.creation_timestamp.as_ref().map(|t| t.0);
                    let age = age_issue("originals", last_ok, created, now, backup);
                    tally(age, "originals", last_ok, &mut issues, &mut fine);
                }
            }
        }
    }

    // database: CloudNativePG and the plugin
    if site.cloudnative_pg_database() {
        let cluster_name = names::database_cluster(site.name);
        if missing.contains(&OptionalApi::CloudNativePg) {
            issues.push(Issue {
                reason: reason::CLOUDNATIVE_PG_NOT_INSTALLED,
                message: "the database is not backed up: CloudNativePG is not installed".into(),
            });
        } else if missing.contains(&OptionalApi::BarmanCloud) {
            issues.push(Issue {
                reason: reason::BARMAN_CLOUD_NOT_INSTALLED,
                message: "the database is not backed up: the Barman Cloud plugin (barmancloud.cnpg.io ObjectStore) is not installed".into(),
            });
        } else {
            let store = get(Kind::ObjectStore, names::backup(site.name));
            let window = store
                .and_then(ObservedChild::object_store)
                .and_then(|s| s.server_recovery_window.get(&cluster_name));
            let last_ok = time(window.and_then(|w| w.last_successful_backup_time.as_ref()));
            let last_failed = time(window.and_then(|w| w.last_failed_backup_time.as_ref()));
            status.last_database_backup_time = last_ok.map(Time);
            status.first_recoverability_point =
                time(window.and_then(|w| w.first_recoverability_point.as_ref())).map(Time);
            let conditions = get(Kind::DatabaseCluster, cluster_name.clone())
                .and_then(ObservedChild::cluster)
                .map(|c| c.conditions.as_slice())
                .unwrap_or_default();
            let mut failed = false;
            if let Some(c) = StatusCondition::find(conditions, "ContinuousArchiving")
                && c.is("False")
            {
                failed = true;
                issues.push(Issue {
                    reason: reason::WAL_ARCHIVING_FAILED,
                    message: format!(
                        "WAL archiving of {cluster_name} fails, so the database cannot be restored to a recent point: {}",
                        c.message.as_deref().unwrap_or("see the Cluster's ContinuousArchiving condition")
                    ),
                });
            }
            let at = last_failed
                .map(|t| format!(" at {}", show(t)))
                .unwrap_or_default();
            let backup_condition = StatusCondition::find(conditions, "LastBackupSucceeded")
                .filter(|c| c.is("False") && c.reason.as_deref() != Some("BackupStarted"));
            if let Some(c) = backup_condition {
                failed = true;
                issues.push(Issue {
                    reason: reason::DATABASE_BACKUP_FAILED,
                    message: format!(
                        "the last database backup failed{at}: {}",
                        c.message
                            .as_deref()
                            .unwrap_or("see kubectl get backups.postgresql.cnpg.io")
                    ),
                });
            } else if let Some(f) = last_failed
                && last_ok.is_none_or(|ok| ok < f)
            {
                failed = true;
                issues.push(Issue {
                    reason: reason::DATABASE_BACKUP_FAILED,
                    message: format!(
                        "the last database backup failed{at}: see kubectl -n {ns} get backups.postgresql.cnpg.io"
                    ),
                });
            }
            if !failed {
                let created = store
                    .and_then(|s| s.meta.creation_timestamp.as_ref())
                    .map(|t| t.0);
                let age = age_issue("database", last_ok, created, now, backup);
                tally(age, "database", last_ok, &mut issues, &mut fine);
            }
        }
    }

    issues.sort_by_key(|i| rank(i.reason));
    let cond = match issues.first() {
        Some(first) => Cond::new(
            ConditionType::BackupHealthy,
            false,
            first.reason,
            issues
                .iter()
                .map(|i| i.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        None => Cond::new(
            ConditionType::BackupHealthy,
            true,
            reason::BACKUPS_SUCCEEDING,
            format!("last successful backups: {}", fine.join(", ")),
        ),
    };
    Some((cond, status))
}

/// The Warning Event due for a backup condition that turned bad (or bad differently):
/// failures and backups too old, not a first backup still pending.
pub fn failure_event(old: Option<&PhotoSiteStatus>, new: &PhotoSiteStatus) -> Option<Problem> {
    let t = ConditionType::BackupHealthy.as_str();
    let now = new.conditions.iter().find(|c| c.type_ == t)?;
    let reason = WARN.into_iter().find(|r| *r == now.reason)?;
    if now.status != "False" {
        return None;
    }
    let before = old.and_then(|s| s.conditions.iter().find(|c| c.type_ == t));
    if before.is_some_and(|b| {
        b.status == now.status && b.reason == now.reason && b.message == now.message
    }) {
        return None;
    }
    Some(Problem {
        reason,
        message: now.message.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use serde_json::{Value, json};

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn backed_up() -> crate::crd::PhotoSite {
        with(demo(), |s| s.spec.backup = Some(backup_spec()))
    }

    fn live(objects: &[(Kind, &str, Value)]) -> HashMap<(Kind, String), ObservedChild> {
        objects
            .iter()
            .map(|(k, n, v)| {
                let child = ObservedChild::from_json(*k, v.clone()).unwrap();
                ((*k, n.to_string()), child)
            })
            .collect()
    }

    fn cron_job(status: Value) -> Value {
        json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}, "status": status})
    }

    fn store(window: Value) -> Value {
        json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
               "status": {"serverRecoveryWindow": {"demo-db": window, "other-db": {
                   "lastSuccessfulBackupTime": "2026-01-09T00:00:00Z"}}}})
    }

    fn cluster(conditions: Value) -> Value {
        json!({"status": {"conditions": conditions}})
    }

    const NOW: &str = "2026-01-10T12:00:00Z";

    fn healthy() -> Vec<(Kind, &'static str, Value)> {
        vec![
            (
                Kind::CronJob,
                "demo-backup",
                cron_job(json!({"lastScheduleTime": "2026-01-10T03:00:00Z",
                                "lastSuccessfulTime": "2026-01-10T03:12:00Z"})),
            ),
            (
                Kind::ObjectStore,
                "demo-backup",
                store(json!({"firstRecoverabilityPoint": "2025-12-11T03:00:00Z",
                             "lastSuccessfulBackupTime": "2026-01-10T03:05:00Z"})),
            ),
            (
                Kind::DatabaseCluster,
                "demo-db",
                cluster(json!([
                    {"type": "ContinuousArchiving", "status": "True"},
                    {"type": "LastBackupSucceeded", "status": "True", "reason": "LastBackupSucceeded"}
                ])),
            ),
        ]
    }

    fn health_of(objects: &[(Kind, &str, Value)]) -> (Cond, BackupStatus) {
        let s = backed_up();
        health(&valid(&s), &live(objects), &[], at(NOW)).unwrap()
    }

    fn replace(kind: Kind, v: Value) -> Vec<(Kind, &'static str, Value)> {
        healthy()
            .into_iter()
            .map(|(k, n, o)| {
                if k == kind {
                    (k, n, v.clone())
                } else {
                    (k, n, o)
                }
            })
            .collect()
    }

    #[test]
    fn both_halves_recent_is_healthy_with_their_times() {
        let (c, st) = health_of(&healthy());
        assert!(c.status, "{c:?}");
        assert_eq!(c.reason, "BackupsSucceeding");
        assert_eq!(
            c.message,
            "last successful backups: originals at 2026-01-10T03:12:00Z, database at 2026-01-10T03:05:00Z"
        );
        assert_eq!(
            st.last_originals_backup_time,
            Some(Time(at("2026-01-10T03:12:00Z")))
        );
        // this cluster's window, not another server's in the same store
        assert_eq!(
            st.last_database_backup_time,
            Some(Time(at("2026-01-10T03:05:00Z")))
        );
        assert_eq!(
            st.first_recoverability_point,
            Some(Time(at("2025-12-11T03:00:00Z")))
        );
        // no spec.backup, no condition
        assert!(health(&valid(&demo()), &live(&healthy()), &[], at(NOW)).is_none());
    }

    #[test]
    fn a_failed_originals_run_is_reported_with_its_schedule() {
        let (c, _) = health_of(&replace(
            Kind::CronJob,
            cron_job(json!({"lastScheduleTime": "2026-01-10T03:00:00Z",
                            "lastSuccessfulTime": "2026-01-09T03:10:00Z"})),
        ));
        assert!(!c.status);
        assert_eq!(c.reason, "OriginalsBackupFailed");
        assert!(
            c.message.contains("scheduled at 2026-01-10T03:00:00Z"),
            "{}",
            c.message
        );
        // still running: not a failure
        let (c, _) = health_of(&replace(
            Kind::CronJob,
            cron_job(json!({"lastScheduleTime": "2026-01-10T03:00:00Z",
                            "lastSuccessfulTime": "2026-01-09T23:10:00Z",
                            "active": [{"name": "demo-backup-29463300"}]})),
        ));
        assert!(c.status, "{c:?}");
        // a first run that failed
        let (c, _) = health_of(&replace(
            Kind::CronJob,
            cron_job(json!({"lastScheduleTime": "2026-01-10T03:00:00Z"})),
        ));
        assert_eq!(c.reason, "OriginalsBackupFailed");
    }

    #[test]
    fn database_failures_wal_archiving_first() {
        let (c, _) = health_of(&replace(
            Kind::DatabaseCluster,
            cluster(json!([
                {"type": "ContinuousArchiving", "status": "False", "message": "unexpected failure invoking barman-cloud-wal-archive"},
                {"type": "LastBackupSucceeded", "status": "False", "reason": "LastBackupFailed", "message": "no credentials"}
            ])),
        ));
        assert!(!c.status);
        assert_eq!(c.reason, "WALArchivingFailed");
        assert!(
            c.message.contains("barman-cloud-wal-archive"),
            "{}",
            c.message
        );
        assert!(c.message.contains("no credentials"), "{}", c.message);
        // a backup in progress is not a failure
        let (c, _) = health_of(&replace(
            Kind::DatabaseCluster,
            cluster(
                json!([{"type": "LastBackupSucceeded", "status": "False", "reason": "BackupStarted"}]),
            ),
        ));
        assert!(c.status, "{c:?}");
        // the plugin's record of a failure newer than the last success
        let (c, _) = health_of(&replace(
            Kind::ObjectStore,
            store(json!({"lastSuccessfulBackupTime": "2026-01-09T03:05:00Z",
                         "lastFailedBackupTime": "2026-01-10T03:05:00Z"})),
        ));
        assert_eq!(c.reason, "DatabaseBackupFailed");
        assert!(
            c.message.contains("at 2026-01-10T03:05:00Z"),
            "{}",
            c.message
        );
    }

    #[test]
    fn too_old_and_pending() {
        // the last success is 3 days old, maxAge 26h
        let (c, st) = health_of(&replace(
            Kind::CronJob,
            cron_job(json!({"lastScheduleTime": "2026-01-07T03:00:00Z",
                            "lastSuccessfulTime": "2026-01-07T03:10:00Z"})),
        ));
        assert_eq!(c.reason, "BackupTooOld");
        assert!(
            c.message
                .contains("originals backup, at 2026-01-07T03:10:00Z"),
            "{}",
            c.message
        );
        assert!(st.last_originals_backup_time.is_some());
        // never ran, created long ago (the CronJob suspended out of band, say)
        let (c, _) = health_of(&replace(Kind::CronJob, cron_job(json!({}))));
        assert_eq!(c.reason, "BackupTooOld");
        // never ran, created an hour ago: pending
        let (c, _) = health_of(&replace(
            Kind::CronJob,
            json!({"metadata": {"creationTimestamp": "2026-01-10T11:00:00Z"}, "status": {}}),
        ));
        assert_eq!(c.reason, "BackupPending");
        assert!(!c.status);
        // a failure outranks an old backup
        let mut objects = replace(
            Kind::CronJob,
            cron_job(json!({"lastScheduleTime": "2026-01-10T03:00:00Z",
                            "lastSuccessfulTime": "2026-01-01T03:10:00Z"})),
        );
        objects.retain(|(k, _, _)| *k != Kind::ObjectStore);
        let (c, _) = health_of(&objects);
        assert_eq!(c.reason, "OriginalsBackupFailed");
    }

    #[test]
    fn missing_plugin_and_external_database() {
        let s = backed_up();
        let (c, _) = health(
            &valid(&s),
            &live(&healthy()),
            &[OptionalApi::BarmanCloud],
            at(NOW),
        )
        .unwrap();
        assert_eq!(c.reason, "BarmanCloudNotInstalled");
        // an external database is its provider's to back up: only the originals count
        let s = with(backed_up(), |s| {
            s.spec.database.external = Some(external("rds"))
        });
        let objects: Vec<_> = healthy()
            .into_iter()
            .filter(|(k, _, _)| *k == Kind::CronJob)
            .collect();
        let (c, st) = health(&valid(&s), &live(&objects), &[], at(NOW)).unwrap();
        assert!(c.status, "{c:?}");
        assert!(st.last_database_backup_time.is_none());
    }

    #[test]
    fn one_event_per_new_failure() {
        let cond = |status: &str, reason: &str, message: &str| {
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                type_: "BackupHealthy".into(),
                status: status.into(),
                reason: reason.into(),
                message: message.into(),
                observed_generation: Some(1),
                last_transition_time: Time(Timestamp::UNIX_EPOCH),
            }
        };
        let with_cond = |c| PhotoSiteStatus {
            conditions: vec![c],
            ..PhotoSiteStatus::default()
        };
        let failed = with_cond(cond("False", "OriginalsBackupFailed", "scheduled at 1"));
        let e = failure_event(None, &failed).unwrap();
        assert_eq!(e.reason, "OriginalsBackupFailed");
        // the same failure again: no new Event
        assert!(failure_event(Some(&failed), &failed).is_none());
        // the next failed run: a new Event
        let next = with_cond(cond("False", "OriginalsBackupFailed", "scheduled at 2"));
        assert!(failure_event(Some(&failed), &next).is_some());
        // pending and healthy: none
        assert!(failure_event(None, &with_cond(cond("False", "BackupPending", "w"))).is_none());
        assert!(
            failure_event(
                Some(&failed),
                &with_cond(cond("True", "BackupsSucceeding", "ok"))
            )
            .is_none()
        );
    }
}
