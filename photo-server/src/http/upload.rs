//! `POST /rest/edit`: fakeflickr's upload and edit endpoint. With `file`
//! parts it uploads; with an `id` field and no file it edits that photo's
//! title, description or visibility (the same rules as `PATCH /rest/photos/{id}`).
//!
//! All or nothing. Every file is spooled and fully checked (format, pixel
//! count, decodable data) before anything is kept; one bad file fails the
//! request and nothing is stored. Then each original is made durable on the
//! originals store, and only then are the rows inserted, in one transaction.
//! If that transaction fails the new originals are removed again; if the
//! process dies in between, the orphaned originals are invisible (no row) and
//! the client's retry simply stores the photos again.

use axum::Json;
use axum::extract::multipart::{Field, MultipartError};
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;

use crate::db::{Photo, PhotoPatch, Visibility, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::http::photos::{
    MAX_DESCRIPTION, MAX_TITLE, PhotoJson, edit_photo, to_json, validate_text,
};
use crate::http::viewer::Viewer;
use crate::ids;
use crate::render::pool::PoolError;
use crate::render::{self, Format, Probe, RenderError};
use crate::state::SharedState;
use crate::storage::originals::Spool;

#[derive(Debug, Serialize)]
pub struct UploadJson {
    photos: Vec<PhotoJson>,
}

/// One spooled file of the request.
struct Upload {
    spool: Spool,
    name: String,
}

/// Spool writes are gathered into chunks of this size and written on the
/// blocking pool, so a slow shared volume never stalls the async threads.
const WRITE_CHUNK: usize = 1 << 20;

fn multipart_error(e: MultipartError) -> ApiError {
    match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(format!(
            "the request is larger than the server accepts: {}",
            e.body_text()
        )),
        _ => ApiError::BadRequest(format!("malformed multipart body: {}", e.body_text())),
    }
}

async fn read_text(field: Field<'_>, what: &str, max_chars: usize) -> ApiResult<String> {
    let text = field.text().await.map_err(multipart_error)?;
    if text.chars().count() > max_chars {
        return Err(ApiError::Unprocessable(format!(
            "{what} is longer than {max_chars} characters"
        )));
    }
    Ok(text)
}

