//! The restore of `spec.restore`, decided in one place ([`decide`]) once per reconcile, before
//! anything is built: every stage after it reads the one [`Restore`].
//!
//! A site with `spec.restore` first gets its restore Job and no Deployment (nor backup
//! CronJob, nor autoscaler); the servers start once the Job has succeeded. That success is
//! recorded in `status.restore.originalsRestoredTime` and on the originals claim
//! (`photostack.io/originals-restored-time`), so it outlives the Job (its TTL removes it) and
//! a lost status (a GitOps or Velero migration): the site never goes back to restoring while
//! its claim or its servers are there ([`decide`]). Until then:
//! - the builders leave the servers out ([`crate::children::Inputs::originals_restored`]);
//! - dereference checks the restore's object store Secrets (afterwards they are no longer
//!   needed);
//! - `Ready` is false with `RestoringOriginals`, and a failed Job is a `Degraded` problem
//!   (`RestoreFailed`) until it is deleted to run again.

use k8s_openapi::api::batch::v1::JobStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::conditions::{Cond, ConditionType, Problem};
use super::observe::{Observed, ObservedChild};
use crate::children::{Kind, pvc};
use crate::crd::{PhotoSiteStatus, RestoreStatus};
use crate::names;
use crate::site::{ValidatedRestore, ValidatedSite};

/// Reasons of the restore.
pub mod reason {
    /// The restore Job failed (a Degraded reason).
    pub const RESTORE_FAILED: &str = "RestoreFailed";
    /// The originals are being restored (a Ready reason).
    pub const RESTORING_ORIGINALS: &str = "RestoringOriginals";
}

/// Where the restore of `spec.restore` stands.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Restore {
    /// The site has no `spec.restore`.
    #[default]
    NotAsked,
    /// The Job has not succeeded yet: the servers wait. `failure` when the Job failed.
    Pending {
        /// Ready's reason and message meanwhile.
        restoring: Cond,
        failure: Option<Problem>,
    },
    /// The originals were restored at this time (recorded, or seen on the Job).
    Done(Time),
}

impl Restore {
    /// Whether the restore still has to succeed before the servers start.
    pub fn pending(&self) -> bool {
        matches!(self, Restore::Pending { .. })
    }

    /// When the originals were restored (`None` while pending or without `spec.restore`).
    pub fn restored_time(&self) -> Option<Time> {
        match self {
            Restore::Done(t) => Some(t.clone()),
            Restore::NotAsked | Restore::Pending { .. } => None,
        }
    }

    /// `status.restore` (for a site with `spec.restore`).
    pub fn status(&self) -> Option<RestoreStatus> {
        match self {
            Restore::NotAsked => None,
            Restore::Pending { .. } => Some(RestoreStatus {
                originals_restored_time: None,
            }),
            Restore::Done(t) => Some(RestoreStatus {
                originals_restored_time: Some(t.clone()),
            }),
        }
    }
}

/// The live children that tell whether the restore already succeeded.
#[derive(Clone, Copy, Debug, Default)]
pub struct Evidence<'a> {
    /// The restore Job (until its TTL removes it).
    pub job: Option<&'a ObservedChild>,
    /// The originals claim, marked with [`pvc::RESTORED_ANNOTATION`] once restored.
    pub claim: Option<&'a ObservedChild>,
    /// The servers' Deployment: it exists only once the restore has succeeded.
    pub deployment: Option<&'a ObservedChild>,
}

impl<'a> Evidence<'a> {
    /// The evidence among the observed children of `site`.
    pub fn of(observed: &'a Observed, site: &ValidatedSite) -> Self {
        Evidence {
            job: observed.get(Kind::Job, &names::restore(site.name)),
            claim: observed.get(
                Kind::PersistentVolumeClaim,
                &names::originals_claim(site.name),
            ),
            deployment: observed.get(Kind::Deployment, &names::app(site.name)),
        }
    }
}

