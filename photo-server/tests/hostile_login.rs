//! Hostile clients at the login: each test reproduces an attack on logging in
//! against a real server process and asserts what the owner of an account
//! can still count on (see the table in `src/auth/throttle.rs`).
//!
//! The server believes `X-Forwarded-For` from loopback (the default
//! `PHOTO_TRUSTED_PROXIES`), so one test client can speak for many
//! addresses, as a proxy in front of the server would (see [`start`]).
//! Figures go to `HOSTILE_REPORT` (`common::process::report`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::process::{PASSWORD, ServerProcess, report};
use serde_json::{Value, json};

/// The server's trusted proxies: the default (loopback) and the address
/// this process's loopback connections arrive from, which is 127.0.0.1
/// except on network stacks that report their interface address instead
/// (gVisor's), where the default alone would ignore `X-Forwarded-For`.
fn trusted_proxies() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (_, peer) = listener.accept().unwrap();
    format!("127.0.0.0/8,::1/128,{}/32", peer.ip())
}

/// A server process (default settings but `env`) behind the test client
/// as its proxy.
async fn start(env: &[(&str, &str)]) -> ServerProcess {
    let proxies = trusted_proxies();
    let mut all = vec![("PHOTO_TRUSTED_PROXIES", proxies.as_str())];
    all.extend_from_slice(env);
    ServerProcess::start(&all).await
}

/// A client with a cookie jar: a browser, or a script that keeps cookies.
fn device() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `POST /rest/login` as the client at `from` (the address a trusted proxy
/// would append to `X-Forwarded-For`).
async fn login(
    http: &reqwest::Client,
    server: &ServerProcess,
    from: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    http.post(format!("{}/rest/login", server.url))
        .header("x-forwarded-for", from)
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
}

/// The web login form as `admin` from `from`: the status.
async fn web_login(
    http: &reqwest::Client,
    server: &ServerProcess,
    from: &str,
    password: &str,
) -> u16 {
    http.post(format!("{}/login", server.url))
        .header("x-forwarded-for", from)
        .form(&[("username", "admin"), ("password", password), ("next", "/")])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn status_of_login(
    http: &reqwest::Client,
    server: &ServerProcess,
    from: &str,
    username: &str,
    password: &str,
) -> u16 {
    login(http, server, from, username, password)
        .await
        .status()
        .as_u16()
}

/// The `n`th address of 198.18.0.0/15 (benchmarking addresses) for guesses.
fn rotating_address(n: usize) -> String {
    let n = n % (1 << 17);
    format!("198.{}.{}.{}", 18 + (n >> 16), (n >> 8) & 255, n & 255)
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|&&s| s == status).count()
}

/// At most how many guesses at one account, from addresses that never
/// logged in to it, get their password checked in `elapsed`: 10 free, then
/// waits of 1, 2, 4, 8, 16 and 30 s (the account budget in
/// `src/auth/throttle.rs`), plus one for a guess on the boundary.
fn account_budget(elapsed: Duration) -> usize {
    let (mut checked, mut at, mut wait) = (10, 0u64, 1u64);
    while at + wait <= elapsed.as_secs() + 1 {
        at += wait;
        checked += 1;
        wait = (wait * 2).min(30);
    }
    checked + 1
}

/// Guesses at `username` with a wrong password, about five a second, each
/// from a new address, until `stop`; returns the statuses.
fn guess_from_rotating_addresses(
    server: &ServerProcess,
    username: &'static str,
    stop: Arc<AtomicBool>,
    throttled: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<Vec<u16>> {
    let url = server.url.clone();
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut sent = tokio::task::JoinSet::new();
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            n += 1;
            let (http, url, throttled) = (http.clone(), url.clone(), throttled.clone());
            sent.spawn(async move {
                let status = http
                    .post(format!("{url}/rest/login"))
                    .header("x-forwarded-for", rotating_address(n))
                    .json(&json!({"username": username, "password": format!("guess-{n}")}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                if status == 429 {
                    throttled.fetch_add(1, Ordering::Relaxed);
                }
                status
            });
        }
        sent.join_all().await
    })
}

async fn wait_for(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "never saw {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    throttled: usize,
    shed: usize,
}

/// Eight clients guessing as fast as the server answers, each guess from a
/// new address (from the `first`th on) at the username `name(n)`. After a
/// `429` a client pauses 10 ms, after a `503` 50 ms: the machine is shared
/// with the server.
struct Flood {
    stop: Arc<AtomicBool>,
    throttled: Arc<AtomicUsize>,
    shed: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Vec<u16>>>,
}

impl Flood {
    fn start(server: &ServerProcess, first: usize, name: fn(usize) -> String) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let (throttled, shed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let next = Arc::new(AtomicUsize::new(first));
        let tasks = (0..8)
            .map(|_| {
                let (url, stop, next) = (server.url.clone(), stop.clone(), next.clone());
                let (throttled, shed) = (throttled.clone(), shed.clone());
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    let mut statuses = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let Ok(r) = http
                            .post(format!("{url}/rest/login"))
                            .header("x-forwarded-for", rotating_address(n))
                            .json(&json!({"username": name(n), "password": "guess-guess"}))
                            .send()
                            .await
                        else {
                            continue;
                        };
                        let status = r.status().as_u16();
                        match status {
                            429 => {
                                throttled.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            503 => {
                                assert!(r.headers().contains_key("retry-after"));
                                shed.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            _ => {}
                        }
                        statuses.push(status);
                    }
                    statuses
                })
            })
            .collect();
        Flood {
            stop,
            throttled,
            shed,
            tasks,
        }
    }

    fn counts(&self) -> Counts {
        Counts {
            throttled: self.throttled.load(Ordering::Relaxed),
            shed: self.shed.load(Ordering::Relaxed),
        }
    }

    async fn wait_until(&self, what: &str, done: impl Fn(Counts) -> bool) {
        wait_for(what, Duration::from_secs(30), || done(self.counts())).await;
    }

    /// Stops the flood: every status it got.
    async fn stop(self) -> Vec<u16> {
        self.stop.store(true, Ordering::Relaxed);
        let mut statuses = Vec::new();
        for task in self.tasks {
            statuses.extend(task.await.unwrap());
        }
        statuses
    }
}

