//! The reconcile: [`pipeline`] runs the stages of one PhotoSite in order, [`reconcile`] is
//! kube's entry point around it (Events, metrics, requeue), [`error_policy`] the backoff.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::warn;

use super::conditions::{self, ConditionType, Problem};
use super::context::Context;
use super::error::Error;
use super::observe::{ObserveError, Observed};
use super::restore::{self, Evidence, Restore};
use super::{apply, backups, dereference, events, plan, status, watches};
use crate::children::{self, Inputs, Kind, OptionalApi};
use crate::crd::PhotoSite;

/// Requeue of a converged site: a safety net, the watches trigger everything else.
pub const RESYNC: Duration = Duration::from_secs(300);
/// Requeue while pods or the database are still coming up.
pub const PROGRESSING_REQUEUE: Duration = Duration::from_secs(30);
/// Requeue of a site its author must fix (missing claim, bad spec): slow, no hot loop.
pub const USER_ERROR_REQUEUE: Duration = Duration::from_secs(120);
/// A site's reconcile waits this long after the last change that triggers it, so the burst
/// of watch events its own applies cause (one per child, and the status) ends in one
/// reconcile instead of one per event.
pub const DEBOUNCE: Duration = Duration::from_millis(500);

fn object_ref(site: &PhotoSite) -> ObjectReference {
    site.object_ref(&())
}

fn key(site_ns: Option<&str>, name: &str) -> String {
    format!("{}/{}", site_ns.unwrap_or_default(), name)
}

/// What one successful pass of the pipeline did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub applied: Vec<(Kind, String)>,
    pub deleted: Vec<(Kind, String)>,
    pub ready: bool,
    /// Why the site is Degraded (refused children, missing CloudNativePG).
    pub problems: Vec<Problem>,
    /// Whether the status was written.
    pub status_changed: bool,
    /// Monitoring objects asked for but the Prometheus Operator is not installed.
    pub monitoring_ignored: bool,
    /// A backup failure that the `BackupHealthy` condition newly reports (a Warning Event).
    pub backup_failure: Option<Problem>,
}

/// Reconcile one PhotoSite (the controller's entry point).
pub async fn reconcile(
    guard: Arc<DeserializeGuard<PhotoSite>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let _timer = ctx.metrics.timer();
    let site = match &guard.0 {
        Ok(site) => site,
        Err(invalid) => {
            // One bad object must not stop the others: report it and wait for a change.
            let err = Error::InvalidObject(invalid.error.clone());
            ctx.metrics.count_error(err.metric_label());
            ctx.metrics.count_result("invalid");
            let reference = ObjectReference {
                api_version: Some(PhotoSite::api_version(&()).into()),
                kind: Some(PhotoSite::kind(&()).into()),
                name: invalid.metadata.name.clone(),
                namespace: invalid.metadata.namespace.clone(),
                uid: invalid.metadata.uid.clone(),
                ..ObjectReference::default()
            };
            events::warning(&ctx, &reference, &err.why(), "Deserialize").await;
            return Ok(Action::await_change());
        }
    };
    if site.metadata.deletion_timestamp.is_some() {
        // Owner references and the garbage collector do the rest (see module docs).
        return Ok(Action::await_change());
    }
    let k = key(site.metadata.namespace.as_deref(), &site.name_any());
    match pipeline(site, &ctx).await {
        Ok(outcome) => {
            ctx.reset_backoff(&k);
            let reference = object_ref(site);
            if !outcome.applied.is_empty() || !outcome.deleted.is_empty() {
                events::changed(&ctx, &reference, &outcome.applied, &outcome.deleted).await;
            }
            if outcome.status_changed && !outcome.problems.is_empty() {
                events::degraded(&ctx, &reference, &outcome.problems).await;
            }
            if outcome.monitoring_ignored
                && ctx.first_monitoring_warning(&k, site.metadata.generation.unwrap_or_default())
            {
                events::monitoring_ignored(&ctx, &reference).await;
            }
            if let Some(failure) = &outcome.backup_failure {
                warn!(site = %k, reason = failure.reason, problem = %failure.message, "backup failing");
                events::degraded(&ctx, &reference, std::slice::from_ref(failure)).await;
            }
            if !outcome.problems.is_empty() {
                // Reported in the status; the author (or an admin) must act: retry slowly.
                ctx.metrics.count_result("degraded");
                for p in &outcome.problems {
                    warn!(site = %k, reason = p.reason, problem = %p.message, "PhotoSite degraded");
                }
                return Ok(Action::requeue(USER_ERROR_REQUEUE));
            }
            ctx.metrics.count_result("ok");
            Ok(Action::requeue(if outcome.ready {
                RESYNC
            } else {
                PROGRESSING_REQUEUE
            }))
        }
        Err(err) if err.is_user_error() => {
            ctx.metrics.count_error(err.metric_label());
            ctx.metrics.count_result("degraded");
            ctx.reset_backoff(&k);
            warn!(site = %k, error = %err, "PhotoSite cannot be satisfied");
            let report = status::patch_degraded(site, &ctx, &err.why()).await;
            if let Ok(true) = report {
                events::warning(&ctx, &object_ref(site), &err.why(), "Reconcile").await;
            }
            report.map_err(Error::from)?;
            Ok(Action::requeue(USER_ERROR_REQUEUE))
        }
        Err(err) => {
            ctx.metrics.count_error(err.metric_label());
            ctx.metrics.count_result("error");
            events::warning(&ctx, &object_ref(site), &err.why(), "Reconcile").await;
            Err(err)
        }
    }
}

