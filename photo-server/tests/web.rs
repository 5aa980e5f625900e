//! The web pages over HTTP: escaping, CSRF, session tampering, rate limiting,
//! security headers, private photos, and the admin API behind the admin page.

mod common;

use common::{Backend, TestServer};
use serde_json::{Value, json};

both_backends!(
    titles_are_escaped_everywhere,
    forms_carry_a_csrf_token_and_logout_without_it_is_refused,
    a_tampered_session_cookie_is_just_a_visitor,
    the_login_form_reports_errors_rate_limits_and_only_redirects_locally,
    cookies_are_secure_behind_a_tls_proxy_only,
    private_photos_are_404_on_every_page,
    the_gallery_pages_without_javascript,
    admins_manage_users,
);

async fn page(client: &common::Client, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let r = client.get(path).await;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, r.text().await.unwrap(), headers)
}

async fn titles_are_escaped_everywhere(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let evil = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>";
    let p = admin
        .upload_ok(
            "landscape.jpg",
            &[
                ("title", evil),
                ("description", evil),
                ("visibility", "public"),
            ],
        )
        .await;
    let id = p["id"].as_str().unwrap();
    for path in ["/".to_string(), format!("/photos/{id}")] {
        let (status, html, headers) = page(&server.client(), &path).await;
        assert_eq!(status, 200, "{path}");
        assert!(!html.contains("<script>alert"), "{path} has raw script");
        assert!(!html.contains("<img src=x"), "{path} has raw markup");
        assert!(
            html.contains("&lt;script&gt;alert("),
            "{path} shows the title as text"
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["cache-control"], "no-store");
        // No inline script at all: the only script is the static file.
        assert_eq!(html.matches("<script").count(), 1);
        assert!(html.contains("<script src=\"/static/app.js\" defer>"));
    }
}

async fn forms_carry_a_csrf_token_and_logout_without_it_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let (_, html, _) = page(&admin, "/").await;
    let token = html
        .split("data-csrf=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    assert!(
        html.contains(&format!("name=\"csrf\" value=\"{token}\"")),
        "logout form carries it"
    );
    let r = admin
        .http
        .post(admin.url("/logout"))
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        admin.get_json("/rest/session").await["user"],
        "admin",
        "still logged in"
    );
    let r = admin
        .http
        .post(admin.url("/logout"))
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(admin.get_json("/rest/session").await["user"], Value::Null);
}

