//! What the rules of the site answer when they refuse, or cannot decide.
//! Each caller's edge maps it to its own answer: `error.rs` turns it into the
//! API's [`ApiError`](crate::error::ApiError) (status and JSON body), which
//! the pages show in their own way.

use std::time::Duration;

use crate::auth::password::PasswordError;
use crate::db::DbError;
use crate::render::RenderError;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Missing, or not visible to who asks: the two are never told apart.
    #[error("not found")]
    NotFound,
    /// Visible, but the action is not theirs to take.
    #[error("{0}")]
    Forbidden(String),
    /// The request makes no sense (nothing to change, a forged cursor).
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed input that breaks a rule (a title too long, a weak password).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("wrong username or password")]
    BadCredentials,
    #[error("too many attempts; try again later")]
    RateLimited { retry_after: Duration },
    #[error("the database is not ready")]
    DatabaseUnavailable,
    #[error("upload over quota: {quota} bytes, {used} stored, {adding} more")]
    QuotaExceeded { quota: u64, used: u64, adding: u64 },
    /// An uploaded file that cannot be a photo here, with the file's name.
    #[error("{file}: {error}")]
    BadFile { file: String, error: RenderError },
    /// The originals volume cannot take the upload (full or read-only).
    #[error("the photo store is full or read-only; nothing was stored, try again later")]
    StorageFull,
    /// The render pool is full.
    #[error("the render pool is busy")]
    Busy,
    /// Every password-check place is taken.
    #[error("too many logins are being checked at once; try again shortly")]
    LoginsBusy,
    #[error(transparent)]
    Db(#[from] DbError),
    /// A failure that is nobody's fault in particular (I/O, a panicked task).
    #[error("{0}")]
    Internal(String),
}

impl DomainError {
    pub fn internal(e: impl std::fmt::Display) -> DomainError {
        DomainError::Internal(e.to_string())
    }
}

impl From<PasswordError> for DomainError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Busy => DomainError::LoginsBusy,
            PasswordError::Failed(detail) => DomainError::Internal(detail),
        }
    }
}

pub type DomainResult<T> = Result<T, DomainError>;
