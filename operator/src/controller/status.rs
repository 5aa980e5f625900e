//! Stage 8, status: computed only from the typed observations of what was applied (or is
//! live), patched only when it changed.
//!
//! Conditions ([`ConditionType`]): `Ready`, `Progressing`, `Degraded`, `DatabaseReady`, and
//! with `spec.backup` `BackupHealthy` (see [`super::backups`]; it never affects `Ready`). Each
//! carries `observedGeneration`, as does the status, so `kubectl wait --for=condition=Ready`
//! never returns on a stale status. `lastTransitionTime` is kept when a condition's status did
//! not change, so identical reconciles produce identical statuses and no writes.
//!
//! `Degraded` is true, with a reason and a message naming what is wrong, when a child was
//! refused by the API (the message names each child's kind and name and the API's message),
//! when CloudNativePG is not installed for a site that needs it, or when the spec cannot be
//! satisfied (see [`degraded`]). `Ready` is then false with the same reason: the spec at
//! `observedGeneration` is not fully in place.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::backups;
use super::conditions::{Cond, ConditionType, Problem, reason};
use super::context::Context;
use super::observe::ObservedChild;
use super::plan::Refusal;
use super::restore::Restore;
use crate::children::crd_types::{ClusterStatus, StatusCondition};
use crate::children::{Kind, OptionalApi, ingress};
use crate::crd::{PhotoSite, PhotoSiteStatus};
use crate::error::{ApiError, Stage};
use crate::site::ValidatedSite;
use crate::{labels, names};

/// The problems of a reconcile: missing CloudNativePG or Barman Cloud plugin, then each
/// refused child.
pub fn problems(refused: &[Refusal], missing: &[OptionalApi]) -> Vec<Problem> {
    let mut out = Vec::new();
    if missing.contains(&OptionalApi::CloudNativePg) {
        out.push(Problem {
            reason: reason::CLOUDNATIVE_PG_NOT_INSTALLED,
            message: "CloudNativePG is not installed (the API serves no postgresql.cnpg.io/v1 Cluster): install it, or set database.external".into(),
        });
    }
    if missing.contains(&OptionalApi::BarmanCloud) {
        out.push(Problem {
            reason: reason::BARMAN_CLOUD_NOT_INSTALLED,
            message: "the Barman Cloud plugin for CloudNativePG is not installed (the API serves no barmancloud.cnpg.io/v1 ObjectStore): the database is not backed up, and a database to restore is not created until it is".into(),
        });
    }
    if missing.contains(&OptionalApi::GatewayApi) {
        out.push(Problem {
            reason: reason::GATEWAY_API_NOT_INSTALLED,
            message: "the Gateway API is not installed (the API serves no gateway.networking.k8s.io/v1 HTTPRoute): spec.gateway cannot route to the site until its CRDs and a Gateway controller are".into(),
        });
    }
    out.extend(refused.iter().map(|r| Problem {
        reason: reason::CHILD_REFUSED,
        message: r.to_string(),
    }));
    out
}

/// Database state from the live CloudNativePG Cluster: (ready, short state, message).
pub fn database_state(
    site: &ValidatedSite,
    cluster: Option<&ClusterStatus>,
    cnpg_missing: bool,
) -> (bool, String, String) {
    if let Some(ext) = &site.spec.database.external {
        return (
            true,
            "External".into(),
            format!(
                "using the external database in Secret {:?}",
                ext.secret_name
            ),
        );
    }
    if cnpg_missing {
        return (
            false,
            "NotInstalled".into(),
            "CloudNativePG is not installed".into(),
        );
    }
    let Some(c) = cluster else {
        return (
            false,
            "Pending".into(),
            "database cluster not created yet".into(),
        );
    };
    let want = site.spec.database.instances as i64;
    let ready_instances = c.ready_instances.unwrap_or(0);
    let ready_cond = StatusCondition::find(&c.conditions, "Ready").is_some_and(|x| x.is("True"));
    if ready_cond && ready_instances >= want {
        (
            true,
            "Ready".into(),
            format!("{ready_instances}/{want} Postgres instances ready"),
        )
    } else {
        let phase = c.phase.as_deref().unwrap_or("not reported");
        let why = c
            .phase_reason
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        (
            false,
            "Pending".into(),
            format!("{ready_instances}/{want} Postgres instances ready (phase: {phase}{why})"),
        )
    }
}

