//! `GET /img/orig/{id}.jpg`: a photo as uploaded, for its owner and admins
//! (the image handler has checked that). Originals keep their EXIF,
//! location included, so nobody else gets them: visitors get renditions.
//!
//! The file is streamed from the originals volume in 64 KiB chunks, never
//! read whole into memory, and `Range` requests are honoured (`206`, one
//! range; `If-Range` with the ETag), so a 50 MB download on a phone can
//! resume. A slow reader holds the response at most [`deadline`]: a base
//! plus the time the file takes at [`MIN_RATE`]; past it the response is
//! cut off (and the client can resume with a range).

use std::io::SeekFrom;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::db::Photo;
use crate::error::{ApiError, ApiResult};
use crate::http::caching::{Caching, respond};
use crate::state::SharedState;

/// Slowest average rate a download is allowed, in bytes per second.
pub const MIN_RATE: u64 = 32 * 1024;
/// Every download gets at least this long.
pub const BASE_DEADLINE: Duration = Duration::from_secs(60);
const CHUNK: usize = 64 * 1024;

/// How long a response of `bytes` may take.
pub fn deadline(bytes: u64) -> Duration {
    BASE_DEADLINE + Duration::from_secs(bytes / MIN_RATE)
}

/// The one byte range asked for, if it should be honoured: `Ok(None)` means
/// the whole file (no `Range`, several ranges, or an `If-Range` that no
/// longer matches); `Err` means the range cannot be satisfied.
fn requested_range(
    headers: &HeaderMap,
    etag: &HeaderValue,
    len: u64,
) -> Result<Option<(u64, u64)>, ()> {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    if let Some(if_range) = headers.get(header::IF_RANGE)
        && if_range != etag
    {
        return Ok(None);
    }
    let Ok(parsed) = http_range_header::parse_range_header(range) else {
        // Not a byte range we understand: ignore it, as RFC 9110 allows.
        return Ok(None);
    };
    let ranges = parsed.validate(len).map_err(|_| ())?;
    match ranges.as_slice() {
        [only] => Ok(Some((*only.start(), *only.end()))),
        _ => Ok(None),
    }
}

pub(crate) async fn serve(
    state: &SharedState,
    photo: &Photo,
    headers: &HeaderMap,
    etag: HeaderValue,
    caching: Caching,
) -> ApiResult<Response> {
    let path = state.originals.path(&photo.id, photo.format);
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::error!(id = %photo.id, "original missing from the originals store");
            return Err(ApiError::NotFound);
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    let len = file.metadata().await.map_err(ApiError::internal)?.len();
    let (status, start, end) = match requested_range(headers, &etag, len) {
        Ok(None) => (StatusCode::OK, 0, len.saturating_sub(1)),
        Ok(Some((start, end))) => (StatusCode::PARTIAL_CONTENT, start, end),
        Err(()) => {
            let mut response = respond(
                StatusCode::RANGE_NOT_SATISFIABLE,
                &etag,
                caching,
                None,
                None,
            );
            insert(
                &mut response,
                header::CONTENT_RANGE,
                &format!("bytes */{len}"),
            );
            return Ok(response);
        }
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(ApiError::internal)?;
    }
    let until = tokio::time::sleep(deadline(count));
    let stream = ReaderStream::with_capacity(file.take(count), CHUNK).take_until(until);
    let mut response = respond(
        status,
        &etag,
        caching,
        Some(photo.format.content_type()),
        None,
    );
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        insert(
            &mut response,
            header::CONTENT_RANGE,
            &format!("bytes {start}-{end}/{len}"),
        );
    }
    *response.body_mut() = Body::from_stream(stream);
    Ok(response)
}

fn insert(response: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str, if_range: Option<&str>) -> Result<Option<(u64, u64)>, ()> {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, value.parse().unwrap());
        if let Some(v) = if_range {
            headers.insert(header::IF_RANGE, v.parse().unwrap());
        }
        requested_range(&headers, &HeaderValue::from_static("\"e\""), 1000)
    }

    #[test]
    fn one_byte_range_is_honoured() {
        assert_eq!(range("bytes=0-99", None), Ok(Some((0, 99))));
        assert_eq!(range("bytes=900-", None), Ok(Some((900, 999))));
        assert_eq!(range("bytes=-100", None), Ok(Some((900, 999))));
        assert_eq!(range("bytes=990-5000", None), Ok(Some((990, 999))));
        assert_eq!(range("bytes=1000-", None), Err(()));
        // Several ranges, or a stale If-Range: the whole file.
        assert_eq!(range("bytes=0-1,5-9", None), Ok(None));
        assert_eq!(range("bytes=0-99", Some("\"old\"")), Ok(None));
        assert_eq!(range("bytes=0-99", Some("\"e\"")), Ok(Some((0, 99))));
        assert_eq!(range("items=0-9", None), Ok(None));
    }

    #[test]
    fn slow_readers_get_time_in_proportion_to_the_size() {
        assert_eq!(deadline(0), BASE_DEADLINE);
        assert_eq!(
            deadline(50 << 20),
            BASE_DEADLINE + Duration::from_secs(1600)
        );
    }
}
