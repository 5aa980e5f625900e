//! Uploads: checked completely, then committed all or nothing.
//!
//! 1. **Parse** (`http::upload`): the multipart body is read with a cap on
//!    parts and on every field, and each file is spooled to the originals
//!    volume as it arrives.
//! 2. **Check** ([`check`]): every spooled file is probed on the render pool
//!    (format by content, bounded metadata, pixels and decode memory within
//!    limits, every configured rendition possible, data that decodes);
//!    anything after the image's end is cut off. One bad file fails the
//!    whole upload and nothing is stored.
//! 3. **Commit** ([`commit`]): each original is made durable (fsync, rename,
//!    fsync of the directory) under a [`CommitGuard`], then the rows are
//!    inserted in one transaction. The guard removes the new originals
//!    again unless the rows went in, whatever fails (or panics) on the way,
//!    but never once COMMIT was sent: an error then (the connection lost
//!    as the database restarts) does not say whether the rows went in, so
//!    the database is asked, and if it cannot answer the originals stay.
//!    If the process dies in between, the originals are left without rows:
//!    invisible, and the client's retry stores the photos again
//!    (`photo-server orphans` lists them). A row is never left without its
//!    original.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::db::{Photo, SessionUser, Visibility, now_ms};
use crate::domain::error::{DomainError, DomainResult};
use crate::ids;
use crate::render::pool::{Plan, PoolError};
use crate::render::{self, DecodeLimits, Format, Probe, RenderError};
use crate::state::SharedState;
use crate::storage::originals::{OriginalStore, Spool, is_out_of_space};

/// One file of an upload, spooled.
pub struct SpooledFile {
    pub spool: Spool,
    /// The client's file name (control characters removed, at most 200 characters).
    pub name: String,
}

/// The fields that apply to every photo of an upload.
pub struct UploadMeta {
    pub title: String,
    pub description: String,
    pub visibility: Visibility,
}

/// A file that passed [`check`].
pub struct Checked {
    file: SpooledFile,
    probe: Probe,
}

/// The error for an originals volume that cannot take the upload.
pub fn storage_error(e: std::io::Error) -> DomainError {
    if is_out_of_space(&e) {
        DomainError::StorageFull
    } else {
        DomainError::internal(e)
    }
}

/// Checks one spooled file completely, on the render pool.
pub async fn check(state: &SharedState, mut file: SpooledFile) -> DomainResult<Checked> {
    let named = |error: RenderError| DomainError::BadFile {
        file: file.name.clone(),
        error,
    };
    if Format::sniff(file.spool.head()).is_none() {
        return Err(named(RenderError::Unsupported));
    }
    let path = file.spool.path().to_path_buf();
    let limits = DecodeLimits {
        max_pixels: state.config.max_pixels,
        max_bytes: state.config.decode_max_bytes,
    };
    let widths = state.config.renditions.widths().to_vec();
    let result = state
        .renditions
        .pool()
        .run_unshared(move || {
            let file = std::fs::File::open(&path).map_err(|e| RenderError::Read(e.to_string()))?;
            let check = render::Check::plan(render::open_file(file)?, limits, &widths)?;
            Ok(Plan::new(check.memory(), move || check.run()))
        })
        .await;
    let probe = match result {
        Ok(probe) => probe,
        // Cancelled only once nobody waits for it.
        Err(PoolError::Overloaded | PoolError::Cancelled) => return Err(DomainError::Busy),
        Err(PoolError::Panicked) => {
            return Err(DomainError::Internal("image check panicked".into()));
        }
        Err(PoolError::Job(e)) => return Err(named(e)),
    };
    if probe.image_len < file.spool.bytes() {
        tracing::info!(
            file = ?file.name,
            kept = probe.image_len,
            dropped = file.spool.bytes() - probe.image_len,
            "bytes after the end of the image are not stored"
        );
        let len = probe.image_len;
        file = tokio::task::spawn_blocking(move || file.spool.truncate(len).map(|_| file))
            .await
            .map_err(DomainError::internal)?
            .map_err(storage_error)?;
    }
    Ok(Checked { file, probe })
}

/// Removes the originals it holds when dropped, unless [`CommitGuard::keep`]
/// was called or COMMIT was sent: a commit that failed (or was abandoned)
/// before that leaves no original behind.
struct CommitGuard {
    store: OriginalStore,
    written: Vec<(String, Format)>,
    /// Set by the database just before COMMIT goes out.
    commit_sent: AtomicBool,
}

impl CommitGuard {
    fn keep(mut self) {
        self.written.clear();
    }
}