/// Decide where the restore stands. Succeeded, in this order of evidence: the time recorded
/// in the status; the mark on the originals claim (it survives a lost status); a Job that
/// completed; a live Deployment (`spec.restore` cannot be added to a running site, so its
/// servers were started by a succeeded restore). Only without any of them is the restore
/// (still) to run: never over a site that already runs.
pub fn decide(site: &ValidatedSite, old: Option<&PhotoSiteStatus>, seen: &Evidence) -> Restore {
    let job = seen.job.and_then(ObservedChild::job);
    let recorded = restored_time(old, job)
        .or_else(|| marked_time(seen.claim))
        .or_else(|| {
            let d = seen.deployment?;
            Some(
                d.meta
                    .creation_timestamp
                    .clone()
                    .unwrap_or(Time(Timestamp::UNIX_EPOCH)),
            )
        });
    match (site.restore.as_ref(), recorded) {
        (None, _) => Restore::NotAsked,
        (Some(_), Some(t)) => Restore::Done(t),
        (Some(r), None) => Restore::Pending {
            restoring: restoring_condition(site, r),
            failure: restore_failure(site, false, job),
        },
    }
}

/// The restore time marked on the originals claim.
fn marked_time(claim: Option<&ObservedChild>) -> Option<Time> {
    let value = claim?
        .meta
        .annotations
        .as_ref()?
        .get(pvc::RESTORED_ANNOTATION)?;
    value.parse::<Timestamp>().ok().map(Time)
}

fn is_true(job: &JobStatus, type_: &str) -> bool {
    condition(job, type_).is_some_and(|c| c.status == "True")
}

fn condition<'a>(
    job: &'a JobStatus,
    type_: &str,
) -> Option<&'a k8s_openapi::api::batch::v1::JobCondition> {
    job.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

/// When the originals of `spec.restore` were restored: the recorded time, else the
/// completion of a live Job that succeeded.
pub fn restored_time(old: Option<&PhotoSiteStatus>, job: Option<&JobStatus>) -> Option<Time> {
    if let Some(t) = old
        .and_then(|s| s.restore.as_ref())
        .and_then(|r| r.originals_restored_time.clone())
    {
        return Some(t);
    }
    let job = job?;
    if !is_true(job, "Complete") {
        return None;
    }
    // a Job marked Complete has a completionTime; should it be missing, the condition's
    let at = job
        .completion_time
        .clone()
        .or_else(|| condition(job, "Complete").and_then(|c| c.last_transition_time.clone()))
        .unwrap_or(Time(Timestamp::UNIX_EPOCH));
    Some(at)
}

/// The problem of a restore Job that failed (and has not been deleted to retry).
pub fn restore_failure(
    site: &ValidatedSite,
    restored: bool,
    job: Option<&JobStatus>,
) -> Option<Problem> {
    let restore = site.restore.as_ref()?;
    let job = job.filter(|_| !restored)?;
    let failed = condition(job, "Failed").filter(|c| c.status == "True")?;
    let why = failed
        .message
        .as_deref()
        .or(failed.reason.as_deref())
        .unwrap_or("failed");
    let name = names::restore(site.name);
    Some(Problem {
        reason: reason::RESTORE_FAILED,
        message: format!(
            "restoring the originals from {} failed ({why}): see kubectl -n {ns} logs job/{name}; the servers start once it succeeds, and kubectl -n {ns} delete job {name} runs it again",
            restore.store.url,
            ns = site.namespace,
        ),
    })
}

