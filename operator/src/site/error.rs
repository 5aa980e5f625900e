//! The validate stage's error.

/// Why a PhotoSite cannot be validated: a spec invalid beyond what the CRD schema catches.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ValidateError {
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
}

impl ValidateError {
    /// Label for the `photo_operator_reconcile_errors_total` counter.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ValidateError::InvalidSpec(_) => "invalid_spec",
        }
    }

    /// Reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            ValidateError::InvalidSpec(_) => "InvalidSpec",
        }
    }
}

/// A [`ValidateError::InvalidSpec`].
pub(super) fn invalid(msg: impl Into<String>) -> ValidateError {
    ValidateError::InvalidSpec(msg.into())
}