/// Why a Gateway refused the site's HTTPRoute (`Accepted` or `ResolvedRefs` false), naming
/// the Gateway and its reason; `None` while accepted or not yet answered.
fn route_refusal(route: Option<&ObservedChild>) -> Option<String> {
    let parents = &route?.http_route()?.parents;
    let refusals: Vec<String> = parents
        .iter()
        .flat_map(|p| {
            ["Accepted", "ResolvedRefs"]
                .into_iter()
                .filter_map(move |t| {
                    let c = StatusCondition::find(&p.conditions, t).filter(|c| c.is("False"))?;
                    let gateway = match &p.parent_ref.namespace {
                        Some(ns) => format!("{ns}/{}", p.parent_ref.name),
                        None => p.parent_ref.name.clone(),
                    };
                    Some(format!(
                        "Gateway {gateway}: {t} False ({}): {}",
                        c.reason.as_deref().unwrap_or("no reason"),
                        c.message.as_deref().unwrap_or("")
                    ))
                })
        })
        .collect();
    (!refusals.is_empty())
        .then(|| format!("the HTTPRoute is not in service: {}", refusals.join("; ")))
}

/// What the Deployment itself reports as failing: pods it cannot create (`ReplicaFailure`,
/// e.g. `exceeded quota` or `must specify limits.cpu`) or a rollout past its progress
/// deadline; with the Deployment's message.
fn deployment_failure(
    ds: &k8s_openapi::api::apps::v1::DeploymentStatus,
    pod_selector: &str,
) -> Option<(&'static str, String)> {
    let conds = ds.conditions.as_deref().unwrap_or_default();
    let find = |t: &str| conds.iter().find(|c| c.type_ == t);
    if let Some(c) = find("ReplicaFailure").filter(|c| c.status == "True") {
        return Some((
            reason::PODS_REFUSED,
            c.message
                .clone()
                .unwrap_or_else(|| "pods cannot be created".into()),
        ));
    }
    find("Progressing")
        .filter(|c| c.status == "False" && c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
        .map(|c| {
            (
                reason::ROLLOUT_STUCK,
                format!(
                    "{} (see why its pods are not ready: kubectl get pods -l {pod_selector})",
                    c.message
                        .as_deref()
                        .unwrap_or("the rollout passed its progress deadline"),
                ),
            )
        })
}

/// Why the status cannot be written.
#[derive(thiserror::Error, Debug)]
pub enum StatusError {
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl StatusError {
    /// Label for the `photo_operator_reconcile_errors_total` counter.
    pub fn metric_label(&self) -> &'static str {
        match self {
            StatusError::Api(e) => e.metric_label(),
        }
    }

    /// Reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            StatusError::Api(e) => e.reason(),
        }
    }

    /// The API server refused the status as invalid.
    pub fn is_user_error(&self) -> bool {
        match self {
            StatusError::Api(e) => e.is_user_error(),
        }
    }
}

/// What status is computed from, besides the PhotoSite.
#[derive(Debug, Default)]
pub struct Observations<'a> {
    /// Live copy of each child, by kind and name.
    pub live: HashMap<(Kind, String), ObservedChild>,
    /// Why the site is Degraded (empty: it is not).
    pub problems: Vec<Problem>,
    /// Optional APIs the spec needs and the cluster lacks.
    pub missing: &'a [OptionalApi],
    /// Phase of `storage.originals.existingClaim`, as read by dereference.
    pub existing_claim_phase: Option<String>,
    /// The time backups' ages are measured at.
    pub now: k8s_openapi::jiff::Timestamp,
    /// Where the restore of `spec.restore` stands ([`super::restore::decide`]).
    pub restore: Restore,
}

