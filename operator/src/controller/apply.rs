//! Stage 7, apply: carry out the [`Plan`]: server-side apply the children that need it, in order, and
//! delete the ones the spec no longer asks for.
//!
//! Every apply uses one field manager (`photo-operator`) with `force`, so the operator owns
//! exactly the fields it sets and drops the fields it stops setting.
//!
//! One refused child does not stop the others: when the API server refuses a child for a
//! reason a retry cannot cure (400, 403, 404, 422: an immutable field, a claim its class
//! cannot expand, an API that is not installed, a missing permission), the refusal is kept
//! for the status and the next child is applied. Anything else (a conflict, a server error,
//! a lost connection) stops the reconcile, which is retried with backoff.

use std::collections::HashMap;

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};

use super::context::Context;
use super::observe::ObserveError;
use super::observe::{Observed, ObservedChild};
use super::plan::{Plan, Refusal, protected};
use crate::children::Kind;
use crate::error::{ApiError, Stage, is_not_found, is_refusal};
use crate::metrics::KindLabels;
use crate::names;
use crate::site::ValidatedSite;

/// Why the children cannot be applied or cleaned up (a refusal is not an error: it is
/// reported in the status and the other children are applied).
#[derive(thiserror::Error, Debug)]
pub enum ApplyError {
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The API server's answer does not parse.
    #[error(transparent)]
    Observe(#[from] ObserveError),
}

impl ApplyError {
    /// Label for the `photo_operator_reconcile_errors_total` counter.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ApplyError::Api(e) => e.metric_label(),
            ApplyError::Observe(e) => e.metric_label(),
        }
    }

    /// Reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            ApplyError::Api(e) => e.reason(),
            ApplyError::Observe(e) => e.reason(),
        }
    }

    /// An object the API refused as invalid (not one held back as a refusal).
    pub fn is_user_error(&self) -> bool {
        match self {
            ApplyError::Api(e) => e.is_user_error(),
            ApplyError::Observe(_) => false,
        }
    }
}

/// What apply did and the live state of each child after it.
#[derive(Debug, Default)]
pub struct Applied {
    /// Children that were written.
    pub changed: Vec<(Kind, String)>,
    /// Children the API refused or the plan held back.
    pub refused: Vec<Refusal>,
    /// Live copy of each child (apply response, or store copy when not written).
    pub live: HashMap<(Kind, String), ObservedChild>,
}

fn object_name(kind: Kind, namespace: &str, name: &str) -> String {
    format!("{} {namespace}/{name}", kind.kind_name())
}

pub async fn apply(
    site: &ValidatedSite<'_>,
    plan: &Plan,
    observed: Observed,
    ctx: &Context,
) -> Result<Applied, ApplyError> {
    let ns = site.namespace;
    let params = PatchParams::apply(names::FIELD_MANAGER).force();
    let mut applied = Applied {
        refused: plan.held.clone(),
        live: observed.children,
        ..Applied::default()
    };
    for child in &plan.apply {
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), ns, &child.kind.api_resource());
        let result = match api
            .patch(&child.name, &params, &Patch::Apply(&child.object))
            .await
        {
            Ok(result) => result,
            Err(e) if is_refusal(&e) => {
                let message = match &e {
                    kube::Error::Api(status) => status.message.clone(),
                    other => other.to_string(),
                };
                tracing::warn!(kind = child.kind.kind_name(), name = %child.name, namespace = %ns,
                    %message, "apply refused");
                applied.refused.push(Refusal {
                    kind: child.kind,
                    name: child.name.clone(),
                    message,
                });
                continue;
            }
            Err(e) => {
                return Err(
                    ApiError::api(Stage::Apply, object_name(child.kind, ns, &child.name))(e).into(),
                );
            }
        };
        ctx.metrics
            .applied
            .get_or_create(&KindLabels {
                kind: child.kind.kind_name().into(),
            })
            .inc();
        tracing::info!(kind = child.kind.kind_name(), name = %child.name, namespace = %ns, "applied");
        applied.changed.push((child.kind, child.name.clone()));
        applied.live.insert(
            (child.kind, child.name.clone()),
            ObservedChild::parse(child.kind, &result)?,
        );
        ctx.stores.record(child.kind, result);
    }
    Ok(applied)
}

pub async fn cleanup(
    site: &ValidatedSite<'_>,
    plan: &Plan,
    ctx: &Context,
) -> Result<Vec<(Kind, String)>, ApplyError> {
    let ns = site.namespace;
    let mut deleted = Vec::new();
    for (kind, name) in &plan.delete {
        let kind = *kind;
        // The plan never lists data or credentials; refuse them here too.
        if protected(kind) {
            continue;
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), ns, &kind.api_resource());
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(ApiError::api(Stage::Cleanup, object_name(kind, ns, name))(e).into());
            }
        }
        ctx.metrics
            .deleted
            .get_or_create(&KindLabels {
                kind: kind.kind_name().into(),
            })
            .inc();
        tracing::info!(kind = kind.kind_name(), name = %name, namespace = %ns, "deleted");
        deleted.push((kind, name.clone()));
    }
    Ok(deleted)
}