async fn flush(spool: Spool, buffer: Vec<u8>) -> ApiResult<Spool> {
    tokio::task::spawn_blocking(move || {
        let mut spool = spool;
        spool.write(&buffer).map(|_| spool)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
}

async fn spool_file(state: &SharedState, mut field: Field<'_>) -> ApiResult<Upload> {
    let name: String = field
        .file_name()
        .unwrap_or("upload")
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let max = state.config.max_upload_bytes;
    let mut spool = state.originals.spool().map_err(ApiError::internal)?;
    let mut buffer = Vec::with_capacity(WRITE_CHUNK);
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if spool.bytes() + (buffer.len() + chunk.len()) as u64 > max {
            return Err(ApiError::TooLarge(format!(
                "{name}: larger than the {max}-byte limit for one photo"
            )));
        }
        buffer.extend_from_slice(&chunk);
        if buffer.len() >= WRITE_CHUNK {
            spool = flush(spool, std::mem::take(&mut buffer)).await?;
        }
    }
    if !buffer.is_empty() {
        spool = flush(spool, buffer).await?;
    }
    if spool.bytes() == 0 {
        return Err(ApiError::BadRequest(format!("{name}: the file is empty")));
    }
    Ok(Upload { spool, name })
}

/// Checks one spooled file completely, on the render pool.
async fn check(state: &SharedState, upload: &Upload) -> ApiResult<Probe> {
    if Format::sniff(upload.spool.head()).is_none() {
        return Err(ApiError::UnsupportedMedia(format!(
            "{}: {}",
            upload.name,
            RenderError::Unsupported
        )));
    }
    let path = upload.spool.path().to_path_buf();
    let max_pixels = state.config.max_pixels;
    let result = state
        .renderer
        .run_unshared(move || {
            let bytes = std::fs::read(&path).map_err(|e| RenderError::Corrupt(e.to_string()))?;
            render::probe(&bytes, max_pixels)
        })
        .await;
    match result {
        Ok(probe) => Ok(probe),
        Err(PoolError::Overloaded) => Err(ApiError::Overloaded),
        Err(PoolError::Panicked) => Err(ApiError::Internal("image check panicked".into())),
        Err(PoolError::Job(e)) => Err(match ApiError::from(e) {
            ApiError::UnsupportedMedia(m) => {
                ApiError::UnsupportedMedia(format!("{}: {m}", upload.name))
            }
            ApiError::Unprocessable(m) => ApiError::Unprocessable(format!("{}: {m}", upload.name)),
            other => other,
        }),
    }
}

pub async fn upload(
    State(state): State<SharedState>,
    viewer: Viewer,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<(StatusCode, Json<UploadJson>)> {
    // Refuse early what can be refused without reading the body.
    let user = viewer.user()?.clone();
    let mut multipart = multipart.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut uploads = Vec::new();
    let mut title = None;
    let mut description = None;
    let mut visibility = None;
    let mut edit_id = None;
    let mut csrf_field = None;
    let result: ApiResult<()> = async {
        while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
            match field.name().unwrap_or("") {
                "file" => uploads.push(spool_file(&state, field).await?),
                "title" => {
                    title = Some(
                        read_text(field, "title", MAX_TITLE)
                            .await?
                            .trim()
                            .to_string(),
                    )
                }
                "description" => {
                    description = Some(read_text(field, "description", MAX_DESCRIPTION).await?)
                }
                "visibility" => {
                    let text = read_text(field, "visibility", 16).await?;
                    visibility = Some(Visibility::parse(text.trim()).ok_or_else(|| {
                        ApiError::BadRequest("visibility must be `public` or `private`".into())
                    })?);
                }
                "csrf" => csrf_field = Some(read_text(field, "csrf", 200).await?),
                "id" => edit_id = Some(read_text(field, "id", 64).await?.trim().to_string()),
                _ => {}
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        state.metrics.upload("refused");
        return Err(e);
    }
    viewer.check_csrf(&state, &headers, csrf_field.as_deref())?;
    if let Some(id) = edit_id {
        if !uploads.is_empty() {
            return Err(ApiError::BadRequest(
                "send either `file` parts (upload) or an `id` (edit), not both".into(),
            ));
        }
        let patch = PhotoPatch {
            title,
            description,
            visibility,
        };
        let photo = edit_photo(&state, &user, &id, patch).await?;
        return Ok((
            StatusCode::OK,
            Json(UploadJson {
                photos: vec![photo],
            }),
        ));
    }
    if uploads.is_empty() {
        return Err(ApiError::BadRequest(
            "no `file` part in the upload (or `id` of a photo to edit)".into(),
        ));
    }
    let title = title.unwrap_or_default();
    let description = description.unwrap_or_default();
    let visibility = visibility.unwrap_or(Visibility::Private);
    validate_text(Some(&title), Some(&description))?;

    let mut checked = Vec::with_capacity(uploads.len());
    for upload in uploads {
        match check(&state, &upload).await {
            Ok(probe) => checked.push((upload, probe)),
            Err(e) => {
                state.metrics.upload("refused");
                tracing::info!(user = %user.username, file = %upload.name, error = %e, "upload refused");
                return Err(e);
            }
        }
    }

    let created_at = now_ms();
    let store = state.originals.clone();
    let owner_id = user.user_id.clone();
    let owner = user.username.clone();
    let committed = tokio::task::spawn_blocking(move || {
        let mut rows = Vec::new();
        for (upload, probe) in checked {
            let id = ids::new_id();
            let bytes = upload.spool.bytes();
            let sha256 = upload.spool.sha256();
            if let Err(e) = store.commit(upload.spool, &id, probe.format) {
                for row in &rows {
                    let row: &Photo = row;
                    let _ = store.remove(&row.id, row.format);
                }
                return Err(e);
            }
            rows.push(Photo {
                id,
                owner_id: owner_id.clone(),
                owner: owner.clone(),
                title: title.clone(),
                description: description.clone(),
                visibility,
                format: probe.format,
                width: probe.width,
                height: probe.height,
                bytes,
                sha256,
                original_name: upload.name,
                camera: probe.exif.camera,
                taken_at: probe.exif.taken_at,
                created_at,
            });
        }
        Ok(rows)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| {
        state.metrics.upload("failed");
        ApiError::Internal(format!("cannot store the original: {e}"))
    })?;

    if let Err(e) = state.db.insert_photos(&committed).await {
        // The rows are not there, so the files must not be either.
        for row in &committed {
            if let Err(remove) = state.originals.remove(&row.id, row.format) {
                tracing::warn!(id = %row.id, error = %remove, "cannot remove the original of a failed upload");
            }
        }
        state.metrics.upload("failed");
        return Err(e.into());
    }

    let mut photos = Vec::with_capacity(committed.len());
    for row in &committed {
        state.metrics.upload("stored");
        state.metrics.upload_bytes.inc_by(row.bytes);
        state.forget_photo(&row.id);
        tracing::info!(id = %row.id, user = %user.username, bytes = row.bytes, width = row.width, height = row.height, "photo uploaded");
        photos.push(to_json(row, &state.config.renditions, Some(&user)));
    }
    Ok((StatusCode::CREATED, Json(UploadJson { photos })))
}