/// validate -> dereference -> build -> plan -> apply -> cleanup -> status.
pub async fn pipeline(photosite: &PhotoSite, ctx: &Context) -> Result<Outcome, Error> {
    let site = crate::site::validate(photosite)?;
    // One answer of discovery for the whole pass; the stores of what it serves must have listed.
    let apis = ctx.capabilities.get();
    ctx.stores
        .wait_listed(apis, watches::LIST_TIMEOUT)
        .await
        .map_err(ObserveError::from)?;
    let observed = Observed::from_stores(&ctx.stores, &site)?;
    // the restore (spec.restore) gates the servers: decided here, once, for every stage
    let restore = restore::decide(
        &site,
        photosite.status.as_ref(),
        &Evidence::of(&observed, &site),
    );
    let refs = dereference::dereference(&site, ctx, restore.pending()).await?;
    let inputs = Inputs {
        credentials: Some(refs.credentials),
        apis,
        external_database: refs.external_database,
        originals_restored: restore.restored_time(),
    };
    let desired = children::desired(&site, &inputs);
    let plan = plan::plan(&desired, &observed)?;
    let applied = apply::apply(&site, &plan, observed, ctx).await?;
    let deleted = apply::cleanup(&site, &plan, ctx).await?;
    let mut problems = status::problems(&applied.refused, &desired.missing);
    problems.extend(refs.missing_store_secrets.iter().map(|m| Problem {
        reason: conditions::reason::BACKUP_SECRET_NOT_FOUND,
        message: m.clone(),
    }));
    if let Restore::Pending {
        failure: Some(failure),
        ..
    } = &restore
    {
        problems.push(failure.clone());
    }
    let observations = status::Observations {
        live: applied.live,
        problems: problems.clone(),
        missing: &desired.missing,
        existing_claim_phase: refs.existing_claim_phase,
        now: k8s_openapi::jiff::Timestamp::now(),
        restore,
    };
    let status = status::compute(photosite, &site, &observations);
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == ConditionType::Ready.as_str() && c.status == "True");
    let backup_failure = backups::failure_event(photosite.status.as_ref(), &status);
    let status_changed = status::patch_if_changed(photosite, ctx, status).await?;
    Ok(Outcome {
        applied: applied.changed,
        deleted,
        ready,
        problems,
        status_changed,
        monitoring_ignored: desired.missing.contains(&OptionalApi::PrometheusOperator),
        backup_failure,
    })
}

/// Backoff on errors: 5s doubling to 5 minutes per PhotoSite, reset on success.
pub fn error_policy(
    guard: Arc<DeserializeGuard<PhotoSite>>,
    err: &Error,
    ctx: Arc<Context>,
) -> Action {
    let (ns, name) = match &guard.0 {
        Ok(s) => (s.metadata.namespace.clone(), s.name_any()),
        Err(i) => (
            i.metadata.namespace.clone(),
            i.metadata.name.clone().unwrap_or_default(),
        ),
    };
    let k = key(ns.as_deref(), &name);
    let delay = ctx.backoff(&k);
    warn!(site = %k, error = %err, ?delay, "reconcile failed, retrying");
    Action::requeue(delay)
}
