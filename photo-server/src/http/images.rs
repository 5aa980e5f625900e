//! `GET /img/{size}/{id}.jpg` (and `HEAD`): the hot path.
//!
//! A cached hit costs one in-memory metadata lookup and one in-memory (or
//! local disk) read; the database is consulted only when the metadata cache
//! has expired, and sessions only for private photos. A miss renders once per
//! pod (single-flight) on the render pool and is cached for the next request.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::auth::{SESSION_COOKIE, cookies};
use crate::db::{Photo, Visibility};
use crate::error::{ApiError, ApiResult};
use crate::ids;
use crate::metrics::SizeLabels;
use crate::render::{self, pool::PoolError};
use crate::renditions::Size;
use crate::state::{JobError, SharedState};
use crate::storage::cache::RenditionKey;

/// Bumped whenever the renderer's output changes, so ETags change with it.
const RENDER_VERSION: u32 = 1;

pub async fn image(
    State(state): State<SharedState>,
    Path((size, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = file.strip_suffix(".jpg").ok_or(ApiError::NotFound)?;
    if !ids::is_valid(id) {
        return Err(ApiError::NotFound);
    }
    let size = state
        .config
        .renditions
        .parse_size(&size)
        .ok_or(ApiError::NotFound)?;
    let photo = state.photo_cached(id).await?.ok_or(ApiError::NotFound)?;
    if photo.visibility == Visibility::Private {
        let viewer = match cookies::get(&headers, SESSION_COOKIE) {
            Some(token) => state.auth.session_user_cached(&state.db, token).await?,
            None => None,
        };
        if !photo.visible_to(viewer.as_ref()) {
            // Not 403: a private photo is indistinguishable from a missing one.
            return Err(ApiError::NotFound);
        }
    }
    let etag = match size {
        Size::Original => format!("\"{}\"", photo.sha256),
        Size::Width(w) => format!("\"{id}-{w}-v{RENDER_VERSION}\""),
    };
    let cache_control = match photo.visibility {
        Visibility::Public => "public, max-age=31536000, immutable",
        Visibility::Private => "private, max-age=3600",
    };
    if if_none_match(&headers, &etag) {
        return Ok(respond(
            StatusCode::NOT_MODIFIED,
            &etag,
            cache_control,
            None,
            None,
        ));
    }
    let (bytes, content_type, cache_status) = match size {
        Size::Original => (
            original(&state, &photo).await?,
            photo.format.content_type(),
            "bypass",
        ),
        Size::Width(width) => {
            let key = RenditionKey {
                id: id.to_string(),
                width,
            };
            match state.cache.get(&key).await {
                Some(bytes) => (bytes, "image/jpeg", "hit"),
                None => (rendition(&state, &photo, key).await?, "image/jpeg", "miss"),
            }
        }
    };
    let mut response = respond(
        StatusCode::OK,
        &etag,
        cache_control,
        Some(content_type),
        Some(bytes),
    );
    response
        .headers_mut()
        .insert("x-cache", HeaderValue::from_static(cache_status));
    Ok(response)
}

/// Whether `If-None-Match` names this ETag (or `*`).
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

fn respond(
    status: StatusCode,
    etag: &str,
    cache_control: &'static str,
    content_type: Option<&'static str>,
    body: Option<Bytes>,
) -> Response {
    let mut builder = Response::builder()
        .status(status)
        .header(header::CACHE_CONTROL, cache_control)
        .header(header::VARY, "Cookie");
    if let Ok(v) = HeaderValue::from_str(etag) {
        builder = builder.header(header::ETAG, v);
    }
    if let Some(ct) = content_type {
        builder = builder
            .header(header::CONTENT_TYPE, ct)
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    }
    let body = match body {
        Some(bytes) => {
            builder = builder.header(header::CONTENT_LENGTH, bytes.len());
            Body::from(bytes)
        }
        None => Body::empty(),
    };
    builder
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn original(state: &SharedState, photo: &Photo) -> ApiResult<Bytes> {
    match tokio::fs::read(state.originals.path(&photo.id, photo.format)).await {
        Ok(data) => Ok(Bytes::from(data)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::error!(id = %photo.id, "original missing from the originals store");
            Err(ApiError::NotFound)
        }
        Err(e) => Err(ApiError::internal(e)),
    }
}

async fn rendition(state: &SharedState, photo: &Photo, key: RenditionKey) -> ApiResult<Bytes> {
    let job_state = state.clone();
    let job_key = key.clone();
    let format = photo.format;
    let result = state
        .renderer
        .run(key, move || render_job(&job_state, &job_key, format))
        .await;
    match result {
        Ok(bytes) => Ok(bytes),
        Err(PoolError::Overloaded) => Err(ApiError::Overloaded),
        Err(PoolError::Panicked) => Err(ApiError::Internal("render panicked".into())),
        Err(PoolError::Job(JobError::MissingOriginal)) => {
            tracing::error!(id = %photo.id, "original missing from the originals store");
            Err(ApiError::NotFound)
        }
        Err(PoolError::Job(e)) => Err(ApiError::Internal(e.to_string())),
    }
}

/// Runs on the render pool: read the original, render, cache.
fn render_job(
    state: &SharedState,
    key: &RenditionKey,
    format: render::Format,
) -> Result<Bytes, JobError> {
    let original = match state.originals.read(&key.id, format) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(JobError::MissingOriginal);
        }
        Err(e) => return Err(JobError::Io(e.to_string())),
    };
    let start = Instant::now();
    let jpeg = render::render(
        &original,
        key.width,
        state.config.jpeg_quality,
        state.config.max_pixels,
    )?;
    state
        .metrics
        .render_duration
        .get_or_create(&SizeLabels {
            size: key.width.to_string(),
        })
        .observe(start.elapsed().as_secs_f64());
    let bytes = Bytes::from(jpeg);
    state.cache.put(key, &bytes);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_matching() {
        let mut h = HeaderMap::new();
        assert!(!if_none_match(&h, "\"a\""));
        h.insert(header::IF_NONE_MATCH, "\"x\", W/\"a\"".parse().unwrap());
        assert!(if_none_match(&h, "\"a\""));
        assert!(!if_none_match(&h, "\"b\""));
    }
}
