//! Photo metadata. Rows are inserted only after their original is durable on
//! the originals store (see `storage::originals`).

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::database::Db;
use super::error::{DbError, DbResult};
use super::sessions::SessionUser;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Public,
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }

    pub fn parse(text: &str) -> Option<Visibility> {
        match text {
            "public" => Some(Visibility::Public),
            "private" => Some(Visibility::Private),
            _ => None,
        }
    }
}

/// A photo's row, with its owner's username (`owner`, ignored on insert).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    pub id: String,
    pub owner_id: String,
    pub owner: String,
    pub title: String,
    pub description: String,
    pub visibility: Visibility,
    pub format: crate::render::Format,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub sha256: String,
    pub original_name: String,
    pub camera: Option<String>,
    pub taken_at: Option<String>,
    pub created_at: i64,
}

/// Fields `PATCH /rest/photos/{id}` may change.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhotoPatch {
    pub title: Option<String>,
    pub description: Option<String>,
    pub visibility: Option<Visibility>,
}

impl PhotoPatch {
    pub fn is_empty(&self) -> bool {
        self.title.is_none() && self.description.is_none() && self.visibility.is_none()
    }
}

const SELECT: &str = "SELECT p.id, p.owner_id, u.username, p.title, p.description, p.visibility, \
     p.format, p.width, p.height, p.bytes, p.sha256, p.original_name, p.camera, p.taken_at, p.created_at \
     FROM photos p JOIN users u ON u.id = p.owner_id";

fn from_row(row: &AnyRow) -> DbResult<Photo> {
    let visibility: String = row.try_get(5)?;
    let format: String = row.try_get(6)?;
    let int = |i: usize| -> DbResult<i64> { Ok(row.try_get::<i64, _>(i)?) };
    Ok(Photo {
        id: row.try_get(0)?,
        owner_id: row.try_get(1)?,
        owner: row.try_get(2)?,
        title: row.try_get(3)?,
        description: row.try_get(4)?,
        visibility: Visibility::parse(&visibility)
            .ok_or_else(|| DbError::BadRow(format!("visibility {visibility:?}")))?,
        format: crate::render::Format::parse(&format)
            .ok_or_else(|| DbError::BadRow(format!("format {format:?}")))?,
        width: u32::try_from(int(7)?).map_err(|_| DbError::BadRow("width".into()))?,
        height: u32::try_from(int(8)?).map_err(|_| DbError::BadRow("height".into()))?,
        bytes: u64::try_from(int(9)?).map_err(|_| DbError::BadRow("bytes".into()))?,
        sha256: row.try_get(10)?,
        original_name: row.try_get(11)?,
        camera: row.try_get(12)?,
        taken_at: row.try_get(13)?,
        created_at: int(14)?,
    })
}

