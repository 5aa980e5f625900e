//! The operator's one error type. `metric_label()` names the failure in metrics,
//! `reason()` in conditions and Events; `is_user_error()` separates what the PhotoSite's author
//! must fix (no fast retry, a Degraded condition instead) from what a retry may cure.

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
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[source] Box<kube::Error>),
    /// Serialising an object failed (a bug).
    #[error("serialization: {0}")]
    Serialization(#[from] serde_json::Error),
    /// YAML input of `render` or output of `crd`.
    #[error("yaml: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Kube(Box::new(e))
    }
}

impl Error {
    fn api_code(&self) -> Option<u16> {
        match self {
            Error::Kube(e) => match e.as_ref() {
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
            Error::Serialization(_) | Error::Yaml(_) => "serialization",
            Error::Kube(_) => match self.api_code() {
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
            Error::Serialization(_) | Error::Yaml(_) => "InternalError",
            Error::Kube(_) => match self.api_code() {
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