/// The status for a site whose children were applied.
pub fn compute(photosite: &PhotoSite, site: &ValidatedSite, obs: &Observations) -> PhotoSiteStatus {
    let generation = photosite.metadata.generation;
    let want = crate::children::deployment::replicas(site) as i64;
    let d = obs.live.get(&(Kind::Deployment, names::app(site.name)));
    let ds = d
        .and_then(ObservedChild::deployment)
        .cloned()
        .unwrap_or_default();
    let replicas = i64::from(ds.replicas.unwrap_or(0));
    let ready = i64::from(ds.ready_replicas.unwrap_or(0));
    let updated = i64::from(ds.updated_replicas.unwrap_or(0));
    let observed = ds.observed_generation.unwrap_or(0);
    let dep_gen = d.and_then(|d| d.meta.generation).unwrap_or(0);
    let rolled_out =
        d.is_some() && observed >= dep_gen && updated >= want && ready >= want && replicas == want;
    let cnpg_missing = obs.missing.contains(&OptionalApi::CloudNativePg);
    let (db_ready, db_state, db_message) = database_state(
        site,
        obs.live
            .get(&(Kind::DatabaseCluster, names::database_cluster(site.name)))
            .and_then(ObservedChild::cluster),
        cnpg_missing,
    );
    let originals = if site.owns_originals_claim() {
        obs.live
            .get(&(
                Kind::PersistentVolumeClaim,
                names::originals_claim(site.name),
            ))
            .and_then(ObservedChild::claim)
            .and_then(|(_, status)| status.phase.clone())
    } else {
        obs.existing_claim_phase.clone()
    };
    let claim = crate::children::pvc::claim_name(site);
    let restoring = match &obs.restore {
        Restore::Pending { restoring, .. } => Some(restoring.clone()),
        Restore::NotAsked | Restore::Done(_) => None,
    };
    let backup = backups::health(site, &obs.live, obs.missing, obs.now);

    use ConditionType::*;
    let pods = format!("{ready}/{want} photo-server pods ready, {updated} updated");
    let db_reason = if cnpg_missing {
        reason::CLOUDNATIVE_PG_NOT_INSTALLED.to_string()
    } else {
        db_state.clone()
    };
    let mut conds = vec![Cond::new(
        DatabaseReady,
        db_ready,
        db_reason,
        db_message.clone(),
    )];
    conds.push(if rolled_out {
        Cond::new(Progressing, false, reason::ROLLOUT_COMPLETE, pods.clone())
    } else {
        Cond::new(Progressing, true, reason::ROLLING_OUT, pods.clone())
    });
    let problem_message = obs
        .problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    conds.push(match obs.problems.first() {
        Some(p) => Cond::new(Degraded, true, p.reason, problem_message.clone()),
        None => Cond::new(Degraded, false, reason::AS_EXPECTED, "all children applied"),
    });
    conds.push(if let Some(p) = obs.problems.first() {
        Cond::new(Ready, false, p.reason, problem_message)
    } else if let Some(r) = restoring {
        r
    } else if !db_ready {
        Cond::new(Ready, false, reason::DATABASE_NOT_READY, db_message)
    } else if let Some(refusal) =
        route_refusal(obs.live.get(&(Kind::HttpRoute, names::app(site.name))))
    {
        Cond::new(Ready, false, reason::ROUTE_NOT_ACCEPTED, refusal)
    } else if !rolled_out && originals.as_deref() == Some("Pending") {
        Cond::new(
            Ready,
            false,
            reason::ORIGINALS_PENDING,
            format!("PersistentVolumeClaim {claim} is Pending; {pods}"),
        )
    } else if let (false, Some((why, message))) = (
        rolled_out,
        deployment_failure(&ds, &labels::selector_string(site.name)),
    ) {
        Cond::new(Ready, false, why, format!("{message}; {pods}"))
    } else if !rolled_out {
        Cond::new(Ready, false, reason::PODS_NOT_READY, pods)
    } else {
        Cond::new(Ready, true, reason::READY, pods)
    });
    let backup = backup.map(|(cond, status)| {
        conds.push(cond);
        status
    });
    PhotoSiteStatus {
        observed_generation: generation,
        conditions: merge(photosite.status.as_ref(), &conds, generation),
        replicas: replicas as i32,
        ready_replicas: ready as i32,
        selector: Some(labels::selector_string(site.name)),
        url: Some(ingress::url(site)),
        database: Some(db_state),
        originals,
        backup,
        restore: obs.restore.status(),
    }
}