/// Finding 6: guessing at an account from rotating addresses, five times a
/// second, used to keep its owner at `429` (18 of 18 tries). The owner is a
/// known client of the account (the cookie from an earlier login through
/// the API or the web form, or the address they logged in from), with a
/// budget of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_gets_in_while_many_addresses_guess_at_the_account() {
    let server = start(&[]).await;
    // The owner's phone logged in at home once: it keeps the known-client
    // cookie, and home is an address the account logged in from.
    let phone = device();
    assert_eq!(
        status_of_login(&phone, &server, "198.51.100.20", "admin", PASSWORD).await,
        200
    );
    let laptop = reqwest::Client::new(); // no cookies at all
    // A browser that logged in through the web form once, at work.
    let browser = device();
    assert_eq!(
        web_login(&browser, &server, "203.0.113.80", PASSWORD).await,
        303
    );

    let (stop, throttled) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let started = Instant::now();
    let attack = guess_from_rotating_addresses(&server, "admin", stop.clone(), throttled.clone());
    let seen = throttled.clone();
    wait_for(
        "the guesses throttled",
        Duration::from_secs(30),
        move || seen.load(Ordering::Relaxed) > 0,
    )
    .await;

    let mut owner = Vec::new();
    for n in 0..18 {
        let status = match n % 3 {
            // On the road: a new address each time, with the cookie.
            0 => {
                status_of_login(&phone, &server, &format!("100.64.0.{n}"), "admin", PASSWORD).await
            }
            // At home, from another device without the cookie.
            1 => status_of_login(&laptop, &server, "198.51.100.20", "admin", PASSWORD).await,
            // The web form, from a café.
            _ => match web_login(&browser, &server, &format!("100.64.1.{n}"), PASSWORD).await {
                303 => 200,
                other => other,
            },
        };
        owner.push(status);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let guesses = attack.await.unwrap();
    let elapsed = started.elapsed();

    let checked = count(&guesses, 401);
    report(
        "owner logins while 5 guesses/s from rotating addresses hit the account",
        format!(
            "{} of {} answered 200 (6 each: API with its cookie from new addresses, API from home without one, web form with its cookie); {checked} of {} guesses checked in {:.0} s, {} refused with 429",
            count(&owner, 200),
            owner.len(),
            guesses.len(),
            elapsed.as_secs_f64(),
            count(&guesses, 429)
        ),
    );
    assert!(
        owner.iter().all(|&s| s == 200),
        "the owner was kept out: {owner:?}"
    );
    assert!(guesses.iter().all(|&s| s == 401 || s == 429), "{guesses:?}");
    assert!(
        checked <= account_budget(elapsed),
        "{checked} guesses checked in {elapsed:?}"
    );
}

