//! The HTTP surface: routes to handlers, plus the layers every request goes
//! through (tracing, metrics, panic safety). Handlers live one file per
//! resource; storage, rendering and SQL live outside this module.

mod admin;
mod health;
mod images;
pub mod photos;
pub mod session;
mod upload;
pub mod viewer;

pub use photos::{PhotoJson, decode_cursor, encode_cursor, visible_photo};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

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
        .route("/rest/admin/users", get(admin::users).post(admin::create_user))
        .route("/rest/admin/users/{username}/password", post(admin::reset_password))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(state.metrics.clone()),
            crate::metrics::track,
        ))
        .layer(CatchPanicLayer::new())
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                let id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::x_request_id(RequestIds::new()))
        .with_state(state)
}

async fn not_found() -> crate::error::ApiError {
    crate::error::ApiError::NotFound
}

/// Request ids: a random per-process prefix and a counter. As unique as a
/// UUID for log correlation, without a `getrandom` call on every request.
#[derive(Clone)]
struct RequestIds {
    prefix: std::sync::Arc<str>,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    fn new() -> RequestIds {
        RequestIds {
            prefix: crate::ids::new_id()[..8].into(),
            next: Default::default(),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        axum::http::HeaderValue::from_str(&format!("{}-{n}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}
