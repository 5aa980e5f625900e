//! `POST /rest/login`, `POST /rest/logout`, `GET /rest/session`.

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::json;

use crate::auth::extract::{Viewer, peer};
use crate::auth::session::{login_cookies, same_origin};
use crate::auth::{ANON_COOKIE, KNOWN_COOKIE, SESSION_COOKIE, cookies, new_token};
use crate::domain::accounts;
use crate::error::{ApiError, ApiResult, header_value};
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
        login_cookies(&state.auth, &token, &user.username, tls).map_err(ApiError::internal)?,
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