/// Finding 6, IPv6: one client holds a whole /64, so its addresses are one
/// client to the throttle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_clients_are_throttled_by_their_64() {
    let server = start(&[]).await;
    let http = reqwest::Client::new();
    for n in 1..=5 {
        let from = format!("2001:db8:aa:bb::{n}");
        assert_eq!(
            status_of_login(&http, &server, &from, "admin", "guess-guess").await,
            401
        );
    }
    let r = login(
        &http,
        &server,
        "2001:db8:aa:bb:ffff:ffff:ffff:fffe",
        "admin",
        "guess-guess",
    )
    .await;
    assert_eq!(r.status(), 429, "another address in the same /64");
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(
        status_of_login(&http, &server, "2001:db8:aa:bc::1", "admin", "guess-guess").await,
        401,
        "the next /64 is another client"
    );

    // Spraying accounts: 30 failures per /64, whichever addresses they use.
    for n in 0..30 {
        let from = format!("2001:db8:77:1::{:x}", n + 1);
        assert_eq!(
            status_of_login(&http, &server, &from, &format!("user{n}"), "guess-guess").await,
            401
        );
    }
    assert_eq!(
        status_of_login(
            &http,
            &server,
            "2001:db8:77:1:abcd::1",
            "user99",
            "guess-guess"
        )
        .await,
        429
    );
}

/// Finding 7: successful logins used to count against the address, so the
/// 31st right password from one address (an office, a carrier's NAT) in
/// 15 minutes got `429`. Only failures count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_logins_never_count_against_an_address() {
    let server = start(&[]).await;
    let admin = server.admin().await;
    let staff: Vec<String> = (0..40).map(|n| format!("staff{n}")).collect();
    for name in &staff {
        let r = admin
            .http
            .post(admin.url("/rest/admin/users"))
            .header("x-csrf-token", &admin.csrf)
            .json(&json!({"username": name, "password": "staff-password", "admin": false}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{name}");
    }
    let http = reqwest::Client::new(); // scripts without cookies

    // One account, 40 times from one address.
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(status_of_login(&http, &server, "203.0.113.50", "admin", PASSWORD).await);
    }
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");

    // An office: 40 people behind one address, each logging in once.
    let mut statuses = Vec::new();
    for name in &staff {
        statuses
            .push(status_of_login(&http, &server, "203.0.113.60", name, "staff-password").await);
    }
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");

    // Failures from that address still count: all 30 of its budget are left.
    for n in 0..30 {
        assert_eq!(
            status_of_login(
                &http,
                &server,
                "203.0.113.60",
                &format!("nobody{n}"),
                "x-guess"
            )
            .await,
            401,
            "failure {n}"
        );
    }
    assert_eq!(
        status_of_login(&http, &server, "203.0.113.60", "nobody-else", "x-guess").await,
        429
    );
    report(
        "right passwords from one address in a row",
        "80 of 80 answered 200 (40 for one account, 40 accounts once); its 30 failures left intact"
            .into(),
    );
}

