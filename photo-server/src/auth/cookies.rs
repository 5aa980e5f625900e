//! Reading and writing the two cookies the server uses.

use std::time::Duration;

use axum::http::{HeaderMap, header};

/// The value of cookie `name` in the request, if any.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, path `/`, and Secure when the
/// request came over TLS.
pub fn set(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    let mut cookie = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
        max_age.as_secs()
    );
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// A `Set-Cookie` value that deletes the cookie.
pub fn clear(name: &str, secure: bool) -> String {
    set(name, "", Duration::ZERO, secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_cookie_among_several() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; photo_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(get(&headers, "photo_session"), Some("abc"));
        assert_eq!(get(&headers, "missing"), None);
    }

    #[test]
    fn cookies_are_http_only_and_lax() {
        let c = set("s", "v", Duration::from_secs(60), true);
        assert_eq!(c, "s=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure");
        assert!(!clear("s", false).contains("Secure"));
        assert!(clear("s", false).contains("Max-Age=0"));
    }
}
