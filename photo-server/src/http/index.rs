//! The front page. The full web site (gallery, photo pages, upload) is built
//! on the API; until then this page says what is here.

use axum::response::{Html, IntoResponse};

use crate::error::ApiError;

pub async fn index() -> Html<&'static str> {
    Html(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>PhotoStack</title></head>\
         <body><h1>PhotoStack photo-server</h1><p>The API is at <code>/rest/</code>: \
         <a href=\"/rest/photos\">/rest/photos</a>, <a href=\"/rest/session\">/rest/session</a>. \
         Images are at <code>/img/{size}/{id}.jpg</code>.</p></body></html>",
    )
}

pub async fn not_found() -> impl IntoResponse {
    ApiError::NotFound
}
