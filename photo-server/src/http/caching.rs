//! The validators and caching headers of an image response, the same for a
//! rendition (`http::images`) and an original (`http::originals`): the
//! strong ETag, `If-None-Match`, `Cache-Control` and `Vary`.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;

use crate::db::{Photo, Visibility};
use crate::render;
use crate::renditions::Size;
use crate::state::SharedState;

/// Whether `If-None-Match` names this ETag (or `*`).
pub(crate) fn if_none_match(headers: &HeaderMap, etag: &HeaderValue) -> bool {
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
pub(crate) fn etag(photo: &Photo, size: Size) -> HeaderValue {
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
pub(crate) struct Caching {
    cache_control: HeaderValue,
    /// Only private photos depend on who asks. `Vary: Cookie` on public ones
    /// would keep CDNs from sharing them between visitors.
    vary_cookie: bool,
}

impl Caching {
    /// Kept by the browser only, and revalidated when the session cookie
    /// changes (another user on the same browser).
    pub(crate) const PRIVATE: Caching = Caching {
        cache_control: HeaderValue::from_static("private, max-age=3600"),
        vary_cookie: true,
    };

    pub(crate) fn of(state: &SharedState, visibility: Visibility) -> Caching {
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
pub(crate) fn respond(
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
    fn etag_matching() {
        let mut h = HeaderMap::new();
        assert!(!if_none_match(&h, &HeaderValue::from_static("\"a\"")));
        h.insert(header::IF_NONE_MATCH, "\"x\", W/\"a\"".parse().unwrap());
        assert!(if_none_match(&h, &HeaderValue::from_static("\"a\"")));
        assert!(!if_none_match(&h, &HeaderValue::from_static("\"b\"")));
    }
}
