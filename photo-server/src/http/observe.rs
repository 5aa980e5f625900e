//! The one middleware every request goes through. It
//! - gives the request an id (`X-Request-Id`, kept if the client or a proxy
//!   sent one) and returns it on the response;
//! - runs the request inside a `request` span carrying that id, so every log
//!   line of the request can be found by it, and logs server errors (not
//!   503s, which are load shedding) with their method, route and status;
//! - records the request in the HTTP metrics by route template, method and
//!   status, never by raw path (that would make one series per photo);
//! - turns a panic in a handler into a logged, counted `500` with the usual
//!   JSON error body, instead of a dropped connection.
//!
//! This replaces tower-http's request-id, trace and catch-panic layers plus
//! an `axum::middleware::from_fn` layer. Each of those boxed a future, cloned
//! the route or wrapped the response body on every request, and together they
//! cost more CPU than the cached-hit handler itself (callgrind, cached
//! `/img/240`: 55k instructions per hit with those layers and glibc malloc,
//! 37k with this one and mimalloc; `bench/run.sh` test 5 prints today's).

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use axum::response::IntoResponse;
use tower::{Layer, Service};
use tracing::Span;

use crate::error::ApiError;
use crate::metrics::Metrics;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone)]
pub struct ObserveLayer {
    metrics: Arc<Metrics>,
    ids: RequestIds,
    route: Option<&'static str>,
}

impl ObserveLayer {
    pub fn new(metrics: Metrics) -> ObserveLayer {
        ObserveLayer {
            metrics: Arc::new(metrics),
            ids: RequestIds::new(),
            route: None,
        }
    }

    /// For a service outside the router, which has no `MatchedPath`: every
    /// request it sees is labelled with this route template.
    pub fn with_route(self, route: &'static str) -> ObserveLayer {
        ObserveLayer {
            route: Some(route),
            ..self
        }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            metrics: self.metrics.clone(),
            ids: self.ids.clone(),
            route: self.route,
        }
    }
}

#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    metrics: Arc<Metrics>,
    ids: RequestIds,
    route: Option<&'static str>,
}

impl<S, ReqBody> Service<Request<ReqBody>> for Observe<S>
where
    S: Service<Request<ReqBody>, Response = Response<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let request_id = match request.headers().get(&X_REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = self.ids.next();
                request.headers_mut().insert(&X_REQUEST_ID, id.clone());
                id
            }
        };
        let route = match self.route {
            Some(route) => route,
            None => route_label(request.extensions().get::<MatchedPath>()),
        };
        let method = method_label(request.method());
        let has_body = declares_body(request.headers());
        // Only the id: each span field costs about a microsecond per request
        // with JSON logs, and the id leads to the rest (it is in the
        // response, in ingress logs, and on the failure line below).
        let span = tracing::info_span!("request", request_id = request_id.to_str().unwrap_or("-"));
        let inner = span.in_scope(|| self.inner.call(request));
        ObserveFuture {
            inner,
            span,
            request_id,
            route,
            method,
            start: Instant::now(),
            metrics: self.metrics.clone(),
            has_body,
        }
    }
}

/// Whether a request says a body follows (a length above zero, or chunked).
fn declares_body(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key(axum::http::header::TRANSFER_ENCODING)
        || headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

pin_project_lite::pin_project! {
    pub struct ObserveFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        request_id: HeaderValue,
        route: &'static str,
        method: &'static str,
        start: Instant,
        metrics: Arc<Metrics>,
        has_body: bool,
    }
}

impl<F, E> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        // After a panic the inner future is never polled again: this future
        // is then ready, and a ready future is not polled.
        let mut inner = this.inner;
        let polled = catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx)));
        let mut result = match polled {
            Ok(poll) => ready!(poll),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("(no message)");
                Ok(ApiError::Internal(format!("handler panicked: {message}")).into_response())
            }
        };
        if let Ok(response) = &mut result {
            let status = response.status();
            let elapsed = this.start.elapsed();
            this.metrics
                .record_request(this.route, this.method, status.as_u16(), elapsed);
            response
                .headers_mut()
                .entry(&X_REQUEST_ID)
                .or_insert_with(|| this.request_id.clone());
            // A refusal may come before the body was read (the session and
            // CSRF token are checked first), and then hyper closes the
            // connection: say so, or a client (or a proxy's keep-alive pool)
            // would send its next request on a connection that is closing.
            if *this.has_body && (status.is_client_error() || status.is_server_error()) {
                response.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    HeaderValue::from_static("close"),
                );
            }
            // 503 is load shedding or shutdown, counted in the metrics: a line
            // per refused request would add log load to an overload.
            if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
                tracing::warn!(
                    method = *this.method,
                    route = *this.route,
                    status = status.as_u16(),
                    latency_ms = elapsed.as_millis() as u64,
                    "request answered with a server error"
                );
            } else {
                tracing::debug!(
                    method = *this.method,
                    route = *this.route,
                    status = status.as_u16(),
                    latency_us = elapsed.as_micros() as u64,
                    "request finished"
                );
            }
        }
        Poll::Ready(result)
    }
}

