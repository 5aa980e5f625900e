//! Start-up: the configuration checked, the database reached and migrated,
//! and the admin account from `PHOTO_ADMIN_USER` /
//! `PHOTO_ADMIN_PASSWORD(_FILE)` created or updated.
//!
//! The database is reached in the background, with retries: the server
//! listens at once and reports not-ready until the database answers, so a
//! pod that starts before its database waits instead of crash-looping.
//! Many replicas starting at once agree on the admin: a password that
//! already verifies is left alone, and a lost race to create the account is
//! resolved by reading the winner's row.

use std::time::Duration;

use crate::auth::password;
use crate::config::{Config, ConfigError};
use crate::db::{Db, DbError, DbStatus};
use crate::domain::credentials::{MIN_PASSWORD_CHARS, is_common_password, is_valid_username};
use crate::state::{AppState, OpenError, SharedState};

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error(transparent)]
    Open(#[from] OpenError),
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot read PHOTO_ADMIN_PASSWORD_FILE {path}: {source}")]
    PasswordFile {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the admin password is too short: at least {MIN_PASSWORD_CHARS} characters (PHOTO_ADMIN_PASSWORD or PHOTO_ADMIN_PASSWORD_FILE)"
    )]
    WeakAdminPassword,
    #[error(
        "the admin password is one of the most common passwords, the first any guessing tries: choose another (PHOTO_ADMIN_PASSWORD or PHOTO_ADMIN_PASSWORD_FILE)"
    )]
    CommonAdminPassword,
    #[error(
        "PHOTO_ADMIN_USER {0:?} is not a valid username: 1 to 40 letters, digits, `.`, `_` or `-`"
    )]
    BadAdminUser(String),
    #[error("cannot hash the admin password: {0}")]
    Hash(String),
}

/// Checks the configuration and opens everything, then reaches the
/// database in the background (see [`connect_database`]): the returned state
/// serves at once and reports not-ready until the database answers.
pub async fn start(config: Config) -> Result<SharedState, StartError> {
    check_admin_user(&config)?;
    config.check()?;
    let admin_password = configured_password(&config)?;
    let state = AppState::open(config)?;
    tokio::spawn(connect_database(state.clone(), admin_password));
    spawn_session_sweeper(state.clone());
    Ok(state)
}

/// Expired sessions are removed hourly (any replica may do it; the delete is
/// idempotent).
fn spawn_session_sweeper(state: SharedState) {
    tokio::spawn(async move {
        state.db.ready().await;
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match state.db.delete_expired_sessions().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "expired sessions removed"),
                Err(e) => tracing::warn!(error = %e, "cannot remove expired sessions"),
            }
        }
    });
}

/// Refuses a `PHOTO_ADMIN_USER` that no account could have.
pub fn check_admin_user(config: &Config) -> Result<(), BootstrapError> {
    if is_valid_username(&config.admin_user) {
        Ok(())
    } else {
        Err(BootstrapError::BadAdminUser(config.admin_user.clone()))
    }
}

/// Refuses an admin password that is too short or too long, or one of the
/// most common passwords.
pub fn check_admin_password(password: &str) -> Result<(), BootstrapError> {
    if password.chars().count() < MIN_PASSWORD_CHARS
        || password.len() > password::MAX_PASSWORD_BYTES
    {
        return Err(BootstrapError::WeakAdminPassword);
    }
    if is_common_password(password) {
        return Err(BootstrapError::CommonAdminPassword);
    }
    Ok(())
}

/// What happened to the admin account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminOutcome {
    Created,
    /// Created with a generated password, which the caller shows once.
    CreatedWithPassword(String),
    PasswordUpdated,
    Unchanged,
}

/// The admin password from the flag, the environment or the file, checked
/// (length, and not one of the most common passwords).
pub fn configured_password(config: &Config) -> Result<Option<String>, BootstrapError> {
    let password = match (&config.admin_password, &config.admin_password_file) {
        (Some(p), _) => p.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|source| BootstrapError::PasswordFile {
                path: path.display().to_string(),
                source,
            })?
            .trim_end_matches(['\r', '\n'])
            .to_string(),
        (None, None) => return Ok(None),
    };
    check_admin_password(&password)?;
    Ok(Some(password))
}

