//! `GET /rest/photos`, and `GET`, `PATCH`, `DELETE /rest/photos/{id}`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::auth::extract::{SignedIn, Viewer};
use crate::db::{Photo, PhotoPatch, SessionUser};
use crate::domain::{access, photos};
use crate::error::{ApiError, ApiResult};
use crate::renditions::{Renditions, Size};
use crate::state::SharedState;

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

/// The photo's URLs by size name; `orig` only for those who may fetch it
/// (its owner and admins: originals keep their location metadata).
pub fn urls(renditions: &Renditions, id: &str, with_original: bool) -> BTreeMap<String, String> {
    renditions
        .sizes()
        .filter(|&size| with_original || size != Size::Original)
        .map(|size| (size.to_string(), size.url(id)))
        .collect()
}

pub fn to_json(photo: &Photo, renditions: &Renditions, viewer: Option<&SessionUser>) -> PhotoJson {
    let editable = viewer.is_some_and(|v| access::can_edit(photo, v));
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
        urls: urls(renditions, &photo.id, editable),
        editable,
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

pub async fn list(
    State(state): State<SharedState>,
    viewer: Viewer,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<ListJson>> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = match query.limit.as_deref() {
        None | Some("") => photos::DEFAULT_PAGE,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=photos::MAX_PAGE).contains(l))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "limit must be a number from 1 to {}",
                    photos::MAX_PAGE
                ))
            })?,
    };
    let viewer = viewer.user.as_ref();
    let (page, next) = photos::page(&state, viewer, query.cursor.as_deref(), limit).await?;
    Ok(Json(ListJson {
        photos: page
            .iter()
            .map(|p| to_json(p, &state.config.renditions, viewer))
            .collect(),
        next,
    }))
}

pub async fn get(
    State(state): State<SharedState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> ApiResult<Json<PhotoJson>> {
    let viewer = viewer.user.as_ref();
    let photo = photos::visible_photo(&state, viewer, &id).await?;
    Ok(Json(to_json(&photo, &state.config.renditions, viewer)))
}

pub async fn patch(
    State(state): State<SharedState>,
    SignedIn { user, .. }: SignedIn,
    Path(id): Path<String>,
    body: Result<Json<PhotoPatch>, JsonRejection>,
) -> ApiResult<Json<PhotoJson>> {
    let Json(patch) = body?;
    let photo = photos::edit(&state, &user, &id, patch).await?;
    Ok(Json(to_json(&photo, &state.config.renditions, Some(&user))))
}

pub async fn delete(
    State(state): State<SharedState>,
    SignedIn { user, .. }: SignedIn,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    photos::delete(&state, &user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