/// The status for a site the operator cannot satisfy (`why`: the error's reason and message):
/// Degraded, not Ready, everything else kept.
pub fn degraded(site: &PhotoSite, why: &Problem) -> PhotoSiteStatus {
    use ConditionType::*;
    let generation = site.metadata.generation;
    let mut status = site.status.clone().unwrap_or_default();
    let msg = why.message.clone();
    let mut conds: Vec<Cond> = status
        .conditions
        .iter()
        .filter_map(|c| {
            let t = ConditionType::parse(&c.type_)?;
            matches!(t, BackupHealthy | DatabaseReady | Progressing)
                .then(|| Cond::new(t, c.status == "True", c.reason.clone(), c.message.clone()))
        })
        .collect();
    if !conds.iter().any(|c| c.type_ == DatabaseReady) {
        conds.push(Cond::new(
            DatabaseReady,
            false,
            "Unknown",
            "not reconciled yet",
        ));
    }
    if !conds.iter().any(|c| c.type_ == Progressing) {
        conds.push(Cond::new(Progressing, false, why.reason, msg.clone()));
    }
    conds.push(Cond::new(Degraded, true, why.reason, msg.clone()));
    conds.push(Cond::new(Ready, false, why.reason, msg));
    status.conditions = merge(site.status.as_ref(), &conds, generation);
    status.observed_generation = generation;
    status.selector = Some(labels::selector_string(&site.name_any()));
    status
}

