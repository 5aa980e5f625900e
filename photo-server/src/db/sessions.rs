//! Sessions live in the database so that every replica recognises them and a
//! logout ends them everywhere.

use sqlx::Row;

use super::database::{Db, now_ms};
use super::error::DbResult;

/// The user behind a valid session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    pub user_id: String,
    pub username: String,
    pub is_admin: bool,
}

impl Db {
    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at: i64,
    ) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(now_ms())
        .bind(expires_at)
        .execute(self.pool()?)
        .await?;
        Ok(())
    }

    /// The session's user, if the session exists and has not expired.
    pub async fn session_user(&self, token_hash: &str) -> DbResult<Option<SessionUser>> {
        let row = sqlx::query(
            "SELECT u.id, u.username, u.is_admin FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(self.pool()?)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(SessionUser {
            user_id: row.try_get(0)?,
            username: row.try_get(1)?,
            is_admin: row.try_get::<i64, _>(2)? != 0,
        }))
    }

    pub async fn delete_session(&self, token_hash: &str) -> DbResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(self.pool()?)
            .await?;
        Ok(())
    }

    /// Removes expired sessions; returns how many.
    pub async fn delete_expired_sessions(&self) -> DbResult<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now_ms())
            .execute(self.pool()?)
            .await?;
        Ok(done.rows_affected())
    }
}
