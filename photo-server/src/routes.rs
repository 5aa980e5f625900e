//! The whole site's routes in one place: the JSON API and the image path
//! (`http`) and the pages (`web`), which never import each other, composed
//! into one router behind the layer every request goes through
//! (`http::observe`: request ids, tracing, metrics, panic safety), plus the
//! fast path for image hits ([`App`]) and the operations listener.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::future::Either;
use tower::{Layer, Service};

use crate::auth::session::LOGIN_BODY_LIMIT;
use crate::http::{admin, body_deadline, health, images, observe, photos, session, upload};
use crate::state::SharedState;
use crate::web;

/// The route template of the image path, as registered on the router and as
/// its metrics label.
const IMAGE_ROUTE: &str = "/img/{size}/{file}";

/// The whole HTTP app: `GET` and `HEAD` of `/img/...` go straight to the
/// image handler, everything else through the axum router.
///
/// Image hits are nearly all of a photo site's traffic, and on a cached hit
/// the router's work (matching, URL parameters, boxing the route) was about
/// a quarter of the CPU per request (`bench/run.sh`). The image route is
/// also on the router, which answers its other methods with 405, and the
/// tests check that both ways give the same answers.
pub fn app(state: SharedState) -> App {
    let observe = observe::ObserveLayer::new(state.metrics.clone());
    App {
        images: observe.clone().with_route(IMAGE_ROUTE).layer(ImageService {
            state: state.clone(),
        }),
        router: router_with(state, observe),
    }
}

/// The router alone (every route, including the image path).
pub fn router(state: SharedState) -> Router {
    let observe = observe::ObserveLayer::new(state.metrics.clone());
    router_with(state, observe)
}

/// Largest body of any other request but uploads (edits, admin forms).
const SMALL_BODY_LIMIT: usize = 64 * 1024;

fn router_with(state: SharedState, observe: observe::ObserveLayer) -> Router {
    let upload_limit = usize::try_from(state.config.max_request_bytes).unwrap_or(usize::MAX);
    let mut router = web::routes()
        .route(IMAGE_ROUTE, get(images::image))
        .route(
            "/rest/login",
            post(session::login).layer(DefaultBodyLimit::max(LOGIN_BODY_LIMIT)),
        )
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
        .route("/readyz", get(health::readyz));
    if state.config.metrics_on_public_listener() {
        router = router.route("/metrics", get(health::metrics));
    }
    router
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(SMALL_BODY_LIMIT))
        // A body that stalls, or trickles, fails the request (408) instead of holding it.
        .layer(axum::middleware::from_fn(body_deadline::layer(
            body_deadline::BodyLimits {
                stall: state.config.body_timeout,
                min_rate: state.config.body_min_rate,
            },
        )))
        .layer(observe)
        .with_state(state)
}

/// The metrics and probe listener (`PHOTO_METRICS_LISTEN`): `/metrics`,
/// `/healthz` and `/readyz` only.
pub fn ops_router(state: SharedState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(not_found)
        .with_state(state)
}

#[derive(Clone)]
pub struct App {
    images: observe::Observe<ImageService>,
    router: Router,
}

impl App {
    fn is_image_request(request: &Request) -> bool {
        (request.method() == Method::GET || request.method() == Method::HEAD)
            && request.uri().path().starts_with("/img/")
    }
}

impl Service<Request> for App {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        observe::ObserveFuture<<ImageService as Service<Request>>::Future>,
        <Router as Service<Request>>::Future,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Both inner services are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if App::is_image_request(&request) {
            Either::Left(self.images.call(request))
        } else {
            Either::Right(self.router.call(request))
        }
    }
}

/// The image handler as a plain service, for [`App`]'s fast path.
#[derive(Clone)]
pub struct ImageService {
    state: SharedState,
}

impl Service<Request> for ImageService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move {
            let head = request.method() == Method::HEAD;
            let mut response = images::image(State(state), request).await.into_response();
            if head {
                // As the router does for HEAD: the headers of the GET, with
                // its Content-Length, and no body.
                use axum::body::HttpBody;
                let length = response.body().size_hint().exact();
                if let Some(length) = length {
                    let headers = response.headers_mut();
                    if !headers.contains_key(header::CONTENT_LENGTH) {
                        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
                    }
                }
                *response.body_mut() = axum::body::Body::empty();
            }
            Ok(response)
        })
    }
}

async fn not_found() -> crate::error::ApiError {
    crate::error::ApiError::NotFound
}
