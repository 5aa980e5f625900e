//! The session cookies a login sets and the checks a login request passes,
//! shared by `POST /rest/login` (`http::session`) and the login form
//! (`web::login`).

use axum::http::header::InvalidHeaderValue;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::AppendHeaders;

use crate::auth::{Auth, KNOWN_CLIENT_TTL, KNOWN_COOKIE, SESSION_COOKIE, cookies};

/// Largest body of a login (JSON or form): a username and a password.
pub const LOGIN_BODY_LIMIT: usize = 16 * 1024;

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
pub fn session_cookie(
    auth: &Auth,
    token: &str,
    tls: bool,
) -> Result<HeaderValue, InvalidHeaderValue> {
    HeaderValue::from_str(&cookies::set(SESSION_COOKIE, token, auth.session_ttl, tls))
}

/// The `Set-Cookie` headers of a successful login: the session, and the
/// known-client cookie that gives this device a login budget of its own for
/// the account (see `auth::throttle`).
pub fn login_cookies(
    auth: &Auth,
    token: &str,
    username: &str,
    tls: bool,
) -> Result<AppendHeaders<[(HeaderName, HeaderValue); 2]>, InvalidHeaderValue> {
    let known = cookies::set(
        KNOWN_COOKIE,
        &auth.known_client_token(username),
        KNOWN_CLIENT_TTL,
        tls,
    );
    Ok(AppendHeaders([
        (header::SET_COOKIE, session_cookie(auth, token, tls)?),
        (header::SET_COOKIE, HeaderValue::from_str(&known)?),
    ]))
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
