//! The failure drills: overload, a lost or full cache, and a graceful
//! shutdown of the real binary.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, TestServer};
use image::{ImageEncoder, RgbImage};

both_backends!(
    overload_answers_503_at_once_and_cached_hits_keep_working,
    a_lost_or_unwritable_cache_only_means_rendering_on_the_fly,
    the_cache_stays_under_its_cap,
);

/// A detailed 3-megapixel JPEG made here (noise compresses badly and decodes
/// slowly), so that renders take long enough to pile up.
fn big_jpeg() -> Vec<u8> {
    let (w, h) = (2000, 1500);
    let img = RgbImage::from_fn(w, h, |x, y| {
        let v = x
            .wrapping_mul(2654435761)
            .wrapping_add(y.wrapping_mul(40503));
        image::Rgb([(v >> 3) as u8, (v >> 11) as u8, (v >> 19) as u8])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

async fn overload_answers_503_at_once_and_cached_hits_keep_working(backend: Backend) {
    let server = TestServer::start_with(backend, |c| {
        c.render_threads = 1;
        c.render_queue = 0;
        c.max_upload_bytes = 200 << 20;
    })
    .await;
    let admin = server.admin().await;
    let small = admin
        .upload_ok("landscape.jpg", &[("visibility", "public")])
        .await;
    let cached = format!("/img/240/{}.jpg", small["id"].as_str().unwrap());
    assert_eq!(admin.get(&cached).await.status(), 200);
    let mut ids = Vec::new();
    let big = big_jpeg();
    for _ in 0..6 {
        let r = admin
            .upload(&[("big.jpg", big.clone())], &[("visibility", "public")])
            .await;
        assert_eq!(r.status(), 201);
        let body: serde_json::Value = r.json().await.unwrap();
        ids.push(body["photos"][0]["id"].as_str().unwrap().to_string());
    }
    let mut tasks = Vec::new();
    for id in &ids {
        let http = admin.http.clone();
        let url = admin.url(&format!("/img/2048/{id}.jpg"));
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            let r = http.get(url).send().await.unwrap();
            let retry = r.headers().get("retry-after").is_some();
            (r.status().as_u16(), retry, start.elapsed())
        }));
    }
    // While the renderer is saturated, a cached rendition is still served.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(admin.get(&cached).await.status(), 200);
    let mut ok = 0;
    let mut refused = 0;
    for t in tasks {
        let (status, retry, elapsed) = t.await.unwrap();
        match status {
            200 => ok += 1,
            503 => {
                refused += 1;
                assert!(retry, "503 carries Retry-After");
                assert!(
                    elapsed < Duration::from_secs(2),
                    "refused at once, not queued: {elapsed:?}"
                );
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok >= 1, "at least one render ran");
    assert!(refused >= 1, "a full queue refuses");
    assert!(server.metric("photo_renders_rejected_total").await >= 1.0);
    // Once the spike is over, everything renders again.
    for id in &ids {
        assert_eq!(
            admin.get(&format!("/img/2048/{id}.jpg")).await.status(),
            200
        );
    }
}

async fn a_lost_or_unwritable_cache_only_means_rendering_on_the_fly(backend: Backend) {
    let server = TestServer::start_with(backend, |c| c.memory_cache_bytes = 0).await;
    let admin = server.admin().await;
    let id = admin
        .upload_id("landscape.jpg", &[("visibility", "public")])
        .await;
    assert_eq!(
        admin.get(&format!("/img/240/{id}.jpg")).await.headers()["x-cache"],
        "miss"
    );
    assert_eq!(
        admin.get(&format!("/img/240/{id}.jpg")).await.headers()["x-cache"],
        "hit"
    );
    // The cache directory vanishes, and a file stands where it was: every
    // write fails from now on.
    let cache_dir = server.state.renditions.cache().dir().to_path_buf();
    std::fs::remove_dir_all(&cache_dir).unwrap();
    std::fs::write(&cache_dir, b"not a directory").unwrap();
    for size in [240, 640, 240] {
        let r = admin.get(&format!("/img/{size}/{id}.jpg")).await;
        assert_eq!(r.status(), 200, "{size}");
        assert!(image::load_from_memory(&r.bytes().await.unwrap()).is_ok());
    }
    assert!(!server.state.renditions.cache().writable());
    let ready: serde_json::Value = admin.get_json("/readyz").await;
    assert_eq!(
        ready["ready"], true,
        "a broken cache does not take the pod out"
    );
    assert_eq!(ready["cache"], "degraded");
    assert!(server.metric("photo_cache_write_errors_total").await >= 1.0);
}

async fn the_cache_stays_under_its_cap(backend: Backend) {
    let cap = 40_000;
    let server = TestServer::start_with(backend, |c| {
        c.cache_max_bytes = cap;
        c.memory_cache_bytes = 0;
    })
    .await;
    let admin = server.admin().await;
    let mut ids = Vec::new();
    for name in [
        "landscape.jpg",
        "portrait.jpg",
        "photo.png",
        "photo.webp",
        "gray.jpg",
    ] {
        ids.push(admin.upload_id(name, &[("visibility", "public")]).await);
    }
    for id in &ids {
        for size in [240, 640] {
            assert_eq!(
                admin.get(&format!("/img/{size}/{id}.jpg")).await.status(),
                200
            );
        }
    }
    let mut on_disk = 0;
    let mut stack = vec![server.state.renditions.cache().dir().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                on_disk += meta.len();
            }
        }
    }
    assert!(on_disk <= cap, "{on_disk} bytes on disk, cap {cap}");
    assert!(on_disk > 0);
    assert!(server.metric("photo_cache_evictions_total").await >= 1.0);
}