async fn blocking<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(job).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

pub async fn ensure_admin(
    db: &Db,
    username: &str,
    wanted: Option<String>,
) -> Result<AdminOutcome, BootstrapError> {
    let hash = |p: String| async move {
        blocking(move || password::hash_blocking(&p))
            .await
            .map_err(|e| BootstrapError::Hash(e.to_string()))
    };
    if let Some(user) = db.user_by_name(username).await? {
        if !user.is_admin {
            db.set_admin(&user.id, true).await?;
        }
        let Some(wanted) = wanted else {
            return Ok(AdminOutcome::Unchanged);
        };
        let (check, stored) = (wanted.clone(), user.password_hash.clone());
        if blocking(move || password::verify_blocking(&check, Some(&stored))).await {
            return Ok(AdminOutcome::Unchanged);
        }
        db.set_password(&user.id, &hash(wanted).await?).await?;
        return Ok(AdminOutcome::PasswordUpdated);
    }
    let (password, generated) = match wanted {
        Some(p) => (p, false),
        None => (password::generate(), true),
    };
    match db
        .create_user(username, &hash(password.clone()).await?, true)
        .await?
    {
        Some(_) if generated => Ok(AdminOutcome::CreatedWithPassword(password)),
        Some(_) => Ok(AdminOutcome::Created),
        // Another replica created it a moment ago.
        None => Ok(AdminOutcome::Unchanged),
    }
}

/// First wait between attempts to reach the database; it doubles up to
/// [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Reaches the database, migrates it and makes sure the admin exists,
/// retrying with backoff until that works; then marks the database ready.
/// Prints a generated admin password once, the first time.
pub async fn connect_database(state: SharedState, admin_password: Option<String>) {
    let mut wait = FIRST_RETRY;
    loop {
        let attempt = async {
            state.db.migrate().await?;
            ensure_admin(&state.db, &state.config.admin_user, admin_password.clone()).await
        };
        match attempt.await {
            Ok(outcome) => {
                report(&state.config, outcome);
                state.db.set_status(DbStatus::Ready);
                tracing::info!("database ready");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?wait, "database not reachable yet");
                state
                    .db
                    .set_status(DbStatus::Connecting(Some(e.to_string())));
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_RETRY);
            }
        }
    }
}

fn report(config: &Config, outcome: AdminOutcome) {
    match outcome {
        AdminOutcome::CreatedWithPassword(password) => {
            println!(
                "\n  Admin account created.\n    username: {}\n    password: {}\n  (shown once; set PHOTO_ADMIN_PASSWORD to choose your own)\n",
                config.admin_user, password
            );
        }
        outcome => tracing::info!(user = %config.admin_user, ?outcome, "admin account ready"),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn weak_admin_passwords_are_refused() {
        for weak in ["short", "password", "12345678", "PassWord1", "QWERTYUIOP"] {
            assert!(check_admin_password(weak).is_err(), "{weak}");
        }
        assert!(matches!(
            check_admin_password("password"),
            Err(BootstrapError::CommonAdminPassword)
        ));
        assert!(check_admin_password(&"x".repeat(2000)).is_err());
        for fine in [
            "admin-password",
            "correct horse battery",
            "passwords are hard",
        ] {
            assert!(check_admin_password(fine).is_ok(), "{fine}");
        }
        assert!(
            BootstrapError::CommonAdminPassword
                .to_string()
                .contains("PHOTO_ADMIN_PASSWORD")
        );
    }

    #[test]
    fn a_bad_admin_username_is_refused() {
        let mut config = Config::parse_from(["photo-server"]);
        assert!(check_admin_user(&config).is_ok());
        config.admin_user = "no spaces".into();
        assert!(matches!(
            check_admin_user(&config),
            Err(BootstrapError::BadAdminUser(_))
        ));
    }
}
