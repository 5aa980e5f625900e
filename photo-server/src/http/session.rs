//! `POST /rest/login`, `POST /rest/logout`, `GET /rest/session`.

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{AppendHeaders, IntoResponse, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{
    ANON_COOKIE, KNOWN_CLIENT_TTL, KNOWN_COOKIE, SESSION_COOKIE, cookies, new_token,
};
use crate::domain::accounts;
use crate::error::{ApiError, ApiResult};
use crate::http::extract::{Viewer, peer};
use crate::state::SharedState;

#[derive(Debug, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Reads credentials from a JSON body or an HTML form.
async fn credentials(request: Request, state: &SharedState) -> ApiResult<Credentials> {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        Json::<Credentials>::from_request(request, state)
            .await
            .map(|Json(c)| c)
            .map_err(ApiError::from)
    } else {
        Form::<Credentials>::from_request(request, state)
            .await
            .map(|Form(c)| c)
            .map_err(ApiError::from)
    }
}

/// Refuses a login posted from another site (login CSRF). Browsers send
/// `Origin` on every POST; scripts and curl send none and are not affected.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
}

/// The `Set-Cookie` value of a new session.
pub fn session_cookie(state: &SharedState, token: &str, tls: bool) -> ApiResult<HeaderValue> {
    header_value(&cookies::set(
        SESSION_COOKIE,
        token,
        state.auth.session_ttl,
        tls,
    ))
}

/// The `Set-Cookie` headers of a successful login: the session, and the
/// known-client cookie that gives this device a login budget of its own for
/// the account (see `auth::throttle`).
pub fn login_cookies(
    state: &SharedState,
    token: &str,
    username: &str,
    tls: bool,
) -> ApiResult<AppendHeaders<[(HeaderName, HeaderValue); 2]>> {
    let known = cookies::set(
        KNOWN_COOKIE,
        &state.auth.known_client_token(username),
        KNOWN_CLIENT_TTL,
        tls,
    );
    Ok(AppendHeaders([
        (header::SET_COOKIE, session_cookie(state, token, tls)?),
        (header::SET_COOKIE, header_value(&known)?),
    ]))
}

pub async fn login(State(state): State<SharedState>, request: Request) -> ApiResult<Response> {
    let headers = request.headers().clone();
    let ip = state.auth.client_ip(&headers, peer(request.extensions()));
    let tls = state
        .auth
        .request_is_tls(&headers, peer(request.extensions()));
    if !same_origin(&headers) {
        return Err(ApiError::Forbidden("cross-site login refused".into()));
    }
    let creds = credentials(request, &state).await?;
    let known = cookies::get(&headers, KNOWN_COOKIE);
    let (token, user) =
        accounts::authenticate(&state, ip, known, &creds.username, creds.password).await?;
    let body = json!({
        "user": user.username,
        "admin": user.is_admin,
        "csrf": state.auth.csrf_token(&token),
    });
    Ok((
        login_cookies(&state, &token, &user.username, tls)?,
        Json(body),
    )
        .into_response())
}

pub async fn logout(
    State(state): State<SharedState>,
    viewer: Viewer,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if let Some(token) = &viewer.session_token {
        viewer.check_csrf(&state, &headers, None)?;
        accounts::log_out(&state, token).await?;
    }
    let cookie = cookies::clear(SESSION_COOKIE, viewer.tls);
    Ok((
        [(header::SET_COOKIE, header_value(&cookie)?)],
        Json(json!({ "user": null })),
    )
        .into_response())
}

pub async fn session(State(state): State<SharedState>, viewer: Viewer) -> ApiResult<Response> {
    let mut set_cookie = None;
    let binding = match viewer.csrf_binding() {
        Some(b) => b.to_string(),
        None => {
            let anon = new_token();
            set_cookie = Some(cookies::set(
                ANON_COOKIE,
                &anon,
                state.auth.session_ttl,
                viewer.tls,
            ));
            anon
        }
    };
    let body = Json(json!({
        "user": viewer.user.as_ref().map(|u| u.username.clone()),
        "admin": viewer.user.as_ref().is_some_and(|u| u.is_admin),
        "csrf": state.auth.csrf_token(&binding),
    }));
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(cookie) = set_cookie {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, header_value(&cookie)?);
    }
    Ok(response)
}

pub fn header_value(text: &str) -> ApiResult<HeaderValue> {
    HeaderValue::from_str(text).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_site_logins_are_refused() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h), "curl sends no Origin");
        h.insert(header::HOST, "photos.example.com".parse().unwrap());
        h.insert(
            header::ORIGIN,
            "https://photos.example.com".parse().unwrap(),
        );
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(!same_origin(&h));
    }
}
