//! `GET /rest/photos`, and `GET`, `PATCH`, `DELETE /rest/photos/{id}`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::db::{Photo, PhotoPatch, SessionUser};
use crate::error::{ApiError, ApiResult};
use crate::http::viewer::Viewer;
use crate::ids;
use crate::renditions::Renditions;
use crate::state::SharedState;

pub const MAX_TITLE: usize = 200;
pub const MAX_DESCRIPTION: usize = 5000;

/// A photo as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct PhotoJson {
    pub id: String,
    pub title: String,
    pub description: String,
    pub visibility: crate::db::Visibility,
    pub owner: String,
    pub width: u32,
    pub height: u32,
    pub format: String,
    pub bytes: u64,
    pub camera: Option<String>,
    pub taken_at: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub urls: BTreeMap<String, String>,
    /// Whether the caller may edit and delete it.
    pub editable: bool,
}

pub fn urls(renditions: &Renditions, id: &str) -> BTreeMap<String, String> {
    renditions
        .names()
        .map(|name| {
            let url = format!("/img/{name}/{id}.jpg");
            (name, url)
        })
        .collect()
}

pub fn to_json(photo: &Photo, renditions: &Renditions, viewer: Option<&SessionUser>) -> PhotoJson {
    PhotoJson {
        id: photo.id.clone(),
        title: photo.title.clone(),
        description: photo.description.clone(),
        visibility: photo.visibility,
        owner: photo.owner.clone(),
        width: photo.width,
        height: photo.height,
        format: photo.format.as_str().into(),
        bytes: photo.bytes,
        camera: photo.camera.clone(),
        taken_at: photo.taken_at.clone(),
        created_at: photo.created_at,
        urls: urls(renditions, &photo.id),
        editable: viewer.is_some_and(|v| photo.editable_by(v)),
    }
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ListJson {
    photos: Vec<PhotoJson>,
    next: Option<String>,
}

const DEFAULT_LIMIT: u32 = 30;
const MAX_LIMIT: u32 = 100;

pub fn encode_cursor(photo: &Photo) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{}", photo.created_at, photo.id))
}

pub fn decode_cursor(text: &str) -> Option<(i64, String)> {
    let raw = URL_SAFE_NO_PAD.decode(text).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (time, id) = raw.split_once('.')?;
    ids::is_valid(id).then_some(())?;
    Some((time.parse().ok()?, id.to_string()))
}

pub async fn list(
    State(state): State<SharedState>,
    viewer: Viewer,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<ListJson>> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = match query.limit.as_deref() {
        None | Some("") => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("limit must be a number from 1 to {MAX_LIMIT}"))
            })?,
    };
    let cursor =
        match query.cursor.as_deref() {
            None | Some("") => None,
            Some(text) => Some(decode_cursor(text).ok_or_else(|| {
                ApiError::BadRequest("cursor is not one this server issued".into())
            })?),
        };
    let viewer = viewer.user.as_ref();
    // One extra row tells whether there is a next page.
    let mut photos = state
        .db
        .list_photos(
            viewer,
            cursor.as_ref().map(|(t, id)| (*t, id.as_str())),
            limit + 1,
        )
        .await?;
    let next = if photos.len() > limit as usize {
        photos.truncate(limit as usize);
        photos.last().map(encode_cursor)
    } else {
        None
    };
    Ok(Json(ListJson {
        photos: photos
            .iter()
            .map(|p| to_json(p, &state.config.renditions, viewer))
            .collect(),
        next,
    }))
}

/// The photo if `viewer` may see it; `404` otherwise (a private photo of
/// someone else does not exist as far as the caller can tell).
pub async fn visible_photo(
    state: &SharedState,
    viewer: Option<&SessionUser>,
    id: &str,
) -> ApiResult<Photo> {
    if !ids::is_valid(id) {
        return Err(ApiError::NotFound);
    }
    let photo = state.db.photo(id).await?.ok_or(ApiError::NotFound)?;
    if !photo.visible_to(viewer) {
        return Err(ApiError::NotFound);
    }
    Ok(photo)
}

pub async fn get(
    State(state): State<SharedState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> ApiResult<Json<PhotoJson>> {
    let viewer = viewer.user.as_ref();
    let photo = visible_photo(&state, viewer, &id).await?;
    Ok(Json(to_json(&photo, &state.config.renditions, viewer)))
}

/// Checks a title and description before they are stored.
pub fn validate_text(title: Option<&str>, description: Option<&str>) -> ApiResult<()> {
    if title.is_some_and(|t| t.chars().count() > MAX_TITLE) {
        return Err(ApiError::Unprocessable(format!(
            "title is longer than {MAX_TITLE} characters"
        )));
    }
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
        return Err(ApiError::Unprocessable(format!(
            "description is longer than {MAX_DESCRIPTION} characters"
        )));
    }
    Ok(())
}

pub async fn patch(
    State(state): State<SharedState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<PhotoPatch>, JsonRejection>,
) -> ApiResult<Json<PhotoJson>> {
    let user = viewer.user_with_csrf(&state, &headers, None)?;
    let Json(patch) = body.map_err(|e| match e.status() {
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::Unprocessable(e.body_text()),
        _ => ApiError::BadRequest(e.body_text()),
    })?;
    Ok(Json(edit_photo(&state, user, &id, patch).await?))
}

/// Edits a photo's title, description or visibility: `PATCH
/// /rest/photos/{id}` and `POST /rest/edit` with an `id` share this.
pub async fn edit_photo(
    state: &SharedState,
    user: &SessionUser,
    id: &str,
    patch: PhotoPatch,
) -> ApiResult<PhotoJson> {
    let photo = visible_photo(state, Some(user), id).await?;
    if !photo.editable_by(user) {
        return Err(ApiError::Forbidden(
            "only the owner or an admin may edit this photo".into(),
        ));
    }
    if patch.is_empty() {
        return Err(ApiError::BadRequest(
            "nothing to change: send title, description or visibility".into(),
        ));
    }
    let title = patch.title.as_ref().map(|t| t.trim().to_string());
    let patch = PhotoPatch { title, ..patch };
    validate_text(patch.title.as_deref(), patch.description.as_deref())?;
    let updated = state
        .db
        .update_photo(id, &patch)
        .await?
        .ok_or(ApiError::NotFound)?;
    state.forget_photo(id);
    tracing::info!(id = %id, user = %user.username, "photo edited");
    Ok(to_json(&updated, &state.config.renditions, Some(user)))
}

pub async fn delete(
    State(state): State<SharedState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let user = viewer.user_with_csrf(&state, &headers, None)?;
    let photo = visible_photo(&state, Some(user), &id).await?;
    if !photo.editable_by(user) {
        return Err(ApiError::Forbidden(
            "only the owner or an admin may delete this photo".into(),
        ));
    }
    // Row first: once it is gone nothing points at the files, so removing
    // them afterwards (or failing to) can never break a page.
    if !state.db.delete_photo(&id).await? {
        return Err(ApiError::NotFound);
    }
    state.forget_photo(&id);
    if let Err(e) = state.originals.remove(&id, photo.format) {
        tracing::warn!(id = %id, error = %e, "photo deleted but its original could not be removed");
    }
    state
        .cache
        .remove_photo(&id, state.config.renditions.widths());
    tracing::info!(id = %id, user = %user.username, "photo deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        let id = ids::new_id();
        let text = URL_SAFE_NO_PAD.encode(format!("1700000000000.{id}"));
        assert_eq!(decode_cursor(&text), Some((1_700_000_000_000, id)));
        assert_eq!(decode_cursor("!!!"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("12.../etc")), None);
    }
}
