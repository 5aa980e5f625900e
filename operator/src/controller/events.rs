//! Kubernetes Events on the PhotoSite for what the operator does (applied or deleted
//! children) and what fails. Only emitted when something changed, so a converged site is
//! silent. Failing to publish an Event is logged, never fatal.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};

use super::conditions::Problem;
use super::context::Context;
use crate::children::Kind;

fn truncate(mut s: String) -> String {
    if s.len() > 1000 {
        let mut cut = 1000;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

async fn publish(ctx: &Context, reference: &ObjectReference, event: Event) {
    if let Err(e) = ctx.recorder.publish(&event, reference).await {
        tracing::warn!(error = %e, reason = %event.reason, "could not publish event");
    }
}

/// Normal event listing what was applied and deleted.
pub async fn changed(
    ctx: &Context,
    reference: &ObjectReference,
    applied: &[(Kind, String)],
    deleted: &[(Kind, String)],
) {
    let list = |v: &[(Kind, String)]| {
        v.iter()
            .map(|(k, n)| format!("{}/{}", k.kind_name(), n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut note = String::new();
    if !applied.is_empty() {
        note.push_str(&format!("applied {}", list(applied)));
    }
    if !deleted.is_empty() {
        if !note.is_empty() {
            note.push_str("; ");
        }
        note.push_str(&format!("deleted {}", list(deleted)));
    }
    let reason = if applied.is_empty() {
        "Deleted"
    } else {
        "Applied"
    };
    publish(
        ctx,
        reference,
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(truncate(note)),
            action: "Reconcile".into(),
            secondary: None,
        },
    )
    .await;
}

/// Warning event for an error (`why`: its reason and message).
pub async fn warning(ctx: &Context, reference: &ObjectReference, why: &Problem, action: &str) {
    publish(
        ctx,
        reference,
        Event {
            type_: EventType::Warning,
            reason: why.reason.into(),
            note: Some(truncate(why.message.clone())),
            action: action.into(),
            secondary: None,
        },
    )
    .await;
}

/// Warning event for a site that became (or stays, differently) Degraded: every problem.
pub async fn degraded(ctx: &Context, reference: &ObjectReference, problems: &[Problem]) {
    let Some(first) = problems.first() else {
        return;
    };
    let note = problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    publish(
        ctx,
        reference,
        Event {
            type_: EventType::Warning,
            reason: first.reason.into(),
            note: Some(truncate(note)),
            action: "Reconcile".into(),
            secondary: None,
        },
    )
    .await;
}

/// Warning event: the spec asks for monitoring objects and the Prometheus Operator's CRDs
/// are not installed, so they are not created.
pub async fn monitoring_ignored(ctx: &Context, reference: &ObjectReference) {
    publish(
        ctx,
        reference,
        Event {
            type_: EventType::Warning,
            reason: "MonitoringIgnored".into(),
            note: Some(
                "spec.monitoring asks for a ServiceMonitor or PrometheusRule, but the Prometheus Operator CRDs (monitoring.coreos.com/v1) are not installed: nothing created until they are".into(),
            ),
            action: "Reconcile".into(),
            secondary: None,
        },
    )
    .await;
}