async fn a_tampered_session_cookie_is_just_a_visitor(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let token = admin.session.clone().unwrap();
    let http = reqwest::Client::new();
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    for cookie in [forged.as_str(), "", "../../etc/passwd", "admin"] {
        let r = http
            .get(format!("{}/rest/session", server.url))
            .header("cookie", format!("photo_session={cookie}"))
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["user"], Value::Null, "{cookie:?}");
        let r = http
            .get(format!("{}/admin", server.url))
            .header("cookie", format!("photo_session={cookie}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "the login page, not the admin page");
        assert!(r.url().path().starts_with("/login"));
    }
    // The genuine cookie still works.
    let r = http
        .get(format!("{}/rest/session", server.url))
        .header("cookie", format!("photo_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["user"], "admin");
}

async fn the_login_form_reports_errors_rate_limits_and_only_redirects_locally(backend: Backend) {
    let server = TestServer::start(backend).await;
    let client = server.client();
    let post = |user: &'static str, pass: &'static str, next: &'static str| {
        client
            .http
            .post(client.url("/login"))
            .form(&[("username", user), ("password", pass), ("next", next)])
            .send()
    };
    let r = post("admin", common::ADMIN_PASSWORD, "https://evil.example/")
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/");
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("HttpOnly; SameSite=Lax")
    );
    let r = post("admin", common::ADMIN_PASSWORD, "/upload")
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/upload");
    // A browser drops tabs and newlines: `/\t/evil.example` would be
    // `//evil.example`. Anything but a plain local path means `/`, and a
    // newline is no reason for a 500.
    for next in [
        "/\t/evil.example",
        "/\n/evil.example",
        "/\\evil.example",
        "/x\r\nSet-Cookie: a=b",
    ] {
        let r = post("admin", common::ADMIN_PASSWORD, next).await.unwrap();
        assert_eq!(r.status(), 303, "{next:?}");
        assert_eq!(r.headers()["location"], "/", "{next:?}");
    }
    let r = post("admin", "wrong", "/").await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Wrong username or password.")
    );
    let mut last = 0;
    for _ in 0..6 {
        last = post("admin", "wrong", "/").await.unwrap().status().as_u16();
    }
    assert_eq!(last, 429);
    let r = post("admin", common::ADMIN_PASSWORD, "/").await.unwrap();
    assert_eq!(
        r.status(),
        429,
        "the right password does not unlock a rate-limited login"
    );
    assert!(r.text().await.unwrap().contains("Too many failed attempts"));
    // A cross-site form post is refused.
    let r = client
        .http
        .post(client.url("/login"))
        .header("origin", "https://evil.example")
        .form(&[("username", "admin"), ("password", common::ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

async fn cookies_are_secure_behind_a_tls_proxy_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let http = reqwest::Client::new();
    let login = |proto: &'static str| {
        http.post(format!("{}/rest/login", server.url))
            .header("x-forwarded-proto", proto)
            .json(&json!({"username": "admin", "password": common::ADMIN_PASSWORD}))
            .send()
    };
    // The test client connects from 127.0.0.1, a trusted proxy by default.
    let tls = login("https").await.unwrap();
    assert!(
        tls.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .ends_with("; Secure")
    );
    let plain = login("http").await.unwrap();
    assert!(
        !plain.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Secure")
    );
    // From an untrusted peer the header is ignored.
    let untrusted = TestServer::start_with(backend, |c| c.trusted_proxies = vec![]).await;
    let r = http
        .post(format!("{}/rest/login", untrusted.url))
        .header("x-forwarded-proto", "https")
        .json(&json!({"username": "admin", "password": common::ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(
        !r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Secure")
    );
}

async fn private_photos_are_404_on_every_page(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let id = alice
        .upload_id("landscape.jpg", &[("title", "alice only")])
        .await;
    let (status, html, _) = page(&alice, &format!("/photos/{id}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"edit-form\""), "the owner may edit");
    for client in [&bob, &server.client()] {
        let (status, html, _) = page(client, &format!("/photos/{id}")).await;
        assert_eq!(status, 404);
        assert!(!html.contains("alice only"));
        let (_, gallery, _) = page(client, "/").await;
        assert!(!gallery.contains(&id));
    }
    let (status, _, _) = page(&bob, "/photos/..%2F..%2Fetc").await;
    assert_eq!(status, 404);
}

async fn the_gallery_pages_without_javascript(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let (_, empty, _) = page(&admin, "/").await;
    assert!(empty.contains("No photos yet"));
    for _ in 0..26 {
        admin
            .upload_ok("portrait.jpg", &[("visibility", "public")])
            .await;
    }
    let (_, first, _) = page(&server.client(), "/").await;
    assert_eq!(first.matches("class=\"card\"").count(), 24);
    assert!(first.contains("loading=\"lazy\"") && first.contains("srcset=\"/img/240/"));
    let next = first
        .split("href=\"/?cursor=")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let (_, second, _) = page(&server.client(), &format!("/?cursor={next}")).await;
    assert_eq!(second.matches("class=\"card\"").count(), 2);
    assert!(!second.contains("id=\"more\""));
}

async fn admins_manage_users(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let post = |path: &str, body: Value| {
        admin
            .http
            .post(admin.url(path))
            .header("x-csrf-token", &admin.csrf)
            .json(&body)
            .send()
    };
    let r = post(
        "/rest/admin/users",
        json!({"username": "carol", "password": "carol-pass-1"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    for (body, status) in [
        (
            json!({"username": "carol", "password": "another-pass"}),
            409,
        ),
        (
            json!({"username": "bad name!", "password": "long-enough"}),
            422,
        ),
        (json!({"username": "dave", "password": "short"}), 422),
        (json!({"username": "dave"}), 422),
    ] {
        assert_eq!(
            post("/rest/admin/users", body.clone())
                .await
                .unwrap()
                .status(),
            status,
            "{body}"
        );
    }
    let list = admin.get_json("/rest/admin/users").await;
    let names: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "carol"]);
    assert_eq!(list["storage"]["photos"], 0);
    // Carol logs in; a reset ends her session and the new password works.
    let mut carol = server.client();
    assert_eq!(carol.login("carol", "carol-pass-1").await.status(), 200);
    let r = post(
        "/rest/admin/users/carol/password",
        json!({"password": "carol-pass-2"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(carol.get_json("/rest/session").await["user"], Value::Null);
    assert_eq!(carol.login("carol", "carol-pass-2").await.status(), 200);
    assert_eq!(
        post(
            "/rest/admin/users/nobody/password",
            json!({"password": "whatever-1"})
        )
        .await
        .unwrap()
        .status(),
        404
    );
    // Not for ordinary users, nor without the token.
    assert_eq!(carol.get("/rest/admin/users").await.status(), 403);
    assert_eq!(carol.get("/admin").await.status(), 403);
    let r = admin
        .http
        .post(admin.url("/rest/admin/users"))
        .json(&json!({"username": "eve", "password": "eve-pass-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}
