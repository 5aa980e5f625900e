//! The admin account from `PHOTO_ADMIN_USER` / `PHOTO_ADMIN_PASSWORD(_FILE)`,
//! created or updated at every start. Many replicas starting at once agree:
//! a password that already verifies is left alone, and a lost race to create
//! the account is resolved by reading the winner's row.

use crate::auth::password;
use crate::config::Config;
use crate::db::{Db, DbError};

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot read PHOTO_ADMIN_PASSWORD_FILE {path}: {source}")]
    PasswordFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the admin password is empty")]
    EmptyPassword,
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

fn configured_password(config: &Config) -> Result<Option<String>, BootstrapError> {
    if let Some(p) = &config.admin_password {
        return Ok(Some(p.clone()));
    }
    let Some(path) = &config.admin_password_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|source| BootstrapError::PasswordFile {
        path: path.display().to_string(),
        source,
    })?;
    Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()))
}

pub async fn ensure_admin(db: &Db, config: &Config) -> Result<AdminOutcome, BootstrapError> {
    let wanted = configured_password(config)?;
    if wanted.as_deref() == Some("") {
        return Err(BootstrapError::EmptyPassword);
    }
    let hash = |p: String| async move {
        password::hash(p)
            .await
            .map_err(|e| BootstrapError::Hash(e.to_string()))
    };
    if let Some(user) = db.user_by_name(&config.admin_user).await? {
        if !user.is_admin {
            db.set_admin(&user.id, true).await?;
        }
        let Some(wanted) = wanted else {
            return Ok(AdminOutcome::Unchanged);
        };
        if password::verify(wanted.clone(), Some(user.password_hash.clone())).await {
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
        .create_user(&config.admin_user, &hash(password.clone()).await?, true)
        .await?
    {
        Some(_) if generated => Ok(AdminOutcome::CreatedWithPassword(password)),
        Some(_) => Ok(AdminOutcome::Created),
        // Another replica created it a moment ago.
        None => Ok(AdminOutcome::Unchanged),
    }
}
