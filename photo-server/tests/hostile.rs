//! Hostile clients: each test reproduces an attack that used to take a
//! server down or past its pod's memory limit, and asserts the bounded
//! outcome (status, memory or descriptors below a stated bound, other users
//! still served). Memory and descriptors are read from a separate server
//! process (`/proc/<pid>`); `bench/hostile.sh` prints the figures.

mod common;

use std::time::{Duration, Instant};

use common::images;
use common::process::{ServerProcess, report};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: u64 = 1 << 20;

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// Reads until the peer closes or `limit` passes; returns what was read
/// and whether the peer closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
        }
    }
}

/// Reads one response head (up to the blank line).
async fn read_head(stream: &mut (impl AsyncReadExt + Unpin), limit: Duration) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    let deadline = Instant::now() + limit;
    while !out.ends_with(b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut byte)).await {
            Ok(Ok(1)) => out.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into()
}

/// Sends `head` and then `body`, chunk by chunk, while reading the answer:
/// returns the response head and how many body bytes went out before the
/// server answered (or stopped reading). A server that answers early and
/// closes would otherwise reset the connection under a client that is still
/// writing, and the client would never see the answer.
async fn send_while_reading(
    url: &str,
    head: String,
    body: impl Iterator<Item = Vec<u8>> + Send + 'static,
) -> (String, usize) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stream = TcpStream::connect(addr(url)).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let answered = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let (done, counter) = (answered.clone(), sent.clone());
    let sending = tokio::spawn(async move {
        if writer.write_all(head.as_bytes()).await.is_ok() {
            for chunk in body {
                if done.load(Ordering::Relaxed) || writer.write_all(&chunk).await.is_err() {
                    break;
                }
                counter.fetch_add(chunk.len(), Ordering::Relaxed);
            }
        }
        // Kept open: dropping the write half would half-close the
        // connection, which a server takes for a client that went away.
        writer
    });
    let response = read_head(&mut reader, Duration::from_secs(20)).await;
    answered.store(true, Ordering::Relaxed);
    // The writer may be blocked on a server that stopped reading.
    sending.abort();
    let _ = sending.await;
    (response, sent.load(Ordering::Relaxed))
}

