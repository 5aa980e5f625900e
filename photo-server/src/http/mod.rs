//! The HTTP surface: routes to handlers, plus the one layer every request
//! goes through (`observe`: request ids, tracing, metrics, panic safety).
//! Handlers live one file per resource; storage, rendering and SQL live
//! outside this module.

mod admin;
mod health;
mod images;
mod observe;
pub mod photos;
pub mod session;
mod upload;
pub mod viewer;

pub use photos::{PhotoJson, decode_cursor, encode_cursor, visible_photo};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::state::SharedState;

pub fn router(state: SharedState) -> Router {
    let upload_limit = usize::try_from(state.config.max_request_bytes).unwrap_or(usize::MAX);
    crate::web::routes()
        .route("/img/{size}/{file}", get(images::image))
        .route("/rest/login", post(session::login))
        .route("/rest/logout", post(session::logout))
        .route("/rest/session", get(session::session))
        .route(
            "/rest/edit",
            post(upload::upload).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/rest/photos", get(photos::list))
        .route(
            "/rest/photos/{id}",
            get(photos::get).patch(photos::patch).delete(photos::delete),
        )
        .route(
            "/rest/admin/users",
            get(admin::users).post(admin::create_user),
        )
        .route(
            "/rest/admin/users/{username}/password",
            post(admin::reset_password),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(not_found)
        .layer(observe::ObserveLayer::new(state.metrics.clone()))
        .with_state(state)
}

async fn not_found() -> crate::error::ApiError {
    crate::error::ApiError::NotFound
}
