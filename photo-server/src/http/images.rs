//! `GET /img/{size}/{id}.jpg` (and `HEAD`): the hot path.
//!
//! A cached hit costs one in-memory metadata lookup and one in-memory (or
//! local disk) read; the database is consulted only when the metadata cache
//! has expired, and sessions only for private photos. A miss renders once per
//! pod (single-flight) on the render pool and is cached for the next request.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;

use crate::auth::{SESSION_COOKIE, cookies};
use crate::db::{Photo, SessionUser, Visibility};
use crate::error::{ApiError, ApiResult};
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
            return super::originals::serve(&state, &photo, headers, etag, caching).await;
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

/// Whether `If-None-Match` names this ETag (or `*`).
fn if_none_match(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let etag = etag.as_bytes();
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t.as_bytes() == etag || t == "*")
}

/// The strong ETag of a photo at a size: the content hash for the original;
/// id, width and renderer version for a rendition, marked `p` while the
/// photo is private, so that a copy cached while it was public is never
/// confirmed fresh for it once private.
fn etag(photo: &Photo, size: Size) -> HeaderValue {
    // Built without `format!`: this runs on every cached hit.
    let mut value = String::with_capacity(80);
    value.push('"');
    match size {
        Size::Original => value.push_str(&photo.sha256),
        Size::Width(w) => {
            value.push_str(&photo.id);
            value.push('-');
            value.push_str(itoa::Buffer::new().format(w));
            value.push_str("-v");
            value.push_str(itoa::Buffer::new().format(render::OUTPUT_VERSION));
            if photo.visibility == Visibility::Private {
                value.push('p');
            }
        }
    }
    value.push('"');
    // Ids and hashes are alphanumeric: always a valid header value.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// How browsers and shared caches may keep an image.
#[derive(Clone)]
pub(super) struct Caching {
    cache_control: HeaderValue,
    /// Only private photos depend on who asks. `Vary: Cookie` on public ones
    /// would keep CDNs from sharing them between visitors.
    vary_cookie: bool,
}

impl Caching {
    /// Kept by the browser only, and revalidated when the session cookie
    /// changes (another user on the same browser).
    const PRIVATE: Caching = Caching {
        cache_control: HeaderValue::from_static("private, max-age=3600"),
        vary_cookie: true,
    };

    fn of(state: &SharedState, visibility: Visibility) -> Caching {
        match visibility {
            // Not `immutable` and not for a year: a photo made private must
            // drop out of browsers and CDNs, within `PHOTO_PUBLIC_MAX_AGE`.
            // After that they revalidate, which a cached hit answers with a
            // cheap 304.
            Visibility::Public => Caching {
                cache_control: state.public_cache_control.clone(),
                vary_cookie: false,
            },
            Visibility::Private => Caching::PRIVATE,
        }
    }
}

/// Builds the response by hand, with static header values where possible:
/// this runs on every cached hit, and `Response::builder` with `&str` values
/// would copy each of them.
pub(super) fn respond(
    status: StatusCode,
    etag: &HeaderValue,
    caching: Caching,
    content_type: Option<&'static str>,
    body: Option<Bytes>,
) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.reserve(8);
    headers.insert(header::CACHE_CONTROL, caching.cache_control);
    if caching.vary_cookie {
        headers.insert(header::VARY, HeaderValue::from_static("Cookie"));
    }
    headers.insert(header::ETAG, etag.clone());
    if let Some(ct) = content_type {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    }
    if let Some(bytes) = body {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        *response.body_mut() = Body::from(bytes);
    }
    response
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
    fn etags_are_stable() {
        // Browsers and CDNs hold these: they may change only with
        // render::OUTPUT_VERSION.
        let photo = Photo {
            id: "abcdefghij0123456789".into(),
            owner_id: "o".into(),
            owner: "admin".into(),
            title: String::new(),
            description: String::new(),
            visibility: Visibility::Public,
            format: render::Format::Jpeg,
            width: 10,
            height: 10,
            bytes: 1,
            sha256: "5e".repeat(32),
            original_name: "a.jpg".into(),
            camera: None,
            taken_at: None,
            created_at: 0,
        };
        assert_eq!(
            etag(&photo, Size::Width(1440)),
            "\"abcdefghij0123456789-1440-v2\""
        );
        let private = Photo {
            visibility: Visibility::Private,
            ..photo.clone()
        };
        assert_eq!(
            etag(&private, Size::Width(1440)),
            "\"abcdefghij0123456789-1440-v2p\""
        );
        assert_eq!(
            etag(&photo, Size::Original),
            format!("\"{}\"", "5e".repeat(32)).as_str()
        );
    }

    #[test]
    fn image_paths() {
        assert_eq!(split_path("/img/240/abc.jpg"), Some(("240", "abc.jpg")));
        assert_eq!(split_path("/img/orig/abc.jpg"), Some(("orig", "abc.jpg")));
        // Whatever follows the size is the file, and must then be `<id>.jpg`.
        assert_eq!(split_path("/img/240/a/b.jpg"), Some(("240", "a/b.jpg")));
        assert_eq!(split_path("/image/240/abc.jpg"), None);
    }

    #[test]
    fn etag_matching() {
        let mut h = HeaderMap::new();
        assert!(!if_none_match(&h, &HeaderValue::from_static("\"a\"")));
        h.insert(header::IF_NONE_MATCH, "\"x\", W/\"a\"".parse().unwrap());
        assert!(if_none_match(&h, &HeaderValue::from_static("\"a\"")));
        assert!(!if_none_match(&h, &HeaderValue::from_static("\"b\"")));
    }
}
