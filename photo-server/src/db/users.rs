//! Accounts.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::database::{Db, now_ms};
use super::error::{DbError, DbResult};
use crate::ids;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub created_at: i64,
}

const COLUMNS: &str = "id, username, password_hash, is_admin, created_at";

fn from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        is_admin: row.try_get::<i64, _>("is_admin")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

impl Db {
    pub async fn user_by_name(&self, username: &str) -> DbResult<Option<User>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE username = $1"))
            .bind(username)
            .fetch_optional(self.pool()?)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    pub async fn user_by_id(&self, id: &str) -> DbResult<Option<User>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool()?)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    /// Creates a user; `Ok(None)` when the name is taken.
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        is_admin: bool,
    ) -> DbResult<Option<User>> {
        let user = User {
            id: ids::new_id(),
            username: username.to_string(),
            password_hash: password_hash.to_string(),
            is_admin,
            created_at: now_ms(),
        };
        let result = sqlx::query(&format!(
            "INSERT INTO users ({COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
        ))
        .bind(&user.id)
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(i64::from(user.is_admin))
        .bind(user.created_at)
        .execute(self.pool()?)
        .await;
        match result {
            Ok(_) => Ok(Some(user)),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
            Err(e) => Err(DbError::Sql(e)),
        }
    }

    /// Replaces a password and ends every session of that user.
    pub async fn set_password(&self, user_id: &str, password_hash: &str) -> DbResult<()> {
        let mut tx = self.pool()?.begin().await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_admin(&self, user_id: &str, is_admin: bool) -> DbResult<()> {
        sqlx::query("UPDATE users SET is_admin = $1 WHERE id = $2")
            .bind(i64::from(is_admin))
            .bind(user_id)
            .execute(self.pool()?)
            .await?;
        Ok(())
    }

    pub async fn list_users(&self) -> DbResult<Vec<User>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM users ORDER BY username"))
            .fetch_all(self.pool()?)
            .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }
}
