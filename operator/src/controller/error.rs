//! The reconcile's error: one variant per stage, each stage's own enum inside. Its
//! [`Error::metric_label`] names the failure in `photo_operator_reconcile_errors_total`,
//! [`Error::reason`] in conditions and Events; [`Error::is_user_error`] separates what the
//! PhotoSite's author must fix (no fast retry, a Degraded condition instead) from what a retry
//! may cure.

use super::apply::ApplyError;
use super::conditions::Problem;
use super::dereference::DereferenceError;
use super::observe::ObserveError;
use super::plan::PlanError;
use super::status::StatusError;
use crate::site::ValidateError;

#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// A PhotoSite that does not deserialize into the current types.
    #[error("invalid PhotoSite: {0}")]
    InvalidObject(String),
    #[error(transparent)]
    Validate(#[from] ValidateError),
    #[error(transparent)]
    Dereference(#[from] DereferenceError),
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Status(#[from] StatusError),
}

impl Error {
    /// Its reason and message, for a condition or an Event.
    pub fn why(&self) -> Problem {
        Problem {
            reason: self.reason(),
            message: self.to_string(),
        }
    }

    /// Short label for the `photo_operator_reconcile_errors_total` counter.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::InvalidObject(_) => "invalid_object",
            Error::Validate(e) => e.metric_label(),
            Error::Dereference(e) => e.metric_label(),
            Error::Observe(e) => e.metric_label(),
            Error::Plan(e) => e.metric_label(),
            Error::Apply(e) => e.metric_label(),
            Error::Status(e) => e.metric_label(),
        }
    }

    /// CamelCase reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::InvalidObject(_) => "InvalidObject",
            Error::Validate(e) => e.reason(),
            Error::Dereference(e) => e.reason(),
            Error::Observe(e) => e.reason(),
            Error::Plan(e) => e.reason(),
            Error::Apply(e) => e.reason(),
            Error::Status(e) => e.reason(),
        }
    }

    /// Errors only the PhotoSite's author can fix: reported, retried slowly, never hot-looped.
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::InvalidObject(_) | Error::Validate(_) => true,
            Error::Dereference(e) => e.is_user_error(),
            Error::Observe(_) | Error::Plan(_) => false,
            Error::Apply(e) => e.is_user_error(),
            Error::Status(e) => e.is_user_error(),
        }
    }
}
