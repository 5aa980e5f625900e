//! The API's error type: each variant knows its status, and the body is always
//! `{"error": "..."}` so clients and scripts can show it as is.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::extract::AuthError;
use crate::db::DbError;
use crate::domain::error::DomainError;
use crate::render::RenderError;
use crate::renditions::RenditionError;

/// A request body that missed its deadline (`http::body_deadline`).
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
#[error("the request body arrived too slowly")]
pub struct BodyTooSlow;

/// Whether `e` or one of its sources is an `E`.
pub fn caused_by<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(e) = source {
        if e.is::<E>() {
            return true;
        }
        source = e.source();
    }
    false
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("log in first")]
    Unauthorized,
    #[error("wrong username or password")]
    BadCredentials,
    #[error(
        "missing or invalid CSRF token: send the `csrf` value of GET /rest/session in the X-CSRF-Token header"
    )]
    Csrf,
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("the request body stalled or arrived too slowly")]
    RequestTimeout,
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMedia(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("too many attempts; try again later")]
    RateLimited { retry_after: Duration },
    #[error("the server is busy rendering; try again shortly")]
    Overloaded,
    #[error("too many logins are being checked at once; try again shortly")]
    LoginsBusy,
    #[error("the database is unreachable; try again shortly")]
    DatabaseUnavailable,
    #[error("{0}")]
    StorageFull(String),
    #[error(
        "this upload would pass your storage quota of {} ({} stored, {} more in this upload); delete photos or ask an admin for more",
        crate::units::bytes(*quota),
        crate::units::bytes(*used),
        crate::units::bytes(*adding)
    )]
    QuotaExceeded { quota: u64, used: u64, adding: u64 },
    #[error("the server is shutting down")]
    Unavailable,
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::BadCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Csrf | ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooLarge(_) | ApiError::QuotaExceeded { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded
            | ApiError::LoginsBusy
            | ApiError::DatabaseUnavailable
            | ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::StorageFull(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(e.to_string())
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            tracing::debug!(error = %e, "database unavailable");
            ApiError::DatabaseUnavailable
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

/// A header value made at run time (a cookie), or `500`.
pub fn header_value(text: &str) -> ApiResult<HeaderValue> {
    HeaderValue::from_str(text).map_err(ApiError::internal)
}

/// An extractor's refusal, as the API gives it.
impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthorized => ApiError::Unauthorized,
            AuthError::Csrf => ApiError::Csrf,
            AuthError::NotAdmin => ApiError::Forbidden("admins only".into()),
            AuthError::Db(e) => ApiError::from(e),
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

/// The rules' answers, as the API gives them.
impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotFound => ApiError::NotFound,
            DomainError::Forbidden(m) => ApiError::Forbidden(m),
            DomainError::BadRequest(m) => ApiError::BadRequest(m),
            DomainError::Invalid(m) => ApiError::Unprocessable(m),
            DomainError::Conflict(m) => ApiError::Conflict(m),
            DomainError::BadCredentials => ApiError::BadCredentials,
            DomainError::RateLimited { retry_after } => ApiError::RateLimited { retry_after },
            DomainError::DatabaseUnavailable => ApiError::DatabaseUnavailable,
            DomainError::QuotaExceeded {
                quota,
                used,
                adding,
            } => ApiError::QuotaExceeded {
                quota,
                used,
                adding,
            },
            // The file's name before what is wrong with it; a failure that
            // is not the file's (reading, encoding) is not named.
            DomainError::BadFile { file, error } => match ApiError::from(error) {
                ApiError::UnsupportedMedia(m) => ApiError::UnsupportedMedia(format!("{file}: {m}")),
                ApiError::Unprocessable(m) => ApiError::Unprocessable(format!("{file}: {m}")),
                other => other,
            },
            DomainError::StorageFull => ApiError::StorageFull(e.to_string()),
            DomainError::Busy => ApiError::Overloaded,
            DomainError::LoginsBusy => ApiError::LoginsBusy,
            DomainError::Db(e) => ApiError::from(e),
            DomainError::Internal(detail) => ApiError::Internal(detail),
        }
    }
}

impl From<RenditionError> for ApiError {
    fn from(e: RenditionError) -> Self {
        match e {
            RenditionError::Busy => ApiError::Overloaded,
            RenditionError::Panicked => ApiError::Internal(e.to_string()),
            // Not 500: the photo is as good as gone.
            RenditionError::MissingOriginal => ApiError::NotFound,
            RenditionError::CannotRender(_) => ApiError::Unprocessable(e.to_string()),
            RenditionError::Failed(e) => ApiError::Internal(e.to_string()),
        }
    }
}

/// A JSON body that does not parse: `422` when well-formed but wrong, `413`
/// when too large, `408` when it arrived too slowly, `400` otherwise.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        if caused_by::<BodyTooSlow>(&e) {
            return ApiError::RequestTimeout;
        }
        match e.status() {
            StatusCode::UNPROCESSABLE_ENTITY => ApiError::Unprocessable(e.body_text()),
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(e.body_text()),
            _ => ApiError::BadRequest(e.body_text()),
        }
    }
}

/// A form body that does not parse: `413` when too large, `408` when it
/// arrived too slowly, `400` otherwise.
impl From<axum::extract::rejection::FormRejection> for ApiError {
    fn from(e: axum::extract::rejection::FormRejection) -> Self {
        if caused_by::<BodyTooSlow>(&e) {
            return ApiError::RequestTimeout;
        }
        match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(e.body_text()),
            _ => ApiError::BadRequest(e.body_text()),
        }
    }
}

impl From<RenderError> for ApiError {
    fn from(e: RenderError) -> Self {
        match e {
            RenderError::Unsupported => ApiError::UnsupportedMedia(e.to_string()),
            RenderError::Corrupt(_)
            | RenderError::TooManyPixels { .. }
            | RenderError::TooMuchMemory { .. }
            | RenderError::Metadata(_)
            | RenderError::TooSlow(_)
            | RenderError::Unrenderable { .. } => ApiError::Unprocessable(e.to_string()),
            RenderError::Encode(_) | RenderError::Read(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(detail) = &self {
            // The detail goes to the log, not to the client.
            tracing::error!(error = %detail, "request failed");
        }
        let mut response = (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response();
        let retry_after = match &self {
            ApiError::RateLimited { retry_after } => Some(retry_after.as_secs().max(1)),
            ApiError::Overloaded | ApiError::LoginsBusy | ApiError::Unavailable => Some(1),
            ApiError::DatabaseUnavailable => Some(2),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
