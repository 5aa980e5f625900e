//! Who is asking: the session behind the request, its address, and whether it
//! came over TLS. API handlers take a `Viewer`; the image path does its own,
//! cheaper lookup only for private photos.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::auth::{ANON_COOKIE, CSRF_HEADER, SESSION_COOKIE, cookies};
use crate::db::SessionUser;
use crate::error::{ApiError, ApiResult};
use crate::state::SharedState;

pub struct Viewer {
    pub user: Option<SessionUser>,
    /// The session cookie's token, when it names a live session.
    pub session_token: Option<String>,
    /// The anonymous CSRF binding cookie, when present.
    pub anon: Option<String>,
    pub tls: bool,
    pub ip: Option<IpAddr>,
}

pub fn peer(parts_extensions: &axum::http::Extensions) -> Option<IpAddr> {
    parts_extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

impl FromRequestParts<SharedState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> ApiResult<Viewer> {
        let headers = &parts.headers;
        let peer = peer(&parts.extensions);
        let mut user = None;
        let mut session_token = None;
        if let Some(token) = cookies::get(headers, SESSION_COOKIE) {
            user = state.auth.session_user(&state.db, token).await?;
            if user.is_some() {
                session_token = Some(token.to_string());
            }
        }
        Ok(Viewer {
            user,
            session_token,
            anon: cookies::get(headers, ANON_COOKIE).map(str::to_string),
            tls: state.auth.request_is_tls(headers, peer),
            ip: state.auth.client_ip(headers, peer),
        })
    }
}

impl Viewer {
    /// The logged-in user, or `401`.
    pub fn user(&self) -> ApiResult<&SessionUser> {
        self.user.as_ref().ok_or(ApiError::Unauthorized)
    }

    /// What the CSRF token is bound to: the session, or before login the
    /// anonymous cookie.
    pub fn csrf_binding(&self) -> Option<&str> {
        self.session_token.as_deref().or(self.anon.as_deref())
    }

    /// Checks the CSRF token from the header, or from a form field when the
    /// header is absent. `403` when missing or wrong.
    pub fn check_csrf(
        &self,
        state: &SharedState,
        headers: &HeaderMap,
        form_field: Option<&str>,
    ) -> ApiResult<()> {
        let presented = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .or(form_field);
        match (self.csrf_binding(), presented) {
            (Some(binding), Some(token)) if state.auth.csrf_valid(binding, token) => Ok(()),
            _ => Err(ApiError::Csrf),
        }
    }

    /// The user of a state-changing request: logged in (`401`) with a valid
    /// CSRF token (`403`).
    pub fn user_with_csrf(
        &self,
        state: &SharedState,
        headers: &HeaderMap,
        form_field: Option<&str>,
    ) -> ApiResult<&SessionUser> {
        let user = self.user()?;
        self.check_csrf(state, headers, form_field)?;
        Ok(user)
    }
}
