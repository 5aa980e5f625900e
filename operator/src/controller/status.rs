//! Step 4: status, computed only from what was applied (or is live), patched only when it
//! changed.
//!
//! Conditions: `Ready`, `Progressing`, `Degraded`, `DatabaseReady`. Each carries
//! `observedGeneration`, as does the status, so `kubectl wait --for=condition=Ready` never
//! returns on a stale status. `lastTransitionTime` is kept when a condition's status did not
//! change, so identical reconciles produce identical statuses and no writes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::Context;
use super::apply::Applied;
use super::dereference::References;
use crate::build::{Kind, Site, ingress};
use crate::crd::{PhotoSite, PhotoSiteStatus};
use crate::{Error, labels, names};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
pub const DATABASE_READY: &str = "DatabaseReady";

/// A condition before timestamps: (type, status, reason, message).
pub type Cond = (&'static str, bool, String, String);

fn int(v: &Value, path: &[&str]) -> i64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_i64().unwrap_or(0)
}

/// Database state from the live CloudNativePG Cluster: (ready, short state, message).
pub fn database_state(site: &PhotoSite, cluster: Option<&Value>) -> (bool, String, String) {
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
    let Some(c) = cluster else {
        return (
            false,
            "Pending".into(),
            "database cluster not created yet".into(),
        );
    };
    let want = site.spec.database.instances as i64;
    let ready_instances = int(c, &["status", "readyInstances"]);
    let ready_cond = c["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|x| x["type"] == "Ready"))
        .is_some_and(|x| x["status"] == "True");
    if ready_cond && ready_instances >= want {
        (
            true,
            "Ready".into(),
            format!("{ready_instances}/{want} Postgres instances ready"),
        )
    } else {
        let phase = c["status"]["phase"].as_str().unwrap_or("not reported");
        (
            false,
            "Pending".into(),
            format!("{ready_instances}/{want} Postgres instances ready (phase: {phase})"),
        )
    }
}

/// The status for a site whose children were applied.
pub fn compute(site: &PhotoSite, applied: &Applied) -> PhotoSiteStatus {
    let generation = site.metadata.generation;
    let name = site.name_any();
    let want = site.spec.replicas as i64;
    let null = Value::Null;
    let d = applied.live.get(&Kind::Deployment).unwrap_or(&null);
    let replicas = int(d, &["status", "replicas"]);
    let ready = int(d, &["status", "readyReplicas"]);
    let updated = int(d, &["status", "updatedReplicas"]);
    let observed = int(d, &["status", "observedGeneration"]);
    let dep_gen = int(d, &["metadata", "generation"]);
    let rolled_out =
        !d.is_null() && observed >= dep_gen && updated >= want && ready >= want && replicas == want;
    let (db_ready, db_state, db_message) =
        database_state(site, applied.live.get(&Kind::DatabaseCluster));

    let pods = format!("{ready}/{want} photo-server pods ready, {updated} updated");
    let mut conds: Vec<Cond> = vec![(
        DATABASE_READY,
        db_ready,
        db_state.clone(),
        db_message.clone(),
    )];
    conds.push(if rolled_out {
        (PROGRESSING, false, "RolloutComplete".into(), pods.clone())
    } else {
        (PROGRESSING, true, "RollingOut".into(), pods.clone())
    });
    conds.push((
        DEGRADED,
        false,
        "AsExpected".into(),
        "all children applied".into(),
    ));
    conds.push(if !db_ready {
        (READY, false, "DatabaseNotReady".into(), db_message)
    } else if !rolled_out {
        (READY, false, "PodsNotReady".into(), pods)
    } else {
        (READY, true, "Ready".into(), pods)
    });
    let url = Site::new(site).ok().map(|s| ingress::url(&s));
    PhotoSiteStatus {
        observed_generation: generation,
        conditions: merge(site.status.as_ref(), &conds, generation),
        replicas: replicas as i32,
        ready_replicas: ready as i32,
        selector: Some(labels::selector_string(&name)),
        url,
        database: Some(db_state),
    }
}

/// The status for a site the operator cannot satisfy: Degraded, not Ready, everything else kept.
pub fn degraded(site: &PhotoSite, err: &Error) -> PhotoSiteStatus {
    let generation = site.metadata.generation;
    let mut status = site.status.clone().unwrap_or_default();
    let msg = err.to_string();
    let mut conds: Vec<Cond> = status
        .conditions
        .iter()
        .filter(|c| c.type_ == DATABASE_READY || c.type_ == PROGRESSING)
        .map(|c| {
            let t: &'static str = if c.type_ == DATABASE_READY {
                DATABASE_READY
            } else {
                PROGRESSING
            };
            (t, c.status == "True", c.reason.clone(), c.message.clone())
        })
        .collect();
    if !conds.iter().any(|c| c.0 == DATABASE_READY) {
        conds.push((
            DATABASE_READY,
            false,
            "Unknown".into(),
            "not reconciled yet".into(),
        ));
    }
    if !conds.iter().any(|c| c.0 == PROGRESSING) {
        conds.push((PROGRESSING, false, err.reason().into(), msg.clone()));
    }
    conds.push((DEGRADED, true, err.reason().into(), msg.clone()));
    conds.push((READY, false, err.reason().into(), msg));
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
    let mut out: Vec<Condition> = conds
        .iter()
        .map(|(t, ok, reason, message)| {
            let status = if *ok { "True" } else { "False" };
            let previous = old.and_then(|s| s.conditions.iter().find(|c| c.type_ == *t));
            let last_transition_time = match previous {
                Some(p) if p.status == status => p.last_transition_time.clone(),
                _ => Time(k8s_openapi::jiff::Timestamp::now()),
            };
            Condition {
                type_: (*t).into(),
                status: status.into(),
                reason: reason.clone(),
                message: message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect();
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// Patch the status subresource if it differs from the current one; returns whether it did.
pub async fn patch_if_changed(
    site: &PhotoSite,
    ctx: &Context,
    status: PhotoSiteStatus,
) -> Result<bool, Error> {
    if site.status.as_ref() == Some(&status) {
        return Ok(false);
    }
    let api: Api<PhotoSite> =
        Api::namespaced(ctx.client.clone(), &site.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": "photostack.io/v1alpha1",
        "kind": "PhotoSite",
        "status": status,
    });
    api.patch_status(
        &site.name_any(),
        &PatchParams::apply(names::FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(true)
}

/// Compute and write the status after a successful apply; returns whether the site is Ready.
pub async fn update(
    site: &PhotoSite,
    ctx: &Context,
    applied: &Applied,
    _refs: &References,
) -> Result<bool, Error> {
    let status = compute(site, applied);
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == READY && c.status == "True");
    patch_if_changed(site, ctx, status).await?;
    Ok(ready)
}

/// Record a Degraded status; returns whether it changed (then an Event is due too).
pub async fn patch_degraded(site: &PhotoSite, ctx: &Context, err: &Error) -> Result<bool, Error> {
    patch_if_changed(site, ctx, degraded(site, err)).await
}
