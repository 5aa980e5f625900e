//! `POST /rest/edit`: fakeflickr's upload and edit endpoint. With `file`
//! parts it uploads; with an `id` field and no file it edits that photo's
//! title, description or visibility (the same rules as `PATCH /rest/photos/{id}`).
//!
//! This handler only reads the request; what is accepted and how it is
//! stored is `domain::upload`. Reading is bounded before anything is
//! buffered: the session and the CSRF token are checked from the headers
//! before the body is read (an HTML form without the header must send its
//! `csrf` field as the first part), at most [`MAX_PARTS`] parts and
//! [`MAX_FILES`] files are read, and every text field is read with a byte
//! cap. A body that stalls for `PHOTO_BODY_TIMEOUT`, or arrives slower than
//! `PHOTO_BODY_MIN_RATE`, fails with `408` (`http::body_deadline`).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};

use axum::Json;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::multipart::{Field, MultipartError};
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode};
use http_body::Frame;
use serde::Serialize;

use crate::auth::extract::{Viewer, csrf_header};
use crate::db::{PhotoPatch, SessionUser, Visibility};
use crate::domain::photos::{self, MAX_DESCRIPTION, MAX_TITLE};
use crate::domain::quota::{self, Room};
use crate::domain::upload::{self, SpooledFile, UploadMeta};
use crate::error::{ApiError, ApiResult, caused_by};
use crate::http::photos::{PhotoJson, to_json};
use crate::state::SharedState;

/// Parts (files and fields) read from one request.
pub const MAX_PARTS: usize = 64;
/// Files in one upload.
pub const MAX_FILES: usize = 32;
/// Bytes read while waiting for one part's headers (its boundary line, its
/// headers, and what arrived in the same network reads). Real part headers
/// are a few hundred bytes; a part whose headers never end would otherwise be
/// buffered whole (and searched again at every read: one 190 MiB header took
/// 390 MB and 17 s of CPU).
pub const MAX_PART_HEAD_READ: i64 = 256 * 1024;

#[derive(Debug, Serialize)]
pub struct UploadJson {
    photos: Vec<PhotoJson>,
}

/// Spool writes are gathered into chunks of this size and written on the
/// blocking pool, so a slow shared volume never stalls the async threads.
const WRITE_CHUNK: usize = 1 << 20;

/// A part's headers did not end within [`MAX_PART_HEAD_READ`].
#[derive(Debug, thiserror::Error)]
#[error("a part's headers are longer than the server accepts")]
struct PartHeadTooLarge;

/// Counts the body bytes read while the handler waits for a part's headers
/// (armed), and fails the body past [`MAX_PART_HEAD_READ`].
#[derive(Clone, Default)]
struct HeadBudget {
    /// Bytes still allowed while armed; `i64::MAX` while a part's data is read.
    left: Arc<AtomicI64>,
}

impl HeadBudget {
    fn arm(&self) {
        self.left.store(MAX_PART_HEAD_READ, Ordering::Relaxed);
    }

