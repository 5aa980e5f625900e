//! `GET/POST /login` and `POST /logout`: plain HTML forms, so logging in
//! works without JavaScript. The same rate limiting as the API applies.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use crate::auth::extract::Viewer;
use crate::auth::session::{login_cookies, same_origin};
use crate::auth::{KNOWN_COOKIE, SESSION_COOKIE, cookies};
use crate::domain::accounts;
use crate::error::{ApiError, header_value};
use crate::state::SharedState;
use crate::web::page::PageContext;

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

/// Only plain local paths: `/`, then letters, digits and `-._~/?=&%+`, and
/// never `//` at the start. Anything else (`https://evil.example`,
/// `//evil.example`, a tab or newline that a browser would drop or a header
/// would refuse, a backslash that a browser reads as `/`) means `/`.
fn safe_next(next: Option<&str>) -> String {
    let plain = |n: &str| {
        n.len() <= 512
            && n.starts_with('/')
            && !n.starts_with("//")
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~/?=&%+".contains(&b))
    };
    match next {
        Some(n) if plain(n) => n.to_string(),
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
    let known = cookies::get(&headers, KNOWN_COOKIE);
    let result = accounts::authenticate(&state, viewer.ip, known, &input.username, input.password)
        .await
        .map_err(ApiError::from);
    let (status, message, retry_after) = match result {
        Ok((token, user)) => {
            return match login_cookies(&state.auth, &token, &user.username, viewer.tls) {
                Ok(cookies) => (cookies, Redirect::to(&next)).into_response(),
                Err(e) => ApiError::internal(e).into_response(),
            };
        }
        Err(ApiError::BadCredentials) => (
            StatusCode::UNAUTHORIZED,
            "Wrong username or password.",
            None,
        ),
        Err(ApiError::RateLimited { retry_after }) => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed attempts. Wait a few minutes and try again.",
            Some(retry_after.as_secs().max(1)),
        ),
        Err(ApiError::LoginsBusy) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The site is busy. Try again in a moment.",
            Some(1),
        ),
        Err(ApiError::DatabaseUnavailable) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The site cannot reach its database just now (it may be starting). Try again in a moment.",
            Some(2),
        ),
        Err(e) => return e.into_response(),
    };
    let mut page = form(&ctx, status, &next, &input.username, Some(message));
    if let Some(seconds) = retry_after {
        page.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    page
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
        if let Err(e) = accounts::log_out(&state, token).await {
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
        // Browsers drop tabs and newlines: `/\t/evil.example` is `//evil.example`.
        assert_eq!(safe_next(Some("/\t/evil.example")), "/");
        assert_eq!(safe_next(Some("/\n/evil.example")), "/");
        assert_eq!(safe_next(Some("/upload\r\nSet-Cookie: x=1")), "/");
        assert_eq!(
            safe_next(Some("/photos/abc?x=1&y=%2F")),
            "/photos/abc?x=1&y=%2F"
        );
        assert_eq!(safe_next(Some("/caf\u{e9}")), "/");
    }
}
