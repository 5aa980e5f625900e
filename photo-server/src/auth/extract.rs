//! Who is asking, as extractors, so a handler's signature says what it
//! requires:
//!
//! - [`Viewer`]: anyone; the session's user if there is one, the client's
//!   address, and whether the request came over TLS.
//! - [`SignedIn`]: a logged-in user (`401` otherwise) whose request carries
//!   a valid CSRF token in `X-CSRF-Token` (`403` otherwise): `PATCH` and
//!   `DELETE /rest/photos/{id}` take it.
//! - [`Admin`]: a [`SignedIn`] admin (`403` otherwise): the admin API's
//!   changes take it.
//!
//! The other requests that change something take a [`Viewer`] and call
//! [`Viewer::check_csrf`] themselves: HTML forms with their `csrf` field,
//! `POST /rest/edit` with the header or, for a form, the `csrf` part that
//! comes first (`http::upload`), `POST /rest/logout` when there is a session
//! to end. `POST /rest/login` has no session to bind a token to: it refuses
//! cross-site requests instead (`auth::session::same_origin`). The image
//! path does its own, cheaper session lookup (`Auth::session_user_cached`),
//! only when the answer depends on it: a private photo, an original, or a
//! render to queue.
//!
//! The extractors take the state through [`SessionContext`], so that `auth`
//! needs nothing of `state`; they refuse with [`AuthError`], which `error.rs`
//! maps to the API's answers.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::auth::{ANON_COOKIE, Auth, CSRF_HEADER, SESSION_COOKIE, cookies};
use crate::db::{Db, DbError, SessionUser};

/// Why an extractor refused a request (each mapped to the API's answer in
/// `error.rs`: 401, 403, or the database's).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("log in first")]
    Unauthorized,
    #[error("missing or invalid CSRF token")]
    Csrf,
    #[error("admins only")]
    NotAdmin,
    #[error(transparent)]
    Db(#[from] DbError),
}

pub type AuthResult<T> = Result<T, AuthError>;

/// What the extractors need of the app's state: the session rules and keys,
/// and the database the sessions are in. `state::AppState` implements it.
pub trait SessionContext {
    fn auth(&self) -> &Auth;
    fn db(&self) -> &Db;
}

impl<T: SessionContext> SessionContext for std::sync::Arc<T> {
    fn auth(&self) -> &Auth {
        (**self).auth()
    }

    fn db(&self) -> &Db {
        (**self).db()
    }
}

pub struct Viewer {
    pub user: Option<SessionUser>,
    /// The session cookie's token, when it names a live session.
    pub session_token: Option<String>,
    /// The anonymous CSRF binding cookie, when present.
    pub anon: Option<String>,
    pub tls: bool,
    pub ip: Option<IpAddr>,
}

/// The address of the TCP peer (a proxy, when there is one).
pub fn peer(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

impl<S: SessionContext + Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> AuthResult<Viewer> {
        let headers = &parts.headers;
        let peer = peer(&parts.extensions);
        let mut user = None;
        let mut session_token = None;
        if let Some(token) = cookies::get(headers, SESSION_COOKIE) {
            user = state.auth().session_user(state.db(), token).await?;
            if user.is_some() {
                session_token = Some(token.to_string());
            }
        }
        Ok(Viewer {
            user,
            session_token,
            anon: cookies::get(headers, ANON_COOKIE).map(str::to_string),
            tls: state.auth().request_is_tls(headers, peer),
            ip: state.auth().client_ip(headers, peer),
        })
    }
}

impl Viewer {
    /// The logged-in user, or `401`.
    pub fn user(&self) -> AuthResult<&SessionUser> {
        self.user.as_ref().ok_or(AuthError::Unauthorized)
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
        state: &impl SessionContext,
        headers: &HeaderMap,
        form_field: Option<&str>,
    ) -> AuthResult<()> {
        let presented = csrf_header(headers).or(form_field);
        match (self.csrf_binding(), presented) {
            (Some(binding), Some(token)) if state.auth().csrf_valid(binding, token) => Ok(()),
            _ => Err(AuthError::Csrf),
        }
    }
}

/// The `X-CSRF-Token` header, if sent.
pub fn csrf_header(headers: &HeaderMap) -> Option<&str> {
    headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok())
}

/// A logged-in user whose request carries a valid CSRF token header.
pub struct SignedIn {
    pub user: SessionUser,
    pub viewer: Viewer,
}

impl<S: SessionContext + Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> AuthResult<SignedIn> {
        let viewer = Viewer::from_request_parts(parts, state).await?;
        let user = viewer.user()?.clone();
        viewer.check_csrf(state, &parts.headers, None)?;
        Ok(SignedIn { user, viewer })
    }
}

/// A [`SignedIn`] admin.
pub struct Admin(pub SignedIn);

impl<S: SessionContext + Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> AuthResult<Admin> {
        let signed_in = SignedIn::from_request_parts(parts, state).await?;
        if !signed_in.user.is_admin {
            return Err(AuthError::NotAdmin);
        }
        Ok(Admin(signed_in))
    }
}
