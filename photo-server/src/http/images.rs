//! `GET /img/{size}/{id}.jpg` (and `HEAD`): the hot path.
//!
//! A cached hit costs one in-memory metadata lookup and one in-memory (or
//! local disk) read; the database is consulted only when the metadata cache
//! has expired, and sessions only for private photos. A miss renders once per
//! pod (single-flight) on the render pool and is cached for the next request.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;

use crate::auth::{SESSION_COOKIE, cookies};
use crate::db::{Photo, SessionUser, Visibility};
use crate::error::{ApiError, ApiResult};
use crate::http::caching::{Caching, etag, if_none_match, respond};
use crate::http::originals;
use crate::ids;
use crate::metrics::SizeLabels;
use crate::render::{
    self,
    pool::{Plan, PoolError, Requester},
};
use crate::renditions::Size;
use crate::state::{JobError, SharedState};
use crate::storage::cache::RenditionKey;

pub async fn image(State(state): State<SharedState>, request: Request) -> ApiResult<Response> {
    let (size, file) = split_path(request.uri().path()).ok_or(ApiError::NotFound)?;
    let headers = request.headers();
    let id = file.strip_suffix(".jpg").ok_or(ApiError::NotFound)?;
    if !ids::is_valid(id) {
        return Err(ApiError::NotFound);
    }
    let size = state
        .config
        .renditions
        .parse_size(size)
        .ok_or(ApiError::NotFound)?;
    let photo = state.photo_cached(id).await?.ok_or(ApiError::NotFound)?;
    // Originals keep their location metadata: only their owner and admins
    // get them. Renditions of public photos are for everyone. The session is
    // read only when needed (a private photo, an original, a render to queue).
    let mut viewer = None;
    if photo.visibility == Visibility::Private || size == Size::Original {
        let user = session_user(&state, headers).await?;
        let allowed = match size {
            Size::Original => user.as_ref().is_some_and(|v| photo.editable_by(v)),
            Size::Width(_) => photo.visible_to(user.as_ref()),
        };
        viewer = Some(user);
        if !allowed {
            // Not 403: a private photo is indistinguishable from a missing one.
            return Err(ApiError::NotFound);
        }
    }
    let etag = etag(&photo, size);
    let caching = match size {
        Size::Original => Caching::PRIVATE,
        Size::Width(_) => Caching::of(&state, photo.visibility),
    };
    if if_none_match(headers, &etag) {
        return Ok(respond(
            StatusCode::NOT_MODIFIED,
            &etag,
            caching,
            None,
            None,
        ));
    }
    let width = match size {
        Size::Original => {
            return originals::serve(&state, &photo, headers, etag, caching).await;
        }
        Size::Width(width) => width,
    };
    let key = RenditionKey {
        id: id.to_string(),
        width,
    };
    let (bytes, cache_status) = match state.cache.get(&key).await {
        Some(bytes) => (bytes, "hit"),
        None => {
            let user = match viewer {
                Some(user) => user,
                None => session_user(&state, headers).await?,
            };
            let requester = match user {
                Some(user) => Requester::User(user.user_id),
                None => Requester::Anonymous(
                    state
                        .auth
                        .client_ip(headers, crate::auth::extract::peer(request.extensions()))
                        .map(crate::auth::client_of),
                ),
            };
            (rendition(&state, &photo, key, requester).await?, "miss")
        }
    };
    let mut response = respond(
        StatusCode::OK,
        &etag,
        caching,
        Some("image/jpeg"),
        Some(bytes),
    );
    response
        .headers_mut()
        .insert("x-cache", HeaderValue::from_static(cache_status));
    Ok(response)
}

/// `/img/{size}/{file}` taken apart from the raw path. Sizes and ids are
/// plain ASCII, so there is nothing to percent-decode (an escaped id is not
/// an id), and the hot path skips the `Path` extractor's allocations.
/// The signed-in user of the request's session cookie, if any (the cached lookup).
async fn session_user(state: &SharedState, headers: &HeaderMap) -> ApiResult<Option<SessionUser>> {
    Ok(match cookies::get(headers, SESSION_COOKIE) {
        Some(token) => state.auth.session_user_cached(&state.db, token).await?,
        None => None,
    })
}

fn split_path(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix("/img/")?.split_once('/')
}

async fn rendition(
    state: &SharedState,
    photo: &Photo,
    key: RenditionKey,
    requester: Requester,
) -> ApiResult<Bytes> {
    if let Some(failure) = state.render_failures.get(&key) {
        return Err(render_failure(&failure));
    }
    let job_state = state.clone();
    let job_key = key.clone();
    let format = photo.format;
    let result = state
        .renderer
        .run(key.clone(), requester, move || {
            plan_render(job_state, job_key, format)
        })
        .await;
    match result {
        Ok(bytes) => Ok(bytes),
        Err(PoolError::Overloaded) => Err(ApiError::Overloaded),
        // Only a render nobody waits for is cancelled; answered in case.
        Err(PoolError::Cancelled) => Err(ApiError::Overloaded),
        Err(PoolError::Panicked) => Err(ApiError::Internal("render panicked".into())),
        Err(PoolError::Job(JobError::MissingOriginal)) => {
            tracing::error!(id = %photo.id, "original missing from the originals store");
            Err(ApiError::NotFound)
        }
        Err(PoolError::Job(e @ JobError::Render(_))) => {
            // The same original will fail the same way: remember it rather
            // than decode it again on every request.
            tracing::warn!(id = %photo.id, width = key.width, error = %e, "photo cannot be rendered");
            let answer = render_failure(&e);
            state.metrics.renders_failed.inc();
            state.render_failures.insert(key, e);
            Err(answer)
        }
        Err(PoolError::Job(e)) => Err(ApiError::Internal(e.to_string())),
    }
}

fn render_failure(e: &JobError) -> ApiError {
    ApiError::Unprocessable(format!("this photo cannot be rendered at this size: {e}"))
}

/// Plans a render on a blocking thread, from the original's headers (what
/// it takes in memory); the planned work renders on the render pool and
/// caches the rendition.
fn plan_render(
    state: SharedState,
    key: RenditionKey,
    format: render::Format,
) -> Result<Plan<Bytes, JobError>, JobError> {
    let original = match state.originals.open_file(&key.id, format) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(JobError::MissingOriginal);
        }
        Err(e) => return Err(JobError::Io(e.to_string())),
    };
    let limits = render::DecodeLimits {
        max_pixels: state.config.max_pixels,
        max_bytes: state.config.decode_max_bytes,
    };
    let rendition = render::Rendition::plan(
        render::open_file(original)?,
        key.width,
        state.config.jpeg_quality,
        limits,
    )?;
    Ok(Plan::new(rendition.memory(), move || {
        let start = Instant::now();
        let jpeg = rendition.run()?;
        state
            .metrics
            .render_duration
            .get_or_create(&SizeLabels {
                size: key.width.to_string(),
            })
            .observe(start.elapsed().as_secs_f64());
        let bytes = Bytes::from(jpeg);
        state.cache.put(&key, &bytes);
        Ok(bytes)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_paths() {
        assert_eq!(split_path("/img/240/abc.jpg"), Some(("240", "abc.jpg")));
        assert_eq!(split_path("/img/orig/abc.jpg"), Some(("orig", "abc.jpg")));
        // Whatever follows the size is the file, and must then be `<id>.jpg`.
        assert_eq!(split_path("/img/240/a/b.jpg"), Some(("240", "a/b.jpg")));
        assert_eq!(split_path("/image/240/abc.jpg"), None);
    }
}