impl Drop for CommitGuard {
    fn drop(&mut self) {
        if self.commit_sent.load(Ordering::SeqCst) && !self.written.is_empty() {
            tracing::warn!(ids = ?self.written.iter().map(|(id, _)| id).collect::<Vec<_>>(), "upload cut off after its COMMIT was sent: originals kept (`photo-server orphans` lists any left without rows)");
            return;
        }
        for (id, format) in &self.written {
            if let Err(e) = self.store.remove(id, *format) {
                tracing::error!(id, error = %e, "cannot remove the original of a failed upload");
            }
        }
    }
}

/// Stores checked files as photos of `owner`, all or none.
pub async fn commit(
    state: &SharedState,
    owner: &SessionUser,
    files: Vec<Checked>,
    meta: UploadMeta,
) -> DomainResult<Vec<Photo>> {
    let rows = match store_all(state, owner, files, meta).await {
        Ok(rows) => rows,
        Err(e) => {
            state.metrics.upload("failed");
            return Err(e);
        }
    };
    for row in &rows {
        state.metrics.upload("stored");
        state.metrics.upload_bytes.inc_by(row.bytes);
        state.forget_photo(&row.id);
        tracing::info!(id = %row.id, user = %owner.username, bytes = row.bytes, width = row.width, height = row.height, "photo uploaded");
    }
    Ok(rows)
}

async fn store_all(
    state: &SharedState,
    owner: &SessionUser,
    files: Vec<Checked>,
    meta: UploadMeta,
) -> DomainResult<Vec<Photo>> {
    let created_at = now_ms();
    let store = state.originals.clone();
    let owner_id = owner.user_id.clone();
    let owner_name = owner.username.clone();
    let (rows, guard) = tokio::task::spawn_blocking(move || {
        let mut guard = CommitGuard {
            store: store.clone(),
            written: Vec::new(),
            commit_sent: AtomicBool::new(false),
        };
        let mut rows = Vec::with_capacity(files.len());
        for Checked { file, probe } in files {
            let id = ids::new_id();
            let bytes = file.spool.bytes();
            let sha256 = file.spool.sha256();
            store
                .commit(file.spool, &id, probe.format)
                .map_err(storage_error)?;
            guard.written.push((id.clone(), probe.format));
            rows.push(Photo {
                id,
                owner_id: owner_id.clone(),
                owner: owner_name.clone(),
                title: meta.title.clone(),
                description: meta.description.clone(),
                visibility: meta.visibility,
                format: probe.format,
                width: probe.width,
                height: probe.height,
                bytes,
                sha256,
                original_name: file.name,
                camera: probe.exif.camera,
                taken_at: probe.exif.taken_at,
                created_at,
            });
        }
        Ok::<_, DomainError>((rows, guard))
    })
    .await
    .map_err(DomainError::internal)??;
    let quota = super::quota::of(state, owner);
    let inserted = state
        .db
        .insert_photos(&rows, &guard.commit_sent, quota)
        .await;
    let error = match inserted {
        Ok(Ok(())) => {
            guard.keep();
            return Ok(rows);
        }
        // Nothing inserted: the guard removes the originals.
        Ok(Err(used)) => {
            let adding = rows.iter().map(|r| r.bytes).sum();
            let room = super::quota::Room {
                quota: quota.unwrap_or_default(),
                used,
            };
            return Err(room.exceeded(adding));
        }
        Err(error) => error,
    };
    if !guard.commit_sent.load(Ordering::SeqCst) {
        // Failed before COMMIT: rolled back; the guard removes the originals.
        return Err(error.into());
    }
    match committed(state, &rows).await {
        Some(true) => {
            tracing::info!(error = %error, "COMMIT reported an error, but the rows are there: upload stored");
            guard.keep();
            Ok(rows)
        }
        Some(false) => {
            // Not committed after all: the guard removes the originals.
            guard.commit_sent.store(false, Ordering::SeqCst);
            Err(error.into())
        }
        // The guard keeps the originals.
        None => Err(error.into()),
    }
}

/// Whether rows whose COMMIT failed are in the database after all: `None`
/// if it cannot say within [`COMMIT_CHECK_FOR`] (a restarting or
/// failing-over database answers again within seconds).
async fn committed(state: &SharedState, rows: &[Photo]) -> Option<bool> {
    let first = rows.first()?;
    let deadline = tokio::time::Instant::now() + COMMIT_CHECK_FOR;
    loop {
        match tokio::time::timeout_at(deadline, state.db.photo(&first.id)).await {
            Ok(Ok(found)) => return Some(found.is_some()),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cannot ask yet whether an upload's rows went in");
            }
            Err(_) => return None,
        }
        if tokio::time::Instant::now() + COMMIT_CHECK_INTERVAL >= deadline {
            return None;
        }
        tokio::time::sleep(COMMIT_CHECK_INTERVAL).await;
    }
}

/// How long, and how often, the database is asked whether a failed COMMIT
/// went through.
const COMMIT_CHECK_FOR: std::time::Duration = std::time::Duration::from_secs(10);
const COMMIT_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);