/// The metrics label of a route: its template (`/img/{size}/{file}`).
/// `MatchedPath` only ever holds one of the templates registered on the
/// router, a small fixed set, so each is interned (leaked) once and labels
/// cost no allocation per request.
fn route_label(path: Option<&MatchedPath>) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{LazyLock, RwLock};
    static ROUTES: LazyLock<RwLock<HashSet<&'static str>>> = LazyLock::new(Default::default);

    let Some(path) = path.map(MatchedPath::as_str) else {
        return "unmatched";
    };
    if let Some(route) = ROUTES
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(path)
    {
        return route;
    }
    let mut routes = ROUTES
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match routes.get(path) {
        Some(route) => route,
        None => {
            let route: &'static str = Box::leak(path.into());
            routes.insert(route);
            route
        }
    }
}

/// The metrics label of a method; anything non-standard is `OTHER`, so a
/// client cannot create series at will.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Request ids: a random per-process prefix and a counter. As unique as a
/// UUID for log correlation, without a `getrandom` call per request.
#[derive(Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl RequestIds {
    fn new() -> RequestIds {
        RequestIds {
            prefix: crate::ids::new_id()[..8].into(),
            next: Default::default(),
        }
    }

    fn next(&self) -> HeaderValue {
        use std::io::Write;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // 8 + 1 + at most 20 digits, formatted on the stack.
        let mut buf = [0u8; 32];
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        let written = write!(cursor, "{}-{n}", self.prefix).is_ok();
        let len = usize::try_from(cursor.position()).unwrap_or(0);
        match written {
            // Letters, digits and '-' only: always a valid header value.
            true => HeaderValue::from_bytes(&buf[..len])
                .unwrap_or_else(|_| HeaderValue::from_static("-")),
            false => HeaderValue::from_static("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::ServiceExt;

    /// An inner service that panics or echoes the request id it was given.
    fn observed(
        metrics: &Metrics,
        panics: bool,
    ) -> Observe<
        impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future = impl Send>
        + Clone,
    > {
        ObserveLayer::new(metrics.clone()).layer(tower::service_fn(
            move |request: Request<Body>| async move {
                if panics {
                    panic!("boom");
                }
                let seen = request.headers().get(&X_REQUEST_ID).cloned();
                let mut response = Response::new(Body::empty());
                if let Some(seen) = seen {
                    response.headers_mut().insert("x-seen-id", seen);
                }
                Ok::<_, Infallible>(response)
            },
        ))
    }

    #[tokio::test]
    async fn a_refused_request_with_a_body_closes_its_connection() {
        let metrics = Metrics::new();
        let refuse = |status: StatusCode| {
            ObserveLayer::new(metrics.clone()).layer(tower::service_fn(
                move |_: Request<Body>| async move {
                    let mut response = Response::new(Body::empty());
                    *response.status_mut() = status;
                    Ok::<_, Infallible>(response)
                },
            ))
        };
        let with_body = || {
            Request::post("/rest/edit")
                .header("content-length", "1000")
                .body(Body::empty())
                .unwrap()
        };
        let closes = |response: &Response<Body>| {
            response.headers().get("connection").map(|v| v.as_bytes()) == Some(&b"close"[..])
        };
        let refused = refuse(StatusCode::FORBIDDEN)
            .oneshot(with_body())
            .await
            .unwrap();
        assert!(closes(&refused), "a 403 before the body was read");
        let accepted = refuse(StatusCode::CREATED)
            .oneshot(with_body())
            .await
            .unwrap();
        assert!(!closes(&accepted), "a success keeps the connection");
        let no_body = Request::get("/rest/photos/x").body(Body::empty()).unwrap();
        let missing = refuse(StatusCode::NOT_FOUND)
            .oneshot(no_body)
            .await
            .unwrap();
        assert!(
            !closes(&missing),
            "an error on a request without a body keeps it too"
        );
    }

    #[tokio::test]
    async fn a_panicking_handler_becomes_a_logged_counted_500() {
        let metrics = Metrics::new();
        let request = Request::get("/x").body(Body::empty()).unwrap();
        let response = observed(&metrics, true).oneshot(request).await.unwrap();
        assert_eq!(response.status(), 500);
        assert!(response.headers().contains_key(&X_REQUEST_ID));
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], br#"{"error":"internal error"}"#);
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"photo_http_requests_total{route="unmatched",method="GET",status="500"} 1"#
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn request_ids_reach_the_handler_and_the_response() {
        let metrics = Metrics::new();
        // A proxy's id is kept.
        let request = Request::get("/x")
            .header("x-request-id", "from-the-proxy")
            .body(Body::empty())
            .unwrap();
        let response = observed(&metrics, false).oneshot(request).await.unwrap();
        assert_eq!(response.headers()[&X_REQUEST_ID], "from-the-proxy");
        assert_eq!(response.headers()["x-seen-id"], "from-the-proxy");
        // Otherwise one is made, and the handler sees the same one.
        let request = Request::get("/x").body(Body::empty()).unwrap();
        let response = observed(&metrics, false).oneshot(request).await.unwrap();
        assert_eq!(
            response.headers()[&X_REQUEST_ID],
            response.headers()["x-seen-id"]
        );
    }

    #[test]
    fn request_ids_are_distinct_and_share_a_process_prefix() {
        let ids = RequestIds::new();
        let a = ids.next();
        let b = ids.clone().next();
        assert_ne!(a, b);
        let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
        assert_eq!(a.split('-').next(), b.split('-').next());
        assert_eq!(a.split('-').next().unwrap().len(), 8);
    }

    #[test]
    fn odd_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&odd), "OTHER");
    }
}
