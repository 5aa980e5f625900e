//! What every stage's error shares: a failed Kubernetes API call ([`ApiError`]), named by the
//! pipeline [`Stage`] and the object it concerned ("apply Deployment photos/demo: ..."), so a
//! log line or an Event says where to look, and the metric label and condition reason of its
//! HTTP status. Each stage has its own error enum next to it (`site::ValidateError`,
//! `controller::dereference::DereferenceError`, ...); `controller::Error` is the reconcile's,
//! one variant per stage.

use std::fmt;

/// The step of the reconcile pipeline an API call belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Reading what the PhotoSite references.
    Dereference,
    /// Server-side applying a child.
    Apply,
    /// Deleting a child the spec no longer wants.
    Cleanup,
    /// Writing the PhotoSite's status.
    Status,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Dereference => "dereference",
            Stage::Apply => "apply",
            Stage::Cleanup => "cleanup",
            Stage::Status => "status",
        })
    }
}

/// A Kubernetes API call failed, in `stage`, on `object` (`Kind namespace/name`).
#[derive(thiserror::Error, Debug)]
#[error("{stage} {object}: {source}")]
pub struct ApiError {
    pub stage: Stage,
    pub object: String,
    #[source]
    pub source: Box<kube::Error>,
}

impl ApiError {
    /// `map_err` adapter for a kube call in `stage` on `object`.
    pub fn api(stage: Stage, object: impl Into<String>) -> impl FnOnce(kube::Error) -> ApiError {
        let object = object.into();
        move |source| ApiError {
            stage,
            object,
            source: Box::new(source),
        }
    }

    /// The HTTP status of the API server's answer (none: no answer).
    pub fn code(&self) -> Option<u16> {
        match self.source.as_ref() {
            kube::Error::Api(s) => Some(s.code),
            _ => None,
        }
    }

    /// Short label for the `photo_operator_reconcile_errors_total` counter.
    pub fn metric_label(&self) -> &'static str {
        match self.code() {
            Some(409) => "api_conflict",
            Some(403) => "api_forbidden",
            Some(404) => "api_not_found",
            Some(422) => "api_invalid",
            Some(c) if c >= 500 => "api_server_error",
            Some(_) => "api_error",
            None => "api_unreachable",
        }
    }

    /// CamelCase reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self.code() {
            Some(409) => "ApplyConflict",
            Some(403) => "Forbidden",
            Some(404) => "NotFound",
            Some(422) => "Rejected",
            _ => "ApiError",
        }
    }

    /// An object the API server refuses as invalid: only the PhotoSite's author can fix it.
    pub fn is_user_error(&self) -> bool {
        self.code() == Some(422)
    }
}

/// Whether a kube error is a 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Whether the API server refused a write of one object for a reason a retry will not cure
/// (bad request, forbidden, no such resource, invalid or immutable field): the child is
/// reported and the others are still applied.
pub fn is_refusal(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if matches!(s.code, 400 | 403 | 404 | 422))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(&format!("mock {code}"), "Mock")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn api_errors_name_stage_and_object() {
        let e = ApiError::api(Stage::Apply, "Deployment photos/demo")(api(500));
        let text = e.to_string();
        assert!(text.starts_with("apply Deployment photos/demo: "), "{text}");
        assert_eq!(e.metric_label(), "api_server_error");
    }

    #[test]
    fn refusals_are_the_permanent_client_errors() {
        for code in [400, 403, 404, 422] {
            assert!(is_refusal(&api(code)), "{code}");
        }
        for code in [409, 429, 500, 503] {
            assert!(!is_refusal(&api(code)), "{code}");
        }
    }
}
