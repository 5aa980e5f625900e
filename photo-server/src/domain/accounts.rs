//! Logging in and out, and managing accounts.
//!
//! Login input is bounded before anything else looks at it: a username that
//! cannot exist (too long, odd characters) or an oversized password is
//! refused without a database query, a throttle entry or a log line with its
//! raw text. Then the throttle (`auth::throttle`) decides, before a
//! password-check place is taken (`auth::password::Passwords`), so a refused
//! guess costs neither a place nor a query; only wrong passwords count.

use std::net::IpAddr;

use crate::auth::{new_token, password, token_hash};
use crate::db::{DbStatus, SessionUser, User, now_ms};
use crate::domain::access::require_admin;
use crate::domain::credentials::{MAX_USERNAME_BYTES, MIN_PASSWORD_CHARS, is_valid_username};
use crate::domain::error::{DomainError, DomainResult};
use crate::metrics::OutcomeLabels;
use crate::state::SharedState;

pub fn validate_username(name: &str) -> DomainResult<()> {
    if is_valid_username(name) {
        Ok(())
    } else {
        Err(DomainError::Invalid(format!(
            "usernames are 1 to {MAX_USERNAME_BYTES} letters, digits, `.`, `_` or `-`"
        )))
    }
}

pub fn validate_password(password: &str) -> DomainResult<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(DomainError::Invalid(format!(
            "passwords need at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > password::MAX_PASSWORD_BYTES {
        return Err(DomainError::Invalid(format!(
            "passwords are at most {} bytes",
            password::MAX_PASSWORD_BYTES
        )));
    }
    Ok(())
}

/// Checks credentials and opens a session: returns its token and the user.
/// `known_cookie` is the `photo_known` cookie the client sent, if any.
pub async fn authenticate(
    state: &SharedState,
    ip: Option<IpAddr>,
    known_cookie: Option<&str>,
    username: &str,
    password_text: String,
) -> DomainResult<(String, User)> {
    let outcome = |o: &str| {
        state
            .metrics
            .logins
            .get_or_create(&OutcomeLabels { outcome: o.into() })
            .inc()
    };
    if state.db.status() != DbStatus::Ready {
        // Still connecting at start, or the admin account not in place yet:
        // no answer about a password would be right.
        return Err(DomainError::DatabaseUnavailable);
    }
    if !is_valid_username(username) || password_text.len() > password::MAX_PASSWORD_BYTES {
        // No such account can exist: nothing to count, look up or log.
        outcome("failure");
        return Err(DomainError::BadCredentials);
    }
    let device = known_cookie.and_then(|c| state.auth.known_device(c, username));
    let attempt = match state.auth.throttle.attempt(ip, device, username) {
        Ok(attempt) => attempt,
        Err(wait) => {
            outcome("rate_limited");
            return Err(DomainError::RateLimited { retry_after: wait });
        }
    };
    // From here an early return (no place, database down) gives the
    // attempt's places back: only a wrong password counts.
    let check = if attempt.is_known() {
        state.auth.passwords.admit_known()?
    } else {
        state.auth.passwords.admit()?
    };
    let user = state.db.user_by_name(username).await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let ok = check.verify(password_text, stored).await?;
    let Some(user) = user.filter(|_| ok) else {
        attempt.failed();
        outcome("failure");
        tracing::info!(username, ip = ?ip, "login failed");
        return Err(DomainError::BadCredentials);
    };
    attempt.succeeded();
    let token = new_token();
    let expires = now_ms() + state.auth.session_ttl.as_millis() as i64;
    state
        .db
        .create_session(&token_hash(&token), &user.id, expires)
        .await?;
    outcome("success");
    tracing::info!(username = %user.username, "logged in");
    Ok((token, user))
}

/// Ends a session on every replica.
pub async fn log_out(state: &SharedState, token: &str) -> DomainResult<()> {
    state.auth.end_session(&state.db, token).await?;
    Ok(())
}

/// An admin creates an account. `409` when the name is taken.
pub async fn create_user(
    state: &SharedState,
    by: &SessionUser,
    username: &str,
    password_text: String,
    admin: bool,
) -> DomainResult<User> {
    require_admin(by)?;
    validate_username(username)?;
    validate_password(&password_text)?;
    let hash = state.auth.passwords.hash(password_text).await?;
    let user = state
        .db
        .create_user(username, &hash, admin)
        .await?
        .ok_or_else(|| DomainError::Conflict(format!("user `{username}` already exists")))?;
    tracing::info!(by = %by.username, user = %user.username, admin = user.is_admin, "user created");
    Ok(user)
}

/// An admin sets someone's password, which ends all of their sessions.
pub async fn reset_password(
    state: &SharedState,
    by: &SessionUser,
    username: &str,
    password_text: String,
) -> DomainResult<()> {
    require_admin(by)?;
    validate_password(&password_text)?;
    if !is_valid_username(username) {
        return Err(DomainError::NotFound);
    }
    let user = state
        .db
        .user_by_name(username)
        .await?
        .ok_or(DomainError::NotFound)?;
    let hash = state.auth.passwords.hash(password_text).await?;
    state.db.set_password(&user.id, &hash).await?;
    tracing::info!(by = %by.username, user = %user.username, "password reset");
    Ok(())
}