/// Waits until the server's handlers (and its SIGTERM handler) are running.
async fn wait_ready(base: &str) {
    let started = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await
            && r.status() == 200
        {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The README's first command, as a process: it starts with no setup,
/// prints the admin password once, and on SIGTERM fails readiness before it
/// stops, then exits cleanly.
#[test]
fn the_binary_starts_with_no_setup_and_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_photo-server"))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PHOTO_LISTEN", format!("127.0.0.1:{port}"))
        .env("PHOTO_SHUTDOWN_DELAY", "1s")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    // The database is reached in the background: the password may come
    // before or after the listening line.
    let mut password = None;
    let mut listening = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(p) = line.trim().strip_prefix("password: ") {
            password = Some(p.to_string());
        }
        listening |= line.contains("listening on");
        if listening && password.is_some() {
            break;
        }
    }
    let password = password.expect("a generated admin password is printed");
    assert!(
        dir.path().join("data/photos.db").exists(),
        "SQLite under ./data"
    );
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let login = http
            .post(format!("{base}/rest/login"))
            .json(&serde_json::json!({"username": "admin", "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 200);
        assert_eq!(
            http.get(format!("{base}/readyz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        // SAFETY: kill with a valid pid of our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = http.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(r.status(), 503, "readiness fails first");
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    // The second start finds the admin and prints no password.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut second = Command::new(env!("CARGO_BIN_EXE_photo-server"))
        .current_dir(dir.path())
        .env("PHOTO_LISTEN", format!("127.0.0.1:{port}"))
        .env("PHOTO_SHUTDOWN_DELAY", "0s")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = second.id();
    let stdout = second.stdout.take().unwrap();
    // Ready means the admin account was dealt with; then stop and read all
    // it printed.
    rt.block_on(wait_ready(&format!("http://127.0.0.1:{port}")));
    // SAFETY: as above.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    assert!(second.wait().unwrap().success());
    let printed: Vec<String> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .collect();
    assert!(
        printed.iter().any(|l| l.contains("listening on")),
        "{printed:?}"
    );
    assert!(
        !printed.iter().any(|l| l.contains("password:")),
        "the password is shown only once: {printed:?}"
    );
}

/// A replica that starts before its database (in a cluster: pods scheduled
/// before CloudNativePG accepts connections) does not exit: it listens,
/// reports not-ready, retries, and becomes ready once the database is there,
/// without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_before_its_database_waits_for_it() {
    let postgres = common::postgres::Postgres::shared();
    let name = format!("late_{}", photo_server::ids::new_id());
    let mut server =
        common::process::ServerProcess::spawn(&[("DATABASE_URL", &postgres.url(&name))]);
    let ops = server.ops_url.clone();
    let http = reqwest::Client::new();
    let started = Instant::now();
    let ready: serde_json::Value = loop {
        if let Ok(r) = http.get(format!("{ops}/readyz")).send().await {
            assert_eq!(r.status(), 503);
            break r.json().await.unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ready["database"], "connecting");
    assert_eq!(
        http.get(format!("{ops}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Requests that need the database are told to come back.
    let r = http
        .get(format!("{}/rest/photos", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(server.is_running(), "the server exited while waiting");
    postgres.create_database(&name);
    let created = Instant::now();
    server.wait_ready().await;
    report_wait(created.elapsed());
    let mut admin = common::Client::new(&server.url);
    assert_eq!(
        admin
            .login("admin", common::process::PASSWORD)
            .await
            .status(),
        200
    );
}

fn report_wait(elapsed: Duration) {
    common::process::report(
        "ready after the database appeared",
        format!(
            "{:.1} s (retry backoff capped at 5 s)",
            elapsed.as_secs_f64()
        ),
    );
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs (scripts/test-all.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a certificate for `localhost` signed by it, and another CA.
fn certificates(dir: &std::path::Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    for ca in ["ca", "other-ca"] {
        let (key, crt) = (format!("{ca}.key"), format!("{ca}.crt"));
        let mut args = vec!["req", "-x509", "-days", "2", "-subj", "/CN=test CA"];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &crt]);
        openssl(dir, &args);
    }
    let mut args = vec![
        "req",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ];
    args.extend(ec);
    openssl(dir, &args);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    );
}

/// What the operator configures for a CloudNativePG database
/// (`PGSSLMODE=verify-full`, `PGSSLROOTCERT` = the cluster's CA) makes the
/// server verify the database's certificate: it connects to a server whose
/// certificate that CA signed, and refuses (staying not-ready, saying why)
/// one it did not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_connection_verifies_the_server_certificate() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let postgres = common::postgres::Postgres::start_tls(
        &certs.path().join("server.crt"),
        &certs.path().join("server.key"),
    );
    postgres.create_database("photos");
    let url = format!("postgres://postgres@localhost:{}/photos", postgres.port());
    let root = |name: &str| certs.path().join(name).display().to_string();
    let verified = common::process::ServerProcess::start(&[
        ("DATABASE_URL", &url),
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", &root("ca.crt")),
    ])
    .await;
    let mut admin = common::Client::new(&verified.url);
    assert_eq!(
        admin
            .login("admin", common::process::PASSWORD)
            .await
            .status(),
        200
    );
    drop(verified);

    let mut impostor = common::process::ServerProcess::spawn(&[
        ("DATABASE_URL", &url),
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", &root("other-ca.crt")),
    ]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(impostor.is_running());
    let ready = reqwest::get(format!("{}/readyz", impostor.ops_url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let log = impostor.log();
    assert!(
        log.to_lowercase().contains("certificate"),
        "the log should say why: {log}"
    );
}
