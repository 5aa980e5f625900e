//! `GET/POST /login` and `POST /logout`: plain HTML forms, so logging in
//! works without JavaScript. The same rate limiting as the API applies.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use crate::auth::{SESSION_COOKIE, cookies};
use crate::error::ApiError;
use crate::http::session::{authenticate, header_value, same_origin, session_cookie};
use crate::http::viewer::Viewer;
use crate::state::SharedState;
use crate::web::PageContext;

#[derive(Debug, Deserialize)]
pub struct Next {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    csrf: Option<String>,
}

/// Only local paths: `next=https://evil.example` must not redirect away.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

fn form(
    ctx: &PageContext,
    status: StatusCode,
    next: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    ctx.render(
        status,
        "Log in",
        html! {
            section.narrow {
                h1 { "Log in" }
                @if let Some(error) = error {
                    p.error role="alert" { (error) }
                }
                form.stack method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    label for="username" { "Username" }
                    input id="username" name="username" autocomplete="username" required value=(username) autofocus;
                    label for="password" { "Password" }
                    input id="password" name="password" type="password" autocomplete="current-password" required;
                    button type="submit" { "Log in" }
                }
            }
        },
    )
}

pub async fn page(
    State(state): State<SharedState>,
    viewer: Viewer,
    Query(q): Query<Next>,
) -> Response {
    let ctx = PageContext::new(&state, &viewer);
    form(
        &ctx,
        StatusCode::OK,
        &safe_next(q.next.as_deref()),
        "",
        None,
    )
}

pub async fn submit(
    State(state): State<SharedState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(input): Form<LoginForm>,
) -> Response {
    let ctx = PageContext::new(&state, &viewer);
    let next = safe_next(input.next.as_deref());
    if !same_origin(&headers) {
        return form(
            &ctx,
            StatusCode::FORBIDDEN,
            &next,
            "",
            Some("Cross-site login refused."),
        );
    }
    match authenticate(&state, viewer.ip, &input.username, input.password).await {
        Ok((token, _user)) => match session_cookie(&state, &token, viewer.tls) {
            Ok(cookie) => ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response(),
            Err(e) => e.into_response(),
        },
        Err(ApiError::BadCredentials) => form(
            &ctx,
            StatusCode::UNAUTHORIZED,
            &next,
            &input.username,
            Some("Wrong username or password."),
        ),
        Err(ApiError::RateLimited { .. }) => form(
            &ctx,
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            &input.username,
            Some("Too many failed attempts. Wait a few minutes and try again."),
        ),
        Err(e) => e.into_response(),
    }
}

pub async fn logout(
    State(state): State<SharedState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(input): Form<LogoutForm>,
) -> Response {
    if let Some(token) = &viewer.session_token {
        if let Err(e) = viewer.check_csrf(&state, &headers, input.csrf.as_deref()) {
            return e.into_response();
        }
        if let Err(e) = state.auth.end_session(&state.db, token).await {
            return ApiError::from(e).into_response();
        }
    }
    match header_value(&cookies::clear(SESSION_COOKIE, viewer.tls)) {
        Ok(cookie) => ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_on_the_site() {
        assert_eq!(safe_next(Some("/upload")), "/upload");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
