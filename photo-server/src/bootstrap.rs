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
use crate::state::SharedState;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot read PHOTO_ADMIN_PASSWORD_FILE {path}: {source}")]
    PasswordFile {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot hash the admin password: {0}")]
    Hash(String),
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
    crate::config::check_admin_password(&password)?;
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
