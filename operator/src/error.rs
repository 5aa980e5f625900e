//! The operator's one error type. `metric_label()` names the failure in metrics,
//! `reason()` in conditions and Events; `is_user_error()` separates what the PhotoSite's author
//! must fix (no fast retry, a Degraded condition instead) from what a retry may cure.
//!
//! An API failure names the pipeline stage and the object it concerned
//! ("apply Deployment photos/demo: ..."), so a log line or an Event says where to look.

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

#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// The spec is invalid beyond what the CRD schema catches.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// `storage.originals.existingClaim` names a claim that does not exist.
    #[error("existing claim {0:?} for originals not found")]
    MissingClaim(String),
    /// The external database Secret or its key does not exist.
    #[error("external database secret: {0}")]
    MissingDatabaseSecret(String),
    /// A PhotoSite that does not deserialize into the current types.
    #[error("invalid PhotoSite: {0}")]
    InvalidObject(String),
    /// A Kubernetes API call failed, in `stage`, on `object` (`Kind namespace/name`).
    #[error("{stage} {object}: {source}")]
    Api {
        stage: Stage,
        object: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// The watch of a kind the reconcile reads has not listed (its store would show children
    /// as missing): a permission or an API the operator cannot list.
    #[error("the watch of {kind} has not listed in {seconds} s: {detail}")]
    WatchNotListed {
        kind: &'static str,
        seconds: u64,
        detail: String,
    },
    /// A live child did not parse into its observation type.
    #[error(transparent)]
    Observe(#[from] crate::controller::observe::ObserveError),
    /// Serialising an object failed (a bug).
    #[error("serialization: {0}")]
    Serialization(#[from] serde_json::Error),
    /// YAML input of `render` or output of `crd`.
    #[error("yaml: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

impl Error {
    /// `map_err` adapter for a kube call in `stage` on `object`.
    pub fn api(stage: Stage, object: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let object = object.into();
        move |source| Error::Api {
            stage,
            object,
            source: Box::new(source),
        }
    }

    fn api_code(&self) -> Option<u16> {
        match self {
            Error::Api { source, .. } => match source.as_ref() {
                kube::Error::Api(s) => Some(s.code),
                _ => None,
            },
            _ => None,
        }
    }

    /// Short label for the `photo_operator_reconcile_errors_total` counter.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_) => "invalid_spec",
            Error::MissingClaim(_) => "missing_claim",
            Error::MissingDatabaseSecret(_) => "missing_database_secret",
            Error::InvalidObject(_) => "invalid_object",
            Error::Serialization(_) | Error::Yaml(_) | Error::Observe(_) => "serialization",
            Error::WatchNotListed { .. } => "watch_not_listed",
            Error::Api { .. } => match self.api_code() {
                Some(409) => "api_conflict",
                Some(403) => "api_forbidden",
                Some(404) => "api_not_found",
                Some(422) => "api_invalid",
                Some(c) if c >= 500 => "api_server_error",
                Some(_) => "api_error",
                None => "api_unreachable",
            },
        }
    }

    /// CamelCase reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::MissingClaim(_) => "ExistingClaimNotFound",
            Error::MissingDatabaseSecret(_) => "DatabaseSecretNotFound",
            Error::InvalidObject(_) => "InvalidObject",
            Error::Serialization(_) | Error::Yaml(_) | Error::Observe(_) => "InternalError",
            Error::WatchNotListed { .. } => "WatchNotListed",
            Error::Api { .. } => match self.api_code() {
                Some(409) => "ApplyConflict",
                Some(403) => "Forbidden",
                Some(404) => "NotFound",
                Some(422) => "Rejected",
                _ => "ApiError",
            },
        }
    }

    /// Errors only the PhotoSite's author can fix: reported, retried slowly, never hot-looped.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::InvalidSpec(_)
                | Error::MissingClaim(_)
                | Error::MissingDatabaseSecret(_)
                | Error::InvalidObject(_)
        ) || self.api_code() == Some(422)
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
        let e = Error::api(Stage::Apply, "Deployment photos/demo")(api(500));
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
