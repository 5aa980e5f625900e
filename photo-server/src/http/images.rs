//! `GET /img/{size}/{id}.jpg` (and `HEAD`): the hot path.
//!
//! This parses the path, applies who may see what, and asks the rendition
//! service (`renditions::service`) for the bytes: a cached hit costs one
//! in-memory metadata lookup and one in-memory (or local disk) read; the
//! database is consulted only when the metadata cache has expired, and
//! sessions only for private photos, originals, and renders to queue. A miss
//! renders once per pod (single-flight) on the render pool and is cached for
//! the next request.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

use crate::auth::{SESSION_COOKIE, cookies};
use crate::db::{SessionUser, Visibility};
use crate::domain::access;
use crate::error::{ApiError, ApiResult};
use crate::http::caching::{Caching, etag, if_none_match, respond};
use crate::http::originals;
use crate::ids;
use crate::render::pool::Requester;
use crate::renditions::Size;
use crate::state::SharedState;
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
        let allowed = access::can_fetch(&photo, user.as_ref(), size);
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
    let (bytes, cache_status) = match state.renditions.cached(&key).await {
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
                        .map(crate::clients::client_of),
                ),
            };
            let bytes = state
                .renditions
                .render(key, photo.format, requester)
                .await?;
            (bytes, "miss")
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