/// Finding 8: password-check places used to be taken before the rate
/// limit, so guesses filled them and a normal login got `503` (40 of 40).
/// Now a refused guess never takes a place, and a quarter of the places is
/// kept for clients known to the account they log in to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_login_is_not_shed_while_rotating_addresses_guess() {
    // One check at a time: four places, three of them open to anyone.
    let server = start(&[("PHOTO_PASSWORD_CHECKS", "1")]).await;
    let admin = server.admin().await;
    let r = admin
        .http
        .post(admin.url("/rest/admin/users"))
        .header("x-csrf-token", &admin.csrf)
        .json(&json!({"username": "bob", "password": "bob-password", "admin": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let phone = device();
    assert_eq!(
        status_of_login(&phone, &server, "198.51.100.20", "admin", PASSWORD).await,
        200
    );
    // One guessing client has used up its tries at the account.
    let http = reqwest::Client::new();
    for _ in 0..5 {
        assert_eq!(
            status_of_login(&http, &server, "203.0.113.66", "admin", "guess-guess").await,
            401
        );
    }

    // A flood nothing can throttle: every guess from a new address at a new
    // name. It keeps the open places full.
    let flood = Flood::start(&server, 0, |n| format!("guess{n}"));
    flood.wait_until("the flood shed", |c| c.shed > 0).await;

    // The throttled client is told to wait (429), never given a place (503).
    let mut refused = Vec::new();
    for _ in 0..20 {
        refused.push(status_of_login(&http, &server, "203.0.113.66", "admin", "guess-guess").await);
    }
    // The owner's phone, on the road, gets in every time.
    let mut owner = Vec::new();
    let mut slowest = Duration::ZERO;
    for n in 0..20 {
        let started = Instant::now();
        owner.push(
            status_of_login(&phone, &server, &format!("100.64.0.{n}"), "admin", PASSWORD).await,
        );
        slowest = slowest.max(started.elapsed());
    }
    let guesses = flood.stop().await;
    report(
        "owner logins during a flood of unthrottled guesses (PHOTO_PASSWORD_CHECKS=1)",
        format!(
            "{} of {} answered 200, slowest {:.2} s; the flood: {} of {} shed with 503",
            count(&owner, 200),
            owner.len(),
            slowest.as_secs_f64(),
            count(&guesses, 503),
            guesses.len()
        ),
    );
    assert!(owner.iter().all(|&s| s == 200), "{owner:?}");
    assert!(refused.iter().all(|&s| s == 429), "{refused:?}");
    assert!(guesses.iter().all(|&s| s == 401 || s == 503), "{guesses:?}");

    // Guesses at one account from rotating addresses, throttled by the
    // account's budget: someone logging in from a new place for the first
    // time (a client no account knows) is not shed either. The account has
    // had its ten free guesses from strangers (five above, five here), so
    // the flood's guesses are checked one at a time, a slot every 1 s
    // doubling to 30 s, and all others refused before taking a place.
    for n in 0..5 {
        let from = rotating_address((1 << 17) - 1 - n);
        assert_eq!(
            status_of_login(&http, &server, &from, "admin", "guess-guess").await,
            401
        );
    }
    let started = Instant::now();
    let flood = Flood::start(&server, 1 << 16, |_| "admin".to_string());
    flood
        .wait_until("the guesses throttled", |c| c.throttled > 0)
        .await;
    let mut bob = Vec::new();
    for n in 0..20 {
        let fresh = reqwest::Client::new();
        bob.push(
            status_of_login(
                &fresh,
                &server,
                &format!("203.0.113.{}", 100 + n),
                "bob",
                "bob-password",
            )
            .await,
        );
    }
    let guesses = flood.stop().await;
    report(
        "first logins from new addresses while rotating addresses flood another account with guesses",
        format!(
            "{} of {} answered 200; the guesses: {} refused with 429, {} checked, {} shed with 503",
            count(&bob, 200),
            bob.len(),
            count(&guesses, 429),
            count(&guesses, 401),
            count(&guesses, 503)
        ),
    );
    assert!(bob.iter().all(|&s| s == 200), "{bob:?}");
    assert!(
        count(&guesses, 401) <= account_budget(started.elapsed()),
        "{} guesses checked",
        count(&guesses, 401)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// Waits until the server listens (its liveness probe answers).
async fn wait_listening(server: &ServerProcess) {
    let started = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{}/healthz", server.ops_url)).await
            && r.status() == 200
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never listened: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Both login routes (API and web form) while the database is not there:
/// `503` with `Retry-After`, never "wrong username or password".
async fn assert_logins_are_told_to_come_back(server: &ServerProcess) {
    let http = reqwest::Client::new();
    for password in [PASSWORD, "wrong-password"] {
        let r = login(&http, server, "198.51.100.5", "admin", password).await;
        assert_eq!(r.status(), 503, "API login while connecting");
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=30).contains(&retry), "Retry-After: {retry}");
        let body: Value = r.json().await.unwrap();
        assert_ne!(body["error"], "wrong username or password");

        let r = http
            .post(format!("{}/login", server.url))
            .header("x-forwarded-for", "198.51.100.5")
            .form(&[("username", "admin"), ("password", password), ("next", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503, "web login while connecting");
        assert!(r.headers().contains_key("retry-after"));
        let page = r.text().await.unwrap();
        assert!(!page.contains("Wrong username or password"), "{page}");
    }
}

/// LOW: a login while the database cannot be reached at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_while_the_database_is_unreachable_at_start_gets_503() {
    let closed = format!("postgres://postgres@127.0.0.1:{}/photos", free_port());
    let server = ServerProcess::spawn(&[("DATABASE_URL", &closed)]);
    wait_listening(&server).await;
    assert_logins_are_told_to_come_back(&server).await;
}

/// LOW: a login while the server is still connecting at start, in the
/// moment the schema is in place but the admin account is not yet, used to
/// answer `401 wrong username or password`. Here the moment is held open:
/// another process holds the SQLite write lock, so the server migrates (an
/// up-to-date schema needs no write) and reads, but cannot create the admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_before_the_admin_account_is_in_place_gets_503() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("photos.db").display()
    );
    // The schema, from an earlier start under another admin name.
    drop(ServerProcess::start(&[("DATABASE_URL", &url), ("PHOTO_ADMIN_USER", "setup")]).await);
    let mut holder = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();

    let server = ServerProcess::spawn(&[("DATABASE_URL", &url)]);
    wait_listening(&server).await;
    // Migrated, and the insert of the admin gave up once on the lock.
    wait_for(
        "the admin account waiting for the lock",
        Duration::from_secs(30),
        || server.log().contains("database not reachable yet"),
    )
    .await;
    assert_logins_are_told_to_come_back(&server).await;

    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    holder.close().await.unwrap();
    server.wait_ready().await;
    let mut owner = common::Client::new(&server.url);
    assert_eq!(owner.login("admin", PASSWORD).await.status(), 200);
}

/// Runs the binary with `env` until it exits (at most 20 s): its output.
fn refused_at_start(env: &[(&str, &str)], dir: &std::path::Path) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_photo-server"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PHOTO_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{env:?} was accepted: the server kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{env:?}");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// LOW: the most common passwords as the admin password, and a session key
/// with too little variety, stop the server at start with a message naming
/// the setting. The minimum lengths stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_secrets_are_refused_at_start_with_the_setting_named() {
    let dir = tempfile::tempdir().unwrap();
    let common_password = dir.path().join("admin-password");
    std::fs::write(&common_password, "12345678\n").unwrap();
    let plain_key = dir.path().join("session-key");
    std::fs::write(&plain_key, format!("{}\n", "ab".repeat(24))).unwrap();
    let a32 = "a".repeat(32);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("PHOTO_ADMIN_PASSWORD", "password")],
            "PHOTO_ADMIN_PASSWORD",
        ),
        (
            vec![("PHOTO_ADMIN_PASSWORD", "12345678")],
            "PHOTO_ADMIN_PASSWORD",
        ),
        (
            vec![("PHOTO_ADMIN_PASSWORD", "Password1")],
            "PHOTO_ADMIN_PASSWORD",
        ),
        (
            vec![(
                "PHOTO_ADMIN_PASSWORD_FILE",
                common_password.to_str().unwrap(),
            )],
            "PHOTO_ADMIN_PASSWORD_FILE",
        ),
        (
            vec![("PHOTO_ADMIN_PASSWORD", "short")],
            "PHOTO_ADMIN_PASSWORD",
        ),
        (vec![("PHOTO_SESSION_KEY", &a32)], "PHOTO_SESSION_KEY"),
        (
            vec![("PHOTO_SESSION_KEY", "0123456789abcdef0123456789abcdef")],
            "PHOTO_SESSION_KEY",
        ),
        (
            vec![("PHOTO_SESSION_KEY_FILE", plain_key.to_str().unwrap())],
            "PHOTO_SESSION_KEY_FILE",
        ),
        (vec![("PHOTO_SESSION_KEY", "k")], "PHOTO_SESSION_KEY"),
    ];
    for (env, setting) in &cases {
        let run = tempfile::tempdir().unwrap();
        let output = refused_at_start(env, run.path());
        assert!(output.contains(setting), "{env:?}: {output}");
    }
    // Strong ones start.
    let server = ServerProcess::start(&[
        ("PHOTO_ADMIN_PASSWORD", "correct horse battery"),
        ("PHOTO_SESSION_KEY", "Vq3x9L-kT2pWz8RmYc4NbHs7DfJ0aGe1"),
    ])
    .await;
    let mut owner = common::Client::new(&server.url);
    assert_eq!(
        owner.login("admin", "correct horse battery").await.status(),
        200
    );
}
