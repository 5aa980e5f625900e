//! Kubernetes Events on the PhotoSite for what the operator does (applied or deleted
//! children) and what fails. Only emitted when something changed, so a converged site is
//! silent. Failing to publish an Event is logged, never fatal.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};

use super::conditions::Problem;
use super::{Context, Outcome};
use crate::Error;

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
pub async fn changed(ctx: &Context, reference: &ObjectReference, outcome: &Outcome) {
    let list = |v: &[(crate::children::Kind, String)]| {
        v.iter()
            .map(|(k, n)| format!("{}/{}", k.kind_name(), n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut note = String::new();
    if !outcome.applied.is_empty() {
        note.push_str(&format!("applied {}", list(&outcome.applied)));
    }
    if !outcome.deleted.is_empty() {
        if !note.is_empty() {
            note.push_str("; ");
        }
        note.push_str(&format!("deleted {}", list(&outcome.deleted)));
    }
    let reason = if outcome.applied.is_empty() {
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

/// Warning event for an error.
pub async fn warning(ctx: &Context, reference: &ObjectReference, err: &Error, action: &str) {
    publish(
        ctx,
        reference,
        Event {
            type_: EventType::Warning,
            reason: err.reason().into(),
            note: Some(truncate(err.to_string())),
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
