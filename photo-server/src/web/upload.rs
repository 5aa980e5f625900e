//! `GET /upload`: several files by picker or drag and drop; app.js uploads
//! them one request each, with a progress bar and the API's error per file.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use crate::auth::extract::Viewer;
use crate::state::SharedState;
use crate::units::bytes;
use crate::web::page::PageContext;

pub async fn page(State(state): State<SharedState>, viewer: Viewer) -> Response {
    if viewer.user.is_none() {
        return Redirect::to("/login?next=/upload").into_response();
    }
    let ctx = PageContext::new(&state, &viewer);
    ctx.render(
        StatusCode::OK,
        "Upload",
        html! {
            section {
                h1 { "Upload photos" }
                form.stack id="upload-form" {
                    label.drop id="drop" for="files" {
                        strong { "Choose photos" } " or drop them here"
                        span.hint { "JPEG, PNG or WebP, up to " (bytes(state.config.max_upload_bytes)) " each" }
                    }
                    input id="files" name="file" type="file" multiple accept="image/jpeg,image/png,image/webp";
                    label for="upload-title" { "Title (optional, for all of them)" }
                    input id="upload-title" name="title" maxlength="200";
                    label for="upload-visibility" { "Visibility" }
                    select id="upload-visibility" name="visibility" {
                        option value="private" selected { "Private (only you)" }
                        option value="public" { "Public (everyone)" }
                    }
                    button type="submit" id="upload-button" { "Upload" }
                }
                ul.uploads id="upload-list" aria-live="polite" {}
                p id="upload-done" hidden { a href="/" { "See them in the gallery" } }
            }
        },
    )
}
