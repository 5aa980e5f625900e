//! The HTTP API of CONTRACT.md, end to end over a real socket, against the
//! SQLite default and a real PostgreSQL.

mod common;

use common::{Backend, TestServer, fixture, images};
use serde_json::{Value, json};

both_backends!(
    session_login_and_logout,
    bad_credentials_and_rate_limit,
    upload_then_serve_every_size,
    conditional_and_head_requests,
    large_renditions_leave_by_sendfile_byte_for_byte,
    the_image_fast_path_answers_like_the_router,
    unknown_sizes_ids_and_path_tricks_are_404,
    state_changes_need_the_csrf_token,
    private_photos_are_invisible_to_others,
    listing_is_newest_first_and_paginated,
    edit_and_delete,
    bad_uploads_are_refused_and_store_nothing,
    a_failed_commit_leaves_no_original,
    concurrent_misses_render_once,
    sessions_work_on_every_replica_and_logout_ends_them,
    health_and_metrics,
    visibility_changes_reach_caches,
    photos_that_cannot_be_rendered_are_refused_and_failures_remembered,
    bytes_after_the_image_are_not_stored,
    login_throttling_cannot_be_bypassed_or_turned_against_the_owner,
    a_down_database_means_503_with_retry_after,
    one_user_cannot_store_past_their_quota_even_in_parallel,
);