impl Db {
    /// Inserts every row of one upload in one transaction: all or none.
    /// Inserts the rows in one transaction. `commit_sent` is set just before
    /// COMMIT goes out: an error after that (the connection lost while the
    /// database committed) leaves the outcome unknown, and the rows may exist.
    /// Inserts the rows of one upload in one transaction. With a `quota`, the
    /// owner's stored bytes and the new ones must fit in it, counted inside the
    /// transaction after locking the owner's row (an empty update: PostgreSQL
    /// holds the row lock until COMMIT, SQLite has one writer anyway), so two
    /// uploads of one user at once cannot both pass. Past it nothing is
    /// inserted and `Ok(Err(used))` says how much was stored already.
    pub async fn insert_photos(
        &self,
        photos: &[Photo],
        commit_sent: &AtomicBool,
        quota: Option<u64>,
    ) -> DbResult<Result<(), u64>> {
        let mut tx = self.pool()?.begin().await?;
        if let (Some(quota), Some(first)) = (quota, photos.first()) {
            sqlx::query("UPDATE users SET id = id WHERE id = $1")
                .bind(&first.owner_id)
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query(
                "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM photos WHERE owner_id = $1",
            )
            .bind(&first.owner_id)
            .fetch_one(&mut *tx)
            .await?;
            let used: i64 = row.try_get(0)?;
            let used = used.max(0) as u64;
            let adding: u64 = photos.iter().map(|p| p.bytes).sum();
            if used.saturating_add(adding) > quota {
                return Ok(Err(used));
            }
        }
        for p in photos {
            sqlx::query(
                "INSERT INTO photos (id, owner_id, title, description, visibility, format, width, height, \
                 bytes, sha256, original_name, camera, taken_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(&p.id)
            .bind(&p.owner_id)
            .bind(&p.title)
            .bind(&p.description)
            .bind(p.visibility.as_str())
            .bind(p.format.as_str())
            .bind(i64::from(p.width))
            .bind(i64::from(p.height))
            .bind(p.bytes as i64)
            .bind(&p.sha256)
            .bind(&p.original_name)
            .bind(p.camera.clone())
            .bind(p.taken_at.clone())
            .bind(p.created_at)
            .execute(&mut *tx)
            .await?;
        }
        commit_sent.store(true, Ordering::SeqCst);
        tx.commit().await?;
        Ok(Ok(()))
    }

    pub async fn photo(&self, id: &str) -> DbResult<Option<Photo>> {
        let row = sqlx::query(&format!("{SELECT} WHERE p.id = $1"))
            .bind(id)
            .fetch_optional(self.pool()?)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Photos `viewer` may see, newest first, strictly after `cursor`
    /// (`(created_at, id)` of the last photo of the previous page).
    pub async fn list_photos(
        &self,
        viewer: Option<&SessionUser>,
        cursor: Option<(i64, &str)>,
        limit: u32,
    ) -> DbResult<Vec<Photo>> {
        // Placeholders are numbered as the clauses are added, so that
        // PostgreSQL is never sent a parameter the statement does not use.
        let mut clauses = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        let owner_param = match viewer {
            Some(v) if v.is_admin => None,
            Some(_) => {
                let i = next();
                clauses.push(format!("(p.visibility = 'public' OR p.owner_id = ${i})"));
                Some(i)
            }
            None => {
                clauses.push("p.visibility = 'public'".to_string());
                None
            }
        };
        if cursor.is_some() {
            let (t, i) = (next(), next());
            clauses.push(format!(
                "(p.created_at < ${t} OR (p.created_at = ${t} AND p.id < ${i}))"
            ));
        }
        let limit_param = next();
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let query =
            format!("{SELECT} {filter} ORDER BY p.created_at DESC, p.id DESC LIMIT ${limit_param}");
        let mut q = sqlx::query(&query);
        if owner_param.is_some() {
            q = q.bind(viewer.map(|v| v.user_id.clone()));
        }
        if let Some((time, id)) = cursor {
            q = q.bind(time).bind(id.to_string());
        }
        let rows = q.bind(i64::from(limit)).fetch_all(self.pool()?).await?;
        rows.iter().map(from_row).collect()
    }

    /// Applies a patch; returns the updated photo, or `None` if it is gone.
    pub async fn update_photo(&self, id: &str, patch: &PhotoPatch) -> DbResult<Option<Photo>> {
        let mut tx = self.pool()?.begin().await?;
        if let Some(title) = &patch.title {
            sqlx::query("UPDATE photos SET title = $1 WHERE id = $2")
                .bind(title)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(description) = &patch.description {
            sqlx::query("UPDATE photos SET description = $1 WHERE id = $2")
                .bind(description)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(visibility) = patch.visibility {
            sqlx::query("UPDATE photos SET visibility = $1 WHERE id = $2")
                .bind(visibility.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.photo(id).await
    }

    /// Deletes a row; `false` if it was already gone.
    pub async fn delete_photo(&self, id: &str) -> DbResult<bool> {
        let done = sqlx::query("DELETE FROM photos WHERE id = $1")
            .bind(id)
            .execute(self.pool()?)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every photo's id and format, for checking the originals store.
    pub async fn photo_files(&self) -> DbResult<Vec<(String, crate::render::Format)>> {
        let rows = sqlx::query("SELECT id, format FROM photos")
            .fetch_all(self.pool()?)
            .await?;
        rows.iter()
            .map(|row| {
                let format: String = row.try_get(1)?;
                let format = crate::render::Format::parse(&format)
                    .ok_or_else(|| DbError::BadRow(format!("format {format:?}")))?;
                Ok((row.try_get(0)?, format))
            })
            .collect()
    }

    /// Number of photos and bytes of originals of one owner.
    pub async fn storage_of(&self, owner_id: &str) -> DbResult<(u64, u64)> {
        let row = sqlx::query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM photos WHERE owner_id = $1",
        )
        .bind(owner_id)
        .fetch_one(self.pool()?)
        .await?;
        let count: i64 = row.try_get(0)?;
        let bytes: i64 = row.try_get(1)?;
        Ok((count.max(0) as u64, bytes.max(0) as u64))
    }

    /// Number of photos and bytes of originals per owner (owners with photos).
    pub async fn storage_by_owner(
        &self,
    ) -> DbResult<std::collections::HashMap<String, (u64, u64)>> {
        let rows = sqlx::query(
            "SELECT owner_id, COUNT(*), CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM photos GROUP BY owner_id",
        )
        .fetch_all(self.pool()?)
        .await?;
        rows.iter()
            .map(|row| {
                let owner: String = row.try_get(0)?;
                let count: i64 = row.try_get(1)?;
                let bytes: i64 = row.try_get(2)?;
                Ok((owner, (count.max(0) as u64, bytes.max(0) as u64)))
            })
            .collect()
    }

    /// Number of photos and bytes of originals stored.
    pub async fn storage_used(&self) -> DbResult<(u64, u64)> {
        let row =
            sqlx::query("SELECT COUNT(*), CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM photos")
                .fetch_one(self.pool()?)
                .await?;
        let count: i64 = row.try_get(0)?;
        let bytes: i64 = row.try_get(1)?;
        Ok((count.max(0) as u64, bytes.max(0) as u64))
    }
}