fn status_of(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The session cookie and CSRF token of a logged-in client, for raw requests.
fn credentials(client: &common::Client) -> (String, String) {
    (
        format!("photo_session={}", client.session.clone().expect("session")),
        client.csrf.clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_that_stalls_is_dropped_but_an_idle_keep_alive_is_kept() {
    let server = ServerProcess::start(&[("PHOTO_HEADER_TIMEOUT", "1s")]).await;
    // Half a request line, then nothing.
    let mut slow = TcpStream::connect(addr(&server.url)).await.unwrap();
    slow.write_all(b"GET /heal").await.unwrap();
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(10)).await;
    assert!(closed, "a half-sent request line held its connection");
    report(
        "half request line dropped after",
        format!(
            "{:.1} s (PHOTO_HEADER_TIMEOUT=1s)",
            started.elapsed().as_secs_f64()
        ),
    );

    // A connection that sent a whole request and is idle is a proxy's
    // keep-alive: it is kept past the header timeout, and works.
    let mut idle = TcpStream::connect(addr(&server.url)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        status_of(&read_head(&mut idle, Duration::from_secs(5)).await),
        200
    );
    let mut rest = [0u8; 2];
    idle.read_exact(&mut rest).await.unwrap(); // "ok"
    tokio::time::sleep(Duration::from_secs(3)).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        status_of(&read_head(&mut idle, Duration::from_secs(5)).await),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let server = ServerProcess::start(&[("PHOTO_IDLE_TIMEOUT", "1s")]).await;
    let mut idle = TcpStream::connect(addr(&server.url)).await.unwrap();
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(10)).await;
    assert!(closed, "an idle connection was never closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_stalls_gets_408() {
    let server = ServerProcess::start(&[("PHOTO_BODY_TIMEOUT", "1s")]).await;
    let admin = server.admin().await;
    let (cookie, csrf) = credentials(&admin);
    let mut stream = TcpStream::connect(addr(&server.url)).await.unwrap();
    let head = format!(
        "POST /rest/edit HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\n\
         Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: 100000\r\n\r\n\
         --XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\nJPEG"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let head = read_head(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(status_of(&head), 408, "{head}");
    let incoming = server.data_dir().join("data/originals/.incoming");
    let left = std::fs::read_dir(&incoming).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "the abandoned upload's spool is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_cannot_exhaust_descriptors_or_starve_the_probes() {
    let server = ServerProcess::start(&[
        ("PHOTO_MAX_CONNECTIONS", "100"),
        ("PHOTO_HEADER_TIMEOUT", "2s"),
    ])
    .await;
    let baseline = server.open_fds();
    // 400 clients, each sending half a request head and stalling.
    let mut flood = Vec::new();
    for _ in 0..400 {
        if let Ok(mut s) = TcpStream::connect(addr(&server.url)).await {
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHo").await;
            flood.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = server.open_fds();
    // The probes have their own listener and answer at once.
    let started = Instant::now();
    let ready = reqwest::get(format!("{}/readyz", server.ops_url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        during <= baseline + 100 + 8,
        "{during} descriptors open (baseline {baseline}, cap 100)"
    );
    report(
        "descriptors with 400 stalled clients (cap 100)",
        format!("{during} (baseline {baseline})"),
    );
    // The stalled ones are dropped and real clients get through.
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let r = tokio::time::timeout(
            Duration::from_secs(3),
            http.get(format!("{}/healthz", server.url)).send(),
        )
        .await;
        if matches!(r, Ok(Ok(ref r)) if r.status() == 200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the public listener never recovered"
        );
    }
    drop(flood);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn originals_stream_with_ranges_and_slow_readers_hold_little_memory() {
    let server = ServerProcess::start(&[("PHOTO_WRITE_TIMEOUT", "2s")]).await;
    let admin = server.admin().await;
    let big = images::jpeg_noise(2600, 2400);
    assert!(big.len() as u64 > 12 * MIB, "{} bytes", big.len());
    let r = admin.upload(&[("big.jpg", big.clone())], &[]).await;
    assert_eq!(r.status(), 201);
    let body: serde_json::Value = r.json().await.unwrap();
    let id = body["photos"][0]["id"].as_str().unwrap().to_string();
    let path = format!("/img/orig/{id}.jpg");

    // Ranges: a resumed download gets exactly the bytes asked for.
    let part = admin
        .http
        .get(admin.url(&path))
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 1000-1999/{}", big.len()).as_str()
    );
    assert_eq!(&part.bytes().await.unwrap()[..], &big[1000..2000]);
    let tail = admin
        .http
        .get(admin.url(&path))
        .header("range", format!("bytes={}-", big.len() - 10))
        .send()
        .await
        .unwrap();
    assert_eq!(&tail.bytes().await.unwrap()[..], &big[big.len() - 10..]);
    let beyond = admin
        .http
        .get(admin.url(&path))
        .header("range", format!("bytes={}-", big.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);
    let whole = admin.get(&path).await;
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert_eq!(whole.bytes().await.unwrap().len(), big.len());

    // 30 clients ask for the original and never read it.
    let (cookie, _) = credentials(&admin);
    let baseline_connections = server.metric("photo_http_connections").await;
    let before = server.peak_rss();
    let mut stalled = Vec::new();
    for _ in 0..30 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut s = socket
            .connect(addr(&server.url).parse().unwrap())
            .await
            .unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        stalled.push(s);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let peak = server.peak_rss();
    report(
        "peak RSS, 30 clients not reading a 14 MB original",
        format!("{} MiB (before them {} MiB)", peak / MIB, before / MIB),
    );
    assert!(
        peak < before + 64 * MIB,
        "{} MiB with 30 stalled downloads (before {} MiB)",
        peak / MIB,
        before / MIB
    );
    // The server gives up on them after the write timeout.
    let started = Instant::now();
    loop {
        let open = server.metric("photo_http_connections").await;
        if open <= baseline_connections {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{open} connections still open (before the stalled clients: {baseline_connections})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decompression_bombs_are_refused_within_the_memory_budget() {
    let server = ServerProcess::start(&[]).await;
    let admin = server.admin().await;
    let bombs = [
        ("icc.png", images::png_icc_bomb(700 << 20)),
        ("text.png", images::png_text_bomb(700 << 20)),
        ("flat.webp", images::webp_flat(8000, 8000)),
        ("progressive.jpg", images::jpeg_progressive(7000, 7000)),
    ];
    for (name, bytes) in &bombs {
        assert!(bytes.len() < 4 << 20, "{name}: {} bytes", bytes.len());
    }
    let before = server.peak_rss();
    let attempts = bombs.iter().map(|(name, bytes)| {
        let admin = &admin;
        async move {
            let r = admin.upload(&[(*name, bytes.clone())], &[]).await;
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap();
            (
                *name,
                status,
                body["error"].as_str().unwrap_or("").to_string(),
            )
        }
    });
    for (name, status, error) in futures_util::future::join_all(attempts).await {
        assert_eq!(status, 422, "{name}: {error}");
        assert!(
            error.contains("metadata") || error.contains("memory"),
            "{name}: {error}"
        );
    }
    let peak = server.peak_rss();
    report(
        "peak RSS, 4 bombs at once (700 MB ICC, 700 MB text, 64 MP WebP, 49 MP progressive JPEG)",
        format!("{} MiB (before {} MiB)", peak / MIB, before / MIB),
    );
    assert!(peak < 200 * MIB, "{} MiB", peak / MIB);
    // And nothing was stored.
    let list = admin.get_json("/rest/photos").await;
    assert_eq!(list["photos"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_parts_or_an_endless_field_are_refused_while_still_arriving() {
    let server = ServerProcess::start(&[]).await;
    let admin = server.admin().await;
    let (cookie, csrf) = credentials(&admin);

    // 20,000 one-byte files: refused at the part cap, no spool left.
    let part = |n: usize| {
        format!(
            "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{n}.jpg\"\r\n\r\nx\r\n"
        )
        .into_bytes()
    };
    let parts: Vec<Vec<u8>> = (0..20_000).map(part).collect();
    let total: usize = parts.iter().map(Vec::len).sum::<usize>() + 8;
    let head = format!(
        "POST /rest/edit HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\n\
         Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: {total}\r\n\r\n"
    );
    let body = parts
        .chunks(500)
        .map(|c| c.concat())
        .chain(std::iter::once(b"--XX--\r\n".to_vec()))
        .collect::<Vec<_>>();
    let (response, _) = send_while_reading(&server.url, head, body.into_iter()).await;
    assert_eq!(status_of(&response), 413, "{response}");
    let incoming = server.data_dir().join("data/originals/.incoming");
    assert_eq!(std::fs::read_dir(&incoming).unwrap().count(), 0);

    // A title that never ends: refused once past its cap, long before the
    // body is over.
    let head = format!(
        "POST /rest/edit HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\n\
         Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: 157286400\r\n\r\n\
         --XX\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n"
    );
    let endless = std::iter::repeat_n(vec![b'a'; 64 * 1024], 2400);
    let (response, sent) = send_while_reading(&server.url, head, endless).await;
    assert_eq!(status_of(&response), 413, "{response}");
    assert!(sent < 20 << 20, "the server read {sent} bytes of a title");

    // A bad CSRF header is refused before the body is read at all.
    let mut stream = TcpStream::connect(addr(&server.url)).await.unwrap();
    let head = format!(
        "POST /rest/edit HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nX-CSRF-Token: forged\r\n\
         Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: 157286400\r\n\r\n--XX\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let head = read_head(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status_of(&head), 403, "{head}");
    // So is a form whose first part is not its token.
    let mut stream = TcpStream::connect(addr(&server.url)).await.unwrap();
    let head = format!(
        "POST /rest/edit HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\
         Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: 157286400\r\n\r\n\
         --XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\nxxxx"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let head = read_head(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status_of(&head), 403, "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_is_bounded_in_memory_and_shed_with_retry_after() {
    let server = ServerProcess::start(&[("PHOTO_PASSWORD_CHECKS", "2")]).await;
    let before = server.peak_rss();
    let http = reqwest::Client::new();
    let attempts = (0..60).map(|n| {
        let http = http.clone();
        let url = format!("{}/rest/login", server.url);
        async move {
            http.post(url)
                .header("x-forwarded-for", format!("198.51.100.{n}"))
                .json(
                    &serde_json::json!({"username": format!("user{n}"), "password": "guess-guess"}),
                )
                .send()
                .await
                .unwrap()
        }
    });
    let responses = futures_util::future::join_all(attempts).await;
    let shed: Vec<_> = responses.iter().filter(|r| r.status() == 503).collect();
    assert!(!shed.is_empty(), "60 concurrent password checks all ran");
    assert!(shed.iter().all(|r| r.headers().contains_key("retry-after")));
    assert!(
        responses
            .iter()
            .all(|r| [401, 503].contains(&r.status().as_u16()))
    );
    let peak = server.peak_rss();
    report(
        "peak RSS, 60 concurrent logins (2 checks at once)",
        format!("{} MiB (before {} MiB)", peak / MIB, before / MIB),
    );
    assert!(peak < before + 100 * MIB, "{} MiB", peak / MIB);
    // The owner still logs in afterwards.
    let mut owner = common::Client::new(&server.url);
    assert_eq!(
        owner
            .login("admin", common::process::PASSWORD)
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usernames_cannot_flood_the_throttle_or_forge_log_lines() {
    let server = ServerProcess::start(&[]).await;
    let http = reqwest::Client::new();
    let login = |username: String| {
        let http = http.clone();
        let url = format!("{}/rest/login", server.url);
        async move {
            http.post(url)
                .json(&serde_json::json!({"username": username, "password": "wrong-password"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // A body of megabytes is refused by its size, before it is read.
    let body = serde_json::json!({"username": "u".repeat(1_900_000), "password": "x"}).to_string();
    let head = format!(
        "POST /rest/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let chunks: Vec<Vec<u8>> = body
        .as_bytes()
        .chunks(64 * 1024)
        .map(<[u8]>::to_vec)
        .collect();
    let (response, _) = send_while_reading(&server.url, head, chunks.into_iter()).await;
    assert_eq!(status_of(&response), 413, "{response}");
    // Long or odd names cannot exist: refused without being counted.
    for _ in 0..20 {
        assert_eq!(login("u".repeat(10_000)).await, 401);
    }
    assert_eq!(
        login("admin\nINFO forged: admin logged in".into()).await,
        401
    );
    let mut owner = common::Client::new(&server.url);
    assert_eq!(
        owner
            .login("admin", common::process::PASSWORD)
            .await
            .status(),
        200,
        "the owner is not throttled by those"
    );
    let log = server.log();
    assert!(
        !log.lines().any(|l| l.starts_with("INFO forged")),
        "a username forged a log line:\n{log}"
    );
    assert!(
        !log.contains(&"u".repeat(1000)),
        "a huge username was logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_secrets_are_refused_at_start() {
    for (name, value, expected) in [
        ("PHOTO_ADMIN_PASSWORD", "x", "admin password is too short"),
        ("PHOTO_SESSION_KEY", "k", "session key is too short"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_photo-server"))
            .current_dir(dir.path())
            .env_clear()
            .env("PHOTO_LISTEN", "127.0.0.1:0")
            .env(name, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name}={value} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }
}

/// What other users see while an attack runs: `/healthz` on the public port, a signed-in
/// user's cached photo and a correct login, each tried `rounds` times; the slowest round,
/// and whether every answer was a 200.
async fn probe_others(base: &str, photo: &str, rounds: usize) -> (Duration, bool) {
    let mut slowest = Duration::ZERO;
    let mut ok = true;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for _ in 0..rounds {
        let started = Instant::now();
        let health = http.get(format!("{base}/healthz")).send().await;
        ok &= matches!(health, Ok(ref r) if r.status() == 200);
        let login = http
            .post(format!("{base}/rest/login"))
            .json(&serde_json::json!({"username": "admin", "password": common::process::PASSWORD}))
            .send()
            .await;
        let cookie = match login {
            Ok(r) if r.status() == 200 => r
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
                .collect::<Vec<_>>()
                .join("; "),
            _ => {
                ok = false;
                String::new()
            }
        };
        let cached = http
            .get(format!("{base}{photo}"))
            .header("cookie", cookie)
            .send()
            .await;
        ok &= matches!(cached, Ok(ref r) if r.status() == 200);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (slowest, ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_bodies_and_silent_sockets_from_one_client_cannot_take_the_connection_cap() {
    // Two clients on one machine: the attacker over IPv4 loopback, everyone else over IPv6
    // loopback (a dual-stack listener). Neither is a trusted proxy here.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let listen = format!("[::]:{port}");
    let mut server = ServerProcess::start(&[
        ("PHOTO_LISTEN", listen.as_str()),
        ("PHOTO_MAX_CONNECTIONS", "64"),
        ("PHOTO_TRUSTED_PROXIES", "203.0.113.1/32"),
        ("PHOTO_HEADER_TIMEOUT", "2s"),
        ("PHOTO_BODY_TIMEOUT", "2s"),
    ])
    .await;
    let attacker = format!("127.0.0.1:{port}");
    server.url = format!("http://[::1]:{port}");
    let admin = server.admin().await;
    let id = admin.upload_id("landscape.jpg", &[]).await;
    let photo = format!("/img/240/{id}.jpg");
    assert_eq!(admin.get(&photo).await.status(), 200, "rendered and cached");

    // 400 connections, each a login whose body trickles in at a byte a second.
    let head = "POST /rest/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Content-Length: 16000\r\n\r\n{";
    let mut trickles = Vec::new();
    for _ in 0..400 {
        if let Ok(mut s) = TcpStream::connect(&attacker).await
            && s.write_all(head.as_bytes()).await.is_ok()
        {
            trickles.push(s);
        }
    }
    let trickling = tokio::spawn(async move {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(8) {
            for s in &mut trickles {
                let _ = s.write_all(b" ").await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let mut answers = Vec::new();
        for mut s in trickles {
            answers.push(read_until_closed(&mut s, Duration::from_secs(5)).await);
        }
        answers
    });

    // Everyone else is served meanwhile.
    let (slowest, ok) = probe_others(&server.url, &photo, 20).await;
    assert!(
        ok,
        "other users were refused or timed out during the attack"
    );
    report(
        "slowest health check + login + cached photo of another client while one client trickles 400 login bodies (cap 64)",
        format!("{} ms", slowest.as_millis()),
    );
    let refused = server.metric("photo_http_connections_refused_total").await;
    assert!(
        refused >= 300.0,
        "only {refused} of the attacker's connections were refused past its share"
    );

    // The trickles that got in are cut once past the allowance: 408, or closed.
    let answers = trickling.await.unwrap();
    assert!(
        answers.iter().all(|(_, closed)| *closed),
        "a trickle is still open"
    );
    let timed_out = answers
        .iter()
        .filter(|(text, _)| text.starts_with("HTTP/1.1 408"))
        .count();
    assert!(timed_out > 0, "no trickled body was answered 408");
    report(
        "trickled login bodies answered 408 (the others closed unanswered, past the client's share)",
        format!("{timed_out} of {}", answers.len()),
    );
    // Sockets opened and left silent are closed by the first-request deadline (2 s here),
    // not kept for the idle timeout (75 s).
    let mut silent = Vec::new();
    for _ in 0..16 {
        silent.push(TcpStream::connect(&attacker).await.unwrap());
    }
    let started = Instant::now();
    for mut s in silent {
        let (_, closed) = read_until_closed(&mut s, Duration::from_secs(10)).await;
        assert!(closed, "a silent socket was kept past the header timeout");
    }
    report(
        "16 silent sockets closed after (first-request deadline 2 s)",
        format!("{} ms", started.elapsed().as_millis()),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_whose_headers_never_end_is_refused_after_a_bounded_read() {
    let server = ServerProcess::start(&[]).await;
    let admin = server.admin().await;
    let (cookie, csrf) = credentials(&admin);
    let head = format!(
        "POST /rest/edit HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\n\
         Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: 199229440\r\n\r\n\
         --XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\nX-Pad: "
    );
    // 190 MiB of one header line.
    let endless = std::iter::repeat_n(vec![b'a'; 64 * 1024], 3040);
    let before = server.peak_rss();
    let (response, sent) = send_while_reading(&server.url, head, endless).await;
    assert_eq!(status_of(&response), 413, "{response}");
    assert!(
        sent < 8 << 20,
        "the server read {sent} bytes of part headers"
    );
    let peak = server.peak_rss();
    report(
        "a 190 MiB part header: read before 413, server peak RSS",
        format!(
            "{} KiB, {} MiB (was {} MiB)",
            sent / 1024,
            peak / MIB,
            before / MIB
        ),
    );
    assert!(peak < before + 64 * MIB, "{peak} bytes peak");
    // A normal upload after it works.
    admin.upload_ok("landscape.jpg", &[]).await;
}

/// A server on a dual-stack listener where loopback is not a trusted proxy, so that a test
/// is two clients: one over IPv4 loopback (returned), everyone else over IPv6 loopback (the
/// server's `url`).
async fn two_client_server(env: &[(&str, &str)]) -> (ServerProcess, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let listen = format!("[::]:{port}");
    let mut all = vec![
        ("PHOTO_LISTEN", listen.as_str()),
        ("PHOTO_TRUSTED_PROXIES", "203.0.113.1/32"),
    ];
    all.extend_from_slice(env);
    let mut server = ServerProcess::start(&all).await;
    server.url = format!("http://[::1]:{port}");
    (server, format!("http://127.0.0.1:{port}"))
}

/// Uploads `bytes` as a photo and returns its id.
async fn upload_bytes(
    client: &common::Client,
    name: &str,
    bytes: Vec<u8>,
    visibility: &str,
) -> String {
    let r = client
        .upload(&[(name, bytes)], &[("visibility", visibility)])
        .await;
    assert_eq!(r.status(), 201);
    let body: serde_json::Value = r.json().await.unwrap();
    body["photos"][0]["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_render_flood_leaves_everyone_elses_renders_and_hits_served() {
    // 40 sizes x 4 photos: 160 cold renditions to ask for at once.
    let widths: Vec<String> = (0..40).map(|i| (200 + 10 * i).to_string()).collect();
    let widths = widths.join(",");
    let (server, attacker) = two_client_server(&[("PHOTO_RENDITIONS", widths.as_str())]).await;
    let admin = server.admin().await;
    let mut flooded = Vec::new();
    for n in 0..4u16 {
        let photo = common::images::jpeg_noise(1600 + n, 1200);
        flooded.push(upload_bytes(&admin, &format!("{n}.jpg"), photo, "public").await);
    }
    let other = upload_bytes(
        &admin,
        "other.jpg",
        common::images::jpeg_noise(1600, 1200),
        "public",
    )
    .await;
    let own = upload_bytes(
        &admin,
        "own.jpg",
        common::images::jpeg_noise(1600, 1200),
        "private",
    )
    .await;
    let cached = format!("/img/200/{other}.jpg");
    assert_eq!(admin.get(&cached).await.status(), 200);

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut flood = Vec::new();
    for id in &flooded {
        for w in (0..40).map(|i| 200 + 10 * i) {
            let (http, url) = (http.clone(), format!("{attacker}/img/{w}/{id}.jpg"));
            flood.push(tokio::spawn(async move {
                http.get(url)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Meanwhile: another visitor's cold photo, the signed-in user's own cold photo and
    // their cached one.
    let started = Instant::now();
    let visitor = http
        .get(format!("{}/img/590/{other}.jpg", server.url))
        .send()
        .await
        .unwrap();
    let visitor_took = started.elapsed();
    let started = Instant::now();
    let users = admin.get(&format!("/img/590/{own}.jpg")).await;
    let user_took = started.elapsed();
    let started = Instant::now();
    let hit = admin.get(&cached).await;
    let hit_took = started.elapsed();
    assert_eq!(visitor.status(), 200, "another visitor's cold photo");
    assert_eq!(users.status(), 200, "the signed-in user's cold photo");
    assert_eq!(hit.status(), 200, "the signed-in user's cached photo");

    let mut statuses = Vec::new();
    for f in flood {
        statuses.push(f.await.unwrap());
    }
    let refused = statuses.iter().filter(|s| **s == 503).count();
    let rendered = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        refused >= 100,
        "the flooding visitor had {rendered} renders and only {refused} refusals"
    );
    report(
        "160 cold renditions asked at once by one visitor: rendered / refused (503)",
        format!("{rendered} / {refused}"),
    );
    report(
        "meanwhile: another visitor's cold photo, the signed-in user's cold photo, their cached photo",
        format!(
            "{} ms, {} ms, {} ms",
            visitor_took.as_millis(),
            user_took.as_millis(),
            hit_took.as_millis()
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_hang_up_on_a_cold_photo_do_not_start_its_render_again() {
    let server = ServerProcess::start(&[]).await;
    let admin = server.admin().await;
    let id = upload_bytes(
        &admin,
        "big.jpg",
        common::images::jpeg_noise(4000, 3000),
        "public",
    )
    .await;
    let url = format!("{}/img/1440/{id}.jpg", server.url);
    // 40 clients, 50 ms apart, each hanging up after 0.3 s.
    let mut clients = Vec::new();
    for _ in 0..40 {
        let url = url.clone();
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let _ = tokio::time::timeout(Duration::from_millis(300), http.get(url).send()).await;
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for c in clients {
        c.await.unwrap();
    }
    // The render finished meanwhile (once), and is served from the cache.
    let started = Instant::now();
    loop {
        let r = reqwest::get(&url).await.unwrap();
        if r.status() == 200
            && r.headers().get("x-cache").and_then(|v| v.to_str().ok()) == Some("hit")
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never cached");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let renders = server.metric("photo_render_duration_seconds_count").await;
    report(
        "renders of one cold photo asked for by 40 clients that each hung up after 0.3 s",
        format!("{renders}"),
    );
    assert_eq!(renders, 1.0, "{renders} renders of one rendition");
}
