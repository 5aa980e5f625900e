//! The web site people use, rendered on the server with `maud` (which
//! escapes every interpolated value) on top of the same database and storage
//! as the API. Pages work without JavaScript for reading and logging in; the
//! one static script (`/static/app.js`, no inline script anywhere, enforced by
//! the Content-Security-Policy) adds uploads with progress, editing, deleting,
//! admin forms and infinite scroll through the JSON API.

mod admin;
mod gallery;
mod login;
mod page;
mod photo;
mod upload;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::state::SharedState;

const APP_JS: &str = include_str!("../../static/app.js");
const APP_CSS: &str = include_str!("../../static/app.css");

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/", get(gallery::page))
        .route(
            "/login",
            get(login::page)
                .post(login::submit)
                .layer(axum::extract::DefaultBodyLimit::max(
                    crate::auth::session::LOGIN_BODY_LIMIT,
                )),
        )
        .route("/logout", post(login::logout))
        .route("/photos/{id}", get(photo::page))
        .route("/upload", get(upload::page))
        .route("/admin", get(admin::page))
        .route("/static/app.js", get(app_js))
        .route("/static/app.css", get(app_css))
}

async fn app_js() -> impl IntoResponse {
    static_asset(APP_JS, "text/javascript; charset=utf-8")
}

async fn app_css() -> impl IntoResponse {
    static_asset(APP_CSS, "text/css; charset=utf-8")
}

fn static_asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