async fn session_login_and_logout(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut client = server.client();
    let anon = client.get_json("/rest/session").await;
    assert_eq!(anon["user"], Value::Null);
    assert!(anon["csrf"].as_str().is_some_and(|t| t.len() > 20));

    let login = client.login("admin", common::ADMIN_PASSWORD).await;
    let me: Value = login.json().await.unwrap();
    assert_eq!(me["user"], "admin");
    assert_eq!(me["admin"], true);

    // Logout without the token is refused; with it the session ends.
    let r = client
        .http
        .post(client.url("/rest/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client
        .http
        .post(client.url("/rest/logout"))
        .header("x-csrf-token", &client.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(client.get_json("/rest/session").await["user"], Value::Null);
    assert_eq!(
        client
            .upload(&[("a.jpg", fixture("landscape.jpg"))], &[])
            .await
            .status(),
        401
    );
}

async fn bad_credentials_and_rate_limit(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut client = server.client();
    let r = client.login("admin", "wrong").await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "wrong username or password");
    assert_eq!(client.login("nobody", "x").await.status(), 401);
    // Form posts work too.
    let r = client
        .http
        .post(client.url("/rest/login"))
        .form(&[("username", "admin"), ("password", common::ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Guessing one account's password soon hits the limit, and stays blocked
    // even for the right password.
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(client.login("admin", "guess").await.status().as_u16());
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let r = client.login("admin", common::ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
}

async fn upload_then_serve_every_size(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let photo = admin
        .upload_ok(
            "landscape.jpg",
            &[("title", "Lake"), ("visibility", "public")],
        )
        .await;
    let id = photo["id"].as_str().unwrap();
    let (w, h) = (
        photo["width"].as_u64().unwrap(),
        photo["height"].as_u64().unwrap(),
    );
    assert!(w > h, "landscape");
    assert_eq!(photo["urls"]["240"], format!("/img/240/{id}.jpg"));
    assert_eq!(photo["urls"]["orig"], format!("/img/orig/{id}.jpg"));
    assert_eq!(photo["title"], "Lake");

    let anonymous = server.client();
    for size in [240u64, 640] {
        let r = anonymous.get(&format!("/img/{size}/{id}.jpg")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "image/jpeg");
        assert_eq!(r.headers()["x-cache"], "miss");
        // Shared caches may keep it, but briefly: a photo made private
        // must drop out of them (see `visibility_changes_reach_caches`).
        assert_eq!(r.headers()["cache-control"], "public, max-age=60");
        let len: usize = r.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let bytes = r.bytes().await.unwrap();
        assert_eq!(bytes.len(), len);
        let img = image::load_from_memory(&bytes).unwrap();
        assert_eq!(u64::from(img.width()), size.min(w));
        let expected_h = (h as f64 * img.width() as f64 / w as f64).round() as i64;
        assert!((i64::from(img.height()) - expected_h).abs() <= 1);
        // Second request: from the cache, same bytes.
        let again = anonymous.get(&format!("/img/{size}/{id}.jpg")).await;
        assert_eq!(again.headers()["x-cache"], "hit");
        assert_eq!(again.bytes().await.unwrap(), bytes);
    }
    // Wider than the original: never upscaled.
    let big = anonymous.get(&format!("/img/2048/{id}.jpg")).await;
    let img = image::load_from_memory(&big.bytes().await.unwrap()).unwrap();
    assert_eq!(u64::from(img.width()), w.min(2048));
    // The original, byte for byte, for its owner; nobody else gets it (it
    // keeps its EXIF, location included), nor its URL.
    let orig = admin.get(&format!("/img/orig/{id}.jpg")).await;
    assert_eq!(orig.status(), 200);
    assert_eq!(orig.headers()["accept-ranges"], "bytes");
    assert_eq!(orig.headers()["cache-control"], "private, max-age=3600");
    assert_eq!(orig.bytes().await.unwrap(), fixture("landscape.jpg"));
    assert_eq!(
        anonymous.get(&format!("/img/orig/{id}.jpg")).await.status(),
        404
    );
    let seen = anonymous.get_json(&format!("/rest/photos/{id}")).await;
    assert!(seen["urls"].get("orig").is_none(), "{seen}");
    assert!(seen["urls"].get("240").is_some(), "{seen}");
}

/// Cached renditions of 32 KiB and more are written to the socket with
/// `sendfile` (from the cache file, opened, then kept open): clients get the
/// same bytes as the render, and HEAD still gets no body.
async fn large_renditions_leave_by_sendfile_byte_for_byte(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let r = admin
        .upload(
            &[("noise.jpg", images::jpeg_noise(2000, 1500))],
            &[("visibility", "public")],
        )
        .await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    let path = format!(
        "/img/1440/{}.jpg",
        body["photos"][0]["id"].as_str().unwrap()
    );
    let anonymous = server.client();
    let rendered = anonymous.get(&path).await;
    assert_eq!(rendered.headers()["x-cache"], "miss");
    let rendered = rendered.bytes().await.unwrap();
    assert!(rendered.len() > 64 * 1024, "{} bytes", rendered.len());

    let before = server.metric("photo_http_sendfile_bytes_total").await;
    // From the disk cache's file, then from the same file kept open.
    for _ in 0..2 {
        let hit = anonymous.get(&path).await;
        assert_eq!(hit.headers()["x-cache"], "hit");
        assert_eq!(
            hit.headers()["content-length"],
            rendered.len().to_string().as_str()
        );
        assert!(
            hit.bytes().await.unwrap() == rendered,
            "same bytes as the render"
        );
    }
    // All of each body but, after a partial send, a last piece under 32 KiB
    // (that one is copied). Counted after the send returns, which the
    // client may see the bytes of first: give the count a moment.
    let from_files = 2.0 * (rendered.len() - 32 * 1024) as f64;
    let mut sent = 0.0;
    for _ in 0..50 {
        sent = server.metric("photo_http_sendfile_bytes_total").await - before;
        if sent >= from_files {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        sent >= from_files,
        "both hits sent from files: {sent} bytes, {} each",
        rendered.len()
    );
    let head = anonymous
        .http
        .head(anonymous.url(&path))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        rendered.len().to_string().as_str()
    );
    assert!(head.bytes().await.unwrap().is_empty());
}

async fn conditional_and_head_requests(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let id = admin
        .upload_id("portrait.jpg", &[("visibility", "public")])
        .await;
    let path = format!("/img/640/{id}.jpg");
    let first = admin.get(&path).await;
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"'), "strong ETag: {etag}");
    let len = first.bytes().await.unwrap().len();
    let r = admin
        .http
        .get(admin.url(&path))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], etag.as_str());
    assert!(r.bytes().await.unwrap().is_empty());
    let head = admin.http.head(admin.url(&path)).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        len.to_string()
    );
    assert!(head.bytes().await.unwrap().is_empty());
    let other = admin
        .http
        .get(admin.url(&path))
        .header("if-none-match", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
}

/// `GET` and `HEAD` of `/img/...` take a fast path around the router
/// (`routes::App`); the router keeps the route. Both must answer alike.
async fn the_image_fast_path_answers_like_the_router(backend: Backend) {
    use axum::body::Body;
    use axum::http::{Method, Request};
    use tower::ServiceExt;

    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let anonymous = server.client();
    let public = admin
        .upload_id("landscape.jpg", &[("visibility", "public")])
        .await;
    let private = admin
        .upload_id("portrait.jpg", &[("visibility", "private")])
        .await;
    // Rendered once, so both ways see a cache hit.
    let warm = anonymous.get(&format!("/img/240/{public}.jpg")).await;
    let etag = warm.headers()["etag"].to_str().unwrap().to_string();
    let cases = [
        (Method::GET, format!("/img/240/{public}.jpg"), None),
        (Method::HEAD, format!("/img/240/{public}.jpg"), None),
        (Method::GET, format!("/img/orig/{public}.jpg"), None),
        (
            Method::GET,
            format!("/img/240/{public}.jpg"),
            Some(etag.clone()),
        ),
        (Method::GET, format!("/img/241/{public}.jpg"), None),
        (Method::GET, format!("/img/240/{private}.jpg"), None),
        (Method::GET, "/img/240/%2e%2e.jpg".to_string(), None),
        (Method::GET, "/img/240".to_string(), None),
        (
            Method::HEAD,
            "/img/240/aaaaaaaaaaaaaaaaaaaa.jpg".to_string(),
            None,
        ),
    ];
    for (method, path, if_none_match) in cases {
        let mut fast = anonymous.http.request(method.clone(), anonymous.url(&path));
        let mut routed = Request::builder().method(method.clone()).uri(&path);
        if let Some(tag) = &if_none_match {
            fast = fast.header("if-none-match", tag);
            routed = routed.header("if-none-match", tag);
        }
        let fast = fast.send().await.unwrap();
        let routed = photo_server::routes::router(server.state.clone())
            .oneshot(routed.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let case = format!("{method} {path} (if-none-match: {if_none_match:?})");
        assert_eq!(fast.status().as_u16(), routed.status().as_u16(), "{case}");
        for name in [
            "etag",
            "cache-control",
            "vary",
            "content-type",
            "content-length",
            "x-cache",
        ] {
            if name == "content-length" && fast.status() == 304 {
                // hyper drops it from a 304 on the wire; in process it is 0.
                continue;
            }
            assert_eq!(
                fast.headers().get(name).map(|v| v.as_bytes()),
                routed.headers().get(name).map(|v| v.as_bytes()),
                "{case}: header {name}"
            );
        }
        let fast_body = fast.bytes().await.unwrap();
        let routed_body = axum::body::to_bytes(routed.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(fast_body, routed_body, "{case}: body");
    }
    // Other methods on the image path are the router's business.
    let post = anonymous
        .http
        .post(anonymous.url(&format!("/img/240/{public}.jpg")))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    // Only private photos depend on the cookie.
    assert!(warm.headers().get("vary").is_none());
    let mine = admin.get(&format!("/img/240/{private}.jpg")).await;
    assert_eq!(mine.status(), 200);
    assert_eq!(mine.headers()["vary"], "Cookie");
    assert_eq!(mine.headers()["cache-control"], "private, max-age=3600");
}

async fn unknown_sizes_ids_and_path_tricks_are_404(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let id = admin
        .upload_id("landscape.jpg", &[("visibility", "public")])
        .await;
    let renders_before = server.metric("photo_render_duration_seconds_count").await;
    for path in [
        format!("/img/241/{id}.jpg"),
        format!("/img/0240/{id}.jpg"),
        format!("/img/99999/{id}.jpg"),
        format!("/img/240/{id}.png"),
        format!("/img/240/{id}"),
        "/img/240/aaaaaaaaaaaaaaaaaaaa.jpg".to_string(),
        "/img/240/..%2F..%2Fphotos.db.jpg".to_string(),
        "/img/240/%2e%2e.jpg".to_string(),
        "/img/orig/..%2Fsession.key".to_string(),
        format!("/img/240/{}.jpg", id.to_uppercase()),
        "/rest/photos/..%2F..%2Fetc%2Fpasswd".to_string(),
    ] {
        let r = admin.get(&path).await;
        assert_eq!(r.status(), 404, "{path}");
    }
    assert_eq!(
        server.metric("photo_render_duration_seconds_count").await,
        renders_before,
        "no render for a refused request"
    );
}

async fn state_changes_need_the_csrf_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut admin = server.admin().await;
    let id = admin.upload_id("landscape.jpg", &[]).await;
    let good = admin.csrf.clone();
    for token in ["", "forged", &good[..good.len() - 2]] {
        admin.csrf = token.to_string();
        assert_eq!(
            admin
                .upload(&[("a.jpg", fixture("landscape.jpg"))], &[])
                .await
                .status(),
            403
        );
        assert_eq!(
            admin
                .patch(&format!("/rest/photos/{id}"), json!({"title": "x"}))
                .await
                .status(),
            403
        );
        assert_eq!(
            admin.delete(&format!("/rest/photos/{id}")).await.status(),
            403
        );
    }
    admin.csrf = good;
    let photo = admin.get_json(&format!("/rest/photos/{id}")).await;
    assert_eq!(photo["title"], "", "nothing changed");
    let list = admin.get_json("/rest/photos").await;
    assert_eq!(
        list["photos"].as_array().unwrap().len(),
        1,
        "nothing stored"
    );
    // The token may also come as a form field (HTML forms).
    let form = reqwest::multipart::Form::new()
        .text("csrf", admin.csrf.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(fixture("portrait.jpg")).file_name("p.jpg"),
        );
    let r = admin
        .http
        .post(admin.url("/rest/edit"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

async fn private_photos_are_invisible_to_others(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let id = alice
        .upload_id("landscape.jpg", &[("title", "secret")])
        .await;
    assert_eq!(alice.get(&format!("/img/240/{id}.jpg")).await.status(), 200);
    assert_eq!(
        alice.get(&format!("/img/240/{id}.jpg")).await.headers()["cache-control"],
        "private, max-age=3600"
    );
    for client in [&bob, &server.client()] {
        for path in [
            format!("/img/240/{id}.jpg"),
            format!("/img/orig/{id}.jpg"),
            format!("/rest/photos/{id}"),
        ] {
            assert_eq!(client.get(&path).await.status(), 404, "{path}");
        }
        let list = client.get_json("/rest/photos").await;
        assert!(list["photos"].as_array().unwrap().is_empty());
    }
    assert_eq!(
        bob.patch(&format!("/rest/photos/{id}"), json!({"title": "mine"}))
            .await
            .status(),
        404
    );
    assert_eq!(
        bob.delete(&format!("/rest/photos/{id}")).await.status(),
        404
    );
    // The admin moderates and sees it.
    let admin = server.admin().await;
    assert_eq!(admin.get(&format!("/rest/photos/{id}")).await.status(), 200);
    // Made public, everyone sees it; others still cannot edit it.
    let r = alice
        .patch(
            &format!("/rest/photos/{id}"),
            json!({"visibility": "public"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        server
            .client()
            .get(&format!("/img/240/{id}.jpg"))
            .await
            .status(),
        200
    );
    assert_eq!(
        bob.patch(&format!("/rest/photos/{id}"), json!({"title": "mine"}))
            .await
            .status(),
        403
    );
    assert_eq!(
        bob.delete(&format!("/rest/photos/{id}")).await.status(),
        403
    );
}

async fn listing_is_newest_first_and_paginated(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let p = admin
            .upload_ok(
                "landscape.jpg",
                &[("title", &format!("n{n}")), ("visibility", "public")],
            )
            .await;
        ids.push(p["id"].as_str().unwrap().to_string());
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let anonymous = server.client();
    loop {
        let path = match &cursor {
            Some(c) => format!("/rest/photos?limit=2&cursor={c}"),
            None => "/rest/photos?limit=2".to_string(),
        };
        let page = anonymous.get_json(&path).await;
        let photos = page["photos"].as_array().unwrap();
        assert!(photos.len() <= 2);
        seen.extend(photos.iter().map(|p| p["id"].as_str().unwrap().to_string()));
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ids, "newest first, each photo exactly once");
    for bad in [
        "/rest/photos?limit=0",
        "/rest/photos?limit=101",
        "/rest/photos?limit=x",
        "/rest/photos?cursor=garbage",
    ] {
        let r = anonymous.get(bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].is_string());
    }
}

async fn edit_and_delete(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let id = admin
        .upload_id("landscape.jpg", &[("visibility", "public")])
        .await;
    let path = format!("/rest/photos/{id}");
    let r = admin
        .patch(
            &path,
            json!({"title": "  Sunset  ", "description": "<b>by the lake</b>"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["title"], "Sunset");
    assert_eq!(p["description"], "<b>by the lake</b>");
    for (body, status) in [
        (json!({}), 400),
        (json!({"visibility": "secret"}), 422),
        (json!({"owner": "bob"}), 422),
        (json!({"title": "x".repeat(201)}), 422),
    ] {
        assert_eq!(
            admin.patch(&path, body.clone()).await.status(),
            status,
            "{body}"
        );
    }
    assert_eq!(
        admin.get_json(&path).await["title"],
        "Sunset",
        "refused edits change nothing"
    );
    // Warm the cache, then delete: every trace goes.
    assert_eq!(admin.get(&format!("/img/240/{id}.jpg")).await.status(), 200);
    assert_eq!(admin.delete(&path).await.status(), 204);
    assert_eq!(admin.get(&path).await.status(), 404);
    assert_eq!(admin.get(&format!("/img/240/{id}.jpg")).await.status(), 404);
    assert_eq!(admin.delete(&path).await.status(), 404);
    let original = server
        .state
        .originals
        .path(&id, photo_server::render::Format::Jpeg);
    assert!(!original.exists());
}

/// Every file the originals store holds (excluding the spool directory).
fn stored_originals(server: &TestServer) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let root = server.state.originals.dir().to_path_buf();
    for shard in std::fs::read_dir(&root).unwrap().flatten() {
        if shard.file_name() == ".incoming" {
            assert_eq!(
                std::fs::read_dir(shard.path()).unwrap().count(),
                0,
                "no spool file left behind"
            );
            continue;
        }
        for f in std::fs::read_dir(shard.path()).unwrap().flatten() {
            out.push(f.path());
        }
    }
    out
}

async fn bad_uploads_are_refused_and_store_nothing(backend: Backend) {
    let server = TestServer::start_with(backend, |c| c.max_upload_bytes = 400_000).await;
    let admin = server.admin().await;
    let big = vec![0xFFu8; 500_000];
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "not-an-image.jpg",
            fixture("not-an-image.jpg"),
            415,
            "not a JPEG, PNG or WebP",
        ),
        (
            "truncated.jpg",
            fixture("truncated.jpg"),
            422,
            "corrupt or truncated",
        ),
        ("bomb.png", fixture("bomb.png"), 422, "too many pixels"),
        ("bomb.jpg", fixture("bomb.jpg"), 422, "too many pixels"),
        ("empty.jpg", Vec::new(), 400, "empty"),
        ("huge.jpg", big, 413, "limit"),
    ];
    for (name, bytes, status, message) in cases {
        let r = admin.upload(&[(name, bytes)], &[]).await;
        assert_eq!(r.status(), status, "{name}");
        let body: Value = r.json().await.unwrap();
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(message), "{name}: {error}");
        // One bad file in a batch refuses the whole batch.
    }
    let r = admin
        .upload(
            &[
                ("good.jpg", fixture("landscape.jpg")),
                ("bad.jpg", fixture("truncated.jpg")),
            ],
            &[],
        )
        .await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().starts_with("bad.jpg:"),
        "{body}"
    );
    let r = admin
        .upload(
            &[("a.jpg", fixture("landscape.jpg"))],
            &[("visibility", "everyone")],
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = admin.upload(&[], &[("title", "no file")]).await;
    assert_eq!(r.status(), 400);
    assert!(stored_originals(&server).is_empty());
    assert!(
        admin.get_json("/rest/photos").await["photos"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // PNG, WebP, grayscale and CMYK are fine.
    for name in ["photo.png", "photo.webp", "gray.jpg", "cmyk.jpg"] {
        let p = admin.upload_ok(name, &[]).await;
        let r = admin
            .get(&format!("/img/240/{}.jpg", p["id"].as_str().unwrap()))
            .await;
        assert_eq!(r.status(), 200, "{name}");
        assert!(image::load_from_memory(&r.bytes().await.unwrap()).is_ok());
    }
}

/// Fault injection in the database itself: a trigger makes the row insert
/// fail after the originals were written. The originals must be removed
/// again, and a retry must succeed.
/// Runs statements on the server's own database (triggers that inject
/// failures).
async fn execute(server: &TestServer, statements: &[&str]) {
    for sql in statements {
        sqlx::query(sql)
            .execute(server.state.db.pool().unwrap())
            .await
            .unwrap();
    }
}

/// COMMIT itself fails (a deferred constraint, checked only then): the
/// server cannot tell from the error whether the rows went in, asks the
/// database, finds them absent, and removes the originals. (An error after
/// the database committed, the connection lost, finds them present and
/// keeps the originals: a row never loses its file.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_commit_fails_asks_the_database_before_removing_originals() {
    let server = TestServer::start(Backend::Postgres).await;
    let admin = server.admin().await;
    execute(
        &server,
        &[
            "CREATE FUNCTION fail_commit() RETURNS trigger AS $$ BEGIN \
             IF NEW.title = 'at-commit' THEN RAISE EXCEPTION 'injected failure at commit'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE CONSTRAINT TRIGGER fail_commit AFTER INSERT ON photos \
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_commit()",
        ],
    )
    .await;
    let r = admin
        .upload(
            &[("a.jpg", fixture("landscape.jpg"))],
            &[("title", "at-commit")],
        )
        .await;
    assert_eq!(r.status(), 500);
    assert!(
        stored_originals(&server).is_empty(),
        "the rows are not there: originals removed"
    );
    // The same upload without the failure goes through.
    let r = admin
        .upload(&[("a.jpg", fixture("landscape.jpg"))], &[("title", "fine")])
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(stored_originals(&server).len(), 1);
}

async fn a_failed_commit_leaves_no_original(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let trigger = match backend {
        Backend::Sqlite => vec![
            "CREATE TRIGGER fail_insert BEFORE INSERT ON photos WHEN NEW.title = 'boom' \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
        ],
        Backend::Postgres => vec![
            "CREATE FUNCTION fail_insert() RETURNS trigger AS $$ BEGIN \
             IF NEW.title = 'boom' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER fail_insert BEFORE INSERT ON photos FOR EACH ROW EXECUTE FUNCTION fail_insert()",
        ],
    };
    execute(&server, &trigger).await;
    let r = admin
        .upload(
            &[
                ("a.jpg", fixture("landscape.jpg")),
                ("b.jpg", fixture("portrait.jpg")),
            ],
            &[("title", "boom")],
        )
        .await;
    assert_eq!(r.status(), 500);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "internal error", "no internals leak");
    assert!(
        stored_originals(&server).is_empty(),
        "originals of the failed upload removed"
    );
    assert!(
        admin.get_json("/rest/photos").await["photos"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The client retries (here with another title) and it works.
    let p = admin
        .upload_ok("landscape.jpg", &[("title", "retry")])
        .await;
    assert_eq!(stored_originals(&server).len(), 1);
    assert_eq!(
        admin
            .get(&format!("/img/240/{}.jpg", p["id"].as_str().unwrap()))
            .await
            .status(),
        200
    );
}

async fn concurrent_misses_render_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let id = admin
        .upload_id("landscape.jpg", &[("visibility", "public")])
        .await;
    let before = server.metric("photo_render_duration_seconds_count").await;
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let http = admin.http.clone();
        let url = admin.url(&format!("/img/1440/{id}.jpg"));
        tasks.push(tokio::spawn(async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap())
        }));
    }
    let mut bodies = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200);
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    let after = server.metric("photo_render_duration_seconds_count").await;
    assert_eq!(after - before, 1.0, "24 concurrent requests, one render");
}

async fn sessions_work_on_every_replica_and_logout_ends_them(backend: Backend) {
    let server =
        TestServer::start_with(backend, |c| c.metadata_ttl = std::time::Duration::ZERO).await;
    let replica = server.replica(|_| {}).await;
    let mut alice = server.user("alice").await;
    let id = alice.upload_id("landscape.jpg", &[]).await;
    // Same cookie jar, other replica: the session and the CSRF token hold.
    assert!(alice.session.is_some());
    alice.base = replica.url.clone();
    assert_eq!(alice.get_json("/rest/session").await["user"], "alice");
    assert_eq!(alice.get(&format!("/img/240/{id}.jpg")).await.status(), 200);
    let r = alice
        .patch(
            &format!("/rest/photos/{id}"),
            json!({"title": "from the replica"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    // Logging out on the first replica ends the session on the other.
    alice.base = server.url.clone();
    let r = alice
        .http
        .post(alice.url("/rest/logout"))
        .header("x-csrf-token", &alice.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The cookie jar dropped the cookie; replay it by hand, as a thief of the
    // cookie would, against the other replica.
    let stolen = format!("photo_session={}", alice.session.clone().unwrap());
    let thief = reqwest::Client::new();
    let session: Value = thief
        .get(format!("{}/rest/session", replica.url))
        .header("cookie", &stolen)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["user"], Value::Null);
    let image = thief
        .get(format!("{}/img/240/{id}.jpg", replica.url))
        .header("cookie", &stolen)
        .send()
        .await
        .unwrap();
    assert_eq!(image.status(), 404);
}

async fn health_and_metrics(backend: Backend) {
    let server = TestServer::start(backend).await;
    let client = server.client();
    assert_eq!(client.get("/healthz").await.status(), 200);
    let ready = client.get_json("/readyz").await;
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["database"], "ok");
    let admin = server.admin().await;
    let id = admin
        .upload_id("landscape.jpg", &[("visibility", "public")])
        .await;
    admin.get(&format!("/img/240/{id}.jpg")).await;
    admin.get(&format!("/img/240/{id}.jpg")).await;
    let text = client.get("/metrics").await.text().await.unwrap();
    for needle in [
        "photo_http_requests_total{route=\"/img/{size}/{file}\",method=\"GET\",status=\"200\"} 2",
        "photo_http_request_duration_seconds_bucket",
        "photo_cache_hits_total 1",
        "photo_cache_misses_total 1",
        "photo_render_duration_seconds_count{size=\"240\"} 1",
        "photo_uploads_total{outcome=\"stored\"} 1",
        "photo_renders_in_flight 0",
        "photo_cache_bytes",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    // Shutting down: readiness fails first.
    server.state.begin_shutdown();
    assert_eq!(client.get("/readyz").await.status(), 503);
    assert_eq!(client.get("/healthz").await.status(), 200);
}

/// Many pods of a new site start at the same moment against one empty
/// database: one migrates (under sqlx's advisory lock), the others wait, and
/// all of them create or find the same admin account.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_replicas_start_at_once_on_one_new_database() {
    let url = common::postgres::Postgres::shared().fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let mut starts = Vec::new();
    for n in 0..6 {
        let mut config = photo_server::Config::for_tests(&dir.path().join(format!("pod{n}")));
        config.database_url = Some(url.clone());
        config.originals_dir = Some(dir.path().join("originals"));
        starts.push(tokio::spawn(async move {
            let state = photo_server::start(config).await?;
            state.db.ready().await;
            Ok::<_, photo_server::StartError>(state)
        }));
    }
    let mut states = Vec::new();
    for s in starts {
        states.push(s.await.unwrap().expect("every replica starts"));
    }
    let users = states[0].db.list_users().await.unwrap();
    assert_eq!(users.len(), 1);
    assert!(users[0].is_admin);
    let migrations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(states[0].db.pool().unwrap())
        .await
        .unwrap();
    assert_eq!(migrations, 1, "applied once");
}

/// A photo made private must drop out of browsers and shared caches: public
/// renditions are cached briefly (not `immutable`), and their ETag changes,
/// so a copy cached while public is never confirmed fresh once private.
async fn visibility_changes_reach_caches(backend: Backend) {
    let server =
        TestServer::start_with(backend, |c| c.metadata_ttl = std::time::Duration::ZERO).await;
    let admin = server.admin().await;
    let id = admin
        .upload_id("landscape.jpg", &[("visibility", "public")])
        .await;
    let path = format!("/img/640/{id}.jpg");
    let public = server.client().get(&path).await;
    assert_eq!(public.headers()["cache-control"], "public, max-age=60");
    let etag = public.headers()["etag"].to_str().unwrap().to_string();
    let r = admin
        .patch(
            &format!("/rest/photos/{id}"),
            json!({"visibility": "private"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    // A CDN revalidating (no cookie) learns it is gone.
    let cdn = server
        .client()
        .http
        .get(server.client().url(&path))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cdn.status(), 404);
    // The owner's browser gets the private copy, not a 304 for the public one.
    let owner = admin
        .http
        .get(admin.url(&path))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(owner.status(), 200);
    assert_ne!(owner.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(owner.headers()["cache-control"], "private, max-age=3600");
}

/// A photo no rendition can be made of (JPEG sides stop at 65535 pixels) is
/// refused at upload; one already stored fails once and is then remembered
/// instead of being decoded again on every request.
async fn photos_that_cannot_be_rendered_are_refused_and_failures_remembered(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let tall = common::images::png(20, 100_000, &[]);
    let r = admin.upload(&[("tall.png", tall.clone())], &[]).await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("cannot be rendered"), "{error}");
    assert!(stored_originals(&server).is_empty());

    // One that got in before this check: stored behind the server's back.
    let id = admin
        .upload_id("landscape.jpg", &[("visibility", "public")])
        .await;
    let path = server
        .state
        .originals
        .path(&id, photo_server::render::Format::Jpeg);
    std::fs::write(&path, &common::images::jpeg_progressive(16, 16)[..40]).unwrap();
    for _ in 0..5 {
        let r = server.client().get(&format!("/img/240/{id}.jpg")).await;
        assert_eq!(r.status(), 422);
    }
    assert_eq!(server.metric("photo_render_failures_total").await, 1.0);
    // Other photos render meanwhile.
    let fine = admin
        .upload_id("portrait.jpg", &[("visibility", "public")])
        .await;
    assert_eq!(
        server
            .client()
            .get(&format!("/img/240/{fine}.jpg"))
            .await
            .status(),
        200
    );
}

/// Bytes appended after a JPEG's end marker (or a PNG's IEND) are cut off
/// at upload: the stored original is the image alone.
async fn bytes_after_the_image_are_not_stored(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    for name in ["landscape.jpg", "photo.png"] {
        let clean = fixture(name);
        let mut padded = clean.clone();
        padded.extend_from_slice(b"<?php system($_GET['c']); ?> and a zip archive, too");
        let r = admin.upload(&[(name, padded)], &[]).await;
        assert_eq!(r.status(), 201, "{name}");
        let body: Value = r.json().await.unwrap();
        let photo = &body["photos"][0];
        assert_eq!(photo["bytes"].as_u64(), Some(clean.len() as u64), "{name}");
        let id = photo["id"].as_str().unwrap();
        let stored = admin.get(&format!("/img/orig/{id}.jpg")).await;
        assert_eq!(stored.bytes().await.unwrap(), clean, "{name}");
    }
}

/// Login throttling, with the server behind a trusted proxy (the loopback
/// test client): the client is the right-most untrusted `X-Forwarded-For`
/// address, attempts are counted before the password check, and guessing
/// from many addresses slows an account without locking its owner out.
async fn login_throttling_cannot_be_bypassed_or_turned_against_the_owner(backend: Backend) {
    let server = TestServer::start_with(backend, |c| c.password_checks = 64).await;
    let http = reqwest::Client::new();
    let url = format!("{}/rest/login", server.url);
    let attempt = |forwarded: String, password: &'static str| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            http.post(url)
                .header("x-forwarded-for", forwarded)
                .json(&json!({"username": "admin", "password": password}))
                .send()
                .await
                .unwrap()
        }
    };
    // Rotating the left of X-Forwarded-For does not make a new client.
    let mut statuses = Vec::new();
    for n in 0..8 {
        let r = attempt(format!("10.9.9.{n}, 203.0.113.1"), "guess").await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert_eq!(&statuses[5..], &[429; 3], "{statuses:?}");
    // 60 concurrent guesses from one client: counted before checking, so at
    // most 5 are checked.
    let burst = (0..60).map(|_| attempt("203.0.113.2".into(), "guess"));
    let responses = futures_util::future::join_all(burst).await;
    let checked = responses.iter().filter(|r| r.status() == 401).count();
    assert!(checked <= 5, "{checked} guesses were checked");
    assert!(
        responses
            .iter()
            .all(|r| [401, 429].contains(&r.status().as_u16()))
    );
    // The owner, from their own address, gets in: at worst after a short wait
    // (the account has seen 10 guesses), never locked out.
    let owner_gets_in = |from: &'static str| {
        let attempt = &attempt;
        async move {
            let r = attempt(from.into(), common::ADMIN_PASSWORD).await;
            if r.status() != 429 {
                return r.status();
            }
            let wait: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(wait <= 30, "the owner must wait {wait} s");
            tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
            attempt(from.into(), common::ADMIN_PASSWORD).await.status()
        }
    };
    assert_eq!(owner_gets_in("198.51.100.7").await, 200);
    // Guesses from many addresses: after 10, each must wait a little.
    let mut waits = Vec::new();
    for n in 0..14 {
        let r = attempt(format!("192.0.2.{n}"), "guess").await;
        if r.status() == 429 {
            let wait: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            waits.push(wait);
        }
    }
    assert_eq!(waits.len(), 4, "the 11th to 14th guesses wait");
    assert!(waits.iter().all(|&w| w <= 30), "{waits:?}");
    assert_eq!(owner_gets_in("198.51.100.8").await, 200);
}

/// With the database gone, requests that need it get 503 with Retry-After,
/// never 500; cached image hits keep being served; the pod stays ready for
/// the outage grace (a restart or failover hits every replica at once), then
/// reports not ready.
async fn a_down_database_means_503_with_retry_after(backend: Backend) {
    let grace = std::time::Duration::from_millis(700);
    let server = TestServer::start_with(backend, |c| {
        c.metadata_ttl = std::time::Duration::from_millis(100);
        c.db_outage_grace = grace;
    })
    .await;
    let admin = server.admin().await;
    let id = admin
        .upload_id("landscape.jpg", &[("visibility", "public")])
        .await;
    let path = format!("/img/240/{id}.jpg");
    assert_eq!(server.client().get(&path).await.status(), 200);
    server.state.db.close().await;
    let anonymous = server.client();
    let ready = anonymous.get("/readyz").await;
    // The outage is counted from this first failed check, made before now.
    let outage = std::time::Instant::now();
    assert_eq!(ready.status(), 200, "ready within the outage grace");
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["database"], "error");
    for path in ["/rest/photos", "/"] {
        let r = anonymous.get(path).await;
        assert_eq!(r.status(), 503, "{path}");
        assert!(r.headers().contains_key("retry-after"), "{path}");
    }
    let r = admin
        .upload(&[("a.jpg", fixture("landscape.jpg"))], &[])
        .await;
    assert_eq!(r.status(), 503);
    tokio::time::sleep(
        grace.saturating_sub(outage.elapsed()) + std::time::Duration::from_millis(50),
    )
    .await;
    assert_eq!(
        anonymous.get("/readyz").await.status(),
        503,
        "not ready once the outage outlasts the grace"
    );
    // A cached hit needs no database, even past the metadata TTL: the
    // last known metadata stands in while the database is unreachable.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(anonymous.get(&path).await.status(), 200);
    // A photo it has never looked up is a 503, not a 404.
    let unknown = anonymous.get("/img/240/aaaaaaaaaaaaaaaaaaaa.jpg").await;
    assert_eq!(unknown.status(), 503);
}

/// `PHOTO_USER_QUOTA_BYTES`: one user fills their quota, not the volume. A file past it is
/// refused with 413 naming the quota and nothing of it is kept; uploads sent at once cannot
/// pass it together; editing still works; other users and admins are not held back; the
/// admin API says who stores what.
async fn one_user_cannot_store_past_their_quota_even_in_parallel(backend: Backend) {
    let photo = images::jpeg_noise(600, 400); // about 480 KB
    let size = photo.len() as u64;
    let quota = size * 5 / 2; // room for two
    let server = TestServer::start_with(backend, |c| c.user_quota_bytes = quota).await;
    let user = server.user("filler").await;
    let originals = server.state.config.originals_dir();
    let count = || {
        walk(&originals)
            .into_iter()
            .filter(|p| !p.to_string_lossy().contains(".incoming"))
            .count()
    };
    let first = user.upload(&[("a.jpg", photo.clone())], &[]).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let id = first["photos"][0]["id"].as_str().unwrap().to_string();
    let stored = count();

    // Four uploads at once, room for one more: one goes in, three are refused.
    let files: Vec<[(&str, Vec<u8>); 1]> = ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]
        .into_iter()
        .map(|name| [(name, photo.clone())])
        .collect();
    let uploads = files.iter().map(|f| user.upload(f, &[]));
    let answers = futures_util::future::join_all(uploads).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort();
    assert_eq!(statuses, vec![201, 413, 413, 413]);
    for r in answers {
        if r.status() == 413 {
            let body: Value = r.json().await.unwrap();
            let message = body["error"].as_str().unwrap();
            assert!(message.contains("storage quota"), "{message}");
        }
    }
    assert_eq!(count(), stored + 1, "refused uploads left originals behind");

    // Full: refused, but editing a photo still works.
    let full = user.upload(&[("x.jpg", photo.clone())], &[]).await;
    assert_eq!(full.status(), 413);
    let edited = user
        .patch(
            &format!("/rest/photos/{id}"),
            json!({"title": "still editable"}),
        )
        .await;
    assert_eq!(edited.status(), 200);
    // Someone else, and the admin, upload as usual.
    let other = server.user("other").await;
    assert_eq!(
        other
            .upload(&[("o.jpg", photo.clone())], &[])
            .await
            .status(),
        201
    );
    let admin = server.admin().await;
    for n in 0..3 {
        let r = admin
            .upload(&[(&format!("admin{n}.jpg"), photo.clone())], &[])
            .await;
        assert_eq!(r.status(), 201, "admins are not limited");
    }
    let listing = admin.get_json("/rest/admin/users").await;
    let filler = listing["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "filler")
        .unwrap()
        .clone();
    assert_eq!(filler["storage"]["photos"], 2);
    assert_eq!(filler["storage"]["bytes"], json!(size * 2));
    assert_eq!(filler["quota"], json!(quota));
    let admin_row = listing["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "admin")
        .unwrap()
        .clone();
    assert_eq!(admin_row["quota"], Value::Null);
    // Deleting makes room again.
    assert_eq!(
        user.delete(&format!("/rest/photos/{id}")).await.status(),
        204
    );
    assert_eq!(
        user.upload(&[("again.jpg", photo)], &[]).await.status(),
        201
    );
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}