    fn disarm(&self) {
        self.left.store(i64::MAX, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    struct Budgeted {
        #[pin]
        inner: Body,
        budget: HeadBudget,
    }
}

impl HttpBody for Budgeted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if let Some(Ok(frame)) = &frame {
            let len = frame.data_ref().map_or(0, |d| d.len());
            let len = i64::try_from(len).unwrap_or(i64::MAX);
            if this.budget.left.fetch_sub(len, Ordering::Relaxed) < len {
                return Poll::Ready(Some(Err(axum::Error::new(PartHeadTooLarge))));
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

fn multipart_error(e: MultipartError) -> ApiError {
    if crate::http::body_deadline::is_too_slow(&e) {
        return ApiError::RequestTimeout;
    }
    if caused_by::<PartHeadTooLarge>(&e) {
        return ApiError::TooLarge(format!(
            "a part's headers are longer than the server accepts (at most {} KiB are read looking for their end)",
            MAX_PART_HEAD_READ / 1024
        ));
    }
    match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(format!(
            "the request is larger than the server accepts: {}",
            e.body_text()
        )),
        _ => ApiError::BadRequest(format!("malformed multipart body: {}", e.body_text())),
    }
}

/// A text field, read up to `max_bytes` (a field that goes on is refused
/// as soon as it passes the cap, without buffering the rest).
async fn read_text(mut field: Field<'_>, what: &str, max_bytes: usize) -> ApiResult<String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if bytes.len() + chunk.len() > max_bytes {
            return Err(ApiError::TooLarge(format!(
                "{what} is longer than the server accepts"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| ApiError::BadRequest(format!("{what} is not UTF-8")))
}

async fn flush(
    spool: crate::storage::originals::Spool,
    buffer: Vec<u8>,
) -> ApiResult<crate::storage::originals::Spool> {
    tokio::task::spawn_blocking(move || {
        let mut spool = spool;
        spool.write(&buffer).map(|_| spool)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| upload::storage_error(e).into())
}

/// Spools one file part; `room` is what the user's quota leaves for this
/// upload's files (`None`: no quota), less what earlier files took.
async fn spool_file(
    state: &SharedState,
    mut field: Field<'_>,
    room: Option<(Room, u64)>,
) -> ApiResult<SpooledFile> {
    let name: String = field
        .file_name()
        .unwrap_or("upload")
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let max = state.config.max_upload_bytes;
    let mut spool = state.originals.spool().map_err(upload::storage_error)?;
    let mut buffer = Vec::with_capacity(WRITE_CHUNK);
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        let size = spool.bytes() + (buffer.len() + chunk.len()) as u64;
        if size > max {
            return Err(ApiError::TooLarge(format!(
                "{name}: larger than the {max}-byte limit for one photo"
            )));
        }
        if let Some((room, earlier)) = room
            && !room.fits(earlier + size)
        {
            return Err(room.exceeded(earlier + size).into());
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
    Ok(SpooledFile { spool, name })
}

/// Everything a `POST /rest/edit` body carried.
#[derive(Default)]
struct Form {
    files: Vec<SpooledFile>,
    title: Option<String>,
    description: Option<String>,
    visibility: Option<Visibility>,
    edit_id: Option<String>,
}

/// Reads the multipart body within the caps. `csrf_checked` says whether
/// the header already carried a valid token; if not, the first part must.
async fn read_form(
    state: &SharedState,
    viewer: &Viewer,
    multipart: &mut Multipart,
    budget: &HeadBudget,
    room: Option<Room>,
    mut csrf_checked: bool,
) -> ApiResult<Form> {
    let mut form = Form::default();
    let mut parts = 0;
    loop {
        budget.arm();
        let next = multipart.next_field().await.map_err(multipart_error)?;
        budget.disarm();
        let Some(field) = next else {
            break;
        };
        parts += 1;
        if parts > MAX_PARTS {
            return Err(ApiError::TooLarge(format!(
                "too many parts in one request (at most {MAX_PARTS})"
            )));
        }
        let name = field.name().unwrap_or("").to_string();
        if !csrf_checked {
            // Nothing is read before the request is known to be genuine.
            if name != "csrf" {
                return Err(ApiError::Csrf);
            }
            let token = read_text(field, "csrf", 256).await?;
            viewer.check_csrf(state, &HeaderMap::new(), Some(&token))?;
            csrf_checked = true;
            continue;
        }
        match name.as_str() {
            "file" => {
                if form.files.len() == MAX_FILES {
                    return Err(ApiError::TooLarge(format!(
                        "too many files in one upload (at most {MAX_FILES})"
                    )));
                }
                let earlier = form.files.iter().map(|f| f.spool.bytes()).sum();
                let room = room.map(|r| (r, earlier));
                form.files.push(spool_file(state, field, room).await?);
            }
            "title" => {
                let text = read_text(field, "title", MAX_TITLE * 4).await?;
                form.title = Some(text.trim().to_string());
            }
            "description" => {
                form.description =
                    Some(read_text(field, "description", MAX_DESCRIPTION * 4).await?);
            }
            "visibility" => {
                let text = read_text(field, "visibility", 16).await?;
                form.visibility = Some(Visibility::parse(text.trim()).ok_or_else(|| {
                    ApiError::BadRequest("visibility must be `public` or `private`".into())
                })?);
            }
            "id" => form.edit_id = Some(read_text(field, "id", 64).await?.trim().to_string()),
            // A second token, or a field we do not know: its data is skipped.
            _ => {}
        }
    }
    if !csrf_checked {
        return Err(ApiError::Csrf);
    }
    Ok(form)
}

pub async fn upload(
    State(state): State<SharedState>,
    viewer: Viewer,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<(StatusCode, Json<UploadJson>)> {
    // Refuse what can be refused without reading the body.
    let user = viewer.user()?.clone();
    let header_token = csrf_header(&headers).is_some();
    if header_token {
        viewer.check_csrf(&state, &headers, None)?;
    }
    // What the user's quota leaves: a file past it is refused as it arrives.
    let room = quota::room(&state, &user).await?;
    let budget = HeadBudget::default();
    budget.disarm();
    let request = request.map(|inner| {
        Body::new(Budgeted {
            inner,
            budget: budget.clone(),
        })
    });
    let mut multipart = Multipart::from_request(request, &state)
        .await
        .map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut form =
        match read_form(&state, &viewer, &mut multipart, &budget, room, header_token).await {
            Ok(form) => form,
            Err(e) => {
                state.metrics.upload("refused");
                return Err(e);
            }
        };
    if let Some(id) = form.edit_id.take() {
        return edit(&state, &user, &id, form).await;
    }
    if form.files.is_empty() {
        return Err(ApiError::BadRequest(
            "no `file` part in the upload (or `id` of a photo to edit)".into(),
        ));
    }
    let meta = UploadMeta {
        title: form.title.unwrap_or_default(),
        description: form.description.unwrap_or_default(),
        visibility: form.visibility.unwrap_or(Visibility::Private),
    };
    photos::validate_text(Some(&meta.title), Some(&meta.description))?;
    let mut checked = Vec::with_capacity(form.files.len());
    for file in form.files {
        let name = file.name.clone();
        match upload::check(&state, file).await {
            Ok(c) => checked.push(c),
            Err(e) => {
                state.metrics.upload("refused");
                tracing::info!(user = %user.username, file = ?name, error = %e, "upload refused");
                return Err(e.into());
            }
        }
    }
    let rows = upload::commit(&state, &user, checked, meta).await?;
    let photos = rows
        .iter()
        .map(|row| to_json(row, &state.config.renditions, Some(&user)))
        .collect();
    Ok((StatusCode::CREATED, Json(UploadJson { photos })))
}

/// `POST /rest/edit` with an `id`: the same edit as `PATCH /rest/photos/{id}`.
async fn edit(
    state: &SharedState,
    user: &SessionUser,
    id: &str,
    form: Form,
) -> ApiResult<(StatusCode, Json<UploadJson>)> {
    if !form.files.is_empty() {
        return Err(ApiError::BadRequest(
            "send either `file` parts (upload) or an `id` (edit), not both".into(),
        ));
    }
    let patch = PhotoPatch {
        title: form.title,
        description: form.description,
        visibility: form.visibility,
    };
    let photo = photos::edit(state, user, id, patch).await?;
    Ok((
        StatusCode::OK,
        Json(UploadJson {
            photos: vec![to_json(&photo, &state.config.renditions, Some(user))],
        }),
    ))
}