/// Conditions in a fixed order, keeping `lastTransitionTime` when the status did not change.
pub fn merge(
    old: Option<&PhotoSiteStatus>,
    conds: &[Cond],
    generation: Option<i64>,
) -> Vec<Condition> {
    let mut sorted = conds.to_vec();
    sorted.sort_by_key(|c| c.type_);
    sorted
        .into_iter()
        .map(|c| {
            let t = c.type_.as_str();
            let status = if c.status { "True" } else { "False" };
            let previous = old.and_then(|s| s.conditions.iter().find(|x| x.type_ == t));
            let last_transition_time = match previous {
                Some(p) if p.status == status => p.last_transition_time.clone(),
                _ => Time(k8s_openapi::jiff::Timestamp::now()),
            };
            Condition {
                type_: t.into(),
                status: status.into(),
                reason: c.reason,
                message: c.message,
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// Patch the status subresource if it differs from the current one; returns whether it did.
pub async fn patch_if_changed(
    site: &PhotoSite,
    ctx: &Context,
    status: PhotoSiteStatus,
) -> Result<bool, StatusError> {
    if site.status.as_ref() == Some(&status) {
        return Ok(false);
    }
    let ns = site.namespace().unwrap_or_default();
    let name = site.name_any();
    let api: Api<PhotoSite> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = json!({
        "apiVersion": "photostack.io/v1alpha1",
        "kind": "PhotoSite",
        "status": status,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(names::FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(ApiError::api(
        Stage::Status,
        format!("PhotoSite {ns}/{name}"),
    ))?;
    ctx.metrics.status_writes.inc();
    Ok(true)
}

/// Record a Degraded status; returns whether it changed (then an Event is due too).
pub async fn patch_degraded(
    site: &PhotoSite,
    ctx: &Context,
    why: &Problem,
) -> Result<bool, StatusError> {
    patch_if_changed(site, ctx, degraded(site, why)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    fn cond(s: &PhotoSiteStatus, t: ConditionType) -> &Condition {
        s.conditions.iter().find(|c| c.type_ == t.as_str()).unwrap()
    }

    #[test]
    fn conditions_are_sorted_and_carry_the_generation() {
        let p = with(demo(), |s| s.metadata.generation = Some(7));
        let site = valid(&p);
        let s = compute(&p, &site, &Observations::default());
        let types: Vec<&str> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["DatabaseReady", "Degraded", "Progressing", "Ready"]);
        assert!(
            s.conditions
                .iter()
                .all(|c| c.observed_generation == Some(7))
        );
        assert_eq!(s.observed_generation, Some(7));
    }

    #[test]
    fn refused_children_degrade_with_kind_name_and_message() {
        let p = demo();
        let site = valid(&p);
        let refused = vec![Refusal {
            kind: Kind::PersistentVolumeClaim,
            name: "demo-originals".into(),
            message: "only dynamically provisioned pvc can be resized".into(),
        }];
        let obs = Observations {
            problems: problems(&refused, &[]),
            ..Observations::default()
        };
        let s = compute(&p, &site, &obs);
        let d = cond(&s, ConditionType::Degraded);
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", "ChildRefused")
        );
        assert_eq!(
            d.message,
            "PersistentVolumeClaim demo-originals: only dynamically provisioned pvc can be resized"
        );
        assert_eq!(cond(&s, ConditionType::Ready).reason, "ChildRefused");
    }

    #[test]
    fn missing_cloudnative_pg_is_reported() {
        let p = demo();
        let site = valid(&p);
        let missing = [OptionalApi::CloudNativePg];
        let obs = Observations {
            problems: problems(&[], &missing),
            missing: &missing,
            ..Observations::default()
        };
        let s = compute(&p, &site, &obs);
        for t in [
            ConditionType::Degraded,
            ConditionType::Ready,
            ConditionType::DatabaseReady,
        ] {
            assert_eq!(cond(&s, t).reason, "CloudNativePGNotInstalled", "{t:?}");
        }
        assert_eq!(cond(&s, ConditionType::Degraded).status, "True");
        assert_eq!(s.database.as_deref(), Some("NotInstalled"));
    }

    #[test]
    fn pending_originals_claim_is_shown() {
        let p = demo();
        let site = valid(&p);
        let mut live = HashMap::new();
        live.insert(
            (Kind::PersistentVolumeClaim, "demo-originals".to_string()),
            ObservedChild::from_json(
                Kind::PersistentVolumeClaim,
                json!({"status": {"phase": "Pending"}}),
            )
            .unwrap(),
        );
        let (key, db) = ready_database();
        live.insert(key, db);
        let obs = Observations {
            live,
            ..Observations::default()
        };
        let s = compute(&p, &site, &obs);
        assert_eq!(s.originals.as_deref(), Some("Pending"));
        let r = cond(&s, ConditionType::Ready);
        assert_eq!(r.reason, "OriginalsPending");
        assert!(r.message.contains("demo-originals"), "{}", r.message);
        // an existing claim's phase comes from dereference
        let p = with(demo(), |s| {
            s.spec.storage.originals.existing_claim = Some("nfs".into())
        });
        let site = valid(&p);
        let obs = Observations {
            existing_claim_phase: Some("Bound".into()),
            ..Observations::default()
        };
        assert_eq!(compute(&p, &site, &obs).originals.as_deref(), Some("Bound"));
    }

    /// demo's CloudNativePG cluster, ready with its two instances.
    fn ready_database() -> ((Kind, String), ObservedChild) {
        (
            (Kind::DatabaseCluster, "demo-db".to_string()),
            ObservedChild::from_json(
                Kind::DatabaseCluster,
                json!({"status": {"readyInstances": 2, "conditions": [{"type": "Ready", "status": "True"}]}}),
            )
            .unwrap(),
        )
    }

    /// A site whose database is ready and whose Deployment reports `status`.
    fn with_deployment(status: serde_json::Value) -> HashMap<(Kind, String), ObservedChild> {
        let mut live = HashMap::new();
        let (key, db) = ready_database();
        live.insert(key, db);
        live.insert(
            (Kind::Deployment, "demo".to_string()),
            ObservedChild::from_json(
                Kind::Deployment,
                json!({"metadata": {"generation": 1}, "status": status}),
            )
            .unwrap(),
        );
        live
    }

    #[test]
    fn pods_the_quota_refuses_are_named_in_ready() {
        let p = demo();
        let site = valid(&p);
        let live = with_deployment(json!({
            "observedGeneration": 1,
            "conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                "message": "pods \"demo-7c9\" is forbidden: failed quota: compute: must specify limits.cpu"}]
        }));
        let s = compute(
            &p,
            &site,
            &Observations {
                live,
                ..Observations::default()
            },
        );
        let r = cond(&s, ConditionType::Ready);
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", "PodsRefused")
        );
        assert!(
            r.message.contains("must specify limits.cpu"),
            "{}",
            r.message
        );
        assert!(
            r.message.contains("0/2 photo-server pods ready"),
            "{}",
            r.message
        );
    }

    #[test]
    fn a_rollout_past_its_deadline_is_stuck_not_just_not_ready() {
        let p = demo();
        let site = valid(&p);
        let stuck = with_deployment(json!({
            "observedGeneration": 1, "replicas": 2, "updatedReplicas": 1,
            "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                "message": "ReplicaSet \"demo-7c9\" has timed out progressing."}]
        }));
        let s = compute(
            &p,
            &site,
            &Observations {
                live: stuck,
                ..Observations::default()
            },
        );
        let r = cond(&s, ConditionType::Ready);
        assert_eq!(r.reason, "RolloutStuck");
        assert!(
            r.message.contains("has timed out progressing"),
            "{}",
            r.message
        );
        assert!(
            r.message
                .contains("kubectl get pods -l app.kubernetes.io/instance=demo"),
            "{}",
            r.message
        );
        // still within the deadline: plain PodsNotReady
        let slow = with_deployment(json!({
            "observedGeneration": 1, "replicas": 2,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]
        }));
        let s = compute(
            &p,
            &site,
            &Observations {
                live: slow,
                ..Observations::default()
            },
        );
        assert_eq!(cond(&s, ConditionType::Ready).reason, "PodsNotReady");
    }

    #[test]
    fn the_database_phase_reason_is_in_the_message() {
        let p = demo();
        let site = valid(&p);
        let mut live = HashMap::new();
        live.insert(
            (Kind::DatabaseCluster, "demo-db".to_string()),
            ObservedChild::from_json(
                Kind::DatabaseCluster,
                json!({"status": {"readyInstances": 0, "phase": "Setting up primary",
                    "phaseReason": "Creating primary instance demo-db-1"}}),
            )
            .unwrap(),
        );
        let s = compute(
            &p,
            &site,
            &Observations {
                live,
                ..Observations::default()
            },
        );
        let r = cond(&s, ConditionType::Ready);
        assert_eq!(r.reason, "DatabaseNotReady");
        assert_eq!(
            r.message,
            "0/2 Postgres instances ready (phase: Setting up primary: Creating primary instance demo-db-1)"
        );
    }

    #[test]
    fn a_route_the_gateway_refuses_keeps_the_site_unready_with_its_reason() {
        let p = with(demo(), |s| s.spec.gateway = Some(gateway_spec()));
        let site = valid(&p);
        let mut live = with_deployment(json!({
            "observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2
        }));
        let route = |status| {
            ObservedChild::from_json(
                Kind::HttpRoute,
                json!({"metadata": {"name": "demo"}, "status": status}),
            )
            .unwrap()
        };
        live.insert(
            (Kind::HttpRoute, "demo".to_string()),
            route(json!({"parents": [{"parentRef": {"name": "public", "namespace": "gateways"},
                "conditions": [{"type": "Accepted", "status": "False", "reason": "NotAllowedByListeners",
                    "message": "no listener allows routes from namespace photos"}]}]})),
        );
        let obs = Observations {
            live,
            ..Observations::default()
        };
        let s = compute(&p, &site, &obs);
        let r = cond(&s, ConditionType::Ready);
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", "RouteNotAccepted")
        );
        assert_eq!(
            r.message,
            "the HTTPRoute is not in service: Gateway gateways/public: Accepted False (NotAllowedByListeners): no listener allows routes from namespace photos"
        );
        assert_eq!(s.url.as_deref(), Some("http://photos.example.com/"));
        // accepted, or not answered yet: Ready
        let mut live = obs.live;
        live.insert(
            (Kind::HttpRoute, "demo".to_string()),
            route(json!({"parents": [{"parentRef": {"name": "public"},
                "conditions": [{"type": "Accepted", "status": "True"}]}]})),
        );
        let s = compute(
            &p,
            &site,
            &Observations {
                live,
                ..Observations::default()
            },
        );
        assert_eq!(cond(&s, ConditionType::Ready).status, "True");
    }

    #[test]
    fn a_gateway_without_the_gateway_api_degrades_the_site() {
        let p = with(demo(), |s| s.spec.gateway = Some(gateway_spec()));
        let site = valid(&p);
        let missing = [OptionalApi::GatewayApi];
        let obs = Observations {
            problems: problems(&[], &missing),
            missing: &missing,
            ..Observations::default()
        };
        let s = compute(&p, &site, &obs);
        let d = cond(&s, ConditionType::Degraded);
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", "GatewayAPINotInstalled")
        );
        assert!(
            d.message.contains("gateway.networking.k8s.io/v1 HTTPRoute"),
            "{}",
            d.message
        );
    }
}