/// Ready's reason and message while the originals are being restored.
fn restoring_condition(site: &ValidatedSite, restore: &ValidatedRestore) -> Cond {
    Cond::new(
        ConditionType::Ready,
        false,
        reason::RESTORING_ORIGINALS,
        format!(
            "restoring the originals from {} (Job {}): the photo-server pods start when it has succeeded",
            restore.store.url,
            names::restore(site.name)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::children::Kind;
    use crate::test_support::*;
    use serde_json::{Value, json};

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn job(v: Value) -> JobStatus {
        let child = ObservedChild::from_json(Kind::Job, v).unwrap();
        child.job().cloned().unwrap()
    }

    #[test]
    fn restore_completion_is_recorded_once() {
        let done = job(json!({"status": {"completionTime": "2026-01-10T04:00:00Z",
            "conditions": [{"type": "Complete", "status": "True"}]}}));
        assert_eq!(
            restored_time(None, Some(&done)),
            Some(Time(at("2026-01-10T04:00:00Z")))
        );
        let running = job(json!({"status": {"active": 1}}));
        assert_eq!(restored_time(None, Some(&running)), None);
        assert_eq!(restored_time(None, None), None);
        // once recorded, the Job no longer matters (its TTL deletes it)
        let recorded = PhotoSiteStatus {
            restore: Some(RestoreStatus {
                originals_restored_time: Some(Time(at("2026-01-10T04:00:00Z"))),
            }),
            ..PhotoSiteStatus::default()
        };
        assert!(restored_time(Some(&recorded), None).is_some());
    }

    #[test]
    fn a_failed_restore_job_is_a_problem_until_deleted() {
        let s = with(demo(), |s| s.spec.restore = Some(restore_spec()));
        let site = valid(&s);
        let failed = job(json!({"status": {"failed": 7, "conditions": [
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}}));
        let p = restore_failure(&site, false, Some(&failed)).unwrap();
        assert_eq!(p.reason, "RestoreFailed");
        assert!(p.message.contains("s3://backups/prod/old"), "{}", p.message);
        assert!(p.message.contains("backoff limit"), "{}", p.message);
        assert!(
            p.message.contains("delete job demo-restore"),
            "{}",
            p.message
        );
        assert!(restore_failure(&site, false, None).is_none());
        assert!(restore_failure(&site, true, Some(&failed)).is_none());
        assert!(restore_failure(&valid(&demo()), false, Some(&failed)).is_none());
    }

    #[test]
    fn one_decision_for_every_stage() {
        let s = with(demo(), |s| s.spec.restore = Some(restore_spec()));
        let site = valid(&s);
        let done = ObservedChild::from_json(
            Kind::Job,
            json!({"status": {"completionTime": "2026-01-10T04:00:00Z",
                "conditions": [{"type": "Complete", "status": "True"}]}}),
        )
        .unwrap();
        let job = |j| Evidence {
            job: Some(j),
            ..Evidence::default()
        };
        let d = decide(&site, None, &job(&done));
        assert_eq!(d, Restore::Done(Time(at("2026-01-10T04:00:00Z"))));
        assert!(!d.pending());
        let pending = decide(&site, None, &Evidence::default());
        assert!(pending.pending());
        assert_eq!(
            pending.status(),
            Some(RestoreStatus {
                originals_restored_time: None
            })
        );
        assert_eq!(
            decide(&valid(&demo()), None, &job(&done)),
            Restore::NotAsked
        );
        assert_eq!(Restore::NotAsked.status(), None);
    }

    #[test]
    fn a_lost_status_does_not_restore_a_running_site_again() {
        let s = with(demo(), |s| s.spec.restore = Some(restore_spec()));
        let site = valid(&s);
        // the Job is gone (TTL) and the status lost: the claim's mark says when
        let claim = ObservedChild::from_json(
            Kind::PersistentVolumeClaim,
            json!({"metadata": {"name": "demo-originals",
                "annotations": {pvc::RESTORED_ANNOTATION: "2026-01-10T04:00:00Z"}}}),
        )
        .unwrap();
        let seen = Evidence {
            claim: Some(&claim),
            ..Evidence::default()
        };
        assert_eq!(
            decide(&site, None, &seen),
            Restore::Done(Time(at("2026-01-10T04:00:00Z")))
        );
        // an unmarked claim (a new one, after a migration without the data) restores again
        let blank = ObservedChild::from_json(
            Kind::PersistentVolumeClaim,
            json!({"metadata": {"name": "demo-originals"}}),
        )
        .unwrap();
        let seen = Evidence {
            claim: Some(&blank),
            ..Evidence::default()
        };
        assert!(decide(&site, None, &seen).pending());
        // the servers' Deployment exists only after a restore succeeded
        let deployment = ObservedChild::from_json(
            Kind::Deployment,
            json!({"metadata": {"name": "demo", "creationTimestamp": "2026-01-10T04:01:00Z"}}),
        )
        .unwrap();
        let seen = Evidence {
            claim: Some(&blank),
            deployment: Some(&deployment),
            ..Evidence::default()
        };
        assert_eq!(
            decide(&site, None, &seen),
            Restore::Done(Time(at("2026-01-10T04:01:00Z")))
        );
    }

    #[test]
    fn the_restored_claim_is_marked_with_the_time() {
        let s = with(demo(), |s| s.spec.restore = Some(restore_spec()));
        let site = valid(&s);
        let t = Time(at("2026-01-10T04:00:00Z"));
        let claim = pvc::build(&site, Some(&t));
        assert_eq!(
            claim.metadata.annotations.unwrap()[pvc::RESTORED_ANNOTATION],
            "2026-01-10T04:00:00Z"
        );
        let unmarked = pvc::build(&site, None)
            .metadata
            .annotations
            .unwrap_or_default();
        assert!(!unmarked.contains_key(pvc::RESTORED_ANNOTATION));
    }
}
